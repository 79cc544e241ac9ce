//! The wire: request and reply subjects in publish and subscribe form, and
//! decoding a received subject back into its parts.
//!
//! `<plane>.<trust>.<port>.<src>.<dest>.<pos>.<METHOD>.<path...>` for requests,
//! `<plane>.reply._.<responder>.<caller>.<caller-id>` for replies. Hostnames
//! and path segments are escaped so that no input can add, remove or widen a
//! token: the only `*` and `>` in a subject are the ones the subscribe form
//! writes on purpose.

use crate::hostname::{self, decode_hex_pair, flatten, push_pct, unflatten};
use crate::route::{Method, Route, RouteError, Segment, TRUST_ROOT_PORT};
use std::fmt;

/// Default deployment plane.
pub const DEFAULT_PLANE: &str = "microbus";
/// Longest plane accepted.
pub const MAX_PLANE_LEN: usize = 64;
/// The longest locality (hyphen form, without `loc-`): what a position
/// token carries.
pub const MAX_LOCALITY_LEN: usize = 64;

/// The trust segment: `danger` for the trust-root port 666, `safe` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Any port but 666.
    Safe,
    /// Port 666.
    Danger,
}

impl Trust {
    /// The trust segment for a port.
    pub fn of_port(port: u16) -> Trust {
        if port == TRUST_ROOT_PORT {
            Trust::Danger
        } else {
            Trust::Safe
        }
    }

    /// The token as written in subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Safe => "safe",
            Trust::Danger => "danger",
        }
    }
}

/// Why a plane, position or subject was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The plane is not 1 to 64 characters of `[a-z0-9-]`.
    #[error("plane {plane:?} is not 1 to {MAX_PLANE_LEN} characters of a-z, 0-9 and '-'")]
    InvalidPlane {
        /// The offending plane.
        plane: String,
    },
    /// An instance id or locality is not `id-…`/`loc-…` of `[a-z0-9-]`.
    #[error("position {pos:?} is not '_', 'id-<a-z0-9->' or 'loc-<a-z0-9->'")]
    InvalidPosition {
        /// The offending position.
        pos: String,
    },
    /// A locality is not 1 to 64 bytes of `[a-z0-9-]` levels (see
    /// [`Position::locality`]).
    #[error("locality {locality:?} is invalid: {reason}")]
    InvalidLocality {
        /// The offending locality (truncated to 200 bytes).
        locality: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The subject does not have the request or reply layout.
    #[error("subject {subject:?} is malformed: {reason}")]
    Malformed {
        /// The subject (truncated to 200 bytes).
        subject: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A method token in a subject is invalid.
    #[error(transparent)]
    Method(#[from] RouteError),
}

fn malformed(subject: &str, reason: &'static str) -> SubjectError {
    let mut s = subject.to_string();
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    SubjectError::Malformed { subject: s, reason }
}

fn is_plane_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PLANE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A validated deployment plane.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Plane(String);

impl Plane {
    /// Validates a plane: 1 to 64 characters of `[a-z0-9-]`.
    pub fn parse(plane: &str) -> Result<Self, SubjectError> {
        if is_plane_token(plane) {
            Ok(Plane(plane.to_string()))
        } else {
            Err(SubjectError::InvalidPlane {
                plane: plane.to_string(),
            })
        }
    }

    /// The plane as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Plane {
    fn default() -> Self {
        Plane(DEFAULT_PLANE.to_string())
    }
}

impl fmt::Display for Plane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The position segment: any instance, one instance, or one locality.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Position {
    /// `_`: load-balanced across instances.
    Any,
    /// `id-<instance>`: one instance (the full token, lower-cased).
    Id(String),
    /// `loc-<locality>`: one locality (the full token, lower-cased).
    Loc(String),
}

impl Position {
    /// Parses `""`/`_`, `id-…` or `loc-…` (case-insensitive).
    pub fn parse(pos: &str) -> Result<Self, SubjectError> {
        if pos.is_empty() || pos == "_" {
            return Ok(Position::Any);
        }
        if !position_any_case(pos) {
            return Err(SubjectError::InvalidPosition {
                pos: pos.to_string(),
            });
        }
        let lower = pos.to_ascii_lowercase();
        Ok(if lower.starts_with("id-") {
            Position::Id(lower)
        } else {
            Position::Loc(lower)
        })
    }

    /// The token of an `id-…` position, as [`Position::parse`] would give
    /// it (lower-cased), borrowed when `text` is already lower-case; `None`
    /// for anything that is not an instance id.
    pub fn id_token(text: &str) -> Option<std::borrow::Cow<'_, str>> {
        let b = text.as_bytes();
        if !(b.len() > 3 && b[..3].eq_ignore_ascii_case(b"id-") && position_any_case(text)) {
            return None;
        }
        Some(if b.iter().any(u8::is_ascii_uppercase) {
            std::borrow::Cow::Owned(text.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(text)
        })
    }

    /// The position of a service's locality, as Microbus's `SetLocality`
    /// reads it: hierarchical, broadest level first, levels joined by `-`
    /// (`us-west-b-1`); DNS-style dot notation, most specific level first,
    /// is accepted and reversed (`1.b.west.us` is `us-west-b-1`); letters
    /// are lower-cased (`US-WEST` is `loc-us-west`). Refused, with the
    /// reason: an empty locality or level (leading, trailing or doubled
    /// `-`/`.`), any byte outside `[A-Za-z0-9-.]` (`*`, `>`, `_`, spaces,
    /// control characters, non-ASCII), more than [`MAX_LOCALITY_LEN`]
    /// bytes, a locality starting with the reserved `id-`/`loc-` or equal
    /// to the broadcast host `all`. Microbus allows up to 252 bytes; the
    /// position token of this layout carries at most 64 after `loc-`.
    pub fn locality(input: &str) -> Result<Self, SubjectError> {
        let bad = |reason: &'static str| {
            let mut shown = input.to_string();
            if shown.len() > 200 {
                let mut cut = 200;
                while !shown.is_char_boundary(cut) {
                    cut -= 1;
                }
                shown.truncate(cut);
            }
            SubjectError::InvalidLocality {
                locality: shown,
                reason,
            }
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        if input.len() > MAX_LOCALITY_LEN {
            return Err(bad("longer than 64 bytes"));
        }
        if !input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(bad(
                "only letters a-z, digits, '-' and '.' are allowed (no '*', '>', '_', spaces or non-ASCII)",
            ));
        }
        let lower = input.to_ascii_lowercase();
        let hyphenated = if lower.contains('.') {
            let mut levels: Vec<&str> = lower.split('.').collect();
            levels.reverse();
            levels.join("-")
        } else {
            lower
        };
        if hyphenated.split('-').any(str::is_empty) {
            return Err(bad(
                "a level is empty (a leading, trailing or doubled '-' or '.')",
            ));
        }
        if hyphenated.starts_with("id-") || hyphenated.starts_with("loc-") {
            return Err(bad("starts with the reserved 'id-' or 'loc-'"));
        }
        if hyphenated == "all" {
            return Err(bad("'all' is the broadcast host"));
        }
        Ok(Position::Loc(format!("loc-{hyphenated}")))
    }

    /// The positions a service of this locality subscribes on, broadest
    /// first, as Microbus does: every prefix of the hierarchy
    /// (`loc-us-west-b` gives `loc-us`, `loc-us-west`, `loc-us-west-b`), so
    /// a call to `loc-us` reaches it too. Empty for any other position.
    pub fn locality_levels(&self) -> Vec<Position> {
        let Position::Loc(token) = self else {
            return Vec::new();
        };
        token
            .match_indices('-')
            .skip(1)
            .map(|(at, _)| Position::Loc(token[..at].to_string()))
            .chain(std::iter::once(self.clone()))
            .collect()
    }

    /// Splits a leading `id-…`/`loc-…` label off a host as Microbus's
    /// `cutIDOrLocality` does (`loc-us-west.example.com` is `loc-us-west`
    /// on `example.com`); a host without one is [`Position::Any`] on the
    /// whole host. The label is checked as [`Position::parse`] checks it;
    /// the rest is left for the caller to parse as a hostname.
    pub fn split_host(host: &str) -> Result<(Self, &str), SubjectError> {
        match host.split_once('.') {
            Some((first, rest))
                if starts_with_ignore_case(first, "id-")
                    || starts_with_ignore_case(first, "loc-") =>
            {
                Ok((Position::parse(first)?, rest))
            }
            _ => Ok((Position::Any, host)),
        }
    }

    /// The token as written in subjects.
    pub fn token(&self) -> &str {
        match self {
            Position::Any => "_",
            Position::Id(s) | Position::Loc(s) => s,
        }
    }
}

/// Escapes one path segment: `[A-Za-z0-9-]` pass, every other byte `%xx`,
/// an empty segment is `_`.
pub fn escape_segment(out: &mut String, segment: &str) {
    if segment.is_empty() {
        out.push('_');
        return;
    }
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            push_pct(out, b);
        }
    }
}

