//! `busop revoke`: revoke user keys, every user of a deploy (the
//! `deploy:<ID>` tag `gencreds sign` puts on each user), or a signing key
//! (removed from the account: every user it signed is cut off), in the account JWT
//! through [`crate::account_jwt::publish`], so every live connection of
//! those users closes at once. With an account server configured, the
//! request goes to its API instead (one writer).
//!
//! Each revocation is recorded in `revocations.json` with the latest expiry
//! of the revoked JWTs busop saw, so `busop prune` knows when it may go.

use crate::account_jwt::{self, ChangeReport};
use crate::account_server;
use crate::artifact::{self, Artifact};
use crate::cli::RevokeArgs;
use crate::error::{BusopError, Result};
use crate::report::{EXIT_FINDINGS, Report};
use crate::setup::{Setup, write_file};
use buswarden_creds::jwt;
use buswarden_creds::keys::{KeyKind, check_public_key};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The ledger file.
pub const LEDGER_FILE: &str = "revocations.json";

/// What busop knows about one revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// When it was revoked (unix seconds).
    pub revoked_at: i64,
    /// Latest `exp` of the revoked JWTs busop saw (0: unknown or never).
    pub expires: i64,
}

/// `revocations.json`: account key -> user key -> entry.
pub type Ledger = BTreeMap<String, BTreeMap<String, LedgerEntry>>;

/// Reads the ledger (empty when absent).
pub fn read_ledger(setup: &Setup) -> Result<Ledger> {
    let path = setup.dir.join(LEDGER_FILE);
    if !path.exists() {
        return Ok(Ledger::new());
    }
    let text = artifact::read_text(&path)?;
    serde_json::from_str(&text).map_err(|e| BusopError::SetupFile {
        path,
        message: e.to_string(),
    })
}

/// Writes the ledger.
pub fn write_ledger(setup: &Setup, ledger: &Ledger) -> Result<()> {
    let text = serde_json::to_string_pretty(ledger).unwrap_or_default();
    write_file(&setup.dir.join(LEDGER_FILE), format!("{text}\n").as_bytes())
}

/// A user found in a creds folder.
#[derive(Debug, Clone, Serialize)]
pub struct FoundUser {
    /// User key.
    pub user: String,
    /// Name (hostname).
    pub name: String,
    /// `exp` (0: never).
    pub expires: i64,
    /// The file.
    pub path: std::path::PathBuf,
}

