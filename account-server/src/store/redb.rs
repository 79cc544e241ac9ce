//! The default, embedded [`Store`]: one redb file.
//!
//! Why redb rather than SQLite (rusqlite): the data is a handful of keyed
//! records read whole at start and written as small batches, which is what a
//! key-value store with ACID transactions does without a query language;
//! redb is pure Rust (no C compiler, no bundled SQLite in the build, nothing
//! unsafe of ours), copy-on-write with checksummed commits, and its default
//! durability (`Immediate`) fsyncs before `commit` returns, so an
//! acknowledged change survives a SIGKILL or power loss. Records are JSON so
//! that a JetStream KV backend can store the same bytes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    AccountRecord, Approval, AuditEntry, Change, DeployRecord, NonceUse, Snapshot, Store,
    StoreError, UserRecord, decode, encode,
};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DEPLOYS: TableDefinition<&str, &[u8]> = TableDefinition::new("deploys");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const NONCES: TableDefinition<&str, i64> = TableDefinition::new("nonces");
const NONCES_BY_TIME: TableDefinition<(i64, &str), ()> = TableDefinition::new("nonces_by_time");

const ACCOUNT_KEY: &str = "account";
/// Nonces forgotten per request at most, so pruning never stalls a request.
const PRUNE_BATCH: usize = 256;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn approval_key(deploy: &str, rule: &str) -> String {
    format!("{deploy}\0{rule}")
}

/// Records a nonce in `txn`, forgetting a batch of old ones; `false` when
/// it is already there.
fn record_nonce(txn: &redb::WriteTransaction, n: &NonceUse) -> Result<bool, StoreError> {
    let key = format!("{}:{}", n.caller, n.nonce);
    let mut by_key = txn.open_table(NONCES).map_err(backend)?;
    let mut by_time = txn.open_table(NONCES_BY_TIME).map_err(backend)?;
    let old: Vec<(i64, String)> = by_time
        .range(..(n.forget_before, ""))
        .map_err(backend)?
        .take(PRUNE_BATCH)
        .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for (t, k) in &old {
        by_time.remove((*t, k.as_str())).map_err(backend)?;
        by_key.remove(k.as_str()).map_err(backend)?;
    }
    if by_key.get(key.as_str()).map_err(backend)?.is_some() {
        return Ok(false);
    }
    by_key.insert(key.as_str(), n.ts).map_err(backend)?;
    by_time.insert((n.ts, key.as_str()), ()).map_err(backend)?;
    Ok(true)
}

/// A redb database file.
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens the existing store at `path`: a missing or zero-length file is
    /// refused ([`StoreError::NotInitialised`]; only [`RedbStore::create`]
    /// makes a fresh store), so is a file open to group or others, and a
    /// file redb cannot read is [`StoreError::Corrupt`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let not_init = |what| StoreError::NotInitialised {
            location: path.display().to_string(),
            what,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_init("the file does not exist"));
            }
            Err(e) => return Err(backend(format!("{}: {e}", path.display()))),
        };
        if meta.len() == 0 {
            return Err(not_init("the file is empty (zero length)"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        Self::open_file(path)
    }

    /// Creates a fresh store at `path` (mode 0600; a missing folder is
    /// created 0700). A zero-length file there is taken over; a file with
    /// anything in it is refused ([`StoreError::AlreadyInitialised`]).
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| backend(format!("creating {}: {e}", parent.display())))?;
        }
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(StoreError::AlreadyInitialised {
                location: path.display().to_string(),
            });
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| backend(format!("creating {}: {e}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| backend(format!("{}: {e}", path.display())))?;
        Self::open_file(path)
    }

    fn open_file(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(META).map_err(backend)?;
            txn.open_table(DEPLOYS).map_err(backend)?;
            txn.open_table(USERS).map_err(backend)?;
            txn.open_table(APPROVALS).map_err(backend)?;
            txn.open_table(AUDIT).map_err(backend)?;
            txn.open_table(NONCES).map_err(backend)?;
            txn.open_table(NONCES_BY_TIME).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(Self { db })
    }
}

