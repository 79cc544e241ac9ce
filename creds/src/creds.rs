//! `.creds` files: the user JWT and seed in exactly the bytes the Go library
//! writes (`FormatUserConfig`), followed by a block of comment lines listing
//! the grants one per line, so `grep danger <hostname>_nats.creds` lists the
//! trust-root grants and nothing else.
//!
//! Clients find the JWT and seed blocks with a regex (nats.go, async-nats:
//! a dash line, one line of `[\w\-.=]+`, a dash line) or by scanning for the
//! BEGIN lines (nats-py, nats.c). Every line of the grants block starts with
//! `#`, so it can never be taken for a block, and it comes after the seed
//! block, so parsers that stop at the seed never read it.
//!
//! Parsing tolerates what real tools write: CRLF line ends, a byte-order
//! mark, indentation, extra text and blank lines, a missing trailing newline,
//! and (like the Go library) a bare seed line when the seed is not decorated.

use crate::keys::{KeyError, KeyKind, KeyPair, Seed};
use buswarden_rules::Verb;
use std::fmt;
use zeroize::Zeroizing;

/// Largest `.creds` file parsed, in bytes.
pub const MAX_CREDS_LEN: usize = 1024 * 1024;

/// The first line of the grants block starts with this.
pub const GRANTS_HEADER: &str = "# buswarden grants of ";

/// What the grants block says about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantsBlock {
    /// The service hostname.
    pub hostname: String,
    /// The plane filled in.
    pub plane: String,
    /// The deploy id.
    pub deploy: String,
    /// Expiry, unix seconds (0 = never).
    pub expires: i64,
    /// The grants with the plane filled in, PUB first, each sorted.
    pub grants: Vec<(Verb, String)>,
}

impl GrantsBlock {
    /// The comment lines, each ending in `\n`, preceded by a blank line.
    pub fn render(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let expiry = if self.expires > 0 {
            format!(
                "expires {} (unix {})",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.expires as u64)
                ),
                self.expires
            )
        } else {
            "never expires".to_string()
        };
        let pubs = self.grants.iter().filter(|g| g.0 == Verb::Pub).count();
        // Never a write error on a Vec.
        let _ = write!(
            out,
            "\n{GRANTS_HEADER}{}: plane {}, deploy {}, {expiry}; {} PUB, {} SUB\n",
            self.hostname,
            self.plane,
            self.deploy,
            pubs,
            self.grants.len() - pubs
        );
        for (verb, subject) in &self.grants {
            out.extend_from_slice(b"# ");
            out.extend_from_slice(verb.as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(subject.as_bytes());
            out.push(b'\n');
        }
    }
}

/// The exact bytes of the Go library's `FormatUserConfig(jwt, seed)`.
pub fn format_user_config(jwt: &str, seed: &Seed) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(jwt.len() + 400));
    write_user_config(&mut out, jwt, seed);
    out
}

fn write_user_config(out: &mut Vec<u8>, jwt: &str, seed: &Seed) {
    out.extend_from_slice(b"-----BEGIN NATS USER JWT-----\n");
    out.extend_from_slice(jwt.as_bytes());
    out.extend_from_slice(b"\n------END NATS USER JWT------\n\n");
    out.extend_from_slice(
        b"************************* IMPORTANT *************************\n\
NKEY Seed printed below can be used to sign and prove identity.\n\
NKEYs are sensitive and should be treated as secrets.\n\n\
-----BEGIN USER NKEY SEED-----\n",
    );
    out.extend_from_slice(seed.expose().as_bytes());
    out.extend_from_slice(
        b"\n------END USER NKEY SEED------\n\n\
*************************************************************\n",
    );
}

/// A `.creds` file: the Go bytes, then the grants block.
pub fn format_creds(jwt: &str, seed: &Seed, grants: &GrantsBlock) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(
        jwt.len() + 600 + 80 * grants.grants.len(),
    ));
    write_user_config(&mut out, jwt, seed);
    grants.render(&mut out);
    out
}

/// Why a `.creds` file was refused. Never carries seed text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredsError {
    /// Larger than [`MAX_CREDS_LEN`].
    #[error("credentials file is {len} bytes, larger than the {MAX_CREDS_LEN} accepted")]
    TooLarge {
        /// Length.
        len: usize,
    },
    /// Not UTF-8 text.
    #[error("credentials file is not UTF-8 text")]
    NotText,
    /// No JWT block (or bare JWT line).
    #[error("no user JWT found (expected a '-----BEGIN NATS USER JWT-----' block)")]
    NoJwt,
    /// No seed block (or bare seed line).
    #[error("no nkey seed found (expected a '-----BEGIN USER NKEY SEED-----' block)")]
    NoSeed,
    /// The seed is invalid or not a user seed.
    #[error("the seed in the credentials file is unusable: {0}")]
    Seed(#[source] KeyError),
    /// The JWT does not decode or verify.
    #[error("the JWT in the credentials file is not valid: {0}")]
    Jwt(#[source] crate::jwt::JwtError),
    /// The seed belongs to another user than the JWT.
    #[error("the seed is for user {seed_user} but the JWT is for {jwt_user}")]
    SeedDoesNotMatch {
        /// The seed's public key.
        seed_user: String,
        /// The JWT's subject.
        jwt_user: String,
    },
}

/// A user JWT and its seed, as read from a `.creds` file.
#[derive(Clone)]
pub struct UserCredentials {
    /// The user JWT text.
    pub jwt: String,
    /// The user key pair.
    pub key: KeyPair,
}

impl UserCredentials {
    /// Decodes and verifies the user JWT and checks that the seed is its
    /// subject's (as nats.go and the Go oracle do before using a file).
    pub fn claims(&self) -> Result<crate::claims::UserClaims, CredsError> {
        let claims = crate::jwt::decode_user(&self.jwt).map_err(CredsError::Jwt)?;
        if claims.data.sub != self.key.public_key() {
            return Err(CredsError::SeedDoesNotMatch {
                seed_user: self.key.public_key().to_string(),
                jwt_user: claims.data.sub,
            });
        }
        Ok(claims)
    }
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCredentials")
            .field("jwt", &self.jwt)
            .field("user", &self.key.public_key())
            .finish_non_exhaustive()
    }
}

