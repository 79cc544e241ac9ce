//! `bearer.token.core`: mints the long-lived bearer tokens external clients
//! hold (after a login, say). A bearer token never travels the bus as an
//! actor; the ingress verifies it against this issuer's JWKS and exchanges
//! it for an access token.
//!
//! Keys come from files (PKCS#8, PEM or base64 DER, mode 0600 or stricter):
//! the key that signs and an alternate listed beside it, so a key can be
//! replaced without invalidating the tokens in circulation (promote the
//! alternate, then retire the old key). Keys are generated in memory only in
//! development mode; they are never logged. Tokens live for the configured
//! TTL (720 h by default); `iss`, `iat` (5 min ago), `exp` and `jti` are
//! stamped last over the claims given; the header's `typ` is `JWT`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use bearer_token_core_api::{BearerTokenCore, BearerTokenCoreServer};
use buswarden::token::{self, BEARER_ISSUER, BEARER_TYP, Jwks};
use buswarden::{Connector, Error, Request, Response};
use buswarden_token_signing::{KeyError, TokenKey, new_jti, stamp, unix_now};
use serde_json::Value;

/// The default lifetime of a bearer token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(720 * 3600);

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The key that signs.
    pub key_file: Option<PathBuf>,
    /// The alternate key, listed in the JWKS (it signs nothing).
    pub alt_key_file: Option<PathBuf>,
    /// Token lifetime ([`DEFAULT_TTL`] when `None`).
    pub ttl: Option<Duration>,
    /// Development mode: without key files, generate keys in memory.
    pub development: bool,
}

/// Keys that cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No key file outside development mode.
    #[error(
        "no signing key: set the key file (BUSWARDEN_BEARER_KEY_FILE); keys are generated only in development mode"
    )]
    NoKey,
    /// A key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A zero TTL.
    #[error("a bearer token TTL of zero mints expired tokens")]
    ZeroTtl,
}

/// The service.
#[derive(Debug)]
pub struct Service {
    key: TokenKey,
    alt: Option<TokenKey>,
    ttl: Duration,
}

impl Service {
    /// Loads the keys.
    pub fn new(config: &Config) -> Result<Service, ConfigError> {
        let ttl = config.ttl.unwrap_or(DEFAULT_TTL);
        if ttl.is_zero() {
            return Err(ConfigError::ZeroTtl);
        }
        let key = match &config.key_file {
            Some(path) => TokenKey::from_file(path)?,
            None if config.development => TokenKey::generate(),
            None => return Err(ConfigError::NoKey),
        };
        let alt = match &config.alt_key_file {
            Some(path) => Some(TokenKey::from_file(path)?),
            None if config.development && config.key_file.is_none() => Some(TokenKey::generate()),
            None => None,
        };
        Ok(Service { key, alt, ttl })
    }

    /// The JWKS document: the key, then the alternate.
    pub fn keys(&self) -> Jwks {
        Jwks {
            keys: std::iter::once(&self.key)
                .chain(self.alt.as_ref())
                .map(TokenKey::jwk)
                .collect(),
        }
    }
}

impl BearerTokenCore for Service {
    async fn mint(&self, req: Request) -> Result<Response, Error> {
        let mut claims = token::mint_claims(&req)?;
        let now = unix_now();
        stamp(
            &mut claims,
            [
                ("iss", Value::from(format!("https://{BEARER_ISSUER}"))),
                ("iat", Value::from(now - 300)),
                ("exp", Value::from(now + self.ttl.as_secs() as i64)),
                ("jti", Value::from(new_jti())),
            ],
        );
        let token = self.key.sign(BEARER_TYP, &claims);
        Ok(token::minted_response(&token))
    }

    async fn jwks(&self, _req: Request) -> Result<Response, Error> {
        Ok(token::jwks_response(&self.keys()))
    }
}

/// The service's connector (configured from the environment).
pub fn connector() -> Connector {
    Connector::new(BEARER_ISSUER)
}

/// Serves the service on a connected connector.
pub async fn start(svc: &Connector, service: Service) -> Result<(), Error> {
    svc.serve(BearerTokenCoreServer::new(service)).await
}
