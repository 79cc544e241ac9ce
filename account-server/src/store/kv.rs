//! The shared [`Store`] for several account-server replicas: NATS JetStream
//! key-value buckets, replicated by the NATS cluster the deployment already
//! runs.
//!
//! Layout of the state bucket (history 1, one value per key):
//! `head` (written by every change), `account`, `deploy.<id>`,
//! `user.<U-pub>`, `approval.<sha256 of deploy and rule>` and
//! `audit.<base>.<n>`. Records are the same JSON as in the embedded store;
//! deploy seeds stay sealed exactly as there (the record is stored as is).
//!
//! Optimistic concurrency: one API call's [`Change`] is ONE JetStream atomic
//! batch (ADR-50, `allow_atomic` on the bucket's stream) whose last message,
//! `head`, carries `Nats-Expected-Last-Subject-Sequence` = the head revision
//! the change was computed from ([`Change::base`]). Every change rewrites
//! `head`, so changes are serialized: when another replica committed first
//! the whole batch is refused, nothing is written, and the caller gets
//! [`StoreError::Conflict`]; it catches up ([`Store::changes_after`]),
//! re-applies its call on the new state and retries. A replica's working
//! set is therefore always some committed state, and no change computed on
//! stale state is ever stored.
//!
//! Nonces live in a second bucket whose `max_age` is the nonce lifetime;
//! `create` (which fails when the key exists) makes a nonce seen by one
//! replica refused by every other.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, kv, stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::{
    AccountRecord, Approval, AuditEntry, Change, DeployRecord, NonceUse, Snapshot, Store,
    StoreError, UserRecord, decode, encode,
};

/// The `[kv]` table of the config: selects this backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvConfig {
    /// Client URLs of the NATS cluster holding the buckets.
    pub servers: Vec<String>,
    /// The `.creds` of the KV account's only user (the account server).
    pub creds_file: std::path::PathBuf,
    /// The state bucket's name; nonces go to `<bucket>_nonces`.
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// Copies of each bucket in the cluster (1, 3 or 5).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
}

fn default_bucket() -> String {
    "buswarden_account_server".into()
}

fn default_replicas() -> usize {
    3
}

const HEAD: &str = "head";
const ACCOUNT: &str = "account";
/// Messages per change at most (nats-server refuses atomic batches over 1000).
const MAX_BATCH: usize = 1000;
/// How long one request to JetStream may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long reading a bucket's keys may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a change is retried while the cluster does not answer (a node
/// died, a stream leader is being elected).
const UNAVAILABLE_FOR: Duration = Duration::from_secs(12);
/// The JetStream error code of a failed expected-sequence check.
const WRONG_LAST_SEQUENCE: [u64; 2] = [10071, 10164];

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A key token from free text: `[A-Za-z0-9_-]` kept, anything else `=XX`.
fn token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

fn deploy_key(id: &str) -> String {
    format!("deploy.{}", token(id))
}

fn user_key(key: &str) -> String {
    format!("user.{}", token(key))
}

fn approval_key(deploy: &str, rule: &str) -> String {
    let digest = Sha256::digest(format!("{deploy}\0{rule}").as_bytes());
    format!("approval.{}", hex::encode(digest))
}

fn nonce_key(caller: &str, nonce: &str) -> String {
    format!("{}.{}", token(caller), token(nonce))
}

/// The `head` record: who wrote the latest change, on which base.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    base: u64,
    at: i64,
}

/// The JetStream answer to a publish.
#[derive(Debug, Deserialize)]
struct PubAck {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    error: Option<ApiErrorBody>,
}

#[derive(Debug, Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// One message of a change.
struct Put {
    key: String,
    value: Vec<u8>,
}

/// JetStream KV buckets shared by the replicas.
pub struct KvStore {
    client: async_nats::Client,
    state: kv::Store,
    nonces: kv::Store,
    rt: Handle,
    head: watch::Receiver<u64>,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore")
            .field("bucket", &self.state.name)
            .finish_non_exhaustive()
    }
}

