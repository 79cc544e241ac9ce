//! Connector settings, by code and by environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `BUSWARDEN_NATS_URL` | the NATS server URL(s), comma-separated | `nats://127.0.0.1:4222` |
//! | `BUSWARDEN_PLANE` | the deployment plane (first subject token) | `microbus` |
//! | `BUSWARDEN_CREDS_DIR` | folder holding `<hostname>_nats.creds` | none: no credentials |
//! | `BUSWARDEN_LOCALITY` | the instance's locality (`us-west-b`, or `b.west.us`), validated at connect (see [`crate::Connector::with_locality`]) | none |
//! | `BUSWARDEN_RECORD` | folder to record every subject published and subscribed in (see [`crate::record`]) | none: not recorded |
//!
//! Code wins over the environment: [`crate::Connector::with_url`] and its
//! siblings override what the environment said.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable: NATS URL.
pub const ENV_NATS_URL: &str = "BUSWARDEN_NATS_URL";
/// Environment variable: plane.
pub const ENV_PLANE: &str = "BUSWARDEN_PLANE";
/// Environment variable: folder of `.creds` files.
pub const ENV_CREDS_DIR: &str = "BUSWARDEN_CREDS_DIR";
/// Environment variable: locality (Microbus reads `MICROBUS_LOCALITY`).
pub const ENV_LOCALITY: &str = "BUSWARDEN_LOCALITY";
/// Default NATS URL.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// Default time a call waits for its response.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default ack timeout: how long a unicast call waits for an
/// acknowledgement (or its response) before it fails with 404, and how
/// long a multicast waits for acknowledgements before it stops expecting
/// new responders (Microbus's default round trip).
pub const DEFAULT_ACK_WINDOW: Duration = Duration::from_millis(300);
/// Default largest body (reassembled from fragments) a call or a request
/// may carry.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;
/// Default most responders one multicast collects.
pub const DEFAULT_MAX_RESPONDERS: usize = 256;
/// Default most reply bytes one call takes in (all responders together).
pub const DEFAULT_MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// How the connector authenticates to NATS.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// No authentication (a development server).
    #[default]
    None,
    /// A `.creds` file (user JWT and seed), read at every connect.
    CredsFile(PathBuf),
    /// A user and password (plain `authorization` blocks).
    UserPassword {
        /// The user.
        user: String,
        /// The password (never shown by `Debug`).
        password: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::CredsFile(p) => f.debug_tuple("CredsFile").field(p).finish(),
            Credentials::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// The settings of one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// NATS URL(s), comma-separated.
    pub nats_url: String,
    /// The plane, validated at connect.
    pub plane: String,
    /// Authentication.
    pub credentials: Credentials,
    /// How long a call waits for its response.
    pub timeout: Duration,
    /// The ack timeout (unicast) and ack window (multicast).
    pub ack_window: Duration,
    /// Largest body a call or a request may carry, reassembled.
    pub max_body: usize,
    /// Most responders one multicast collects; more are dropped and counted.
    pub max_responders: usize,
    /// Most reply bytes one call takes in, every responder together; more
    /// are dropped and counted.
    pub max_reply_bytes: usize,
    /// Where subjects are recorded (`gencreds coverage`); `None`: not recorded.
    pub record_dir: Option<PathBuf>,
    /// The instance's locality as given, validated at connect; `None`: no
    /// locality (the instance answers `_` and its `id-…` only).
    pub locality: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nats_url: DEFAULT_NATS_URL.to_string(),
            plane: buswarden_rules::subject::DEFAULT_PLANE.to_string(),
            credentials: Credentials::None,
            timeout: DEFAULT_TIMEOUT,
            ack_window: DEFAULT_ACK_WINDOW,
            max_body: DEFAULT_MAX_BODY,
            max_responders: DEFAULT_MAX_RESPONDERS,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            record_dir: None,
            locality: None,
        }
    }
}

impl Config {
    /// The defaults overridden by the environment, for `hostname`.
    pub fn from_env(hostname: &str) -> Self {
        Self::from_lookup(hostname, |k| std::env::var(k).ok())
    }

    /// [`Config::from_env`] with an explicit variable lookup (for tests).
    pub fn from_lookup(hostname: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut c = Config::default();
        if let Some(url) = lookup(ENV_NATS_URL).filter(|v| !v.is_empty()) {
            c.nats_url = url;
        }
        if let Some(plane) = lookup(ENV_PLANE).filter(|v| !v.is_empty()) {
            c.plane = plane;
        }
        if let Some(dir) = lookup(ENV_CREDS_DIR).filter(|v| !v.is_empty()) {
            c.credentials = Credentials::CredsFile(creds_path(Path::new(&dir), hostname));
        }
        if let Some(loc) = lookup(ENV_LOCALITY).filter(|v| !v.is_empty()) {
            c.locality = Some(loc);
        }
        if let Some(dir) = lookup(crate::record::ENV_RECORD).filter(|v| !v.is_empty()) {
            c.record_dir = Some(PathBuf::from(dir));
        }
        c
    }
}

/// Where a service's `.creds` file is looked up: `<dir>/<hostname>_nats.creds`.
pub fn creds_path(dir: &Path, hostname: &str) -> PathBuf {
    dir.join(format!("{}_nats.creds", hostname.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults() {
        let c = Config::from_lookup("calc.example", |k| match k {
            ENV_NATS_URL => Some("nats://10.0.0.1:4222".into()),
            ENV_PLANE => Some("prod".into()),
            ENV_CREDS_DIR => Some("/etc/creds".into()),
            ENV_LOCALITY => Some("US-West".into()),
            _ => None,
        });
        assert_eq!(c.nats_url, "nats://10.0.0.1:4222");
        assert_eq!(c.plane, "prod");
        assert_eq!(c.locality.as_deref(), Some("US-West"));
        assert_eq!(
            c.credentials,
            Credentials::CredsFile(PathBuf::from("/etc/creds/calc.example_nats.creds"))
        );
        let d = Config::from_lookup("calc.example", |_| None);
        assert_eq!(d, Config::default());
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::UserPassword {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
