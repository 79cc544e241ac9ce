//! The account server's API, for setups that have one: busop then makes
//! its changes there (one writer of the account JWT), signing every request
//! with the shared `buswarden_creds::request_auth` header. `busop
//! account-server URL` creates busop's request key and records the URL;
//! the account server's config must list that key with the `operator` role.
//!
//! Plain `http://` only for now: put a TLS-terminating proxy in front, or
//! reach the server over a private network.

use crate::error::{BusopError, Result};
use crate::report::Report;
use crate::setup::{AccountServerConfig, Setup};
use buswarden_creds::request_auth;
use buswarden_creds::{KeyKind, KeyPair};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use std::fmt::Write as _;
use std::time::Duration;

/// How long one API call may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

struct Target {
    host: String,
    port: u16,
    base: String,
}

fn parse_url(url: &str) -> Result<Target> {
    let bad = |why: &str| BusopError::Http {
        url: url.to_string(),
        message: why.to_string(),
    };
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        bad("only http:// URLs are supported (terminate TLS in front of the account server)")
    })?;
    let (authority, base) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Target {
        host: host.to_string(),
        port,
        base: base.to_string(),
    })
}

/// Sends one signed request; returns the JSON answer.
pub async fn call(
    cfg: &AccountServerConfig,
    key: &KeyPair,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value> {
    let target = parse_url(&cfg.url)?;
    let url = format!("{}{path}", cfg.url.trim_end_matches('/'));
    let err = |message: String| BusopError::Http {
        url: url.clone(),
        message,
    };
    let path_and_query = format!("{}{path}", target.base);
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let auth = request_auth::sign_now(key, method, &path_and_query, &bytes)
        .map_err(|e| err(e.to_string()))?;
    let work = async {
        let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| err(format!("connecting: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| err(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            // The connection ends with the request; its error is the request's.
            let _ = conn.await;
        });
        let req = hyper::Request::builder()
            .method(method)
            .uri(&path_and_query)
            .header(
                hyper::header::HOST,
                format!("{}:{}", target.host, target.port),
            )
            .header(hyper::header::AUTHORIZATION, auth)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(bytes)))
            .map_err(|e| err(format!("building the request: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| err(format!("sending: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| err(format!("reading the answer: {e}")))?
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
        });
        if !(200..300).contains(&status) {
            let message = value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            return Err(BusopError::AccountServer {
                url: url.clone(),
                status,
                message,
            });
        }
        Ok(value)
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| err("timed out".into()))?
}

/// Runs `busop account-server URL|none`.
pub fn configure(dir: &std::path::Path, url: &str) -> Result<Report> {
    let mut setup = Setup::open(dir)?;
    if url == "none" {
        setup.file.account_server = None;
        setup.save()?;
        return Ok(Report::new(
            "account server removed: busop writes account JWTs directly again\n".into(),
            serde_json::json!({ "account_server": null }),
        ));
    }
    parse_url(url)?;
    let key = match &setup.file.account_server {
        Some(a) if setup.has_key(&a.key) => a.key.clone(),
        _ => {
            let kp = KeyPair::generate(KeyKind::User);
            setup.store_key(&kp)?;
            kp.public_key().to_string()
        }
    };
    setup.file.account_server = Some(AccountServerConfig {
        url: url.trim_end_matches('/').to_string(),
        key: key.clone(),
    });
    setup.save()?;
    let mut h = String::new();
    let _ = writeln!(
        h,
        "account server {url}: busop now makes account changes through its API"
    );
    let _ = writeln!(
        h,
        "busop signs its requests with {key}: list it in the account server's config with role \"operator\""
    );
    Ok(Report::new(
        h,
        serde_json::json!({ "account_server": url, "key": key, "role": "operator" }),
    ))
}

/// Revokes users and/or a deploy through the account server.
pub fn revoke(
    setup: &Setup,
    cfg: &AccountServerConfig,
    users: &[String],
    deploy: Option<&str>,
) -> Result<Report> {
    let key = setup.key(&cfg.key, "account server request key")?;
    let rt = crate::sys::runtime()?;
    let mut answers = Vec::new();
    let mut h = String::new();
    rt.block_on(async {
        for u in users {
            let a = call(
                cfg,
                &key,
                "POST",
                "/v1/revocations",
                Some(&serde_json::json!({ "user_key": u })),
            )
            .await?;
            let _ = writeln!(h, "revoked {u} through {}", cfg.url);
            answers.push(a);
        }
        if let Some(d) = deploy {
            if d.is_empty()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(BusopError::Usage(format!(
                    "deploy id {d:?} is not [A-Za-z0-9._-]+"
                )));
            }
            let a = call(cfg, &key, "POST", &format!("/v1/deploys/{d}/revoke"), None).await?;
            let _ = writeln!(h, "revoked every user of deploy {d} through {}", cfg.url);
            answers.push(a);
        }
        Ok::<_, BusopError>(())
    })?;
    Ok(Report::new(
        h,
        serde_json::json!({ "account_server": cfg.url, "answers": answers }),
    ))
}
