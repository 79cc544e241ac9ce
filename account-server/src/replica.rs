//! Several account-server replicas on one shared store (JetStream KV): the
//! follower that keeps a replica's working set, resolver and pushers on the
//! latest committed state, the catch-up after a refused (conflicting)
//! change, and the bounded retry of an API call on a conflict: re-read,
//! re-apply, retry. With the embedded store none of this runs: there is one
//! writer, and it never conflicts.

use std::sync::Weak;
use std::time::Duration;

use buswarden_creds::jwt;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::ApiError;
use crate::ledger::Ledger;
use crate::server::AccountServer;
use crate::store::StoreError;

/// Attempts of one API call on conflicts before it gives up.
pub const MAX_ATTEMPTS: u32 = 24;
/// A follower that missed a head notification still looks this often.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// How long nonces are remembered in a shared store: twice the timestamp
/// window (as the embedded store) plus a margin for clock differences.
pub fn nonce_ttl(config: &Config) -> Duration {
    config.auth.window * 2 + Duration::from_secs(10)
}

impl AccountServer {
    /// Brings `ledger` up to the store's latest committed state: applies
    /// what other replicas committed after its position (the account JWT
    /// goes to the resolver and to every broker).
    pub(crate) async fn catch_up(&self, ledger: &mut Ledger) -> Result<bool, StoreError> {
        let store = self.store.clone();
        let position = ledger.position;
        let Some((change, to)) = tokio::task::spawn_blocking(move || store.changes_after(position))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??
        else {
            return Ok(false);
        };
        if let Some(account) = &change.account
            && account.base_jwt != ledger.account.base_jwt
        {
            ledger.base = jwt::decode_account(&account.base_jwt)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        self.apply(ledger, &change)?;
        ledger.position = to;
        Ok(true)
    }

    /// Runs `op` until it is not refused by a conflict, at most
    /// [`MAX_ATTEMPTS`] times. `op` computes its change on the working set
    /// each time; the conflict already caught the working set up.
    pub async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Err(ApiError::Store(StoreError::Conflict)) if attempt < MAX_ATTEMPTS => {
                    self.metrics.store_conflicts.inc();
                    // Replicas that collided back off by different amounts.
                    let mut b = [0u8; 1];
                    let _ = getrandom::fill(&mut b);
                    let ms = u64::from(b[0] % 8) + u64::from(attempt.min(10));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                other => return other,
            }
        }
    }
}

/// Follows the store's head: whenever another replica committed, the
/// working set catches up (so the resolver serves, and the pushers push,
/// the latest account JWT even when its writer died before pushing).
pub(crate) fn spawn_follower(server: Weak<AccountServer>, mut head: watch::Receiver<u64>) {
    tokio::spawn(async move {
        loop {
            let woke = tokio::time::timeout(FOLLOW_POLL, head.changed()).await;
            if matches!(woke, Ok(Err(_))) {
                return;
            }
            let latest = *head.borrow_and_update();
            let Some(server) = server.upgrade() else {
                return;
            };
            let mut l = server.ledger.lock().await;
            if woke.is_ok() && latest <= l.position {
                continue;
            }
            if let Err(e) = server.catch_up(&mut l).await {
                tracing::warn!(error = %e, "following the shared store failed; will retry");
            }
        }
    });
}
