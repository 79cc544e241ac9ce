//! How a request and its response travel on NATS: Microbus's message format.
//!
//! **Subjects** come from `buswarden_rules::subject` and nowhere else:
//! a request is published on
//! `<plane>.<trust>.<port>.<caller>.<dest>.<pos>.<METHOD>.<path…>` and its
//! acknowledgement and response on `<plane>.reply._.<responder>.<caller>.<caller-id>`.
//! NATS reply-to (`_INBOX`) and NATS headers are never used: each connector
//! subscribes once to `<plane>.reply._.*.<own-host>.<own-id>` and correlates
//! replies by message id.
//!
//! **The payload** is HTTP/1.1 text, as a Go Microbus service writes and
//! reads it (`docs/formats.md` has the details and an example):
//!
//! - a request is `METHOD <absolute URI> HTTP/1.1`, `Host`, the headers, a
//!   blank line and the body (`Content-Length`, or `Transfer-Encoding:
//!   chunked` on receipt);
//! - a response, an acknowledgement and an error are `HTTP/1.1 <status>
//!   <reason>`, the headers, a blank line and the body.
//!
//! The transport travels in `Microbus-*` headers inside the payload:
//! `Microbus-Op-Code` (`Req`, `Res`, `Ack`, `Err`), `Microbus-Msg-Id` (8
//! random alphanumerics), `Microbus-From-Host`, `Microbus-From-Id`,
//! `Microbus-From-Version`, `Microbus-Time-Budget` (a Go duration; a bare
//! integer is milliseconds), `Microbus-Call-Depth`, `Microbus-Fragment`
//! (`i/n`). They are decoded into the typed fields of an [`Envelope`];
//! every other header (`Microbus-Actor`, `Microbus-Baggage-*`,
//! `traceparent`, `X-Forwarded-*`, `Accept-Language`, a web request's own
//! headers) stays in [`Envelope::headers`] in order.
//!
//! Decoding is "parse, don't validate": [`Envelope::decode`] turns untrusted
//! bytes into a typed [`Envelope`] and its body, or a typed
//! [`EnvelopeError`]. It uses `httparse` with a fixed header array
//! ([`MAX_HEADERS`]), refuses a head over [`MAX_HEAD`] bytes, a body whose
//! length disagrees with the payload, and conflicting transport headers; it
//! never panics and never allocates more than the payload's size.
//!
//! **Certified caller identity.** A `Microbus-From-Host` header is never
//! trusted: a receiver replaces it with the subject's source segment, which
//! the broker pins. A caller accepts a reply only when its responder segment
//! (pinned by the broker to the responder's own hostname) is the host it
//! called.

use bytes::{BufMut, Bytes, BytesMut};
use compact_str::CompactString;
use std::fmt;
use std::time::Duration;

/// Header: the caller's (or responder's) hostname. Given to handlers as the
/// broker-verified caller, set on receipt from the subject.
pub const FROM_HOST: &str = "Microbus-From-Host";
/// Header: the sender's instance id (`id-…`).
pub const FROM_ID: &str = "Microbus-From-Id";
/// Header: the sender's version.
pub const FROM_VERSION: &str = "Microbus-From-Version";
/// Header: the message id.
pub const MSG_ID: &str = "Microbus-Msg-Id";
/// Header: the op code (`Req`, `Res`, `Ack`, `Err`).
pub const OP_CODE: &str = "Microbus-Op-Code";
/// Header: the time budget left for the request.
pub const TIME_BUDGET: &str = "Microbus-Time-Budget";
/// Header: how many hops the request has made.
pub const CALL_DEPTH: &str = "Microbus-Call-Depth";
/// Header: `i/n`, the fragment of a large body.
pub const FRAGMENT: &str = "Microbus-Fragment";
/// Header: the responder's locality (hyphen form, without `loc-`), on acks
/// and responses of an instance that has one (Microbus's `SetLocality`).
pub const LOCALITY: &str = "Microbus-Locality";
/// Header: actor token, propagated.
pub const ACTOR: &str = "Microbus-Actor";
/// Header prefix: baggage, propagated.
pub const BAGGAGE_PREFIX: &str = "Microbus-Baggage-";
/// Header: the W3C trace context, propagated.
pub const TRACEPARENT: &str = "traceparent";
/// Header: the caller's language, propagated.
pub const ACCEPT_LANGUAGE: &str = "Accept-Language";
/// Header prefix: the ingress's forwarding headers, propagated.
pub const FORWARDED_PREFIX: &str = "X-Forwarded-";

/// Most bytes the request or status line and the headers may take.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most headers a message may carry.
pub const MAX_HEADERS: usize = 128;
/// Headers the decoder makes room for before it makes room for
/// [`MAX_HEADERS`].
const FEW_HEADERS: usize = 24;
/// Longest message id accepted.
const MAX_MSG_ID: usize = 64;
/// Longest sender instance id or version accepted.
const MAX_FROM_ID: usize = 64;
/// Longest time budget: 15 minutes.
pub const MAX_TIME_BUDGET: Duration = Duration::from_secs(15 * 60);
/// Most fragments one body may be split into.
pub const MAX_FRAGMENTS: u32 = 4096;

/// Whether a header is a transport header (decoded into an [`Envelope`]
/// field, never a user header): `Microbus-*` except the propagated actor
/// and baggage.
pub(crate) fn is_envelope(name: &str) -> bool {
    has_prefix(name, "Microbus-") && !is_propagated_microbus(name)
}

fn is_propagated_microbus(name: &str) -> bool {
    name.eq_ignore_ascii_case(ACTOR) || has_prefix(name, BAGGAGE_PREFIX)
}

/// Whether a header of the inbound request flows on to every outbound call
/// made while handling it (Microbus's propagation set).
pub(crate) fn is_propagated(name: &str) -> bool {
    is_propagated_microbus(name)
        || name.eq_ignore_ascii_case(ACCEPT_LANGUAGE)
        || has_prefix(name, FORWARDED_PREFIX)
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
    /// Headers, in order. On receipt: the caller's headers, the propagated
    /// ones, and `Microbus-From-Host`, the broker-verified caller (the other
    /// transport headers are not repeated here).
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
    /// HTTP status.
    pub status: u16,
    /// Headers, in order (transport headers removed on receipt).
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

/// Case-insensitive prefix test that is safe on any UTF-8 boundary.
pub(crate) fn has_prefix(name: &str, prefix: &str) -> bool {
    let (n, p) = (name.as_bytes(), prefix.as_bytes());
    n.len() > p.len() && n[..p.len()].eq_ignore_ascii_case(p)
}

/// What a message is: its `Microbus-Op-Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// `Req`: a request (or an event).
    Request,
    /// `Res`: a response (any status).
    Response,
    /// `Ack`: a receipt acknowledgement (202, or 100 for a fragment).
    Ack,
    /// `Err`: an error response; the body is Microbus's error JSON.
    Error,
}

