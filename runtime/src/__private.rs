//! Support for the code `#[buswarden::api]` generates. Not a public API: the
//! names here may change with the macro.

use crate::call::{Outgoing, Target, parse_host};
use crate::connector::Connector;
use crate::error::Error;
use crate::serve::parse_endpoint;
use crate::wire::{Request, Response};
use buswarden_rules::route::Segment;
use buswarden_rules::{Hostname, Method, Position, Route};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

pub use crate::serve::{Endpoint, Handler, HandlerFuture, Serve};

/// The raw NATS client of a connected connector: for tests and tools that
/// need the wire itself. Not for services: what it publishes cannot be
/// analysed, so `gencreds` refuses any use of `__private` in service code
/// (`private-runtime-api`).
pub fn nats_client(svc: &Connector) -> Result<async_nats::Client, Error> {
    Ok(svc.live()?.client.clone())
}

/// An endpoint's method and route, parsed once.
pub struct Spec {
    method: &'static str,
    route: &'static str,
    parsed: OnceLock<Result<(Method, Route), Error>>,
    api_host: OnceLock<Result<Hostname, Error>>,
}

impl Spec {
    /// A spec (the macro has validated both strings at compile time).
    pub const fn new(method: &'static str, route: &'static str) -> Self {
        Spec {
            method,
            route,
            parsed: OnceLock::new(),
            api_host: OnceLock::new(),
        }
    }

    /// The API's hostname, parsed once (a spec always belongs to one API).
    fn api_host(&self, api_host: &str) -> Result<Hostname, Error> {
        self.api_host
            .get_or_init(|| {
                Hostname::parse(api_host).map_err(|e| Error::InvalidHostname {
                    host: api_host.to_string(),
                    reason: e.to_string(),
                })
            })
            .clone()
    }

