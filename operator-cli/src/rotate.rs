//! `busop rotate`: signing key rotation.
//!
//! - `account-key`: a new account signing key in the account JWT (pushed the
//!   one way, [`crate::account_jwt::publish`]); with `--remove-old` the
//!   previous keys go, which closes every connection of the users they
//!   signed: re-issue users with the new key first.
//! - `operator-key`: a new operator signing key. Accounts cannot carry it
//!   over `$SYS`: a server only accepts an account signed by a key its
//!   operator JWT lists, and the operator JWT lives in each server's config.
//!   So the command signs a new operator JWT listing old and new keys (with
//!   the operator identity key), re-signs every account with the new key
//!   locally, rewrites `nats-server.conf`, and prints the ordered steps
//!   ([`steps`]): the new `operator.jwt` to every server, restart every
//!   server (nats-server does not reload trusted operators), `busop push` (held back while a server does not trust the new
//!   key yet), then retire the old key.
//! - `check`: asks every server (`VARZ`, `INFO`/`CLAIMS.LOOKUP`) which steps are done.

use crate::account_jwt;
use crate::cli::{LiveArgs, RotateArgs, RotateWhat};
use crate::error::{BusopError, Result};
use crate::report::{EXIT_FINDINGS, Report};
use crate::server_config;
use crate::setup::Setup;
use crate::sys;
use buswarden_creds::jwt;
use buswarden_creds::{KeyKind, KeyPair};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Runs `busop rotate`.
pub fn run(dir: &Path, args: &RotateArgs) -> Result<Report> {
    let setup = Setup::open(dir)?;
    match &args.what {
        RotateWhat::AccountKey {
            account,
            remove_old,
            live,
        } => account_key(&setup, account.as_deref(), *remove_old, live),
        RotateWhat::OperatorKey { live } => operator_key(&setup, live),
        RotateWhat::Check { live } => check(&setup, live),
    }
}

fn account_key(
    setup: &Setup,
    account: Option<&str>,
    remove_old: bool,
    live: &LiveArgs,
) -> Result<Report> {
    account_jwt::refuse_second_writer(
        setup,
        "it owns the account's signing keys (one per deploy): open a new deploy instead",
    )?;
    let entry = setup.account(account)?;
    let new_key = KeyPair::generate(KeyKind::Account);
    let key_file = setup.store_key(&new_key)?;
    let mut removed = Vec::new();
    let change = account_jwt::publish(setup, &entry, live, |claims| {
        if remove_old {
            removed = claims.nats.signing_keys.0.keys().cloned().collect();
            claims.nats.signing_keys.0.clear();
        }
        claims.nats.signing_keys.add_plain(new_key.public_key());
        Ok(())
    })?;
    let mut h = String::new();
    let _ = writeln!(
        h,
        "account {} {}: new signing key {}",
        entry.name,
        entry.claims.data.sub,
        new_key.public_key()
    );
    let _ = writeln!(h, "  seed file {} (0600)", key_file.display());
    for k in &removed {
        let _ = writeln!(
            h,
            "  removed {k}: connections of users it signed are closed"
        );
    }
    if removed.is_empty() {
        let _ = writeln!(
            h,
            "next: re-issue users with the new key (gencreds sign --signing-key {}), then `busop rotate account-key --remove-old`... or remove the old key once they run",
            key_file.display()
        );
    }
    if let Some(p) = &change.push {
        crate::push::describe(&mut h, p);
    }
    let confirmed = change.push.as_ref().is_none_or(|p| p.confirmed);
    let mut report = Report::new(
        h,
        serde_json::json!({
            "account": entry.name,
            "account_key": entry.claims.data.sub,
            "new_signing_key": new_key.public_key(),
            "key_file": key_file,
            "removed": removed,
            "change": change,
        }),
    );
    if !confirmed {
        report.exit = EXIT_FINDINGS;
    }
    Ok(report)
}

/// One ordered step of an operator key rotation.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1-based order.
    pub step: u8,
    /// What to do.
    pub action: String,
    /// Done, when checked against the servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done: Option<bool>,
}

