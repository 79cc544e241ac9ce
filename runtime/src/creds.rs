//! The `.creds` file and the NATS auth callback that reads it.
//!
//! The file is read at EVERY connect and reconnect (async-nats calls the
//! callback with the server's nonce each time), so a renewed file written
//! before the old JWT expires is picked up by the next reconnect. The seed
//! never leaves this module: errors name the file and the problem, never its
//! content.

use crate::error::Error;
use std::path::{Path, PathBuf};

/// The two secrets of a `.creds` file.
pub struct UserCreds {
    /// The user JWT.
    pub jwt: String,
    seed: String,
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
    /// Parses the text of a `.creds` file: the first line after a
    /// `-----BEGIN NATS USER JWT-----` line, and the first after
    /// `-----BEGIN USER NKEY SEED-----`; other lines are ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut jwt = None;
        let mut seed = None;
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if !(line.starts_with("-----BEGIN") && line.ends_with("-----")) {
                continue;
            }
            let value = lines.by_ref().find(|l| !l.is_empty()).unwrap_or_default();
            if line.contains("JWT") && jwt.is_none() {
                jwt = Some(value.to_string());
            } else if line.contains("SEED") && seed.is_none() {
                seed = Some(value.to_string());
            }
        }
        let jwt = jwt
            .filter(|j| !j.is_empty() && !j.starts_with('-'))
            .ok_or("no user JWT block")?;
        let seed = seed
            .filter(|s| s.starts_with("SU"))
            .ok_or("no user nkey seed block (a seed starting with SU)")?;
        Ok(UserCreds { jwt, seed })
    }

    /// Reads and parses a file.
    pub async fn read(path: &Path) -> Result<Self, Error> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| Error::Creds {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        UserCreds::parse(&text).map_err(|reason| Error::Creds {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Signs the server nonce: the auth answer for CONNECT.
    pub fn sign(&self, nonce: &[u8]) -> Result<async_nats::Auth, String> {
        let kp = nkeys::KeyPair::from_seed(&self.seed)
            .map_err(|_| "the nkey seed is not a valid user seed".to_string())?;
        let signature = kp
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

    fn file(jwt: &str, seed: &str) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        )
    }

    #[test]
    fn parses_and_signs_without_showing_the_seed() {
        let kp = nkeys::KeyPair::new_user();
        let seed = kp.seed().unwrap();
        let creds = UserCreds::parse(&file("eyJhbGciOi.x.y", &seed)).unwrap();
        assert_eq!(creds.jwt, "eyJhbGciOi.x.y");
        assert!(!format!("{creds:?}").contains(&seed));
        let auth = creds.sign(b"nonce").unwrap();
        kp.verify(b"nonce", &auth.signature.unwrap()).unwrap();
    }

    #[test]
    fn refuses_files_without_both_blocks() {
        assert!(UserCreds::parse("nothing here").is_err());
        assert!(UserCreds::parse(&file("a.b.c", "not-a-seed")).is_err());
        let kp = nkeys::KeyPair::new_user();
        let err = UserCreds::parse(&file("", &kp.seed().unwrap())).unwrap_err();
        assert!(err.contains("JWT"));
    }
}
