//! The account server's state and its start: config, secrets (operator
//! signing key, KEK), the store loaded into a [`Ledger`], the account JWT
//! imported or re-based from busop's file, the resolver's JWT table, the
//! pushers (with the current JWT re-published at every start) and the
//! janitor that retires deploys after their grace period and prunes
//! revocations whose JWTs have all expired.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;
use buswarden_creds::claims::AccountClaims;
use buswarden_creds::jwt;
use buswarden_creds::keyfile;
use buswarden_creds::keys::{KeyKind, KeyPair};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::config::Config;
use crate::ledger::{Ledger, LedgerError, sign_account};
use crate::metrics::Metrics;
use crate::policy::{PolicyFileError, ServerPolicy};
use crate::push::{Published, Pusher};
use crate::seal::{Kek, SealError};
use crate::store::{
    AccountRecord, AuditEntry, Change, KvStore, RedbStore, Revocation, Store, StoreError,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The KEK could not be loaded.
    #[error(transparent)]
    Kek(#[from] SealError),
    /// The operator signing key could not be loaded.
    #[error("operator signing key: {0}")]
    OperatorKey(#[from] keyfile::KeyFileError),
    /// The KEK does not open what the store sealed under its KEK.
    #[error(
        "key-encryption key {path} does not open {what}: it is not the KEK this store was sealed with (or the store was tampered with); start with the right kek_file"
    )]
    WrongKek {
        /// The KEK file.
        path: std::path::PathBuf,
        /// What did not open.
        what: String,
    },
    /// A secret file (creds, TLS key) is open to group or others.
    #[error("{0}")]
    Secret(keyfile::KeyFileError),
    /// A JWT file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A configured JWT does not decode.
    #[error("{path}: {source}")]
    Jwt {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: jwt::JwtError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The account JWT could not be signed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The policy file is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyFileError),
}

/// A JWT as the resolver serves it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The raw JWT.
    pub jwt: Bytes,
    /// Its strong ETag.
    pub etag: HeaderValue,
}

impl Served {
    fn new(jwt: &str) -> Self {
        let digest = Sha256::digest(jwt.as_bytes());
        let tag = format!("\"{}\"", hex::encode(&digest[..16]));
        Self {
            jwt: Bytes::copy_from_slice(jwt.as_bytes()),
            // Hex in quotes is always a valid header value.
            etag: HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\"")),
        }
    }
}

/// The running server's state, shared by every request.
pub struct AccountServer {
    /// The config.
    pub config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) kek: Kek,
    pub(crate) operator: KeyPair,
    pub(crate) ledger: Mutex<Ledger>,
    pub(crate) jwts: RwLock<HashMap<String, Served>>,
    pub(crate) pusher: Pusher,
    pub(crate) policy: ServerPolicy,
    pub(crate) nonces: crate::auth::Nonces,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AccountServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountServer")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

/// The current time in unix seconds.
pub fn now() -> i64 {
    jwt::now()
}

fn read_jwt(path: &std::path::Path) -> Result<String, StartError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| StartError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn decode_account_file(path: &std::path::Path, text: &str) -> Result<AccountClaims, StartError> {
    jwt::decode_account(text).map_err(|source| StartError::Jwt {
        path: path.to_path_buf(),
        source,
    })
}

