//! The one way busop changes an account JWT, used by `revoke`, `rotate`,
//! `prune` and `push`, so no change undoes another:
//!
//! 1. read the live JWT from every server (`CLAIMS.LOOKUP` on a full
//!    resolver, else what `INFO` says each applied), keep the newest;
//! 2. merge its revocations into ours as a union (the later time wins);
//! 3. apply the change (after the merge, so pruning really prunes);
//! 4. sign with an `iat` later than both the live and the local JWT's
//!    (a full resolver silently keeps the JWT with the newer `iat`);
//! 5. write `accounts/<name>.jwt` and `nats-server.conf`, then push to every
//!    server and confirm what each applied ([`crate::push`]).

use crate::cli::LiveArgs;
use crate::error::{BusopError, Result};
use crate::push::{self, PushOutcome};
use crate::server_config;
use crate::setup::{AccountEntry, Setup};
use crate::sys::{self, Fleet};
use buswarden_creds::AccountClaims;
use buswarden_creds::jwt;
use serde::Serialize;
use std::collections::BTreeMap;

/// The live JWT found on the servers.
#[derive(Debug, Clone)]
pub struct Live {
    /// The token.
    pub token: String,
    /// Its claims.
    pub claims: AccountClaims,
}

/// What a change did.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeReport {
    /// Account name.
    pub account: String,
    /// Account key.
    pub account_key: String,
    /// `iat` of the live JWT found (0: none found or not pushed).
    pub live_iat: i64,
    /// `iat` of the JWT written.
    pub iat: i64,
    /// Revocations taken over from the live JWT (keys).
    pub merged_revocations: Vec<String>,
    /// The account JWT file written.
    pub path: std::path::PathBuf,
    /// The push, unless `--no-push`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushOutcome>,
}

/// Merges `live`'s revocations into `claims` (union, later time wins);
/// returns the keys that were added or moved later.
pub fn merge_revocations(claims: &mut AccountClaims, live: &AccountClaims) -> Vec<String> {
    let mut changed = Vec::new();
    for (key, at) in &live.nats.revocations {
        let entry = claims.nats.revocations.entry(key.clone()).or_insert(0);
        if *at > *entry {
            *entry = *at;
            changed.push(key.clone());
        }
    }
    changed
}

/// The `iat` for a re-signed account: after `now`, the live and the local JWT.
pub fn next_iat(now: i64, local: &AccountClaims, live: Option<&AccountClaims>) -> i64 {
    jwt::account_issue_time(now, live).max(jwt::account_issue_time(now, Some(local)))
}

/// Reads the newest live JWT of `account` from every server; `None` when
/// no server has it.
pub async fn read_live(
    fleet: &Fleet,
    account: &str,
    timeout: std::time::Duration,
) -> Result<Option<Live>> {
    let mut found: Vec<String> = Vec::new();
    for reply in fleet
        .request_all(&sys::lookup_subject(account), b"", None, timeout)
        .await?
    {
        let text = reply.text.trim();
        if text.starts_with("eyJ") {
            found.push(text.to_string());
        }
    }
    if found.is_empty() {
        for reply in fleet
            .request_all(&sys::info_subject(account), b"", None, timeout)
            .await?
        {
            if let Some(t) = reply.body["data"]["jwt"].as_str() {
                found.push(t.to_string());
            }
        }
    }
    let mut best: Option<Live> = None;
    for token in found {
        // A live JWT that does not decode, or is another account's, is not ours to merge.
        let Ok(claims) = jwt::decode_account(&token) else {
            continue;
        };
        if claims.data.sub != account {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|b| claims.data.iat > b.claims.data.iat)
        {
            best = Some(Live { token, claims });
        }
    }
    Ok(best)
}

/// The servers to reach: `--server` or `busop.toml`.
pub fn server_urls(setup: &Setup, live: &LiveArgs) -> Result<Vec<String>> {
    let urls = if live.servers.is_empty() {
        setup.file.servers.clone()
    } else {
        live.servers.clone()
    };
    if urls.is_empty() {
        return Err(BusopError::NoServers);
    }
    Ok(urls)
}

/// Connects to the servers as the system user.
pub async fn connect(setup: &Setup, live: &LiveArgs) -> Result<Fleet> {
    let urls = server_urls(setup, live)?;
    let path = setup.sys_creds_path();
    let creds = zeroize::Zeroizing::new(crate::artifact::read_text(&path)?);
    Fleet::connect(&urls, &creds, live.timeout).await
}

