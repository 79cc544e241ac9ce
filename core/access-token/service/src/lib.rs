//! `access.token.core`: mints access tokens, the only tokens that travel
//! the bus as the actor of a request.
//!
//! Each replica holds its own ephemeral Ed25519 keys (never written
//! anywhere): the current one signs, the previous one still verifies the
//! tokens it signed, and a new one is listed in the JWKS at once but signs
//! only after an activation delay, so every verifier can know it before it
//! sees a token under it. Keys rotate every 6 h by default (2 h at least);
//! rotation is computed from the clock on each use ([`KeyRing`]), so no
//! timer can stall it.
//!
//! A token lives for the request's time budget, else 20 s, at most 15 min;
//! `exp` is that plus 5 s, `iat` 5 s ago. The claims given are kept and
//! `idp` (the input's `iss`), `iss`, `iat`, `exp` and `jti` are stamped last.
//! The header's `typ` is `at+jwt`, so no verifier takes it for a bearer
//! token. `Mint` checks nothing about its caller: its gate is the `:666`
//! grant, which only reviewed callers hold.

#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use access_token_core_api::{
    AccessTokenCore, AccessTokenCoreMulticastClient, AccessTokenCoreServer,
};
use buswarden::token::{self, ACCESS_ISSUER, ACCESS_TYP, Jwk, Jwks};
use buswarden::{Connector, Error, Request, Response};
use buswarden_token_signing::{TokenKey, new_jti, stamp, unix_now};
use serde_json::Value;

/// The default key rotation interval.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(6 * 3600);
/// The shortest rotation interval accepted.
pub const MIN_ROTATION: Duration = Duration::from_secs(2 * 3600);
/// How long a new key is listed before it signs.
pub const ACTIVATION_DELAY: Duration = Duration::from_secs(10);
/// A token's lifetime when the request carries no time budget.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(20);
/// The longest lifetime of a token.
pub const MAX_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Rotation under [`MIN_ROTATION`].
    #[error("key rotation every {0:?} is too often: at least 2h")]
    RotationTooShort(Duration),
}

/// How the service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Key rotation interval.
    pub rotation: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rotation: DEFAULT_ROTATION,
        }
    }
}

impl Config {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rotation < MIN_ROTATION {
            return Err(ConfigError::RotationTooShort(self.rotation));
        }
        Ok(())
    }
}

/// A replica's keys: the one that signs, the one before it, and a new one
/// waiting out its activation delay.
#[derive(Debug)]
pub struct KeyRing {
    current: Arc<TokenKey>,
    previous: Option<Arc<TokenKey>>,
    pending: Option<(Arc<TokenKey>, Instant)>,
    next_rotation: Instant,
    rotation: Duration,
    delay: Duration,
}

impl KeyRing {
    /// A ring with one fresh key, rotating every `rotation`, each new key
    /// signing `delay` after it is listed.
    pub fn new(now: Instant, rotation: Duration, delay: Duration) -> KeyRing {
        KeyRing::with_key(TokenKey::generate(), now, rotation, delay)
    }

    /// A ring whose first key is `key` (a replica that must sign with a key
    /// known in advance, as tests of verifiers do).
    pub fn with_key(key: TokenKey, now: Instant, rotation: Duration, delay: Duration) -> KeyRing {
        KeyRing {
            current: Arc::new(key),
            previous: None,
            pending: None,
            next_rotation: now + rotation,
            rotation,
            delay,
        }
    }

    /// Brings the ring to `now`: a due rotation lists a new key; a listed
    /// key whose delay has passed becomes the signing key (the old one
    /// becomes the previous key; the one before it is dropped).
    pub fn advance(&mut self, now: Instant) {
        loop {
            if let Some((_, at)) = &self.pending
                && now >= *at
            {
                let (key, _) = self.pending.take().unwrap_or_else(|| unreachable!());
                self.previous = Some(std::mem::replace(&mut self.current, key));
                continue;
            }
            if self.pending.is_none() && now >= self.next_rotation {
                let listed_at = self.next_rotation;
                self.pending = Some((Arc::new(TokenKey::generate()), listed_at + self.delay));
                self.next_rotation = listed_at + self.rotation;
                continue;
            }
            return;
        }
    }

    /// The key that signs now.
    pub fn signing(&self) -> Arc<TokenKey> {
        self.current.clone()
    }

    /// Every key a verifier may meet: current, pending, previous.
    pub fn listed(&self) -> Vec<Jwk> {
        let mut keys = vec![self.current.jwk()];
        if let Some((k, _)) = &self.pending {
            keys.push(k.jwk());
        }
        if let Some(k) = &self.previous {
            keys.push(k.jwk());
        }
        keys
    }
}

/// The service.
pub struct Service {
    svc: Connector,
    ring: Mutex<KeyRing>,
}

impl Service {
    /// A service with fresh keys.
    pub fn new(svc: Connector, config: &Config) -> Result<Service, ConfigError> {
        config.validate()?;
        Ok(Service {
            svc,
            ring: Mutex::new(KeyRing::new(
                Instant::now(),
                config.rotation,
                ACTIVATION_DELAY,
            )),
        })
    }

