//! The bearer -> access token exchange at the gate.
//!
//! A bearer token is verified against bearer.token.core's own JWKS (the
//! runtime's [`TokenVerifier`] pinned to that issuer: `typ` `JWT`, EdDSA,
//! `exp` required, keys fetched over the bus from the issuer only); its
//! claims are then minted into an access token at access.token.core's
//! `Mint` (`:666`), which becomes the actor of the bus call. Any failure is
//! a 401: a request with a present but invalid bearer token never goes on
//! anonymously.
//!
//! A minted access token is reused for the same bearer token while more
//! than half of its life is left, so the ingress does not call `:666` once
//! per request (and one verifier, with its key and token caches, serves
//! every request).

use buswarden::actor::{Actor, TokenVerifier};
use buswarden::{Connector, Error, token};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Minted tokens remembered at most.
const MAX_MINTED: usize = 10_000;

struct Minted {
    token: Arc<str>,
    issued: i64,
    expires: i64,
}

/// The exchange: the bearer verifier and the minted tokens.
pub struct Exchange {
    verifier: TokenVerifier,
    minted: Mutex<HashMap<String, Minted>>,
    /// Mints in flight, one per bearer token: concurrent first requests
    /// with one token wait for a single `Mint`.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    mints: AtomicU64,
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange {
            verifier: bearer_token_core_api::verifier(),
            minted: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            mints: AtomicU64::new(0),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Exchange {
    /// Calls made to access.token.core's `Mint` so far.
    pub fn mints(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }

    /// Verifies `bearer` (a 401 when it does not verify).
    pub async fn verify(&self, svc: &Connector, bearer: &str) -> Result<Arc<Actor>, Error> {
        if bearer.is_empty() {
            return Err(Error::status(401, "an empty bearer token"));
        }
        bearer_token_core_api::verify(&self.verifier, svc, bearer).await
    }

    /// The access token for a verified `bearer`: a reused one while more
    /// than half its life is left, else a new one from `Mint`.
    pub async fn access_token(&self, svc: &Connector, bearer: &str) -> Result<Arc<str>, Error> {
        if let Some(t) = self.reusable(bearer) {
            return Ok(t);
        }
        let flight = self
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(bearer.to_string())
            .or_default()
            .clone();
        let minted = {
            let _one = flight.lock().await;
            match self.reusable(bearer) {
                Some(t) => Ok(t),
                None => self.mint(svc, bearer).await,
            }
        };
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        // The map's and ours: nobody else waits on this flight.
        if Arc::strong_count(&flight) <= 2 {
            flights.remove(bearer);
        }
        minted
    }

    /// The minted token for `bearer` while more than half its life is left.
    fn reusable(&self, bearer: &str) -> Option<Arc<str>> {
        let now = unix_now();
        let minted = self.minted.lock().unwrap_or_else(|e| e.into_inner());
        let m = minted.get(bearer)?;
        ((m.expires - now) * 2 > (m.expires - m.issued)).then(|| m.token.clone())
    }

    async fn mint(&self, svc: &Connector, bearer: &str) -> Result<Arc<str>, Error> {
        let payload = token::decode(bearer)
            .map_err(|e| Error::status(401, e.to_string()))?
            .payload;
        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|e| Error::status(401, format!("bearer token claims: {e}")))?;
        self.mints.fetch_add(1, Ordering::Relaxed);
        let minted = access_token_core_api::mint(svc, &claims)
            .await
            .map_err(|e| {
                Error::status(401, format!("the token exchange failed: {}", e.message()))
            })?;
        let issued = unix_now();
        let expires = token::decode(&minted)
            .ok()
            .and_then(|t| serde_json::from_slice::<Value>(&t.payload).ok())
            .and_then(|v: Value| v.get("exp").and_then(Value::as_i64))
            .unwrap_or(issued);
        let minted: Arc<str> = Arc::from(minted);
        let mut map = self.minted.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_MINTED {
            map.retain(|_, m| m.expires > issued);
            if map.len() >= MAX_MINTED {
                map.clear();
            }
        }
        map.insert(
            bearer.to_string(),
            Minted {
                token: minted.clone(),
                issued,
                expires,
            },
        );
        Ok(minted)
    }
}
