//! Sealing of deploy signing seeds at rest: XChaCha20-Poly1305 under a
//! key-encryption key (KEK) read from a 0600 file. A seed is sealed before
//! any store write and opened only in memory, for the moment it signs.
//!
//! Sealed form: `1 ‖ 24-byte random nonce ‖ ciphertext ‖ 16-byte tag`. The
//! additional authenticated data binds a sealed seed to its deploy id and
//! signing public key, so a sealed blob copied onto another record does not
//! open.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why the KEK could not be loaded or a seed could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The KEK file could not be read or written.
    #[error("key-encryption key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The KEK file is readable or writable by group or others.
    #[error("key-encryption key file {path} has mode {mode:o}; it must be 0600 (chmod 600)")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The KEK file does not hold 32 bytes (raw, or 64 hex characters).
    #[error("key-encryption key file {path} must hold 32 bytes (raw or 64 hex characters)")]
    BadKey {
        /// The file.
        path: PathBuf,
    },
    /// The random source failed.
    #[error("no randomness for a nonce")]
    Random,
    /// Encryption failed.
    #[error("sealing failed")]
    Seal,
    /// The sealed blob is malformed, was sealed under another KEK, or was
    /// moved onto another record.
    #[error("sealed seed does not open (wrong key-encryption key or tampered record)")]
    Open,
}

/// The key-encryption key. Its bytes never appear in Debug output.
pub struct Kek {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// Reads the KEK from `path`, refusing a file that group or others may
    /// read or write.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let io = |source| SealError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SealError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let raw = Zeroizing::new(fs::read(path).map_err(io)?);
        let key = Self::parse(&raw).ok_or_else(|| SealError::BadKey {
            path: path.to_path_buf(),
        })?;
        Ok(Self::from_bytes(&key))
    }

    fn parse(raw: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if raw.len() == KEY_LEN {
            key.copy_from_slice(raw);
            return Some(key);
        }
        let text = std::str::from_utf8(raw).ok()?.trim();
        hex::decode_to_slice(text, &mut key[..]).ok()?;
        Some(key)
    }

    /// A KEK from raw bytes.
    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Writes a fresh random KEK (64 hex characters) to `path`, mode 0600,
    /// refusing to overwrite an existing file.
    pub fn generate_file(path: &Path) -> Result<(), SealError> {
        let io = |source| SealError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(&mut key[..]).map_err(|_| SealError::Random)?;
        let text = Zeroizing::new(hex::encode(&key[..]));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Seals `secret` for the record named by `context`.
    pub fn seal(&self, secret: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let ct = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a blob sealed by [`Kek::seal`] with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Open)?;
        if version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Open)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

const CHECK_TEXT: &[u8] = b"buswarden-kek-check";

impl Kek {
    /// A fixed text sealed under this KEK, stored with the account so that
    /// [`Kek::verify_check`] can tell at start whether the KEK is the one
    /// the store was sealed with.
    pub fn make_check(&self) -> Result<Vec<u8>, SealError> {
        self.seal(CHECK_TEXT, CHECK_TEXT)
    }

    /// Whether `check` (from [`Kek::make_check`]) opens under this KEK.
    pub fn verify_check(&self, check: &[u8]) -> bool {
        self.open(check, CHECK_TEXT)
            .is_ok_and(|plain| plain.as_slice() == CHECK_TEXT)
    }
}

/// The additional data that binds a deploy's sealed seed to its record.
pub fn deploy_context(deploy: &str, signing_key: &str) -> Vec<u8> {
    format!("buswarden-deploy-seed\0{deploy}\0{signing_key}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let kek = Kek::from_bytes(&[7u8; 32]);
        let sealed = kek.seal(b"secret seed", b"ctx-a").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"secret seed"));
        assert_eq!(&kek.open(&sealed, b"ctx-a").unwrap()[..], b"secret seed");
        assert!(matches!(kek.open(&sealed, b"ctx-b"), Err(SealError::Open)));
        let other = Kek::from_bytes(&[8u8; 32]);
        assert!(matches!(
            other.open(&sealed, b"ctx-a"),
            Err(SealError::Open)
        ));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            kek.open(&tampered, b"ctx-a"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            kek.open(&[1, 2, 3], b"ctx-a"),
            Err(SealError::Open)
        ));
    }

    #[test]
    fn kek_file_must_be_private_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        Kek::generate_file(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let kek = Kek::load(&path).unwrap();
        assert_eq!(format!("{kek:?}"), "Kek(<redacted>)");
        assert!(Kek::generate_file(&path).is_err(), "never overwrites");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Kek::load(&path),
            Err(SealError::Permissions { mode: 0o644, .. })
        ));
        let bad = dir.path().join("bad");
        fs::write(&bad, "not a key").unwrap();
        fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(Kek::load(&bad), Err(SealError::BadKey { .. })));
    }
}
