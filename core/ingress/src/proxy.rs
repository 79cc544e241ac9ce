//! One external request, from its head to the bus and back: the order of
//! the gates (each refusal answered before anything is published), the
//! bus call, and the mapping of its outcome onto an HTTP response.
//!
//! Gates, in order: path length (414), blocked paths (404), CORS (403, or a
//! preflight answered here), URL mapping and the port firewall (404), the
//! bearer token (401), the rate limit (429), the body limit and read
//! timeout (413, 408). Then the bearer token is exchanged for an access
//! token and the request is published as a unicast raw call from
//! [`forward`], the ingress's one `#[buswarden::edge_proxy]` function.

use crate::config::Config;
use crate::exchange::Exchange;
use crate::headers::{self, Origin};
use crate::mapping::{self, Target};
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use buswarden::context::Frame;
use buswarden::{Connector, Error};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// Longest a refused body is read and discarded, and longest wait for
/// its next bytes (nginx's `lingering_time` and `lingering_timeout`).
const LINGER_TOTAL: Duration = Duration::from_secs(30);
const LINGER_IDLE: Duration = Duration::from_secs(5);

/// Reads and discards a body the gates refused, for at most
/// `read_timeout` (capped at [`LINGER_TOTAL`]) and at most [`LINGER_IDLE`]
/// between frames, so the connection closes with nothing unread and the
/// client receives the answer. Bytes are bounded by time, as in nginx.
async fn linger<B>(mut body: B, read_timeout: Duration)
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin,
{
    let until = tokio::time::Instant::now() + read_timeout.min(LINGER_TOTAL);
    loop {
        let next = tokio::time::timeout_at(until, tokio::time::timeout(LINGER_IDLE, body.frame()));
        match next.await {
            Ok(Ok(Some(Ok(_)))) => {}
            _ => return,
        }
    }
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The response body type.
pub type Body = Full<Bytes>;

/// The ingress: its settings, its bus connector and its shared state.
pub struct Ingress {
    pub(crate) config: Config,
    pub(crate) svc: Connector,
    pub(crate) exchange: Exchange,
    pub(crate) limiter: Option<Limiter>,
    pub(crate) metrics: Metrics,
}

impl Ingress {
    /// An ingress over a connected connector.
    pub fn new(config: Config, svc: Connector) -> Arc<Ingress> {
        Arc::new(Ingress {
            limiter: config.rate_limit.map(Limiter::new),
            config,
            svc,
            exchange: Exchange::default(),
            metrics: Metrics::default(),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Its counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Calls made to access.token.core's `Mint` so far.
    pub fn mints(&self) -> u64 {
        self.exchange.mints()
    }

    /// Handles one request from `peer`.
    ///
    /// A body the gates refused unread is read and discarded after the
    /// answer for a bounded time ([`linger`]), on a connection marked to
    /// close: closing a socket with unread bytes in it resets it, and the
    /// client may lose the 413 (or 401, 404, ...) it was sent.
    pub async fn handle<B>(&self, req: Request<B>, origin: Origin) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.metrics.request();
        let method = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            (
                req.method().clone(),
                req.uri().path().to_string(),
                origin.peer,
            )
        });
        let (parts, body) = req.into_parts();
        let h1 = parts.version <= hyper::Version::HTTP_11;
        let expects_continue = expects_continue(&parts.headers);
        let mut body = Some(body);
        let mut resp = self.gates(parts, &mut body, origin).await;
        if let Some(unread) = body.filter(|b| !b.is_end_stream())
            && h1
        {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            // A client waiting for `100 Continue` has not sent the body:
            // reading it would ask for it.
            if !expects_continue {
                tokio::spawn(linger(unread, self.config.body_read_timeout));
            }
        }
        self.metrics.response(resp.status().as_u16());
        if let Some((method, path, peer)) = method {
            tracing::debug!(%method, %path, %peer, status = resp.status().as_u16(), "request");
        }
        resp
    }

    /// The gates and the bus call; `body` is taken only when it is read.
    async fn gates<B>(
        &self,
        parts: hyper::http::request::Parts,
        body: &mut Option<B>,
        origin: Origin,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let c = &self.config;
        let path = parts.uri.path();
        let query = parts.uri.query();
        if path.len() + query.map_or(0, |q| q.len() + 1) > c.max_path_bytes {
            return text(StatusCode::URI_TOO_LONG, "the path is too long");
        }
        if mapping::blocked(&c.blocked_paths, path) {
            self.metrics.refused();
            return not_found();
        }
        let host = request_host(&parts);
        // CORS: a pinned origin by default; preflights answered here.
        let Ok(cors) = self.cors(&parts.headers, host.as_deref(), origin.proto) else {
            self.metrics.refused();
            return error_response(403, "origin not allowed");
        };
        if let Some(allowed) = &cors
            && parts.method == Method::OPTIONS
            && parts
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return preflight(allowed, &parts.headers);
        }
        let target = match mapping::map(&c.edge, path, query) {
            Ok(t) => t,
            Err(_) => {
                self.metrics.refused();
                return not_found();
            }
        };
        // The bearer token: verified before anything else is spent on it.
        let bearer = headers::bearer_token(&parts.headers);
        let actor = match &bearer {
            None => None,
            Some(b) => match self.exchange.verify(&self.svc, b).await {
                Ok(a) => Some(a),
                Err(e) => {
                    self.metrics.unauthorized();
                    tracing::debug!(error = %e.message(), "bearer token refused");
                    return error_response(401, "the bearer token does not verify");
                }
            },
        };
        if let Some(limiter) = &self.limiter {
            let key = match actor.as_ref().and_then(|a| a.subject.as_deref()) {
                Some(sub) => format!("sub:{sub}"),
                None => format!("ip:{}", origin.client(&parts.headers, &c.trusted_proxies)),
            };
            if let Err(wait) = limiter.check(&key) {
                self.metrics.rate_limited();
                let mut resp = error_response(429, "too many requests");
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                return resp;
            }
        }
        let body = match self.read_body(&parts.headers, body).await {
            Ok(b) => b,
            Err((status, why)) => {
                if status == 413 {
                    self.metrics.too_large();
                }
                return error_response(status, why);
            }
        };
        let access = match (&bearer, &actor) {
            (Some(b), Some(_)) => match self.exchange.access_token(&self.svc, b).await {
                Ok(t) => Some(t),
                Err(e) => {
                    self.metrics.unauthorized();
                    tracing::warn!(error = %e.message(), "token exchange failed");
                    return error_response(401, "the bearer token could not be exchanged");
                }
            },
            _ => None,
        };
        let headers = headers::inbound(&parts.headers, &origin, host.as_deref(), &target.prefix);
        let frame = Frame {
            actor: access,
            ..Frame::default()
        };
        let outcome = frame
            .scope(forward(
                &self.svc,
                parts.method.as_str(),
                &target,
                headers,
                body,
                c.time_budget,
            ))
            .await;
        let mut resp = match outcome {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
                let mut resp = Response::new(Full::new(Bytes::from(r.body)));
                *resp.status_mut() = status;
                headers::outbound(&r.headers, resp.headers_mut());
                resp
            }
            Err(e) => self.bus_error(&e),
        };
        if let Some(allowed) = cors {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        resp
    }

    /// The origin to allow, `None` for a same-origin request without
    /// `Origin`, or the 403 for a disallowed origin.
    fn cors(
        &self,
        headers: &HeaderMap,
        host: Option<&str>,
        proto: &str,
    ) -> Result<Option<HeaderValue>, ()> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(None);
        };
        let o = origin.to_str().unwrap_or_default();
        let allowed = if self.config.cors_origins.is_empty() {
            host.is_some_and(|h| {
                o.strip_prefix(proto).and_then(|r| r.strip_prefix("://")) == Some(h)
            })
        } else {
            self.config.cors_origins.iter().any(|a| a == o)
        };
        if allowed {
            Ok(Some(origin.clone()))
        } else {
            Err(())
        }
    }

    /// The body, within the size limit and the read timeout.
    /// Refused by its declared size, it stays in `slot` unread.
    async fn read_body<B>(
        &self,
        headers: &HeaderMap,
        slot: &mut Option<B>,
    ) -> Result<Vec<u8>, (u16, &'static str)>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let max = self.config.max_body_bytes;
        let too_large = || (413, "the body is over the limit");
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let Some(body) = slot.take_if(|b| {
            declared.is_none_or(|n| n <= max as u64) && b.size_hint().lower() <= max as u64
        }) else {
            return Err(too_large());
        };
        if body.is_end_stream() {
            return Ok(Vec::new());
        }
        match tokio::time::timeout(
            self.config.body_read_timeout,
            Limited::new(body, max).collect(),
        )
        .await
        {
            Err(_) => Err((408, "the body was not sent in time")),
            Ok(Err(e)) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Err(too_large())
                } else {
                    Err((400, "the body could not be read"))
                }
            }
            Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        }
    }

    fn bus_error(&self, e: &Error) -> Response<Body> {
        self.metrics.bus_error();
        match e {
            // The request's budget ran out on the bus: a gateway timeout
            // to the client (408 is kept for a client too slow to send).
            Error::Remote { status: 408, .. } => {
                error_response(504, "the bus did not answer in time")
            }
            Error::Remote {
                status, message, ..
            } => error_response(*status, message),
            Error::Status { status, message } => error_response(*status, message),
            // Nobody serves it, or the broker refuses the ingress the
            // subject: the same 404 as a closed port.
            Error::AckTimeout { .. } | Error::PublishDenied { .. } => not_found(),
            Error::Timeout { .. } => error_response(504, "the bus did not answer in time"),
            Error::InvalidUrl { .. } | Error::InvalidMethod { .. } => not_found(),
            other => {
                tracing::warn!(error = %other, "bus call failed");
                error_response(502, "the bus call failed")
            }
        }
    }
}

/// Publishes one external request on the bus as a unicast raw call to the
/// mapped endpoint. Its computed URL is granted by `gencreds` from the
/// `[edge]` table: one rule per port the edge opens, never 666 or 888.
#[buswarden::edge_proxy]
pub(crate) async fn forward(
    svc: &Connector,
    method: &str,
    target: &Target,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    budget: Duration,
) -> Result<buswarden::Response, Error> {
    let mut call = svc.request(method, &target.url()).timeout(budget);
    for (name, value) in headers {
        call = call.header(name, value);
    }
    call.body(body).send().await
}

fn request_host(parts: &hyper::http::request::Parts) -> Option<String> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
}

fn preflight(allowed: &HeaderValue, req: &HeaderMap) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    if let Some(m) = req.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m.clone());
    }
    if let Some(m) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, m.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn not_found() -> Response<Body> {
    error_response(404, "not found")
}

/// An error as Microbus writes one: `{"err":{"error":…,"statusCode":…}}`.
pub(crate) fn error_response(status: u16, message: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = buswarden::wire::error_body(message, status.as_u16(), "");
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
