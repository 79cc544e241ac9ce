//! Methods, ports, endpoint routes and the literal URLs of raw calls.
//!
//! A route is what an endpoint declares (`":443/items/{id}"`, `"/square"`,
//! `"//alt.example:444/x"`, `"https://alt.example/x"`); a [`Url`] is what a
//! raw call names (`"https://other.example:444/path?q=1"`, the query ignored).

use crate::hostname::{Hostname, HostnameError};
use std::fmt;

/// Port used when a route or URL names none and has no `http://` scheme.
pub const DEFAULT_PORT: u16 = 443;
/// The trust-root port: its subjects carry the `danger` trust segment.
pub const TRUST_ROOT_PORT: u16 = 666;
/// The port of outbound events.
pub const EVENT_PORT: u16 = 417;
/// The control-plane port.
pub const CONTROL_PORT: u16 = 888;
/// Longest method name accepted.
pub const MAX_METHOD_LEN: usize = 32;

/// An upper-cased HTTP method token (`GET`, `POST`, `ANY`, …).
/// Held as a `'static` string for the common methods, so cloning one (a
/// typed call does, per call) costs nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Method(std::borrow::Cow<'static, str>);

impl Method {
    /// Validates and upper-cases a method: 1 to 32 ASCII letters.
    pub fn parse(input: &str) -> Result<Self, RouteError> {
        if input.is_empty()
            || input.len() > MAX_METHOD_LEN
            || !input.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return Err(RouteError::InvalidMethod {
                method: input.to_string(),
            });
        }
        const COMMON: [&str; 9] = [
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "ANY",
        ];
        Ok(Method(
            match COMMON.iter().find(|m| m.eq_ignore_ascii_case(input)) {
                Some(m) => std::borrow::Cow::Borrowed(*m),
                None => std::borrow::Cow::Owned(input.to_ascii_uppercase()),
            },
        ))
    }

    /// `ANY`: an endpoint that accepts every method.
    pub fn any() -> Self {
        Method(std::borrow::Cow::Borrowed("ANY"))
    }

    /// `POST`.
    pub fn post() -> Self {
        Method(std::borrow::Cow::Borrowed("POST"))
    }

    /// The method a typed client call to an endpoint declared with this
    /// method sends: `POST` for an `ANY` endpoint, else the method itself.
    /// The analyzer's grant and the runtime's request both use it.
    pub fn for_typed_call(&self) -> Method {
        if self.is_any() {
            Method::post()
        } else {
            self.clone()
        }
    }

    /// Whether this is `ANY`.
    pub fn is_any(&self) -> bool {
        self.0 == "ANY"
    }

    /// The method as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a route, URL or method was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The method is not 1 to 32 ASCII letters.
    #[error("method {method:?} is not 1 to {MAX_METHOD_LEN} ASCII letters")]
    InvalidMethod {
        /// The offending method.
        method: String,
    },
    /// The port is not a decimal number from 0 to 65535.
    #[error("port {port:?} in {route:?} is not a number from 0 to 65535")]
    InvalidPort {
        /// The route.
        route: String,
        /// The port text.
        port: String,
    },
    /// The host of a route or URL is not a valid hostname.
    #[error("host in {route:?}: {source}")]
    InvalidHost {
        /// The route.
        route: String,
        /// What is wrong with the host.
        source: HostnameError,
    },
    /// A URL without the `http://` or `https://` scheme.
    #[error("{url:?} is not an http:// or https:// URL with a host")]
    NotAUrl {
        /// The offending text.
        url: String,
    },
    /// A route contains a query or fragment.
    #[error("route {route:?} contains '?' or '#'; routes name a path only")]
    QueryInRoute {
        /// The route.
        route: String,
    },
    /// A path argument is malformed (`{a`, `x{a}`, `{a b}`).
    #[error(
        "path segment {segment:?} in {route:?} is a malformed argument; write {{name}} or a final {{name...}}"
    )]
    InvalidArgument {
        /// The route.
        route: String,
        /// The segment.
        segment: String,
    },
    /// A URL's path has a `%` not followed by two hex digits, or decodes to
    /// bytes that are not UTF-8.
    #[error("{url:?} has a malformed %-escape or a path that is not UTF-8 once decoded")]
    BadEscape {
        /// The offending URL.
        url: String,
    },
    /// A control character (below 0x20, or 0x7f) in a URL or route.
    #[error("{text:?} contains a control character")]
    ControlChar {
        /// The offending text.
        text: String,
    },
    /// A URL's host starts with an `id-…`/`loc-…` label that is not a valid
    /// position.
    #[error("{url:?}: {reason}")]
    InvalidPosition {
        /// The offending URL.
        url: String,
        /// What is wrong with the label.
        reason: String,
    },
    /// A URL with `user@` before the host; raw calls name a host only.
    #[error("{url:?} has user information before the host; name the host only")]
    UserInfo {
        /// The offending URL.
        url: String,
    },
    /// Two path arguments with the same name (`/{id}/x/{id}`).
    #[error("path argument {name:?} appears twice in {route:?}")]
    DuplicateArgument {
        /// The route.
        route: String,
        /// The repeated name.
        name: String,
    },
    /// A greedy `{name...}` argument that is not the last segment.
    #[error("greedy argument {segment:?} in {route:?} must be the last path segment")]
    GreedyNotLast {
        /// The route.
        route: String,
        /// The segment.
        segment: String,
    },
}

