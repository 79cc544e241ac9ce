//! Verification of the actor token a request carries, and the required
//! claims of endpoints checked against what it verifies to.
//!
//! Only access tokens are bus actors: the header's `typ` must be `at+jwt`
//! and `iss` must be `access.token.core` (with or without `https://`); a
//! bearer token, or a token claiming any other issuer, is refused before any
//! key is looked at. `alg` is pinned to EdDSA, `exp` is required (with
//! [`CLOCK_SKEW`] of allowance) and the signature must verify with a key that
//! access.token.core itself served on `:888/jwks`: keys are fetched only
//! from that issuer, over the bus, so a key is bound to the issuer that
//! served it and no other issuer's key can verify these tokens.
//!
//! Fetches are single-flight, and after a successful fetch the next one
//! waits [`FETCH_COOLDOWN`] (a failed fetch leaves no cooldown): a flood of
//! tokens naming unknown key ids costs at most one fetch per cooldown. A key
//! not seen in the issuer's JWKS for [`KEY_EVICTION`] (the longest token
//! lifetime plus the skew) is forgotten, so a key that left the JWKS stops
//! verifying without a restart. A token that verified is kept (by its text,
//! until its `exp`), so a token seen again costs a map lookup, not a
//! signature check.
//!
//! Every refusal is a 401; claims that do not satisfy an endpoint are a 403.
//! Only endpoints that declare required claims verify (and so fetch keys):
//! gencreds grants a service the JWKS fetch from those declarations.
//!
//! The same verifier, bound to bearer.token.core instead ([`Issuer::Bearer`],
//! `typ` `JWT`), is what the edge uses to check a bearer token before it
//! exchanges it for an access token ([`TokenVerifier`]); the JWKS fetch is
//! then the caller's own typed call, so gencreds sees it in the caller's
//! code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::claims::{Check, Claims};
use crate::connector::Connector;
use crate::context::Frame;
use crate::error::Error;
use crate::token::{self, ACCESS_ISSUER, ACCESS_TYP, BEARER_ISSUER, BEARER_TYP, Jwks};

/// A pinned issuer: the hostname its tokens name in `iss` (with or without
/// `https://`) and serve their keys from, and the header `typ` it stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// access.token.core: `typ` `at+jwt`, the bus actor.
    Access,
    /// bearer.token.core: `typ` `JWT`, held by external clients, checked at
    /// the edge only.
    Bearer,
}

impl Issuer {
    /// The issuer's hostname.
    pub fn host(self) -> &'static str {
        match self {
            Issuer::Access => ACCESS_ISSUER,
            Issuer::Bearer => BEARER_ISSUER,
        }
    }

    /// The header `typ` of its tokens.
    pub fn typ(self) -> &'static str {
        match self {
            Issuer::Access => ACCESS_TYP,
            Issuer::Bearer => BEARER_TYP,
        }
    }
}

/// Clock skew allowed on `exp`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(10);
/// The least time between two successful JWKS fetches.
pub const FETCH_COOLDOWN: Duration = Duration::from_secs(1);
/// How long a key absent from the issuer's JWKS still verifies: the longest
/// access token lifetime (15 min, plus its 5 s) and the skew.
pub const KEY_EVICTION: Duration = Duration::from_secs(15 * 60 + 5 + 10);
/// Verified tokens remembered at most.
pub const VERIFIED_CACHE: usize = 4096;
/// How long a JWKS fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A verified actor.
#[derive(Debug)]
pub struct Actor {
    /// The token's claims, flattened.
    pub claims: Claims,
    /// `sub`, when the token names one.
    pub subject: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires: i64,
}