/// Users of `deploy` in account `account` among the `.creds`/JWT files under `dir`.
pub fn users_of_deploy(dir: &Path, account: &str, deploy: &str) -> Result<Vec<FoundUser>> {
    let tag = format!("deploy:{deploy}");
    let mut out = Vec::new();
    let files = if dir.is_dir() {
        let mut v = Vec::new();
        collect_files(dir, &mut v)?;
        v
    } else {
        vec![dir.to_path_buf()]
    };
    for path in files {
        let Ok(loaded) = artifact::load(&path) else {
            continue;
        };
        let claims = match loaded.artifact {
            Artifact::Creds { claims, .. } => *claims,
            Artifact::Jwt { claims, .. } => match *claims {
                jwt::AnyClaims::User(u) => u,
                _ => continue,
            },
            Artifact::Acl(_) => continue,
        };
        let acc = if claims.nats.issuer_account.is_empty() {
            &claims.data.iss
        } else {
            &claims.nats.issuer_account
        };
        if acc == account
            && claims
                .nats
                .generic
                .tags
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&tag))
        {
            out.push(FoundUser {
                user: claims.data.sub.clone(),
                name: claims.data.name.clone(),
                expires: claims.data.exp,
                path,
            });
        }
    }
    out.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(out)
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(BusopError::io("listing", dir))? {
        let entry = entry.map_err(BusopError::io("listing", dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                collect_files(&path, out)?;
            }
        } else if name.ends_with(".creds") || name.ends_with(".jwt") {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs `busop revoke`.
pub fn run(dir: &Path, args: &RevokeArgs) -> Result<Report> {
    let setup = Setup::open(dir)?;
    for u in &args.users {
        check_public_key(KeyKind::User, u)
            .map_err(|e| BusopError::Usage(format!("--user: {e}")))?;
    }
    for k in &args.signing_keys {
        check_public_key(KeyKind::Account, k)
            .map_err(|e| BusopError::Usage(format!("--signing-key: {e}")))?;
    }
    if args.users.is_empty() && args.deploy.is_none() && args.signing_keys.is_empty() {
        return Err(BusopError::Usage(
            "name what to revoke: --user U…, --deploy ID or --signing-key A…".into(),
        ));
    }
    if let Some(server) = &setup.file.account_server {
        if !args.signing_keys.is_empty() {
            return Err(BusopError::Usage(
                "with an account server, revoke its deploys (--deploy ID): it owns the signing keys".into(),
            ));
        }
        return account_server::revoke(&setup, server, &args.users, args.deploy.as_deref());
    }
    let entry = setup.account(args.account.as_deref())?;
    let account = entry.claims.data.sub.clone();
    let mut targets: BTreeMap<String, i64> = args.users.iter().map(|u| (u.clone(), 0)).collect();
    let mut found = Vec::new();
    if let Some(deploy) = &args.deploy {
        let Some(creds) = &args.creds else {
            return Err(BusopError::Usage(
                "--deploy needs --creds DIR in direct mode: the folder holding that deploy's .creds (the account server knows its deploys itself)".into(),
            ));
        };
        found = users_of_deploy(creds, &account, deploy)?;
        if found.is_empty() {
            return Err(BusopError::Usage(format!(
                "no user of deploy {deploy} in account {} under {}",
                entry.name,
                creds.display()
            )));
        }
        for f in &found {
            let e = targets.entry(f.user.clone()).or_insert(f.expires);
            *e = (*e).max(f.expires);
        }
    }
    for k in &args.signing_keys {
        if !entry.claims.nats.signing_keys.contains(k) {
            return Err(BusopError::Usage(format!(
                "{k} is not a signing key of account {}",
                entry.name
            )));
        }
    }
    let now = jwt::now();
    let change: ChangeReport = account_jwt::publish(&setup, &entry, &args.live, |claims| {
        for k in &args.signing_keys {
            claims.nats.signing_keys.0.remove(k);
        }
        for key in targets.keys() {
            let at = claims.nats.revocations.entry(key.clone()).or_insert(now);
            *at = (*at).max(now);
        }
        Ok(())
    })?;
    let mut ledger = read_ledger(&setup)?;
    let book = ledger.entry(account.clone()).or_default();
    for (key, expires) in &targets {
        book.insert(
            key.clone(),
            LedgerEntry {
                revoked_at: now,
                expires: *expires,
            },
        );
    }
    write_ledger(&setup, &ledger)?;

    let mut h = String::new();
    let _ = writeln!(
        h,
        "revoked in account {} {} (iat {}):",
        entry.name, account, change.iat
    );
    for key in targets.keys() {
        let name = found
            .iter()
            .find(|f| &f.user == key)
            .map(|f| f.name.as_str())
            .unwrap_or("");
        let _ = writeln!(h, "  {key} {name}");
    }
    for k in &args.signing_keys {
        let _ = writeln!(
            h,
            "  signing key {k} removed: every user it signed is cut off"
        );
    }
    if !change.merged_revocations.is_empty() {
        let _ = writeln!(
            h,
            "kept {} revocation(s) found only in the live JWT",
            change.merged_revocations.len()
        );
    }
    match &change.push {
        Some(p) => crate::push::describe(&mut h, p),
        None => {
            let _ = writeln!(
                h,
                "not pushed (--no-push): run `busop push --account {}`",
                entry.name
            );
        }
    }
    let confirmed = change.push.as_ref().is_none_or(|p| p.confirmed);
    let mut report = Report::new(
        h,
        serde_json::json!({
            "account": entry.name,
            "account_key": account,
            "revoked": targets.keys().collect::<Vec<_>>(),
            "removed_signing_keys": args.signing_keys,
            "deploy_users": found,
            "change": change,
        }),
    );
    if !confirmed {
        report.exit = EXIT_FINDINGS;
    }
    Ok(report)
}
