//! `.creds` files: the user JWT and seed in exactly the bytes the Go library
//! writes (`FormatUserConfig`), followed by a block of comment lines listing
//! the grants one per line, so `grep danger <hostname>_nats.creds` lists the
//! trust-root grants and nothing else.
//!
//! One strict reader, [`parse_creds`], for every program that reads a
//! `.creds` file (`busop audit`/`inspect`, the runtime's connect, the
//! account server, the CI client): the file must be exactly the Go bytes
//! (the JWT block, the notice, the seed block, LF line ends) followed by
//! nothing or by exactly one grants block (a blank line, the header line
//! whose counts match, then `# PUB`/`# SUB` lines). Anything else is refused
//! with the line that is wrong, never its text (it could hold a seed).
//!
//! Why strict: clients find the blocks with a regex and ignore other lines,
//! and ad hoc parsers each pick "the first line after the marker" their own
//! way, so a file with a decoy block (before a blank line after the BEGIN
//! marker, or a second block) read as one JWT to `grep` and an audit and as
//! another to the connecting client. Exactly one accepted layout leaves one
//! reading; programs that connect parse with this reader and hand the JWT
//! and seed to the client themselves, never the file.

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
    /// A carriage return: the layout is LF only.
    #[error(
        "line {line} ends in CR (a CRLF file): credentials files are LF only; convert it (`sed -i 's/\\r$//' FILE`) or sign it again"
    )]
    CarriageReturn {
        /// 1-based line.
        line: usize,
    },
    /// The file departs from the one accepted layout.
    #[error(
        "line {line}: expected {expected}; a credentials file must be exactly what `gencreds sign`, the account server or nsc write (the JWT block, the notice, the seed block, then at most the buswarden grants block), sign it again"
    )]
    Layout {
        /// 1-based line.
        line: usize,
        /// What the line should be.
        expected: &'static str,
    },
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

fn is_token_line(line: &str) -> bool {
    !line.is_empty()
        && line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'='))
}

/// The fixed lines of the Go layout, `None` standing for the JWT and the
/// seed line.
const LAYOUT: [Option<&str>; 13] = [
    Some("-----BEGIN NATS USER JWT-----"),
    None,
    Some("------END NATS USER JWT------"),
    Some(""),
    Some("************************* IMPORTANT *************************"),
    Some("NKEY Seed printed below can be used to sign and prove identity."),
    Some("NKEYs are sensitive and should be treated as secrets."),
    Some(""),
    Some("-----BEGIN USER NKEY SEED-----"),
    None,
    Some("------END USER NKEY SEED------"),
    Some(""),
    Some("*************************************************************"),
];

/// What the fixed lines are called in errors (never their would-be text).
const LAYOUT_NAMES: [&str; 13] = [
    "the '-----BEGIN NATS USER JWT-----' line, first in the file",
    "the user JWT",
    "the '------END NATS USER JWT------' line",
    "a blank line",
    "the IMPORTANT notice line",
    "the notice's second line",
    "the notice's third line",
    "a blank line",
    "the '-----BEGIN USER NKEY SEED-----' line",
    "the user nkey seed",
    "the '------END USER NKEY SEED------' line",
    "a blank line",
    "the closing line of asterisks",
];

/// The strictly read parts of a `.creds` file.
struct Layout<'a> {
    jwt: &'a str,
    seed: &'a str,
    /// The grants block, when the file has one.
    grants: Option<Vec<(Verb, String)>>,
}

/// Splits a `.creds` text into its parts, accepting only the one layout.
fn read_layout(text: &str) -> Result<Layout<'_>, CredsError> {
    if let Some(i) = text.find('\r') {
        let line = text[..i].matches('\n').count() + 1;
        return Err(CredsError::CarriageReturn { line });
    }
    let mut lines: Vec<&str> = text.split('\n').collect();
    // The text ends in a line feed exactly when the last piece is empty.
    let unterminated = lines.pop().is_some_and(|last| !last.is_empty());
    if unterminated {
        // Reported after the first lines are checked, so a file that is not
        // a `.creds` file at all says so first.
        lines.push(text.rsplit('\n').next().unwrap_or_default());
    }
    let (mut jwt, mut seed) = ("", "");
    for (i, want) in LAYOUT.iter().enumerate() {
        let fail = || CredsError::Layout {
            line: i + 1,
            expected: LAYOUT_NAMES[i],
        };
        let got = *lines.get(i).ok_or_else(|| match i {
            0 | 1 => CredsError::NoJwt,
            8 | 9 => CredsError::NoSeed,
            _ => fail(),
        })?;
        match want {
            Some(w) if got == *w => {}
            Some(_) => {
                return Err(match i {
                    0 if !got.contains("BEGIN NATS USER JWT") => CredsError::NoJwt,
                    _ => fail(),
                });
            }
            None if !is_token_line(got) => return Err(fail()),
            None if i == 1 => jwt = got,
            None => seed = got,
        }
    }
    if unterminated {
        return Err(CredsError::Layout {
            line: lines.len(),
            expected: "a line feed at the end of the last line",
        });
    }
    let rest = &lines[LAYOUT.len()..];
    let grants = match rest {
        [] => None,
        ["", header, grant_lines @ ..] => Some(read_grants(header, grant_lines, LAYOUT.len() + 2)?),
        _ => {
            return Err(CredsError::Layout {
                line: LAYOUT.len() + 1,
                expected: "the end of the file, or a blank line and the buswarden grants block",
            });
        }
    };
    Ok(Layout { jwt, seed, grants })
}

