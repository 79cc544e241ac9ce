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
    /// The required claims (`claims = "…"`): the expression as written and
    /// its compiled check.
    claims: Option<(&'static str, crate::claims::Check)>,
    parsed: OnceLock<Result<(Method, Route), Error>>,
    api_host: OnceLock<Result<Hostname, Error>>,
}

impl Spec {
    /// A spec (the macro has validated both strings at compile time).
    pub const fn new(method: &'static str, route: &'static str) -> Self {
        Spec {
            method,
            route,
            claims: None,
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

    /// The same spec with required claims (the macro compiled `check` from
    /// `text`).
    pub const fn with_claims(mut self, text: &'static str, check: crate::claims::Check) -> Self {
        self.claims = Some((text, check));
        self
    }

    /// The required claims: the expression as written and its compiled
    /// check.
    pub fn claims(&self) -> Option<(&'static str, crate::claims::Check)> {
        self.claims
    }

    /// An endpoint serving this spec (with its required claims, checked
    /// against the verified actor before the handler runs).
    pub fn endpoint<F, Fut>(&self, name: &'static str, f: F) -> Endpoint
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Response, Error>> + Send + 'static,
    {
        let ep = Endpoint::new(name, self.method, self.route, f);
        match self.claims {
            Some((text, check)) => ep.with_claims(text, check),
            None => ep,
        }
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
        let mut out = Vec::new();
        if !route
            .segments
            .iter()
            .any(|s| matches!(s, Segment::Arg(_) | Segment::Greedy(_)))
        {
            // No path arguments: nothing to split (most routes).
            return Ok(out);
        }
        let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
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

/// Whether a typed call of this method sends its arguments in the query
/// string (methods without a request body) rather than a JSON object body.
pub fn args_in_query(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS")
}

/// Appends `text` form-encoded (`application/x-www-form-urlencoded`).
fn push_form(out: &mut String, text: &str) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes a form-encoded query component (`+` is a space, `%xx` a byte);
/// invalid escapes are kept as written.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The arguments of a typed call as they travel.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The query string (methods without a body).
    pub query: String,
    /// The JSON object of arguments (methods with a body).
    pub body: Vec<u8>,
}

/// Named arguments, as Microbus encodes them: in the query string for
/// methods without a body (a string as itself, anything else as its JSON
/// text), a JSON object in the body otherwise; plus the path arguments.
/// Encoding writes the object directly (no intermediate JSON values).
#[derive(Debug, Default)]
pub struct Args<'a> {
    out: Vec<u8>,
    query: Option<String>,
    /// The JSON object of a received request's arguments (checked to be
    /// one; each argument is read out of it in place, without building
    /// the object).
    body: &'a [u8],
    /// Path and query arguments of a received request, as text.
    text: Vec<(String, String)>,
}

impl<'a> Args<'a> {
    /// No arguments yet, for a JSON body.
    pub fn new() -> Self {
        Args::default()
    }

    /// No arguments yet, encoded as the typed call of `spec` sends them.
    pub fn for_call(spec: &Spec) -> Result<Self, Error> {
        let (method, _) = spec.get()?;
        let sent = if method.is_any() {
            "POST"
        } else {
            method.as_str()
        };
        Ok(Args {
            query: args_in_query(sent).then(String::new),
            ..Args::default()
        })
    }

    /// Adds an argument.
    pub fn put<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        let bad = |e: serde_json::Error| Error::Encode {
            what: format!("argument {name}"),
            reason: e.to_string(),
        };
        if let Some(query) = &mut self.query {
            let json = serde_json::to_string(value).map_err(bad)?;
            if json == "null" {
                return Ok(());
            }
            let text = if json.starts_with('"') {
                serde_json::from_str::<String>(&json).map_err(bad)?
            } else {
                json
            };
            if !query.is_empty() {
                query.push('&');
            }
            push_form(query, name);
            query.push('=');
            push_form(query, &text);
            return Ok(());
        }
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
        encoded.map_err(bad)
    }

    /// The query string and body to send.
    pub fn finish(mut self) -> Result<Encoded, Error> {
        if let Some(query) = self.query {
            return Ok(Encoded {
                query,
                body: Vec::new(),
            });
        }
        if self.out.is_empty() {
            self.out.push(b'{');
        }
        self.out.push(b'}');
        Ok(Encoded {
            query: String::new(),
            body: self.out,
        })
    }

    /// The body bytes (a JSON object of the arguments).
    pub fn into_body(self) -> Result<Vec<u8>, Error> {
        Ok(Args {
            query: None,
            ..self
        }
        .finish()?
        .body)
    }

    /// The arguments of a received request: the JSON object of its body,
    /// its query arguments and its path arguments.
    pub fn from_request(req: &'a Request, spec: &Spec) -> Result<Self, Error> {
        let body = req.body.as_slice();
        if !body.is_empty() {
            // A JSON object (its members are read by `take`), nothing after.
            let mut de = serde_json::Deserializer::from_slice(body);
            serde::Deserializer::deserialize_map(&mut de, AnyObject)
                .and_then(|()| de.end())
                .map_err(|e| Error::Decode {
                    what: "arguments".into(),
                    reason: e.to_string(),
                })?;
        }
        let mut text = spec.extract(&req.path)?;
        for pair in req.query.split('&').filter(|p| !p.is_empty()) {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            text.push((form_decode(n), form_decode(v)));
        }
        Ok(Args {
            out: Vec::new(),
            query: None,
            body,
            text,
        })
    }

    /// Takes one argument (a missing one decodes from `null`). A path or
    /// query argument is read as a string, or else as JSON text.
    pub fn take<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, Error> {
        let bad = |e: serde_json::Error| Error::Decode {
            what: format!("argument {name}"),
            reason: e.to_string(),
        };
        if let Some(i) = self.text.iter().position(|(n, _)| n == name) {
            let (_, text) = self.text.swap_remove(i);
            return serde_json::from_value(serde_json::Value::String(text.clone()))
                .or_else(|_| serde_json::from_str(&text))
                .map_err(bad);
        }
        let found = if self.body.is_empty() {
            None
        } else {
            // The last member of that name, as Go's encoding/json reads a
            // repeated key.
            let mut de = serde_json::Deserializer::from_slice(self.body);
            serde::Deserializer::deserialize_map(
                &mut de,
                NamedOutput::<T> {
                    name,
                    last: true,
                    _t: PhantomData,
                },
            )
            .map_err(bad)?
        };
        match found {
            Some(v) => Ok(v),
            None => serde_json::from_value(serde_json::Value::Null).map_err(bad),
        }
    }
}

/// Accepts any JSON object, its members unread.
struct AnyObject;

impl<'de> serde::de::Visitor<'de> for AnyObject {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object of named arguments")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }
}

/// A handler's result as a response: a JSON object of its named output
/// (`{"<output>": value}`, as Microbus encodes outputs).
pub fn encode_result<T: Serialize>(
    result: Result<T, Error>,
    output: &str,
) -> Result<Response, Error> {
    let value = result?;
    let bad = |e: serde_json::Error| Error::Encode {
        what: "result".into(),
        reason: e.to_string(),
    };
    // Room for a small output without regrowing.
    let mut body = Vec::with_capacity(128 + output.len());
    body.push(b'{');
    serde_json::to_writer(&mut body, output).map_err(bad)?;
    body.push(b':');
    serde_json::to_writer(&mut body, &value).map_err(bad)?;
    body.push(b'}');
    Ok(Response::ok(body))
}

/// Reads the output named `name` out of a JSON object without building the
/// object: other members are skipped, the named one deserialized in place.
struct NamedOutput<'a, T> {
    name: &'a str,
    /// Of a repeated name: the last member (else the first).
    last: bool,
    _t: PhantomData<T>,
}

/// Whether a key is the output's name (compared without allocating).
struct KeyIs<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an output name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for NamedOutput<'_, T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object of named outputs")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(is) = map.next_key_seed(KeyIs(self.name))? {
            if is && (self.last || found.is_none()) {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A response's body as the typed result: the named output of its JSON
/// object (a missing output decodes from `null`).
pub fn decode_result<T: DeserializeOwned>(resp: Response, output: &str) -> Result<T, Error> {
    let bad = |e: serde_json::Error| Error::Decode {
        what: "result".into(),
        reason: e.to_string(),
    };
    let null = || serde_json::from_value(serde_json::Value::Null).map_err(bad);
    if resp.body.is_empty() {
        return null();
    }
    let mut de = serde_json::Deserializer::from_slice(&resp.body);
    let found = serde::Deserializer::deserialize_map(
        &mut de,
        NamedOutput::<T> {
            name: output,
            last: false,
            _t: PhantomData,
        },
    )
    .and_then(|found| de.end().map(|()| found))
    .map_err(bad)?;
    match found {
        Some(value) => Ok(value),
        None => null(),
    }
}

/// Decodes every response of a multicast.
pub fn decode_all<T: DeserializeOwned>(
    all: Vec<Result<Response, Error>>,
    output: &str,
) -> Vec<Result<T, Error>> {
    all.into_iter()
        .map(|r| r.and_then(|r| decode_result(r, output)))
        .collect()
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
        let (target, method) = self.target(api_host, spec, path)?;
        // A call to an `ANY` endpoint is sent as POST: that is the method
        // gencreds grants for it, so any other method would be a call the
        // allow-list lacks. Refused here, before anything is published.
        if !req.method.is_empty() && !req.method.eq_ignore_ascii_case(method.as_str()) {
            return Err(Error::InvalidMethod {
                method: req.method.clone(),
                reason: format!(
                    "this endpoint is called with {} (the method its grant names); leave the request's method empty",
                    method.as_str()
                ),
            });
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
        args: Encoded,
    ) -> Result<Response, Error> {
        let live = self.svc.live_arc()?;
        let (target, method) = self.target(api_host, spec, spec.fill(path)?)?;
        live.unicast(&target, &method, Outgoing::from_args(args))
            .await
    }

    /// A typed multicast call.
    pub async fn multicast(
        &self,
        api_host: &str,
        spec: &Spec,
        path: &[(&str, String)],
        args: Encoded,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        let live = self.svc.live_arc()?;
        let (target, method) = self.target(api_host, spec, spec.fill(path)?)?;
        live.multicast_to(&target, &method, Outgoing::from_args(args))
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
        args: Encoded,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        self.svc
            .trigger_args(api_host, spec.method, spec.route, spec.fill(path)?, args)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_arguments_round_trip_as_microbus_encodes_them() {
        let spec = Spec::new("GET", "/items/{id}");
        let mut args = Args::for_call(&spec).unwrap();
        args.put("op", "a + b & c=d").unwrap();
        args.put("n", &42).unwrap();
        args.put("on", &true).unwrap();
        args.put("tags", &["x", "y"]).unwrap();
        args.put("none", &Option::<u8>::None).unwrap();
        let sent = args.finish().unwrap();
        assert!(sent.body.is_empty());
        assert_eq!(
            sent.query,
            "op=a+%2B+b+%26+c%3Dd&n=42&on=true&tags=%5B%22x%22%2C%22y%22%5D"
        );
        let req = Request::new().with_path("/items/7").with_query(sent.query);
        let mut got = Args::from_request(&req, &spec).unwrap();
        assert_eq!(got.take::<String>("op").unwrap(), "a + b & c=d");
        assert_eq!(got.take::<i64>("n").unwrap(), 42);
        assert!(got.take::<bool>("on").unwrap());
        assert_eq!(got.take::<Vec<String>>("tags").unwrap(), ["x", "y"]);
        assert_eq!(got.take::<u32>("id").unwrap(), 7);
        assert_eq!(got.take::<Option<u8>>("none").unwrap(), None);
        // A method with a body sends a JSON object.
        let spec = Spec::new("POST", "/square");
        let mut args = Args::for_call(&spec).unwrap();
        args.put("x", &3).unwrap();
        let sent = args.finish().unwrap();
        assert_eq!(
            (sent.query.as_str(), &sent.body[..]),
            ("", &br#"{"x":3}"#[..])
        );
    }

    #[test]
    fn body_arguments_are_read_in_place_as_go_reads_them() {
        let spec = Spec::new("POST", "/square");
        let req = |body: &str| Request::new().with_body(body.as_bytes().to_vec());
        let r = req(r#"{"other":{"deep":[1,{"x":"}"}]},"x":3,"name":"ünï \"q\""}"#);
        let mut got = Args::from_request(&r, &spec).unwrap();
        assert_eq!(got.take::<i64>("x").unwrap(), 3);
        assert_eq!(got.take::<String>("name").unwrap(), "ünï \"q\"");
        // Missing: null.
        assert_eq!(got.take::<Option<i64>>("absent").unwrap(), None);
        assert!(got.take::<i64>("absent").is_err());
        // A repeated key: the last one, as Go's encoding/json.
        let r = req(r#"{"x":1,"x":2}"#);
        assert_eq!(
            Args::from_request(&r, &spec)
                .unwrap()
                .take::<i64>("x")
                .unwrap(),
            2
        );
        // Not an object, or trailing bytes: refused before any argument is read.
        for bad in ["[1]", "3", r#"{"x":1} x"#, r#"{"x":"#, "{", "nul"] {
            assert!(
                matches!(
                    Args::from_request(&req(bad), &spec),
                    Err(Error::Decode { .. })
                ),
                "{bad}"
            );
        }
        // A wrong type is a decode error naming the argument.
        let r = req(r#"{"x":"three"}"#);
        let err = Args::from_request(&r, &spec)
            .unwrap()
            .take::<i64>("x")
            .unwrap_err();
        assert!(
            matches!(err, Error::Decode { ref what, .. } if what == "argument x"),
            "{err:?}"
        );
    }

    #[test]
    fn outputs_are_named_members_of_an_object() {
        let resp = encode_result(Ok(vec![1, 2]), "xSquared").unwrap();
        assert_eq!(resp.body, br#"{"xSquared":[1,2]}"#);
        let back: Vec<u8> = decode_result(resp, "xSquared").unwrap();
        assert_eq!(back, [1, 2]);
        // Other outputs are skipped; a missing one reads as null.
        let go = Response::ok(br#"{"a":{"deep":[1,{"x":2}]},"sum":5,"z":"q"}"#.to_vec());
        assert_eq!(decode_result::<i64>(go.clone(), "sum").unwrap(), 5);
        assert_eq!(
            decode_result::<Option<i64>>(go.clone(), "missing").unwrap(),
            None
        );
        assert!(decode_result::<i64>(go, "missing").is_err());
        assert!(decode_result::<i64>(Response::ok(b"[1]".to_vec()), "sum").is_err());
        assert!(decode_result::<i64>(Response::ok(br#"{"sum":1} x"#.to_vec()), "sum").is_err());
    }
}