impl Kind {
    /// The op code as written.
    pub fn op_code(self) -> &'static str {
        match self {
            Kind::Request => "Req",
            Kind::Response => "Res",
            Kind::Ack => "Ack",
            Kind::Error => "Err",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        match text {
            "Req" => Some(Kind::Request),
            "Res" => Some(Kind::Response),
            "Ack" => Some(Kind::Ack),
            "Err" => Some(Kind::Error),
            _ => None,
        }
    }
}

/// The decoded head of a message (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What the message is.
    pub kind: Kind,
    /// Requests: the method token; empty otherwise.
    pub method: CompactString,
    /// Requests: the absolute URI of the request line; empty otherwise.
    pub url: String,
    /// Responses, acks and errors: the HTTP status; `0` on requests.
    pub status: u16,
    /// The message id; a reply repeats its request's.
    pub msg_id: CompactString,
    /// The sender's hostname as it wrote it (receivers trust the subject instead).
    pub from_host: CompactString,
    /// The sender's instance id (`id-…`), or empty.
    pub from_id: CompactString,
    /// The sender's version, or empty.
    pub from_version: CompactString,
    /// The time budget the caller gives the request.
    pub time_budget: Option<Duration>,
    /// Hops so far (`0` when absent).
    pub call_depth: u32,
    /// `(i, n)`: this is fragment `i` of `n` (1-based).
    pub fragment: Option<(u32, u32)>,
    /// Every other header, in order.
    pub headers: Vec<(String, String)>,
}

