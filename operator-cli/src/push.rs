//! `busop push`: account JWTs to every nats-server over
//! `$SYS.REQ.ACCOUNT.<pub>.CLAIMS.UPDATE` with the system user's creds.
//!
//! Before pushing, each server's trusted operator (from `VARZ`) must list
//! the key that signed the account, or the push is held back (an operator
//! key rotation whose new operator JWT has not reached that server yet).
//! After pushing, each server's reply is collected and what it applied is
//! confirmed: `INFO` shows the account's JWT where the account is loaded
//! (`applied`); where it is not loaded, the full resolver's stored JWT
//! (`CLAIMS.LOOKUP`) must be ours (`stored`, used on first connect).

use crate::account_jwt;
use crate::cli::LiveArgs;
use crate::error::{BusopError, Result};
use crate::report::{EXIT_FINDINGS, Report};
use crate::setup::Setup;
use crate::sys::{self, Fleet, ServerId};
use buswarden_creds::AccountClaims;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// What one server did with a pushed account JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    /// The account is loaded and runs with our JWT.
    Applied,
    /// The account is not loaded; the resolver stored our JWT.
    Stored,
    /// The server runs or stores another JWT.
    Stale,
    /// The server refused the update.
    Refused,
    /// The server does not trust the key that signed the account (yet).
    UntrustedSigner,
    /// No reply in time.
    NoReply,
}

/// One server's result.
#[derive(Debug, Clone, Serialize)]
pub struct ServerResult {
    /// The server.
    pub server: ServerId,
    /// The update reply's code (0: none).
    pub code: i64,
    /// The update reply's message or error.
    pub message: String,
    /// What the server applied.
    pub status: Applied,
}

/// A push of one account JWT.
#[derive(Debug, Clone, Serialize)]
pub struct PushOutcome {
    /// Account name.
    pub account: String,
    /// Account key.
    pub account_key: String,
    /// `iat` of the JWT pushed.
    pub iat: i64,
    /// Each server's result.
    pub servers: Vec<ServerResult>,
    /// Every server applied or stored it.
    pub confirmed: bool,
}

fn trusts(varz: &serde_json::Value, signer: &str) -> bool {
    varz["data"]["trusted_operators_claim"]
        .as_array()
        .is_some_and(|ops| {
            ops.iter().any(|op| {
                op["sub"].as_str() == Some(signer)
                    || op["nats"]["signing_keys"]
                        .as_array()
                        .is_some_and(|ks| ks.iter().any(|k| k.as_str() == Some(signer)))
            })
        })
}

