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
//! **The envelope** travels at the front of the NATS payload, not in NATS
//! headers: a message is one compact binary envelope followed by the body.
//! (NATS headers cost a `HeaderMap` of allocated names and values per message
//! in the client and `HPUB`/`HMSG` parsing in the server; the envelope costs
//! a few bounded reads.) All integers are big-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, [`ENVELOPE_VERSION`] (`0xB1`); anything else is refused |
//! | 1 | kind: `1` request, `2` response, `3` acknowledgement (multicast receipt, no body) |
//! | 1 | flags: bit 0 = multicast (the caller collects every responder: responders send an ack first); other bits must be 0 |
//! | 2 | status: `0` on requests and acks; on responses 100-999 (400 and above is an error) |
//! | 16 | message id: 128 random bits; a response repeats its request's |
//! | 1 + n | sender instance id (`id-…`), n <= 64: requests carry the caller's (where the response goes); multicast responses and acks the responder's (tells replicas apart); otherwise empty |
//! | 2 + n | query string of a raw-call URL (without `?`), UTF-8, may be empty |
//! | 2 | number of headers, at most [`MAX_HEADERS`] |
//! | per header: 1 + n, 4 + m | name (1-255 bytes of visible ASCII, no `:`), value (UTF-8, no CR or LF) |
//! | rest | the body: for typed functions a JSON object of the non-path arguments by name (requests) or the JSON of the result (responses); for web endpoints the raw body; on an error status the UTF-8 error message |
//!
//! The envelope before the body is at most [`MAX_ENVELOPE`] bytes. Decoding
//! is "parse, don't validate": [`Envelope::decode`] turns untrusted bytes into
//! a typed [`Envelope`] and the body, or a typed [`EnvelopeError`]; it never
//! panics and never reads past a length it has checked.
//!
//! Headers carried: `Microbus-Actor` (the actor token) and
//! `Microbus-Baggage-*` (baggage), both propagated from the inbound request
//! being handled to every outbound call it makes, and a web request's or
//! response's own headers. Other `Microbus-*` names are not user headers and
//! are not sent.
//!
//! **Certified caller identity.** The caller's hostname is not in the
//! envelope: it is the subject's source segment, which the broker pins.
//! Receivers give handlers a `Microbus-From-Host` header set from that
//! segment; any copy the publisher wrote in the envelope, in any spelling, is
//! removed first. A caller accepts a response only when its responder segment
//! (pinned by the broker to the responder's own hostname) is the host it
//! called.

use bytes::Bytes;
use std::fmt;

/// Header given to handlers: the broker-verified caller hostname (set on
/// receipt from the subject; never trusted from the wire).
pub const FROM_HOST: &str = "Microbus-From-Host";
/// Header: actor token, propagated.
pub const ACTOR: &str = "Microbus-Actor";
/// Header prefix: baggage, propagated.
pub const BAGGAGE_PREFIX: &str = "Microbus-Baggage-";

/// First byte of every envelope: the format version.
pub const ENVELOPE_VERSION: u8 = 0xB1;
/// Most bytes an envelope may take before the body.
pub const MAX_ENVELOPE: usize = 64 * 1024;
/// Most headers an envelope may carry.
pub const MAX_HEADERS: usize = 256;
/// Longest sender instance id.
const MAX_FROM_ID: usize = 64;
const FLAG_MULTICAST: u8 = 1;

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

/// Whether a header may be sent as a user header: not an envelope name,
/// except the propagated actor and baggage.
pub(crate) fn is_propagated(name: &str) -> bool {
    name.eq_ignore_ascii_case(ACTOR) || has_prefix(name, BAGGAGE_PREFIX)
}

