//! Random identifiers: message ids (8 alphanumerics, as Microbus makes them)
//! and `id-…` instance ids, both from the thread-local CSPRNG of `rand`.

use rand::RngExt as _;

/// Bytes of a message id.
pub const MESSAGE_ID_LEN: usize = 8;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh message id: 8 random characters of `[A-Za-z0-9]` (about 47.6
/// random bits; a reply is also checked against the host called).
pub fn message_id() -> compact_str::CompactString {
    // One 64-bit draw read as 8 base-62 digits: 62^8 < 2^48, so the
    // reduction's bias is below one part in 80,000 per id.
    let mut x: u64 = rand::rng().random();
    let mut id = [0u8; MESSAGE_ID_LEN];
    for b in &mut id {
        *b = ALPHANUMERIC[(x % 62) as usize];
        x /= 62;
    }
    // ASCII by construction; stored inline (no allocation).
    compact_str::CompactString::from_utf8(id).unwrap_or_default()
}

/// The key of a message id in the table of waiting calls: its 8 bytes.
/// `None` for an id of another length (never one of ours).
pub(crate) fn message_key(id: &str) -> Option<u64> {
    let bytes: [u8; MESSAGE_ID_LEN] = id.as_bytes().try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
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
    fn message_ids_are_eight_alphanumerics_and_differ() {
        let a = message_id();
        let b = message_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(message_key(&a).is_some());
        assert_ne!(message_key(&a), message_key(&b));
        assert_eq!(message_key("short"), None);
    }

    #[test]
    fn message_ids_use_every_character_in_every_place() {
        let mut seen = [[false; 62]; MESSAGE_ID_LEN];
        for _ in 0..20_000 {
            for (place, b) in message_id().bytes().enumerate() {
                let i = ALPHANUMERIC.iter().position(|&c| c == b).unwrap();
                seen[place][i] = true;
            }
        }
        assert!(seen.iter().all(|place| place.iter().all(|&s| s)));
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
