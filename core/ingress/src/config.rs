//! The ingress's TOML configuration: what it listens on, which bus it
//! joins, its limits, and where its port firewall comes from.
//!
//! The firewall (`mode` and `allowed-internal-ports`) is not written here:
//! it is the `[edge]` table of the deployment's `buswarden.toml` (named by
//! `policy`), the same table `gencreds` derives the ingress's own NATS
//! allow-list from, so the broker enforces the same firewall. A policy that
//! tries to open 666 or 888 (or a port below 1024) is refused at start.
//!
//! Every key is optional; unknown keys are refused (a typo never silently
//! falls back to a default). The documented example (docs/ingress.md) is
//! parsed by this crate's tests.

use buswarden_rules::edge::Edge;
use buswarden_rules::policy::Policy;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot be read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or has a bad value (with its line).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the line and column).
        message: String,
    },
    /// A value that parses but cannot be used.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Why, and how to fix it.
        message: String,
    },
    /// The policy file named by `policy` is refused.
    #[error("{path}: {message}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// Every refusal, each with its line.
        message: String,
    },
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    hostname: Option<String>,
    listen: Option<String>,
    metrics_listen: Option<String>,
    policy: Option<PathBuf>,
    nats_url: Option<String>,
    creds: Option<PathBuf>,
    plane: Option<String>,
    time_budget: Option<String>,
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_path_bytes: Option<usize>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    shutdown_grace: Option<String>,
    blocked_paths: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    cors: Option<RawCors>,
    tls: Option<RawTls>,
    rate_limit: Option<RawRate>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCors {
    allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRate {
    per_second: f64,
    burst: Option<u32>,
}

/// TLS on the public listener: a PEM certificate chain and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// A rate limit: a token bucket per key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

/// The ingress's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bus hostname of the ingress (must be the `[edge]` ingress).
    pub hostname: String,
    /// The public listener.
    pub listen: SocketAddr,
    /// The `/healthz` and `/metrics` listener (none: not served).
    pub metrics_listen: Option<SocketAddr>,
    /// The port firewall: the `[edge]` table of the policy file.
    pub edge: Edge,
    /// The NATS URL (none: the runtime's environment/default).
    pub nats_url: Option<String>,
    /// The ingress's `.creds` (none: the runtime's environment).
    pub creds: Option<PathBuf>,
    /// The bus plane (none: the runtime's environment/default).
    pub plane: Option<String>,
    /// The time budget of one request on the bus.
    pub time_budget: Duration,
    /// Largest request body (413 above it, nothing published).
    pub max_body_bytes: usize,
    /// Largest request head (431 above it).
    pub max_header_bytes: usize,
    /// Longest path and query (414 above it).
    pub max_path_bytes: usize,
    /// How long a client may take to send its request head.
    pub header_read_timeout: Duration,
    /// How long a client may take to send its body (408 after it).
    pub body_read_timeout: Duration,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Path patterns answered 404 without a bus call (`*` any run of
    /// characters, matched against the whole path).
    pub blocked_paths: Vec<String>,
    /// Peers whose `X-Forwarded-*` headers are kept.
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins allowed to call cross-origin; empty: only the request's own.
    pub cors_origins: Vec<String>,
    /// TLS on the public listener.
    pub tls: Option<Tls>,
    /// The rate limit per actor `sub` (else per client address).
    pub rate_limit: Option<RateLimit>,
}

/// Scanner paths refused by default (Microbus's list, in spirit).
pub const DEFAULT_BLOCKED_PATHS: &[&str] = &[
    "*.php",
    "*.asp",
    "*.aspx",
    "*.jsp",
    "*.cgi",
    "/wp-admin/*",
    "/wp-login*",
    "/.env",
    "/.git/*",
];

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: buswarden_rules::edge::DEFAULT_INGRESS.to_string(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            metrics_listen: None,
            edge: Edge::default(),
            nats_url: None,
            creds: None,
            plane: None,
            time_budget: Duration::from_secs(20),
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 64 * 1024,
            max_path_bytes: 1024,
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            blocked_paths: DEFAULT_BLOCKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            trusted_proxies: vec![],
            cors_origins: vec![],
            tls: None,
            rate_limit: None,
        }
    }
}