/// Why an actor token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorError {
    /// Not a well-formed EdDSA JWT.
    #[error("malformed actor token: {0}")]
    Malformed(String),
    /// A token of another kind or issuer than the one pinned (a bearer
    /// token offered as an actor, a token claiming another issuer).
    #[error("not a token of {0}: {1}")]
    WrongIssuer(&'static str, String),
    /// `exp` has passed.
    #[error("actor token expired")]
    Expired,
    /// No key of the issuer has this id.
    #[error("no key {1:?} in the JWKS of {0}")]
    UnknownKey(&'static str, String),
    /// The signature does not verify.
    #[error("actor token signature does not verify")]
    Signature,
}

impl From<ActorError> for Error {
    fn from(e: ActorError) -> Error {
        Error::status(401, e.to_string())
    }
}

struct KnownKey {
    key: VerifyingKey,
    last_seen: Instant,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, KnownKey>,
    last_fetch: Option<Instant>,
    verified: HashMap<String, Arc<Actor>, TailHash>,
}

/// Hashes a verified token by the last bytes of its text: the signature,
/// random-looking and different in every token, so a lookup costs a short
/// hash instead of SipHash over the whole ~400-byte text (equality still
/// compares the whole text). Only tokens whose signature verified are ever
/// inserted, so nobody can fill the map with colliding entries.
#[derive(Clone, Copy, Default)]
struct TailHash;

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(0)
    }
}