/// The path tokens of a concrete path (publish form), joined with `.`.
pub fn path_tokens(out: &mut String, path: &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('.');
        }
        escape_segment(out, seg);
    }
}

/// The path tokens of a route (subscribe / rule form): `{a}` and `*` become
/// `*`, a final `{a...}` becomes `>`, literals are escaped.
pub fn route_path_tokens(out: &mut String, segments: &[Segment]) {
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match seg {
            Segment::Literal(s) => escape_segment(out, s),
            Segment::Arg(_) | Segment::Star => out.push('*'),
            Segment::Greedy(_) => out.push('>'),
        }
    }
    if segments.is_empty() {
        out.push('_');
    }
}

fn head(out: &mut String, plane: &str, port: &str, trust: Trust) {
    out.push_str(plane);
    out.push('.');
    out.push_str(trust.as_str());
    out.push('.');
    out.push_str(port);
    out.push('.');
}

/// The subject a caller publishes a request on.
///
/// `src` and `dest` are hostnames (flattened here; an empty `src` is `_`),
/// `path` a concrete path (its leading `/` optional, the query not included).
pub fn request(
    plane: &Plane,
    port: u16,
    src: &str,
    dest: &str,
    pos: &Position,
    method: &Method,
    path: &str,
) -> String {
    let mut out = String::with_capacity(64 + src.len() + dest.len() + path.len());
    request_into(&mut out, plane, port, src, dest, pos, method, path);
    out
}

/// [`request`], appended to `out` (for a caller that reuses its buffer).
#[allow(clippy::too_many_arguments)]
pub fn request_into(
    out: &mut String,
    plane: &Plane,
    port: u16,
    src: &str,
    dest: &str,
    pos: &Position,
    method: &Method,
    path: &str,
) {
    head(
        out,
        plane.as_str(),
        itoa::Buffer::new().format(port),
        Trust::of_port(port),
    );
    hostname::flatten_into(out, src);
    out.push('.');
    hostname::flatten_into(out, dest);
    out.push('.');
    out.push_str(pos.token());
    out.push('.');
    out.push_str(method.as_str());
    out.push('.');
    path_tokens(out, path);
}

