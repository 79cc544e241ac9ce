//! The edge of a deployment, as `buswarden.toml` declares it: the HTTP
//! ingress's port firewall (`[edge]`) and the endpoints meant to be public
//! (`[public]`). One definition serves the ingress (which refuses ports at
//! request time), `gencreds` (which derives the ingress's allow-list from the
//! same setting, so the broker enforces the firewall too) and the
//! reachability model (which knows what the internet can reach).
//!
//! # Format
//!
//! ```toml
//! [edge]
//! # The ingress's hostname (default "http.ingress.core").
//! ingress = "http.ingress.core"
//! # local | testing | lab | prod (default prod).
//! mode = "prod"
//! # Internal ports reachable from outside besides 443, outside `local`:
//! # ports or "first-last" ranges, each >= 1024. 666 and 888 never.
//! allowed-internal-ports = [8080, "9000-9099"]
//!
//! [public]
//! # Edge-reachable endpoints that require no claims, on purpose:
//! # `[METHOD ]HOST[:PORT]/PATH`, route arguments as declared.
//! endpoints = ["GET catalog.example/items/{id}"]
//! ```
//!
//! The firewall is Microbus's: in `local` every port but 666 and 888 is
//! reachable; in the other modes 443 and the listed ports only. 666 (trust
//! root) and 888 (control) can never be opened: a configuration that tries
//! is refused, not corrected.

use crate::hostname::{Hostname, HostnameError};
use crate::route::{
    CONTROL_PORT, DEFAULT_PORT, Method, Route, RouteError, Segment, TRUST_ROOT_PORT,
};
use std::fmt;

/// The ingress hostname when `[edge]` does not name one.
pub const DEFAULT_INGRESS: &str = "http.ingress.core";
/// The lowest port `allowed-internal-ports` may open.
pub const MIN_INTERNAL_PORT: u16 = 1024;

/// The deployment mode, which decides the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Development: every port but 666 and 888.
    Local,
    /// Testing: 443 and the listed ports.
    Testing,
    /// Lab: 443 and the listed ports.
    Lab,
    /// Production: 443 and the listed ports.
    #[default]
    Prod,
}

impl Mode {
    /// Parses `local`, `testing`, `lab` or `prod`.
    pub fn parse(text: &str) -> Result<Mode, EdgeError> {
        match text {
            "local" => Ok(Mode::Local),
            "testing" => Ok(Mode::Testing),
            "lab" => Ok(Mode::Lab),
            "prod" => Ok(Mode::Prod),
            _ => Err(EdgeError::UnknownMode {
                mode: text.to_string(),
            }),
        }
    }