    /// A service signing with `ring`.
    pub fn with_ring(svc: Connector, ring: KeyRing) -> Service {
        Service {
            svc,
            ring: Mutex::new(ring),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, KeyRing> {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.advance(Instant::now());
        ring
    }
}

/// The lifetime of a token minted within `budget`.
pub fn lifetime(budget: Option<Duration>) -> Duration {
    budget
        .filter(|b| !b.is_zero())
        .unwrap_or(DEFAULT_LIFETIME)
        .min(MAX_LIFETIME)
}

impl AccessTokenCore for Service {
    async fn mint(&self, req: Request) -> Result<Response, Error> {
        let mut claims = token::mint_claims(&req)?;
        let budget = buswarden::context::current()
            .deadline
            .map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
        let life = lifetime(budget);
        let now = unix_now();
        let idp = claims.get("iss").cloned();
        let mut stamps = Vec::with_capacity(5);
        if let Some(idp) = idp {
            stamps.push(("idp", idp));
        }
        stamps.extend([
            ("iss", Value::from(format!("https://{ACCESS_ISSUER}"))),
            ("iat", Value::from(now - 5)),
            ("exp", Value::from(now + life.as_secs() as i64 + 5)),
            ("jti", Value::from(new_jti())),
        ]);
        stamp(&mut claims, stamps);
        let token = self.ring().signing().sign(ACCESS_TYP, &claims);
        Ok(token::minted_response(&token))
    }

    async fn jwks(&self, _req: Request) -> Result<Response, Error> {
        let mut joined = Jwks {
            keys: self.ring().listed(),
        };
        // Every replica's keys; a replica that fails to answer is left out
        // rather than failing the whole document.
        if let Ok(all) = AccessTokenCoreMulticastClient::new(&self.svc)
            .local_keys(Request::new())
            .await
        {
            for resp in all.into_iter().flatten() {
                if let Ok(keys) = token::jwks_of(&resp) {
                    for k in keys.keys {
                        if !joined.keys.iter().any(|have| have.kid == k.kid) {
                            joined.keys.push(k);
                        }
                    }
                }
            }
        }
        Ok(token::jwks_response(&joined))
    }

    async fn local_keys(&self, _req: Request) -> Result<Response, Error> {
        let keys = Jwks {
            keys: self.ring().listed(),
        };
        Ok(token::jwks_response(&keys))
    }
}

/// The service's connector (configured from the environment).
pub fn connector() -> Connector {
    Connector::new(ACCESS_ISSUER)
}

/// Serves the service on a connected connector.
pub async fn start(svc: &Connector, service: Service) -> Result<(), Error> {
    svc.serve(AccessTokenCoreServer::new(service)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_listed_at_once_and_signs_after_the_delay() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let delay = Duration::from_secs(10);
        let mut ring = KeyRing::new(t0, 2 * hour, delay);
        let first = ring.signing().kid().to_string();
        assert_eq!(ring.listed().len(), 1);

        ring.advance(t0 + 2 * hour);
        let listed: Vec<String> = ring.listed().into_iter().map(|k| k.kid).collect();
        assert_eq!(listed.len(), 2, "the new key is listed at once");
        assert_eq!(ring.signing().kid(), first, "but does not sign yet");
        let second = listed[1].clone();

        ring.advance(t0 + 2 * hour + delay);
        assert_eq!(ring.signing().kid(), second);
        let listed: Vec<String> = ring.listed().into_iter().map(|k| k.kid).collect();
        assert_eq!(
            listed,
            [second.clone(), first.clone()],
            "previous still listed"
        );

        // Next rotation: the first key leaves, the second is previous.
        ring.advance(t0 + 4 * hour + delay);
        let listed: Vec<String> = ring.listed().into_iter().map(|k| k.kid).collect();
        assert_eq!(listed.len(), 2);
        assert!(!listed.contains(&first));
        assert_eq!(listed[1], second);
    }

    #[test]
    fn a_long_pause_catches_up_without_skipping_the_delay_rule() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut ring = KeyRing::new(t0, 2 * hour, Duration::from_secs(10));
        // 10 rotations late: every missed rotation happened in order; the
        // newest key signs and its predecessor is still listed.
        ring.advance(t0 + 21 * hour);
        assert_eq!(ring.listed().len(), 2);
    }

    #[test]
    fn lifetimes_follow_the_budget_within_bounds() {
        assert_eq!(lifetime(None), DEFAULT_LIFETIME);
        assert_eq!(lifetime(Some(Duration::ZERO)), DEFAULT_LIFETIME);
        assert_eq!(
            lifetime(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(lifetime(Some(Duration::from_secs(3600))), MAX_LIFETIME);
    }

    #[test]
    fn rotation_under_two_hours_is_refused() {
        let c = Config {
            rotation: Duration::from_secs(3600),
        };
        assert!(c.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }
}