impl KvStore {
    /// Connects with the KV account's creds and opens (or creates) the
    /// buckets; nonces are kept for `nonce_ttl`. Needs a tokio runtime.
    pub async fn connect(config: &KvConfig, nonce_ttl: Duration) -> Result<Self, StoreError> {
        // The one strict `.creds` reader; async-nats gets its canonical text.
        let creds_err =
            |e: String| backend(format!("KV creds {}: {e}", config.creds_file.display()));
        let bytes = zeroize::Zeroizing::new(
            tokio::fs::read(&config.creds_file)
                .await
                .map_err(|e| creds_err(e.to_string()))?,
        );
        let creds =
            buswarden_creds::creds::canonical_text(&bytes).map_err(|e| creds_err(e.to_string()))?;
        let client = async_nats::ConnectOptions::with_credentials(&creds)
            .map_err(|e| creds_err(e.to_string()))?
            .name("buswarden-account-server")
            .request_timeout(Some(REQUEST_TIMEOUT))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(config.servers.clone())
            .await
            .map_err(|e| backend(format!("connecting to the KV cluster: {e}")))?;
        let js = jetstream::new(client.clone());
        let state = open_bucket(
            &js,
            kv::Config {
                bucket: config.bucket.clone(),
                description: "buswarden account-server state".into(),
                history: 1,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
            true,
        )
        .await?;
        let nonces = open_bucket(
            &js,
            kv::Config {
                bucket: format!("{}_nonces", config.bucket),
                description: "buswarden account-server request nonces".into(),
                history: 1,
                max_age: nonce_ttl,
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            },
            false,
        )
        .await?;
        let (tx, head) = watch::channel(0);
        tokio::spawn(watch_head(state.clone(), tx));
        Ok(Self {
            client,
            state,
            nonces,
            rt: Handle::current(),
            head,
        })
    }

    /// Whether the state bucket has never been written (no `head`), so a
    /// migration may fill it.
    pub async fn is_unused(&self) -> Result<bool, StoreError> {
        Ok(self.state.entry(HEAD).await.map_err(backend)?.is_none())
    }

    /// Writes `snapshot`, its audit log and its nonces into an unused
    /// bucket (see [`KvStore::is_unused`]), `head` last: a bucket without
    /// `head` is an unfinished migration, which the server refuses and a
    /// new migration overwrites.
    pub async fn import(
        &self,
        snapshot: &Snapshot,
        audit: &[AuditEntry],
        nonces: &[NonceUse],
    ) -> Result<u64, StoreError> {
        if !self.is_unused().await? {
            return Err(StoreError::Backend(format!(
                "bucket {} is in use (it has a head); migrate into an empty bucket",
                self.state.name
            )));
        }
        let mut puts = records(&Change {
            account: snapshot.account.clone(),
            deploys: snapshot.deploys.values().cloned().collect(),
            users: snapshot.users.values().cloned().collect(),
            approvals: snapshot.approvals.values().cloned().collect(),
            ..Default::default()
        })?;
        for (n, entry) in audit.iter().enumerate() {
            puts.push(Put {
                key: format!("audit.{:020}.{n:012}", 0),
                value: encode("audit", entry)?,
            });
        }
        for p in puts {
            self.state
                .put(&p.key, p.value.into())
                .await
                .map_err(backend)?;
        }
        for n in nonces {
            let _ = self
                .nonces
                .create(nonce_key(&n.caller, &n.nonce), n.ts.to_string().into())
                .await;
        }
        let head = encode(HEAD, &Head { base: 0, at: 0 })?;
        self.state
            .create(HEAD, head.into())
            .await
            .map_err(|e| backend(format!("writing head: {e}")))
    }

    async fn read(
        &self,
        filters: Vec<String>,
        policy: consumer::DeliverPolicy,
    ) -> Result<Vec<(String, u64, axum::body::Bytes)>, StoreError> {
        again(|| self.read_once(filters.clone(), policy)).await
    }

    async fn read_once(
        &self,
        filters: Vec<String>,
        policy: consumer::DeliverPolicy,
    ) -> Result<Vec<(String, u64, axum::body::Bytes)>, StoreError> {
        let consumer = self
            .state
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subjects: filters,
                deliver_policy: policy,
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        let pending = consumer.cached_info().num_pending;
        let mut out = Vec::new();
        if pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(backend)?;
        let read = async {
            while let Some(m) = messages.next().await {
                let m = m.map_err(backend)?;
                let info = m.info().map_err(backend)?;
                let (seq, left) = (info.stream_sequence, info.pending);
                let key = m
                    .subject
                    .strip_prefix(self.state.prefix.as_str())
                    .unwrap_or(&m.subject)
                    .to_string();
                let deleted = m.headers.as_ref().is_some_and(|h| {
                    h.get("KV-Operation")
                        .is_some_and(|v| v.as_str() == "DEL" || v.as_str() == "PURGE")
                });
                if !deleted {
                    out.push((key, seq, m.payload.clone()));
                }
                if left == 0 {
                    break;
                }
            }
            Ok::<_, StoreError>(())
        };
        tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .map_err(|_| backend("reading the bucket timed out"))??;
        Ok(out)
    }

    fn state_filters(&self) -> Vec<String> {
        [HEAD, ACCOUNT, "deploy.>", "user.>", "approval.>"]
            .iter()
            .map(|k| format!("{}{k}", self.state.prefix))
            .collect()
    }

    /// Reads the records after `position` (0: all) into one change, in
    /// commit order; returns it with the head revision it reaches.
    async fn records_after(&self, position: u64) -> Result<(Change, u64, bool), StoreError> {
        let policy = if position == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: position + 1,
            }
        };
        let mut change = Change::default();
        let mut head = position;
        let mut has_head = false;
        for (key, seq, value) in self.read(self.state_filters(), policy).await? {
            if key == HEAD {
                head = seq;
                has_head = true;
            } else if key == ACCOUNT {
                change.account = Some(decode::<AccountRecord>(&key, &value)?);
            } else if key.starts_with("deploy.") {
                change.deploys.push(decode::<DeployRecord>(&key, &value)?);
            } else if key.starts_with("user.") {
                change.users.push(decode::<UserRecord>(&key, &value)?);
            } else if key.starts_with("approval.") {
                change.approvals.push(decode::<Approval>(&key, &value)?);
            }
        }
        Ok((change, head, has_head))
    }

    async fn load_async(&self) -> Result<Snapshot, StoreError> {
        let (change, head, has_head) = self.records_after(0).await?;
        let empty = change.account.is_none()
            && change.deploys.is_empty()
            && change.users.is_empty()
            && change.approvals.is_empty();
        if !has_head && !empty {
            return Err(StoreError::Backend(format!(
                "bucket {} holds records but no head: an unfinished migration; run `account-server migrate --to-kv` again",
                self.state.name
            )));
        }
        let mut snap = Snapshot {
            account: change.account,
            position: head,
            ..Default::default()
        };
        for d in change.deploys {
            snap.deploys.insert(d.id.clone(), d);
        }
        for u in change.users {
            snap.users.insert(u.user_key.clone(), u);
        }
        for a in change.approvals {
            snap.approvals.insert((a.deploy.clone(), a.rule.clone()), a);
        }
        Ok(snap)
    }

    async fn commit_async(&self, change: &Change) -> Result<u64, StoreError> {
        let mut puts = records(change)?;
        for (n, entry) in change.audit.iter().enumerate() {
            puts.push(Put {
                key: format!("audit.{:020}.{n:06}", change.base),
                value: encode("audit", entry)?,
            });
        }
        if puts.len() + 1 > MAX_BATCH {
            return Err(StoreError::Backend(format!(
                "a change of {} records is over the {MAX_BATCH} one JetStream atomic batch holds; sign fewer users per request",
                puts.len()
            )));
        }
        let nonce = match &change.nonce {
            Some(n) => match self.create_nonce(n).await? {
                Some(rev) => Some((nonce_key(&n.caller, &n.nonce), rev)),
                None => return Err(StoreError::NonceReused),
            },
            None => None,
        };
        let head = Head {
            base: change.base,
            at: crate::server::now(),
        };
        puts.push(Put {
            key: HEAD.into(),
            value: encode(HEAD, &head)?,
        });
        // The change's first audit entry is keyed by its base, which only
        // one change can commit: it tells whether a batch whose answer was
        // lost (a node died, a leader moved) was stored.
        let marker = puts
            .iter()
            .find(|p| p.key.starts_with("audit."))
            .map(|p| (p.key.clone(), p.value.clone()));
        let deadline = tokio::time::Instant::now() + UNAVAILABLE_FOR;
        let mut unsure = false;
        let result = loop {
            match self.publish_batch(&puts, change.base).await {
                Err(StoreError::Unavailable(e)) => {
                    unsure = true;
                    if self.stored(marker.as_ref()).await {
                        break Ok(change.base);
                    }
                    if marker.is_none() || tokio::time::Instant::now() > deadline {
                        break Err(StoreError::Backend(e));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(StoreError::Conflict) if unsure && self.stored(marker.as_ref()).await => {
                    break Ok(change.base);
                }
                other => break other,
            }
        };
        if let (Err(StoreError::Conflict), Some((key, rev))) = (&result, nonce) {
            // Nothing of the change was stored: free its nonce for the retry.
            let _ = self.nonces.purge_expect_revision(&key, Some(rev)).await;
        }
        // After an unsure commit the position stays at the base: the next
        // change conflicts and catches up, our own records included.
        result
    }

    /// Records a nonce: its revision when fresh, `None` when seen before.
    /// Retried while the cluster does not answer; a value unique to this
    /// call tells our own earlier (unanswered) write from a replay.
    async fn create_nonce(&self, n: &NonceUse) -> Result<Option<u64>, StoreError> {
        let key = nonce_key(&n.caller, &n.nonce);
        let mut mark = [0u8; 16];
        getrandom::fill(&mut mark).map_err(backend)?;
        let value = format!("{} {}", n.ts, hex::encode(mark));
        let deadline = tokio::time::Instant::now() + UNAVAILABLE_FOR;
        let mut unsure = false;
        loop {
            match self.nonces.create(&key, value.clone().into()).await {
                Ok(rev) => return Ok(Some(rev)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if unsure
                        && let Ok(Some(entry)) = self.nonces.entry(&key).await
                        && entry.value.as_ref() == value.as_bytes()
                    {
                        return Ok(Some(entry.revision));
                    }
                    return Ok(None);
                }
                Err(e) => {
                    unsure = true;
                    if tokio::time::Instant::now() > deadline {
                        return Err(backend(e));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Whether the audit marker of a change is stored with our bytes.
    async fn stored(&self, marker: Option<&(String, Vec<u8>)>) -> bool {
        let Some((key, value)) = marker else {
            return false;
        };
        matches!(self.state.get(key).await, Ok(Some(v)) if v.as_ref() == value.as_slice())
    }

    /// Publishes `puts` as one atomic batch; the last one is `head`,
    /// checked against `base`.
    async fn publish_batch(&self, puts: &[Put], base: u64) -> Result<u64, StoreError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(backend)?;
        let id = hex::encode(id);
        let last = puts.len();
        for (i, p) in puts.iter().enumerate() {
            let n = i + 1;
            let mut h = HeaderMap::new();
            h.insert("Nats-Batch-Id", id.as_str());
            h.insert("Nats-Batch-Sequence", n.to_string().as_str());
            let subject = format!("{}{}", self.state.prefix, p.key);
            if n == last {
                h.insert("Nats-Batch-Commit", "1");
                h.insert(
                    "Nats-Expected-Last-Subject-Sequence",
                    base.to_string().as_str(),
                );
            }
            if n == 1 || n == last {
                let reply = self
                    .client
                    .request_with_headers(subject, h, p.value.clone().into())
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("atomic batch: {e}")))?;
                if reply.payload.is_empty() {
                    continue;
                }
                let ack: PubAck = serde_json::from_slice(&reply.payload)
                    .map_err(|e| backend(format!("atomic batch reply: {e}")))?;
                if let Some(err) = ack.error {
                    if WRONG_LAST_SEQUENCE.contains(&err.err_code) {
                        return Err(StoreError::Conflict);
                    }
                    if err.code == 503 {
                        return Err(StoreError::Unavailable(err.description));
                    }
                    return Err(backend(format!(
                        "atomic batch refused: {} ({})",
                        err.description, err.err_code
                    )));
                }
                if n == last {
                    return Ok(ack.seq);
                }
            } else {
                self.client
                    .publish_with_headers(subject, h, p.value.clone().into())
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            }
        }
        Err(backend("empty atomic batch"))
    }

    async fn audit_async(&self, since: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .read(
                vec![format!("{}audit.>", self.state.prefix)],
                consumer::DeliverPolicy::All,
            )
            .await?;
        let mut out = Vec::new();
        for (key, seq, value) in rows {
            let mut entry: AuditEntry = decode(&key, &value)?;
            if entry.at >= since {
                entry.seq = seq;
                out.push(entry);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        // Store methods run on blocking threads (spawn_blocking), where
        // waiting on the runtime is allowed.
        self.rt.block_on(f)
    }
}

/// The keyed records of a change (without audit entries and head).
fn records(change: &Change) -> Result<Vec<Put>, StoreError> {
    let mut puts = Vec::new();
    if let Some(a) = &change.account {
        puts.push(Put {
            key: ACCOUNT.into(),
            value: encode(ACCOUNT, a)?,
        });
    }
    for d in &change.deploys {
        let key = deploy_key(&d.id);
        puts.push(Put {
            value: encode(&key, d)?,
            key,
        });
    }
    for u in &change.users {
        let key = user_key(&u.user_key);
        puts.push(Put {
            value: encode(&key, u)?,
            key,
        });
    }
    for a in &change.approvals {
        let key = approval_key(&a.deploy, &a.rule);
        puts.push(Put {
            value: encode(&key, a)?,
            key,
        });
    }
    Ok(puts)
}

/// Runs an idempotent read again while the cluster does not answer (a node
/// died, a stream leader is being elected), for [`UNAVAILABLE_FOR`].
async fn again<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + UNAVAILABLE_FOR;
    loop {
        match f().await {
            Err(StoreError::Backend(e)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "KV read failed; trying again");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

async fn open_bucket(
    js: &jetstream::Context,
    config: kv::Config,
    atomic: bool,
) -> Result<kv::Store, StoreError> {
    let name = config.bucket.clone();
    let mut last = String::new();
    for _ in 0..20 {
        let store = match js.get_key_value(&name).await {
            Ok(s) => Ok(s),
            Err(_) => js.create_key_value(config.clone()).await.map_err(backend),
        };
        match store {
            Ok(s) => {
                if atomic {
                    let mut info = js
                        .get_stream(&s.stream_name)
                        .await
                        .map_err(backend)?
                        .info()
                        .await
                        .map_err(backend)?
                        .clone();
                    if !info.config.allow_atomic_publish {
                        info.config.allow_atomic_publish = true;
                        js.update_stream(info.config).await.map_err(backend)?;
                    }
                }
                return Ok(s);
            }
            Err(e) => {
                // Two replicas creating the bucket at once, or a cluster
                // still electing its leader: try again.
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    Err(backend(format!("opening bucket {name}: {last}")))
}

/// Follows the `head` key and reports its revision.
async fn watch_head(state: kv::Store, tx: watch::Sender<u64>) {
    loop {
        if tx.is_closed() {
            return;
        }
        if let Ok(mut w) = state.watch(HEAD).await {
            while let Some(Ok(entry)) = w.next().await {
                if tx.send(entry.revision).is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Store for KvStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.block(self.load_async())
    }

    fn commit(&self, change: &Change) -> Result<(), StoreError> {
        self.commit_from(change).map(|_| ())
    }

    fn commit_from(&self, change: &Change) -> Result<u64, StoreError> {
        self.block(self.commit_async(change))
    }

    fn remember_nonce(&self, n: &NonceUse) -> Result<bool, StoreError> {
        self.block(async { Ok(self.create_nonce(n).await?.is_some()) })
    }

    fn nonce_seen(&self, caller: &str, nonce: &str) -> Result<bool, StoreError> {
        let key = nonce_key(caller, nonce);
        self.block(again(|| async {
            Ok(self
                .nonces
                .get(key.as_str())
                .await
                .map_err(backend)?
                .is_some())
        }))
    }

    fn audit_since(&self, since: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.block(self.audit_async(since, limit))
    }

    fn changes_after(&self, position: u64) -> Result<Option<(Change, u64)>, StoreError> {
        self.block(async {
            let head = again(|| async { self.state.entry(HEAD).await.map_err(backend) }).await?;
            if head.is_none_or(|h| h.revision <= position) {
                return Ok(None);
            }
            let (change, head, _) = self.records_after(position).await?;
            Ok(Some((change, head)))
        })
    }

    fn head_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.head.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tokens_are_valid_kv_keys_and_distinct() {
        assert_eq!(token("d-1_x"), "d-1_x");
        assert_eq!(token("a..b"), "a=2E=2Eb");
        assert_ne!(deploy_key("a.b"), deploy_key("a_b"));
        assert!(approval_key("d", "PUB x").starts_with("approval."));
    }
}
