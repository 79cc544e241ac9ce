//! Service hostnames: validation, normalisation and the flattening that turns a
//! hostname into one NATS subject token.
//!
//! A hostname is lower-cased, made of dot-separated labels of `[a-z0-9-]`, and
//! never contains `_` (because `a_b.c` and `a.b.c` would flatten alike). The
//! first labels `id-…` and `loc-…` are reserved: they address instances and
//! localities and travel in the position segment, never in a host segment.

use std::fmt;

/// Longest hostname accepted, as in DNS.
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest label accepted, as in DNS.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a hostname was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostnameError {
    /// The hostname is empty.
    #[error("hostname is empty")]
    Empty,
    /// The hostname is longer than [`MAX_HOSTNAME_LEN`].
    #[error("hostname is {len} bytes long, longer than the {MAX_HOSTNAME_LEN} allowed")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// A label (the text between dots) is empty, as in `a..b`, `.a` or `a.`.
    #[error("hostname {hostname:?} has an empty label (leading, trailing or doubled dot)")]
    EmptyLabel {
        /// The offending hostname.
        hostname: String,
    },
    /// A label is longer than [`MAX_LABEL_LEN`].
    #[error("label {label:?} is longer than {MAX_LABEL_LEN} bytes")]
    LabelTooLong {
        /// The offending label.
        label: String,
    },
    /// The hostname contains `_`, which flattening cannot tell apart from `.`.
    #[error(
        "hostname {hostname:?} contains '_', which is not allowed (it flattens like '.'); use '-'"
    )]
    Underscore {
        /// The offending hostname.
        hostname: String,
    },
    /// A character outside `[a-z0-9-.]`.
    #[error(
        "hostname {hostname:?} contains {ch:?} at byte {at}; only a-z, 0-9, '-' and '.' are allowed"
    )]
    InvalidChar {
        /// The offending hostname.
        hostname: String,
        /// The character.
        ch: char,
        /// Byte offset of the character.
        at: usize,
    },
    /// The first label starts with `id-` or `loc-`, which address instances.
    #[error(
        "hostname {hostname:?} starts with the reserved label prefix {prefix:?} (used for instance and locality addressing)"
    )]
    ReservedLabel {
        /// The offending hostname.
        hostname: String,
        /// `id-` or `loc-`.
        prefix: &'static str,
    },
    /// The last label is `all`, reserved for broadcasts (`all`, `x.all`).
    #[error(
        "hostname {hostname:?} ends with the label \"all\", which is reserved for broadcasts to every service; choose another name"
    )]
    ReservedAll {
        /// The offending hostname.
        hostname: String,
    },
    /// Upper-case letters where the exact, lower-case form is required (a
    /// `nats.acl` header, a `buswarden.toml` caller).
    #[error("hostname {hostname:?} must be written in lower case: {lower:?}")]
    NotLowerCase {
        /// The hostname as written.
        hostname: String,
        /// Its lower-case form.
        lower: String,
    },
}

/// A validated, lower-cased service hostname such as `calculator.example`.
/// Shared, not copied, when cloned (a typed call clones its target host).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hostname(std::sync::Arc<str>);

impl serde::Serialize for Hostname {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The broadcast host: a destination every service answers on `:888`, never
/// a service's own hostname.
pub const BROADCAST: &str = "all";

/// URL characters a route or URL host may carry besides `[a-z0-9-.]` (RFC
/// 3986 sub-delimiters and `~`): they flatten by escaping (`my$.xml` ->
/// `my%24_xml`), as Microbus's layout does. `_` stays refused.
const URL_HOST_SPECIALS: &[u8] = b"!$&'()*+,;=~";

impl Hostname {
    /// Validates a service hostname (ASCII upper case is lower-cased
    /// first). The last label `all` is reserved for broadcasts.
    pub fn parse(input: &str) -> Result<Self, HostnameError> {
        let h = Self::parse_with(input, false)?;
        if h.0.rsplit('.').next() == Some(BROADCAST) {
            return Err(HostnameError::ReservedAll {
                hostname: h.0.to_string(),
            });
        }
        Ok(h)
    }

