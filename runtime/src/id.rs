//! Random identifiers: 128-bit message ids and `id-…` instance ids, both from
//! the thread-local CSPRNG of `rand`.

use rand::RngExt as _;

/// A fresh 128-bit random message id.
pub fn message_id() -> u128 {
    rand::random::<u128>()
}

/// The header form of a message id: 32 lower-case hex digits.
pub fn format_message_id(id: u128) -> String {
    format!("{id:032x}")
}

/// Parses the header form of a message id.
pub fn parse_message_id(text: &str) -> Option<u128> {
    if text.len() != 32 {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

/// A fresh instance id: `id-` and 10 random lower-case alphanumerics.
pub fn instance_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(13);
    id.push_str("id-");
    for _ in 0..10 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_and_differ() {
        let a = message_id();
        let b = message_id();
        assert_ne!(a, b);
        assert_eq!(parse_message_id(&format_message_id(a)), Some(a));
        assert_eq!(format_message_id(1).len(), 32);
        assert_eq!(parse_message_id("xyz"), None);
    }

    #[test]
    fn instance_ids_have_the_layout_form() {
        let id = instance_id();
        assert!(id.starts_with("id-"));
        assert_eq!(id.len(), 13);
        assert!(
            id[3..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert!(buswarden_rules::Position::parse(&id).is_ok());
        assert_ne!(instance_id(), instance_id());
    }
}