/// Why bytes are not a valid message, or a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The head is not complete (no blank line after the headers).
    #[error("message head truncated")]
    Truncated,
    /// The request or status line, or a header line, is not HTTP/1.1 syntax.
    #[error("malformed HTTP head: {0}")]
    Syntax(String),
    /// The head (request or status line and headers) is over [`MAX_HEAD`] bytes.
    #[error("message head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] headers.
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// A transport header is missing.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// A transport header appears twice.
    #[error("header {0} appears more than once")]
    Duplicate(&'static str),
    /// A header's value is not valid for it.
    #[error("invalid value of header {name}: {value:?}")]
    InvalidValue {
        /// The header.
        name: &'static str,
        /// Its value (cut to 64 bytes).
        value: String,
    },
    /// A header name is not an HTTP token.
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value has CR, LF, NUL or another control byte, or is not UTF-8.
    #[error("invalid value of header {0:?}")]
    InvalidHeaderValue(String),
    /// The op code does not fit the first line (`Req` on a request line;
    /// `Res`, `Ack` or `Err` on a status line).
    #[error("op code {op:?} on a {line}")]
    OpCodeMismatch {
        /// The op code.
        op: &'static str,
        /// `request` or `response`.
        line: &'static str,
    },
    /// The request target is not an absolute `http(s)://` URI, or the
    /// method is not a method token.
    #[error("invalid request line: {0}")]
    InvalidRequestLine(String),
    /// The status is not 100-999.
    #[error("invalid status {0}")]
    InvalidStatus(u16),
    /// The body is shorter or longer than `Content-Length`, or a chunked
    /// body is malformed.
    #[error("body does not match its framing: {0}")]
    Body(&'static str),
}

fn cut(value: &str) -> String {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

/// An HTTP token (`tchar`): what a header name and a method may be made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value we write or accept: no control byte but tab.
///
/// An actor token (about 400 bytes) rides on every call, so this runs
/// eight bytes at a time (SWAR): a word is looked at byte by byte only
/// when it holds a byte below 0x20 or a DEL, which for a clean value
/// (tabs aside) is never.
fn valid_header_value(value: &str) -> bool {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let ok = |b: u8| b == b'\t' || (b >= 0x20 && b != 0x7f);
    let mut words = value.as_bytes().chunks_exact(8);
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_ne_bytes(eight);
        // Some byte < 0x20 (exact for any n <= 0x80), or some byte equal
        // to 0x7f (a zero byte in x ^ 0x7f..): see "Bit Twiddling Hacks".
        let below = x.wrapping_sub(LO * 0x20) & !x & HI;
        let del = x ^ (LO * 0x7f);
        let del = del.wrapping_sub(LO) & !del & HI;
        if below | del != 0 && !word.iter().all(|&b| ok(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| ok(b))
}

/// Bytes the headers take in a head (`name: value\r\n` each): what a
/// writer reserves for headers beyond the runtime's own.
pub(crate) fn headers_len(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(n, v)| header_len(n, v)).sum()
}

/// Bytes one header takes in a head (`name: value\r\n`).
pub(crate) fn header_len(name: &str, value: &str) -> usize {
    name.len() + value.len() + 4
}

/// A Go duration string: what Microbus writes in `Microbus-Time-Budget`.
/// Written as whole seconds (`20s`) or whole milliseconds (`1500ms`), both
/// of which Go's `time.ParseDuration` reads.
pub fn format_budget(budget: Duration) -> String {
    let mut out = Vec::new();
    push_budget(&mut out, budget);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes a time budget as the shortest of Go's duration forms that keeps
/// its milliseconds: whole seconds as `20s` (what Go's `Duration.String`
/// writes for them), anything else as whole milliseconds (`1500ms`).
fn push_budget(out: &mut impl BufMut, budget: Duration) {
    // A budget is at most MAX_TIME_BUDGET: u64 milliseconds hold it.
    let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
    let mut n = itoa::Buffer::new();
    if ms > 0 && ms.is_multiple_of(1000) {
        out.put_slice(n.format(ms / 1000).as_bytes());
        out.put_u8(b's');
    } else {
        out.put_slice(n.format(ms).as_bytes());
        out.put_slice(b"ms");
    }
}

/// Parses a time budget: a Go duration (`20s`, `1m30s`, `1.5s`, `250ms`)
/// or a bare integer of milliseconds. `None` for anything else or more than
/// [`MAX_TIME_BUDGET`].
pub fn parse_budget(text: &str) -> Option<Duration> {
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = text.parse().ok()?;
        let d = Duration::from_millis(ms);
        return (d <= MAX_TIME_BUDGET).then_some(d);
    }
    // The forms Go writes for a whole number of seconds or milliseconds
    // (`20s`, `1500ms`), read without the general loop.
    let (digits, per_ms) = match text.strip_suffix("ms") {
        Some(d) => (d, 1),
        None => (text.strip_suffix('s').unwrap_or_default(), 1000),
    };
    if (1..=12).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        let ms = digits.parse::<u64>().ok()?.checked_mul(per_ms)?;
        let d = Duration::from_millis(ms);
        return (d <= MAX_TIME_BUDGET).then_some(d);
    }
    let mut rest = text;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let (num, tail) = rest.split_at(num_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.contains('.') || (whole.is_empty() && frac.is_empty()) || whole.len() > 12 {
            return None;
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut ns = whole.checked_mul(per)?;
        let mut scale = per;
        for d in frac.bytes().take(18) {
            scale /= 10;
            ns += u128::from(d - b'0') * scale;
        }
        total_ns = total_ns.checked_add(ns)?;
        rest = tail;
    }
    let d = Duration::from_nanos(u64::try_from(total_ns).ok()?);
    (d <= MAX_TIME_BUDGET).then_some(d)
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        508 => "Loop Detected",
        _ => "Status",
    }
}

/// Whether a response of this status has no body (HTTP: 1xx, 204, 304).
fn bodyless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Whether a request of this method is written with a `Content-Length` even
/// when its body is empty (as Go does).
fn length_always(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

/// Appends `text` percent-encoding every byte outside `keep` and the
/// unreserved set (an already-encoded `%xx` is kept).
fn push_uri_part(out: &mut impl BufMut, text: &str, keep: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~%".contains(&b) || keep.contains(&b) {
            out.put_u8(b);
        } else {
            out.put_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

/// Head bytes reserved for a request beyond its host, path and query.
const REQUEST_HEAD_ROOM: usize = 448;
/// Head bytes reserved for a response.
const RESPONSE_HEAD_ROOM: usize = 256;

/// Whether a transport header value can be written as is: 1 to 255
/// visible ASCII bytes.
fn transport_value_ok(v: &str) -> bool {
    !v.is_empty() && v.len() <= 255 && v.bytes().all(|b| b.is_ascii_graphic())
}

/// The transport lines that are the same in every message of one
/// connector, rendered once when it connects: `Microbus-From-Host`,
/// `Microbus-From-Id` and, on acks and responses of an instance with a
/// locality, `Microbus-Locality`. No `Microbus-From-Version`: Microbus
/// omits it for version 0, and a buswarden service has no version number.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    lines: Vec<u8>,
    count: usize,
}

impl Sender {
    /// The lines of `from_host`/`from_id`, and `locality` if given.
    pub(crate) fn new(
        from_host: &str,
        from_id: &str,
        locality: Option<&str>,
    ) -> Result<Self, EnvelopeError> {
        let mut lines = Vec::new();
        let mut count = 0;
        for (name, value) in [
            (FROM_HOST, Some(from_host)),
            (FROM_ID, Some(from_id)),
            (LOCALITY, locality),
        ] {
            let Some(value) = value else { continue };
            if !transport_value_ok(value) {
                return Err(EnvelopeError::InvalidHeaderValue(name.into()));
            }
            lines.extend_from_slice(name.as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
            count += 1;
        }
        Ok(Sender { lines, count })
    }
}

/// Writes a message; the caller adds headers, then the body.
pub(crate) struct MessageWriter {
    buf: BytesMut,
    /// Requests of these methods always carry a length.
    length_always: bool,
    bodyless: bool,
    count: usize,
}

impl MessageWriter {
    /// Starts a request: `METHOD scheme://host[:port]/path[?query] HTTP/1.1`
    /// and `Host`. `room`: the body's length plus the bytes of any headers
    /// beyond the runtime's own (an actor token, baggage), so the buffer is
    /// allocated once.
    pub(crate) fn request(
        method: &str,
        host: &str,
        port: u16,
        path: &str,
        query: &str,
        room: usize,
    ) -> Result<Self, EnvelopeError> {
        if !is_token(method) {
            return Err(EnvelopeError::InvalidRequestLine(cut(method)));
        }
        if !is_token(host) {
            return Err(EnvelopeError::InvalidRequestLine(cut(host)));
        }
        // Room for the transport headers, budget, depth and traceparent the
        // runtime writes (about 330 bytes): no regrowth while writing.
        let mut buf = crate::arena::take(
            REQUEST_HEAD_ROOM + host.len() * 2 + path.len() + query.len() + room,
        );
        buf.extend_from_slice(method.as_bytes());
        let scheme: &[u8] = if port == 80 {
            b" http://"
        } else {
            b" https://"
        };
        buf.extend_from_slice(scheme);
        buf.extend_from_slice(host.as_bytes());
        let mut authority_port = itoa::Buffer::new();
        if port != 443 && port != 80 {
            buf.put_u8(b':');
            buf.extend_from_slice(authority_port.format(port).as_bytes());
        }
        if !path.starts_with('/') {
            buf.put_u8(b'/');
        }
        push_uri_part(&mut buf, path, b"/!$&'()*+,;=:@");
        if !query.is_empty() {
            buf.put_u8(b'?');
            push_uri_part(&mut buf, query, b"/?!$&'()*+,;=:@");
        }
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        buf.extend_from_slice(host.as_bytes());
        if port != 443 && port != 80 {
            buf.put_u8(b':');
            buf.extend_from_slice(authority_port.format(port).as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        Ok(MessageWriter {
            buf,
            length_always: length_always(method),
            bodyless: false,
            count: 1,
        })
    }

    /// Starts a response, an ack or an error: `HTTP/1.1 <status> <reason>`.
    pub(crate) fn response(status: u16, body_len: usize) -> Result<Self, EnvelopeError> {
        if !(100..=999).contains(&status) {
            return Err(EnvelopeError::InvalidStatus(status));
        }
        let mut buf = crate::arena::take(RESPONSE_HEAD_ROOM + body_len);
        buf.extend_from_slice(b"HTTP/1.1 ");
        buf.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
        buf.put_u8(b' ');
        buf.extend_from_slice(reason(status).as_bytes());
        buf.extend_from_slice(b"\r\n");
        Ok(MessageWriter {
            buf,
            length_always: true,
            bodyless: bodyless(status),
            count: 0,
        })
    }

    /// Adds a header. Framing headers (`Content-Length`,
    /// `Transfer-Encoding`, `Host`) are the writer's own and are skipped.
    pub(crate) fn header(&mut self, name: &str, value: &str) -> Result<(), EnvelopeError> {
        if !is_token(name) {
            return Err(EnvelopeError::InvalidHeaderName(cut(name)));
        }
        if !valid_header_value(value) {
            return Err(EnvelopeError::InvalidHeaderValue(cut(name)));
        }
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("host")
        {
            return Ok(());
        }
        if self.count + 1 >= MAX_HEADERS {
            return Err(EnvelopeError::TooManyHeaders);
        }
        if self.buf.len() + name.len() + value.len() + 4 > MAX_HEAD - 32 {
            return Err(EnvelopeError::HeadTooLarge);
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        self.count += 1;
        Ok(())
    }

    /// Adds `Microbus-Time-Budget` (whole seconds as `20s`, else whole
    /// milliseconds as `1500ms`: Go durations) and `Microbus-Call-Depth`,
    /// written in place.
    pub(crate) fn budget_and_depth(&mut self, budget: Duration, depth: u32) {
        let mut n = itoa::Buffer::new();
        self.buf.extend_from_slice(TIME_BUDGET.as_bytes());
        self.buf.extend_from_slice(b": ");
        push_budget(&mut self.buf, budget);
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(CALL_DEPTH.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(n.format(depth).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        self.count += 2;
    }

    /// Adds a `traceparent` of `trace` (32 hex digits, or a new random
    /// trace), a new random span id and `flags`, written in place.
    pub(crate) fn traceparent(&mut self, trace: Option<(&str, &str)>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.buf.extend_from_slice(b"traceparent: 00-");
        let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
        let (trace, flags) = trace.unwrap_or(("", "01"));
        if hex(trace, 32) {
            self.buf.extend_from_slice(trace.as_bytes());
        } else {
            let t: u128 = rand::random();
            self.buf
                .extend((0..32).rev().map(|i| HEX[((t >> (i * 4)) & 0xf) as usize]));
        }
        self.buf.put_u8(b'-');
        let span: u64 = rand::random();
        self.buf.extend(
            (0..16)
                .rev()
                .map(|i| HEX[((span >> (i * 4)) & 0xf) as usize]),
        );
        self.buf.put_u8(b'-');
        self.buf.extend_from_slice(if hex(flags, 2) {
            flags.as_bytes()
        } else {
            b"01"
        });
        self.buf.extend_from_slice(b"\r\n");
        self.count += 1;
    }

    /// Adds the transport headers of a message: the sender's lines (written
    /// once per connector, see [`Sender`]), then `Microbus-Msg-Id` (a
    /// message id the connector made or decoded, checked here) and
    /// `Microbus-Op-Code`.
    pub(crate) fn transport(
        &mut self,
        kind: Kind,
        msg_id: &str,
        sender: &Sender,
    ) -> Result<(), EnvelopeError> {
        if !transport_value_ok(msg_id) {
            return Err(EnvelopeError::InvalidHeaderValue(MSG_ID.into()));
        }
        self.buf.extend_from_slice(&sender.lines);
        for (name, value) in [(MSG_ID, msg_id), (OP_CODE, kind.op_code())] {
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.extend_from_slice(b": ");
            self.buf.extend_from_slice(value.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        }
        self.count += sender.count + 2;
        Ok(())
    }

    /// Closes the head and appends the body.
    pub(crate) fn finish(mut self, body: &[u8]) -> Bytes {
        if self.bodyless {
            self.buf.extend_from_slice(b"\r\n");
            return crate::arena::freeze(self.buf);
        }
        if !body.is_empty() || self.length_always {
            self.buf.extend_from_slice(b"Content-Length: ");
            self.buf
                .extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(body);
        crate::arena::freeze(self.buf)
    }
}

/// One transport header, at most once.
fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), EnvelopeError> {
    if slot.is_some() {
        return Err(EnvelopeError::Duplicate(name));
    }
    *slot = Some(value);
    Ok(())
}

fn invalid(name: &'static str, value: &str) -> EnvelopeError {
    EnvelopeError::InvalidValue {
        name,
        value: cut(value),
    }
}

/// An identifier-like value: 1 to `max` visible ASCII bytes.
fn ident(name: &'static str, value: &str, max: usize) -> Result<CompactString, EnvelopeError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(name, value));
    }
    Ok(CompactString::from(value))
}

fn parse_fragment(value: &str) -> Option<(u32, u32)> {
    let (i, n) = value.split_once('/')?;
    let (i, n): (u32, u32) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
    (i >= 1 && i <= n && n <= MAX_FRAGMENTS).then_some((i, n))
}

/// Reads a chunked body: every chunk length checked against what is left.
fn dechunk(data: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let rest = &data[at..];
        let line_end = rest
            .windows(2)
            .take(64)
            .position(|w| w == b"\r\n")
            .ok_or(EnvelopeError::Body("chunk size line"))?;
        let line = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| EnvelopeError::Body("chunk size line"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| EnvelopeError::Body("chunk size"))?;
        at += line_end + 2;
        if size == 0 {
            // No trailers: the final CRLF ends the message.
            return if &data[at..] == b"\r\n" {
                Ok(out)
            } else {
                Err(EnvelopeError::Body("chunked trailer"))
            };
        }
        let end = at
            .checked_add(size)
            .filter(|e| e + 2 <= data.len())
            .ok_or(EnvelopeError::Body("chunk runs past the message"))?;
        out.extend_from_slice(&data[at..end]);
        if &data[end..end + 2] != b"\r\n" {
            return Err(EnvelopeError::Body("chunk not followed by CRLF"));
        }
        at = end + 2;
    }
}

/// The framing headers and the transport headers, read off the raw headers.
#[derive(Default)]
struct Transport {
    op: Option<Kind>,
    msg_id: Option<CompactString>,
    from_host: Option<CompactString>,
    from_id: Option<CompactString>,
    from_version: Option<CompactString>,
    budget: Option<Duration>,
    depth: Option<u32>,
    fragment: Option<(u32, u32)>,
    length: Option<usize>,
    chunked: bool,
}

/// A header the decoder reads into a field (compared by length first: most
/// headers are compared with at most two names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    TransferEncoding,
    Host,
    OpCode,
    MsgId,
    FromHost,
    FromId,
    FromVersion,
    TimeBudget,
    CallDepth,
    Fragment,
}

fn field(name: &str) -> Option<Field> {
    let candidates: &[(&str, Field)] = match name.len() {
        4 => &[("host", Field::Host)],
        14 => &[("content-length", Field::ContentLength)],
        15 => &[(MSG_ID, Field::MsgId)],
        16 => &[(OP_CODE, Field::OpCode), (FROM_ID, Field::FromId)],
        17 => &[
            ("transfer-encoding", Field::TransferEncoding),
            (FRAGMENT, Field::Fragment),
        ],
        18 => &[(FROM_HOST, Field::FromHost)],
        19 => &[(CALL_DEPTH, Field::CallDepth)],
        20 => &[(TIME_BUDGET, Field::TimeBudget)],
        21 => &[(FROM_VERSION, Field::FromVersion)],
        _ => &[],
    };
    candidates
        .iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map(|(_, f)| *f)
}

/// `part`, a slice of the bytes `text` was read from, as a slice of `text`
/// (a value's ends are ASCII bytes, so they are char boundaries).
fn within<'t>(text: &'t str, part: &[u8]) -> Option<&'t str> {
    let at = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let v = text.get(at..at.checked_add(part.len())?)?;
    debug_assert_eq!(v.as_bytes(), part);
    Some(v)
}

/// The transport fields and the other headers of a parsed head (`head`:
/// its bytes, checked as UTF-8 once rather than value by value).
fn read_headers(
    raw: &[httparse::Header<'_>],
    head: &[u8],
) -> Result<(Transport, Vec<(String, String)>), EnvelopeError> {
    let text = std::str::from_utf8(head).ok();
    let mut t = Transport::default();
    let mut headers = Vec::new();
    for h in raw {
        // httparse admits only tab, visible ASCII, space and bytes 0x80 and
        // up in a value (no CR, LF or other control byte): what is left to
        // check is UTF-8.
        let value = match text.and_then(|text| within(text, h.value)) {
            Some(v) => v,
            None => std::str::from_utf8(h.value)
                .map_err(|_| EnvelopeError::InvalidHeaderValue(cut(h.name)))?,
        };
        let name = h.name;
        match field(name) {
            None => headers.push((name.to_string(), value.to_string())),
            Some(Field::ContentLength) => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| invalid("Content-Length", value))?;
                set_once(&mut t.length, "Content-Length", n)?;
            }
            Some(Field::TransferEncoding) => {
                if !value.eq_ignore_ascii_case("chunked") || t.chunked {
                    return Err(invalid("Transfer-Encoding", value));
                }
                t.chunked = true;
            }
            // The request line's absolute URI names the host.
            Some(Field::Host) => {}
            Some(Field::OpCode) => {
                let op = Kind::parse(value).ok_or_else(|| invalid(OP_CODE, value))?;
                set_once(&mut t.op, OP_CODE, op)?;
            }
            Some(Field::MsgId) => {
                set_once(&mut t.msg_id, MSG_ID, ident(MSG_ID, value, MAX_MSG_ID)?)?
            }
            Some(Field::FromHost) => {
                set_once(&mut t.from_host, FROM_HOST, ident(FROM_HOST, value, 255)?)?
            }
            Some(Field::FromId) => {
                set_once(&mut t.from_id, FROM_ID, ident(FROM_ID, value, MAX_FROM_ID)?)?
            }
            Some(Field::FromVersion) => {
                let v = ident(FROM_VERSION, value, MAX_FROM_ID)?;
                set_once(&mut t.from_version, FROM_VERSION, v)?;
            }
            Some(Field::TimeBudget) => {
                let b = parse_budget(value).ok_or_else(|| invalid(TIME_BUDGET, value))?;
                set_once(&mut t.budget, TIME_BUDGET, b)?;
            }
            Some(Field::CallDepth) => {
                let d = value
                    .parse::<u32>()
                    .map_err(|_| invalid(CALL_DEPTH, value))?;
                set_once(&mut t.depth, CALL_DEPTH, d)?;
            }
            Some(Field::Fragment) => {
                let f = parse_fragment(value).ok_or_else(|| invalid(FRAGMENT, value))?;
                set_once(&mut t.fragment, FRAGMENT, f)?;
            }
        }
    }
    if t.length.is_some() && t.chunked {
        return Err(EnvelopeError::Body(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    Ok((t, headers))
}

/// The body after a head of `head_len` bytes, framed as the headers say.
/// `to_end`: without a length, the body runs to the end (responses);
/// otherwise it is empty (requests).
fn body_of(
    payload: &Bytes,
    head_len: usize,
    t: &Transport,
    to_end: bool,
    bodyless: bool,
) -> Result<Bytes, EnvelopeError> {
    let rest = payload.len() - head_len;
    if bodyless {
        return match (t.length, t.chunked, rest) {
            (None | Some(0), false, 0) => Ok(Bytes::new()),
            _ => Err(EnvelopeError::Body("a body on a bodyless status")),
        };
    }
    if t.chunked {
        return dechunk(&payload[head_len..]).map(Bytes::from);
    }
    match t.length {
        Some(n) if n == rest => Ok(payload.slice(head_len..)),
        Some(n) if n > rest => Err(EnvelopeError::Body("shorter than Content-Length")),
        Some(_) => Err(EnvelopeError::Body("bytes after Content-Length")),
        None if to_end => Ok(payload.slice(head_len..)),
        None if rest == 0 => Ok(Bytes::new()),
        None => Err(EnvelopeError::Body("a request body without a length")),
    }
}

fn syntax(e: httparse::Error) -> EnvelopeError {
    match e {
        httparse::Error::TooManyHeaders => EnvelopeError::TooManyHeaders,
        other => EnvelopeError::Syntax(other.to_string()),
    }
}

impl Envelope {
    /// Decodes a message: its head and its body.
    pub fn decode(payload: &Bytes) -> Result<(Envelope, Bytes), EnvelopeError> {
        // Most messages carry a dozen headers: parse with a small array
        // first (cleared per message), and with the full one only when the
        // head has more.
        let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
        match Self::decode_with(payload, &mut few) {
            Err(EnvelopeError::TooManyHeaders) => {
                let mut all = [httparse::EMPTY_HEADER; MAX_HEADERS];
                Self::decode_with(payload, &mut all)
            }
            other => other,
        }
    }

    fn decode_with<'h>(
        payload: &'h Bytes,
        raw: &mut [httparse::Header<'h>],
    ) -> Result<(Envelope, Bytes), EnvelopeError> {
        let is_request = !payload.starts_with(b"HTTP/");
        let head = &payload[..payload.len().min(MAX_HEAD)];
        if is_request {
            let mut req = httparse::Request::new(raw);
            let head_len = match req.parse(head).map_err(syntax)? {
                httparse::Status::Complete(n) => n,
                httparse::Status::Partial if payload.len() > MAX_HEAD => {
                    return Err(EnvelopeError::HeadTooLarge);
                }
                httparse::Status::Partial => return Err(EnvelopeError::Truncated),
            };
            if req.version != Some(1) {
                return Err(EnvelopeError::Syntax("not HTTP/1.1".into()));
            }
            let method = req.method.unwrap_or_default();
            let url = req.path.unwrap_or_default();
            if !is_token(method) || method.len() > 32 {
                return Err(EnvelopeError::InvalidRequestLine(cut(method)));
            }
            if !(has_prefix(url, "https://") || has_prefix(url, "http://")) {
                return Err(EnvelopeError::InvalidRequestLine(cut(url)));
            }
            let (t, headers) = read_headers(req.headers, &payload[..head_len])?;
            let body = body_of(payload, head_len, &t, false, false)?;
            let kind = t.op.ok_or(EnvelopeError::Missing(OP_CODE))?;
            if kind != Kind::Request {
                return Err(EnvelopeError::OpCodeMismatch {
                    op: kind.op_code(),
                    line: "request line",
                });
            }
            let envelope = Envelope::from_parts(kind, method.into(), url.into(), 0, t, headers)?;
            Ok((envelope, body))
        } else {
            let mut resp = httparse::Response::new(raw);
            let head_len = match resp.parse(head).map_err(syntax)? {
                httparse::Status::Complete(n) => n,
                httparse::Status::Partial if payload.len() > MAX_HEAD => {
                    return Err(EnvelopeError::HeadTooLarge);
                }
                httparse::Status::Partial => return Err(EnvelopeError::Truncated),
            };
            if resp.version != Some(1) {
                return Err(EnvelopeError::Syntax("not HTTP/1.1".into()));
            }
            let status = resp.code.unwrap_or_default();
            if !(100..=999).contains(&status) {
                return Err(EnvelopeError::InvalidStatus(status));
            }
            let (t, headers) = read_headers(resp.headers, &payload[..head_len])?;
            let body = body_of(payload, head_len, &t, true, bodyless(status))?;
            let kind = t.op.ok_or(EnvelopeError::Missing(OP_CODE))?;
            if kind == Kind::Request {
                return Err(EnvelopeError::OpCodeMismatch {
                    op: kind.op_code(),
                    line: "status line",
                });
            }
            let envelope = Envelope::from_parts(
                kind,
                CompactString::default(),
                String::new(),
                status,
                t,
                headers,
            )?;
            Ok((envelope, body))
        }
    }

    fn from_parts(
        kind: Kind,
        method: CompactString,
        url: String,
        status: u16,
        t: Transport,
        headers: Vec<(String, String)>,
    ) -> Result<Envelope, EnvelopeError> {
        Ok(Envelope {
            kind,
            method,
            url,
            status,
            msg_id: t.msg_id.ok_or(EnvelopeError::Missing(MSG_ID))?,
            from_host: t.from_host.unwrap_or_default(),
            from_id: t.from_id.unwrap_or_default(),
            from_version: t.from_version.unwrap_or_default(),
            time_budget: t.budget,
            call_depth: t.depth.unwrap_or(0),
            fragment: t.fragment,
            headers,
        })
    }

    /// Encodes this message followed by `body` (for tools and tests that
    /// speak the wire directly; the runtime writes its messages in place).
    pub fn encode(&self, body: &[u8]) -> Result<Bytes, EnvelopeError> {
        let mut w = if self.kind == Kind::Request {
            let (host, port, path, query) = split_url(&self.url)?;
            let room = body.len() + headers_len(&self.headers);
            MessageWriter::request(&self.method, host, port, path, query, room)?
        } else {
            if bodyless(self.status) && !body.is_empty() {
                return Err(EnvelopeError::Body("a body on a bodyless status"));
            }
            MessageWriter::response(self.status, body.len())?
        };
        if !self.from_host.is_empty() {
            w.header(FROM_HOST, &self.from_host)?;
        }
        if !self.from_id.is_empty() {
            w.header(FROM_ID, &self.from_id)?;
        }
        if !self.from_version.is_empty() {
            w.header(FROM_VERSION, &self.from_version)?;
        }
        w.header(MSG_ID, &self.msg_id)?;
        w.header(OP_CODE, self.kind.op_code())?;
        if let Some(b) = self.time_budget {
            w.header(TIME_BUDGET, &format_budget(b))?;
        }
        if self.call_depth > 0 {
            w.header(CALL_DEPTH, itoa::Buffer::new().format(self.call_depth))?;
        }
        if let Some((i, n)) = self.fragment {
            w.header(FRAGMENT, &format!("{i}/{n}"))?;
        }
        for (n, v) in &self.headers {
            w.header(n, v)?;
        }
        Ok(w.finish(body))
    }

    /// A request `method url` from instance `from_id` with message id
    /// `msg_id` and no other header.
    pub fn request(method: &str, url: &str, msg_id: &str, from_id: &str) -> Self {
        Envelope {
            kind: Kind::Request,
            method: method.into(),
            url: url.to_string(),
            status: 0,
            msg_id: msg_id.into(),
            from_host: CompactString::default(),
            from_id: from_id.into(),
            from_version: CompactString::default(),
            time_budget: None,
            call_depth: 0,
            fragment: None,
            headers: Vec::new(),
        }
    }

    /// A reply (`Res`, `Ack` or `Err`) of `status` to message `msg_id`.
    pub fn reply(kind: Kind, status: u16, msg_id: &str, from_id: &str) -> Self {
        Envelope {
            kind,
            method: CompactString::default(),
            url: String::new(),
            status,
            ..Envelope::request("", "", msg_id, from_id)
        }
    }

    /// A header's first value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The query string of a request's URI (without `?`), or empty.
    pub fn query(&self) -> &str {
        let no_fragment = self.url.split('#').next().unwrap_or_default();
        no_fragment.split_once('?').map(|(_, q)| q).unwrap_or("")
    }
}

/// `scheme://host[:port]/path?query` into host, port, path and query.
fn split_url(url: &str) -> Result<(&str, u16, &str, &str), EnvelopeError> {
    let bad = || EnvelopeError::InvalidRequestLine(cut(url));
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
        None if scheme.eq_ignore_ascii_case("http") => (authority, 80),
        None => (authority, 443),
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    Ok((host, port, path, query))
}

/// The body of Microbus's error JSON:
/// `{"err":{"error":…,"statusCode":…,"trace":…,"stack":[…]}}`.
pub fn error_body(message: &str, status: u16, trace: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "err": {
            "error": message,
            "statusCode": status,
            "trace": trace,
            "stack": [],
        }
    }))
    .unwrap_or_default()
}

/// The message and status of Microbus's error JSON; `None` when the body
/// is not one.
pub fn parse_error_body(body: &[u8]) -> Option<(String, Option<u16>)> {
    #[derive(serde::Deserialize)]
    struct Outer {
        err: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        error: String,
        #[serde(default, rename = "statusCode")]
        status_code: Option<u16>,
    }
    let o: Outer = serde_json::from_slice(body).ok()?;
    Some((o.err.error, o.err.status_code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Envelope {
        let mut e = Envelope::request(
            "POST",
            "https://calc.example:444/items/a%20b?q=1&r=%C3%BC",
            "Ab3dEf7h",
            "id-abcdefghij",
        );
        e.from_host = "caller.example".into();
        e.from_version = "1".into();
        e.time_budget = Some(Duration::from_millis(19_950));
        e.call_depth = 3;
        e.headers = vec![
            (ACTOR.into(), "token".into()),
            ("Microbus-Baggage-Tenant".into(), "7".into()),
            ("X-Empty".into(), String::new()),
        ];
        e
    }

    #[test]
    fn a_request_round_trips_with_its_body() {
        let e = sample();
        let bytes = e.encode(b"{\"x\":1}").unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with(
                "POST https://calc.example:444/items/a%20b?q=1&r=%C3%BC HTTP/1.1\r\nHost: calc.example:444\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("\r\nMicrobus-Time-Budget: 19950ms\r\n"));
        assert!(text.ends_with("\r\nContent-Length: 7\r\n\r\n{\"x\":1}"));
        let (back, body) = Envelope::decode(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(&body[..], b"{\"x\":1}");
        assert_eq!(back.query(), "q=1&r=%C3%BC");
    }

    #[test]
    fn replies_round_trip() {
        for (kind, status, body) in [
            (Kind::Response, 200, &b"\"ok\""[..]),
            (Kind::Response, 404, b"nothing here"),
            (Kind::Ack, 202, b""),
            (Kind::Ack, 100, b""),
            (Kind::Error, 408, b"{}"),
        ] {
            let mut e = Envelope::reply(kind, status, "Ab3dEf7h", "id-abcdefghij");
            e.fragment = Some((2, 3));
            let bytes = e.encode(body).unwrap();
            let (back, b) = Envelope::decode(&bytes).unwrap();
            assert_eq!((back, &b[..]), (e, body));
        }
    }

    #[test]
    fn a_go_written_request_decodes() {
        // As Go's http.Request.WriteProxy writes it (the reference example).
        let go = "GET https://catalog.example/items/widget HTTP/1.1\r\nHost: catalog.example\r\nUser-Agent: Go-http-client/1.1\r\nMicrobus-Call-Depth: 1\r\nMicrobus-From-Host: probe.example\r\nMicrobus-From-Id: id-probe00001\r\nMicrobus-From-Version: 1\r\nMicrobus-Msg-Id: Ab3dEf7h\r\nMicrobus-Op-Code: Req\r\nMicrobus-Time-Budget: 20s\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
        let (e, body) = Envelope::decode(&Bytes::from_static(go.as_bytes())).unwrap();
        assert_eq!(
            (e.kind, e.method.as_str(), e.msg_id.as_str()),
            (Kind::Request, "GET", "Ab3dEf7h")
        );
        assert_eq!(e.time_budget, Some(Duration::from_secs(20)));
        assert_eq!((e.call_depth, e.from_id.as_str()), (1, "id-probe00001"));
        assert!(body.is_empty());
        assert_eq!(e.header("traceparent").map(str::len), Some(55));
        // A chunked body (Go writes one when the length is unknown).
        let chunked = "POST https://c.example/x HTTP/1.1\r\nHost: c.example\r\nTransfer-Encoding: chunked\r\nMicrobus-Msg-Id: a\r\nMicrobus-Op-Code: Req\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n";
        let (_, body) = Envelope::decode(&Bytes::from_static(chunked.as_bytes())).unwrap();
        assert_eq!(&body[..], b"abcde");
        // A response without a length runs to the end (Go's Connection: close form).
        let open = "HTTP/1.1 200 OK\r\nConnection: close\r\nMicrobus-Msg-Id: a\r\nMicrobus-Op-Code: Res\r\n\r\nrest of it";
        let (_, body) = Envelope::decode(&Bytes::from_static(open.as_bytes())).unwrap();
        assert_eq!(&body[..], b"rest of it");
    }

    #[test]
    fn budgets_are_go_durations_or_milliseconds() {
        for (text, ms) in [
            ("20s", 20_000),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            ("250ms", 250),
            ("300", 300),
            ("2h0m0s", u64::MAX),
            ("15m", 900_000),
            ("1500000us", 1_500),
        ] {
            let want = (ms != u64::MAX).then(|| Duration::from_millis(ms));
            assert_eq!(parse_budget(text), want, "{text}");
        }
        for bad in [
            "",
            "s",
            "1x",
            "-1s",
            "1..5s",
            ".s",
            "99999999999999999999",
            "1s2",
        ] {
            assert_eq!(parse_budget(bad), None, "{bad}");
        }
        assert_eq!(
            parse_budget(&format_budget(Duration::from_millis(1234))),
            Some(Duration::from_millis(1234))
        );
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = sample().encode(b"body").unwrap();
        for len in 0..bytes.len() {
            assert!(
                Envelope::decode(&bytes.slice(..len)).is_err(),
                "prefix {len}"
            );
        }
    }

    #[test]
    fn malformed_heads_are_named() {
        let dec = |s: &str| Envelope::decode(&Bytes::from(s.to_string()));
        let head = "GET https://a.example/x HTTP/1.1\r\nMicrobus-Msg-Id: a\r\n";
        assert_eq!(
            dec(&format!("{head}\r\n")),
            Err(EnvelopeError::Missing(OP_CODE))
        );
        assert_eq!(
            dec(&format!("{head}Microbus-Op-Code: Res\r\n\r\n")),
            Err(EnvelopeError::OpCodeMismatch {
                op: "Res",
                line: "request line"
            })
        );
        assert_eq!(
            dec(&format!(
                "{head}Microbus-Op-Code: Req\r\nMicrobus-Msg-Id: b\r\n\r\n"
            )),
            Err(EnvelopeError::Duplicate(MSG_ID))
        );
        assert!(matches!(
            dec("GET /relative HTTP/1.1\r\nMicrobus-Msg-Id: a\r\nMicrobus-Op-Code: Req\r\n\r\n"),
            Err(EnvelopeError::InvalidRequestLine(_))
        ));
        assert!(matches!(
            dec(&format!(
                "{head}Microbus-Op-Code: Req\r\nContent-Length: 5\r\n\r\nab"
            )),
            Err(EnvelopeError::Body(_))
        ));
        assert!(matches!(
            dec(&format!(
                "{head}Microbus-Op-Code: Req\r\nContent-Length: 1\r\n\r\nab"
            )),
            Err(EnvelopeError::Body(_))
        ));
        assert!(matches!(
            dec(&format!(
                "{head}Microbus-Op-Code: Req\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nab"
            )),
            Err(EnvelopeError::Body(_))
        ));
        assert!(matches!(
            dec(&format!(
                "{head}Microbus-Op-Code: Req\r\nMicrobus-Time-Budget: forever\r\n\r\n"
            )),
            Err(EnvelopeError::InvalidValue { .. })
        ));
        assert!(matches!(
            dec(&format!(
                "{head}Microbus-Op-Code: Req\r\nMicrobus-Fragment: 3/2\r\n\r\n"
            )),
            Err(EnvelopeError::InvalidValue { .. })
        ));
        assert!(matches!(
            dec("HTTP/1.1 100 Continue\r\nMicrobus-Msg-Id: a\r\nMicrobus-Op-Code: Ack\r\n\r\nbody"),
            Err(EnvelopeError::Body(_))
        ));
        // More than the small first array holds, fewer than the limit: read
        // in full, in order.
        let several: String = (0..FEW_HEADERS * 2)
            .map(|i| format!("X-{i}: v{i}\r\n"))
            .collect();
        let (e, _) = dec(&format!("{head}Microbus-Op-Code: Req\r\n{several}\r\n")).unwrap();
        assert_eq!(e.headers.len(), FEW_HEADERS * 2);
        assert_eq!(e.header("x-47"), Some("v47"));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            dec(&format!("{head}Microbus-Op-Code: Req\r\n{many}\r\n")),
            Err(EnvelopeError::TooManyHeaders)
        );
        let big = "v".repeat(MAX_HEAD);
        assert_eq!(
            dec(&format!("{head}X-Big: {big}\r\n\r\n")),
            Err(EnvelopeError::HeadTooLarge)
        );
        // A huge chunk length never allocates or panics.
        assert!(matches!(
            dec(&format!(
                "{head}Microbus-Op-Code: Req\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab\r\n0\r\n\r\n"
            )),
            Err(EnvelopeError::Body(_))
        ));
    }

    #[test]
    fn the_encoder_refuses_what_the_decoder_would() {
        let mut e = sample();
        e.headers.push(("Bad Name".into(), "v".into()));
        assert!(matches!(
            e.encode(b""),
            Err(EnvelopeError::InvalidHeaderName(_))
        ));
        let mut e = sample();
        e.headers
            .push(("X-Split".into(), "a\r\nInjected: 1".into()));
        assert!(matches!(
            e.encode(b""),
            Err(EnvelopeError::InvalidHeaderValue(_))
        ));
        // Long values are checked in 8-byte words: a control byte inside
        // a word, in the remainder after the words, and none at all.
        for (at, len) in [(5, 400), (64, 400), (399, 400), (40, 45)] {
            let mut value = "a".repeat(len);
            value.replace_range(at..at + 1, "\u{7f}");
            let mut e = sample();
            e.headers.push(("X-Long".into(), value));
            assert!(matches!(
                e.encode(b""),
                Err(EnvelopeError::InvalidHeaderValue(_))
            ));
        }
        let mut e = sample();
        e.headers.push(("X-Long".into(), "a\tb ~".repeat(80)));
        assert!(e.encode(b"").is_ok());
        let mut e = sample();
        e.headers = (0..MAX_HEADERS)
            .map(|i| (format!("X-{i}"), String::new()))
            .collect();
        assert_eq!(e.encode(b""), Err(EnvelopeError::TooManyHeaders));
        let mut e = sample();
        e.headers = vec![("X-Big".into(), "v".repeat(MAX_HEAD))];
        assert_eq!(e.encode(b""), Err(EnvelopeError::HeadTooLarge));
        let mut e = sample();
        e.method = "G T".into();
        assert!(matches!(
            e.encode(b""),
            Err(EnvelopeError::InvalidRequestLine(_))
        ));
        // A large body is not the head's business.
        let big = vec![7u8; 2 * MAX_HEAD];
        let (_, body) = Envelope::decode(&sample().encode(&big).unwrap()).unwrap();
        assert_eq!(body.len(), big.len());
    }

    #[test]
    fn every_transport_header_is_recognised_in_any_case() {
        for (name, want) in [
            ("Content-Length", Field::ContentLength),
            ("transfer-ENCODING", Field::TransferEncoding),
            ("HOST", Field::Host),
            (OP_CODE, Field::OpCode),
            (MSG_ID, Field::MsgId),
            (FROM_HOST, Field::FromHost),
            (FROM_ID, Field::FromId),
            (FROM_VERSION, Field::FromVersion),
            (TIME_BUDGET, Field::TimeBudget),
            (CALL_DEPTH, Field::CallDepth),
            (FRAGMENT, Field::Fragment),
        ] {
            assert_eq!(field(name), Some(want), "{name}");
            assert_eq!(field(&name.to_ascii_lowercase()), Some(want), "{name}");
        }
        for other in [ACTOR, "Microbus-Baggage-X", TRACEPARENT, "X-Msg-Id-", ""] {
            assert_eq!(field(other), None, "{other}");
        }
    }

    #[test]
    fn error_bodies_are_microbus_json() {
        let body = error_body("no such \"item\"", 404, "t1");
        assert_eq!(
            parse_error_body(&body),
            Some(("no such \"item\"".to_string(), Some(404)))
        );
        assert_eq!(parse_error_body(b"plain text"), None);
    }

    fn arb_header() -> impl Strategy<Value = (String, String)> {
        ("X-[A-Za-z0-9!#$&'*+.^_`|~-]{1,30}", "[ -~]{0,60}")
            .prop_map(|(n, v)| (n, v.trim().to_string()))
    }

    fn arb_envelope() -> impl Strategy<Value = Envelope> {
        (
            0u8..4,
            100u16..=599,
            "[A-Za-z0-9]{8}",
            "(id-[a-z0-9]{10})?",
            proptest::option::of(0u64..900_000),
            0u32..100,
            proptest::option::of((1u32..10, 0u32..10)),
            "(/[A-Za-z0-9._~-]{0,8}){1,4}",
            proptest::collection::vec(arb_header(), 0..12),
        )
            .prop_map(
                |(k, status, msg_id, from_id, budget, depth, frag, path, headers)| {
                    let kind =
                        [Kind::Request, Kind::Response, Kind::Ack, Kind::Error][usize::from(k)];
                    let mut e = if kind == Kind::Request {
                        Envelope::request(
                            "PUT",
                            &format!("https://a.example:8080{path}"),
                            &msg_id,
                            &from_id,
                        )
                    } else {
                        let status = if kind == Kind::Ack { 202 } else { status };
                        Envelope::reply(kind, status, &msg_id, &from_id)
                    };
                    e.time_budget = budget.map(Duration::from_millis);
                    e.call_depth = depth;
                    e.fragment = frag.map(|(i, extra)| (i, i + extra));
                    e.headers = headers;
                    e
                },
            )
    }

    proptest! {
        #[test]
        fn any_valid_message_round_trips(e in arb_envelope(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let body = if e.kind == Kind::Request || !bodyless(e.status) { body } else { Vec::new() };
            let bytes = e.encode(&body).unwrap();
            let (back, rest) = Envelope::decode(&bytes).unwrap();
            prop_assert_eq!(back, e);
            prop_assert_eq!(&rest[..], &body[..]);
        }

        /// The word-at-a-time check agrees with the byte rule on any
        /// text: every byte value, at every offset of the 8-byte words.
        #[test]
        fn header_value_check_agrees_with_the_byte_rule(
            clean in proptest::collection::vec(prop::sample::select(vec![b'a', b' ', b'~', b'\t', b'0']), 0..80),
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![
                prop::sample::select(vec![0x00u8, 0x08, 0x09, 0x0a, 0x1f, 0x20, 0x7e, 0x7f]),
                0u8..0x80,
            ],
            multibyte in any::<bool>(),
        ) {
            let mut v = clean;
            if !v.is_empty() {
                let i = at.index(v.len());
                v[i] = byte;
            }
            let mut text = String::from_utf8(v).unwrap();
            if multibyte {
                text.insert_str(text.len() / 2, "é€");
            }
            let expected = text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
            prop_assert_eq!(valid_header_value(&text), expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::decode(&Bytes::from(bytes));
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_prefix_never_panic(
            prefix in 0usize..200,
            tail in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let good = sample().encode(b"body").unwrap();
            let mut v = good[..prefix.min(good.len())].to_vec();
            v.extend(tail);
            let _ = Envelope::decode(&Bytes::from(v));
        }

        #[test]
        fn flipped_bytes_decode_to_a_valid_message_or_an_error(
            e in arb_envelope(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut v = e.encode(b"").unwrap().to_vec();
            for (i, b) in flips {
                let at = i.index(v.len());
                v[at] = b;
            }
            if let Ok((d, body)) = Envelope::decode(&Bytes::from(v)) {
                // Whatever decodes re-encodes and decodes to the same message.
                if let Ok(again) = d.encode(&body) {
                    let (d2, body2) = Envelope::decode(&again).unwrap();
                    prop_assert_eq!(d2.kind, d.kind);
                    prop_assert_eq!(&body2[..], &body[..]);
                }
            }
        }
    }
}