/// Case-insensitive prefix test that is safe on any UTF-8 boundary.
pub(crate) fn has_prefix(name: &str, prefix: &str) -> bool {
    let (n, p) = (name.as_bytes(), prefix.as_bytes());
    n.len() > p.len() && n[..p.len()].eq_ignore_ascii_case(p)
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A request (or an event).
    Request,
    /// A response.
    Response,
    /// A receipt acknowledgement of a multicast request.
    Ack,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Request => 1,
            Kind::Response => 2,
            Kind::Ack => 3,
        }
    }
}

/// The decoded envelope of a message (see the module docs for the layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What the message is.
    pub kind: Kind,
    /// The multicast flag.
    pub multicast: bool,
    /// Response status (`0` on requests and acks).
    pub status: u16,
    /// The message id.
    pub msg_id: u128,
    /// The sender's instance id (`id-…`) or empty.
    pub from_id: String,
    /// The query string (requests of raw calls).
    pub query: String,
    /// Actor, baggage and user headers, in order.
    pub headers: Vec<(String, String)>,
}

/// Why bytes are not a valid envelope, or an envelope cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The message ends inside the envelope.
    #[error("envelope truncated: {field} needs {needed} bytes at offset {offset}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// How many bytes it needs.
        needed: usize,
    },
    /// The first byte is not [`ENVELOPE_VERSION`].
    #[error("unknown envelope version {0:#04x}")]
    UnknownVersion(u8),
    /// The kind byte is not 1, 2 or 3.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// Flag bits this version does not define are set.
    #[error("unknown envelope flags {0:#04x}")]
    UnknownFlags(u8),
    /// The status does not fit the kind (0 for requests and acks, 100-999 for responses).
    #[error("status {status} is not valid on a {kind:?}")]
    InvalidStatus {
        /// The kind of message.
        kind: Kind,
        /// The status it carried.
        status: u16,
    },
    /// The sender instance id is longer than 64 bytes.
    #[error("sender instance id of {0} bytes (at most 64)")]
    FromIdTooLong(usize),
    /// More headers than [`MAX_HEADERS`].
    #[error("{0} headers (at most {MAX_HEADERS})")]
    TooManyHeaders(usize),
    /// The envelope is larger than [`MAX_ENVELOPE`].
    #[error("envelope of {0} bytes (at most {MAX_ENVELOPE})")]
    TooLarge(usize),
    /// A text field is not UTF-8, or not valid for its field.
    #[error("invalid {field}")]
    InvalidText {
        /// The field.
        field: &'static str,
    },
    /// A header name is empty, longer than 255 bytes, or not visible ASCII without `:`.
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value contains CR or LF.
    #[error("value of header {0:?} contains CR or LF")]
    InvalidHeaderValue(String),
}

