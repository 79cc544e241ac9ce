//! The durable state of the account server behind the [`Store`] trait: the
//! account (its live JWT and the revocations in it), deploys (with their
//! sealed signing seeds), the users signed for them, operator approvals, the
//! audit log and the request nonces seen recently.
//!
//! The server keeps the whole working set in memory and hands the store one
//! [`Change`] per API call, written in ONE transaction: a change is either
//! all on disk or not at all, and an API call is acknowledged only after its
//! change committed. A second backend (NATS JetStream KV, for several
//! replicas) implements the same trait.

pub mod kv;
pub mod redb;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::kv::{KvConfig, KvStore};
pub use self::redb::RedbStore;

/// Why the store failed. The message is for the server log only; clients
/// see a plain "storage error".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, corruption, lock).
    #[error("store backend: {0}")]
    Backend(String),
    /// A change carried a nonce that was already recorded (a replay that
    /// raced its original); nothing was written.
    #[error("nonce already used")]
    NonceReused,
    /// Another replica changed the shared state after the change was
    /// computed; nothing was written. Catch up and compute it again.
    #[error("another replica changed the state first")]
    Conflict,
    /// A shared store did not answer (a node died, a leader election);
    /// whether the change was stored is not known yet. Only seen inside a
    /// backend, which resolves it before it answers.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// No store to start from, and the server was not told to create one.
    #[error(
        "store {location}: {what}; only a first start may pass --init (which creates a fresh store); on any later start restore the store from a backup: a fresh store forgets every revocation, deploy key and audit entry"
    )]
    NotInitialised {
        /// The file or bucket.
        location: String,
        /// What was found.
        what: &'static str,
    },
    /// `--init` on a store that already holds state.
    #[error(
        "store {location}: --init was given but the store already holds state; start without --init"
    )]
    AlreadyInitialised {
        /// The file or bucket.
        location: String,
    },
    /// The store file is open to group or others.
    #[error(
        "store {path} has mode {mode:o}; it holds sealed deploy seeds and the audit log and must be 0600 (chmod 600)"
    )]
    Permissions {
        /// The file.
        path: std::path::PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The store file is not a store we can read.
    #[error(
        "store {path} is not a readable account-server store (corrupted or not a redb file): {reason}; restore it from a backup"
    )]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// What redb said.
        reason: String,
    },
    /// A record could not be encoded or decoded.
    #[error("store record {key}: {source}")]
    Record {
        /// The record's key.
        key: String,
        /// The cause.
        source: serde_json::Error,
    },
}

/// A record as stored by every backend: JSON.
fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Record {
        key: key.to_string(),
        source,
    })
}

/// A stored record read back.
fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Record {
        key: key.to_string(),
        source,
    })
}

/// The lifecycle state of a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    /// Opened; users can be signed; its signing key is in the account JWT.
    Open,
    /// The deploy in service (at most one).
    Active,
    /// Replaced by a newer active deploy; its key leaves the account JWT at
    /// `retire_at`.
    Retiring,
    /// Its signing key is no longer in the account JWT.
    Retired,
    /// Every user revoked and its signing key removed.
    Revoked,
}

impl DeployState {
    /// Whether the deploy's signing key belongs in the account JWT.
    pub fn key_is_live(self) -> bool {
        matches!(
            self,
            DeployState::Open | DeployState::Active | DeployState::Retiring
        )
    }

    /// The state's name as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeployState::Open => "open",
            DeployState::Active => "active",
            DeployState::Retiring => "retiring",
            DeployState::Retired => "retired",
            DeployState::Revoked => "revoked",
        }
    }
}

/// One deploy: a per-deploy account signing key and its users.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// The deploy id chosen by CI.
    pub id: String,
    /// The public account signing key (`A…`).
    pub signing_key: String,
    /// The signing seed sealed under the KEK (hex of [`crate::seal`] output).
    pub sealed_seed: String,
    /// Lifecycle state.
    pub state: DeployState,
    /// Unix seconds when opened.
    pub opened_at: i64,
    /// The key that opened it.
    pub opened_by: String,
    /// Unix seconds when activated.
    pub activated_at: Option<i64>,
    /// Unix seconds when its signing key leaves the account JWT (retiring).
    pub retire_at: Option<i64>,
    /// Unix seconds when it was retired or revoked.
    pub ended_at: Option<i64>,
}

impl std::fmt::Debug for DeployRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployRecord")
            .field("id", &self.id)
            .field("signing_key", &self.signing_key)
            .field("sealed_seed", &"<sealed>")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A user signed for a deploy (one per service hostname and deploy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's public key (`U…`), chosen by CI.
    pub user_key: String,
    /// The deploy it belongs to.
    pub deploy: String,
    /// The service hostname.
    pub hostname: String,
    /// The rules as sent (with `{{plane}}`).
    pub rules: Vec<String>,
    /// The latest user JWT issued.
    pub jwt: String,
    /// Unix seconds of the latest JWT's `iat`.
    pub issued_at: i64,
    /// Unix seconds of the latest JWT's `exp`.
    pub expires_at: i64,
    /// Unix seconds of the latest `exp` of any JWT issued for this key.
    pub max_expires_at: i64,
    /// The key that signed (or renewed) it.
    pub signed_by: String,
    /// Revoked by an operator: kept for good, after the revocation's entry
    /// in the account JWT is pruned, so the key is never signed or renewed
    /// again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// One entry of the account JWT's `revocations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Unix seconds written into the JWT: every user JWT of the key with
    /// `iat <= at` is revoked.
    pub at: i64,
    /// Unix seconds after which every revoked JWT has expired and the entry
    /// may be pruned; `None` for keys whose JWTs we did not issue (kept).
    pub prune_after: Option<i64>,
}