/// One segment of a route's path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// Literal text (may be empty: `a//b`).
    Literal(String),
    /// `{name}`: exactly one segment.
    Arg(String),
    /// A final `{name...}`: one or more segments.
    Greedy(String),
    /// A bare `*` segment: any one segment.
    Star,
}

/// A parsed endpoint route: optional host override, port and path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// Host named in the route (`//alt.example:443/x`), overriding the service's own.
    pub host: Option<Hostname>,
    /// The port (`0` means any port).
    pub port: u16,
    /// The path segments, after the leading `/`.
    pub segments: Vec<Segment>,
}

impl Route {
    /// Parses `":port/path"`, `"/path"`, `"path"`, `"//host:port/path"` or
    /// `"http(s)://host[:port]/path"`.
    pub fn parse(route: &str) -> Result<Self, RouteError> {
        if route.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(RouteError::ControlChar {
                text: route.to_string(),
            });
        }
        if route.contains(['?', '#']) {
            return Err(RouteError::QueryInRoute {
                route: route.to_string(),
            });
        }
        let (host, port, path) = split_authority(route)?;
        let segments = parse_segments(route, path)?;
        Ok(Route {
            host,
            port,
            segments,
        })
    }

    /// A route with a literal path (every segment literal), as raw calls have.
    pub fn literal(host: Option<Hostname>, port: u16, path: &str) -> Self {
        let path = path.strip_prefix('/').unwrap_or(path);
        let segments = path
            .split('/')
            .map(|s| Segment::Literal(s.to_string()))
            .collect();
        Route {
            host,
            port,
            segments,
        }
    }

    /// The path with a leading `/`, arguments written as declared.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(s) => out.push_str(s),
                Segment::Arg(n) => {
                    out.push('{');
                    out.push_str(n);
                    out.push('}');
                }
                Segment::Greedy(n) => {
                    out.push('{');
                    out.push_str(n);
                    out.push_str("...}");
                }
                Segment::Star => out.push('*'),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// Whether any segment is an argument or `*`.
    pub fn has_arguments(&self) -> bool {
        self.segments
            .iter()
            .any(|s| !matches!(s, Segment::Literal(_)))
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.host {
            write!(f, "//{host}")?;
        }
        write!(f, ":{}{}", self.port, self.path())
    }
}

fn parse_port(route: &str, text: &str) -> Result<u16, RouteError> {
    let bad = || RouteError::InvalidPort {
        route: route.to_string(),
        port: text.to_string(),
    };
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u16>().map_err(|_| bad())
}

/// `text` without its scheme prefix (ASCII case-insensitive), if it has it.
fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let head = text.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &text[scheme.len()..])
}

