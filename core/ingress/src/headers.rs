//! Header hygiene at the edge, in both directions.
//!
//! Inbound: every `Microbus-*` header, `Traceparent` and `Tracestate` is
//! dropped (a client cannot forge the caller, an actor, baggage or a trace);
//! the bearer token is dropped (the `Authorization` header, and the
//! `Authorization` cookie out of `Cookie`), so it never travels past the
//! ingress; hop-by-hop headers and `Host` are dropped (the bus call sets its
//! own); `X-Forwarded-*` are set from the socket, and a client's values are
//! kept only when the peer is a configured trusted proxy.
//!
//! Outbound: `Microbus-*`, `Traceparent`, `Tracestate` and hop-by-hop
//! headers are dropped from the response.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr};

/// Hop-by-hop headers (RFC 9110 section 7.6.1) and the ones the bus
/// message sets itself.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
    "traceparent",
    "tracestate",
];

/// Whether `name` starts with `prefix`, ASCII case ignored (compared as
/// bytes: a name that is not ASCII is never sliced inside a character).
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn is_microbus(name: &str) -> bool {
    has_prefix(name, "microbus-")
}

fn is_forwarded(name: &str) -> bool {
    has_prefix(name, "x-forwarded-")
}

/// Whether a request header never crosses the edge as is.
pub fn dropped_inbound(name: &str) -> bool {
    is_microbus(name) || DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d))
}

/// The bearer token of a request: `Authorization: Bearer …` wins, else the
/// `Authorization` cookie. `Some("")` is a present but empty token.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(hyper::header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or_default().trim();
        let (scheme, token) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(token.trim().to_string());
        }
        // Another scheme is not a bearer token; it is dropped all the same.
    }
    for cookie in headers.get_all(hyper::header::COOKIE) {
        for part in cookie.to_str().unwrap_or_default().split(';') {
            if let Some((name, value)) = part.trim().split_once('=')
                && name.trim().eq_ignore_ascii_case("authorization")
            {
                let value = value.trim().trim_matches('"');
                let value = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("Bearer%20"))
                    .unwrap_or(value);
                return Some(value.to_string());
            }
        }
    }
    None
}

/// The `Cookie` header without the `Authorization` cookie (`None` when
/// nothing is left).
fn cookies_without_bearer(value: &str) -> Option<String> {
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|p| {
            !p.is_empty()
                && !p
                    .split_once('=')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("authorization"))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Where the request came from, as the ingress sees it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The socket peer.
    pub peer: SocketAddr,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
    /// The scheme the client used (`https` with TLS).
    pub proto: &'static str,
}

impl Origin {
    /// The client's address: the peer, or, behind a trusted proxy, the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted
    /// proxy.
    pub fn client(&self, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
        if !self.trusted {
            return self.peer.ip();
        }
        let mut client = self.peer.ip();
        for v in headers.get_all("x-forwarded-for").iter().rev() {
            for part in v.to_str().unwrap_or_default().rsplit(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) if trusted.contains(&ip) => client = ip,
                    Ok(ip) => return ip,
                    Err(_) => return client,
                }
            }
        }
        client
    }
}