impl RedbStore {
    /// Every remembered nonce (for a migration to another store).
    pub fn nonces(&self) -> Result<Vec<NonceUse>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let t = txn.open_table(NONCES).map_err(backend)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(backend)? {
            let (k, ts) = row.map_err(backend)?;
            if let Some((caller, nonce)) = k.value().split_once(':') {
                out.push(NonceUse {
                    caller: caller.to_string(),
                    nonce: nonce.to_string(),
                    ts: ts.value(),
                    forget_before: 0,
                });
            }
        }
        Ok(out)
    }
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let mut snap = Snapshot::default();
        let meta = txn.open_table(META).map_err(backend)?;
        if let Some(v) = meta.get(ACCOUNT_KEY).map_err(backend)? {
            snap.account = Some(decode::<AccountRecord>(ACCOUNT_KEY, v.value())?);
        }
        for row in txn
            .open_table(DEPLOYS)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (k, v) = row.map_err(backend)?;
            let d: DeployRecord = decode(k.value(), v.value())?;
            snap.deploys.insert(d.id.clone(), d);
        }
        for row in txn
            .open_table(USERS)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (k, v) = row.map_err(backend)?;
            let u: UserRecord = decode(k.value(), v.value())?;
            snap.users.insert(u.user_key.clone(), u);
        }
        for row in txn
            .open_table(APPROVALS)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (k, v) = row.map_err(backend)?;
            let a: Approval = decode(k.value(), v.value())?;
            snap.approvals.insert((a.deploy.clone(), a.rule.clone()), a);
        }
        Ok(snap)
    }

    fn commit(&self, change: &Change) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        if let Some(n) = &change.nonce
            && !record_nonce(&txn, n)?
        {
            txn.abort().map_err(backend)?;
            return Err(StoreError::NonceReused);
        }
        {
            if let Some(account) = &change.account {
                let mut t = txn.open_table(META).map_err(backend)?;
                t.insert(ACCOUNT_KEY, encode(ACCOUNT_KEY, account)?.as_slice())
                    .map_err(backend)?;
            }
            let mut t = txn.open_table(DEPLOYS).map_err(backend)?;
            for d in &change.deploys {
                t.insert(d.id.as_str(), encode(&d.id, d)?.as_slice())
                    .map_err(backend)?;
            }
            let mut t = txn.open_table(USERS).map_err(backend)?;
            for u in &change.users {
                t.insert(u.user_key.as_str(), encode(&u.user_key, u)?.as_slice())
                    .map_err(backend)?;
            }
            let mut t = txn.open_table(APPROVALS).map_err(backend)?;
            for a in &change.approvals {
                let key = approval_key(&a.deploy, &a.rule);
                t.insert(key.as_str(), encode(&key, a)?.as_slice())
                    .map_err(backend)?;
            }
            let mut t = txn.open_table(AUDIT).map_err(backend)?;
            let mut seq = t
                .last()
                .map_err(backend)?
                .map(|(k, _)| k.value())
                .unwrap_or(0);
            for entry in &change.audit {
                seq += 1;
                let entry = AuditEntry {
                    seq,
                    ..entry.clone()
                };
                t.insert(seq, encode("audit", &entry)?.as_slice())
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)
    }

    fn remember_nonce(&self, n: &NonceUse) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let fresh = record_nonce(&txn, n)?;
        if fresh {
            txn.commit().map_err(backend)?;
        } else {
            txn.abort().map_err(backend)?;
        }
        Ok(fresh)
    }

    fn nonce_seen(&self, caller: &str, nonce: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let t = txn.open_table(NONCES).map_err(backend)?;
        Ok(t.get(format!("{caller}:{nonce}").as_str())
            .map_err(backend)?
            .is_some())
    }

    fn audit_since(&self, since: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let t = txn.open_table(AUDIT).map_err(backend)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(backend)? {
            let (_, v) = row.map_err(backend)?;
            let entry: AuditEntry = decode("audit", v.value())?;
            if entry.at >= since {
                out.push(entry);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeployState, Revocation};

    fn deploy(id: &str) -> DeployRecord {
        DeployRecord {
            id: id.into(),
            signing_key: "AKEY".into(),
            sealed_seed: "00".into(),
            state: DeployState::Open,
            opened_at: 1,
            opened_by: "UCI".into(),
            activated_at: None,
            retire_at: None,
            ended_at: None,
        }
    }

    #[test]
    fn a_change_is_durable_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = RedbStore::create(&path).unwrap();
        let mut account = AccountRecord {
            account: "AACC".into(),
            base_jwt: "base".into(),
            jwt: "live".into(),
            iat: 10,
            version: 1,
            revocations: Default::default(),
            kek_check: None,
        };
        account.revocations.insert(
            "UVICTIM".into(),
            Revocation {
                at: 5,
                prune_after: Some(100),
            },
        );
        let change = Change {
            account: Some(account.clone()),
            deploys: vec![deploy("d1")],
            audit: vec![AuditEntry {
                seq: 0,
                at: 7,
                caller: "UCI".into(),
                action: "open".into(),
                deploy: Some("d1".into()),
                subjects: vec![],
                grants: vec![],
            }],
            ..Default::default()
        };
        store.commit(&change).unwrap();
        store.commit(&change).unwrap();
        drop(store);
        let store = RedbStore::open(&path).unwrap();
        let snap = store.load().unwrap();
        assert_eq!(snap.account, Some(account));
        assert_eq!(snap.deploys["d1"], deploy("d1"));
        let audit = store.audit_since(0, 10).unwrap();
        assert_eq!(audit.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert!(store.audit_since(8, 10).unwrap().is_empty());
    }

    #[test]
    fn nonces_are_refused_twice_and_forgotten_after_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = RedbStore::create(&path).unwrap();
        let n = |caller: &str, nonce: &str, ts, forget_before| NonceUse {
            caller: caller.into(),
            nonce: nonce.into(),
            ts,
            forget_before,
        };
        assert!(store.remember_nonce(&n("U1", "n1", 100, 0)).unwrap());
        assert!(!store.remember_nonce(&n("U1", "n1", 100, 0)).unwrap());
        assert!(store.remember_nonce(&n("U2", "n1", 100, 0)).unwrap());
        // A nonce committed with a change counts as seen, and a change
        // carrying a used nonce is refused whole.
        let change = Change {
            nonce: Some(n("U3", "n1", 100, 0)),
            deploys: vec![deploy("d9")],
            ..Default::default()
        };
        store.commit(&change).unwrap();
        assert!(store.nonce_seen("U3", "n1").unwrap());
        assert!(matches!(
            store.commit(&change),
            Err(StoreError::NonceReused)
        ));
        drop(store);
        let store = RedbStore::open(&path).unwrap();
        assert!(
            !store.remember_nonce(&n("U1", "n1", 101, 0)).unwrap(),
            "survives a restart"
        );
        assert!(store.nonce_seen("U3", "n1").unwrap());
        assert!(store.remember_nonce(&n("U1", "n2", 300, 200)).unwrap());
        assert!(
            store.remember_nonce(&n("U1", "n1", 301, 200)).unwrap(),
            "forgotten once outside the window"
        );
        assert!(!store.nonce_seen("U3", "n1").unwrap());
    }

    #[test]
    fn only_create_makes_a_store_and_it_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/s.redb");
        assert!(matches!(
            RedbStore::open(&path),
            Err(StoreError::NotInitialised { .. })
        ));
        assert!(!path.exists(), "open never creates");
        drop(RedbStore::create(&path).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert!(matches!(
            RedbStore::create(&path),
            Err(StoreError::AlreadyInitialised { .. })
        ));
        drop(RedbStore::open(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            RedbStore::open(&path),
            Err(StoreError::Permissions { mode: 0o644, .. })
        ));
        let empty = dir.path().join("empty.redb");
        std::fs::write(&empty, b"").unwrap();
        let err = RedbStore::open(&empty).err().unwrap();
        assert!(err.to_string().contains("--init"), "{err}");
        let garbage = dir.path().join("garbage.redb");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = RedbStore::open(&garbage).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
