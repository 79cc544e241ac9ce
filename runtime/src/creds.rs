//! The `.creds` file and the NATS auth callback that reads it.
//!
//! The file is read with the project's one strict reader
//! ([`buswarden_creds::creds::parse_creds`]), the same one `busop audit`
//! and `inspect` use, and the JWT and seed it finds are handed to async-nats
//! through the auth callback: async-nats never parses the file itself, so
//! what connects is exactly what the audit saw. A file the reader does not
//! accept exactly is refused at connect.
//!
//! The file is read at EVERY connect and reconnect (async-nats calls the
//! callback with the server's nonce each time), so a renewed file written
//! before the old JWT expires is picked up by the next reconnect. The seed
//! never leaves this module: errors name the file and the problem, never its
//! content.

use crate::error::Error;
use buswarden_creds::creds::{MAX_CREDS_LEN, UserCredentials, parse_creds};
use std::path::{Path, PathBuf};

/// The two secrets of a `.creds` file.
pub struct UserCreds {
    /// The user JWT.
    pub jwt: String,
    creds: UserCredentials,
}

impl std::fmt::Debug for UserCreds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCreds")
            .field("jwt", &self.jwt)
            .field("seed", &"<redacted>")
            .finish()
    }
}

impl UserCreds {
    /// Parses the bytes of a `.creds` file with the strict reader.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let creds = parse_creds(bytes).map_err(|e| e.to_string())?;
        Ok(UserCreds {
            jwt: creds.jwt.clone(),
            creds,
        })
    }

    /// Reads and parses a file (refusing one over the reader's size limit
    /// before reading it whole).
    pub async fn read(path: &Path) -> Result<Self, Error> {
        use tokio::io::AsyncReadExt as _;
        let creds_err = |reason: String| Error::Creds {
            path: path.to_path_buf(),
            reason,
        };
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| creds_err(e.to_string()))?;
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        file.take(MAX_CREDS_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| creds_err(e.to_string()))?;
        UserCreds::parse(&bytes).map_err(creds_err)
    }

    /// Signs the server nonce: the auth answer for CONNECT.
    pub fn sign(&self, nonce: &[u8]) -> Result<async_nats::Auth, String> {
        let signature = self
            .creds
            .key
            .sign(nonce)
            .map_err(|_| "signing the server nonce failed".to_string())?;
        let mut auth = async_nats::Auth::new();
        auth.jwt = Some(self.jwt.clone());
        auth.signature = Some(signature);
        Ok(auth)
    }
}

/// The future an auth callback returns.
pub(crate) type AuthFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<async_nats::Auth, async_nats::AuthError>>
            + Send
            + Sync,
    >,
>;

/// The auth callback for `path`: reads, parses and signs at each call.
pub(crate) fn auth_callback(
    path: PathBuf,
) -> impl Fn(Vec<u8>) -> AuthFuture + Send + Sync + 'static {
    move |nonce: Vec<u8>| {
        let path = path.clone();
        Box::pin(async move {
            let creds = UserCreds::read(&path)
                .await
                .map_err(|e| async_nats::AuthError::new(e.to_string()))?;
            creds.sign(&nonce).map_err(async_nats::AuthError::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buswarden_creds::keys::{KeyKind, KeyPair};

    #[test]
    fn parses_and_signs_without_showing_the_seed() {
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let file = buswarden_creds::creds::format_user_config("eyJhbGciOi.x.y", &seed);
        let creds = UserCreds::parse(&file).unwrap();
        assert_eq!(creds.jwt, "eyJhbGciOi.x.y");
        assert!(!format!("{creds:?}").contains(seed.expose()));
        let auth = creds.sign(b"nonce").unwrap();
        assert!(buswarden_creds::keys::verify(
            kp.public_key(),
            b"nonce",
            &auth.signature.unwrap()
        ));
    }

    #[test]
    fn refuses_what_the_strict_reader_refuses() {
        assert!(UserCreds::parse(b"nothing here").is_err());
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let good = buswarden_creds::creds::format_user_config("a.b.c", &seed);
        let text = String::from_utf8(good.to_vec()).unwrap();
        // A decoy before a blank line after the marker: refused, not read
        // differently from the audit.
        let decoy = text.replacen(
            "-----BEGIN NATS USER JWT-----\n",
            "-----BEGIN NATS USER JWT-----\n\nw.i.de\n",
            1,
        );
        let err = UserCreds::parse(decoy.as_bytes()).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains(seed.expose()));
        let err = UserCreds::parse(text.replace('\n', "\r\n").as_bytes()).unwrap_err();
        assert!(err.contains("CR"), "{err}");
    }
}