impl AccountServer {
    /// Opens the store at `config.store` and starts (see [`AccountServer::start_with`]).
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        let store: Arc<dyn Store> = match &config.kv {
            Some(kv) => Arc::new(KvStore::connect(kv, crate::replica::nonce_ttl(&config)).await?),
            None if config.init => {
                // The secrets first: a failed first start leaves no store
                // behind that a second `--init` would refuse.
                load_secrets(&config)?;
                Arc::new(RedbStore::create(&config.store)?)
            }
            None => Arc::new(RedbStore::open(&config.store)?),
        };
        Self::start_with(config, store).await
    }

    /// Starts on `store`: loads secrets and state, imports the account JWT,
    /// publishes it to every server and starts the janitor. Needs a tokio
    /// runtime.
    pub async fn start_with(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Arc<Self>, StartError> {
        let (kek, operator) = load_secrets(&config)?;
        let policy = ServerPolicy::load(config.policy_file.as_deref())?;
        let file_jwt = read_jwt(&config.account.jwt_file)?;
        let file_claims = decode_account_file(&config.account.jwt_file, &file_jwt)?;
        let sys_jwt = read_jwt(&config.system_account.jwt_file)?;
        let sys_claims = jwt::decode_account(&sys_jwt).map_err(|source| StartError::Jwt {
            path: config.system_account.jwt_file.clone(),
            source,
        })?;

        // Another replica may import at the same time: on a conflict, load
        // again (bounded).
        let mut attempt = 0;
        let ledger = loop {
            attempt += 1;
            let s2 = store.clone();
            let snap = tokio::task::spawn_blocking(move || s2.load())
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))??;
            if attempt == 1 {
                check_initialised(&config, snap.account.is_some())?;
            }
            let position = snap.position;
            let (mut ledger, change) =
                import(snap, &file_jwt, &file_claims, (&operator, &kek), now())?;
            let Some(mut change) = change else {
                break ledger;
            };
            change.base = position;
            let s2 = store.clone();
            match tokio::task::spawn_blocking(move || s2.commit_from(&change))
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))?
            {
                Ok(p) => {
                    ledger.position = p;
                    break ledger;
                }
                Err(StoreError::Conflict) if attempt < 10 => continue,
                Err(e) => return Err(e.into()),
            }
        };

        check_kek(&kek, &ledger, &config)?;
        let metrics = Arc::new(Metrics::default());
        let pusher = Pusher::start(
            &config.nats.servers,
            config.system_account.creds_file.clone(),
            metrics.clone(),
        );
        let mut jwts = HashMap::new();
        jwts.insert(sys_claims.data.sub.clone(), Served::new(&sys_jwt));
        jwts.insert(
            ledger.account.account.clone(),
            Served::new(&ledger.account.jwt),
        );
        pusher.publish(Published {
            version: ledger.account.version,
            account: ledger.account.account.clone(),
            jwt: ledger.account.jwt.as_str().into(),
        });
        tracing::info!(
            account = %ledger.account.account,
            version = ledger.account.version,
            deploys = ledger.deploys.len(),
            users = ledger.users.len(),
            revocations = ledger.account.revocations.len(),
            "state loaded; pushing the current account JWT to every server"
        );
        let server = Arc::new(AccountServer {
            config,
            store,
            kek,
            operator,
            ledger: Mutex::new(ledger),
            jwts: RwLock::new(jwts),
            pusher,
            policy,
            nonces: Default::default(),
            metrics,
        });
        spawn_janitor(Arc::downgrade(&server));
        if let Some(head) = server.store.head_changes() {
            crate::replica::spawn_follower(Arc::downgrade(&server), head);
        }
        Ok(server)
    }

    /// The JWT the resolver serves for `account`.
    pub fn served(&self, account: &str) -> Option<Served> {
        // A poisoned lock only means a writer panicked after a whole-value
        // insert; the map is still consistent.
        let map = self.jwts.read().unwrap_or_else(|e| e.into_inner());
        map.get(account).cloned()
    }

    /// Commits `change` (one transaction), then applies it in memory, to
    /// the resolver and to the pushers. Called with the ledger locked.
    pub(crate) async fn commit(
        &self,
        ledger: &mut Ledger,
        change: Change,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let mut change = change;
        change.base = ledger.position;
        let change = Arc::new(change);
        let c2 = change.clone();
        let committed = tokio::task::spawn_blocking(move || store.commit_from(&c2))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        match committed {
            Ok(position) => {
                self.apply(ledger, &change)?;
                ledger.position = position;
                Ok(())
            }
            Err(StoreError::Conflict) => {
                self.catch_up(ledger).await?;
                Err(StoreError::Conflict)
            }
            Err(e) => Err(e),
        }
    }

    /// Applies a committed change in memory, to the resolver and to the
    /// pushers.
    pub(crate) fn apply(&self, ledger: &mut Ledger, change: &Change) -> Result<(), StoreError> {
        for d in &change.deploys {
            ledger.deploys.insert(d.id.clone(), d.clone());
        }
        for u in &change.users {
            ledger.users.insert(u.user_key.clone(), u.clone());
        }
        for a in &change.approvals {
            ledger
                .approvals
                .insert((a.deploy.clone(), a.rule.clone()), a.clone());
        }
        if let Some(account) = &change.account {
            ledger.account = account.clone();
            ledger.live = jwt::decode_account(&account.jwt)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            self.metrics.account_updates.inc();
            {
                let mut map = self.jwts.write().unwrap_or_else(|e| e.into_inner());
                map.insert(account.account.clone(), Served::new(&account.jwt));
            }
            self.pusher.publish(Published {
                version: account.version,
                account: account.account.clone(),
                jwt: account.jwt.as_str().into(),
            });
        }
        Ok(())
    }

    /// Re-signs the account JWT for `ledger` with `revocations`, after the
    /// deploys in `deploys` replace their stored records.
    pub(crate) fn resign(
        &self,
        ledger: &Ledger,
        deploys: &[crate::store::DeployRecord],
        revocations: std::collections::BTreeMap<String, Revocation>,
        now: i64,
    ) -> Result<AccountRecord, LedgerError> {
        let mut all = ledger.deploys.clone();
        for d in deploys {
            all.insert(d.id.clone(), d.clone());
        }
        let (record, _) = sign_account(
            &ledger.account,
            &ledger.base,
            Some(&ledger.live),
            &all,
            revocations,
            &self.operator,
            now,
        )?;
        Ok(record)
    }
}

