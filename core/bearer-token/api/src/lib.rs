//! The API of `bearer.token.core`, the issuer of the long-lived bearer
//! tokens external clients hold. A bearer token never travels the bus as an
//! actor: the ingress verifies it against this issuer's JWKS and exchanges
//! it for an access token at `access.token.core`. `Mint` is a trust-root
//! (`:666`) endpoint; `JWKS` (`:888`) lists the configured key and its
//! alternate.
//!
//! Payloads as Microbus's: `Mint` takes `{"claims": {…}}` and answers
//! `{"token": "…"}`; `JWKS` answers `{"keys": [JWK…]}`.

#![forbid(unsafe_code)]

use buswarden::actor::{Actor, Issuer, TokenVerifier};
use buswarden::token::{self, Jwks};
use buswarden::{Connector, Error, Request, Response};
use serde_json::{Map, Value};
use std::sync::Arc;

#[buswarden::api(host = "bearer.token.core")]
pub trait BearerTokenCore {
    /// Mints a bearer token carrying the claims given, with `iss`, `iat`,
    /// `exp` and `jti` stamped last (lifetime: the configured TTL).
    #[web(ANY, ":666/mint")]
    async fn mint(&self, req: Request) -> Result<Response, Error>;

    /// The configured key and its alternate.
    #[web(ANY, ":888/jwks")]
    async fn jwks(&self, req: Request) -> Result<Response, Error>;
}

/// Mints a bearer token for `claims` (a trust-root call).
pub async fn mint(svc: &Connector, claims: &Map<String, Value>) -> Result<String, Error> {
    let resp = BearerTokenCoreClient::new(svc)
        .mint(token::mint_request(claims))
        .await?;
    token::minted_token(&resp)
}

/// The issuer's JWKS.
pub async fn jwks(svc: &Connector) -> Result<Jwks, Error> {
    token::jwks_of(&BearerTokenCoreClient::new(svc).jwks(Request::new()).await?)
}

/// A verifier pinned to bearer.token.core, for [`verify`] (keep one per
/// process: it caches keys and verified tokens).
pub fn verifier() -> TokenVerifier {
    TokenVerifier::new(Issuer::Bearer)
}

/// Verifies a bearer token against this issuer's keys: `typ` `JWT`, `iss`
/// bearer.token.core, EdDSA, `exp` required, the signature checked with a
/// key the issuer itself served (fetched with [`jwks`] when `verifier` does
/// not know the key id yet). Every refusal is a 401.
pub async fn verify(
    verifier: &TokenVerifier,
    svc: &Connector,
    bearer: &str,
) -> Result<Arc<Actor>, Error> {
    Ok(verifier.verify(bearer, || jwks(svc)).await?)
}
