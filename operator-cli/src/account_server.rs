//! The account server's API, for setups that have one: busop then makes
//! its changes there (one writer of the account JWT), signing every request
//! with the shared `buswarden_creds::request_auth` header. `busop
//! account-server URL` creates busop's request key and records the URL;
//! the account server's config must list that key with the `operator` role.
//!
//! `https://` URLs are checked against the CA given with `--ca FILE` (PEM):
//! an account server usually has a certificate from a private CA.

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
    tls: bool,
    host: String,
    port: u16,
    base: String,
}

fn parse_url(url: &str) -> Result<Target> {
    let bad = |why: &str| BusopError::Http {
        url: url.to_string(),
        message: why.to_string(),
    };
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return Err(bad("expected an http:// or https:// URL")),
    };
    let (authority, base) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Target {
        tls,
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
    let aud = request_auth::audience(&cfg.url).map_err(|e| err(e.to_string()))?;
    let auth = request_auth::sign_now(key, &aud, method, &path_and_query, &bytes)
        .map_err(|e| err(e.to_string()))?;
    let work = async {
        let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| err(format!("connecting: {e}")))?;
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
        let (status, body) = if target.tls {
            let connector = tls_connector(cfg, &url)?;
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| err(format!("server name: {e}")))?;
            let tls = connector
                .connect(name, stream)
                .await
                .map_err(|e| err(format!("TLS: {e}")))?;
            exchange(tls, req).await.map_err(err)?
        } else {
            exchange(stream, req).await.map_err(err)?
        };
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

/// One HTTP/1.1 exchange over `io`: status and body.
async fn exchange<S>(
    io: S,
    req: hyper::Request<Full<bytes::Bytes>>,
) -> std::result::Result<(u16, bytes::Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        // The connection ends with the request; its error is the request's.
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

fn tls_connector(cfg: &AccountServerConfig, url: &str) -> Result<tokio_rustls::TlsConnector> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let err = |message: String| BusopError::Http {
        url: url.to_string(),
        message,
    };
    let Some(ca) = &cfg.ca_file else {
        return Err(err(
            "an https account server needs its CA: `busop account-server URL --ca FILE`".into(),
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(ca).map_err(|e| err(format!("{}: {e}", ca.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| err(format!("{}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("{}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(err(format!("{}: no certificate in the file", ca.display())));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// Runs `busop account-server URL|none`.
pub fn configure(dir: &std::path::Path, url: &str, ca: Option<&std::path::Path>) -> Result<Report> {
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
    let ca_file = match ca {
        Some(p) => {
            crate::artifact::read_text(p)?;
            Some(std::path::absolute(p).map_err(BusopError::io("resolving", p))?)
        }
        None => None,
    };
    if parse_url(url)?.tls && ca_file.is_none() {
        return Err(BusopError::Usage(
            "an https account server needs its CA certificate: --ca FILE (PEM)".into(),
        ));
    }
    setup.file.account_server = Some(AccountServerConfig {
        url: url.trim_end_matches('/').to_string(),
        key: key.clone(),
        ca_file,
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
    // The account server answers once the change is durable; it keeps
    // pushing until every nats-server confirmed. Say so when it has not yet.
    let pending: Vec<String> = answers
        .iter()
        .filter_map(|a| {
            let p = &a["push"];
            let (done, of) = (p["confirmed"].as_u64()?, p["servers"].as_u64()?);
            (done < of).then(|| format!("{done} of {of}"))
        })
        .collect();
    for p in &pending {
        let _ = writeln!(
            h,
            "confirmed on {p} nats-servers so far: the account server keeps pushing (see its log and /metrics)"
        );
    }
    let mut report = Report::new(
        h,
        serde_json::json!({ "account_server": cfg.url, "answers": answers, "confirmed": pending.is_empty() }),
    );
    if !pending.is_empty() {
        report.exit = crate::report::EXIT_FINDINGS;
    }
    Ok(report)
}
