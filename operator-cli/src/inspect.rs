//! `busop inspect FILE…`: `.creds` files and JWTs of any kind decoded —
//! claims, the chain verified when the issuing JWTs are among the files or
//! in the setup folder (`--dir`),
//! expiry and revocation status, permissions grouped by verb with
//! trust-root grants marked `danger`. A seed is never printed. A file that
//! is malformed, tampered with, truncated or not ours gets one clear line
//! naming it and what is wrong; the others are still shown (exit 2).

use crate::artifact::{self, Artifact, Loaded};
use crate::error::Result;
use crate::grants::{self, GrantLine, ServiceGrants};
use crate::report::{EXIT_ERROR, Report, span, time};
use buswarden_creds::claims::ClaimsData;
use buswarden_creds::jwt::{self, AnyClaims, JwtError};
use buswarden_creds::{AccountClaims, OperatorClaims, UserClaims};
use buswarden_rules::Verb;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Time status of a JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    /// Valid now and not expiring soon.
    Valid,
    /// Valid, expiring within `--soon`.
    ExpiringSoon,
    /// Past `exp`.
    Expired,
    /// Before `nbf`.
    NotYetValid,
}

/// The chain check of one JWT.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    /// `verified`, `partial` (issuer checked, its issuer not given), `unverified` (issuer not given) or `broken`.
    pub status: &'static str,
    /// The chain from this JWT up, one node each: `user U…`, `account APP A…`, `operator NAME O…`.
    pub path: Vec<String>,
    /// Why the chain is broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Grants of one verb.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerbGrants {
    /// Allowed subjects.
    pub allow: Vec<GrantLine>,
    /// Denied subjects.
    pub deny: Vec<GrantLine>,
}

/// One inspected file.
#[derive(Debug, Clone, Serialize)]
pub struct Inspected {
    /// The file.
    pub file: PathBuf,
    /// `user`, `account`, `operator` or `acl`.
    pub kind: &'static str,
    /// Whether it came from a `.creds` file.
    pub creds: bool,
    /// `sub` (or the hostname of a nats.acl).
    pub subject: String,
    /// `name`.
    pub name: String,
    /// `iss`.
    pub issuer: String,
    /// `issuer_account` of a user.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    /// `iat`.
    pub issued_at: i64,
    /// `exp` (0: never).
    pub expires: i64,
    /// Time status.
    pub validity: Validity,
    /// Revoked by its account (users, when the account is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
    /// Chain check.
    pub chain: Chain,
    /// Tags.
    pub tags: Vec<String>,
    /// Permissions by verb (users: own; accounts: default permissions).
    pub permissions: BTreeMap<&'static str, VerbGrants>,
    /// Trust-root grants (`PUB subject` lines).
    pub danger: Vec<String>,
    /// Signing keys (operators, accounts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    /// Revocations (accounts): user key -> unix time.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// System account (operators).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    /// Strict signing key usage (operators).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strict_signing_key_usage: bool,
}

/// A file that could not be inspected.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    /// The file.
    pub file: PathBuf,
    /// What is wrong (names the file).
    pub error: String,
}

fn validity(exp: i64, nbf: i64, now: i64, soon: Duration) -> Validity {
    let data = ClaimsData {
        exp,
        nbf,
        ..Default::default()
    };
    match jwt::validate_time(&data, now) {
        Err(JwtError::Expired { .. }) => Validity::Expired,
        Err(_) => Validity::NotYetValid,
        Ok(()) if exp > 0 && exp - now <= soon.as_secs() as i64 => Validity::ExpiringSoon,
        Ok(()) => Validity::Valid,
    }
}

fn by_verb(g: &ServiceGrants) -> BTreeMap<&'static str, VerbGrants> {
    let mut out: BTreeMap<&'static str, VerbGrants> = BTreeMap::new();
    for (list, is_allow) in [(&g.allow, true), (&g.deny, false)] {
        for l in list {
            let e = out.entry(l.verb.as_str()).or_default();
            if is_allow {
                e.allow.push(l.clone());
            } else {
                e.deny.push(l.clone());
            }
        }
    }
    out
}