/// The managed account: its live JWT and what the server derived it from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The account public key (`A…`).
    pub account: String,
    /// The account JWT the operator gave us (busop), whose name, limits,
    /// imports and exports are kept; its signing keys and revocations are
    /// merged with ours.
    pub base_jwt: String,
    /// The JWT served and pushed now.
    pub jwt: String,
    /// Its `iat`; the next JWT's `iat` is later.
    pub iat: i64,
    /// Incremented on every change.
    pub version: u64,
    /// Revocations (a union: entries are added, and removed only by pruning).
    pub revocations: BTreeMap<String, Revocation>,
    /// A fixed text sealed under the KEK at the first start (hex), opened at
    /// every start so a wrong KEK stops the start, not the first signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek_check: Option<String>,
}

/// An operator's approval of a `:666` rule for one deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The deploy.
    pub deploy: String,
    /// The rule, as it will be sent (`PUB {{plane}}.danger.666…`).
    pub rule: String,
    /// The operator key.
    pub by: String,
    /// Unix seconds.
    pub at: i64,
}

/// One audit log entry, written in the same transaction as its change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number, assigned by the store, increasing.
    #[serde(default)]
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// The caller's public key (`server` for the server's own changes).
    pub caller: String,
    /// What happened: `open`, `sign`, `activate`, `retire`, `expire`, `revoke-user`,
    /// `revoke-deploy`, `renew`, `approve`, `prune`, `import`.
    pub action: String,
    /// The deploy involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// Keys or hostnames involved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// For `sign` and `renew`: what each user was signed with, so a rogue
    /// grant can be found afterwards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<AuditGrant>,
}

/// The rules one user JWT was signed with, in an audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditGrant {
    /// The user's public key.
    pub user_key: String,
    /// The service hostname.
    pub hostname: String,
    /// Hex SHA-256 of the rules, each followed by a newline, in the order
    /// listed (as stored: with `{{plane}}`).
    pub rules_sha256: String,
    /// The rules.
    pub rules: Vec<String>,
}

impl AuditGrant {
    /// The grant of `user_key` for `hostname` with `rules`.
    pub fn new(user_key: &str, hostname: &str, rules: &[String]) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for r in rules {
            h.update(r.as_bytes());
            h.update(b"\n");
        }
        Self {
            user_key: user_key.to_string(),
            hostname: hostname.to_string(),
            rules_sha256: hex::encode(h.finalize()),
            rules: rules.to_vec(),
        }
    }
}

/// Everything the server loads at start.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The managed account, absent before the first import.
    pub account: Option<AccountRecord>,
    /// Every deploy by id.
    pub deploys: BTreeMap<String, DeployRecord>,
    /// Every user by public key.
    pub users: BTreeMap<String, UserRecord>,
    /// Approvals by (deploy, rule).
    pub approvals: BTreeMap<(String, String), Approval>,
    /// The position of this state in a shared store's history (the head
    /// revision); 0 in a single-writer store.
    pub position: u64,
}

/// A request nonce to remember (see [`Store::remember_nonce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceUse {
    /// The caller's key.
    pub caller: String,
    /// The nonce.
    pub nonce: String,
    /// The request's timestamp.
    pub ts: i64,
    /// Nonces recorded before this are forgotten.
    pub forget_before: i64,
}

/// One atomic change: every record written or removed by one API call.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The nonce of the request that made the change, remembered in the
    /// same transaction (one fsync for both).
    pub nonce: Option<NonceUse>,
    /// The account record, when it changed.
    pub account: Option<AccountRecord>,
    /// Deploys written.
    pub deploys: Vec<DeployRecord>,
    /// Users written.
    pub users: Vec<UserRecord>,
    /// Approvals written.
    pub approvals: Vec<Approval>,
    /// Audit entries appended (their `seq` is assigned by the store).
    pub audit: Vec<AuditEntry>,
    /// The position of the state the change was computed from; a shared
    /// store refuses the change ([`StoreError::Conflict`]) when its state
    /// moved on since. Ignored by a single-writer store.
    pub base: u64,
}

/// A durable store. Every method is one transaction.
pub trait Store: Send + Sync + 'static {
    /// Reads the whole working set.
    fn load(&self) -> Result<Snapshot, StoreError>;

    /// Writes `change` in one transaction; returns once it is durable.
    fn commit(&self, change: &Change) -> Result<(), StoreError>;

    /// Records a nonce durably; `false` when it was seen before. Forgets
    /// nonces recorded before `forget_before` (they are outside the
    /// timestamp window, so a replay of them is refused by the window).
    fn remember_nonce(&self, nonce: &NonceUse) -> Result<bool, StoreError>;

    /// Whether a nonce was recorded (and not yet forgotten).
    fn nonce_seen(&self, caller: &str, nonce: &str) -> Result<bool, StoreError>;

    /// Audit entries at or after unix second `since`, oldest first, at most
    /// `limit`.
    fn audit_since(&self, since: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Writes `change` like [`Store::commit`] and returns the position the
    /// store is at afterwards.
    fn commit_from(&self, change: &Change) -> Result<u64, StoreError> {
        self.commit(change).map(|()| change.base)
    }

    /// For a store shared by several replicas: what the others committed
    /// after `position`, as one change in commit order, and the position it
    /// brings the caller to; `None` when nothing is new (always, for a
    /// single-writer store).
    fn changes_after(&self, _position: u64) -> Result<Option<(Change, u64)>, StoreError> {
        Ok(None)
    }

    /// For a shared store: the latest position any replica committed, to
    /// follow (`None` for a single-writer store).
    fn head_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}