/// The subject a service subscribes on to receive requests for a route
/// (`port` 0 becomes `*`, `ANY` becomes `*`, path arguments wildcards).
pub fn subscription(
    plane: &Plane,
    host: &str,
    pos: &Position,
    method: &Method,
    route: &Route,
) -> String {
    let mut out = String::with_capacity(64 + host.len());
    let port = if route.port == 0 {
        "*".to_string()
    } else {
        route.port.to_string()
    };
    head(&mut out, plane.as_str(), &port, Trust::of_port(route.port));
    out.push_str("*.");
    out.push_str(&flatten(host));
    out.push('.');
    out.push_str(pos.token());
    out.push('.');
    out.push_str(if method.is_any() {
        "*"
    } else {
        method.as_str()
    });
    out.push('.');
    route_path_tokens(&mut out, &route.segments);
    out
}

/// Parses `path` as a route and returns [`subscription`]; `port` overrides
/// the route's port.
pub fn subscription_for_path(
    plane: &Plane,
    port: u16,
    host: &str,
    pos: &Position,
    method: &Method,
    path: &str,
) -> Result<String, RouteError> {
    let mut route = Route::parse(&format!("/{}", path.strip_prefix('/').unwrap_or(path)))?;
    route.port = port;
    Ok(subscription(plane, host, pos, method, &route))
}

/// The subject a responder publishes its reply (and acks) on.
pub fn reply(plane: &Plane, responder: &str, caller: &str, caller_id: &Position) -> String {
    let mut out = String::with_capacity(plane.as_str().len() + responder.len() + caller.len() + 40);
    reply_prefix(&mut out, plane);
    hostname::flatten_into(&mut out, responder);
    reply_suffix(&mut out, caller, caller_id);
    out
}

/// The part of `responder`'s reply subjects before the caller:
/// `<plane>.reply._.<responder>.`, to be finished per request by
/// [`reply_to_token_into`].
pub fn reply_head(plane: &Plane, responder: &str) -> String {
    let mut out = String::with_capacity(plane.as_str().len() + responder.len() + 12);
    reply_prefix(&mut out, plane);
    hostname::flatten_into(&mut out, responder);
    out.push('.');
    out
}

/// `reply(plane, responder, caller, caller_id)`, appended to `out`, from
/// its head ([`reply_head`]), the caller's token as a received subject
/// carries it ([`RequestParts::src_token`]; flattening is canonical, so the
/// token is the caller's flattening) and the caller's instance id token.
pub fn reply_to_token_into(out: &mut String, head: &str, caller_token: &str, id: &str) {
    out.push_str(head);
    out.push_str(caller_token);
    out.push('.');
    out.push_str(id);
}

/// What every reply subject to `caller`'s instance `caller_id` has before
/// and after the responder token: `reply(plane, r, caller, id)` is
/// `prefix + flatten(r) + suffix` for every responder `r`. A caller that
/// subscribed with [`reply_subscription`] reads a reply's responder token
/// between them without decoding the whole subject.
pub fn reply_affixes(plane: &Plane, caller: &str, caller_id: &Position) -> (String, String) {
    let (mut prefix, mut suffix) = (String::new(), String::new());
    reply_prefix(&mut prefix, plane);
    reply_suffix(&mut suffix, caller, caller_id);
    (prefix, suffix)
}

/// The subject a service subscribes on to receive replies to its requests.
pub fn reply_subscription(plane: &Plane, own_host: &str, own_id: &Position) -> String {
    let mut out = String::new();
    reply_prefix(&mut out, plane);
    out.push('*');
    reply_suffix(&mut out, own_host, own_id);
    out
}

/// The reply layout before the responder token: `<plane>.reply._.`.
fn reply_prefix(out: &mut String, plane: &Plane) {
    out.push_str(plane.as_str());
    out.push_str(".reply._.");
}

/// The reply layout after the responder token: `.<caller>.<caller id>`.
fn reply_suffix(out: &mut String, caller: &str, caller_id: &Position) {
    out.push('.');
    hostname::flatten_into(out, caller);
    out.push('.');
    out.push_str(caller_id.token());
}

/// A received request subject, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSubject {
    /// The plane.
    pub plane: Plane,
    /// The trust segment (consistent with the port).
    pub trust: Trust,
    /// The port.
    pub port: u16,
    /// The caller's hostname; empty when the subject carried `_`.
    pub src: String,
    /// The destination hostname.
    pub dest: String,
    /// The position.
    pub pos: Position,
    /// The method.
    pub method: Method,
    /// The path, with a leading `/`.
    pub path: String,
}

/// A received reply subject, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySubject {
    /// The plane.
    pub plane: Plane,
    /// The responder's hostname (broker-verified on a protected bus).
    pub responder: String,
    /// The caller's hostname.
    pub caller: String,
    /// The caller's instance.
    pub caller_id: Position,
}

/// Any subject of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A request.
    Request(RequestSubject),
    /// A reply.
    Reply(ReplySubject),
}

/// Longest subject [`decode`] accepts.
pub const MAX_SUBJECT_LEN: usize = 64 * 1024;

fn decode_host(subject: &str, token: &str) -> Result<String, SubjectError> {
    if token == "_" {
        return Ok(String::new());
    }
    unflatten(token).ok_or_else(|| malformed(subject, "host token is not a flattened hostname"))
}

