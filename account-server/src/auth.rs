//! Request authentication for the JSON API: the `Authorization` header of
//! [`buswarden_creds::request_auth`], a key listed in the config, a
//! timestamp within the window, a signature over method, path, timestamp,
//! nonce and body hash, and a nonce never seen before (remembered in the
//! store, so a restart does not reopen a replay window). The signature is
//! checked before the nonce is stored, so unauthenticated traffic cannot
//! fill the nonce table.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::AUTHORIZATION;
use buswarden_creds::request_auth::RequestAuth;

use crate::config::{ApiKey, Role};
use crate::error::ApiError;
use crate::server::{AccountServer, now};

/// An authenticated request: the caller's key entry and the raw body.
#[derive(Debug)]
pub struct Signed {
    /// The caller.
    pub caller: ApiKey,
    /// The body, already covered by the signature.
    pub body: Bytes,
}

impl Signed {
    /// Refuses the call unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.caller.role) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "this call needs the {} role; this key has {}",
                names.join(" or "),
                self.caller.role.as_str()
            )))
        }
    }

    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))
    }
}

impl FromRequest<Arc<AccountServer>> for Signed {
    type Rejection = ApiError;

    async fn from_request(
        req: Request<Body>,
        state: &Arc<AccountServer>,
    ) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let result = authenticate(state, parts, body).await;
        match &result {
            Ok(_) => state.metrics.api_requests.inc(),
            Err(ApiError::TooLarge) => state.metrics.bad_requests.inc(),
            Err(_) => state.metrics.auth_failures.inc(),
        }
        result
    }
}

async fn authenticate(
    state: &Arc<AccountServer>,
    parts: axum::http::request::Parts,
    body: Body,
) -> Result<Signed, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthenticated("missing Authorization header".into()))?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("Authorization header is not text".into()))?;
    let auth = RequestAuth::parse(header).map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
    let caller = state
        .config
        .key(&auth.key)
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("unknown key".into()))?;
    let window = i64::try_from(state.config.auth.window.as_secs()).unwrap_or(i64::MAX / 4);
    let now = now();
    if (now - auth.ts).abs() > window {
        return Err(ApiError::Unauthenticated(format!(
            "timestamp outside the {window}s window; check the clock"
        )));
    }
    let limit = state.config.max_body_bytes;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    auth.verify(parts.method.as_str(), path, &body)
        .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
    let store = state.store.clone();
    let (key, nonce, ts) = (auth.key.clone(), auth.nonce.clone(), auth.ts);
    let forget_before = now - 2 * window;
    let fresh =
        tokio::task::spawn_blocking(move || store.remember_nonce(&key, &nonce, ts, forget_before))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    if !fresh {
        return Err(ApiError::Replayed);
    }
    Ok(Signed { caller, body })
}
