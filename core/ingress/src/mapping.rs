//! URL mapping and the port firewall: which bus endpoint an external
//! request names, and whether the edge lets it through.
//!
//! The first path segment of the external URL is the internal host with an
//! optional port (`/calculator.example/arithmetic?x=1` ->
//! `https://calculator.example:443/arithmetic?x=1`,
//! `/svc:5555/p` -> `https://svc:5555/p`). The host is lower-cased, `:443`
//! is the default, a non-numeric port is refused, the query is kept. The
//! ingress's own scheme and port never matter. A port the [`Edge`] does not
//! admit (never 666 or 888; outside `local` only 443 and the listed ports)
//! is refused the same way as a malformed target: 404, nothing published.

use buswarden_rules::edge::Edge;

/// The bus endpoint an external request maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The internal host, lower-cased (may start with `id-…`/`loc-…`).
    pub host: String,
    /// The internal port.
    pub port: u16,
    /// The path on that host (starts with `/`).
    pub path: String,
    /// The query string, without `?` (empty when none).
    pub query: String,
    /// The first external segment (`/host[:port]`), the `X-Forwarded-Prefix`.
    pub prefix: String,
}

impl Target {
    /// The bus URL: `https://host:port/path[?query]`.
    pub fn url(&self) -> String {
        if self.query.is_empty() {
            format!("https://{}:{}{}", self.host, self.port, self.path)
        } else {
            format!(
                "https://{}:{}{}?{}",
                self.host, self.port, self.path, self.query
            )
        }
    }
}

/// Why a request maps to no reachable endpoint (each answered 404).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The path names no host.
    #[error("no host in the path: write /<host>[:<port>]/<path>")]
    NoHost,
    /// The port is not a number.
    #[error("the port is not a number")]
    BadPort,
    /// The host or path cannot be a bus address.
    #[error("not a bus address: {0}")]
    BadAddress(String),
    /// The firewall refuses the port.
    #[error("port {0} is closed at the edge")]
    ClosedPort(u16),
}

/// Maps `path` (the external request's path, starting with `/`) and
/// `query` to a bus endpoint, and checks the firewall.
pub fn map(edge: &Edge, path: &str, query: Option<&str>) -> Result<Target, Refused> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (first, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if first.is_empty() {
        return Err(Refused::NoHost);
    }
    let (host, port) = match first.rsplit_once(':') {
        Some((h, p)) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refused::BadPort);
            }
            (h, p.parse::<u16>().map_err(|_| Refused::BadPort)?)
        }
        None => (first, buswarden_rules::route::DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err(Refused::NoHost);
    }
    if !edge.admits(port) {
        return Err(Refused::ClosedPort(port));
    }
    let target = Target {
        host: host.to_ascii_lowercase(),
        port,
        path: tail.to_string(),
        query: query.unwrap_or_default().to_string(),
        prefix: format!("/{first}"),
    };
    // The host's validity is the runtime's to decide (its URL parser
    // refuses a bad address before anything is published: 404 too); here
    // only what the runtime cannot know is checked.
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(Refused::BadAddress(format!("{host:?} is not a hostname")));
    }
    Ok(target)
}