/// Splits `[scheme:]//host[:port]/path` or `:port/path` into its parts.
fn split_authority(route: &str) -> Result<(Option<Hostname>, u16, &str), RouteError> {
    let (default_port, rest) = if let Some(r) = strip_scheme(route, "https://") {
        (DEFAULT_PORT, Some(r))
    } else if let Some(r) = strip_scheme(route, "http://") {
        (80, Some(r))
    } else if let Some(r) = route.strip_prefix("//") {
        (DEFAULT_PORT, Some(r))
    } else {
        (DEFAULT_PORT, None)
    };
    match rest {
        Some(rest) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, parse_port(route, p)?),
                None => (authority, default_port),
            };
            let host =
                Hostname::parse_destination(host).map_err(|source| RouteError::InvalidHost {
                    route: route.to_string(),
                    source,
                })?;
            Ok((Some(host), port, path))
        }
        None => match route.strip_prefix(':') {
            Some(r) => {
                let (p, path) = match r.find('/') {
                    Some(i) => r.split_at(i),
                    None => (r, ""),
                };
                Ok((None, parse_port(route, p)?, path))
            }
            None => Ok((None, default_port, route)),
        },
    }
}

fn parse_segments(route: &str, path: &str) -> Result<Vec<Segment>, RouteError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    let last = parts.len() - 1;
    let mut segments = Vec::with_capacity(parts.len());
    let mut names = std::collections::BTreeSet::new();
    for (i, part) in parts.iter().enumerate() {
        let bad = || RouteError::InvalidArgument {
            route: route.to_string(),
            segment: part.to_string(),
        };
        let seg = if let Some(inner) = part.strip_prefix('{') {
            let inner = inner.strip_suffix('}').ok_or_else(bad)?;
            let (name, greedy) = match inner.strip_suffix("...") {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad());
            }
            if !name.is_empty() && !names.insert(name) {
                return Err(RouteError::DuplicateArgument {
                    route: route.to_string(),
                    name: name.to_string(),
                });
            }
            if greedy {
                if i != last {
                    return Err(RouteError::GreedyNotLast {
                        route: route.to_string(),
                        segment: part.to_string(),
                    });
                }
                Segment::Greedy(name.to_string())
            } else {
                Segment::Arg(name.to_string())
            }
        } else if part.contains(['{', '}']) {
            return Err(bad());
        } else if *part == "*" {
            Segment::Star
        } else {
            Segment::Literal(part.to_string())
        };
        segments.push(seg);
    }
    Ok(segments)
}

/// The literal URL of a raw call: host, port (by scheme when absent) and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The destination host.
    pub host: Hostname,
    /// The port: explicit, else 443 for https and 80 for http.
    pub port: u16,
    /// The path with its leading `/`, without query or fragment.
    pub path: String,
}