fn user_chain(
    u: &UserClaims,
    accounts: &BTreeMap<String, AccountClaims>,
    operators: &BTreeMap<String, OperatorClaims>,
) -> (Chain, Option<bool>) {
    let acc_key = if u.nats.issuer_account.is_empty() {
        &u.data.iss
    } else {
        &u.nats.issuer_account
    };
    let Some(acc) = accounts.get(acc_key) else {
        return (
            Chain {
                status: "unverified",
                path: vec![format!(
                    "user -> account {acc_key} (give its JWT to verify)"
                )],
                error: None,
            },
            None,
        );
    };
    let mut path = vec![format!(
        "user -> account {} {}",
        acc.data.name, acc.data.sub
    )];
    match jwt::verify_user(u, acc) {
        Err(JwtError::Revoked { .. }) => {}
        Err(e) => {
            path.push(format!("account {} {}", acc.data.name, acc.data.sub));
            return (
                Chain {
                    status: "broken",
                    path,
                    error: Some(e.to_string()),
                },
                None,
            );
        }
        Ok(()) => {}
    }
    let revoked = acc
        .nats
        .revocation_for(&u.data.sub)
        .is_some_and(|at| at >= u.data.iat);
    let (mut chain, _) = account_chain(acc, operators);
    path.extend(
        chain
            .path
            .drain(..)
            .map(|p| p.replace("account ->", "  account ->")),
    );
    chain.path = path;
    if chain.status == "unverified" {
        chain.status = "partial";
    }
    (chain, Some(revoked))
}

fn account_chain(
    a: &AccountClaims,
    operators: &BTreeMap<String, OperatorClaims>,
) -> (Chain, Option<bool>) {
    // When operator JWTs were given but none issued this account, check
    // against the first so the report says why the chain is broken.
    let op = operators
        .values()
        .find(|o| o.data.sub == a.data.iss || o.nats.signing_keys.contains(&a.data.iss))
        .or_else(|| operators.values().next());
    match op {
        None => (
            Chain {
                status: "unverified",
                path: vec![format!(
                    "account -> operator key {} (give operator.jwt to verify)",
                    a.data.iss
                )],
                error: None,
            },
            None,
        ),
        Some(o) => {
            let path = vec![format!(
                "account -> operator {} {}",
                o.data.name, o.data.sub
            )];
            match jwt::verify_account(a, o) {
                Ok(()) => (
                    Chain {
                        status: "verified",
                        path,
                        error: None,
                    },
                    None,
                ),
                Err(e) => (
                    Chain {
                        status: "broken",
                        path,
                        error: Some(e.to_string()),
                    },
                    None,
                ),
            }
        }
    }
}

impl Inspected {
    /// The fields every JWT has; kind-specific ones are filled in after.
    fn of_claims(
        file: &std::path::Path,
        kind: &'static str,
        data: &ClaimsData,
        chain: Chain,
        now: i64,
        soon: Duration,
    ) -> Inspected {
        Inspected {
            file: file.to_path_buf(),
            kind,
            creds: false,
            subject: data.sub.clone(),
            name: data.name.clone(),
            issuer: data.iss.clone(),
            issuer_account: String::new(),
            issued_at: data.iat,
            expires: data.exp,
            validity: validity(data.exp, data.nbf, now, soon),
            revoked: None,
            chain,
            tags: Vec::new(),
            permissions: BTreeMap::new(),
            danger: Vec::new(),
            signing_keys: Vec::new(),
            revocations: BTreeMap::new(),
            system_account: String::new(),
            strict_signing_key_usage: false,
        }
    }

    fn with_grants(mut self, g: &ServiceGrants) -> Inspected {
        self.permissions = by_verb(g);
        self.danger = g
            .danger()
            .map(|d| format!("{} {}", d.verb, d.subject))
            .collect();
        self
    }
}

