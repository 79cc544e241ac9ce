//! The account server's config file (TOML), parsed into typed values; paths
//! are relative to the config file's folder. The documented example is
//! `account-server/account-server.example.toml` (a test parses it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use buswarden_creds::keys::{self, KeyKind};
use serde::{Deserialize, Deserializer};

/// Why the config could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or a value has the wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said, with the line.
        message: String,
    },
    /// A key is listed twice, or a key is not a public nkey.
    #[error("config file {path}: [[keys]] entry {key:?}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// CI: open deploys, sign users (for its hostnames), activate, renew.
    Ci,
    /// Operator: retire, revoke, approve trust-root grants.
    Operator,
    /// Read-only: list deploys, read the account and the audit log.
    ReadOnly,
}

impl Role {
    /// The role's name as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ci => "ci",
            Role::Operator => "operator",
            Role::ReadOnly => "read-only",
        }
    }
}

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Public nkey (`U…` usually).
    pub key: String,
    /// Its role.
    pub role: Role,
    /// For `ci`: the service hostnames it may sign for; `"*"` is any, and
    /// `"*.example"` any hostname ending in `.example`.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

impl ApiKey {
    /// Whether this key may sign users for `hostname`.
    pub fn may_sign_for(&self, hostname: &str) -> bool {
        self.hostnames.iter().any(|h| {
            h == "*"
                || h.eq_ignore_ascii_case(hostname)
                || h.strip_prefix('*').is_some_and(|suffix| {
                    suffix.starts_with('.')
                        && hostname.len() > suffix.len()
                        && hostname
                            .to_ascii_lowercase()
                            .ends_with(&suffix.to_ascii_lowercase())
                })
        })
    }
}

/// TLS for the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// The operator side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// The operator signing seed (`SO…`), a 0600 file; never stored.
    pub signing_key_file: PathBuf,
}

/// The managed account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The account JWT from `busop` (imported at first start, and again
    /// whenever the file carries a later `iat`).
    pub jwt_file: PathBuf,
}

/// The system account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemAccount {
    /// Its JWT, served by the resolver as is.
    pub jwt_file: PathBuf,
    /// A system-account user's `.creds`, used to push account updates.
    pub creds_file: PathBuf,
}

/// The brokers to push to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nats {
    /// Client URLs, one per nats-server (each is pushed and checked alone).
    #[serde(default)]
    pub servers: Vec<String>,
    /// How long an API call waits for every server to confirm a change.
    #[serde(default = "default_push_wait", deserialize_with = "duration")]
    pub push_wait: Duration,
}

/// Deploy lifecycle settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploys {
    /// How long a replaced deploy's key stays in the account JWT.
    #[serde(default = "default_grace", deserialize_with = "duration")]
    pub grace: Duration,
    /// User JWT lifetime when the request names none.
    #[serde(default = "default_expiry", deserialize_with = "duration")]
    pub default_user_expiry: Duration,
    /// The longest user JWT lifetime a request may ask for.
    #[serde(default = "default_max_expiry", deserialize_with = "duration")]
    pub max_user_expiry: Duration,
    /// Deploys open (opened, not yet activated) at once at most; each adds
    /// a signing key to the account JWT.
    #[serde(default = "default_max_open")]
    pub max_open: usize,
    /// An open deploy not activated within this time is retired by the
    /// janitor (its key leaves the account JWT).
    #[serde(default = "default_open_ttl", deserialize_with = "duration")]
    pub open_ttl: Duration,
}

impl Default for Deploys {
    fn default() -> Self {
        Self {
            grace: default_grace(),
            default_user_expiry: default_expiry(),
            max_user_expiry: default_max_expiry(),
            max_open: default_max_open(),
            open_ttl: default_open_ttl(),
        }
    }
}

/// Request authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The largest accepted `|now - ts|`.
    #[serde(default = "default_window", deserialize_with = "duration")]
    pub window: Duration,
    /// The `host:port` names clients reach this server by (the `aud` a
    /// request must be signed for); default: the `listen` address, and for
    /// a loopback address also `localhost:<port>`.
    #[serde(default)]
    pub audience: Vec<String>,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            window: default_window(),
            audience: Vec::new(),
        }
    }
}

/// HTTP connection limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// A client must send a whole request head within this (also between
    /// keep-alive requests), or is disconnected.
    #[serde(default = "default_header_read_timeout", deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long while the
    /// server waits on it is closed (a trickled body, an unread answer).
    #[serde(default = "default_idle_timeout", deserialize_with = "duration")]
    pub idle_timeout: Duration,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

