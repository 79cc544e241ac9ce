//! Request authentication for the JSON API: the `Authorization` header of
//! [`buswarden_creds::request_auth`], a key listed in the config, an
//! audience naming this server, a timestamp within the window, a signature over method, path, timestamp,
//! nonce and body hash, and a nonce never seen before (remembered in the
//! store, so a restart does not reopen a replay window). The signature is
//! checked before the nonce is stored, so unauthenticated traffic cannot
//! fill the nonce table.
//!
//! The nonce of a request that changes something is written in the same
//! store transaction as the change (one fsync, not two): the extractor
//! checks it is unseen, reserves it in memory against a concurrent replay,
//! and leaves it in the request's [`NonceSlot`]; the change takes it from
//! there, and [`remember_unused_nonce`] writes it durably for every request
//! that ended without a change, before the answer leaves.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use buswarden_creds::request_auth::RequestAuth;

use crate::config::{ApiKey, Role};
use crate::error::ApiError;
use crate::server::{AccountServer, now};
use crate::store::NonceUse;

/// The nonce of one request, until it is stored.
#[derive(Debug, Default)]
pub struct NonceState {
    /// The reservation in [`Nonces`], released when the request ends.
    reserved: Option<String>,
    /// Not yet stored.
    unused: Option<NonceUse>,
}

/// Shared between the request's extractor, its change and the middleware.
pub type NonceSlot = Arc<Mutex<NonceState>>;

/// Nonces of requests in flight (a replay racing its original is refused).
#[derive(Debug, Default)]
pub struct Nonces(Mutex<HashSet<String>>);

impl Nonces {
    fn reserve(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string())
    }

    fn release(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// The authenticated caller: its key entry and its request's nonce.
#[derive(Debug)]
pub struct Caller {
    key: ApiKey,
    slot: Option<NonceSlot>,
}

impl std::ops::Deref for Caller {
    type Target = ApiKey;
    fn deref(&self) -> &ApiKey {
        &self.key
    }
}

impl Caller {
    /// Takes the request's unstored nonce, to store it with a change.
    pub fn take_nonce(&self) -> Option<NonceUse> {
        let slot = self.slot.as_ref()?;
        slot.lock().unwrap_or_else(|e| e.into_inner()).unused.take()
    }

    /// Gives a nonce back after its change failed to commit.
    pub fn put_back(&self, nonce: NonceUse) {
        if let Some(slot) = &self.slot {
            slot.lock().unwrap_or_else(|e| e.into_inner()).unused = Some(nonce);
        }
    }
}

/// An authenticated request: the caller and the raw body.
#[derive(Debug)]
pub struct Signed {
    /// The caller.
    pub caller: Caller,
    /// The body, already covered by the signature.
    pub body: Bytes,
}

/// Middleware around the `/v1/` routes: gives each request a [`NonceSlot`]
/// and, once the handler is done, stores a nonce no change took (a read or
/// a refusal), then releases the in-memory reservation.
pub async fn remember_unused_nonce(
    State(state): State<Arc<AccountServer>>,
    mut req: Request,
    next: Next,
) -> Response {
    let slot = NonceSlot::default();
    req.extensions_mut().insert(slot.clone());
    let response = next.run(req).await;
    let (reserved, unused) = {
        let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
        (s.reserved.take(), s.unused.take())
    };
    let stored = match unused {
        Some(n) => {
            let store = state.store.clone();
            match tokio::task::spawn_blocking(move || store.remember_nonce(&n)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(ApiError::Store(e)),
                Err(e) => Err(ApiError::Internal(e.to_string())),
            }
        }
        None => Ok(()),
    };
    if let Some(id) = reserved {
        state.nonces.release(&id);
    }
    match stored {
        Ok(()) => response,
        Err(e) => e.into_response(),
    }
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
    let audiences = state.config.audiences();
    if !audiences.contains(&auth.aud) {
        return Err(ApiError::Unauthenticated(format!(
            "request signed for account server {:?}; this server is {} (a request signed for one server is never valid at another; the server's names are auth.audience)",
            auth.aud,
            audiences.join(", ")
        )));
    }
    let window = state.config.auth.window.as_secs();
    let now = now();
    // `abs_diff` cannot overflow, whatever `ts` the header carries.
    if now.abs_diff(auth.ts) > window {
        return Err(ApiError::Unauthenticated(format!(
            "timestamp outside the {window}s window; check the clock"
        )));
    }
    let limit = state.config.max_body_bytes;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| body_error(&e))?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    auth.verify(parts.method.as_str(), path, &body)
        .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
    let nonce = NonceUse {
        caller: auth.key.clone(),
        nonce: auth.nonce.clone(),
        ts: auth.ts,
        forget_before: now.saturating_sub_unsigned(window.saturating_mul(2)),
    };
    let store = state.store.clone();
    let Some(slot) = parts.extensions.get::<NonceSlot>().cloned() else {
        // Outside the middleware: store the nonce now.
        let fresh = tokio::task::spawn_blocking(move || store.remember_nonce(&nonce))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        if !fresh {
            return Err(ApiError::Replayed);
        }
        return Ok(Signed {
            caller: Caller {
                key: caller,
                slot: None,
            },
            body,
        });
    };
    let id = format!("{}:{}", nonce.caller, nonce.nonce);
    if !state.nonces.reserve(&id) {
        return Err(ApiError::Replayed);
    }
    let (c, n) = (nonce.caller.clone(), nonce.nonce.clone());
    let seen = tokio::task::spawn_blocking(move || store.nonce_seen(&c, &n)).await;
    match seen {
        Ok(Ok(false)) => {}
        other => {
            state.nonces.release(&id);
            return Err(match other {
                Ok(Ok(_)) => ApiError::Replayed,
                Ok(Err(e)) => ApiError::Store(e),
                Err(e) => ApiError::Internal(e.to_string()),
            });
        }
    }
    {
        let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
        s.reserved = Some(id);
        s.unused = Some(nonce);
    }
    Ok(Signed {
        caller: Caller {
            key: caller,
            slot: Some(slot),
        },
        body,
    })
}

/// Over the size limit is 413; a body that broke off (the client went away
/// or stalled past the idle timeout) is a plain 400.
fn body_error(e: &axum::Error) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return ApiError::TooLarge;
        }
        cause = c.source();
    }
    ApiError::BadRequest("the request body could not be read (incomplete or too slow)".into())
}