    /// Validates the host a call is sent to (a route's `//host`, a URL's
    /// host, `for_host`): as [`Hostname::parse`], but the broadcast host
    /// `all` itself is accepted, and so are URL special characters
    /// (`!$&'()*+,;=~`), which flatten by escaping. `x.all` stays refused.
    pub fn parse_destination(input: &str) -> Result<Self, HostnameError> {
        let h = Self::parse_with(input, true)?;
        if &*h.0 != BROADCAST && h.0.rsplit('.').next() == Some(BROADCAST) {
            return Err(HostnameError::ReservedAll {
                hostname: h.0.to_string(),
            });
        }
        Ok(h)
    }

    fn parse_with(input: &str, url_specials: bool) -> Result<Self, HostnameError> {
        if input.is_empty() {
            return Err(HostnameError::Empty);
        }
        if input.len() > MAX_HOSTNAME_LEN {
            return Err(HostnameError::TooLong { len: input.len() });
        }
        let lower = input.to_ascii_lowercase();
        for (at, ch) in lower.char_indices() {
            match ch {
                'a'..='z' | '0'..='9' | '-' | '.' => {}
                c if url_specials && c.is_ascii() && URL_HOST_SPECIALS.contains(&(c as u8)) => {}
                '_' => return Err(HostnameError::Underscore { hostname: lower }),
                _ => {
                    return Err(HostnameError::InvalidChar {
                        hostname: lower,
                        ch,
                        at,
                    });
                }
            }
        }
        for label in lower.split('.') {
            if label.is_empty() {
                return Err(HostnameError::EmptyLabel { hostname: lower });
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(HostnameError::LabelTooLong {
                    label: label.to_string(),
                });
            }
        }
        let first = lower.split('.').next().unwrap_or_default();
        for prefix in ["id-", "loc-"] {
            if first.starts_with(prefix) {
                return Err(HostnameError::ReservedLabel {
                    hostname: lower,
                    prefix,
                });
            }
        }
        Ok(Hostname(lower.into()))
    }

    /// Whether this is the broadcast host `all` (only a destination).
    pub fn is_broadcast(&self) -> bool {
        &*self.0 == BROADCAST
    }

    /// Validates `input` exactly as written: like [`Hostname::parse`], but
    /// upper-case letters are refused rather than lower-cased.
    pub fn parse_exact(input: &str) -> Result<Self, HostnameError> {
        let h = Hostname::parse(input)?;
        if &*h.0 != input {
            return Err(HostnameError::NotLowerCase {
                hostname: input.to_string(),
                lower: h.0.to_string(),
            });
        }
        Ok(h)
    }