fn is_dash_line(line: &str) -> bool {
    // `-{3,}.*-{3,}`: dashes at both ends, at least six in all.
    let l = line.trim();
    l.len() >= 6 && l.starts_with("---") && l.ends_with("---")
}

fn is_token_line(line: &str) -> bool {
    !line.is_empty()
        && line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'='))
}

/// The decorated blocks of a text (dash line, token line, dash line), in order.
pub(crate) fn decorated_blocks(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i + 2 < lines.len() {
        if is_dash_line(lines[i]) && is_token_line(lines[i + 1]) && is_dash_line(lines[i + 2]) {
            found.push(lines[i + 1]);
            i += 3;
        } else {
            i += 1;
        }
    }
    found
}

/// Parses a `.creds` file.
pub fn parse_creds(bytes: &[u8]) -> Result<UserCredentials, CredsError> {
    if bytes.len() > MAX_CREDS_LEN {
        return Err(CredsError::TooLarge { len: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CredsError::NotText)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let blocks = decorated_blocks(text);
    let jwt = match blocks.first() {
        Some(j) => j.to_string(),
        None => text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("eyJ") && l.matches('.').count() == 2 && is_token_line(l))
            .ok_or(CredsError::NoJwt)?
            .to_string(),
    };
    let seed_text = match blocks.get(1) {
        Some(s) => *s,
        None => text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("SU"))
            .ok_or(CredsError::NoSeed)?,
    };
    let key =
        KeyPair::from_seed_of(KeyKind::User, &Seed::new(seed_text)).map_err(CredsError::Seed)?;
    Ok(UserCredentials { jwt, key })
}

/// The grants listed in a `.creds` file's comment block (empty when it has none).
pub fn parse_grants(text: &str) -> Vec<(Verb, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(s) = l.strip_prefix("# PUB ") {
                Some((Verb::Pub, s.to_string()))
            } else {
                l.strip_prefix("# SUB ").map(|s| (Verb::Sub, s.to_string()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_fallbacks() {
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let jwt = "eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVIn0.c2ln";
        let text = format_user_config(jwt, &seed);
        let creds = parse_creds(&text).unwrap();
        assert_eq!(creds.jwt, jwt);
        assert_eq!(creds.key.public_key(), kp.public_key());
        let crlf = String::from_utf8(text.to_vec())
            .unwrap()
            .replace('\n', "\r\n");
        assert_eq!(parse_creds(crlf.as_bytes()).unwrap().jwt, jwt);
        let bare = format!("{jwt}\n{}\n", seed.expose());
        assert_eq!(parse_creds(bare.as_bytes()).unwrap().jwt, jwt);
        assert_eq!(parse_creds(b"").unwrap_err(), CredsError::NoJwt);
        assert_eq!(
            parse_creds(format!("{jwt}\n").as_bytes()).unwrap_err(),
            CredsError::NoSeed
        );
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains(seed.expose()));
    }

    #[test]
    fn tolerates_what_tools_write() {
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let jwt = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJVIn0.c2ln";
        let block = GrantsBlock {
            hostname: "a.example".into(),
            plane: "microbus".into(),
            deploy: "d1".into(),
            expires: 1_800_000_000,
            grants: vec![
                (Verb::Pub, "microbus.safe.443.a_example.b.*.GET.x---".into()),
                (Verb::Sub, "microbus.reply._.*.a_example.*".into()),
            ],
        };
        let base = String::from_utf8(format_creds(jwt, &seed, &block).to_vec()).unwrap();
        let variants = [
            base.clone(),
            base.replace('\n', "\r\n"),
            format!("\u{feff}{base}"),
            format!("# written by hand\nnotes: x\n\n{base}"),
            base.trim_end().to_string(),
            base.lines()
                .map(|l| format!("  {l}  "))
                .collect::<Vec<_>>()
                .join("\n"),
        ];
        for v in variants {
            let c = parse_creds(v.as_bytes()).unwrap_or_else(|e| panic!("{e}: {v:?}"));
            assert_eq!(c.jwt, jwt);
            assert_eq!(c.key.public_key(), kp.public_key());
            assert_eq!(parse_grants(&v), block.grants);
        }
        assert!(base.contains("\n# buswarden grants of a.example: plane microbus, deploy d1, expires 2027-01-15T08:00:00Z (unix 1800000000); 1 PUB, 1 SUB\n"));
        // A user seed is required: an account seed is refused without showing it.
        let acc = KeyPair::generate(KeyKind::Account).seed();
        let wrong = base.replace(seed.expose(), acc.expose());
        let err = parse_creds(wrong.as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            CredsError::Seed(KeyError::WrongSeedKind { .. })
        ));
        assert!(!err.to_string().contains(acc.expose()));
    }
}
