//! How a request and its response travel on NATS.
//!
//! **Subjects** come from `buswarden_rules::subject` and nowhere else:
//! a request is published on
//! `<plane>.<trust>.<port>.<caller>.<dest>.<pos>.<METHOD>.<path…>` and its
//! response on `<plane>.reply._.<responder>.<caller>.<caller-id>`. NATS
//! reply-to (`_INBOX`) is never used: each connector subscribes once to
//! `<plane>.reply._.*.<own-host>.<own-id>` and correlates responses by message
//! id. The method and path are in the subject; nothing else is.
//!
//! **Request message**
//!
//! | part | content |
//! |---|---|
//! | `Microbus-Msg-Id` | 128-bit random id, 32 lower-case hex digits; the response repeats it |
//! | `Microbus-From-Id` | the caller's instance id (`id-…`): where the response goes |
//! | `Microbus-Multicast` | `1` when the caller collects every responder (multicast, events): responders then send an `Ack` first |
//! | `Microbus-Query` | the query string of a raw-call URL (without `?`), when there is one |
//! | `Microbus-Actor` | the actor token, carried from the inbound request being handled |
//! | `Microbus-Baggage-*` | baggage, carried like the actor |
//! | other headers | a web request's own headers |
//! | payload | the body: for typed functions a JSON object of the non-path arguments by name; for web endpoints the raw body |
//!
//! **Response message** (on the reply subject)
//!
//! | part | content |
//! |---|---|
//! | `Microbus-Msg-Id` | the request's id |
//! | `Microbus-Op-Code` | `Ack` on a receipt acknowledgement (multicast only, no body); absent on a response |
//! | `Microbus-From-Id` | multicast only: the responder's instance id (tells replicas apart) |
//! | `Microbus-Status` | HTTP-like status, absent for 200; 400 and above is an error |
//! | other headers | a web response's headers |
//! | payload | on success the body (typed functions: the JSON of the result); on error the UTF-8 error message |
//!
//! The caller's hostname is not a header: it is the subject's source segment,
//! which the broker pins. Receivers give handlers a `Microbus-From-Host`
//! header set from that segment (any copy the publisher wrote, in any
//! spelling, is removed first). Envelope headers are kept to a minimum
//! because each costs parsing in the client and the server on every message.
//!
//! A caller accepts a response only when its responder segment (pinned by the
//! broker to the responder's own hostname) is the host it called.

use std::fmt;

/// Header: message id.
pub const MSG_ID: &str = "Microbus-Msg-Id";
/// Header: operation code (`Req`, `Res`, `Ack`).
pub const OP_CODE: &str = "Microbus-Op-Code";
/// Header given to handlers: the broker-verified caller hostname (set on
/// receipt from the subject; never trusted from the wire).
pub const FROM_HOST: &str = "Microbus-From-Host";
/// Header: the sender's instance id.
pub const FROM_ID: &str = "Microbus-From-Id";
/// Header: `1` on multicast requests.
pub const MULTICAST: &str = "Microbus-Multicast";
/// Header: raw-call query string.
pub const QUERY: &str = "Microbus-Query";
/// Header: response status.
pub const STATUS: &str = "Microbus-Status";
/// Header: actor token, propagated.
pub const ACTOR: &str = "Microbus-Actor";
/// Header prefix: baggage, propagated.
pub const BAGGAGE_PREFIX: &str = "Microbus-Baggage-";

/// Op code of a receipt acknowledgement.
pub const OP_ACK: &str = "Ack";

/// Whether a header is part of the runtime's envelope (not a user header).
pub(crate) fn is_envelope(name: &str) -> bool {
    let n = name.as_bytes();
    n.len() > 8 && n[..8].eq_ignore_ascii_case(b"microbus")
}

/// A request as a handler of a `#[web]` endpoint sees it, and as a web
/// client method sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The method (`GET`, …); empty means the endpoint's method (`POST` for `ANY`).
    pub method: String,
    /// The path with its leading `/`; empty means the route's path (which
    /// must then have no arguments).
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// Headers, in order. On receipt: the caller's headers, the actor and
    /// baggage, and `Microbus-From-Host`, the broker-verified caller (the
    /// transport headers — message id, caller instance, multicast flag,
    /// query — are not repeated here).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// An empty request.
    pub fn new() -> Self {
        Request::default()
    }

    /// Sets the method.
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        self.method = method.into();
        self
    }

    /// Sets the path (with its leading `/`).
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets the query string.
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The broker-verified caller hostname of a received request.
    pub fn from_host(&self) -> Option<&str> {
        self.header(FROM_HOST)
    }
}

/// A response: status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP-like status.
    pub status: u16,
    /// Headers, in order (envelope headers removed on receipt).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

impl Response {
    /// A 200 response with a body.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Response {
            body: body.into(),
            ..Response::default()
        }
    }

    /// Sets the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", self.status, self.body.len())
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads a header of a NATS message as text.
pub(crate) fn nats_header<'a>(
    headers: Option<&'a async_nats::HeaderMap>,
    name: &str,
) -> Option<&'a str> {
    headers?.get(name).map(|v| v.as_str())
}

/// Copies a NATS header map into ordered pairs.
pub(crate) fn header_pairs(
    headers: Option<&async_nats::HeaderMap>,
    keep_envelope: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(h) = headers {
        for (name, values) in h.iter() {
            let name: &str = name.as_ref();
            if !keep_envelope && is_envelope(name) {
                continue;
            }
            for v in values {
                out.push((name.to_string(), v.as_str().to_string()));
            }
        }
    }
    out
}
