//! Reading the files an operator points busop at: `.creds` files, JWTs of
//! any kind (operator, account, user) and `nats.acl` files. Untrusted bytes
//! become typed values here, and every refusal names the file and what is
//! wrong with it. A seed is parsed only to check it matches its JWT; it is
//! never kept, shown or put in an error.

use crate::error::{BusopError, Result};
use buswarden_creds::UserClaims;
use buswarden_creds::creds::{Grants, parse_creds_with_grants};
use buswarden_creds::jwt::{self, AnyClaims};
use buswarden_rules::acl::{self, AclFile};
use std::path::{Path, PathBuf};

/// Largest file busop reads as a JWT, `.creds` or `nats.acl`.
pub const MAX_FILE_LEN: u64 = 1024 * 1024;

/// A file busop understood.
#[derive(Debug, Clone)]
pub enum Artifact {
    /// A `.creds` file: the user JWT (checked) and the grants comment block.
    Creds {
        /// The raw token.
        token: String,
        /// Its claims.
        claims: Box<UserClaims>,
        /// The readable grants block (`# PUB …` / `# SUB …` comment lines);
        /// empty when the file has none (creds written by other tools).
        grants: Vec<(buswarden_rules::Verb, String)>,
    },
    /// A bare JWT.
    Jwt {
        /// The raw token.
        token: String,
        /// Its claims.
        claims: Box<AnyClaims>,
    },
    /// A `nats.acl` file.
    Acl(AclFile),
}

/// A file and what it holds.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it was read from (or `git:REV:path`).
    pub path: PathBuf,
    /// What it holds.
    pub artifact: Artifact,
}

/// Reads `path` as text, refusing huge and non-UTF-8 files.
pub fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(BusopError::io("reading", path))?;
    if meta.is_dir() {
        return Err(BusopError::Unrecognized {
            path: path.to_path_buf(),
            what: "is a folder, not a file".into(),
        });
    }
    if meta.len() > MAX_FILE_LEN {
        return Err(BusopError::TooLarge {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let bytes = std::fs::read(path).map_err(BusopError::io("reading", path))?;
    String::from_utf8(bytes).map_err(|_| BusopError::NotText {
        path: path.to_path_buf(),
    })
}

/// Loads and classifies one file.
pub fn load(path: &Path) -> Result<Loaded> {
    let text = read_text(path)?;
    classify(path, &text)
}

fn looks_like_token(line: &str) -> bool {
    line.starts_with("eyJ") && line.matches('.').count() == 2
}

fn looks_like_seed(line: &str) -> bool {
    line.len() >= 50
        && line.starts_with('S')
        && line[1..2].chars().all(|c| "OAUNCX".contains(c))
        && line
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// Classifies text read from `path` (a file or `git:REV:path`).
pub fn classify(path: &Path, text: &str) -> Result<Loaded> {
    let owned = |artifact| {
        Ok(Loaded {
            path: path.to_path_buf(),
            artifact,
        })
    };
    // A `.creds` file (by name or by its markers) is read by the one strict
    // reader the runtime connects with: what busop shows is what connects.
    let is_creds = path.extension().is_some_and(|e| e == "creds");
    if is_creds || text.contains("BEGIN NATS USER JWT") || text.contains("USER NKEY SEED") {
        return load_creds(path, text).and_then(|(token, claims, grants)| {
            owned(Artifact::Creds {
                token,
                claims: Box::new(claims),
                grants,
            })
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines
        .first()
        .is_some_and(|l| l.starts_with(acl::HEADER_PREFIX.trim_end()))
        || lines
            .iter()
            .any(|l| l.starts_with("PUB ") || l.starts_with("SUB "))
    {
        let file = acl::parse(text).map_err(|source| BusopError::Acl {
            path: path.to_path_buf(),
            source,
        })?;
        return owned(Artifact::Acl(file));
    }
    let tokens: Vec<&&str> = lines.iter().filter(|l| looks_like_token(l)).collect();
    let seeds = lines.iter().filter(|l| looks_like_seed(l)).count();
    if tokens.len() == 1 && seeds > 0 {
        // A JWT and a seed outside the one layout: refused like any other
        // malformed `.creds` file.
        return load_creds(path, text).and_then(|(token, claims, grants)| {
            owned(Artifact::Creds {
                token,
                claims: Box::new(claims),
                grants,
            })
        });
    }
    if seeds > 0 {
        return Err(BusopError::Unrecognized {
            path: path.to_path_buf(),
            what: "holds an nkey seed, not a JWT or .creds file (busop never reads or shows seeds here)".into(),
        });
    }
    match tokens.as_slice() {
        [token] => {
            let claims = jwt::decode(token).map_err(|source| BusopError::Jwt {
                path: path.to_path_buf(),
                source,
            })?;
            owned(Artifact::Jwt {
                token: token.to_string(),
                claims: Box::new(claims),
            })
        }
        [] if lines.len() == 1 && lines[0].matches('.').count() >= 1 && lines[0].len() > 20 => {
            // One line that is not a complete token: report why it fails to decode.
            let err = jwt::decode(lines[0]).err();
            Err(match err {
                Some(source) => BusopError::Jwt {
                    path: path.to_path_buf(),
                    source,
                },
                None => BusopError::Unrecognized {
                    path: path.to_path_buf(),
                    what: "not a NATS JWT, .creds or nats.acl file".into(),
                },
            })
        }
        [] => Err(BusopError::Unrecognized {
            path: path.to_path_buf(),
            what: if lines.is_empty() {
                "is empty: expected a NATS JWT, .creds or nats.acl file".into()
            } else {
                "not a NATS JWT, .creds or nats.acl file".into()
            },
        }),
        _ => Err(BusopError::Unrecognized {
            path: path.to_path_buf(),
            what: format!("holds {} JWTs; give one JWT per file", tokens.len()),
        }),
    }
}

fn load_creds(path: &Path, text: &str) -> Result<(String, UserClaims, Grants)> {
    let (creds, grants) =
        parse_creds_with_grants(text.as_bytes()).map_err(|source| BusopError::Creds {
            path: path.to_path_buf(),
            source,
        })?;
    let claims = jwt::decode_user(&creds.jwt).map_err(|source| BusopError::Jwt {
        path: path.to_path_buf(),
        source,
    })?;
    if claims.data.sub != creds.key.public_key() {
        return Err(BusopError::SeedMismatch {
            path: path.to_path_buf(),
            seed_key: creds.key.public_key().to_string(),
            jwt_subject: claims.data.sub.clone(),
        });
    }
    Ok((creds.jwt, claims, grants.unwrap_or_default()))
}

/// Every `*.creds` and `nats.acl` file under `root` (a file is returned as
/// is), skipping hidden folders and `target/`, sorted.
pub fn find_grant_files(root: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(root).map_err(BusopError::io("reading", root))?;
    if !meta.is_dir() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    walk(root, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(BusopError::io("listing", dir))? {
        let entry = entry.map_err(BusopError::io("listing", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let ty = entry
            .file_type()
            .map_err(BusopError::io("reading", &path))?;
        if ty.is_dir() {
            if !name.starts_with('.') && name != "target" {
                walk(&path, out)?;
            }
        } else if name == "nats.acl" || name.ends_with(".creds") {
            out.push(path);
        }
    }
    Ok(())
}