impl Url {
    /// Parses `http(s)://host[:port][/path][?query][#fragment]` the way Go's
    /// `net/url` does for Microbus: the scheme is case-insensitive, the
    /// query and fragment are dropped, and the path is %-decoded (the wire
    /// carries the decoded path, so `/a%20b` is the segment `a b`). Control
    /// characters, user information and malformed escapes are refused.
    pub fn parse(url: &str) -> Result<Self, RouteError> {
        if strip_scheme(url, "https://").is_none() && strip_scheme(url, "http://").is_none() {
            return Err(RouteError::NotAUrl {
                url: url.to_string(),
            });
        }
        if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(RouteError::ControlChar {
                text: url.to_string(),
            });
        }
        let without_query = url.split(['?', '#']).next().unwrap_or_default();
        let after_scheme = &without_query[without_query.find("//").map_or(0, |i| i + 2)..];
        let authority = after_scheme.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(RouteError::UserInfo {
                url: url.to_string(),
            });
        }
        let (host, port, path) = split_authority(without_query)?;
        let host = host.ok_or_else(|| RouteError::NotAUrl {
            url: url.to_string(),
        })?;
        let path = percent_decode(path).ok_or_else(|| RouteError::BadEscape {
            url: url.to_string(),
        })?;
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        Ok(Url { host, port, path })
    }

    /// [`Url::parse`] of a URL whose host may start with an `id-…` or
    /// `loc-…` label addressing one instance or one locality
    /// (`https://loc-us-west.calc.example/x`): the label is split off
    /// ([`crate::Position::split_host`]) and returned beside the URL of
    /// the plain host. The grant of such a call is the grant of the plain
    /// URL: rules carry `*` in the position.
    pub fn parse_addressed(url: &str) -> Result<(Self, crate::Position), RouteError> {
        let Some(at) = url.find("://").map(|i| i + 3) else {
            return Url::parse(url).map(|u| (u, crate::Position::Any));
        };
        let rest = &url[at..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let (pos, plain_host) =
            crate::Position::split_host(host).map_err(|e| RouteError::InvalidPosition {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        if pos == crate::Position::Any {
            return Url::parse(url).map(|u| (u, pos));
        }
        let plain = format!("{}{}{}", &url[..at], plain_host, &url[at + host.len()..]);
        Url::parse(&plain).map(|u| (u, pos))
    }

    /// The URL's path as a route of literal segments on this host and port.
    pub fn route(&self) -> Route {
        Route::literal(Some(self.host.clone()), self.port, &self.path)
    }
}

/// Decodes `%xx` escapes (either case of hex); `None` on a malformed escape
/// or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = Route::parse(":443/arithmetic").unwrap();
        assert_eq!(
            (r.host.clone(), r.port, r.path()),
            (None, 443, "/arithmetic".to_string())
        );
        assert_eq!(Route::parse("/square").unwrap().port, 443);
        assert_eq!(Route::parse("square").unwrap().path(), "/square");
        let r = Route::parse(":444/files/{path...}").unwrap();
        assert_eq!(r.segments[1], Segment::Greedy("path".into()));
        let r = Route::parse("/items/{id}/x").unwrap();
        assert_eq!(r.segments[1], Segment::Arg("id".into()));
        let r = Route::parse("//alt.example:444/x").unwrap();
        assert_eq!(r.host.unwrap().as_str(), "alt.example");
        let r = Route::parse("http://alt.example/x").unwrap();
        assert_eq!(r.port, 80);
        assert_eq!(Route::parse(":0").unwrap().path(), "/");
        assert_eq!(Route::parse("").unwrap().port, 443);
    }

    #[test]
    fn bad_routes() {
        assert!(matches!(
            Route::parse(":99999/x"),
            Err(RouteError::InvalidPort { .. })
        ));
        assert!(matches!(
            Route::parse(":-1/x"),
            Err(RouteError::InvalidPort { .. })
        ));
        assert!(matches!(
            Route::parse(":abc/x"),
            Err(RouteError::InvalidPort { .. })
        ));
        assert!(matches!(
            Route::parse("/a/{b...}/c"),
            Err(RouteError::GreedyNotLast { .. })
        ));
        assert!(matches!(
            Route::parse("/a/{b"),
            Err(RouteError::InvalidArgument { .. })
        ));
        assert!(matches!(
            Route::parse("/a/x{b}"),
            Err(RouteError::InvalidArgument { .. })
        ));
        assert!(matches!(
            Route::parse("/a/{b c}"),
            Err(RouteError::InvalidArgument { .. })
        ));
        assert!(matches!(
            Route::parse("/a?x=1"),
            Err(RouteError::QueryInRoute { .. })
        ));
        assert!(matches!(
            Route::parse("//a_b:1/x"),
            Err(RouteError::InvalidHost { .. })
        ));
        assert!(matches!(
            Route::parse("/{id}/x/{id...}"),
            Err(RouteError::DuplicateArgument { .. })
        ));
        assert!(Route::parse("/{}/x/{...}").is_ok());
        assert!(matches!(
            Route::parse("/a\nb"),
            Err(RouteError::ControlChar { .. })
        ));
        assert_eq!(Route::parse("HTTP://a.b/x").unwrap().port, 80);
    }

    #[test]
    fn urls() {
        let u = Url::parse("https://other.example:444/path?q=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("other.example", 444, "/path")
        );
        let u = Url::parse("http://Other.Example").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("other.example", 80, "/")
        );
        assert_eq!(Url::parse("https://x.example/a#f").unwrap().path, "/a");
        assert!(matches!(
            Url::parse("ftp://x/y"),
            Err(RouteError::NotAUrl { .. })
        ));
        assert!(matches!(Url::parse("/y"), Err(RouteError::NotAUrl { .. })));
        assert!(matches!(
            Url::parse("https://:443/y"),
            Err(RouteError::InvalidHost { .. })
        ));
    }

    #[test]
    fn addressed_urls_split_off_their_position() {
        let (u, p) = Url::parse_addressed("https://LOC-US-West.calc.example:444/x/y?q=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str(), p.token()),
            ("calc.example", 444, "/x/y", "loc-us-west")
        );
        let (u, p) = Url::parse_addressed("http://id-abc123.calc.example").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, p.token()),
            ("calc.example", 80, "id-abc123")
        );
        let (u, p) = Url::parse_addressed("https://loc.calc.example/x").unwrap();
        assert_eq!((u.host.as_str(), p.token()), ("loc.calc.example", "_"));
        for bad in [
            "https://loc-.calc.example/x",
            "https://loc-a_b.calc.example/x",
            "https://loc-*.calc.example/x",
        ] {
            assert!(
                matches!(
                    Url::parse_addressed(bad),
                    Err(RouteError::InvalidPosition { .. })
                ),
                "{bad}"
            );
        }
        assert!(Url::parse_addressed("https://loc-x.a@b.example/x").is_err());
        assert!(Url::parse_addressed("https://loc-x/x").is_err());
        assert!(Url::parse_addressed("ftp://loc-x.y/x").is_err());
    }

    #[test]
    fn url_edge_cases() {
        // The wire carries the decoded path, as Go's URL.Path does.
        let u = Url::parse("https://x.example/a%20b/c%2Fd/%C3%A9?q=%zz").unwrap();
        assert_eq!(u.path, "/a b/c/d/é");
        assert_eq!(Url::parse("HTTPS://X.example/a").unwrap().port, 443);
        assert_eq!(Url::parse("Http://x.example/a").unwrap().port, 80);
        assert_eq!(Url::parse("https://x.example:8080").unwrap().path, "/");
        assert_eq!(Url::parse("https://x.example?q").unwrap().path, "/");
        assert_eq!(Url::parse("https://x.example#f").unwrap().port, 443);
        assert_eq!(
            Url::parse("https://x.example/a*/>/{b}")
                .unwrap()
                .route()
                .to_string(),
            "//x.example:443/a*/>/{b}"
        );
        for (bad, want) in [
            ("https://x.example/a%2", "BadEscape"),
            ("https://x.example/a%zz", "BadEscape"),
            ("https://x.example/%ff", "BadEscape"),
            ("https://x.example/a\tb", "ControlChar"),
            ("https://x.example/a\u{7f}", "ControlChar"),
            ("https://user@x.example/a", "UserInfo"),
            ("https://u:p@x.example/a", "UserInfo"),
            ("https://x.example:/a", "InvalidPort"),
            ("https://x.example:1:2/a", "InvalidHost"),
            ("https://[::1]:443/a", "InvalidHost"),
            ("https:x.example/a", "NotAUrl"),
            ("https://x_y/a", "InvalidHost"),
            ("", "NotAUrl"),
            ("https", "NotAUrl"),
        ] {
            let got = format!("{:?}", Url::parse(bad));
            assert!(got.contains(want), "{bad:?}: {got}");
        }
    }

    #[test]
    fn methods() {
        assert_eq!(Method::parse("delete").unwrap().as_str(), "DELETE");
        assert!(Method::parse("").is_err());
        assert!(Method::parse("G.T").is_err());
        assert!(Method::parse("GET*").is_err());
        assert!(Method::parse(&"A".repeat(33)).is_err());
        assert_eq!(Method::any().for_typed_call(), Method::post());
        assert_eq!(
            Method::parse("get").unwrap().for_typed_call().as_str(),
            "GET"
        );
    }
}
