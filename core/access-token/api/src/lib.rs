//! The API of `access.token.core`, the issuer of the access tokens that
//! travel with requests on the bus as the actor. Its `Mint` is a trust-root
//! (`:666`) endpoint: only services whose code calls it, and whom the policy
//! allows, get the grant. `JWKS` (`:888`) joins the keys of every replica,
//! each of which answers `LocalKeys` with its own.
//!
//! The payloads are Microbus's: `Mint` takes `{"claims": {…}}` and answers
//! `{"token": "…"}`; `JWKS` and `LocalKeys` answer `{"keys": [JWK…]}`. The
//! helpers [`mint`] and [`jwks`] make those calls with a `Connector`.

#![forbid(unsafe_code)]

use buswarden::token::{self, Jwks};
use buswarden::{Connector, Error, Request, Response};
use serde_json::{Map, Value};

#[buswarden::api(host = "access.token.core")]
pub trait AccessTokenCore {
    /// Mints an access token carrying the claims given (`{"claims": {…}}`),
    /// with `idp`, `iss`, `iat`, `exp` and `jti` stamped last. Its lifetime
    /// is the request's time budget, else 20 s, at most 15 min.
    #[web(ANY, ":666/mint")]
    async fn mint(&self, req: Request) -> Result<Response, Error>;

    /// The keys of every replica (current, previous and pending), joined.
    #[web(ANY, ":888/jwks")]
    async fn jwks(&self, req: Request) -> Result<Response, Error>;

    /// This replica's keys (JWKS multicasts it to every replica).
    #[web(ANY, ":888/local-keys")]
    async fn local_keys(&self, req: Request) -> Result<Response, Error>;
}

/// Mints an access token for `claims` (a trust-root call: the caller's
/// grant names `danger.666…access_token_core…mint`).
pub async fn mint(svc: &Connector, claims: &Map<String, Value>) -> Result<String, Error> {
    let resp = AccessTokenCoreClient::new(svc)
        .mint(token::mint_request(claims))
        .await?;
    token::minted_token(&resp)
}

/// The issuer's JWKS, joined over its replicas.
pub async fn jwks(svc: &Connector) -> Result<Jwks, Error> {
    token::jwks_of(&AccessTokenCoreClient::new(svc).jwks(Request::new()).await?)
}