    /// The mode's name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Testing => "testing",
            Mode::Lab => "lab",
            Mode::Prod => "prod",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive range of ports; a single port is `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// A range; refused when empty, below [`MIN_INTERNAL_PORT`] or when it
    /// contains 666 or 888.
    pub fn new(first: u16, last: u16) -> Result<PortRange, EdgeError> {
        if first > last {
            return Err(EdgeError::EmptyRange { first, last });
        }
        for never in [TRUST_ROOT_PORT, CONTROL_PORT] {
            if (first..=last).contains(&never) {
                return Err(EdgeError::NeverOpen { port: never });
            }
        }
        if first < MIN_INTERNAL_PORT {
            return Err(EdgeError::BelowMinimum { port: first });
        }
        Ok(PortRange { first, last })
    }

    /// Parses `"8080"` or `"9000-9099"`.
    pub fn parse(text: &str) -> Result<PortRange, EdgeError> {
        let bad = || EdgeError::BadPort {
            text: text.to_string(),
        };
        let port = |s: &str| -> Result<u16, EdgeError> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse::<u16>().map_err(|_| bad())
        };
        match text.split_once('-') {
            Some((a, b)) => PortRange::new(port(a)?, port(b)?),
            None => {
                let p = port(text)?;
                PortRange::new(p, p)
            }
        }
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Why an `[edge]` setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// A mode other than the four.
    #[error("mode {mode:?} is not one of local, testing, lab, prod")]
    UnknownMode {
        /// The mode as written.
        mode: String,
    },
    /// A port that is not a number in 1..=65535.
    #[error("{text:?} is not a port (a number) or a range (\"first-last\")")]
    BadPort {
        /// The text as written.
        text: String,
    },
    /// A range whose first port is after its last.
    #[error("the range {first}-{last} is empty; write the lower port first")]
    EmptyRange {
        /// First port.
        first: u16,
        /// Last port.
        last: u16,
    },
    /// 666 or 888 in the list.
    #[error(
        "port {port} can never be opened at the edge (666 is the trust root, 888 the control plane); remove it"
    )]
    NeverOpen {
        /// The port.
        port: u16,
    },
    /// A port below 1024.
    #[error(
        "port {port} is below {MIN_INTERNAL_PORT}; only 443 and ports >= {MIN_INTERNAL_PORT} can be opened (use mode = \"local\" in development)"
    )]
    BelowMinimum {
        /// The port.
        port: u16,
    },
    /// An ingress hostname that does not validate.
    #[error("ingress: {0}")]
    Ingress(#[source] HostnameError),
}

/// The `[edge]` table: the ingress and its port firewall.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Edge {
    /// The ingress's hostname.
    pub ingress: Hostname,
    /// The deployment mode.
    pub mode: Mode,
    /// Ports opened besides 443 (ignored in `local`).
    pub allowed_internal_ports: Vec<PortRange>,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            ingress: Hostname::parse_exact(DEFAULT_INGRESS).expect("the default ingress is valid"),
            mode: Mode::default(),
            allowed_internal_ports: vec![],
        }
    }
}

impl Edge {
    /// Whether a request from outside may reach internal `port`: never 666,
    /// 888 or 0 (any port); in `local` every other port; otherwise 443 and
    /// the listed ports.
    pub fn admits(&self, port: u16) -> bool {
        if port == TRUST_ROOT_PORT || port == CONTROL_PORT || port == 0 {
            return false;
        }
        self.mode == Mode::Local
            || port == DEFAULT_PORT
            || self.allowed_internal_ports.iter().any(|r| r.contains(port))
    }

    /// The ports opened outside `local`: 443 and the listed ranges, in order.
    pub fn open_ports(&self) -> Vec<PortRange> {
        let mut out = vec![PortRange {
            first: DEFAULT_PORT,
            last: DEFAULT_PORT,
        }];
        out.extend(self.allowed_internal_ports.iter().copied());
        out.sort();
        out.dedup();
        out
    }
}

/// Why a `[public]` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicError {
    /// The entry is empty.
    #[error("the entry is empty")]
    Empty,
    /// The method is invalid.
    #[error(transparent)]
    Method(RouteError),
    /// The host, port or path is invalid.
    #[error(transparent)]
    Route(RouteError),
    /// The entry names no host, or a wildcard host.
    #[error("write the endpoint's exact host: `[METHOD ]HOST[:PORT]/PATH`")]
    NoHost,
    /// The entry names no path.
    #[error("the entry names no path; write the route as declared (e.g. `/items/{{id}}`)")]
    NoPath,
}

/// One `[public]` entry: an edge-reachable endpoint that requires no claims
/// on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicEndpoint {
    /// The method, or `None` for any method.
    pub method: Option<Method>,
    /// The endpoint's host.
    pub host: Hostname,
    /// The port and path (its `host` is `None`).
    pub route: Route,
}

/// Splits an endpoint text `[METHOD ]TARGET` (the grammar of policy grants
/// and `[public]` entries): no method, `*` or `ANY` is any method.
pub(crate) fn split_method(text: &str) -> Result<(Option<Method>, &str), RouteError> {
    let (method, target) = match text.split_once(' ') {
        Some((m, t)) => (Some(m), t.trim_start()),
        None => (None, text),
    };
    let method = match method {
        None | Some("*") => None,
        Some(m) => Some(Method::parse(m)?).filter(|m| !m.is_any()),
    };
    Ok((method, target))
}

impl PublicEndpoint {
    /// Parses `[METHOD ]HOST[:PORT]/PATH`.
    pub fn parse(text: &str) -> Result<PublicEndpoint, PublicError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PublicError::Empty);
        }
        let (method, target) = split_method(text).map_err(PublicError::Method)?;
        if target.starts_with(['/', ':', '*']) {
            return Err(PublicError::NoHost);
        }
        if !target.contains('/') {
            return Err(PublicError::NoPath);
        }
        let mut route = Route::parse(&format!("//{target}")).map_err(PublicError::Route)?;
        let host = route.host.take().ok_or(PublicError::NoHost)?;
        Ok(PublicEndpoint {
            method,
            host,
            route,
        })
    }

    /// Whether this entry names the endpoint `method host:route` (argument
    /// names aside; an entry without a method names every method).
    pub fn names(&self, method: &Method, host: &Hostname, route: &Route) -> bool {
        if &self.host != host || self.route.port != route.port {
            return false;
        }
        if let Some(m) = &self.method
            && m != method
        {
            return false;
        }
        self.route.segments.len() == route.segments.len()
            && self
                .route
                .segments
                .iter()
                .zip(&route.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (Segment::Arg(_), Segment::Arg(_))
                    | (Segment::Greedy(_), Segment::Greedy(_))
                    | (Segment::Star, Segment::Star) => true,
                    _ => false,
                })
    }
}

impl fmt::Display for PublicEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.method {
            write!(f, "{} ", m.as_str())?;
        }
        write!(f, "{}:{}{}", self.host, self.route.port, self.route.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(mode: Mode, ports: &[&str]) -> Edge {
        Edge {
            mode,
            allowed_internal_ports: ports.iter().map(|p| PortRange::parse(p).unwrap()).collect(),
            ..Edge::default()
        }
    }

    #[test]
    fn the_firewall_is_microbus_s_and_never_opens_666_or_888() {
        let prod = edge(Mode::Prod, &["8080", "9000-9099"]);
        for (port, open) in [
            (443, true),
            (444, false),
            (417, false),
            (8080, true),
            (9000, true),
            (9099, true),
            (9100, false),
            (666, false),
            (888, false),
            (0, false),
        ] {
            assert_eq!(prod.admits(port), open, "prod port {port}");
        }
        let local = edge(Mode::Local, &[]);
        for (port, open) in [
            (443, true),
            (444, true),
            (1, true),
            (666, false),
            (888, false),
        ] {
            assert_eq!(local.admits(port), open, "local port {port}");
        }
        for mode in [Mode::Testing, Mode::Lab] {
            assert!(!edge(mode, &[]).admits(444));
        }
    }

    #[test]
    fn hostile_port_settings_are_refused() {
        for (text, want) in [
            ("666", EdgeError::NeverOpen { port: 666 }),
            ("600-700", EdgeError::NeverOpen { port: 666 }),
            ("1-65535", EdgeError::NeverOpen { port: 666 }),
            ("444", EdgeError::BelowMinimum { port: 444 }),
            (
                "2000-1999",
                EdgeError::EmptyRange {
                    first: 2000,
                    last: 1999,
                },
            ),
        ] {
            assert_eq!(PortRange::parse(text), Err(want), "{text}");
        }
        for text in [
            "",
            "-",
            "80x",
            "70000",
            "1024-",
            " ",
            "+1024",
            "１０２４",
            "1024-2000-3000",
        ] {
            assert!(
                matches!(PortRange::parse(text), Err(EdgeError::BadPort { .. })),
                "{text:?}"
            );
        }
        assert_eq!(
            Mode::parse("PROD"),
            Err(EdgeError::UnknownMode {
                mode: "PROD".into()
            })
        );
    }

    #[test]
    fn public_entries_name_endpoints_as_declared() {
        let e = PublicEndpoint::parse("GET catalog.example/items/{id}").unwrap();
        let items = Route::parse(":443/items/{item}").unwrap();
        let get = Method::parse("GET").unwrap();
        let post = Method::parse("POST").unwrap();
        let host = Hostname::parse("catalog.example").unwrap();
        assert!(e.names(&get, &host, &items));
        assert!(!e.names(&post, &host, &items));
        assert!(!e.names(&get, &host, &Route::parse(":8080/items/{id}").unwrap()));
        assert!(!e.names(&get, &host, &Route::parse("/items/x").unwrap()));
        assert_eq!(e.to_string(), "GET catalog.example:443/items/{id}");
        let any = PublicEndpoint::parse("catalog.example:8080/health").unwrap();
        assert!(any.names(&post, &host, &Route::parse(":8080/health").unwrap()));
        for bad in [
            "",
            "GET /items",
            "GET *:443/x",
            "GET catalog.example",
            "G@T x.example/a",
        ] {
            assert!(PublicEndpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