/// Refuses when an account server is this setup's one writer; `why` says
/// what to do instead.
pub fn refuse_second_writer(setup: &Setup, why: &str) -> Result<()> {
    match &setup.file.account_server {
        Some(a) => Err(BusopError::Usage(format!(
            "the account server at {} is the one writer of account JWTs in this setup: {why} (`busop account-server none` goes back to direct mode)",
            a.url
        ))),
        None => Ok(()),
    }
}

/// Applies `change` to `entry` the one way (see the module doc): live read,
/// merge, change, sign later, write, push and confirm (unless `--no-push`).
pub fn publish(
    setup: &Setup,
    entry: &AccountEntry,
    live_args: &LiveArgs,
    change: impl FnOnce(&mut AccountClaims) -> Result<()>,
) -> Result<ChangeReport> {
    let rt = sys::runtime()?;
    rt.block_on(async {
        let fleet = if live_args.no_push {
            None
        } else {
            Some(connect(setup, live_args).await?)
        };
        let live = match &fleet {
            Some(f) => read_live(f, &entry.claims.data.sub, live_args.timeout).await?,
            None => None,
        };
        let (token, claims, merged) =
            resign(setup, entry, live.as_ref().map(|l| &l.claims), change)?;
        let path = setup.write_account(&entry.name, &token)?;
        if setup.file.nats_server.url_resolver.is_none() {
            server_config::write(setup)?;
        }
        let push = match &fleet {
            Some(f) => {
                Some(push::push_token(f, &entry.name, &token, &claims, live_args.timeout).await?)
            }
            None => None,
        };
        if let Some(f) = fleet {
            f.close().await;
        }
        Ok(ChangeReport {
            account: entry.name.clone(),
            account_key: claims.data.sub.clone(),
            live_iat: live.map(|l| l.claims.data.iat).unwrap_or(0),
            iat: claims.data.iat,
            merged_revocations: merged,
            path,
            push,
        })
    })
}

/// Re-signs `entry` with the operator signing key: merge `live`'s
/// revocations, apply `change`, sign with a later `iat`.
pub fn resign(
    setup: &Setup,
    entry: &AccountEntry,
    live: Option<&AccountClaims>,
    change: impl FnOnce(&mut AccountClaims) -> Result<()>,
) -> Result<(String, AccountClaims, Vec<String>)> {
    let mut claims = entry.claims.clone();
    let merged = match live {
        Some(l) => merge_revocations(&mut claims, l),
        None => Vec::new(),
    };
    change(&mut claims)?;
    let newer_than_live = live.is_none_or(|l| l.data.iat < entry.claims.data.iat);
    if claims == entry.claims && newer_than_live {
        // Nothing to change and ours is already the newest: push it as it is.
        return Ok((entry.token.clone(), claims, merged));
    }
    let signer = setup.operator_signer()?;
    let iat = next_iat(jwt::now(), &entry.claims, live);
    let token = jwt::encode(&mut claims, &signer, iat).map_err(|source| BusopError::Encode {
        what: format!("account {}", entry.name),
        source,
    })?;
    Ok((token, claims, merged))
}

/// Revocations by user key, for reports.
pub fn revocation_list(claims: &AccountClaims) -> BTreeMap<String, i64> {
    claims.nats.revocations.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_keeps_the_later_time_and_every_key() {
        let mut local = AccountClaims::new_account("A");
        local.nats.revocations.insert("U1".into(), 100);
        local.nats.revocations.insert("U2".into(), 300);
        let mut live = AccountClaims::new_account("A");
        live.nats.revocations.insert("U2".into(), 200);
        live.nats.revocations.insert("U3".into(), 50);
        live.nats.revocations.insert("U1".into(), 150);
        let changed = merge_revocations(&mut local, &live);
        assert_eq!(changed, ["U1", "U3"]);
        assert_eq!(local.nats.revocations["U1"], 150);
        assert_eq!(local.nats.revocations["U2"], 300);
        assert_eq!(local.nats.revocations["U3"], 50);
    }

    #[test]
    fn iat_is_later_than_live_and_local() {
        let mut local = AccountClaims::new_account("A");
        local.data.iat = 1000;
        let mut live = AccountClaims::new_account("A");
        live.data.iat = 2000;
        assert_eq!(next_iat(500, &local, Some(&live)), 2001);
        assert_eq!(next_iat(1500, &local, None), 1500);
        assert_eq!(next_iat(900, &local, None), 1001);
        assert_eq!(next_iat(5000, &local, Some(&live)), 5000);
    }
}