/// Decodes one path token, appending its bytes to `out`.
fn decode_segment(subject: &str, token: &str, out: &mut Vec<u8>) -> Result<(), SubjectError> {
    if token == "_" {
        return Ok(());
    }
    let bytes = token.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let pair = bytes
                    .get(i + 1..i + 3)
                    .ok_or_else(|| malformed(subject, "truncated %-escape in path"))?;
                let b = decode_hex_pair(pair)
                    .ok_or_else(|| malformed(subject, "bad %-escape in path"))?;
                if b.is_ascii_alphanumeric() || b == b'-' {
                    // Every byte has one encoding, so a subject decodes
                    // only if encoding the result gives it back.
                    return Err(malformed(subject, "escape of a byte that is never escaped"));
                }
                if b == b'/' {
                    // Encoding splits the path on '/', so no segment holds
                    // one: `a%2fb` is one token that would decode to two
                    // segments, a path the grant (`*`) never meant.
                    return Err(malformed(subject, "escaped '/' inside a path segment"));
                }
                out.push(b);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' => {
                out.push(b);
                i += 1;
            }
            _ => {
                return Err(malformed(
                    subject,
                    "path token has a character that must be escaped",
                ));
            }
        }
    }
    Ok(())
}

/// The first tokens of a received subject and how many there are, after
/// the checks every subject takes, in this order: length, empty tokens,
/// wildcards, at least six tokens. No allocation.
struct Head<'a> {
    tok: [&'a str; 8],
    count: usize,
    /// Where the eighth token (the path's first) starts; the subject's
    /// length when there is none.
    path_at: usize,
}

/// The `.`-separated tokens of `s`, each with where it starts. A byte
/// loop: the tokens are short, and a searcher per token costs more. `.` is
/// ASCII, so every cut is a char boundary.
fn dot_tokens(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = s.as_bytes();
    let mut start = 0;
    (0..bytes.len())
        .filter(move |&i| bytes[i] == b'.')
        .chain([bytes.len()])
        .map(move |end| {
            let token = (start, &s[start..end]);
            start = end + 1;
            token
        })
}

fn received_head(subject: &str) -> Result<Head<'_>, SubjectError> {
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(malformed(subject, "longer than 64 KiB"));
    }
    let mut tok = [""; 8];
    let (mut count, mut empty, mut wildcard) = (0, false, false);
    let mut path_at = subject.len();
    for (start, t) in dot_tokens(subject) {
        empty |= t.is_empty();
        wildcard |= t == "*" || t == ">";
        if let Some(slot) = tok.get_mut(count) {
            *slot = t;
        }
        if count == 7 {
            path_at = start;
        }
        count += 1;
    }
    if empty {
        return Err(malformed(subject, "empty token"));
    }
    if wildcard {
        return Err(malformed(subject, "wildcard in a received subject"));
    }
    if count < 6 {
        return Err(malformed(subject, "too few tokens"));
    }
    Ok(Head {
        tok,
        count,
        path_at,
    })
}

/// A received request subject checked exactly as [`decode`] checks it, with
/// the plane, position and method borrowed from the subject (only the hosts
/// and the path are decoded into strings): what a receiver needs per
/// message, without an allocation for each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// The plane token.
    pub plane: &'a str,
    /// The trust segment (consistent with the port).
    pub trust: Trust,
    /// The port.
    pub port: u16,
    /// The caller's hostname; empty when the subject carried `_`.
    pub src: String,
    /// The caller's token as the subject carries it (`_` for none): the
    /// hostname flattened, which is canonical (flattening the decoded
    /// `src` gives it back).
    pub src_token: &'a str,
    /// The destination's token, checked to be a flattened hostname (see
    /// [`RequestParts::dest`]).
    pub dest_token: &'a str,
    /// The position token (`_`, `id-…`, `loc-…`, lower-case).
    pub pos: &'a str,
    /// The method token (upper-case).
    pub method: &'a str,
    /// The path, with a leading `/`.
    pub path: String,
}

impl RequestParts<'_> {
    /// The destination hostname, decoded.
    pub fn dest(&self) -> String {
        unflatten(self.dest_token).unwrap_or_default()
    }
}

/// Decodes a received request subject (see [`RequestParts`]); a reply
/// subject is an error here.
pub fn decode_request(subject: &str) -> Result<RequestParts<'_>, SubjectError> {
    let h = received_head(subject)?;
    if !is_plane_token(h.tok[0]) {
        return Err(malformed(subject, "invalid plane"));
    }
    if h.tok[1] == "reply" {
        return Err(malformed(subject, "a reply subject, not a request"));
    }
    request_parts(subject, &h)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Whether `t` is a position token in any case: `_`, `id-…` or `loc-…`