impl Config {
    /// Reads and checks the file at `path` (relative paths in it are
    /// relative to its folder).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses `text` as the file at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let duration = |key: &'static str, v: Option<String>, d: Duration| match v {
            None => Ok(d),
            Some(text) => humantime::parse_duration(&text)
                .map_err(|e| invalid(key, format!("{text:?}: {e}; write e.g. \"20s\" or \"5m\""))),
        };
        let addr = |key: &'static str, v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|e| invalid(key, format!("{v:?}: {e}; write e.g. \"0.0.0.0:8443\"")))
        };
        let mut c = Config::default();
        if let Some(h) = raw.hostname {
            buswarden_rules::Hostname::parse(&h)
                .map_err(|e| invalid("hostname", format!("{h:?}: {e}")))?;
            c.hostname = h.to_ascii_lowercase();
        }
        if let Some(l) = &raw.listen {
            c.listen = addr("listen", l)?;
        }
        if let Some(l) = &raw.metrics_listen {
            c.metrics_listen = Some(addr("metrics-listen", l)?);
        }
        if let Some(p) = raw.policy {
            let p = rel(p);
            c.edge = load_edge(&p)?;
        }
        if c.edge.ingress.as_str() != c.hostname {
            return Err(invalid(
                "hostname",
                format!(
                    "{:?} is not the [edge] ingress of the policy ({:?}): the broker grants the edge's ports to that hostname only; make them the same",
                    c.hostname,
                    c.edge.ingress.as_str()
                ),
            ));
        }
        c.nats_url = raw.nats_url;
        c.creds = raw.creds.map(rel);
        c.plane = raw.plane;
        c.time_budget = duration("time-budget", raw.time_budget, c.time_budget)?;
        if c.time_budget.is_zero() || c.time_budget > buswarden::wire::MAX_TIME_BUDGET {
            return Err(invalid(
                "time-budget",
                "must be more than 0 and at most 15m".into(),
            ));
        }
        if let Some(n) = raw.max_body_bytes {
            c.max_body_bytes = n;
        }
        if let Some(n) = raw.max_header_bytes {
            if n < 8192 {
                return Err(invalid("max-header-bytes", format!("{n} is below 8192")));
            }
            c.max_header_bytes = n;
        }
        if let Some(n) = raw.max_path_bytes {
            if n < 16 {
                return Err(invalid("max-path-bytes", format!("{n} is below 16")));
            }
            c.max_path_bytes = n;
        }
        c.header_read_timeout = duration(
            "header-read-timeout",
            raw.header_read_timeout,
            c.header_read_timeout,
        )?;
        c.body_read_timeout = duration(
            "body-read-timeout",
            raw.body_read_timeout,
            c.body_read_timeout,
        )?;
        c.shutdown_grace = duration("shutdown-grace", raw.shutdown_grace, c.shutdown_grace)?;
        if let Some(b) = raw.blocked_paths {
            c.blocked_paths = b;
        }
        if let Some(t) = raw.trusted_proxies {
            c.trusted_proxies = t
                .iter()
                .map(|s| {
                    s.parse::<IpAddr>().map_err(|e| {
                        invalid("trusted-proxies", format!("{s:?}: {e}; list IP addresses"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(cors) = raw.cors {
            c.cors_origins = cors.allowed_origins.unwrap_or_default();
            for o in &c.cors_origins {
                if !(o.starts_with("https://") || o.starts_with("http://")) || o.ends_with('/') {
                    return Err(invalid(
                        "cors.allowed-origins",
                        format!("{o:?}: write an origin, e.g. \"https://app.example.com\""),
                    ));
                }
            }
        }
        c.tls = raw.tls.map(|t| Tls {
            cert: rel(t.cert),
            key: rel(t.key),
        });
        if let Some(r) = raw.rate_limit {
            if !(r.per_second.is_finite() && r.per_second > 0.0) {
                return Err(invalid(
                    "rate-limit.per-second",
                    format!("{} must be a positive number", r.per_second),
                ));
            }
            let burst = r.burst.unwrap_or(r.per_second.ceil().max(1.0) as u32);
            if burst == 0 {
                return Err(invalid("rate-limit.burst", "must be at least 1".into()));
            }
            c.rate_limit = Some(RateLimit {
                per_second: r.per_second,
                burst,
            });
        }
        Ok(c)
    }
}

/// Reads the `[edge]` table of a `buswarden.toml` (the default `Edge`,
/// prod with 443 only, when the file has none). Any refusal in the file
/// refuses the start.
pub fn load_edge(path: &Path) -> Result<Edge, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let policy = Policy::parse_all(&text).map_err(|errors| ConfigError::Policy {
        path: path.to_path_buf(),
        message: errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    Ok(policy.edge.unwrap_or_default())
}