/// Inspects the loaded files.
///
/// `issuers` are JWTs that only serve to verify chains and revocation (the
/// setup's operator and accounts); they are not shown themselves.
pub fn inspect(loaded: &[Loaded], issuers: &[Loaded], now: i64, soon: Duration) -> Vec<Inspected> {
    let mut accounts = BTreeMap::new();
    let mut operators = BTreeMap::new();
    for l in issuers.iter().chain(loaded) {
        if let Artifact::Jwt { claims, .. } = &l.artifact {
            match claims.as_ref() {
                AnyClaims::Account(a) => {
                    accounts.insert(a.data.sub.clone(), a.clone());
                }
                AnyClaims::Operator(o) => {
                    operators.insert(o.data.sub.clone(), o.clone());
                }
                AnyClaims::User(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    for l in loaded {
        let user = |u: &UserClaims, creds: bool| {
            let (chain, revoked) = user_chain(u, &accounts, &operators);
            let mut i = Inspected::of_claims(&l.path, "user", &u.data, chain, now, soon)
                .with_grants(&grants::of_user(u));
            i.creds = creds;
            i.revoked = revoked;
            i.issuer_account = u.nats.issuer_account.clone();
            i.tags = u.nats.generic.tags.clone();
            i
        };
        let item = match &l.artifact {
            Artifact::Creds { claims, .. } => user(claims, true),
            Artifact::Jwt { claims, .. } => match claims.as_ref() {
                AnyClaims::User(u) => user(u, false),
                AnyClaims::Account(a) => {
                    let (chain, _) = account_chain(a, &operators);
                    let mut i = Inspected::of_claims(&l.path, "account", &a.data, chain, now, soon)
                        .with_grants(&defaults_as_grants(a));
                    i.tags = a.nats.generic.tags.clone();
                    i.signing_keys = a.nats.signing_keys.0.keys().cloned().collect();
                    i.revocations = a.nats.revocations.clone();
                    i
                }
                AnyClaims::Operator(o) => {
                    let chain = Chain {
                        status: "verified",
                        path: vec![format!(
                            "operator {} {} (self-signed)",
                            o.data.name, o.data.sub
                        )],
                        error: None,
                    };
                    let mut i =
                        Inspected::of_claims(&l.path, "operator", &o.data, chain, now, soon);
                    i.tags = o.nats.generic.tags.clone();
                    i.signing_keys = o.nats.signing_keys.clone();
                    i.system_account = o.nats.system_account.clone();
                    i.strict_signing_key_usage = o.nats.strict_signing_key_usage;
                    i
                }
            },
            Artifact::Acl(acl) => {
                let chain = Chain {
                    status: "unverified",
                    path: vec!["nats.acl (not signed: nothing to verify)".into()],
                    error: None,
                };
                let data = ClaimsData {
                    sub: acl.hostname.to_string(),
                    name: acl.hostname.to_string(),
                    ..Default::default()
                };
                Inspected::of_claims(&l.path, "acl", &data, chain, now, soon)
                    .with_grants(&grants::of_acl(&acl.hostname, &acl.rules))
            }
        };
        out.push(item);
    }
    out
}

fn defaults_as_grants(a: &AccountClaims) -> ServiceGrants {
    let mut u = UserClaims::new_user(a.data.sub.clone());
    u.nats.limits.publish = a.nats.default_permissions.publish.clone();
    u.nats.limits.subscribe = a.nats.default_permissions.subscribe.clone();
    grants::of_user(&u)
}

fn marker(l: &GrantLine) -> &'static str {
    if l.danger {
        "danger  "
    } else if l.wildcard {
        "wildcard"
    } else {
        "        "
    }
}

/// Human text for one item.
pub fn describe(out: &mut String, i: &Inspected, now: i64) {
    let what = if i.creds { "user (.creds)" } else { i.kind };
    let _ = writeln!(
        out,
        "{}: {what} {:?} {}",
        i.file.display(),
        i.name,
        i.subject
    );
    if !i.issuer.is_empty() {
        let via = if i.issuer_account.is_empty() || i.issuer_account == i.issuer {
            String::new()
        } else {
            format!(" (signing key of account {})", i.issuer_account)
        };
        let _ = writeln!(out, "  issuer      {}{via}", i.issuer);
    }
    if i.issued_at > 0 {
        let _ = writeln!(out, "  issued      {}", time(i.issued_at));
    }
    if i.kind != "acl" {
        let exp = match (i.expires, i.validity) {
            (0, _) => "never".to_string(),
            (e, Validity::Expired) => format!("{} (EXPIRED {} ago)", time(e), span(now - e)),
            (e, Validity::ExpiringSoon) => {
                format!("{} (in {}: expiring soon)", time(e), span(e - now))
            }
            (e, _) => format!("{} (in {})", time(e), span(e - now)),
        };
        let _ = writeln!(out, "  expires     {exp}");
    }
    match i.revoked {
        Some(true) => {
            let _ = writeln!(out, "  revocation  REVOKED by its account");
        }
        Some(false) => {
            let _ = writeln!(out, "  revocation  not revoked");
        }
        None => {}
    }
    let _ = writeln!(
        out,
        "  chain       {}: {}",
        i.chain.status,
        i.chain.path.join("; ")
    );
    if let Some(e) = &i.chain.error {
        let _ = writeln!(out, "              {e}");
    }
    if !i.tags.is_empty() {
        let _ = writeln!(out, "  tags        {}", i.tags.join(", "));
    }
    if !i.system_account.is_empty() {
        let _ = writeln!(out, "  system      {}", i.system_account);
    }
    if i.strict_signing_key_usage {
        let _ = writeln!(out, "  strict signing key usage: on");
    }
    for k in &i.signing_keys {
        let _ = writeln!(out, "  signing key {k}");
    }
    if !i.revocations.is_empty() {
        let _ = writeln!(out, "  revocations {}", i.revocations.len());
        for (k, at) in &i.revocations {
            let _ = writeln!(out, "    {k} at {}", time(*at));
        }
    }
    let label = if i.kind == "account" {
        " (default permissions)"
    } else {
        ""
    };
    for verb in [Verb::Pub, Verb::Sub] {
        let Some(v) = i.permissions.get(verb.as_str()) else {
            continue;
        };
        for (list, name) in [(&v.allow, "allow"), (&v.deny, "deny")] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(out, "  {verb} {name} ({}){label}", list.len());
            let mut sorted: Vec<&GrantLine> = list.iter().collect();
            sorted.sort_by_key(|l| (!l.danger, !l.wildcard, l.subject.clone()));
            for l in sorted {
                match &l.queue {
                    Some(q) => {
                        let _ = writeln!(out, "    {} {} (queue group {q})", marker(l), l.subject);
                    }
                    None => {
                        let _ = writeln!(out, "    {} {}", marker(l), l.subject);
                    }
                }
            }
        }
    }
    if i.kind == "user" && !i.permissions.values().any(|v| !v.allow.is_empty()) {
        let _ = writeln!(
            out,
            "  no permissions of its own: the account's default permissions apply"
        );
    }
}

/// The operator and account JWTs of the setup in `dir`, if there is one:
/// `inspect` verifies against them without being told.
pub fn setup_issuers(dir: &std::path::Path) -> Vec<Loaded> {
    let Ok(setup) = crate::setup::Setup::open(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut paths = vec![setup.operator_path()];
    if let Ok(accounts) = setup.accounts() {
        paths.extend(accounts.into_iter().map(|a| a.path));
    }
    for p in paths {
        if let Ok(l) = artifact::load(&p) {
            out.push(l);
        }
    }
    out
}

/// Runs `busop inspect`; `issuers` as in [`inspect`].
pub fn run(files: &[PathBuf], issuers: &[Loaded], soon: Duration) -> Result<Report> {
    let now = jwt::now();
    let mut loaded = Vec::new();
    let mut unreadable = Vec::new();
    for f in files {
        match artifact::load(f) {
            Ok(l) => loaded.push(l),
            Err(e) => unreadable.push(Unreadable {
                file: f.clone(),
                error: e.to_string(),
            }),
        }
    }
    let items = inspect(&loaded, issuers, now, soon);
    let mut h = String::new();
    for i in &items {
        describe(&mut h, i, now);
        h.push('\n');
    }
    let mut report = Report::new(
        h,
        serde_json::json!({ "files": items, "errors": unreadable }),
    );
    for u in &unreadable {
        let _ = writeln!(report.stderr, "busop: {}", u.error);
    }
    if !unreadable.is_empty() {
        report.exit = EXIT_ERROR;
    }
    Ok(report)
}