/// Reads the grants block: the header (at 1-based line `at`) and exactly the
/// PUB then SUB lines its counts announce.
fn read_grants(header: &str, lines: &[&str], at: usize) -> Result<Vec<(Verb, String)>, CredsError> {
    let bad_header = CredsError::Layout {
        line: at,
        expected: "the grants header '# buswarden grants of <hostname>: …; <n> PUB, <m> SUB'",
    };
    let counts = header
        .strip_prefix(GRANTS_HEADER)
        .and_then(|h| h.rsplit_once("; "))
        .and_then(|(_, c)| c.strip_suffix(" SUB"))
        .and_then(|c| c.split_once(" PUB, "))
        .and_then(|(p, s)| Some((p.parse::<usize>().ok()?, s.parse::<usize>().ok()?)));
    let Some((pubs, subs)) = counts else {
        return Err(bad_header);
    };
    if pubs.checked_add(subs) != Some(lines.len()) {
        return Err(CredsError::Layout {
            line: at,
            expected: "a grants header whose counts match the '# PUB'/'# SUB' lines that follow, and nothing after them",
        });
    }
    let mut grants = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let (verb, prefix) = if i < pubs {
            (Verb::Pub, "# PUB ")
        } else {
            (Verb::Sub, "# SUB ")
        };
        let grant = line
            .strip_prefix(prefix)
            .filter(|g| !g.is_empty() && !g.contains(char::is_control))
            .ok_or(CredsError::Layout {
                line: at + 1 + i,
                expected: if verb == Verb::Pub {
                    "a '# PUB <subject>' line"
                } else {
                    "a '# SUB <subject>' line"
                },
            })?;
        grants.push((verb, grant.to_string()));
    }
    Ok(grants)
}

/// The grants of a grants block, PUB first, plane filled in.
pub type Grants = Vec<(Verb, String)>;

/// Parses a `.creds` file: exactly the Go layout, then at most the grants
/// block (see the module docs). The one reader of `.creds` files.
pub fn parse_creds(bytes: &[u8]) -> Result<UserCredentials, CredsError> {
    parse_creds_with_grants(bytes).map(|(c, _)| c)
}

