//! `busop audit DIR`: every service's `.creds` (or `nats.acl`) under DIR in
//! one view — trust-root grants, wildcard grants, expired and soon-expiring
//! credentials, grants the rule validator refuses (a SUB on another host's
//! requests, …), SUB entries not pinned to the service's own queue group, and
//! grants outside the `buswarden.toml` policy. Exit status:
//! 0 clean, 1 a grant violates the policy, 2 a file could not be read.
//!
//! The precise shell audit of trust-root grants is `grep '\.danger\.'`:
//! a bare `grep danger` also matches a host or path that merely contains
//! the word (`danger-zone.example`, `/dangerous`). A path segment that is
//! exactly `danger` still matches `\.danger\.`; the anchored form
//! `grep -E '^(# )?(PUB|SUB) [^.]+\.danger\.'` looks only at the trust token.

use crate::artifact::{self, Artifact};
use crate::error::{BusopError, Result};
use crate::grants::{self, ServiceGrants};
use crate::inspect::Unreadable;
use crate::report::{EXIT_ERROR, EXIT_FINDINGS, Report, span, time};
use buswarden_creds::jwt;
use buswarden_rules::policy::{self, Policy, Severity};
use buswarden_rules::queue;
use buswarden_rules::rule::PLANE_PLACEHOLDER;
use buswarden_rules::validate;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The precise trust-root audit for files.
pub const GREP_DANGER: &str = r"grep '\.danger\.'";
/// The anchored form that looks only at the trust token.
pub const GREP_DANGER_ANCHORED: &str = r"grep -E '^(# )?(PUB|SUB) [^.]+\.danger\.'";

/// A policy finding.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyFinding {
    /// Stable code (`unlisted-trust-root-grant`, `unlisted-wildcard-grant`, `dynamic-trust-root`).
    pub code: &'static str,
    /// The rule, `nats.acl` form.
    pub rule: String,
    /// The message.
    pub message: String,
}

/// One service in the audit.
#[derive(Debug, Clone, Serialize)]
pub struct AuditedService {
    /// The file.
    pub file: PathBuf,
    /// `creds` or `acl`.
    pub kind: &'static str,
    /// Hostname or name.
    pub name: String,
    /// User key (creds).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `exp` (creds; 0 never).
    pub expires: i64,
    /// `ok`, `expiring-soon`, `expired`, `never` or `n/a` (acl).
    pub expiry: &'static str,
    /// Trust-root grants.
    pub danger: Vec<String>,
    /// Wildcard grants.
    pub wildcards: Vec<String>,
    /// Grants outside the policy.
    pub violations: Vec<PolicyFinding>,
    /// Warnings (no policy file: trust-root and wildcard grants are warnings).
    pub warnings: Vec<PolicyFinding>,
}

/// Totals.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// Services audited.
    pub services: usize,
    /// Trust-root grants.
    pub danger: usize,
    /// Wildcard grants.
    pub wildcards: usize,
    /// Expired creds.
    pub expired: usize,
    /// Creds expiring soon.
    pub expiring_soon: usize,
    /// Policy violations.
    pub violations: usize,
    /// Unreadable files.
    pub errors: usize,
}

fn finding(v: &policy::Violation) -> PolicyFinding {
    PolicyFinding {
        code: v.code(),
        rule: v.rule().to_string(),
        message: v.to_string(),
    }
}

/// What every service is checked against.
struct Check<'a> {
    policy: Option<&'a Policy>,
    now: i64,
    soon: Duration,
}

fn audit_one(
    check: &Check<'_>,
    file: &Path,
    kind: &'static str,
    g: &ServiceGrants,
    user: &str,
    expires: i64,
) -> AuditedService {
    let (pol, now, soon) = (check.policy, check.now, check.soon);
    let expiry = match (kind, expires) {
        ("acl", _) => "n/a",
        (_, 0) => "never",
        (_, e) if now > e => "expired",
        (_, e) if e - now <= soon.as_secs() as i64 => "expiring-soon",
        _ => "ok",
    };
    let (mut violations, mut warnings) = (Vec::new(), Vec::new());
    if let Some(host) = &g.hostname {
        // The validator every signer runs: a grant it refuses (a SUB on
        // another host's requests, a PUB in another name…) is a finding
        // whoever signed it.
        if let Err(errors) = validate::validate(host, &g.rules) {
            violations.extend(errors.iter().map(|e| PolicyFinding {
                code: e.code(),
                rule: e.rule().to_string(),
                message: e.to_string(),
            }));
        }
        if kind == "creds" {
            check_queue_pinning(&mut violations, host, g);
        }
        match pol {
            Some(p) => {
                violations = policy::evaluate(p, host, &g.rules)
                    .iter()
                    .map(finding)
                    .collect()
            }
            None => {
                for f in policy::evaluate_without_policy(host, &g.rules) {
                    match f.severity {
                        Severity::Error => violations.push(finding(&f.violation)),
                        Severity::Warning => warnings.push(finding(&f.violation)),
                    }
                }
            }
        }
    }
    AuditedService {
        file: file.to_path_buf(),
        kind,
        name: g.name.clone(),
        user: user.to_string(),
        expires,
        expiry,
        danger: g
            .danger()
            .map(|l| format!("{} {}", l.verb, l.subject))
            .collect(),
        wildcards: g
            .wildcards()
            .map(|l| format!("{} {}", l.verb, l.subject))
            .collect(),
        violations,
        warnings,
    }
}

