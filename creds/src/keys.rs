//! nkeys: the key kinds we use (operator, account, user), public keys, and
//! key pairs whose seed never shows up in Debug output, logs or error text
//! and is wiped from memory when dropped. Signing goes through the `nkeys`
//! crate (ed25519-dalek 2), so the build carries one copy of the curve code.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use zeroize::Zeroizing;

/// The nkey kinds this crate signs with or for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `O…` / `SO…`.
    Operator,
    /// `A…` / `SA…`.
    Account,
    /// `U…` / `SU…`.
    User,
}

impl KeyKind {
    /// The first character of a public key of this kind.
    pub fn prefix(self) -> char {
        match self {
            KeyKind::Operator => 'O',
            KeyKind::Account => 'A',
            KeyKind::User => 'U',
        }
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Operator => "operator",
            KeyKind::Account => "account",
            KeyKind::User => "user",
        }
    }

    fn from_nkeys(t: nkeys::KeyPairType) -> Option<KeyKind> {
        match t {
            nkeys::KeyPairType::Operator => Some(KeyKind::Operator),
            nkeys::KeyPairType::Account => Some(KeyKind::Account),
            nkeys::KeyPairType::User => Some(KeyKind::User),
            _ => None,
        }
    }

    fn from_prefix_byte(b: u8) -> Option<KeyKind> {
        // nkeys prefix bytes: O = 14 << 3, A = 0, U = 20 << 3.
        match b {
            112 => Some(KeyKind::Operator),
            0 => Some(KeyKind::Account),
            160 => Some(KeyKind::User),
            _ => None,
        }
    }

    fn to_nkeys(self) -> nkeys::KeyPairType {
        match self {
            KeyKind::Operator => nkeys::KeyPairType::Operator,
            KeyKind::Account => nkeys::KeyPairType::Account,
            KeyKind::User => nkeys::KeyPairType::User,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key was refused. Never carries seed text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a valid nkey seed (bad length, prefix, base32 or checksum).
    #[error("not a valid nkey seed (the seed text is not shown)")]
    InvalidSeed,
    /// The seed is of a kind we do not use (server, cluster, curve…).
    #[error("the seed is not an operator, account or user seed")]
    UnsupportedSeedKind,
    /// The seed is of another kind than required.
    #[error("expected a{} {expected} seed, found a{} {found} seed", article(*expected), article(*found))]
    WrongSeedKind {
        /// Required kind.
        expected: KeyKind,
        /// Kind found.
        found: KeyKind,
    },
    /// The text is not a valid public key of the required kind.
    #[error("{key:?} is not a valid {expected} public key")]
    InvalidPublicKey {
        /// The text.
        key: String,
        /// Required kind.
        expected: KeyKind,
    },
    /// Signing failed inside nkeys.
    #[error("signing failed")]
    Sign,
}

fn article(k: KeyKind) -> &'static str {
    match k {
        KeyKind::Operator | KeyKind::Account => "n",
        KeyKind::User => "",
    }
}

/// Whether `key` is a valid public key of `kind`: length, prefix, base32
/// and checksum, as the Go library's `IsValidPublicKey` checks (the curve
/// point itself is checked when a signature is verified).
pub fn is_public_key(kind: KeyKind, key: &str) -> bool {
    key.len() == 56
        && key.starts_with(kind.prefix())
        && nkeys::from_public_key(key)
            .ok()
            .and_then(|(prefix, _)| KeyKind::from_prefix_byte(prefix))
            == Some(kind)
}

/// Checks that `key` is a public key of `kind`.
pub fn check_public_key(kind: KeyKind, key: &str) -> Result<(), KeyError> {
    if is_public_key(kind, key) {
        Ok(())
    } else {
        let shown: String = key.chars().take(64).collect();
        Err(KeyError::InvalidPublicKey {
            key: redact_seeds(&shown).into_owned(),
            expected: kind,
        })
    }
}

/// The shortest run that counts as a (possibly truncated) seed.
const SEED_LIKE_MIN: usize = 16;

/// What [`redact_seeds`] puts in place of a seed.
pub const REDACTED_SEED: &str = "<seed redacted>";