/// Whether `path` matches a blocked pattern: `*` is any run of
/// characters, the rest is literal, the whole path must match
/// (case-insensitive, as scanners vary case).
pub fn blocked(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| glob(p.as_bytes(), path.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // The shapes blocked-path lists are made of (`*.php`, `/wp-login*`,
    // `/.env`: every default) compare once, without the general loop's
    // backtracking; this runs for every pattern on every request.
    let stars = p.iter().filter(|&&b| b == b'*').count();
    let n = p.len().saturating_sub(1);
    match (stars, p.first(), p.last()) {
        (0, _, _) => return p.eq_ignore_ascii_case(s),
        (1, Some(b'*'), _) => {
            return s.len() >= n && s[s.len() - n..].eq_ignore_ascii_case(&p[1..]);
        }
        (1, _, Some(b'*')) => return s.len() >= n && s[..n].eq_ignore_ascii_case(&p[..n]),
        _ => {}
    }
    glob_loop(p, s)
}

fn glob_loop(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with one backtrack point.
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi].eq_ignore_ascii_case(&s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use buswarden_rules::edge::{Mode, PortRange};

    fn edge(mode: Mode, ports: &[&str]) -> Edge {
        Edge {
            mode,
            allowed_internal_ports: ports.iter().map(|p| PortRange::parse(p).unwrap()).collect(),
            ..Edge::default()
        }
    }

    #[test]
    fn the_first_segment_is_host_and_port() {
        let prod = edge(Mode::Prod, &["5555"]);
        let t = map(&prod, "/Calculator.Example/arithmetic", Some("x=1&y=2")).unwrap();
        assert_eq!(t.url(), "https://calculator.example:443/arithmetic?x=1&y=2");
        assert_eq!(t.prefix, "/Calculator.Example");
        let t = map(&prod, "/svc.example:5555/p/q", None).unwrap();
        assert_eq!((t.port, t.path.as_str()), (5555, "/p/q"));
        let t = map(&prod, "/svc.example", None).unwrap();
        assert_eq!(t.url(), "https://svc.example:443/");
        assert_eq!(map(&prod, "/", None), Err(Refused::NoHost));
        assert_eq!(map(&prod, "//x", None), Err(Refused::NoHost));
        assert_eq!(
            map(&prod, "/svc.example:abc/x", None),
            Err(Refused::BadPort)
        );
        assert_eq!(map(&prod, "/svc.example:/x", None), Err(Refused::BadPort));
        assert_eq!(
            map(&prod, "/svc.example:99999/x", None),
            Err(Refused::BadPort)
        );
        assert_eq!(map(&prod, "/:443/x", None), Err(Refused::NoHost));
        assert!(matches!(
            map(&prod, "/bad_host.example/x", None),
            Err(Refused::BadAddress(_))
        ));
    }

    #[test]
    fn the_firewall_follows_the_edge_and_never_opens_666_or_888() {
        for mode in [Mode::Local, Mode::Testing, Mode::Lab, Mode::Prod] {
            let e = edge(mode, &["8080"]);
            for port in [666, 888, 0] {
                assert_eq!(
                    map(&e, &format!("/a.example:{port}/x"), None),
                    Err(Refused::ClosedPort(port)),
                    "{mode} {port}"
                );
            }
            assert!(map(&e, "/a.example:8080/x", None).is_ok());
            assert_eq!(
                map(&e, "/a.example:444/x", None).is_ok(),
                mode == Mode::Local,
                "{mode}"
            );
        }
    }

    #[test]
    fn blocked_paths_match_whole_paths() {
        let p: Vec<String> = crate::config::DEFAULT_BLOCKED_PATHS
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(blocked(&p, "/x.example/index.PHP"));
        assert!(blocked(&p, "/wp-admin/setup"));
        assert!(blocked(&p, "/.env"));
        assert!(!blocked(&p, "/x.example/php"));
        assert!(!blocked(&p, "/x.example/items/wp-admin"));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
    }

    /// The one-compare shapes decide as the general loop does, on every
    /// pattern and path made of a small alphabet (with case and `*`).
    #[test]
    fn the_fast_shapes_agree_with_the_general_match() {
        let alphabet: &[u8] = b"aA.*/";
        let words = |max: usize| {
            let mut all = vec![vec![]];
            let mut last = vec![vec![]];
            for _ in 0..max {
                let next: Vec<Vec<u8>> = last
                    .iter()
                    .flat_map(|w: &Vec<u8>| {
                        alphabet.iter().map(move |&c| {
                            let mut w = w.clone();
                            w.push(c);
                            w
                        })
                    })
                    .collect();
                all.extend(next.iter().cloned());
                last = next;
            }
            all
        };
        let (patterns, paths) = (words(4), words(4));
        for p in &patterns {
            for s in paths.iter().filter(|s| !s.contains(&b'*')) {
                assert_eq!(
                    glob(p, s),
                    glob_loop(p, s),
                    "{:?} on {:?}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(s)
                );
            }
        }
    }
}