/// Every SUB entry of a user must be signed in exactly the forms
/// [`queue::sub_allow`] gives for its rules: pinned to the service's own
/// queue group where the runtime subscribes in one, plain where it
/// subscribes without. A plain entry where a pinned one belongs lets the
/// user join any queue group on those subjects (and take another service's
/// share of its events); a pin to another group joins that group.
fn check_queue_pinning(
    violations: &mut Vec<PolicyFinding>,
    host: &buswarden_rules::Hostname,
    g: &ServiceGrants,
) {
    use buswarden_rules::Verb;
    let plane = g.plane.as_deref().unwrap_or(PLANE_PLACEHOLDER);
    let fill = |e: &str| match e.strip_prefix(PLANE_PLACEHOLDER) {
        Some(rest) => format!("{plane}{rest}"),
        None => e.to_string(),
    };
    let expected: Vec<String> = queue::sub_allow(&queue::group(host), &g.rules)
        .iter()
        .map(|e| fill(e))
        .collect();
    for l in g.allow.iter().filter(|l| l.verb == Verb::Sub) {
        let entry = match &l.queue {
            Some(q) => format!("{} {q}", l.subject),
            None => l.subject.clone(),
        };
        if expected.contains(&entry) {
            continue;
        }
        let message = match &l.queue {
            Some(q) => format!(
                "SUB {} is pinned to the queue group {q:?}, but this service's group is {:?}: it would join another service's group; sign it again",
                l.subject,
                queue::group(host)
            ),
            None => format!(
                "SUB {} has no queue group pinned: the user may join any queue group on it (and take another service's share); sign it again",
                l.subject
            ),
        };
        violations.push(PolicyFinding {
            code: "queue-group-not-pinned",
            rule: format!("SUB {entry}"),
            message,
        });
    }
}

/// The `.creds` grants block is what `grep '\.danger\.'` reads; the JWT is
/// what the broker enforces. A block that lists other grants than the JWT
/// (edited, or stale) would make the grep audit lie: a violation.
fn check_grants_block(
    service: &mut AuditedService,
    claims: &buswarden_creds::UserClaims,
    block: &[(buswarden_rules::Verb, String)],
) {
    use buswarden_rules::Verb;
    let limits = &claims.nats.limits;
    let mut jwt: Vec<(Verb, &str)> = limits
        .publish
        .allow
        .iter()
        .map(|s| (Verb::Pub, s.as_str()))
        .chain(
            limits
                .subscribe
                .allow
                .iter()
                .map(|s| (Verb::Sub, s.as_str())),
        )
        .collect();
    let mut listed: Vec<(Verb, &str)> = block.iter().map(|(v, s)| (*v, s.as_str())).collect();
    jwt.sort();
    listed.sort();
    if block.is_empty() {
        service.warnings.push(PolicyFinding {
            code: "no-grants-block",
            rule: String::new(),
            message: format!(
                "{}: no readable grants block, so grep finds nothing in it; rely on `busop audit`",
                service.file.display()
            ),
        });
    } else if jwt != listed {
        let hidden: Vec<String> = jwt
            .iter()
            .filter(|g| !listed.contains(g))
            .map(|(v, s)| format!("{v} {s}"))
            .collect();
        service.violations.push(PolicyFinding {
            code: "grants-block-mismatch",
            rule: hidden.join(", "),
            message: format!(
                "{}: the readable grants block does not match the signed JWT (grep audits of this file are wrong); grants only in the JWT: {}",
                service.file.display(),
                if hidden.is_empty() { "none".to_string() } else { hidden.join(", ") }
            ),
        });
    }
}