/// `text` with every word that looks like an nkey seed (`S`, a key-kind
/// letter, then base32 upper case — at least 16 characters, so a truncated
/// seed counts too) replaced by [`REDACTED_SEED`]: the last line of defence
/// for text that echoes a value a client sent or a file held, where a seed
/// may have been put by mistake. A run inside a longer word is left alone.
pub fn redact_seeds(text: &str) -> std::borrow::Cow<'_, str> {
    let b32 = |c: u8| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c);
    let word = |c: u8| c.is_ascii_alphanumeric();
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !word(bytes[i]) || (i > 0 && word(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let end = bytes[i..]
            .iter()
            .position(|&c| !word(c))
            .map_or(bytes.len(), |n| i + n);
        let run = &bytes[i..end];
        let seed_like = run.len() >= SEED_LIKE_MIN
            && run[0] == b'S'
            && b"OAUNCXP".contains(&run[1])
            && run.iter().all(|&c| b32(c));
        if seed_like {
            let o = out.get_or_insert_with(String::new);
            o.push_str(&text[last..i]);
            o.push_str(REDACTED_SEED);
            last = end;
        }
        i = end;
    }
    match out {
        None => std::borrow::Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[last..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

/// A seed's text (`SO…`, `SA…`, `SU…`): redacted in Debug, wiped on drop.
#[derive(Clone)]
pub struct Seed(SecretString);

impl Seed {
    /// Wraps seed text (surrounding whitespace removed) without checking it.
    pub fn new(text: &str) -> Seed {
        Seed(SecretString::from(text.trim()))
    }

    /// The seed text. Only for writing it to a secret file.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

/// A key pair with its seed: signs JWTs and nonces.
#[derive(Clone)]
pub struct KeyPair {
    kind: KeyKind,
    public: String,
    inner: nkeys::KeyPair,
}

impl KeyPair {
    /// A fresh random key pair of `kind`.
    pub fn generate(kind: KeyKind) -> KeyPair {
        let inner = nkeys::KeyPair::new(kind.to_nkeys());
        KeyPair {
            kind,
            public: inner.public_key(),
            inner,
        }
    }

    /// A key pair from seed text of any kind we use.
    pub fn from_seed(seed: &Seed) -> Result<KeyPair, KeyError> {
        let text = seed.expose();
        if text.len() != 58 || !text.starts_with('S') {
            return Err(KeyError::InvalidSeed);
        }
        let inner = nkeys::KeyPair::from_seed(text).map_err(|_| KeyError::InvalidSeed)?;
        let kind =
            KeyKind::from_nkeys(inner.key_pair_type()).ok_or(KeyError::UnsupportedSeedKind)?;
        Ok(KeyPair {
            kind,
            public: inner.public_key(),
            inner,
        })
    }

    /// A key pair from seed text that must be of `kind`.
    pub fn from_seed_of(kind: KeyKind, seed: &Seed) -> Result<KeyPair, KeyError> {
        let kp = KeyPair::from_seed(seed)?;
        if kp.kind != kind {
            return Err(KeyError::WrongSeedKind {
                expected: kind,
                found: kp.kind,
            });
        }
        Ok(kp)
    }

    /// The kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public key (`O…`, `A…`, `U…`).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The seed, wrapped.
    pub fn seed(&self) -> Seed {
        // Every KeyPair of this type is built from a seed (`generate`,
        // `from_seed`), so nkeys always has one; the nkeys String is wiped
        // as soon as it is copied into the secret.
        let text = Zeroizing::new(self.inner.seed().unwrap_or_default());
        Seed::new(&text)
    }

    /// Signs `input` (64-byte ed25519 signature).
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.inner.sign(input).map_err(|_| KeyError::Sign)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("kind", &self.kind)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Verifies an ed25519 signature by public key `key` (any nkey kind).
pub fn verify(key: &str, input: &[u8], signature: &[u8]) -> bool {
    match nkeys::KeyPair::from_public_key(key) {
        Ok(kp) => kp.verify(input, signature).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_round_trip() {
        for kind in [KeyKind::Operator, KeyKind::Account, KeyKind::User] {
            let kp = KeyPair::generate(kind);
            assert!(kp.public_key().starts_with(kind.prefix()));
            assert!(is_public_key(kind, kp.public_key()));
            let seed = kp.seed();
            assert!(seed.expose().starts_with(&format!("S{}", kind.prefix())));
            let again = KeyPair::from_seed_of(kind, &seed).unwrap();
            assert_eq!(again.public_key(), kp.public_key());
            let sig = kp.sign(b"hello").unwrap();
            assert!(verify(kp.public_key(), b"hello", &sig));
            assert!(!verify(kp.public_key(), b"hellO", &sig));
        }
    }

    #[test]
    fn seeds_never_print() {
        let kp = KeyPair::generate(KeyKind::Account);
        let seed = kp.seed();
        let text = seed.expose().to_string();
        assert!(!format!("{seed:?}").contains(&text));
        assert!(!format!("{kp:?}").contains(&text));
        let mut bad = text.clone();
        bad.replace_range(10..11, if &text[10..11] == "A" { "B" } else { "A" });
        let err = KeyPair::from_seed(&Seed::new(&bad)).unwrap_err();
        assert!(!err.to_string().contains(&bad[2..]));
        assert_eq!(
            KeyPair::from_seed_of(KeyKind::User, &seed).unwrap_err(),
            KeyError::WrongSeedKind {
                expected: KeyKind::User,
                found: KeyKind::Account
            }
        );
    }

    #[test]
    fn bad_public_keys() {
        let a = KeyPair::generate(KeyKind::Account);
        assert!(!is_public_key(KeyKind::User, a.public_key()));
        assert!(!is_public_key(KeyKind::Account, "A"));
        let mut broken = a.public_key().to_string();
        broken.replace_range(20..21, if &broken[20..21] == "B" { "C" } else { "B" });
        assert!(!is_public_key(KeyKind::Account, &broken));
    }

    #[test]
    fn seeds_in_messages_are_redacted() {
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let seed = seed.expose();
        let msg = format!("\"{seed}\" is not a user public key; also {}", &seed[..20]);
        let red = redact_seeds(&msg);
        assert!(!red.contains(&seed[..16]), "{red}");
        assert_eq!(red.matches(REDACTED_SEED).count(), 2, "{red}");
        let embedded = format!("x{seed}");
        assert_eq!(redact_seeds(&embedded), embedded, "inside a longer word");
        // Public keys, words and short tokens stay.
        let text = format!("{} SUB microbus.safe.> SUBSCRIBE x", kp.public_key());
        assert_eq!(redact_seeds(&text), text);
        let err = check_public_key(KeyKind::User, seed)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&seed[..16]), "{err}");
    }
}