/// See [`TailHash`].
struct TailHasher(u64);

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(TAIL_HASHED)..];
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, _: u8) {
        // `str`'s terminator byte: nothing to mix.
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// How many trailing bytes of a token [`TailHash`] reads (the base64url
/// Ed25519 signature is 86).
const TAIL_HASHED: usize = 32;

/// The keys and verified tokens of one pinned issuer. A connector holds one
/// for access.token.core; the edge holds one for bearer.token.core.
pub struct TokenVerifier {
    issuer: Issuer,
    state: Mutex<State>,
    fetching: tokio::sync::Mutex<()>,
    eviction_ms: AtomicU64,
    fetches: AtomicU64,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

impl Default for TokenVerifier {
    fn default() -> Self {
        TokenVerifier::new(Issuer::Access)
    }
}

#[derive(Deserialize)]
struct Registered {
    iss: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    sub: Option<serde_json::Value>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl TokenVerifier {
    /// A verifier pinned to `issuer`, knowing no key yet.
    pub fn new(issuer: Issuer) -> TokenVerifier {
        TokenVerifier {
            issuer,
            state: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
            eviction_ms: AtomicU64::new(KEY_EVICTION.as_millis() as u64),
            fetches: AtomicU64::new(0),
        }
    }

    /// The issuer it is pinned to.
    pub fn issuer(&self) -> Issuer {
        self.issuer
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn eviction(&self) -> Duration {
        Duration::from_millis(self.eviction_ms.load(Ordering::Relaxed))
    }

    /// How long a key absent from the issuer's JWKS still verifies.
    pub fn set_eviction(&self, after: Duration) {
        self.eviction_ms
            .store(after.as_millis() as u64, Ordering::Relaxed);
    }

    /// JWKS fetches made so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The actor `text` verified to before, while it has not expired.
    pub(crate) fn cached(&self, text: &str) -> Option<Arc<Actor>> {
        let skew = CLOCK_SKEW.as_secs() as i64;
        let state = self.state();
        let actor = state.verified.get(text)?;
        (actor.expires.saturating_add(skew) >= unix_now()).then(|| actor.clone())
    }

    /// Verifies `text` as an access token, fetching access.token.core's
    /// keys with `svc` (a raw call granted from `claims` declarations).
    pub(crate) async fn verify_actor(
        &self,
        svc: &Connector,
        text: &str,
    ) -> Result<Arc<Actor>, ActorError> {
        let host = self.issuer.host();
        self.verify(text, || async move {
            let url = format!("https://{host}:888/jwks");
            // A fetch of its own: no actor, baggage or budget of the request
            // being handled travels with it.
            let resp = Frame::default()
                .scope(svc.post(&url, Vec::new()).timeout(FETCH_TIMEOUT).send())
                .await?;
            token::jwks_of(&resp)
        })
        .await
    }

    /// Verifies `text` as a token of the pinned issuer. `fetch` gets the
    /// issuer's JWKS when a key id is unknown (single flight, at most once
    /// per [`FETCH_COOLDOWN`]); it must ask the issuer itself over the bus
    /// (e.g. `bearer_token_core_api::jwks`), which binds keys to the issuer.
    pub async fn verify<F, Fut>(&self, text: &str, fetch: F) -> Result<Arc<Actor>, ActorError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Jwks, Error>>,
    {
        if let Some(actor) = self.cached(text) {
            return Ok(actor);
        }
        let now = unix_now();
        let skew = CLOCK_SKEW.as_secs() as i64;
        let t = token::decode(text).map_err(|e| ActorError::Malformed(e.to_string()))?;
        let (host, typ) = (self.issuer.host(), self.issuer.typ());
        if t.header.typ != typ {
            let why = match self.issuer {
                Issuer::Access => format!(
                    "typ {:?} (bearer tokens never travel the bus)",
                    t.header.typ
                ),
                Issuer::Bearer => format!("typ {:?}, not {typ:?}", t.header.typ),
            };
            return Err(ActorError::WrongIssuer(host, why));
        }
        let reg: Registered = serde_json::from_slice(&t.payload)
            .map_err(|_| ActorError::Malformed("payload is not a JSON object".into()))?;
        let iss = reg
            .iss
            .as_ref()
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if iss.strip_prefix("https://").unwrap_or(iss) != host {
            return Err(ActorError::WrongIssuer(host, format!("iss {iss:?}")));
        }
        let expires = reg
            .exp
            .as_ref()
            .and_then(|v| v.as_i64())
            .ok_or_else(|| ActorError::Malformed("no numeric exp".into()))?;
        if expires.saturating_add(skew) < now {
            return Err(ActorError::Expired);
        }
        let key = self.key(&t.header.kid, fetch).await?;
        t.verify(&key).map_err(|_| ActorError::Signature)?;
        let claims: Claims = serde_json::from_slice(&t.payload)
            .map_err(|e| ActorError::Malformed(format!("claims: {e}")))?;
        let actor = Arc::new(Actor {
            claims,
            subject: reg.sub.and_then(|v| v.as_str().map(str::to_string)),
            expires,
        });
        let mut state = self.state();
        if state.verified.len() >= VERIFIED_CACHE {
            state
                .verified
                .retain(|_, a| a.expires.saturating_add(skew) >= now);
            if state.verified.len() >= VERIFIED_CACHE {
                state.verified.clear();
            }
        }
        state.verified.insert(text.to_string(), actor.clone());
        Ok(actor)
    }

    /// The key `kid` of the issuer, fetching the JWKS once (single flight,
    /// cooldown after success) when it is not known.
    async fn key<F, Fut>(&self, kid: &str, fetch: F) -> Result<VerifyingKey, ActorError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Jwks, Error>>,
    {
        let unknown = || ActorError::UnknownKey(self.issuer.host(), kid.to_string());
        if let Some(k) = self.known(kid) {
            return Ok(k);
        }
        let _flight = self.fetching.lock().await;
        if let Some(k) = self.known(kid) {
            return Ok(k);
        }
        if self
            .state()
            .last_fetch
            .is_some_and(|at| at.elapsed() < FETCH_COOLDOWN)
        {
            return Err(unknown());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let Ok(jwks) = fetch().await else {
            return Err(unknown());
        };
        let now = Instant::now();
        let mut state = self.state();
        state.last_fetch = Some(now);
        for jwk in &jwks.keys {
            if let Some(key) = jwk.verifying_key() {
                state.keys.insert(
                    jwk.kid.clone(),
                    KnownKey {
                        key,
                        last_seen: now,
                    },
                );
            }
        }
        let eviction = self.eviction();
        state
            .keys
            .retain(|_, k| now.duration_since(k.last_seen) <= eviction);
        state.keys.get(kid).map(|k| k.key).ok_or_else(unknown)
    }

    fn known(&self, kid: &str) -> Option<VerifyingKey> {
        let eviction = self.eviction();
        let state = self.state();
        let k = state.keys.get(kid)?;
        (k.last_seen.elapsed() <= eviction).then_some(k.key)
    }
}

/// An endpoint's required claims, checked before its handler runs: 401
/// without a verifiable actor, 403 when the claims do not satisfy the
/// expression `text`.
pub(crate) struct Guard {
    pub(crate) svc: Connector,
    pub(crate) text: &'static str,
    pub(crate) check: Check,
}

/// What a [`Guard`] decides at once, before the handler is built.
pub(crate) enum Admit {
    /// A token verified before (a lookup), whose claims satisfy the check.
    Verified(Arc<Actor>),
    /// Refused: no token, or a token verified before whose claims fail.
    Refuse(Error),
    /// A token not in the verified cache (not seen yet, or expired there):
    /// verify it (a signature, maybe a JWKS fetch; an expired one is 401).
    Verify(Arc<str>),
}

impl Guard {
    /// The decision for the request's token, without waiting: a token
    /// seen before costs a lookup on the borrowed text.
    pub(crate) fn admit(&self, token: Option<&Arc<str>>) -> Admit {
        let Some(token) = token else {
            return Admit::Refuse(Error::status(
                401,
                format!(
                    "this endpoint requires claims `{}`: no actor token",
                    self.text
                ),
            ));
        };
        match self.svc.inner.shared.verifier.cached(token) {
            Some(actor) => match self.satisfied(&actor) {
                Ok(()) => Admit::Verified(actor),
                Err(e) => Admit::Refuse(e),
            },
            None => Admit::Verify(token.clone()),
        }
    }

    /// Verifies a token not seen yet, then runs `inner` with the verified
    /// actor in its scope (the current frame is kept).
    pub(crate) fn verify_then(
        self: Arc<Self>,
        token: Arc<str>,
        inner: crate::serve::Handler,
        req: crate::wire::Request,
    ) -> crate::serve::HandlerFuture {
        Box::pin(async move {
            let actor = self
                .svc
                .inner
                .shared
                .verifier
                .verify_actor(&self.svc, &token)
                .await?;
            self.satisfied(&actor)?;
            crate::context::Scoped {
                frame: crate::context::current(),
                verified: Some(actor),
            }
            .scope(inner(req))
            .await
        })
    }

    fn satisfied(&self, actor: &Actor) -> Result<(), Error> {
        if (self.check)(&actor.claims) {
            Ok(())
        } else {
            Err(Error::status(
                403,
                format!("the actor's claims do not satisfy `{}`", self.text),
            ))
        }
    }
}

impl Connector {
    /// The verified actor of the request being handled. Only an endpoint
    /// that declares required claims verifies its actor (its service's
    /// allow-list then holds the grant to fetch access.token.core's keys,
    /// which gencreds derives from the `claims` attribute); write
    /// `claims = "true"` on an endpoint that needs an actor but no
    /// particular claim. Elsewhere this is `Ok(None)` without a token and a
    /// 401 error with one (pass it on with `?`): a token is never read
    /// unverified.
    pub fn actor(&self) -> Result<Option<Arc<Actor>>, Error> {
        if let Some(actor) = crate::context::verified() {
            return Ok(Some(actor));
        }
        match crate::context::actor() {
            None => Ok(None),
            Some(_) => Err(Error::status(
                401,
                "the actor of an endpoint without required claims is not verified: declare claims on the endpoint (claims = \"true\" for any actor)",
            )),
        }
    }

    /// How long a key absent from access.token.core's JWKS still verifies
    /// (default [`KEY_EVICTION`]; shorter in tests of rotation).
    pub fn with_actor_key_eviction(self, after: Duration) -> Self {
        self.inner.shared.verifier.set_eviction(after);
        self
    }

    /// JWKS fetches made by this connector's actor verifier.
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.shared.verifier.fetches()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts that share their hashed tail are still told apart: the map
    /// compares whole texts, the hash only picks the bucket.
    #[test]
    fn tokens_sharing_a_tail_are_distinct_entries() {
        let mut m: HashMap<String, u32, TailHash> = HashMap::default();
        let tail = "x".repeat(TAIL_HASHED * 2);
        let a = format!("header.payloadA.{tail}");
        let b = format!("header.payloadB.{tail}");
        m.insert(a.clone(), 1);
        m.insert(b.clone(), 2);
        assert_eq!(m.get(a.as_str()), Some(&1));
        assert_eq!(m.get(b.as_str()), Some(&2));
        assert_eq!(m.get(format!("header.payloadC.{tail}").as_str()), None);
        assert_eq!(m.get(""), None);
        m.insert(String::new(), 3);
        assert_eq!(m.get(""), Some(&3));
    }
}