/// Opens the KEK check value and the sealed seed of every deploy whose key
/// is live: a wrong KEK stops the start with the file named, instead of
/// failing at the first signing.
fn check_kek(kek: &Kek, ledger: &Ledger, config: &Config) -> Result<(), StartError> {
    let wrong = |what: String| StartError::WrongKek {
        path: config.kek_file.clone(),
        what,
    };
    if let Some(check) = &ledger.account.kek_check {
        let ok = hex::decode(check).is_ok_and(|c| kek.verify_check(&c));
        if !ok {
            return Err(wrong("the store's check value".into()));
        }
    }
    for d in ledger.deploys.values().filter(|d| d.state.key_is_live()) {
        let opens = hex::decode(&d.sealed_seed).is_ok_and(|sealed| {
            kek.open(&sealed, &crate::seal::deploy_context(&d.id, &d.signing_key))
                .is_ok()
        });
        if !opens {
            return Err(wrong(format!(
                "the sealed signing key of deploy {:?}",
                d.id
            )));
        }
    }
    Ok(())
}

/// The key-encryption key and the operator signing key.
fn load_secrets(config: &Config) -> Result<(Kek, KeyPair), StartError> {
    let kek = Kek::load(&config.kek_file)?;
    let operator =
        keyfile::load_private_key_file(&config.operator.signing_key_file, Some(KeyKind::Operator))?;
    // The other secrets the server reads: the system user's creds (a seed)
    // and the TLS private key, each its owner's alone.
    keyfile::check_private(&config.system_account.creds_file).map_err(StartError::Secret)?;
    if let Some(tls) = &config.tls {
        keyfile::check_private(&tls.key_file).map_err(StartError::Secret)?;
    }
    if let Some(kv) = &config.kv {
        keyfile::check_private(&kv.creds_file).map_err(StartError::Secret)?;
    }
    Ok((kek, operator))
}