/// The headers a request carries onto the bus: the client's, filtered, and
/// `X-Forwarded-*` set by the ingress. `host` is the `Host` the client
/// asked for, `prefix` the mapped first segment.
pub fn inbound(
    headers: &HeaderMap,
    origin: &Origin,
    host: Option<&str>,
    prefix: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(headers.len() + 4);
    let mut client_forwarded: Vec<(String, String)> = vec![];
    for (name, value) in headers {
        let n = name.as_str();
        if dropped_inbound(n) {
            continue;
        }
        let Ok(v) = value.to_str() else { continue };
        if is_forwarded(n) {
            if origin.trusted {
                client_forwarded.push((n.to_string(), v.to_string()));
            }
            continue;
        }
        if n.eq_ignore_ascii_case("cookie") {
            if let Some(kept) = cookies_without_bearer(v) {
                out.push((n.to_string(), kept));
            }
            continue;
        }
        out.push((n.to_string(), v.to_string()));
    }
    let peer = origin.peer.ip().to_string();
    let client_value = |name: &str| {
        client_forwarded
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let xff = client_value("x-forwarded-for");
    out.push((
        "X-Forwarded-For".into(),
        if xff.is_empty() {
            peer
        } else {
            format!("{xff}, {peer}")
        },
    ));
    let keep_or = |name: &str, own: String| {
        let v = client_value(name);
        if v.is_empty() { own } else { v }
    };
    out.push((
        "X-Forwarded-Host".into(),
        keep_or("x-forwarded-host", host.unwrap_or_default().to_string()),
    ));
    out.push((
        "X-Forwarded-Proto".into(),
        keep_or("x-forwarded-proto", origin.proto.to_string()),
    ));
    out.push((
        "X-Forwarded-Prefix".into(),
        format!("{}{prefix}", client_value("x-forwarded-prefix")),
    ));
    out
}

/// Copies a bus response's headers onto the HTTP response, filtered.
pub fn outbound(from: &[(String, String)], to: &mut HeaderMap) {
    for (n, v) in from {
        if is_microbus(n) || DROPPED.iter().any(|d| n.eq_ignore_ascii_case(d)) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            to.append(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn origin(trusted: bool) -> Origin {
        Origin {
            peer: "10.0.0.9:5555".parse().unwrap(),
            trusted,
            proto: "https",
        }
    }

    #[test]
    fn forged_and_secret_headers_never_cross() {
        let h = map(&[
            ("Microbus-From-Host", "gateway.example"),
            ("Microbus-Actor", "x.y.z"),
            ("Microbus-Baggage-Role", "admin"),
            ("Traceparent", "00-aa-bb-01"),
            ("Tracestate", "x=1"),
            ("Authorization", "Bearer secret"),
            ("Cookie", "a=1; Authorization=secret; b=2"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Host", "evil.example"),
            ("Accept", "text/plain"),
        ]);
        let out = inbound(&h, &origin(false), Some("edge.example"), "/a.example");
        let get = |n: &str| {
            out.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert!(
            out.iter()
                .all(|(n, _)| !n.to_ascii_lowercase().starts_with("microbus-"))
        );
        assert!(get("traceparent").is_empty() && get("tracestate").is_empty());
        assert!(get("authorization").is_empty());
        assert_eq!(get("cookie"), ["a=1; b=2"]);
        assert_eq!(get("x-forwarded-for"), ["10.0.0.9"]);
        assert_eq!(get("x-forwarded-host"), ["edge.example"]);
        assert_eq!(get("x-forwarded-proto"), ["https"]);
        assert_eq!(get("x-forwarded-prefix"), ["/a.example"]);
        assert_eq!(get("accept"), ["text/plain"]);
        assert!(!format!("{out:?}").contains("secret"));
        // Behind a trusted proxy the client's values are kept.
        let out = inbound(&h, &origin(true), Some("edge.example"), "/a.example");
        assert!(out.contains(&("X-Forwarded-For".into(), "6.6.6.6, 10.0.0.9".into())));
        assert!(out.contains(&("X-Forwarded-Host".into(), "evil.example".into())));
    }

    #[test]
    fn prefixes_ignore_case_and_never_split_a_character() {
        assert!(is_microbus("MICROBUS-Actor") && is_forwarded("X-Forwarded-For"));
        assert!(!is_microbus("microbus") && !is_microbus("microbu€-x"));
        assert!(!is_forwarded("x-forwarde€-for"));
    }

    #[test]
    fn the_bearer_token_is_read_from_the_header_or_the_cookie() {
        assert_eq!(
            bearer_token(&map(&[("Authorization", "Bearer abc")])).as_deref(),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&map(&[
                ("Authorization", "bearer abc"),
                ("Cookie", "Authorization=def")
            ]))
            .as_deref(),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&map(&[("Cookie", "x=1; Authorization=def")])).as_deref(),
            Some("def")
        );
        assert_eq!(bearer_token(&map(&[("Cookie", "x=1")])), None);
        assert_eq!(bearer_token(&map(&[("Authorization", "Basic zz")])), None);
    }

    #[test]
    fn the_client_address_behind_trusted_proxies() {
        let trusted: Vec<IpAddr> = vec!["10.0.0.9".parse().unwrap(), "10.0.0.8".parse().unwrap()];
        let h = map(&[("X-Forwarded-For", "1.2.3.4, 5.6.7.8, 10.0.0.8")]);
        assert_eq!(origin(true).client(&h, &trusted).to_string(), "5.6.7.8");
        assert_eq!(origin(false).client(&h, &trusted).to_string(), "10.0.0.9");
    }
}