/// [`parse_creds`], also returning the grants block (`None` when the file
/// has none).
pub fn parse_creds_with_grants(
    bytes: &[u8],
) -> Result<(UserCredentials, Option<Grants>), CredsError> {
    if bytes.len() > MAX_CREDS_LEN {
        return Err(CredsError::TooLarge { len: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CredsError::NotText)?;
    let layout = read_layout(text)?;
    let key =
        KeyPair::from_seed_of(KeyKind::User, &Seed::new(layout.seed)).map_err(CredsError::Seed)?;
    Ok((
        UserCredentials {
            jwt: layout.jwt.to_string(),
            key,
        },
        layout.grants,
    ))
}

/// The Go bytes (JWT block, notice, seed block) of a `.creds` file the
/// strict reader accepts, as text for a client library that parses `.creds`
/// text itself (async-nats `ConnectOptions::with_credentials`): on this
/// canonical text every parser reads exactly the JWT and seed
/// [`parse_creds`] read. Never hand such a library the file itself.
pub fn canonical_text(bytes: &[u8]) -> Result<Zeroizing<String>, CredsError> {
    let creds = parse_creds(bytes)?;
    let go = format_user_config(&creds.jwt, &creds.key.seed());
    // The Go layout is ASCII.
    Ok(Zeroizing::new(String::from_utf8_lossy(&go).into_owned()))
}

/// The grants listed in a `.creds` file's grants block; empty when it has
/// none or when the file is not in the one accepted layout (then
/// [`parse_creds`] refuses it too).
pub fn parse_grants(text: &str) -> Vec<(Verb, String)> {
    read_layout(text)
        .ok()
        .and_then(|l| l.grants)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJVIn0.c2ln";

    fn block() -> GrantsBlock {
        GrantsBlock {
            hostname: "a.example".into(),
            plane: "microbus".into(),
            deploy: "d1".into(),
            expires: 1_800_000_000,
            grants: vec![
                (Verb::Pub, "microbus.safe.443.a_example.b.*.GET.x---".into()),
                (Verb::Sub, "microbus.reply._.*.a_example.*".into()),
                (Verb::Sub, "microbus.safe.*.*.a_example.> a_example".into()),
            ],
        }
    }

    #[test]
    fn reads_exactly_what_we_and_go_write() {
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let go = format_user_config(JWT, &seed);
        let (c, grants) = parse_creds_with_grants(&go).unwrap();
        assert_eq!((c.jwt.as_str(), grants), (JWT, None));
        assert_eq!(c.key.public_key(), kp.public_key());
        let ours = format_creds(JWT, &seed, &block());
        let (c, grants) = parse_creds_with_grants(&ours).unwrap();
        assert_eq!(c.jwt, JWT);
        assert_eq!(grants.as_ref(), Some(&block().grants));
        let text = String::from_utf8(ours.to_vec()).unwrap();
        assert_eq!(parse_grants(&text), block().grants);
        assert!(text.contains("\n# buswarden grants of a.example: plane microbus, deploy d1, expires 2027-01-15T08:00:00Z (unix 1800000000); 1 PUB, 2 SUB\n"));
        assert!(!format!("{c:?}").contains(seed.expose()));
        assert_eq!(canonical_text(&ours).unwrap().as_bytes(), &go[..]);
        assert!(canonical_text(b"x").is_err());
    }

    /// Every departure from the one layout is refused, and the error never
    /// shows the seed.
    #[test]
    fn refuses_every_other_layout() {
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let base = String::from_utf8(format_creds(JWT, &seed, &block()).to_vec()).unwrap();
        let wider = "eyJ0eXAiOiJKV1QifQ.eyJ3aWRlciI6dHJ1ZX0.c2ln";
        let decoy = base.replacen(
            "-----BEGIN NATS USER JWT-----\n",
            &format!("-----BEGIN NATS USER JWT-----\n\n{wider}\n"),
            1,
        );
        let decoy_before = format!(
            "-----BEGIN NATS USER JWT-----\n{wider}\n------END NATS USER JWT------\n\n{base}"
        );
        let blank_after_marker = base.replacen(
            "-----BEGIN NATS USER JWT-----\n",
            "-----BEGIN NATS USER JWT-----\n\n",
            1,
        );
        let grants_at = base.find("\n# buswarden").unwrap();
        let go_part = &base[..grants_at + 1];
        let cases: Vec<(&str, String)> = vec![
            ("crlf", base.replace('\n', "\r\n")),
            ("bom", format!("\u{feff}{base}")),
            ("hand notes before", format!("# notes\n{base}")),
            ("blank line after the marker", blank_after_marker),
            ("a decoy block after the marker", decoy),
            ("a decoy block before", decoy_before),
            ("duplicated", format!("{base}{base}")),
            ("duplicated go part", format!("{go_part}{go_part}")),
            ("trailing garbage", format!("{base}garbage\n")),
            ("trailing blank line", format!("{base}\n")),
            ("no final newline", base.trim_end().to_string()),
            (
                "indented",
                base.replace("\n-----BEGIN USER", "\n  -----BEGIN USER"),
            ),
            ("bare lines", format!("{JWT}\n{}\n", seed.expose())),
            ("extra grant", format!("{base}# SUB microbus.>\n")),
            (
                "grant lines out of order",
                base.replace("# PUB microbus.safe.443", "# SUB microbus.safe.443"),
            ),
            (
                "header counts",
                base.replace("1 PUB, 2 SUB", "1 PUB, 1 SUB"),
            ),
            ("empty", String::new()),
            ("nul", base.replacen("IMPORTANT", "IMPORT\0NT", 1)),
        ];
        for (what, text) in cases {
            let err = parse_creds(text.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{what}: accepted"));
            assert!(!err.to_string().contains(seed.expose()), "{what}: {err}");
            assert!(parse_grants(&text).is_empty(), "{what}");
        }
        let err = parse_creds(base.replace('\n', "\r\n").as_bytes()).unwrap_err();
        assert_eq!(err, CredsError::CarriageReturn { line: 1 });
        let huge = vec![b'#'; MAX_CREDS_LEN + 1];
        assert!(matches!(
            parse_creds(&huge),
            Err(CredsError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_creds(&[0xff, 0xfe]),
            Err(CredsError::NotText)
        ));
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