/// The ordered steps after `rotate operator-key`.
pub fn steps(setup: &Setup, new_key: &str) -> Vec<Step> {
    let op = setup.operator_path();
    let conf = setup.dir.join(server_config::CONFIG_FILE);
    [
        format!(
            "copy {} (or the regenerated {}) to every nats-server: its config must reference the new operator JWT",
            op.display(),
            conf.display()
        ),
        "restart every nats-server, one at a time (a reload does not apply a new operator JWT: nats-server 2.15.1 answers `config reload not supported for TrustedOperators`); check with `busop rotate check`".to_string(),
        format!("push every account re-signed by {new_key}: `busop push` (held back while a server does not trust the new key)"),
        "after `busop rotate check` shows every step done, retire the old key: the next `busop rotate operator-key` drops every key no account is signed with (then repeat steps 1-3)".to_string(),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, action)| Step {
        step: i as u8 + 1,
        action,
        done: None,
    })
    .collect()
}

/// The live JWT of each account, best effort: the rotation must not wait on
/// an unreachable server, but what it finds keeps revocations made elsewhere.
fn live_accounts(
    setup: &Setup,
    live: &LiveArgs,
    accounts: &[crate::setup::AccountEntry],
) -> std::result::Result<Vec<Option<buswarden_creds::AccountClaims>>, String> {
    if live.no_push || account_jwt::server_urls(setup, live).is_err() {
        return Err("no servers to read from".into());
    }
    let rt = sys::runtime().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let fleet = account_jwt::connect(setup, live)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for a in accounts {
            let l = account_jwt::read_live(&fleet, &a.claims.data.sub, live.timeout)
                .await
                .map_err(|e| e.to_string())?;
            out.push(l.map(|l| l.claims));
        }
        fleet.close().await;
        Ok(out)
    })
}

fn operator_key(setup: &Setup, live: &LiveArgs) -> Result<Report> {
    let (_, mut op) = setup.operator()?;
    let identity = setup.key(
        &op.data.sub,
        "operator identity key (kept offline: bring it back for this step)",
    )?;
    let new_key = KeyPair::generate(KeyKind::Operator);
    let key_file = setup.store_key(&new_key)?;
    // Keys that still sign an account stay listed until the rotation is finished;
    // older ones go now.
    let accounts = setup.accounts()?;
    let in_use: Vec<String> = accounts.iter().map(|a| a.claims.data.iss.clone()).collect();
    let old_keys = op.nats.signing_keys.clone();
    op.nats.signing_keys.retain(|k| in_use.contains(k));
    op.nats.signing_keys.push(new_key.public_key().to_string());
    let dropped: Vec<String> = old_keys
        .into_iter()
        .filter(|k| !op.nats.signing_keys.contains(k))
        .collect();
    let op_iat = jwt::now().max(op.data.iat + 1);
    let token = jwt::encode(&mut op, &identity, op_iat).map_err(|source| BusopError::Encode {
        what: "the operator JWT".into(),
        source,
    })?;
    setup.write_operator(&token)?;
    // Restarted servers preload these JWTs, and the newer iat wins: merge the
    // live revocations in now so the restart cannot undo one made elsewhere.
    let lives = live_accounts(setup, live, &accounts);
    let mut resigned = Vec::new();
    for (i, entry) in accounts.iter().enumerate() {
        let mut claims = entry.claims.clone();
        let live_claims = lives.as_ref().ok().and_then(|l| l[i].as_ref());
        let merged = live_claims
            .map(|l| account_jwt::merge_revocations(&mut claims, l))
            .unwrap_or_default();
        let iat = account_jwt::next_iat(jwt::now(), &entry.claims, live_claims);
        let t = jwt::encode(&mut claims, &new_key, iat).map_err(|source| BusopError::Encode {
            what: format!("account {}", entry.name),
            source,
        })?;
        setup.write_account(&entry.name, &t)?;
        resigned.push(serde_json::json!({
            "account": entry.name,
            "key": entry.claims.data.sub,
            "iat": iat,
            "merged_revocations": merged,
        }));
    }
    server_config::write(setup)?;
    let steps = steps(setup, new_key.public_key());
    let mut h = String::new();
    let _ = writeln!(
        h,
        "operator {}: new signing key {}",
        op.data.name,
        new_key.public_key()
    );
    let _ = writeln!(h, "  seed file {} (0600)", key_file.display());
    let _ = writeln!(
        h,
        "  operator.jwt lists {}",
        op.nats.signing_keys.join(", ")
    );
    for k in &dropped {
        let _ = writeln!(h, "  no longer listed: {k}");
    }
    if let Err(why) = &lives {
        let _ = writeln!(
            h,
            "  live account JWTs not read ({why}): revocations made elsewhere since the last push come back in step 3"
        );
    }
    let _ = writeln!(
        h,
        "  re-signed {} account(s) locally; nothing is live yet. Next, in this order:",
        resigned.len()
    );
    for s in &steps {
        let _ = writeln!(h, "  {}. {}", s.step, s.action);
    }
    if let Some(a) = &setup.file.account_server {
        let _ = writeln!(
            h,
            "  the account server at {} signs the account too: point its [operator] signing_key_file at {} and restart it",
            a.url,
            key_file.display()
        );
    }
    Ok(Report::new(
        h,
        serde_json::json!({
            "operator_key": op.data.sub,
            "new_signing_key": new_key.public_key(),
            "key_file": key_file,
            "signing_keys": op.nats.signing_keys,
            "dropped": dropped,
            "resigned": resigned,
            "live_read": lives.is_ok(),
            "steps": steps,
        }),
    ))
}

