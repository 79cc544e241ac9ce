//! `account-server migrate --to-kv CONFIG`: moves a deployment from the
//! embedded store to the JetStream KV store named by the config's `[kv]`
//! table. Run it with the server stopped (redb's file lock refuses a store
//! in use); then start the replicas on the same config, which selects KV.
//!
//! Everything is copied as stored: the account record (JWT, revocations),
//! deploys with their seeds still sealed (never opened here), users,
//! approvals, the audit log in order, and the nonces still remembered (so no
//! request signed before the move can be replayed after it). The bucket's
//! `head` is written last; a bucket that already has one is refused, and one
//! without it (an interrupted migration) is written over.

use crate::config::Config;
use crate::replica::nonce_ttl;
use crate::store::{KvStore, RedbStore, Store, StoreError};

/// Why a migration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The config has no `[kv]` table.
    #[error(
        "the config has no [kv] table: add one naming the NATS cluster and the KV account's creds"
    )]
    NoKv,
    /// The embedded store has never been written (nothing to move).
    #[error("the embedded store {0} holds no account yet: nothing to migrate")]
    Empty(std::path::PathBuf),
    /// Reading or writing a store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Deploys copied.
    pub deploys: usize,
    /// Users copied.
    pub users: usize,
    /// Revocations in the account record.
    pub revocations: usize,
    /// Audit entries copied.
    pub audit: usize,
    /// Nonces copied.
    pub nonces: usize,
}

/// Copies the embedded store at `config.store` into the KV buckets of
/// `config.kv`. Needs a tokio runtime with the blocking pool.
pub async fn to_kv(config: &Config) -> Result<Migrated, MigrateError> {
    let kv_config = config.kv.as_ref().ok_or(MigrateError::NoKv)?;
    let path = config.store.clone();
    let (snapshot, audit, nonces) = tokio::task::spawn_blocking(move || {
        let redb = RedbStore::open(&path)?;
        Ok::<_, StoreError>((
            redb.load()?,
            redb.audit_since(i64::MIN, usize::MAX)?,
            redb.nonces()?,
        ))
    })
    .await
    .map_err(|e| StoreError::Backend(e.to_string()))??;
    let Some(account) = &snapshot.account else {
        return Err(MigrateError::Empty(config.store.clone()));
    };
    let kv = KvStore::connect(kv_config, nonce_ttl(config)).await?;
    kv.import(&snapshot, &audit, &nonces).await?;
    Ok(Migrated {
        deploys: snapshot.deploys.len(),
        users: snapshot.users.len(),
        revocations: account.revocations.len(),
        audit: audit.len(),
        nonces: nonces.len(),
    })
}
