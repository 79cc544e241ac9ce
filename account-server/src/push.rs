//! Pushing the managed account's JWT to every nats-server and confirming
//! what each one applied.
//!
//! One task per configured server holds its own NATS connection (system
//! account creds), so every server is asked and answers on its own. For the
//! newest [`Published`] JWT the task sends a request on
//! `$SYS.REQ.ACCOUNT.<pub>.CLAIMS.UPDATE`, reads the server's reply (a `data`
//! object with `code` 200, or an `error` object), then asks
//! `$SYS.REQ.ACCOUNT.<pub>.INFO` and confirms only when the `jwt` the server
//! reports is the one pushed (a 200 on update means stored, not applied).
//! Anything else is retried with backoff until confirmed or superseded by a
//! newer JWT. On start the current JWT is published, so every server is
//! brought up to date after a restart.
//!
//! Checked against nats-server 2.15.1: a server that has not loaded the
//! account (no client of it yet) answers the update with code 200 `jwt update
//! skipped` and the INFO request with error 500 `Account … does not exist`;
//! such a server fetches the account from the resolver (which already serves
//! the new JWT) when it first needs it. Because a fetch begun just before
//! the change could still land the previous JWT, a not-loaded answer is
//! asked again after [`NOT_LOADED_RECHECK`] before it counts as confirmed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The JWT every server must end up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The account's change counter.
    pub version: u64,
    /// The account public key.
    pub account: String,
    /// The account JWT.
    pub jwt: Arc<str>,
}

/// Why one push attempt to one server failed (logged, then retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// No connection or no reply in time.
    #[error("request {subject}: {message}")]
    Request {
        /// The subject.
        subject: String,
        /// What async-nats said.
        message: String,
    },
    /// The reply was not the JSON the server sends.
    #[error("reply on {subject} is not a server API response: {source}")]
    Reply {
        /// The subject.
        subject: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The server refused the update.
    #[error("server refused the update: {code} {description}")]
    Refused {
        /// Its code.
        code: i64,
        /// Its description.
        description: String,
    },
    /// The server reports another JWT than the one pushed.
    #[error("server reports a different account JWT than the one pushed")]
    NotApplied,
}

/// What a server did with a pushed JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It reports exactly the pushed JWT.
    Yes,
    /// It has not loaded the account; it will fetch it from the resolver.
    NotLoaded,
}

/// How long a not-loaded answer waits before it is asked again.
pub const NOT_LOADED_RECHECK: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
struct UpdateData {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct InfoData {
    #[serde(default)]
    jwt: String,
}

#[derive(Debug, Deserialize)]
struct ServerReply<T> {
    data: Option<T>,
    error: Option<ApiError>,
}

/// How many servers confirmed a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PushStatus {
    /// Servers that confirmed it (or a later version).
    pub confirmed: usize,
    /// Servers configured.
    pub servers: usize,
}

/// The push side: one task per server.
pub struct Pusher {
    target: watch::Sender<Option<Published>>,
    confirmed: Vec<watch::Receiver<u64>>,
}

impl Pusher {
    /// Starts one task per server URL, connecting with `creds_file`.
    pub fn start(servers: &[String], creds_file: PathBuf, metrics: Arc<Metrics>) -> Self {
        let (target, _) = watch::channel(None);
        let confirmed = servers
            .iter()
            .map(|url| {
                let (tx, rx) = watch::channel(0);
                let task = ServerTask {
                    url: url.clone(),
                    creds_file: creds_file.clone(),
                    target: target.subscribe(),
                    confirmed: tx,
                    metrics: metrics.clone(),
                };
                tokio::spawn(task.run());
                rx
            })
            .collect();
        Self { target, confirmed }
    }

    /// Makes `p` the JWT every server must end up with.
    pub fn publish(&self, p: Published) {
        self.target.send_replace(Some(p));
    }

    /// Waits until every server confirmed `version` or `wait` passed.
    pub async fn wait_confirmed(&self, version: u64, wait: Duration) -> PushStatus {
        let servers = self.confirmed.len();
        let all = async {
            for rx in &self.confirmed {
                let mut rx = rx.clone();
                // An error means the task ended, which only happens at shutdown.
                let _ = rx.wait_for(|v| *v >= version).await;
            }
        };
        let _ = tokio::time::timeout(wait, all).await;
        PushStatus {
            confirmed: self.status(version),
            servers,
        }
    }

