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
/// The pause before attempt `attempt + 1` after a conflict: exponential
/// (4, 8, 16, 32, then 64 ms) with random jitter over its upper half, so
/// replicas that collided retry at different moments and a replica that
/// keeps losing to a busy one still gets a turn (a fixed few milliseconds
/// let one replica lose 24 times in a row under sustained load).
fn conflict_backoff(attempt: u32) -> Duration {
    let cap = 4u64 << attempt.saturating_sub(1).min(4);
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let jitter = u64::from(u16::from_le_bytes(b)) % (cap / 2 + 1);
    Duration::from_millis(cap / 2 + jitter)
}

/// A follower that missed a head notification still looks this often.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// How long nonces are remembered in a shared store: twice the timestamp
/// window (as the embedded store) plus a margin for clock differences.
pub fn nonce_ttl(config: &Config) -> Duration {
    config
        .auth
        .window
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(10))
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
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                }
                Err(ApiError::Store(StoreError::Conflict)) => {
                    self.metrics.store_conflicts.inc();
                    return Err(ApiError::Busy(format!(
                        "other replicas kept changing the shared state first ({MAX_ATTEMPTS} attempts); nothing was changed, retry the call"
                    )));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_backoff_grows_then_stays_within_its_bounds() {
        for attempt in 1..=MAX_ATTEMPTS {
            let cap = 4u64 << attempt.saturating_sub(1).min(4);
            for _ in 0..50 {
                let ms = conflict_backoff(attempt).as_millis() as u64;
                assert!(ms >= cap / 2 && ms <= cap, "attempt {attempt}: {ms} ms");
            }
        }
        assert_eq!(4u64 << 4, 64, "the longest pause");
    }
}
