//! Secrets on disk: private folders (0700) and files (0600) written
//! atomically (temp file in the same folder, then rename), and seed files
//! as nsc keeps them (the seed on one line). Errors name paths, never
//! contents.

use crate::keys::{KeyError, KeyKind, KeyPair, Seed};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Largest key file read, in bytes.
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// Why a key or secret file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file holds no seed.
    #[error("{path}: no nkey seed found")]
    NoSeed {
        /// The path.
        path: PathBuf,
    },
    /// The file is too large to be a key file.
    #[error("{path}: {len} bytes is too large for a key file")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The seed is unusable.
    #[error("{origin}: {source}")]
    Key {
        /// The file path or environment variable.
        origin: String,
        /// Why.
        source: KeyError,
    },
    /// A secret file group or others may read or write.
    #[error("{path} has mode {mode:o}; a key file must be readable by its owner only (chmod 600)")]
    Permissions {
        /// The path.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The environment variable is not set (or empty).
    #[error("environment variable {var} is not set")]
    EnvMissing {
        /// The variable.
        var: String,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> KeyFileError + 'a {
    move |source| KeyFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing `dir`
/// open to group or others is tightened to 0700. Returns whether the mode of
/// an existing folder was changed.
pub fn create_private_dir(dir: &Path) -> Result<bool, KeyFileError> {
    match fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(KeyFileError::Io {
                    action: "using as a folder",
                    path: dir.to_path_buf(),
                    source: io::Error::new(io::ErrorKind::AlreadyExists, "not a folder"),
                });
            }
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("restricting to 0700", dir))?;
                return Ok(true);
            }
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err("creating folder", dir))?;
            Ok(false)
        }
        Err(e) => Err(io_err("reading", dir)(e)),
    }
}

/// Writes `bytes` to `path` atomically with mode 0600: a temporary file in
/// the same folder (created 0600), its data synced when `sync` is set, then
/// renamed over `path`.
pub fn write_private_file(path: &Path, bytes: &[u8], sync: bool) -> Result<(), KeyFileError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".buswarden-")
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io_err("creating a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io_err("writing", path))?;
    if sync {
        tmp.as_file().sync_data().map_err(io_err("syncing", path))?;
    }
    tmp.persist(path)
        .map_err(|e| io_err("renaming into place", path)(e.error))?;
    Ok(())
}

/// Generates a key pair of `kind` and writes its seed to `path` (0600,
/// folder 0700 when created).
pub fn generate_key_file(kind: KeyKind, path: &Path) -> Result<KeyPair, KeyFileError> {
    let kp = KeyPair::generate(kind);
    write_key_file(&kp, path)?;
    Ok(kp)
}

/// Writes a key pair's seed to `path` (one line, 0600), creating the folder 0700.
pub fn write_key_file(kp: &KeyPair, path: &Path) -> Result<(), KeyFileError> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !dir.exists()
    {
        create_private_dir(dir)?;
    }
    let seed = kp.seed();
    let mut text = Zeroizing::new(Vec::with_capacity(60));
    text.extend_from_slice(seed.expose().as_bytes());
    text.push(b'\n');
    write_private_file(path, &text, true)
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

/// The decorated blocks of a key file's text (dash line, token line, dash
/// line), in order. Key files only: `.creds` files are read strictly by
/// [`crate::creds::parse_creds`].
fn decorated_blocks(text: &str) -> Vec<&str> {
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

/// The seed in a key file's text: a bare seed line (nsc's `.nk`), or the
/// seed block of a decorated file.
fn seed_in(text: &str) -> Option<&str> {
    let blocks = decorated_blocks(text);
    if let Some(s) = blocks.iter().find(|b| b.starts_with('S')) {
        return Some(s);
    }
    text.lines().map(str::trim).find(|l| {
        l.len() == 58 && (l.starts_with("SO") || l.starts_with("SA") || l.starts_with("SU"))
    })
}

/// Parses seed text (bare or decorated) into a key pair; `kind` if required.
pub fn key_from_text(
    text: &str,
    kind: Option<KeyKind>,
    origin: &str,
) -> Result<KeyPair, KeyFileError> {
    let seed = Seed::new(seed_in(text).unwrap_or(text));
    let key_err = |source| KeyFileError::Key {
        origin: origin.to_string(),
        source,
    };
    match kind {
        Some(k) => KeyPair::from_seed_of(k, &seed).map_err(key_err),
        None => KeyPair::from_seed(&seed).map_err(key_err),
    }
}

/// Loads a seed file (bare seed or decorated), requiring `kind` if given.
pub fn load_key_file(path: &Path, kind: Option<KeyKind>) -> Result<KeyPair, KeyFileError> {
    let meta = fs::metadata(path).map_err(io_err("reading", path))?;
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let bytes = Zeroizing::new(fs::read(path).map_err(io_err("reading", path))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyFileError::NoSeed {
        path: path.to_path_buf(),
    })?;
    if seed_in(text).is_none() && text.trim().is_empty() {
        return Err(KeyFileError::NoSeed {
            path: path.to_path_buf(),
        });
    }
    key_from_text(text, kind, &path.display().to_string())
}

/// Refuses a secret file that group or others may read or write (mode
/// bits `0o077`), naming the path and the fix; follows symbolic links.
pub fn check_private(path: &Path) -> Result<(), KeyFileError> {
    let meta = fs::metadata(path).map_err(io_err("reading", path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// [`load_key_file`] for a file that must be private: refused when group
/// or others may read or write it ([`check_private`]).
pub fn load_private_key_file(path: &Path, kind: Option<KeyKind>) -> Result<KeyPair, KeyFileError> {
    check_private(path)?;
    load_key_file(path, kind)
}

/// Loads a seed from environment variable `var`, requiring `kind` if given.
pub fn load_key_env(var: &str, kind: Option<KeyKind>) -> Result<KeyPair, KeyFileError> {
    let value = Zeroizing::new(std::env::var(var).unwrap_or_default());
    if value.trim().is_empty() {
        return Err(KeyFileError::EnvMissing {
            var: var.to_string(),
        });
    }
    key_from_text(&value, kind, &format!("environment variable {var}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/a/acc.nk");
        let kp = generate_key_file(KeyKind::Account, &path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let back = load_key_file(&path, Some(KeyKind::Account)).unwrap();
        assert_eq!(back.public_key(), kp.public_key());
        let err = load_key_file(&path, Some(KeyKind::User)).unwrap_err();
        assert!(err.to_string().contains("expected a user seed"), "{err}");
        assert!(!err.to_string().contains(kp.seed().expose()));
    }

    #[test]
    fn tightens_an_open_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(create_private_dir(&out).unwrap());
        assert!(!create_private_dir(&out).unwrap());
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, "").unwrap();
        assert!(matches!(
            load_key_file(&path, None),
            Err(KeyFileError::NoSeed { .. })
        ));
        fs::write(&path, "SAnotaseed\n").unwrap();
        assert!(matches!(
            load_key_file(&path, None),
            Err(KeyFileError::Key {
                source: KeyError::InvalidSeed,
                ..
            })
        ));
    }
}