/// Per server: which rotation steps are done.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCheck {
    /// The server.
    pub server: sys::ServerId,
    /// Step 1-2: it trusts the operator signing key the local accounts are signed with.
    pub trusts_new_key: bool,
    /// Step 3: accounts whose live JWT is not the local one.
    pub accounts_behind: Vec<String>,
}

fn check(setup: &Setup, live: &LiveArgs) -> Result<Report> {
    let accounts = setup.accounts()?;
    let (_, op) = setup.operator()?;
    let new_key = op.nats.signing_keys.last().cloned().unwrap_or_default();
    let rt = sys::runtime()?;
    let checks: Vec<ServerCheck> = rt.block_on(async {
        let fleet = account_jwt::connect(setup, live).await?;
        let servers = fleet.servers(live.timeout).await?;
        let n = servers.len();
        let varz = fleet
            .request_all("$SYS.REQ.SERVER.PING.VARZ", b"", Some(n), live.timeout)
            .await?;
        let mut out = Vec::new();
        for s in &servers {
            let trusts = varz.iter().find(|v| &v.server == s).is_some_and(|v| {
                v.body["data"]["trusted_operators_claim"]
                    .as_array()
                    .is_some_and(|ops| {
                        ops.iter().any(|o| {
                            o["nats"]["signing_keys"].as_array().is_some_and(|ks| {
                                ks.iter().any(|k| k.as_str() == Some(new_key.as_str()))
                            })
                        })
                    })
            });
            out.push(ServerCheck {
                server: s.clone(),
                trusts_new_key: trusts,
                accounts_behind: Vec::new(),
            });
        }
        for a in &accounts {
            let live_jwt = account_jwt::read_live(&fleet, &a.claims.data.sub, live.timeout).await?;
            let behind = live_jwt.is_none_or(|l| l.claims.data.iss != a.claims.data.iss);
            if behind {
                for c in out.iter_mut() {
                    c.accounts_behind.push(a.name.clone());
                }
            }
        }
        fleet.close().await;
        Ok::<_, BusopError>(out)
    })?;
    let mut st = steps(setup, &new_key);
    let trusted = checks.iter().all(|c| c.trusts_new_key);
    let pushed = checks.iter().all(|c| c.accounts_behind.is_empty());
    st[0].done = Some(trusted);
    st[1].done = Some(trusted);
    st[2].done = Some(trusted && pushed);
    st[3].done = Some(op.nats.signing_keys.len() == 1 && trusted && pushed);
    let mut h = String::new();
    let _ = writeln!(h, "operator signing key {new_key}:");
    for s in &st {
        let mark = if s.done == Some(true) {
            "done   "
        } else {
            "pending"
        };
        let _ = writeln!(h, "  {mark} {}. {}", s.step, s.action);
    }
    for c in &checks {
        let _ = writeln!(
            h,
            "  server {}: {}{}",
            c.server.name,
            if c.trusts_new_key {
                "trusts the new key"
            } else {
                "does NOT trust the new key yet"
            },
            if c.accounts_behind.is_empty() {
                String::new()
            } else {
                format!(
                    "; accounts not yet pushed: {}",
                    c.accounts_behind.join(", ")
                )
            }
        );
    }
    let all_done = trusted && pushed;
    let mut report = Report::new(
        h,
        serde_json::json!({ "signing_key": new_key, "steps": st, "servers": checks }),
    );
    if !all_done {
        report.exit = EXIT_FINDINGS;
    }
    Ok(report)
}