    /// The hostname as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hostname as one subject token (`calculator.example` -> `calculator_example`).
    pub fn flatten(&self) -> String {
        flatten(&self.0)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Hostname {
    type Err = HostnameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hostname::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Hostname {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hostname::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Flattens any text into one subject token, as the wire layout does for
/// hostnames: lower-case, `.` -> `_`, `[a-z0-9_-]` pass, every other byte
/// `%xx` (lower-case hex). An empty input flattens to `_`.
pub fn flatten(host: &str) -> String {
    let mut out = String::with_capacity(host.len() + 8);
    flatten_into(&mut out, host);
    out
}

/// [`flatten`], appended to `out`.
pub fn flatten_into(out: &mut String, host: &str) {
    if host.is_empty() {
        out.push('_');
        return;
    }
    for b in host.bytes() {
        let b = b.to_ascii_lowercase();
        match b {
            b'.' => out.push('_'),
            b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => out.push(b as char),
            _ => push_pct(out, b),
        }
    }
}

/// Whether `host` flattens to `token` ([`flatten`]), compared without
/// allocating.
pub fn flattens_to(host: &str, token: &str) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if host.is_empty() {
        return token == "_";
    }
    let t = token.as_bytes();
    let mut at = 0;
    for b in host.bytes() {
        let b = b.to_ascii_lowercase();
        let ok = match b {
            b'.' => t.get(at) == Some(&b'_'),
            b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => t.get(at) == Some(&b),
            _ => {
                let pct = [b'%', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]];
                if t.get(at..at + 3) == Some(&pct[..]) {
                    at += 2;
                    true
                } else {
                    false
                }
            }
        };
        if !ok {
            return false;
        }
        at += 1;
    }
    at == t.len()
}

/// Reverses [`flatten`] for a token that came from a hostname without `_`.
/// Returns `None` when the token is not a well-formed flattened name,
/// including a non-canonical one that [`flatten`] never writes (an escape of
/// a byte that passes unescaped, such as `%61` for `a`): every name has
/// exactly one token.
pub fn unflatten(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b'.'),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let b = decode_hex_pair(hex)?;
                if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                    return None;
                }
                out.push(b);
                i += 2;
            }
            b @ (b'a'..=b'z' | b'0'..=b'9' | b'-') => out.push(b),
            _ => return None,
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Whether `unflatten(token)` is `Some`, decided without building the name
/// when the token holds no escape (the usual case).
pub fn is_flattened(token: &str) -> bool {
    if token.contains('%') {
        return unflatten(token).is_some();
    }
    token
        .bytes()
        .all(|b| matches!(b, b'_' | b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

pub(crate) fn push_pct(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 0xf) as usize] as char);
}

/// Decodes two lower-case hex digits; upper case is refused so that every
/// byte has exactly one encoding.
pub(crate) fn decode_hex_pair(hex: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(hex[0])? << 4 | digit(hex[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_vectors() {
        for (input, want) in [
            ("www.sub.example.com", "www_sub_example_com"),
            ("com", "com"),
            ("example.", "example_"),
            (".example", "_example"),
            ("..", "__"),
            ("a!b.c", "a%21b_c"),
            ("a~b.c", "a%7eb_c"),
            ("my$.xml", "my%24_xml"),
            ("EXAMPLE.com", "example_com"),
        ] {
            assert_eq!(flatten(input), want, "flatten({input:?})");
        }
    }

    #[test]
    fn is_flattened_agrees_with_unflatten() {
        for t in [
            "a_example",
            "a-b_c9",
            "_",
            "A_b",
            "a%2a",
            "a%2A",
            "a%41",
            "a%",
            "a%e2%82%ac",
            "a%ff",
            "a.b",
            "a b",
            "ü",
            "",
            "a*",
            "x%2e",
            "%5f",
        ] {
            assert_eq!(is_flattened(t), unflatten(t).is_some(), "{t:?}");
        }
    }

    #[test]
    fn unflatten_reverses_for_hostnames_without_underscore() {
        for host in [
            "www.sub.example.com",
            "com",
            "a!b.c",
            "a~b.c",
            "my$.xml",
            "é.x",
        ] {
            assert_eq!(unflatten(&flatten(host)).as_deref(), Some(host));
        }
        assert_eq!(unflatten("a%2"), None);
        assert_eq!(unflatten("a%ZZ"), None);
        assert_eq!(unflatten("a*"), None);
        for non_canonical in ["%61", "%41", "%2e", "%5f", "%2d", "%30", "a%2A"] {
            assert_eq!(unflatten(non_canonical), None, "{non_canonical}");
        }
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(
            Hostname::parse("Calc.Example").unwrap().as_str(),
            "calc.example"
        );
        assert_eq!(Hostname::parse(""), Err(HostnameError::Empty));
        assert!(matches!(
            Hostname::parse("a_b.c"),
            Err(HostnameError::Underscore { .. })
        ));
        assert!(matches!(
            Hostname::parse("a..b"),
            Err(HostnameError::EmptyLabel { .. })
        ));
        assert!(matches!(
            Hostname::parse(".a"),
            Err(HostnameError::EmptyLabel { .. })
        ));
        assert!(matches!(
            Hostname::parse("a*b"),
            Err(HostnameError::InvalidChar { ch: '*', at: 1, .. })
        ));
        assert!(matches!(
            Hostname::parse("a b"),
            Err(HostnameError::InvalidChar { ch: ' ', .. })
        ));
        assert!(matches!(
            Hostname::parse("é.x"),
            Err(HostnameError::InvalidChar { ch: 'é', .. })
        ));
        assert!(matches!(
            Hostname::parse("id-abc.x"),
            Err(HostnameError::ReservedLabel { prefix: "id-", .. })
        ));
        assert!(matches!(
            Hostname::parse("loc-us.x"),
            Err(HostnameError::ReservedLabel { prefix: "loc-", .. })
        ));
        assert!(Hostname::parse("x.id-abc").is_ok());
        assert!(matches!(
            Hostname::parse(&"a".repeat(64)),
            Err(HostnameError::LabelTooLong { .. })
        ));
        let long = vec!["a"; 130].join(".");
        assert!(matches!(
            Hostname::parse(&long),
            Err(HostnameError::TooLong { .. })
        ));
    }
}