/// The whole config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address; 127.0.0.1 unless configured otherwise.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The store file.
    pub store: PathBuf,
    /// The key-encryption key file (0600).
    pub kek_file: PathBuf,
    /// The bus plane filled into `{{plane}}`.
    #[serde(default = "default_plane")]
    pub plane: String,
    /// The largest request body accepted.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The server's own `buswarden.toml` policy, checked before signing.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// TLS, when set.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Operator signing key.
    pub operator: Operator,
    /// The managed account.
    pub account: Account,
    /// The system account.
    pub system_account: SystemAccount,
    /// Brokers.
    pub nats: Nats,
    /// Deploy lifecycle.
    #[serde(default)]
    pub deploys: Deploys,
    /// Request authentication.
    #[serde(default)]
    pub auth: Auth,
    /// HTTP connection timeouts.
    #[serde(default)]
    pub http: Http,
    /// API keys.
    #[serde(default)]
    pub keys: Vec<ApiKey>,
    /// The JetStream KV backend (several replicas); the embedded store at
    /// `store` when absent.
    #[serde(default)]
    pub kv: Option<crate::store::KvConfig>,
    /// Create a fresh store (`serve --init`, the first start only): without
    /// it a missing or empty store is refused, and with it a store that
    /// holds state is refused. Never read from the file.
    #[serde(skip)]
    pub init: bool,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7370))
}
fn default_plane() -> String {
    "microbus".into()
}
fn default_max_body() -> usize {
    4 << 20
}
fn default_push_wait() -> Duration {
    Duration::from_secs(2)
}
fn default_grace() -> Duration {
    Duration::from_secs(600)
}
fn default_expiry() -> Duration {
    Duration::from_secs(7 * 86400)
}
fn default_max_expiry() -> Duration {
    Duration::from_secs(30 * 86400)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_open() -> usize {
    8
}
fn default_open_ttl() -> Duration {
    Duration::from_secs(86400)
}
fn default_window() -> Duration {
    Duration::from_secs(60)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

impl Config {
    /// Parses `text` as if read from `path` (paths resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.store,
            &mut config.kek_file,
            &mut config.operator.signing_key_file,
            &mut config.account.jwt_file,
            &mut config.system_account.jwt_file,
            &mut config.system_account.creds_file,
        ] {
            *p = base.join(&*p);
        }
        if let Some(p) = &mut config.policy_file {
            *p = base.join(&*p);
        }
        if let Some(kv) = &mut config.kv {
            kv.creds_file = base.join(&kv.creds_file);
        }
        if let Some(tls) = &mut config.tls {
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
        }
        if config.http.header_read_timeout.is_zero() || config.http.idle_timeout.is_zero() {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: "[http] header_read_timeout and idle_timeout must be more than 0".into(),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for k in &config.keys {
            let bad = |reason| ConfigError::Key {
                path: path.to_path_buf(),
                key: k.key.clone(),
                reason,
            };
            if !keys::is_public_key(KeyKind::User, &k.key) {
                return Err(bad("not a user public nkey (U...)"));
            }
            if !seen.insert(k.key.clone()) {
                return Err(bad("listed twice"));
            }
            if k.role != Role::Ci && !k.hostnames.is_empty() {
                return Err(bad("hostnames apply to the ci role only"));
            }
        }
        Ok(config)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The audiences a request may be signed for (see [`Auth::audience`]),
    /// lower case.
    pub fn audiences(&self) -> Vec<String> {
        if !self.auth.audience.is_empty() {
            return self
                .auth
                .audience
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect();
        }
        let mut out = vec![self.listen.to_string()];
        if self.listen.ip().is_loopback() {
            out.push(format!("localhost:{}", self.listen.port()));
        }
        out
    }

    /// The configured key entry for `key`.
    pub fn key(&self, key: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|k| k.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("account-server.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::parse(&text, &path).unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.deploys.grace, Duration::from_secs(600));
        assert!(c.store.starts_with(env!("CARGO_MANIFEST_DIR")));
        assert_eq!(c.keys.len(), 3);
    }

    #[test]
    fn mistakes_point_at_the_line() {
        let err = Config::parse("store = 1\n", Path::new("/x/c.toml")).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn ci_hostname_limits() {
        let k = ApiKey {
            key: "U".into(),
            role: Role::Ci,
            hostnames: vec!["calc.example".into(), "*.shop.example".into()],
        };
        assert!(k.may_sign_for("calc.example"));
        assert!(k.may_sign_for("cart.shop.example"));
        assert!(!k.may_sign_for("shop.example"));
        assert!(!k.may_sign_for("evilshop.example"));
        assert!(!k.may_sign_for("other.example"));
    }
}