/// with a tail of 1-64 letters, digits and `-` (what [`Position::parse`]
/// accepts, besides the empty string).
fn position_any_case(t: &str) -> bool {
    if t == "_" {
        return true;
    }
    let tail_ok = |tail: &str| {
        !tail.is_empty()
            && tail.len() <= 64
            && tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let b = t.as_bytes();
    (b.len() > 3 && b[..3].eq_ignore_ascii_case(b"id-") && tail_ok(&t[3..]))
        || (b.len() > 4 && b[..4].eq_ignore_ascii_case(b"loc-") && tail_ok(&t[4..]))
}

/// The request fields after the plane (checked by the caller).
fn request_parts<'a>(subject: &'a str, h: &Head<'a>) -> Result<RequestParts<'a>, SubjectError> {
    if h.count < 8 {
        return Err(malformed(subject, "too few tokens for a request"));
    }
    let trust = match h.tok[1] {
        "safe" => Trust::Safe,
        "danger" => Trust::Danger,
        _ => return Err(malformed(subject, "trust is neither 'safe' nor 'danger'")),
    };
    let port_tok = h.tok[2];
    if port_tok.len() > 5
        || !port_tok.bytes().all(|b| b.is_ascii_digit())
        || (port_tok.len() > 1 && port_tok.starts_with('0'))
    {
        return Err(malformed(subject, "port is not a canonical decimal number"));
    }
    let port: u16 = port_tok
        .parse()
        .map_err(|_| malformed(subject, "port out of range"))?;
    if Trust::of_port(port) != trust {
        return Err(malformed(subject, "trust segment does not match the port"));
    }
    let src = decode_host(subject, h.tok[3])?;
    // Checked as `decode_host` would, without keeping the decoded name.
    let dest_token = h.tok[4];
    match dest_token {
        "_" => return Err(malformed(subject, "empty destination host")),
        t if !hostname::is_flattened(t) => {
            return Err(malformed(subject, "host token is not a flattened hostname"));
        }
        _ => {}
    }
    let pos = h.tok[5];
    if !position_any_case(pos) {
        return Err(malformed(subject, "invalid position"));
    }
    if pos.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(malformed(subject, "position is not lower-case"));
    }
    let method = h.tok[6];
    if method.is_empty()
        || method.len() > crate::route::MAX_METHOD_LEN
        || !method.bytes().all(|b| b.is_ascii_alphabetic())
    {
        // The method's own error, as `Method::parse` words it.
        Method::parse(method)?;
        return Err(malformed(subject, "invalid method"));
    }
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(malformed(subject, "method is not upper-case"));
    }
    let rest = &subject[h.path_at..];
    let mut path = Vec::with_capacity(rest.len() + 8);
    for (_, token) in dot_tokens(rest) {
        path.push(b'/');
        decode_segment(subject, token, &mut path)?;
    }
    let path = String::from_utf8(path).map_err(|_| malformed(subject, "path is not UTF-8"))?;
    Ok(RequestParts {
        plane: h.tok[0],
        trust,
        port,
        src,
        src_token: h.tok[3],
        dest_token,
        pos,
        method,
        path,
    })
}