    /// How many servers confirmed `version` so far.
    pub fn status(&self, version: u64) -> usize {
        self.confirmed
            .iter()
            .filter(|rx| *rx.borrow() >= version)
            .count()
    }
}

struct ServerTask {
    url: String,
    creds_file: PathBuf,
    target: watch::Receiver<Option<Published>>,
    confirmed: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl ServerTask {
    async fn connect(&self) -> async_nats::Client {
        let mut backoff = MIN_BACKOFF;
        loop {
            let attempt = async {
                // The one strict `.creds` reader; async-nats gets its canonical text.
                let bytes = zeroize::Zeroizing::new(
                    tokio::fs::read(&self.creds_file)
                        .await
                        .map_err(|e| format!("{}: {e}", self.creds_file.display()))?,
                );
                let creds = buswarden_creds::creds::canonical_text(&bytes)
                    .map_err(|e| format!("{}: {e}", self.creds_file.display()))?;
                async_nats::ConnectOptions::with_credentials(&creds)
                    .map_err(|e| e.to_string())?
                    .name("buswarden-account-server")
                    .request_timeout(Some(REQUEST_TIMEOUT))
                    .retry_on_initial_connect()
                    .connect(&self.url)
                    .await
                    .map_err(|e| e.to_string())
            };
            match attempt.await {
                Ok(client) => return client,
                Err(e) => {
                    tracing::warn!(server = %self.url, error = %e, "cannot connect to nats-server; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn run(mut self) {
        let client = self.connect().await;
        let mut backoff = MIN_BACKOFF;
        loop {
            let current = self.target.borrow_and_update().clone();
            let Some(p) = current else {
                if self.target.changed().await.is_err() {
                    return;
                }
                continue;
            };
            if *self.confirmed.borrow() >= p.version {
                if self.target.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let outcome = match push_one(&client, &p).await {
                Ok(Applied::NotLoaded) => {
                    tokio::time::sleep(NOT_LOADED_RECHECK).await;
                    push_one(&client, &p).await
                }
                other => other,
            };
            match outcome {
                Ok(_) => {
                    self.metrics.push_confirmed.inc();
                    tracing::debug!(server = %self.url, version = p.version, "account JWT confirmed");
                    self.confirmed.send_replace(p.version);
                    backoff = MIN_BACKOFF;
                }
                Err(e) => {
                    self.metrics.push_failed.inc();
                    tracing::warn!(server = %self.url, version = p.version, error = %e, "push not confirmed; retrying");
                    // A newer JWT ends the wait early.
                    let _ = tokio::time::timeout(backoff, self.target.changed()).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

async fn request<T: for<'de> Deserialize<'de>>(
    client: &async_nats::Client,
    subject: String,
    payload: Vec<u8>,
) -> Result<ServerReply<T>, PushError> {
    let reply = client
        .request(subject.clone(), payload.into())
        .await
        .map_err(|e| PushError::Request {
            subject: subject.clone(),
            message: e.to_string(),
        })?;
    serde_json::from_slice(&reply.payload).map_err(|source| PushError::Reply { subject, source })
}

/// Pushes `p` to the server behind `client` and checks what it applied.
pub async fn push_one(client: &async_nats::Client, p: &Published) -> Result<Applied, PushError> {
    let update: ServerReply<UpdateData> = request(
        client,
        format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE", p.account),
        p.jwt.as_bytes().to_vec(),
    )
    .await?;
    if let Some(e) = update.error {
        return Err(PushError::Refused {
            code: e.code,
            description: e.description,
        });
    }
    let skipped = match update.data {
        Some(d) if d.code == 200 => d.message.contains("skipped"),
        Some(d) => {
            return Err(PushError::Refused {
                code: d.code,
                description: d.message,
            });
        }
        None => {
            return Err(PushError::Refused {
                code: 0,
                description: "empty reply".into(),
            });
        }
    };
    let info: ServerReply<InfoData> = request(
        client,
        format!("$SYS.REQ.ACCOUNT.{}.INFO", p.account),
        Vec::new(),
    )
    .await?;
    match (info.error, info.data) {
        (Some(e), _) if skipped && e.description.contains("does not exist") => {
            Ok(Applied::NotLoaded)
        }
        (Some(e), _) => Err(PushError::Refused {
            code: e.code,
            description: e.description,
        }),
        (None, Some(d)) if d.jwt == *p.jwt => Ok(Applied::Yes),
        _ => Err(PushError::NotApplied),
    }
}