/// Pushes `token` (the JWT of account `name`) and confirms it per server.
pub async fn push_token(
    fleet: &Fleet,
    name: &str,
    token: &str,
    claims: &AccountClaims,
    timeout: Duration,
) -> Result<PushOutcome> {
    let account = claims.data.sub.as_str();
    let servers = fleet.servers(timeout).await?;
    if servers.is_empty() {
        return Err(BusopError::Nats {
            server: "all".into(),
            message: "no server answered $SYS.REQ.SERVER.PING.STATSZ (is this the system user?)"
                .into(),
        });
    }
    let n = servers.len();
    let mut results: Vec<ServerResult> = servers
        .iter()
        .map(|s| ServerResult {
            server: s.clone(),
            code: 0,
            message: String::new(),
            status: Applied::NoReply,
        })
        .collect();
    let varz = fleet
        .request_all("$SYS.REQ.SERVER.PING.VARZ", b"", Some(n), timeout)
        .await?;
    let mut untrusted = false;
    for r in results.iter_mut() {
        let trusted = varz
            .iter()
            .find(|v| v.server == r.server)
            .is_some_and(|v| trusts(&v.body, &claims.data.iss));
        if !trusted {
            untrusted = true;
            r.status = Applied::UntrustedSigner;
            r.message = format!(
                "does not trust operator signing key {} yet: copy operator.jwt to it and restart it first",
                claims.data.iss
            );
        }
    }
    if !untrusted {
        let replies = fleet
            .request_all(
                &sys::update_subject(account),
                token.as_bytes(),
                Some(n),
                timeout,
            )
            .await?;
        for r in results.iter_mut() {
            if let Some(reply) = replies.iter().find(|x| x.server == r.server) {
                let b = &reply.body;
                if b["error"].is_object() {
                    r.code = b["error"]["code"].as_i64().unwrap_or(0);
                    r.message = b["error"]["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    r.status = Applied::Refused;
                } else {
                    r.code = b["data"]["code"].as_i64().unwrap_or(0);
                    r.message = b["data"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    r.status = Applied::Stale;
                }
            }
        }
        confirm(fleet, account, token, &mut results, timeout).await?;
    }
    let confirmed = results
        .iter()
        .all(|r| matches!(r.status, Applied::Applied | Applied::Stored));
    Ok(PushOutcome {
        account: name.to_string(),
        account_key: account.to_string(),
        iat: claims.data.iat,
        servers: results,
        confirmed,
    })
}

async fn confirm(
    fleet: &Fleet,
    account: &str,
    token: &str,
    results: &mut [ServerResult],
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pending = results
            .iter()
            .filter(|r| r.status == Applied::Stale)
            .count();
        if pending == 0 {
            return Ok(());
        }
        let info = fleet
            .request_all(
                &sys::info_subject(account),
                b"",
                Some(results.len()),
                timeout,
            )
            .await?;
        let mut not_loaded = false;
        for r in results.iter_mut().filter(|r| r.status == Applied::Stale) {
            let Some(reply) = info.iter().find(|x| x.server == r.server) else {
                continue;
            };
            match reply.body["data"]["jwt"].as_str() {
                Some(live) if live == token => r.status = Applied::Applied,
                Some(_) => {}
                None => not_loaded = true,
            }
        }
        if not_loaded {
            let stored = fleet
                .request_all(&sys::lookup_subject(account), b"", None, timeout)
                .await?;
            let ours = stored.iter().filter(|s| s.text.trim() == token).count();
            let mut left = ours;
            for r in results.iter_mut().filter(|r| r.status == Applied::Stale) {
                let loaded = info
                    .iter()
                    .find(|x| x.server == r.server)
                    .is_some_and(|x| x.body["data"]["jwt"].is_string());
                if !loaded && left > 0 && r.code == 200 {
                    r.status = Applied::Stored;
                    left -= 1;
                }
            }
        }
        if Instant::now() >= deadline {
            return Ok(());
        }
        if results.iter().any(|r| r.status == Applied::Stale) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Human lines for a push.
pub fn describe(out: &mut String, p: &PushOutcome) {
    let _ = writeln!(
        out,
        "push {} {} (iat {}): {}",
        p.account,
        p.account_key,
        p.iat,
        if p.confirmed {
            "confirmed on every server"
        } else {
            "NOT confirmed"
        }
    );
    for s in &p.servers {
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<16} {} {} {}",
            status, s.server.name, s.code, s.message
        );
    }
}

/// Runs `busop push`.
pub fn run(dir: &std::path::Path, accounts: &[String], live: &LiveArgs) -> Result<Report> {
    let setup = Setup::open(dir)?;
    account_jwt::refuse_second_writer(&setup, "it pushes every change itself")?;
    if live.no_push {
        return Err(BusopError::Usage(
            "`busop push --no-push` would do nothing".into(),
        ));
    }
    let entries = if accounts.is_empty() {
        setup.accounts()?
    } else {
        accounts
            .iter()
            .map(|a| setup.account(Some(a)))
            .collect::<Result<Vec<_>>>()?
    };
    let mut human = String::new();
    let mut reports = Vec::new();
    let mut all_confirmed = true;
    for entry in &entries {
        let r = account_jwt::publish(&setup, entry, live, |_| Ok(()))?;
        if let Some(p) = &r.push {
            all_confirmed &= p.confirmed;
            describe(&mut human, p);
        }
        reports.push(r);
    }
    let mut report = Report::new(
        human,
        serde_json::json!({ "accounts": reports, "confirmed": all_confirmed }),
    );
    if !all_confirmed {
        report.exit = EXIT_FINDINGS;
    }
    Ok(report)
}
