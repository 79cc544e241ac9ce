//! `buswarden-token-signing`: what the two token services share on the
//! signing side. A [`TokenKey`] is an Ed25519 key with its key id (derived
//! from the public key, so it cannot collide by accident or be chosen by a
//! caller); it signs compact EdDSA JWTs whose header names `alg`, `kid` and
//! `typ`, and describes itself as the JWK the verifiers read
//! (`buswarden::token::Jwk`). [`stamp`] sets the claims an issuer owns,
//! last, over whatever the input said. Key files are PKCS#8, as PEM or as
//! base64 DER, and are refused when anyone but the owner can read them.
//! Seeds never reach a log line or a `Debug` output. [`shutdown_signal`] is
//! how the service binaries end.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use buswarden::token::Jwk;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// The largest key file read, in bytes.
pub const MAX_KEY_FILE: u64 = 16 * 1024;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}): chmod 600 it; a signing key is a secret"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Too large to be a key.
    #[error("key file {path} is over {MAX_KEY_FILE} bytes: not a key")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// Not an Ed25519 PKCS#8 key in PEM or base64 DER.
    #[error(
        "key file {path} holds no Ed25519 PKCS#8 key (PEM `BEGIN PRIVATE KEY`, or base64 of the DER)"
    )]
    Format {
        /// The file.
        path: String,
    },
}

/// An Ed25519 signing key and its key id.
pub struct TokenKey {
    kid: String,
    key: SigningKey,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> TokenKey {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rand::fill(&mut seed[..]);
        TokenKey::from_signing_key(SigningKey::from_bytes(&seed))
    }

    /// Wraps a key; its id is derived from the public key.
    pub fn from_signing_key(key: SigningKey) -> TokenKey {
        let digest = Sha256::digest(key.verifying_key().as_bytes());
        TokenKey {
            kid: URL_SAFE_NO_PAD.encode(&digest[..12]),
            key,
        }
    }

    /// Parses PKCS#8 text: PEM, or base64 of the DER.
    pub fn from_pkcs8_text(text: &str) -> Option<TokenKey> {
        let text = text.trim();
        let key = if text.starts_with("-----BEGIN") {
            SigningKey::from_pkcs8_pem(text).ok()?
        } else {
            let der = zeroize::Zeroizing::new(STANDARD.decode(text).ok()?);
            SigningKey::from_pkcs8_der(&der).ok()?
        };
        Some(TokenKey::from_signing_key(key))
    }

    /// Reads a key file (0600 or stricter).
    pub fn from_file(path: &Path) -> Result<TokenKey, KeyError> {
        let shown = path.display().to_string();
        let read = |source| KeyError::Read {
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions { path: shown, mode });
            }
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(KeyError::TooLarge { path: shown });
        }
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(read)?);
        TokenKey::from_pkcs8_text(&text).ok_or(KeyError::Format { path: shown })
    }

    /// The key as PKCS#8 PEM (to write a development key file).
    pub fn to_pkcs8_pem(&self) -> zeroize::Zeroizing<String> {
        self.key
            .to_pkcs8_pem(Default::default())
            .map(|pem| zeroize::Zeroizing::new(pem.to_string()))
            .unwrap_or_default()
    }

    /// The key id tokens name.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        Jwk::ed25519(&self.key.verifying_key(), self.kid.clone())
    }

    /// A compact EdDSA JWT of `claims` with header `typ`.
    pub fn sign(&self, typ: &str, claims: &Map<String, Value>) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "kid": self.kid, "typ": typ});
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string()));
        let sig = self.key.sign(out.as_bytes());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        out
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh token id: 128 random bits, base64url.
pub fn new_jti() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<u128>().to_be_bytes())
}

/// Sets the claims an issuer owns, over anything the input said: `iss`,
/// `iat`, `exp`, `jti` and whatever else `stamps` lists (in order, last
/// wins).
pub fn stamp(
    claims: &mut Map<String, Value>,
    stamps: impl IntoIterator<Item = (&'static str, Value)>,
) {
    for (k, v) in stamps {
        claims.remove(k);
        claims.insert(k.to_string(), v);
    }
}

/// Resolves on SIGINT or SIGTERM: how the token service binaries end.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_with_its_jwk_only() {
        let key = TokenKey::generate();
        let other = TokenKey::generate();
        assert_ne!(key.kid(), other.kid());
        let mut claims = Map::new();
        claims.insert("sub".into(), "u1".into());
        let token = key.sign("at+jwt", &claims);
        let t = buswarden::token::decode(&token).unwrap();
        assert_eq!(t.header.kid, key.kid());
        assert_eq!(t.header.typ, "at+jwt");
        assert!(t.verify(&key.jwk().verifying_key().unwrap()).is_ok());
        assert!(t.verify(&other.jwk().verifying_key().unwrap()).is_err());
        let payload: Value = serde_json::from_slice(&t.payload).unwrap();
        assert_eq!(payload["sub"], "u1");
    }

    #[test]
    fn key_files_round_trip_and_refuse_loose_modes() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = TokenKey::generate();
        let pem = dir.path().join("key.pem");
        std::fs::write(&pem, key.to_pkcs8_pem().as_bytes()).unwrap();
        std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(TokenKey::from_file(&pem).unwrap().kid(), key.kid());
        // base64 of the DER, as the reference allows.
        let pem_text = key.to_pkcs8_pem();
        let body: String = pem_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let b64 = dir.path().join("key.b64");
        std::fs::write(&b64, body).unwrap();
        std::fs::set_permissions(&b64, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(TokenKey::from_file(&b64).unwrap().kid(), key.kid());
        std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            TokenKey::from_file(&pem),
            Err(KeyError::Permissions { .. })
        ));
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not a key").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = TokenKey::from_file(&junk).unwrap_err().to_string();
        assert!(e.contains("no Ed25519 PKCS#8 key"), "{e}");
        assert!(!format!("{key:?}").contains(&body_of(&key)));
    }

    fn body_of(key: &TokenKey) -> String {
        key.to_pkcs8_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect()
    }

    #[test]
    fn stamps_win_over_input_claims() {
        let mut claims = Map::new();
        claims.insert("iss".into(), "https://evil.example".into());
        claims.insert("roles".into(), serde_json::json!(["a"]));
        stamp(
            &mut claims,
            [("iss", Value::from("https://access.token.core"))],
        );
        assert_eq!(claims["iss"], "https://access.token.core");
        assert_eq!(claims["roles"], serde_json::json!(["a"]));
    }
}