fn status_fits(kind: Kind, status: u16) -> bool {
    match kind {
        Kind::Response => (100..=999).contains(&status),
        Kind::Request | Kind::Ack => status == 0,
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn valid_header_value(value: &str) -> bool {
    !value.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// Writes an envelope; the caller appends the body. Headers pass through
/// `keep`, which may skip some (envelope names) without copying them.
pub(crate) struct EnvelopeWriter {
    buf: Vec<u8>,
    count_at: usize,
    count: usize,
}

impl EnvelopeWriter {
    /// Starts an envelope with room for `body_len` more bytes.
    pub(crate) fn new(
        kind: Kind,
        multicast: bool,
        status: u16,
        msg_id: u128,
        from_id: &str,
        query: &str,
        body_len: usize,
    ) -> Result<Self, EnvelopeError> {
        if from_id.len() > MAX_FROM_ID {
            return Err(EnvelopeError::FromIdTooLong(from_id.len()));
        }
        if !status_fits(kind, status) {
            return Err(EnvelopeError::InvalidStatus { kind, status });
        }
        let query_len =
            u16::try_from(query.len()).map_err(|_| EnvelopeError::TooLarge(query.len()))?;
        let mut buf = Vec::with_capacity(64 + from_id.len() + query.len() + body_len);
        buf.push(ENVELOPE_VERSION);
        buf.push(kind.code());
        buf.push(if multicast { FLAG_MULTICAST } else { 0 });
        buf.extend_from_slice(&status.to_be_bytes());
        buf.extend_from_slice(&msg_id.to_be_bytes());
        // Checked above: at most 64.
        buf.push(from_id.len() as u8);
        buf.extend_from_slice(from_id.as_bytes());
        buf.extend_from_slice(&query_len.to_be_bytes());
        buf.extend_from_slice(query.as_bytes());
        let count_at = buf.len();
        buf.extend_from_slice(&[0, 0]);
        if buf.len() > MAX_ENVELOPE {
            return Err(EnvelopeError::TooLarge(buf.len()));
        }
        Ok(EnvelopeWriter {
            buf,
            count_at,
            count: 0,
        })
    }

    /// Adds a header.
    pub(crate) fn header(&mut self, name: &str, value: &str) -> Result<(), EnvelopeError> {
        if !valid_header_name(name) {
            return Err(EnvelopeError::InvalidHeaderName(name.to_string()));
        }
        if !valid_header_value(value) {
            return Err(EnvelopeError::InvalidHeaderValue(name.to_string()));
        }
        if self.count == MAX_HEADERS {
            return Err(EnvelopeError::TooManyHeaders(self.count + 1));
        }
        let size = self.buf.len() + 5 + name.len() + value.len();
        if size > MAX_ENVELOPE {
            return Err(EnvelopeError::TooLarge(size));
        }
        // Checked above: name at most 255 bytes, value under MAX_ENVELOPE.
        self.buf.push(name.len() as u8);
        self.buf.extend_from_slice(name.as_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.count += 1;
        Ok(())
    }

    /// Closes the envelope and appends the body.
    pub(crate) fn finish(mut self, body: &[u8]) -> Bytes {
        // At most MAX_HEADERS (256): fits u16.
        let count = (self.count as u16).to_be_bytes();
        self.buf[self.count_at..self.count_at + 2].copy_from_slice(&count);
        self.buf.extend_from_slice(body);
        Bytes::from(self.buf)
    }
}

/// Reads fields off untrusted bytes, every length checked first.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(EnvelopeError::Truncated {
                field,
                offset: self.at,
                needed: n,
            })?;
        if end > MAX_ENVELOPE {
            return Err(EnvelopeError::TooLarge(end));
        }
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, EnvelopeError> {
        Ok(self.take(field, 1)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, EnvelopeError> {
        let b = self.take(field, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, EnvelopeError> {
        let b = self.take(field, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn text(&mut self, field: &'static str, n: usize) -> Result<&'a str, EnvelopeError> {
        std::str::from_utf8(self.take(field, n)?).map_err(|_| EnvelopeError::InvalidText { field })
    }
}

impl Envelope {
    /// Decodes the envelope at the front of `payload`; returns it and the body.
    pub fn decode(payload: &Bytes) -> Result<(Envelope, Bytes), EnvelopeError> {
        let mut r = Reader {
            bytes: payload,
            at: 0,
        };
        let version = r.u8("version")?;
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnknownVersion(version));
        }
        let kind = match r.u8("kind")? {
            1 => Kind::Request,
            2 => Kind::Response,
            3 => Kind::Ack,
            other => return Err(EnvelopeError::UnknownKind(other)),
        };
        let flags = r.u8("flags")?;
        if flags & !FLAG_MULTICAST != 0 {
            return Err(EnvelopeError::UnknownFlags(flags));
        }
        let status = r.u16("status")?;
        if !status_fits(kind, status) {
            return Err(EnvelopeError::InvalidStatus { kind, status });
        }
        let id = r.take("message id", 16)?;
        let mut msg_id = [0u8; 16];
        msg_id.copy_from_slice(id);
        let from_len = usize::from(r.u8("sender instance id")?);
        if from_len > MAX_FROM_ID {
            return Err(EnvelopeError::FromIdTooLong(from_len));
        }
        let from_id = r.text("sender instance id", from_len)?;
        if !from_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EnvelopeError::InvalidText {
                field: "sender instance id",
            });
        }
        let query_len = usize::from(r.u16("query")?);
        let query = r.text("query", query_len)?;
        let count = usize::from(r.u16("header count")?);
        if count > MAX_HEADERS {
            return Err(EnvelopeError::TooManyHeaders(count));
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let name_len = usize::from(r.u8("header name")?);
            let name = r.text("header name", name_len)?;
            if !valid_header_name(name) {
                return Err(EnvelopeError::InvalidHeaderName(name.to_string()));
            }
            let value_len = r.u32("header value")? as usize;
            let value = r.text("header value", value_len)?;
            if !valid_header_value(value) {
                return Err(EnvelopeError::InvalidHeaderValue(name.to_string()));
            }
            headers.push((name.to_string(), value.to_string()));
        }
        let envelope = Envelope {
            kind,
            multicast: flags & FLAG_MULTICAST != 0,
            status,
            msg_id: u128::from_be_bytes(msg_id),
            from_id: from_id.to_string(),
            query: query.to_string(),
            headers,
        };
        Ok((envelope, payload.slice(r.at..)))
    }

    /// Encodes this envelope followed by `body` (for tools and tests that
    /// speak the wire directly; the runtime writes its envelopes in place).
    pub fn encode(&self, body: &[u8]) -> Result<Bytes, EnvelopeError> {
        let mut w = EnvelopeWriter::new(
            self.kind,
            self.multicast,
            self.status,
            self.msg_id,
            &self.from_id,
            &self.query,
            body.len(),
        )?;
        for (n, v) in &self.headers {
            w.header(n, v)?;
        }
        Ok(w.finish(body))
    }

    /// A request envelope from instance `from_id` with no headers.
    pub fn request(msg_id: u128, from_id: &str) -> Self {
        Envelope {
            kind: Kind::Request,
            multicast: false,
            status: 0,
            msg_id,
            from_id: from_id.to_string(),
            query: String::new(),
            headers: Vec::new(),
        }
    }

    /// A header's first value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope {
            kind: Kind::Request,
            multicast: true,
            status: 0,
            msg_id: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
            from_id: "id-abcdefghij".into(),
            query: "q=1&r=ü".into(),
            headers: vec![
                (ACTOR.into(), "token".into()),
                ("Microbus-Baggage-Tenant".into(), "7".into()),
                ("X-Empty".into(), String::new()),
            ],
        }
    }

    #[test]
    fn an_envelope_round_trips_with_its_body() {
        let e = sample();
        let bytes = e.encode(b"{\"x\":1}").unwrap();
        let (back, body) = Envelope::decode(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(&body[..], b"{\"x\":1}");
        let response = Envelope {
            kind: Kind::Response,
            status: 404,
            multicast: false,
            from_id: String::new(),
            query: String::new(),
            headers: Vec::new(),
            ..e
        };
        let (back, body) = Envelope::decode(&response.encode(b"").unwrap()).unwrap();
        assert_eq!((back, body.len()), (response, 0));
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = sample().encode(b"").unwrap();
        for len in 0..bytes.len() {
            let cut = bytes.slice(..len);
            assert!(
                matches!(Envelope::decode(&cut), Err(EnvelopeError::Truncated { .. })),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn malformed_fields_are_named() {
        let good = sample().encode(b"").unwrap().to_vec();
        let with = |at: usize, b: u8| {
            let mut v = good.clone();
            v[at] = b;
            Envelope::decode(&Bytes::from(v))
        };
        assert_eq!(with(0, 0x01), Err(EnvelopeError::UnknownVersion(0x01)));
        assert_eq!(with(1, 9), Err(EnvelopeError::UnknownKind(9)));
        assert_eq!(with(2, 0x83), Err(EnvelopeError::UnknownFlags(0x83)));
        assert_eq!(
            with(4, 200),
            Err(EnvelopeError::InvalidStatus {
                kind: Kind::Request,
                status: 200
            })
        );
        assert_eq!(with(21, 65), Err(EnvelopeError::FromIdTooLong(65)));
        // A non-graphic byte inside the sender id.
        assert!(matches!(
            with(23, b' '),
            Err(EnvelopeError::InvalidText { .. })
        ));
        // The header count (after the 13-byte id and the query) claims 257.
        let count_at = 22 + 13 + 2 + "q=1&r=ü".len();
        let mut v = good.clone();
        v[count_at..count_at + 2].copy_from_slice(&257u16.to_be_bytes());
        assert_eq!(
            Envelope::decode(&Bytes::from(v)),
            Err(EnvelopeError::TooManyHeaders(257))
        );
        // A header value length that runs past the envelope limit.
        let mut v = good.clone();
        let value_len_at = count_at + 2 + 1 + ACTOR.len();
        v[value_len_at..value_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Envelope::decode(&Bytes::from(v)),
            Err(EnvelopeError::Truncated { .. })
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
        let mut e = sample();
        e.headers = (0..=MAX_HEADERS)
            .map(|i| (format!("X-{i}"), String::new()))
            .collect();
        assert_eq!(
            e.encode(b""),
            Err(EnvelopeError::TooManyHeaders(MAX_HEADERS + 1))
        );
        let mut e = sample();
        e.headers = vec![("X-Big".into(), "v".repeat(MAX_ENVELOPE))];
        assert!(matches!(e.encode(b""), Err(EnvelopeError::TooLarge(_))));
        let mut e = sample();
        e.from_id = "i".repeat(65);
        assert_eq!(e.encode(b""), Err(EnvelopeError::FromIdTooLong(65)));
        // A large body is not the envelope's business.
        let big = vec![7u8; 2 * MAX_ENVELOPE];
        let (_, body) = Envelope::decode(&sample().encode(&big).unwrap()).unwrap();
        assert_eq!(body.len(), big.len());
    }

    fn arb_header() -> impl Strategy<Value = (String, String)> {
        ("[!-9;-~]{1,40}", "[^\r\n]{0,60}")
    }

    fn arb_envelope() -> impl Strategy<Value = Envelope> {
        (
            0u8..3,
            any::<bool>(),
            100u16..=999,
            any::<u128>(),
            "[!-~]{0,64}",
            "\\PC{0,40}",
            proptest::collection::vec(arb_header(), 0..12),
        )
            .prop_map(|(k, multicast, status, msg_id, from_id, query, headers)| {
                let kind = [Kind::Request, Kind::Response, Kind::Ack][usize::from(k)];
                Envelope {
                    kind,
                    multicast,
                    status: if kind == Kind::Response { status } else { 0 },
                    msg_id,
                    from_id,
                    query,
                    headers,
                }
            })
    }

    proptest! {
        #[test]
        fn any_valid_envelope_round_trips(e in arb_envelope(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = e.encode(&body).unwrap();
            let (back, rest) = Envelope::decode(&bytes).unwrap();
            prop_assert_eq!(back, e);
            prop_assert_eq!(&rest[..], &body[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Envelope::decode(&Bytes::from(bytes));
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_prefix_never_panic(
            prefix in 0usize..24,
            tail in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut v = sample().encode(b"").unwrap()[..prefix].to_vec();
            v.extend(tail);
            let _ = Envelope::decode(&Bytes::from(v));
        }

        #[test]
        fn flipped_bytes_decode_to_a_valid_envelope_or_an_error(
            e in arb_envelope(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut v = e.encode(b"body").unwrap().to_vec();
            for (i, b) in flips {
                let at = i.index(v.len());
                v[at] = b;
            }
            if let Ok((d, _)) = Envelope::decode(&Bytes::from(v)) {
                // Whatever decodes re-encodes: it satisfies every rule.
                prop_assert!(d.encode(b"").is_ok());
            }
        }
    }
}
