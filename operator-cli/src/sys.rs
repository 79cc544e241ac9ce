//! Requests to every nats-server over the system account (`$SYS`), with the
//! system user's credentials, collecting one reply per server:
//!
//! - `$SYS.REQ.SERVER.PING.STATSZ`: which servers there are (each answers);
//! - `$SYS.REQ.ACCOUNT.<pub>.CLAIMS.UPDATE`: store an account JWT (every
//!   resolver); a reply `{"data":{"code":200,"message":"jwt updated"}}` means
//!   stored, not yet proven applied;
//! - `$SYS.REQ.ACCOUNT.<pub>.INFO`: what each server applied (its `jwt`);
//! - `$SYS.REQ.ACCOUNT.<pub>.CLAIMS.LOOKUP`: the stored JWT (full resolver);
//! - `$SYS.REQ.SERVER.PING.VARZ`: the operator JWTs each server trusts.
//!
//! Several URLs may name servers of one cluster; replies are de-duplicated
//! by server id.

use crate::error::{BusopError, Result};
use futures_util::StreamExt as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long to keep listening after the last reply when the number of
/// servers is not known yet.
const QUIET: Duration = Duration::from_millis(300);

/// A server that answered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ServerId {
    /// Server id (`N…`).
    pub id: String,
    /// Server name.
    pub name: String,
}

/// One server's reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Who answered.
    pub server: ServerId,
    /// The whole reply (JSON), or the raw text as a JSON string.
    pub body: serde_json::Value,
    /// The raw payload text.
    pub text: String,
}

/// Connections to the servers, as the system user.
pub struct Fleet {
    clients: Vec<(String, async_nats::Client)>,
}

fn nats_err(server: &str) -> impl Fn(String) -> BusopError + '_ {
    move |message| BusopError::Nats {
        server: server.to_string(),
        message,
    }
}

impl Fleet {
    /// Connects to each URL with `creds` (the system user's `.creds` text).
    pub async fn connect(urls: &[String], creds: &str, timeout: Duration) -> Result<Fleet> {
        if urls.is_empty() {
            return Err(BusopError::NoServers);
        }
        // Read with the one strict reader; async-nats gets the canonical
        // text of what it read, never the file as written.
        let creds = buswarden_creds::creds::canonical_text(creds.as_bytes()).map_err(|e| {
            BusopError::Nats {
                server: urls[0].clone(),
                message: format!("system user credentials: {e}"),
            }
        })?;
        let mut clients = Vec::new();
        for url in urls {
            let err = nats_err(url);
            let opts = async_nats::ConnectOptions::with_credentials(&creds)
                .map_err(|e| err(format!("system user credentials: {e}")))?
                .connection_timeout(timeout)
                .name("busop");
            let client =
                tokio::time::timeout(timeout + Duration::from_secs(1), opts.connect(url.as_str()))
                    .await
                    .map_err(|_| err("timed out connecting".into()))?
                    .map_err(|e| err(format!("connecting: {e}")))?;
            clients.push((url.clone(), client));
        }
        Ok(Fleet { clients })
    }

    /// Sends `payload` to `subject` on every connection and collects the
    /// replies, one per server: until `expected` servers answered, or (when
    /// not known) until no reply came for a moment, or the timeout.
    pub async fn request_all(
        &self,
        subject: &str,
        payload: &[u8],
        expected: Option<usize>,
        timeout: Duration,
    ) -> Result<Vec<Reply>> {
        let mut replies: BTreeMap<ServerId, Reply> = BTreeMap::new();
        for (url, client) in &self.clients {
            if expected.is_some_and(|n| replies.len() >= n) {
                break;
            }
            let err = nats_err(url);
            let inbox = client.new_inbox();
            let mut sub = client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| err(format!("subscribing: {e}")))?;
            client
                .publish_with_reply(
                    subject.to_string(),
                    inbox,
                    bytes::Bytes::copy_from_slice(payload),
                )
                .await
                .map_err(|e| err(format!("publishing to {subject}: {e}")))?;
            client
                .flush()
                .await
                .map_err(|e| err(format!("flushing: {e}")))?;
            let deadline = Instant::now() + timeout;
            let mut got_one = false;
            loop {
                if expected.is_some_and(|n| replies.len() >= n) {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let wait = if expected.is_none() && got_one {
                    QUIET.min(deadline - now)
                } else {
                    deadline - now
                };
                match tokio::time::timeout(wait, sub.next()).await {
                    Ok(Some(msg)) => {
                        got_one = true;
                        let text = String::from_utf8_lossy(&msg.payload).into_owned();
                        let body: serde_json::Value = serde_json::from_str(&text)
                            .unwrap_or_else(|_| serde_json::Value::String(text.clone()));
                        // A reply without a server block (CLAIMS.LOOKUP answers
                        // with the bare JWT) is kept per connection and order.
                        let anonymous = format!("{url}#{}", replies.len());
                        let server = ServerId {
                            id: body["server"]["id"]
                                .as_str()
                                .unwrap_or(&anonymous)
                                .to_string(),
                            name: body["server"]["name"].as_str().unwrap_or(url).to_string(),
                        };
                        replies
                            .entry(server.clone())
                            .or_insert(Reply { server, body, text });
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = sub.unsubscribe().await;
        }
        Ok(replies.into_values().collect())
    }

    /// The servers there are (each answers a STATSZ ping).
    pub async fn servers(&self, timeout: Duration) -> Result<Vec<ServerId>> {
        let replies = self
            .request_all("$SYS.REQ.SERVER.PING.STATSZ", b"", None, timeout)
            .await?;
        Ok(replies.into_iter().map(|r| r.server).collect())
    }

    /// Closes the connections.
    pub async fn close(self) {
        for (_, c) in self.clients {
            let _ = c.flush().await;
            drop(c);
        }
    }
}

/// The subject that updates an account's JWT on every server.
pub fn update_subject(account: &str) -> String {
    format!("$SYS.REQ.ACCOUNT.{account}.CLAIMS.UPDATE")
}

/// The subject each server answers with what it applied for an account.
pub fn info_subject(account: &str) -> String {
    format!("$SYS.REQ.ACCOUNT.{account}.INFO")
}

/// The subject a full resolver answers with its stored JWT.
pub fn lookup_subject(account: &str) -> String {
    format!("$SYS.REQ.ACCOUNT.{account}.CLAIMS.LOOKUP")
}

/// A runtime for one command's network work.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BusopError::io("starting the async runtime", "-"))
}
