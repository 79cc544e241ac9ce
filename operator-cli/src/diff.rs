//! `busop diff OLD NEW`: grant changes per service between two files,
//! folders or git revisions, trust-root (`danger`) lines first, as text,
//! JSON, or a Markdown comment ready to post on a pull request.

use crate::error::Result;
use crate::report::{EXIT_FINDINGS, Report};
use crate::source::{self, RuleSets};
use buswarden_rules::RuleSet;
use buswarden_rules::diff::{DiffLine, RuleDiff};
use serde::Serialize;
use std::fmt::Write as _;

/// One service's change.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceDiff {
    /// Hostname.
    pub service: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    /// The old file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_file: Option<String>,
    /// The new file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_file: Option<String>,
    /// Trust-root lines changed.
    pub danger: usize,
    /// Whether the service can now do something it could not.
    pub widens: bool,
    /// The changed rules (from the rules crate).
    pub diff: RuleDiff,
}

impl ServiceDiff {
    /// Lines in review order: danger first, then removed, then added.
    pub fn ordered(&self) -> Vec<&DiffLine> {
        let mut v: Vec<&DiffLine> = self.diff.lines().collect();
        v.sort_by_key(|l| !l.danger);
        v
    }
}

/// Compares two sets of services.
pub fn compare(old: &RuleSets, new: &RuleSets) -> Vec<ServiceDiff> {
    let empty = RuleSet::new();
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out: Vec<ServiceDiff> = names
        .into_iter()
        .filter_map(|name| {
            let (o, n) = (old.get(name), new.get(name));
            let diff = RuleDiff::between(
                o.map_or(&empty, |s| &s.rules),
                n.map_or(&empty, |s| &s.rules),
            );
            if diff.is_empty() {
                return None;
            }
            Some(ServiceDiff {
                service: name.clone(),
                status: match (o, n) {
                    (None, _) => "added",
                    (_, None) => "removed",
                    _ => "changed",
                },
                old_file: o.map(|s| s.file.clone()),
                new_file: n.map(|s| s.file.clone()),
                danger: diff.danger_lines().count(),
                widens: diff.widens(),
                diff,
            })
        })
        .collect();
    // Services with trust-root changes first.
    out.sort_by_key(|d| (d.danger == 0, d.service.clone()));
    out
}

fn line_text(l: &DiffLine) -> String {
    format!("{}{} {}", l.change.sign(), l.verb, l.subject)
}

/// Human text.
pub fn human(diffs: &[ServiceDiff]) -> String {
    let mut h = String::new();
    if diffs.is_empty() {
        h.push_str("no grant changes\n");
        return h;
    }
    for d in diffs {
        let file = d
            .new_file
            .as_ref()
            .or(d.old_file.as_ref())
            .cloned()
            .unwrap_or_default();
        let _ = writeln!(h, "{} ({}, {file})", d.service, d.status);
        for l in d.ordered() {
            let mark = if l.danger { "danger " } else { "       " };
            let _ = writeln!(h, "  {mark}{}", line_text(l));
        }
    }
    let danger: usize = diffs.iter().map(|d| d.danger).sum();
    let _ = writeln!(
        h,
        "{} service(s) changed, {danger} trust-root line(s)",
        diffs.len()
    );
    h
}

/// The pull-request comment.
pub fn markdown(diffs: &[ServiceDiff]) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "## buswarden: broker grant changes\n");
    if diffs.is_empty() {
        let _ = writeln!(
            m,
            "No grant changes: every service keeps exactly the permissions it had."
        );
        return m;
    }
    let danger: usize = diffs.iter().map(|d| d.danger).sum();
    let widening = diffs.iter().filter(|d| d.widens).count();
    if danger > 0 {
        let _ = writeln!(
            m,
            "> [!WARNING]\n> **{danger} trust-root (`danger`, port :666) grant change(s).** A trust-root endpoint can mint tokens or run privileged operations: review these first.\n"
        );
    }
    let _ = writeln!(
        m,
        "{} service(s) changed; {widening} can now reach something they could not before.\n",
        diffs.len()
    );
    let _ = writeln!(
        m,
        "| service | change | added | removed | trust-root | widens |"
    );
    let _ = writeln!(m, "|---|---|---:|---:|---:|---|");
    for d in diffs {
        let _ = writeln!(
            m,
            "| `{}` | {} | {} | {} | {} | {} |",
            d.service,
            d.status,
            d.diff.added.len(),
            d.diff.removed.len(),
            if d.danger > 0 {
                format!("**{}**", d.danger)
            } else {
                "0".into()
            },
            if d.widens { "yes" } else { "no" }
        );
    }
    for d in diffs {
        let _ = writeln!(m, "\n### `{}`\n", d.service);
        match (&d.old_file, &d.new_file) {
            (Some(o), Some(n)) if o == n => {
                let _ = writeln!(m, "`{n}`\n");
            }
            (Some(o), Some(n)) => {
                let _ = writeln!(m, "`{o}` → `{n}`\n");
            }
            (None, Some(n)) => {
                let _ = writeln!(m, "new service: `{n}`\n");
            }
            (Some(o), None) => {
                let _ = writeln!(m, "service removed: `{o}`\n");
            }
            (None, None) => {}
        }
        let (danger, rest): (Vec<&DiffLine>, Vec<&DiffLine>) =
            d.ordered().into_iter().partition(|l| l.danger);
        if !danger.is_empty() {
            let _ = writeln!(m, "**Trust-root grants**\n\n```diff");
            for l in danger {
                let _ = writeln!(m, "{}", line_text(l));
            }
            let _ = writeln!(m, "```\n");
        }
        if !rest.is_empty() {
            if d.danger > 0 {
                let _ = writeln!(m, "**Other grants**\n");
            }
            let _ = writeln!(m, "```diff");
            for l in rest {
                let _ = writeln!(m, "{}", line_text(l));
            }
            let _ = writeln!(m, "```");
        }
    }
    let _ = writeln!(
        m,
        "\n<sub>`busop diff --format markdown`. `{{{{plane}}}}` is filled in at signing time; audit trust-root grants with `grep '\\.danger\\.'`.</sub>"
    );
    m
}

/// Runs `busop diff`.
pub fn run(old: &str, new: &str, exit_code: bool) -> Result<Report> {
    let (o, n) = (source::read(old)?, source::read(new)?);
    let diffs = compare(&o, &n);
    let mut report = Report::new(
        human(&diffs),
        serde_json::json!({
            "old": old,
            "new": new,
            "services": diffs,
            "danger": diffs.iter().map(|d| d.danger).sum::<usize>(),
        }),
    );
    report.markdown = Some(markdown(&diffs));
    if exit_code && !diffs.is_empty() {
        report.exit = EXIT_FINDINGS;
    }
    Ok(report)
}