/// A store without an account is refused unless the server was told to
/// initialise one (a lost store must be restored, never replaced by a fresh
/// one that forgets the revocations); `--init` on a store with an account
/// is refused too.
fn check_initialised(config: &Config, has_account: bool) -> Result<(), StoreError> {
    let location = match &config.kv {
        Some(kv) => format!("JetStream KV bucket {}", kv.bucket),
        None => config.store.display().to_string(),
    };
    match (has_account, config.init) {
        (false, false) => Err(StoreError::NotInitialised {
            location,
            what: "it holds no account",
        }),
        (true, true) => Err(StoreError::AlreadyInitialised { location }),
        _ => Ok(()),
    }
}

/// Builds the ledger from the stored snapshot and busop's account JWT:
/// imports it at first start, re-bases on it when it carries a later `iat`
/// (keeping every revocation), and re-signs so the served JWT is ours.
fn import(
    snap: crate::store::Snapshot,
    file_jwt: &str,
    file_claims: &AccountClaims,
    (operator, kek): (&KeyPair, &Kek),
    now: i64,
) -> Result<(Ledger, Option<Change>), StartError> {
    let (previous, base_jwt, live, action) = match snap.account {
        None => (
            AccountRecord {
                account: file_claims.data.sub.clone(),
                base_jwt: file_jwt.to_string(),
                jwt: String::new(),
                iat: 0,
                version: 0,
                revocations: Default::default(),
                kek_check: Some(hex::encode(kek.make_check()?)),
            },
            file_jwt.to_string(),
            None,
            Some("import"),
        ),
        Some(stored) => {
            let live = jwt::decode_account(&stored.jwt).map_err(LedgerError::from)?;
            let stored_base = jwt::decode_account(&stored.base_jwt).map_err(LedgerError::from)?;
            if file_claims.data.sub == stored.account && file_claims.data.iat > stored_base.data.iat
            {
                let mut rebased = stored.clone();
                rebased.base_jwt = file_jwt.to_string();
                (rebased, file_jwt.to_string(), Some(live), Some("rebase"))
            } else {
                if file_claims.data.sub != stored.account {
                    tracing::warn!(
                        file = %file_claims.data.sub,
                        stored = %stored.account,
                        "the account JWT file names another account than the store; serving the stored one"
                    );
                }
                let base = stored_base;
                let ledger = Ledger {
                    base,
                    live,
                    account: stored,
                    deploys: snap.deploys,
                    users: snap.users,
                    approvals: snap.approvals,
                    position: snap.position,
                };
                return Ok((ledger, None));
            }
        }
    };
    let base = jwt::decode_account(&base_jwt).map_err(LedgerError::from)?;
    let (record, claims) = sign_account(
        &previous,
        &base,
        live.as_ref(),
        &snap.deploys,
        previous.revocations.clone(),
        operator,
        now,
    )?;
    let change = Change {
        account: Some(record.clone()),
        audit: action
            .map(|a| AuditEntry {
                seq: 0,
                at: now,
                caller: "server".into(),
                action: a.into(),
                deploy: None,
                subjects: vec![record.account.clone()],
                grants: Vec::new(),
            })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let ledger = Ledger {
        account: record,
        base,
        live: claims,
        deploys: snap.deploys,
        users: snap.users,
        approvals: snap.approvals,
        position: snap.position,
    };
    Ok((ledger, Some(change)))
}

const JANITOR_TICK: Duration = Duration::from_millis(500);

fn spawn_janitor(server: Weak<AccountServer>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(JANITOR_TICK).await;
            let Some(server) = server.upgrade() else {
                return;
            };
            match server.tidy(now()).await {
                Ok(()) => {}
                // Another replica did the same work first (or something
                // else); caught up already, the next tick looks again.
                Err(crate::error::ApiError::Store(StoreError::Conflict)) => {
                    tracing::debug!("janitor: another replica changed the state first");
                }
                Err(e) => {
                    tracing::error!(error = %e, "janitor: retiring or pruning failed; will retry");
                }
            }
        }
    });
}
