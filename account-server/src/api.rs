//! The HTTP surface: the nats-server URL resolver (unauthenticated,
//! read-only), health and metrics, and the signed JSON API under `/v1/`.
//! Documented in `account-server/API.md`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::auth::{self, Signed};
use crate::config::Role;
use crate::error::ApiError;
use crate::lifecycle::{Approve, OpenDeploy, RevokeUser, SignUsers};
use crate::server::AccountServer;

type AppState = State<Arc<AccountServer>>;

/// The router of the whole service.
pub fn app(state: Arc<AccountServer>) -> Router {
    let v1 = Router::new()
        .route("/v1/deploys", post(open_deploy).get(list_deploys))
        .route("/v1/deploys/{id}/users", post(sign_users))
        .route("/v1/deploys/{id}/activate", post(activate))
        .route("/v1/deploys/{id}/retire", post(retire))
        .route("/v1/deploys/{id}/revoke", post(revoke_deploy))
        .route("/v1/revocations", post(revoke_user))
        .route("/v1/users/{key}/renew", post(renew))
        .route("/v1/approvals", post(approve))
        .route("/v1/account", get(account))
        .route("/v1/audit", get(audit))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::remember_unused_nonce,
        ));
    Router::new()
        .route("/jwt/v1/accounts", get(resolver_probe))
        .route("/jwt/v1/accounts/", get(resolver_probe))
        .route("/jwt/v1/accounts/{account}", get(resolve))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

async fn resolver_probe() -> StatusCode {
    StatusCode::OK
}

async fn resolve(State(s): AppState, Path(account): Path<String>, headers: HeaderMap) -> Response {
    let Some(served) = s.served(&account) else {
        s.metrics.resolver_not_found.inc();
        return (StatusCode::NOT_FOUND, "account not found\n").into_response();
    };
    if headers
        .get(IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == served.etag.as_bytes())
    {
        s.metrics.resolver_not_modified.inc();
        return (StatusCode::NOT_MODIFIED, [(ETAG, served.etag)]).into_response();
    }
    s.metrics.resolver_hits.inc();
    (
        [
            (ETAG, served.etag),
            (CONTENT_TYPE, HeaderValue::from_static("application/jwt")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        served.jwt,
    )
        .into_response()
}

async fn metrics(State(s): AppState) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn open_deploy(State(s): AppState, req: Signed) -> Result<Response, ApiError> {
    req.require(&[Role::Ci])?;
    let (d, pushed) = s
        .retrying(|| async { s.open_deploy(&req.caller, req.json::<OpenDeploy>()?).await })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "deploy": d.deploy,
            "signing_key": d.signing_key,
            "state": d.state,
            "push": pushed,
        })),
    )
        .into_response())
}

async fn sign_users(
    State(s): AppState,
    Path(id): Path<String>,
    req: Signed,
) -> Result<Response, ApiError> {
    req.require(&[Role::Ci])?;
    let users = s
        .retrying(|| async {
            s.sign_users(&req.caller, &id, req.json::<SignUsers>()?)
                .await
        })
        .await?;
    Ok(Json(serde_json::json!({ "users": users })).into_response())
}

async fn activate(
    State(s): AppState,
    Path(id): Path<String>,
    req: Signed,
) -> Result<Response, ApiError> {
    req.require(&[Role::Ci, Role::Operator])?;
    let (d, pushed) = s.retrying(|| s.activate(&req.caller, &id)).await?;
    Ok(Json(serde_json::json!({ "deploy": d, "push": pushed })).into_response())
}

async fn retire(
    State(s): AppState,
    Path(id): Path<String>,
    req: Signed,
) -> Result<Response, ApiError> {
    req.require(&[Role::Operator])?;
    let (d, pushed) = s.retrying(|| s.retire(&req.caller, &id)).await?;
    Ok(Json(serde_json::json!({ "deploy": d, "push": pushed })).into_response())
}

async fn revoke_deploy(
    State(s): AppState,
    Path(id): Path<String>,
    req: Signed,
) -> Result<Response, ApiError> {
    req.require(&[Role::Operator])?;
    let (d, pushed) = s.retrying(|| s.revoke_deploy(&req.caller, &id)).await?;
    Ok(Json(serde_json::json!({ "deploy": d, "push": pushed })).into_response())
}

async fn revoke_user(State(s): AppState, req: Signed) -> Result<Response, ApiError> {
    req.require(&[Role::Operator])?;
    let user_key = req.json::<RevokeUser>()?.user_key;
    let pushed = s
        .retrying(|| async { s.revoke_user(&req.caller, req.json::<RevokeUser>()?).await })
        .await?;
    Ok(Json(serde_json::json!({ "user_key": user_key, "push": pushed })).into_response())
}

async fn renew(
    State(s): AppState,
    Path(key): Path<String>,
    req: Signed,
) -> Result<Response, ApiError> {
    req.require(&[Role::Ci])?;
    let user = s.retrying(|| s.renew(&req.caller, &key)).await?;
    Ok(Json(user).into_response())
}

async fn approve(State(s): AppState, req: Signed) -> Result<Response, ApiError> {
    req.require(&[Role::Operator])?;
    let a = s
        .retrying(|| async { s.approve(&req.caller, req.json::<Approve>()?).await })
        .await?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

const READERS: &[Role] = &[Role::ReadOnly, Role::Ci, Role::Operator];

async fn list_deploys(State(s): AppState, req: Signed) -> Result<Response, ApiError> {
    req.require(READERS)?;
    Ok(Json(serde_json::json!({ "deploys": s.list().await })).into_response())
}

async fn account(State(s): AppState, req: Signed) -> Result<Response, ApiError> {
    req.require(READERS)?;
    Ok(Json(s.account().await).into_response())
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    since: i64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    1000
}

async fn audit(
    State(s): AppState,
    Query(q): Query<AuditQuery>,
    req: Signed,
) -> Result<Response, ApiError> {
    req.require(READERS)?;
    let entries = s.audit(q.since, q.limit.min(10_000)).await?;
    Ok(Json(serde_json::json!({ "entries": entries })).into_response())
}