/// Runs `busop audit`.
pub fn run(root: &Path, policy_file: Option<&Path>, soon: Duration) -> Result<Report> {
    let now = jwt::now();
    let policy_path = match policy_file {
        Some(p) => Some(p.to_path_buf()),
        None => Some(root.join("buswarden.toml")).filter(|p| root.is_dir() && p.is_file()),
    };
    let pol = match &policy_path {
        Some(p) => {
            let text = artifact::read_text(p)?;
            Some(Policy::parse(&text).map_err(|source| BusopError::Policy {
                path: p.clone(),
                source: Box::new(source),
            })?)
        }
        None => None,
    };
    let check = Check {
        policy: pol.as_ref(),
        now,
        soon,
    };
    let files = artifact::find_grant_files(root)?;
    let mut services = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match artifact::load(f) {
            Ok(l) => match &l.artifact {
                Artifact::Creds {
                    claims,
                    grants: block,
                    ..
                } => {
                    let g = grants::of_user(claims);
                    let mut s =
                        audit_one(&check, f, "creds", &g, &claims.data.sub, claims.data.exp);
                    check_grants_block(&mut s, claims, block);
                    services.push(s);
                }
                Artifact::Acl(acl) => {
                    let g = grants::of_acl(&acl.hostname, &acl.rules);
                    services.push(audit_one(&check, f, "acl", &g, "", 0));
                }
                Artifact::Jwt { .. } => errors.push(Unreadable {
                    file: f.clone(),
                    error: format!("{}: a bare JWT, not a .creds file", f.display()),
                }),
            },
            Err(e) => errors.push(Unreadable {
                file: f.clone(),
                error: e.to_string(),
            }),
        }
    }
    let summary = Summary {
        services: services.len(),
        danger: services.iter().map(|s| s.danger.len()).sum(),
        wildcards: services.iter().map(|s| s.wildcards.len()).sum(),
        expired: services.iter().filter(|s| s.expiry == "expired").count(),
        expiring_soon: services
            .iter()
            .filter(|s| s.expiry == "expiring-soon")
            .count(),
        violations: services.iter().map(|s| s.violations.len()).sum(),
        errors: errors.len(),
    };
    let mut h = String::new();
    let _ = writeln!(
        h,
        "audit of {} ({} service(s); policy: {})",
        root.display(),
        summary.services,
        policy_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none, conventions' defaults".into())
    );
    let mut quiet = Vec::new();
    for s in &services {
        let nothing = s.danger.is_empty()
            && s.wildcards.is_empty()
            && s.violations.is_empty()
            && s.warnings.is_empty()
            && matches!(s.expiry, "ok" | "n/a");
        if nothing {
            quiet.push(s.name.as_str());
            continue;
        }
        let exp = match s.expiry {
            "expired" => format!("EXPIRED {} ago", span(now - s.expires)),
            "expiring-soon" => {
                format!("expires in {} ({})", span(s.expires - now), time(s.expires))
            }
            "ok" => format!("expires {}", time(s.expires)),
            "never" => "NEVER expires".into(),
            _ => "nats.acl".into(),
        };
        let _ = writeln!(h, "\n{} ({}) — {exp}", s.name, s.file.display());
        for d in &s.danger {
            let _ = writeln!(h, "  danger    {d}");
        }
        for w in &s.wildcards {
            let _ = writeln!(h, "  wildcard  {w}");
        }
        for v in &s.violations {
            let _ = writeln!(h, "  VIOLATION [{}] {}", v.code, v.message);
        }
        for v in &s.warnings {
            let _ = writeln!(h, "  warning   [{}] {}", v.code, v.message);
        }
    }
    if !quiet.is_empty() {
        let _ = writeln!(
            h,
            "\nnothing to report for {} service(s): {}",
            quiet.len(),
            quiet.join(", ")
        );
    }
    let _ = writeln!(
        h,
        "\n{} trust-root grant(s), {} wildcard grant(s), {} expired, {} expiring soon, {} policy violation(s), {} unreadable file(s)",
        summary.danger,
        summary.wildcards,
        summary.expired,
        summary.expiring_soon,
        summary.violations,
        summary.errors
    );
    let _ = writeln!(
        h,
        "precise trust-root audit of these files: {GREP_DANGER} FILE… (a bare `grep danger` also matches hosts and paths containing the word)"
    );
    let mut report = Report::new(
        h,
        serde_json::json!({
            "root": root,
            "policy": policy_path,
            "services": services,
            "errors": errors,
            "summary": summary,
            "grep": GREP_DANGER,
            "grep_anchored": GREP_DANGER_ANCHORED,
        }),
    );
    for e in &errors {
        let _ = writeln!(report.stderr, "busop: {}", e.error);
    }
    report.exit = if !errors.is_empty() {
        EXIT_ERROR
    } else if summary.violations > 0 {
        EXIT_FINDINGS
    } else {
        0
    };
    Ok(report)
}
