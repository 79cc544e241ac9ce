//! The one error type of the HTTP API. Every variant maps to a status and a
//! plain message `{"error": "..."}`; internal failures are logged with their
//! cause and answered with a fixed message, so internals never leak, and
//! anything shaped like a seed is redacted from both.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use buswarden_creds::keys::redact_seeds;

use crate::store::StoreError;

/// A refused or failed API call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No, malformed, unknown-key, stale or wrongly signed authentication.
    #[error("{0}")]
    Unauthenticated(String),
    /// A nonce seen before.
    #[error("request replayed: nonce already used")]
    Replayed,
    /// The key's role does not allow the call.
    #[error("{0}")]
    Forbidden(String),
    /// A trust-root grant the active deploy did not have, without approval.
    #[error("{0}")]
    ApprovalRequired(String),
    /// Malformed JSON or a field out of range.
    #[error("{0}")]
    BadRequest(String),
    /// A rule set that `rules` refuses for its hostname.
    #[error("{0}")]
    InvalidRules(String),
    /// A rule set the server's policy refuses.
    #[error("{0}")]
    PolicyViolation(String),
    /// No such deploy or user.
    #[error("{0}")]
    NotFound(String),
    /// The call does not fit the current state (deploy exists, is retired…).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than `max_body_bytes`.
    #[error("request body too large")]
    TooLarge,
    /// The change lost to other replicas' changes on every attempt: nothing
    /// was changed and the call can be retried.
    #[error("{0}")]
    Busy(String),
    /// The store failed (logged; the client sees a plain message).
    #[error("storage error")]
    Store(#[from] StoreError),
    /// Something else failed inside the server (logged).
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) | ApiError::Replayed => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ApprovalRequired(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidRules(_) | ApiError::PolicyViolation(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::ledger::LedgerError> for ApiError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A refusal may echo what the client sent (a key, a hostname, a JSON
        // value): a seed sent by mistake never reaches the answer or the log.
        match &self {
            ApiError::Store(e) => {
                tracing::error!(error = %redact_seeds(&e.to_string()), "store failure")
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %redact_seeds(e), "internal failure")
            }
            other => tracing::info!(
                status = status.as_u16(),
                error = %redact_seeds(&other.to_string()),
                "request refused"
            ),
        }
        let message = redact_seeds(&self.to_string()).into_owned();
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