    fn get(&self) -> Result<&(Method, Route), Error> {
        self.parsed
            .get_or_init(|| parse_endpoint(self.method, self.route))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// An endpoint serving this spec.
    pub fn endpoint<F, Fut>(&self, name: &'static str, f: F) -> Endpoint
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Response, Error>> + Send + 'static,
    {
        Endpoint::new(name, self.method, self.route, f)
    }

    /// The concrete path: the route with `{arg}` filled from `args`.
    pub fn fill(&self, args: &[(&str, String)]) -> Result<String, Error> {
        let (_, route) = self.get()?;
        let missing = |name: &str| Error::MissingPathArgument {
            route: self.route.to_string(),
            name: name.to_string(),
        };
        let value = |name: &str| {
            args.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| missing(name))
        };
        let mut path = String::new();
        for seg in &route.segments {
            path.push('/');
            match seg {
                Segment::Literal(s) => path.push_str(s),
                Segment::Arg(n) => {
                    let v = value(n)?;
                    if v.contains('/') {
                        return Err(Error::InvalidUrl {
                            url: v.to_string(),
                            reason: format!(
                                "path argument {{{n}}} of {:?} contains '/'",
                                self.route
                            ),
                        });
                    }
                    path.push_str(v);
                }
                Segment::Greedy(n) => path.push_str(value(n)?.trim_start_matches('/')),
                Segment::Star => return Err(missing("*")),
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        Ok(path)
    }

    /// The path arguments of a received path, by name.
    fn extract(&self, path: &str) -> Result<Vec<(String, String)>, Error> {
        let (_, route) = self.get()?;
        let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let mut out = Vec::new();
        for (i, seg) in route.segments.iter().enumerate() {
            match seg {
                Segment::Arg(n) => {
                    if let Some(v) = parts.get(i) {
                        out.push((n.clone(), (*v).to_string()));
                    }
                }
                Segment::Greedy(n) => {
                    out.push((n.clone(), parts.get(i..).unwrap_or_default().join("/")));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A path argument's text.
pub fn path_value<T: std::fmt::Display + ?Sized>(v: &T) -> String {
    v.to_string()
}

/// Named arguments: a JSON object in the body plus the path arguments.
/// Encoding writes the object directly (no intermediate JSON values).
#[derive(Debug, Default)]
pub struct Args {
    out: Vec<u8>,
    body: serde_json::Map<String, serde_json::Value>,
    path: Vec<(String, String)>,
}

impl Args {
    /// No arguments yet.
    pub fn new() -> Self {
        Args::default()
    }

    /// Adds a body argument.
    pub fn put<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        if self.out.is_empty() {
            // Room for a typical argument object: no regrowth while small
            // arguments are written.
            self.out.reserve(128);
            self.out.push(b'{');
        } else {
            self.out.push(b',');
        }
        let encoded = serde_json::to_writer(&mut self.out, name).and_then(|()| {
            self.out.push(b':');
            serde_json::to_writer(&mut self.out, value)
        });
        encoded.map_err(|e| Error::Encode {
            what: format!("argument {name}"),
            reason: e.to_string(),
        })
    }

    /// The body bytes.
    pub fn into_body(mut self) -> Result<Vec<u8>, Error> {
        if self.out.is_empty() {
            self.out.push(b'{');
        }
        self.out.push(b'}');
        Ok(self.out)
    }

    /// The arguments of a received request.
    pub fn from_request(req: &Request, spec: &Spec) -> Result<Self, Error> {
        let body = if req.body.is_empty() {
            serde_json::Map::new()
        } else {
            serde_json::from_slice(&req.body).map_err(|e| Error::Decode {
                what: "arguments".into(),
                reason: e.to_string(),
            })?
        };
        Ok(Args {
            out: Vec::new(),
            body,
            path: spec.extract(&req.path)?,
        })
    }

    /// Takes one argument (a missing one decodes from `null`).
    pub fn take<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, Error> {
        let bad = |e: serde_json::Error| Error::Decode {
            what: format!("argument {name}"),
            reason: e.to_string(),
        };
        if let Some(i) = self.path.iter().position(|(n, _)| n == name) {
            let (_, text) = self.path.swap_remove(i);
            return serde_json::from_value(serde_json::Value::String(text.clone()))
                .or_else(|_| serde_json::from_str(&text))
                .map_err(bad);
        }
        let v = self.body.remove(name).unwrap_or(serde_json::Value::Null);
        serde_json::from_value(v).map_err(bad)
    }
}

/// A handler's result as a response.
pub fn encode_result<T: Serialize>(result: Result<T, Error>) -> Result<Response, Error> {
    let value = result?;
    let body = serde_json::to_vec(&value).map_err(|e| Error::Encode {
        what: "result".into(),
        reason: e.to_string(),
    })?;
    Ok(Response::ok(body))
}

/// A response's body as the typed result.
pub fn decode_result<T: DeserializeOwned>(resp: Response) -> Result<T, Error> {
    let body: &[u8] = if resp.body.is_empty() {
        b"null"
    } else {
        &resp.body
    };
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        what: "result".into(),
        reason: e.to_string(),
    })
}

/// Decodes every response of a multicast.
pub fn decode_all<T: DeserializeOwned>(all: Vec<Result<Response, Error>>) -> Vec<Result<T, Error>> {
    all.into_iter().map(|r| r.and_then(decode_result)).collect()
}

/// Anything a generated client can be made from: `&Connector`,
/// `&&Connector`, `&Arc<Connector>`.
pub fn connector_of<C: AsRef<Connector> + ?Sized>(svc: &C) -> Connector {
    svc.as_ref().clone()
}

/// The inside of a generated client: the connector and the host override.
/// Cloned into each call's future, so the future borrows nothing (it can be
/// spawned or joined straight from a temporary client).
#[derive(Debug, Clone)]
pub struct Caller {
    svc: Connector,
    host: Option<String>,
}

/// The lifetime marker of generated clients (the clients own their
/// connector handle; the lifetime keeps the documented `Client<'a>` shape).
pub type Lifetime<'a> = PhantomData<&'a ()>;

impl Caller {
    /// A caller on `svc`.
    pub fn new(svc: Connector) -> Self {
        Caller { svc, host: None }
    }

    /// Overrides the destination host (`for_host`).
    pub fn for_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }

    fn target(&self, api_host: &str, spec: &Spec, path: String) -> Result<(Target, Method), Error> {
        let (method, route) = spec.get()?;
        let ((host, pos), responder) = match (&self.host, &route.host) {
            (Some(h), _) => {
                let (host, pos) = parse_host(h)?;
                ((host.clone(), pos), host)
            }
            // Served under another hostname by the API's own service, which
            // replies under its own name.
            (None, Some(h)) => ((h.clone(), Position::Any), spec.api_host(api_host)?),
            (None, None) => {
                let host = spec.api_host(api_host)?;
                ((host.clone(), Position::Any), host)
            }
        };
        let method = if method.is_any() {
            Method::post()
        } else {
            method.clone()
        };
        Ok((
            Target {
                host,
                pos,
                port: route.port,
                path,
                responder,
            },
            method,
        ))
    }

    fn web_target(
        &self,
        api_host: &str,
        spec: &Spec,
        req: &Request,
    ) -> Result<(Target, Method, Outgoing), Error> {
        let path = if req.path.is_empty() {
            spec.fill(&[])?
        } else {
            req.path.clone()
        };
        let (target, mut method) = self.target(api_host, spec, path)?;
        if spec.get()?.0.is_any() && !req.method.is_empty() {
            method = Method::parse(&req.method).map_err(|e| Error::InvalidMethod {
                method: req.method.clone(),
                reason: e.to_string(),
            })?;
        }
        let out = Outgoing {
            query: req.query.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            timeout: None,
        };
        Ok((target, method, out))
    }

    /// A typed unicast call.
    pub async fn call(
        &self,
        api_host: &str,
        spec: &Spec,
        path: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Response, Error> {
        let live = self.svc.live_arc()?;
        let (target, method) = self.target(api_host, spec, spec.fill(path)?)?;
        live.unicast(&target, &method, Outgoing::with_body(body))
            .await
    }

    /// A typed multicast call.
    pub async fn multicast(
        &self,
        api_host: &str,
        spec: &Spec,
        path: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        let live = self.svc.live_arc()?;
        let (target, method) = self.target(api_host, spec, spec.fill(path)?)?;
        live.multicast_to(&target, &method, Outgoing::with_body(body))
            .await
    }

    /// A web unicast call.
    pub async fn call_web(
        &self,
        api_host: &str,
        spec: &Spec,
        req: Request,
    ) -> Result<Response, Error> {
        let live = self.svc.live_arc()?;
        let (target, method, out) = self.web_target(api_host, spec, &req)?;
        live.unicast(&target, &method, out).await
    }

    /// A web multicast call.
    pub async fn multicast_web(
        &self,
        api_host: &str,
        spec: &Spec,
        req: Request,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        let live = self.svc.live_arc()?;
        let (target, method, out) = self.web_target(api_host, spec, &req)?;
        live.multicast_to(&target, &method, out).await
    }

    /// Fires an event of `api_host` (the caller must be that host).
    pub async fn trigger(
        &self,
        api_host: &str,
        spec: &Spec,
        path: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        self.svc
            .trigger(api_host, spec.method, spec.route, spec.fill(path)?, body)
            .await
    }

    /// Subscribes an event sink.
    pub async fn hook(&self, api_host: &str, spec: &Spec, handler: Handler) -> Result<(), Error> {
        self.svc
            .hook(api_host, spec.method, spec.route, handler)
            .await
    }
}

/// Boxes a handler closure.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response, Error>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}
