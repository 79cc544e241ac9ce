//! `busop prune`: revocation hygiene. A revocation can go once every JWT it
//! revoked has expired (an expired JWT is refused anyway), so the account
//! JWT does not grow without bound. busop knows the latest expiry of what
//! it revoked from `revocations.json`; entries it has no record of go only
//! with `--max-lifetime D` (safe when every user JWT expires within D of
//! being issued, as `gencreds sign` does by default). `*` is never pruned.

use crate::account_jwt;
use crate::cli::PruneArgs;
use crate::error::Result;
use crate::report::{EXIT_FINDINGS, Report};
use crate::revoke::{LedgerEntry, read_ledger, write_ledger};
use crate::setup::Setup;
use buswarden_creds::jwt;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The revocations of `revocations` that may go at `now`.
pub fn prunable(
    revocations: &BTreeMap<String, i64>,
    ledger: Option<&BTreeMap<String, LedgerEntry>>,
    max_lifetime: Option<i64>,
    now: i64,
) -> Vec<String> {
    revocations
        .iter()
        .filter(|(key, at)| {
            if key.as_str() == "*" {
                return false;
            }
            match ledger.and_then(|l| l.get(*key)) {
                // Revoked JWTs are the ones issued at or before the revocation;
                // busop saw them all expire by `expires`.
                Some(e) if e.expires > 0 && e.revoked_at >= **at => now > e.expires,
                _ => max_lifetime.is_some_and(|d| now > at.saturating_add(d)),
            }
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Runs `busop prune`.
pub fn run(dir: &std::path::Path, args: &PruneArgs) -> Result<Report> {
    let setup = Setup::open(dir)?;
    account_jwt::refuse_second_writer(
        &setup,
        "busop does not change the account JWT behind its back, so pruning is left to it",
    )?;
    let entry = setup.account(args.account.as_deref())?;
    let mut ledger = read_ledger(&setup)?;
    let account = entry.claims.data.sub.clone();
    let max_lifetime = args
        .max_lifetime
        .map(|d| d.as_secs().min(i64::MAX as u64) as i64);
    let now = jwt::now();
    let mut pruned = Vec::new();
    let book = ledger.get(&account).cloned();
    let change = account_jwt::publish(&setup, &entry, &args.live, |claims| {
        pruned = prunable(&claims.nats.revocations, book.as_ref(), max_lifetime, now);
        for k in &pruned {
            claims.nats.revocations.remove(k);
        }
        Ok(())
    })?;
    if let Some(b) = ledger.get_mut(&account) {
        for k in &pruned {
            b.remove(k);
        }
    }
    write_ledger(&setup, &ledger)?;
    let mut h = String::new();
    let _ = writeln!(
        h,
        "pruned {} revocation(s) from account {}:",
        pruned.len(),
        entry.name
    );
    for k in &pruned {
        let _ = writeln!(h, "  {k}");
    }
    let _ = writeln!(
        h,
        "{} revocation(s) remain",
        entry
            .claims
            .nats
            .revocations
            .len()
            .saturating_sub(pruned.len())
    );
    if let Some(p) = &change.push {
        crate::push::describe(&mut h, p);
    }
    let confirmed = change.push.as_ref().is_none_or(|p| p.confirmed);
    let mut report = Report::new(
        h,
        serde_json::json!({ "account": entry.name, "pruned": pruned, "change": change }),
    );
    if !confirmed {
        report.exit = EXIT_FINDINGS;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prunes_only_what_has_surely_expired() {
        let revs: BTreeMap<String, i64> = [
            ("*".into(), 10),
            ("U1".into(), 100),
            ("U2".into(), 100),
            ("U3".into(), 100),
        ]
        .into();
        let ledger: BTreeMap<String, LedgerEntry> = [
            (
                "U1".into(),
                LedgerEntry {
                    revoked_at: 100,
                    expires: 500,
                },
            ),
            (
                "U2".into(),
                LedgerEntry {
                    revoked_at: 100,
                    expires: 0,
                },
            ),
        ]
        .into();
        assert_eq!(
            prunable(&revs, Some(&ledger), None, 400),
            Vec::<String>::new()
        );
        assert_eq!(prunable(&revs, Some(&ledger), None, 501), ["U1"]);
        assert_eq!(prunable(&revs, Some(&ledger), Some(1000), 501), ["U1"]);
        assert_eq!(
            prunable(&revs, Some(&ledger), Some(1000), 1101),
            ["U1", "U2", "U3"]
        );
    }
}