/// Decodes a concrete (wildcard-free) subject of the layout.
pub fn decode(subject: &str) -> Result<Subject, SubjectError> {
    let h = received_head(subject)?;
    let plane = Plane::parse(h.tok[0]).map_err(|_| malformed(subject, "invalid plane"))?;
    if h.tok[1] == "reply" {
        if h.count != 6 || h.tok[2] != "_" {
            return Err(malformed(
                subject,
                "reply subject is not <plane>.reply._.<responder>.<caller>.<id>",
            ));
        }
        let caller_id =
            Position::parse(h.tok[5]).map_err(|_| malformed(subject, "invalid caller id"))?;
        if caller_id.token() != h.tok[5] {
            return Err(malformed(subject, "caller id is not lower-case"));
        }
        return Ok(Subject::Reply(ReplySubject {
            plane,
            responder: decode_host(subject, h.tok[3])?,
            caller: decode_host(subject, h.tok[4])?,
            caller_id,
        }));
    }
    let r = request_parts(subject, &h)?;
    Ok(Subject::Request(RequestSubject {
        plane,
        trust: r.trust,
        port: r.port,
        dest: r.dest(),
        src: r.src,
        pos: Position::parse(r.pos).map_err(|_| malformed(subject, "invalid position"))?,
        method: Method::parse(r.method)?,
        path: r.path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localities_as_microbus_reads_them() {
        let loc = |s: &str| Position::locality(s).map(|p| p.token().to_string());
        assert_eq!(loc("us").unwrap(), "loc-us");
        assert_eq!(loc("US-WEST").unwrap(), "loc-us-west");
        assert_eq!(loc("1.b.West.us").unwrap(), "loc-us-west-b-1");
        assert_eq!(loc("eu").unwrap(), "loc-eu");
        let longest = "a".repeat(MAX_LOCALITY_LEN);
        let p = Position::locality(&longest).unwrap();
        // Every locality makes a position token the subject decoder takes.
        assert_eq!(Position::parse(p.token()).unwrap(), p);
        for bad in [
            "",
            ".",
            "*",
            ">",
            "us.*",
            "us west",
            " us",
            "us\n",
            "us_west",
            "us/west",
            "ünïcode",
            "日本",
            "-us",
            "us-",
            "us--west",
            "us..west",
            ".us",
            "id-x",
            "loc-us",
            "LOC-US",
            "all",
            "ALL",
            &"a".repeat(MAX_LOCALITY_LEN + 1),
            &"é".repeat(300),
        ] {
            match Position::locality(bad) {
                Err(SubjectError::InvalidLocality { locality, reason }) => {
                    assert!(locality.len() <= 200, "{bad:?}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn positions_split_off_hosts_as_microbus_cuts_them() {
        let split = |h: &str| {
            Position::split_host(h).map(|(p, rest)| (p.token().to_string(), rest.to_string()))
        };
        assert_eq!(
            split("loc-us-west.example.com").unwrap(),
            ("loc-us-west".into(), "example.com".into())
        );
        assert_eq!(
            split("ID-ABC123.example.com").unwrap(),
            ("id-abc123".into(), "example.com".into())
        );
        for plain in ["singleton", "other.example.com", "loc.example.com", "id.x"] {
            assert_eq!(split(plain).unwrap(), ("_".into(), plain.into()));
        }
        for bad in ["loc-.x", "loc-a_b.x", "id-*.x", "loc-é.x", "loc->.x"] {
            assert!(
                matches!(split(bad), Err(SubjectError::InvalidPosition { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn locality_levels_are_every_prefix() {
        let tokens = |s: &str| {
            Position::locality(s)
                .unwrap()
                .locality_levels()
                .iter()
                .map(|p| p.token().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(tokens("us"), ["loc-us"]);
        assert_eq!(
            tokens("us-west-b-1"),
            ["loc-us", "loc-us-west", "loc-us-west-b", "loc-us-west-b-1"]
        );
        assert!(Position::Any.locality_levels().is_empty());
        assert!(
            Position::parse("id-abc")
                .unwrap()
                .locality_levels()
                .is_empty()
        );
    }

    #[test]
    fn id_token_is_what_parse_gives_for_instance_ids() {
        for t in [
            "id-abc", "ID-AbC", "id-", "id-a_b", "id-a.b", "loc-us", "_", "", "id-ü", "iD-9-x",
            "id-*", "xid-a",
        ] {
            let parsed = match Position::parse(t) {
                Ok(p @ Position::Id(_)) => Some(p.token().to_string()),
                _ => None,
            };
            assert_eq!(
                Position::id_token(t).map(|c| c.into_owned()),
                parsed,
                "{t:?}"
            );
        }
        assert!(matches!(
            Position::id_token("id-abc"),
            Some(std::borrow::Cow::Borrowed(_))
        ));
        let long = format!("id-{}", "a".repeat(65));
        assert_eq!(Position::id_token(&long), None);
        assert!(Position::parse(&long).is_err());
    }

    /// The decoder before the token-array rewrite (kept to compare).
    fn decode_reference(subject: &str) -> Result<Subject, SubjectError> {
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(malformed(subject, "longer than 64 KiB"));
        }
        let tokens: Vec<&str> = subject.split('.').collect();
        if tokens.iter().any(|t| t.is_empty()) {
            return Err(malformed(subject, "empty token"));
        }
        if tokens.iter().any(|t| *t == "*" || *t == ">") {
            return Err(malformed(subject, "wildcard in a received subject"));
        }
        if tokens.len() < 6 {
            return Err(malformed(subject, "too few tokens"));
        }
        let plane = Plane::parse(tokens[0]).map_err(|_| malformed(subject, "invalid plane"))?;
        if tokens[1] == "reply" {
            if tokens.len() != 6 || tokens[2] != "_" {
                return Err(malformed(
                    subject,
                    "reply subject is not <plane>.reply._.<responder>.<caller>.<id>",
                ));
            }
            let caller_id =
                Position::parse(tokens[5]).map_err(|_| malformed(subject, "invalid caller id"))?;
            if caller_id.token() != tokens[5] {
                return Err(malformed(subject, "caller id is not lower-case"));
            }
            return Ok(Subject::Reply(ReplySubject {
                plane,
                responder: decode_host(subject, tokens[3])?,
                caller: decode_host(subject, tokens[4])?,
                caller_id,
            }));
        }
        if tokens.len() < 8 {
            return Err(malformed(subject, "too few tokens for a request"));
        }
        let trust = match tokens[1] {
            "safe" => Trust::Safe,
            "danger" => Trust::Danger,
            _ => return Err(malformed(subject, "trust is neither 'safe' nor 'danger'")),
        };
        let port_tok = tokens[2];
        if port_tok.len() > 5
            || !port_tok.bytes().all(|b| b.is_ascii_digit())
            || (port_tok.len() > 1 && port_tok.starts_with('0'))
        {
            return Err(malformed(subject, "port is not a canonical decimal number"));
        }
        let port: u16 = port_tok
            .parse()
            .map_err(|_| malformed(subject, "port out of range"))?;
        if Trust::of_port(port) != trust {
            return Err(malformed(subject, "trust segment does not match the port"));
        }
        let src = decode_host(subject, tokens[3])?;
        let dest = decode_host(subject, tokens[4])?;
        if dest.is_empty() {
            return Err(malformed(subject, "empty destination host"));
        }
        let pos = Position::parse(tokens[5]).map_err(|_| malformed(subject, "invalid position"))?;
        if pos.token() != tokens[5] {
            return Err(malformed(subject, "position is not lower-case"));
        }
        let method = Method::parse(tokens[6])?;
        if method.as_str() != tokens[6] {
            return Err(malformed(subject, "method is not upper-case"));
        }
        let mut path = Vec::with_capacity(subject.len());
        for tok in &tokens[7..] {
            path.push(b'/');
            decode_segment(subject, tok, &mut path)?;
        }
        let path = String::from_utf8(path).map_err(|_| malformed(subject, "path is not UTF-8"))?;
        Ok(Subject::Request(RequestSubject {
            plane,
            trust,
            port,
            src,
            dest,
            pos,
            method,
            path,
        }))
    }

    /// Subjects built from valid and broken tokens in every position.
    fn corpus() -> Vec<String> {
        let choices: [&[&str]; 9] = [
            &["p0", "P0", "", "a_b"],
            &["safe", "danger", "reply", "x"],
            &["443", "666", "0443", "70000", "_", "1"],
            &["caller_example", "_", "bad!host", "a"],
            &["svc_example", "_", "Svc", "b_c"],
            &["_", "id-abc", "ID-abc", "loc-eu", "id-", "q", "id-a_b"],
            &[
                "GET",
                "get",
                "POST",
                "G3T",
                "ANY",
                "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG",
            ],
            &["items", "_", "a%2fb", "a%41", "a%2e", "a%2", "*", ">", "b~"],
            &["x", "", "x.y", "%20", "..", "z.>"],
        ];
        let mut out = vec![
            String::new(),
            ".".into(),
            "p0.reply._.svc_example.caller_example.id-abc".into(),
            "p0.reply._.svc_example.caller_example.ID-abc".into(),
            "p0.reply.x.svc_example.caller_example.id-abc".into(),
            "p0.reply._.svc_example.caller_example.id-abc.extra".into(),
            "p0.safe.443.a_b.c_d._.GET".into(),
            format!("p0.safe.443.a.b._.GET.{}", "x".repeat(70 * 1024)),
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..30_000 {
            let mut parts = vec![];
            for c in &choices {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // The first choice (valid) half the time.
                let i = if x.is_multiple_of(2) {
                    0
                } else {
                    ((x >> 1) % c.len() as u64) as usize
                };
                parts.push(c[i]);
            }
            let n = 6 + (x % 4) as usize;
            out.push(parts[..n.min(parts.len())].join("."));
        }
        out
    }

    /// The token-array decoder answers exactly as the one it replaced, and
    /// `decode_request` agrees with `decode` on every request subject.
    #[test]
    fn decoders_agree() {
        let mut requests = 0;
        for s in corpus() {
            let new = decode(&s);
            assert_eq!(new, decode_reference(&s), "{s}");
            let parts = decode_request(&s);
            match (&new, parts) {
                (Ok(Subject::Request(r)), Ok(p)) => {
                    requests += 1;
                    assert_eq!(r.plane.as_str(), p.plane, "{s}");
                    assert_eq!((r.trust, r.port), (p.trust, p.port), "{s}");
                    assert_eq!(
                        (&r.src, &r.dest, &r.path),
                        (&p.src, &p.dest(), &p.path),
                        "{s}"
                    );
                    assert_eq!(flatten(&p.src), p.src_token, "{s}");
                    let mut built = String::new();
                    reply_to_token_into(
                        &mut built,
                        &reply_head(&r.plane, "x.example"),
                        p.src_token,
                        r.pos.token(),
                    );
                    assert_eq!(built, reply(&r.plane, "x.example", &p.src, &r.pos), "{s}");
                    assert_eq!((r.pos.token(), r.method.as_str()), (p.pos, p.method), "{s}");
                }
                (Ok(Subject::Reply(_)), Err(_)) => {}
                // A reply-shaped subject is refused as a request whatever
                // else is wrong with it.
                (Err(_), Err(f)) if s.split('.').nth(1) == Some("reply") => {
                    assert!(matches!(f, SubjectError::Malformed { .. }), "{s}")
                }
                (Err(e), Err(f)) => assert_eq!(e, &f, "{s}"),
                (a, b) => panic!("{s}: decode {a:?}, decode_request {b:?}"),
            }
        }
        assert!(
            requests > 100,
            "the corpus holds valid requests: {requests}"
        );
    }

    fn p0() -> Plane {
        Plane::parse("p0").unwrap()
    }
    fn m(s: &str) -> Method {
        Method::parse(s).unwrap()
    }
    fn pos(s: &str) -> Position {
        Position::parse(s).unwrap()
    }
    fn sub(port: u16, host: &str, p: &str, method: &str, path: &str) -> String {
        subscription_for_path(&p0(), port, host, &pos(p), &m(method), path).unwrap()
    }
    fn publ(port: u16, src: &str, host: &str, p: &str, method: &str, path: &str) -> String {
        request(&p0(), port, src, host, &pos(p), &m(method), path)
    }

    #[test]
    fn reply_is_its_affixes_around_the_responder() {
        let id = pos("id-abc123");
        let (prefix, suffix) = reply_affixes(&p0(), "Caller.Example", &id);
        for responder in ["echo.bench", "a", "x_y.z", "caf\u{e9}.x"] {
            let full = reply(&p0(), responder, "Caller.Example", &id);
            assert_eq!(full, format!("{prefix}{}{suffix}", flatten(responder)));
            assert!(matches!(decode(&full), Ok(Subject::Reply(_))));
        }
    }

    #[test]
    fn subscribe_vectors() {
        let v = [
            (
                sub(80, "EXAMPLE.com", "", "GET", "PATH/to/file.html"),
                "p0.safe.80.*.example_com._.GET.PATH.to.file%2ehtml",
            ),
            (
                sub(80, "EXAMPLE.com", "", "GET", "PATH/"),
                "p0.safe.80.*.example_com._.GET.PATH._",
            ),
            (
                sub(123, "example.com", "", "POST", "DIR/{...}"),
                "p0.safe.123.*.example_com._.POST.DIR.>",
            ),
            (
                sub(123, "example.com", "", "PATCH", "/DIR/{file...}"),
                "p0.safe.123.*.example_com._.PATCH.DIR.>",
            ),
            (
                sub(443, "www.example.com", "", "delete", "/{...}"),
                "p0.safe.443.*.www_example_com._.DELETE.>",
            ),
            (
                sub(443, "www.example.com", "", "ANY", ""),
                "p0.safe.443.*.www_example_com._.*._",
            ),
            (
                sub(0, "EXAMPLE.com", "", "GET", "PATH/to/file.html"),
                "p0.safe.*.*.example_com._.GET.PATH.to.file%2ehtml",
            ),
            (
                sub(443, "example.com", "", "GET", "/foo/{foo}/bar/{bar}"),
                "p0.safe.443.*.example_com._.GET.foo.*.bar.*",
            ),
            (
                sub(
                    0,
                    "example.com",
                    "",
                    "ANY",
                    "/foo/{foo}/bar/{bar}/{appendix...}",
                ),
                "p0.safe.*.*.example_com._.*.foo.*.bar.*.>",
            ),
            (
                sub(80, "EXAMPLE.com", "", "GET", "empty///"),
                "p0.safe.80.*.example_com._.GET.empty._._._",
            ),
            (
                sub(666, "example.com", "", "POST", "mint"),
                "p0.danger.666.*.example_com._.POST.mint",
            ),
            (
                sub(443, "example.com", "id-abcd1234", "GET", "path"),
                "p0.safe.443.*.example_com.id-abcd1234.GET.path",
            ),
            (
                sub(443, "example.com", "loc-us-west", "GET", "path"),
                "p0.safe.443.*.example_com.loc-us-west.GET.path",
            ),
            (
                sub(443, "example.com", "ID-ABCD1234", "GET", "path"),
                "p0.safe.443.*.example_com.id-abcd1234.GET.path",
            ),
            (
                sub(443, "my$.xml", "", "GET", "path"),
                "p0.safe.443.*.my%24_xml._.GET.path",
            ),
        ];
        for (got, want) in v {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn publish_vectors() {
        let v = [
            (
                publ(80, "BY.com", "EXAMPLE.com", "", "GET", "PATH/to/file.html"),
                "p0.safe.80.by_com.example_com._.GET.PATH.to.file%2ehtml",
            ),
            (
                publ(80, "BY.com", "EXAMPLE.com", "", "GET", "PATH/"),
                "p0.safe.80.by_com.example_com._.GET.PATH._",
            ),
            (
                publ(123, "by.com", "example.com", "", "PATCH", "/DIR/"),
                "p0.safe.123.by_com.example_com._.PATCH.DIR._",
            ),
            (
                publ(443, "by.com", "www.example.com", "", "ANY", "/method"),
                "p0.safe.443.by_com.www_example_com._.ANY.method",
            ),
            (
                publ(443, "by.com", "www.example.com", "", "delete", "/"),
                "p0.safe.443.by_com.www_example_com._.DELETE._",
            ),
            (
                publ(443, "by.com", "www.example.com", "", "OPTIONS", ""),
                "p0.safe.443.by_com.www_example_com._.OPTIONS._",
            ),
            (
                publ(0, "BY.com", "EXAMPLE.com", "", "GET", "PATH/to/file.html"),
                "p0.safe.0.by_com.example_com._.GET.PATH.to.file%2ehtml",
            ),
            (
                publ(
                    443,
                    "by.com",
                    "example.com",
                    "",
                    "GET",
                    "/foo/{foo}/bar/{bar}",
                ),
                "p0.safe.443.by_com.example_com._.GET.foo.%7bfoo%7d.bar.%7bbar%7d",
            ),
            (
                publ(80, "BY.com", "EXAMPLE.com", "", "GET", "empty///"),
                "p0.safe.80.by_com.example_com._.GET.empty._._._",
            ),
            (
                publ(666, "by.com", "example.com", "", "POST", "mint"),
                "p0.danger.666.by_com.example_com._.POST.mint",
            ),
            (
                publ(443, "by.com", "example.com", "id-abcd1234", "GET", "path"),
                "p0.safe.443.by_com.example_com.id-abcd1234.GET.path",
            ),
            (
                publ(443, "by.com", "example.com", "loc-us-west", "GET", "path"),
                "p0.safe.443.by_com.example_com.loc-us-west.GET.path",
            ),
        ];
        for (got, want) in v {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn segment_vectors() {
        for (input, want) in [
            ("UPPERCASE", "UPPERCASE"),
            ("file.html", "file%2ehtml"),
            ("a_b_c", "a%5fb%5fc"),
            ("two-W0rds", "two-W0rds"),
            ("special!", "special%21"),
            ("asteri*", "asteri%2a"),
        ] {
            let mut out = String::new();
            escape_segment(&mut out, input);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn reply_vectors() {
        assert_eq!(
            reply_subscription(&p0(), "www.EXAMPLE.com", &pos("ID-ABCD1234")),
            "p0.reply._.*.www_example_com.id-abcd1234"
        );
        assert_eq!(
            reply(&p0(), "by.com", "www.example.com", &pos("id-abcd1234")),
            "p0.reply._.by_com.www_example_com.id-abcd1234"
        );
    }

    #[test]
    fn decode_round_trip() {
        let s = publ(
            666,
            "by.com",
            "example.com",
            "id-abcd1234",
            "POST",
            "/mint/a b/é.x//",
        );
        let Subject::Request(r) = decode(&s).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.trust, Trust::Danger);
        assert_eq!(
            (r.port, r.src.as_str(), r.dest.as_str()),
            (666, "by.com", "example.com")
        );
        assert_eq!(r.pos, pos("id-abcd1234"));
        assert_eq!(r.path, "/mint/a b/é.x//");
        let Subject::Reply(r) = decode("p0.reply._.by_com.www_example_com.id-abcd1234").unwrap()
        else {
            panic!("not a reply")
        };
        assert_eq!(
            (r.responder.as_str(), r.caller.as_str()),
            ("by.com", "www.example.com")
        );
    }

    #[test]
    fn decode_refuses_malformed() {
        for bad in [
            "",
            "p0",
            "p0.safe.443.a.b._.GET",
            "p0.safe.666.a.b._.GET.x",
            "p0.danger.443.a.b._.GET.x",
            "p0.safe.0443.a.b._.GET.x",
            "p0.safe.99999.a.b._.GET.x",
            "p0.safe.443.a.b._.get.x",
            "p0.safe.443.a.*._.GET.x",
            "p0.safe.443.a.b._.GET.>",
            "p0.safe.443.a.b._.GET.x..y",
            "p0.safe.443.a.b._.GET.x%2",
            "p0.safe.443.a.b._.GET.x%ZZ",
            "p0.safe.443.a.b._.GET.%ff",
            "p0.safe.443.a.b.ID-X.GET.x",
            "p0.safe.443.a._._.GET.x",
            "P0.safe.443.a.b._.GET.x",
            "p0.reply.x.a.b.id-1",
            "p0.reply._.a.b.ID-1",
            "p0.safe.443.a.b._.GET.%61",
            "p0.safe.443.a.b._.GET.a%2fb",
            "p0.safe.443.a.b._.GET.%2d",
            "p0.safe.443.%61.b._.GET.x",
            "p0.safe.443.a.b%2ec._.GET.x",
        ] {
            assert!(decode(bad).is_err(), "{bad:?} decoded");
        }
    }
}
