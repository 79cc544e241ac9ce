//! `busop why`: "why was this denied?". Takes a permissions-violation line
//! as nats-server logs it (`… - "<user>" - Publish Violation - Subject
//! "<subject>"`, or `Subscription Violation - Subject "…", Queue: "…"`;
//! older servers add `User "…"`), or a subject and a user public key, and
//! the `.creds`/`nats.acl` files of the deploy, and answers: which service
//! and deploy the user is, whether any rule of its signed credentials
//! covers the subject, the nearest rule, the endpoint and its owner, and,
//! with the reachability model (`gencreds graph --format json`), whether
//! its code has a call site for it: `no call site in code`, or `call site
//! at file:line, nats.acl stale`.

use crate::artifact::{self, Artifact};
use crate::error::{BusopError, Result};
use crate::report::Report;
use buswarden_creds::UserClaims;
use buswarden_rules::reach::{EdgeKind, Model};
use buswarden_rules::rule::PLANE_PLACEHOLDER;
use buswarden_rules::{Rule, RuleSet, Verb, pattern};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What the server refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// `publish` or `subscribe`.
    pub kind: &'static str,
    /// The subject.
    pub subject: String,
    /// The queue group of a refused subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The user's public key (`U…`), when the line names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How the server named the client (`"$G/user:a"`, `"U…"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

fn is_user_key(s: &str) -> bool {
    s.len() == 56
        && s.starts_with('U')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn quoted_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let i = text.find(key)? + key.len();
    let rest = &text[i..];
    let j = rest.find('"')?;
    Some(&rest[..j])
}

/// Parses a violation line as nats-server 2.x logs it.
pub fn parse_line(line: &str) -> Result<Violation> {
    let line = line.trim();
    let bad = |why: &str| {
        BusopError::Usage(format!(
            "not a permissions violation line ({why}); expected what nats-server logs, e.g. `[ERR] 127.0.0.1:5000 - cid:5 - \"v1\" - \"U…\" - Publish Violation - Subject \"a.b\"`, or pass --subject and --user"
        ))
    };
    let (kind, marker) = if let Some(i) = line.find("Publish Violation") {
        ("publish", i)
    } else if let Some(i) = line.find("Subscription Violation") {
        ("subscribe", i)
    } else {
        return Err(bad("no `Publish Violation` or `Subscription Violation`"));
    };
    let (head, tail) = line.split_at(marker);
    let subject = quoted_after(tail, "Subject \"")
        .ok_or_else(|| bad("no `Subject \"…\"` after the violation"))?;
    if subject.is_empty() || subject.contains(char::is_whitespace) {
        return Err(bad("the subject is empty or has spaces"));
    }
    let queue = quoted_after(tail, "Queue: \"").map(str::to_string);
    // The client as the server names it: the last quoted field before the
    // violation (`- "<name>" - Publish Violation`).
    let client = head
        .trim_end()
        .trim_end_matches('-')
        .trim_end()
        .strip_suffix('"')
        .and_then(|h| h.rfind('"').map(|i| h[i + 1..].to_string()));
    let user = quoted_after(tail, "User \"")
        .filter(|u| is_user_key(u))
        .map(str::to_string)
        .or_else(|| {
            client.as_deref().and_then(|c| {
                c.split(['/', ' ', ':'])
                    .find(|t| is_user_key(t))
                    .map(str::to_string)
            })
        });
    Ok(Violation {
        kind,
        subject: subject.to_string(),
        queue,
        user,
        client,
    })
}

/// A signed user: from a `.creds` file, or from the account server's
/// audit log (the rules it signed the user with).
struct Signed {
    /// The `.creds` file, or `account server <url>`.
    source: String,
    user_key: String,
    hostname: String,
    deploy: Option<String>,
    /// Allow entries with the plane filled in (`None`: `{{plane}}` form,
    /// filled from the refused subject).
    pub_allow: Vec<String>,
    sub_allow: Vec<String>,
    placeholder: bool,
}

impl Signed {
    fn of_creds(file: &Path, claims: &UserClaims) -> Signed {
        let l = &claims.nats.limits;
        Signed {
            source: file.display().to_string(),
            user_key: claims.data.sub.clone(),
            hostname: claims.data.name.clone(),
            deploy: deploy_of(claims),
            pub_allow: l.publish.allow.clone(),
            sub_allow: l.subscribe.allow.clone(),
            placeholder: false,
        }
    }

    /// The allow entries of `verb`, for a subject on `plane`.
    fn allow(&self, verb: Verb, plane: &str) -> Vec<String> {
        let list = if verb == Verb::Pub {
            &self.pub_allow
        } else {
            &self.sub_allow
        };
        list.iter()
            // A pinned SUB entry is `<subject> <queue>`.
            .map(|e| e.split_once(' ').map_or(e.as_str(), |(s, _)| s))
            .map(|e| {
                if self.placeholder {
                    match e.split_once('.') {
                        Some((PLANE_PLACEHOLDER, rest)) => format!("{plane}.{rest}"),
                        _ => e.to_string(),
                    }
                } else {
                    e.to_string()
                }
            })
            .collect()
    }
}

/// The grant files of a deploy.
#[derive(Default)]
pub struct Grants {
    users: Vec<Signed>,
    acls: Vec<(PathBuf, String, RuleSet)>,
}

pub(crate) fn load_grants(paths: &[PathBuf]) -> Result<Grants> {
    let mut g = Grants::default();
    for root in paths {
        for f in artifact::find_grant_files(root)? {
            match artifact::load(&f)?.artifact {
                Artifact::Creds { claims, .. } => g.users.push(Signed::of_creds(&f, &claims)),
                Artifact::Acl(acl) => g.acls.push((f, acl.hostname.to_string(), acl.rules)),
                Artifact::Jwt { .. } => {}
            }
        }
    }
    Ok(g)
}

/// The users the account server signed (and renewed), from its audit log
/// (`sign` and `renew` entries carry each user's hostname and rules), read
/// with busop's request key; the latest entry of a user wins.
fn account_server_users(dir: &Path) -> Result<Vec<Signed>> {
    let setup = crate::setup::Setup::open(dir)?;
    let cfg = setup.file.account_server.clone().ok_or_else(|| {
        BusopError::Usage(format!(
            "{}: no account server configured (busop account-server URL)",
            dir.display()
        ))
    })?;
    let key = setup.key(&cfg.key, "account server request key")?;
    let rt = crate::sys::runtime()?;
    let mut users: std::collections::BTreeMap<String, Signed> = Default::default();
    let mut since = 0u64;
    let mut last_seq = None;
    loop {
        let page = rt.block_on(crate::account_server::call(
            &cfg,
            &key,
            "GET",
            &format!("/v1/audit?since={since}&limit=10000"),
            None,
        ))?;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        for e in &entries {
            if !matches!(e["action"].as_str(), Some("sign" | "renew")) {
                continue;
            }
            for g in e["grants"].as_array().into_iter().flatten() {
                let (Some(user), Some(host)) = (g["user_key"].as_str(), g["hostname"].as_str())
                else {
                    continue;
                };
                let (mut pubs, mut subs) = (vec![], vec![]);
                for r in g["rules"].as_array().into_iter().flatten() {
                    if let Some(rule) = r.as_str().and_then(|r| Rule::parse(r).ok()) {
                        match rule.verb {
                            Verb::Pub => pubs.push(rule.subject),
                            Verb::Sub => subs.push(rule.subject),
                        }
                    }
                }
                users.insert(
                    user.to_string(),
                    Signed {
                        source: format!("account server {}", cfg.url),
                        user_key: user.to_string(),
                        hostname: host.to_string(),
                        deploy: e["deploy"].as_str().map(str::to_string),
                        pub_allow: pubs,
                        sub_allow: subs,
                        placeholder: true,
                    },
                );
            }
        }
        let last = entries.last();
        let seq = last.and_then(|e| e["seq"].as_u64());
        if entries.len() < 10000 || seq == last_seq {
            break;
        }
        last_seq = seq;
        since = last.and_then(|e| e["at"].as_u64()).unwrap_or(since);
    }
    Ok(users.into_values().collect())
}

/// The nearest rule: the most leading tokens that match.
#[derive(Debug, Clone, Serialize)]
pub struct Nearest {
    /// The rule (an allow entry as signed, or a `nats.acl` line).
    pub rule: String,
    /// Leading tokens it matches.
    pub matched_tokens: usize,
    /// The first token that differs: (index from 1, rule token, subject token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differs_at: Option<(usize, String, String)>,
}

fn leading_match(rule: &str, subject: &str) -> (usize, Option<(usize, String, String)>) {
    let r: Vec<&str> = rule.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    let mut n = 0;
    for (i, st) in s.iter().enumerate() {
        match r.get(i) {
            Some(&">") => return (s.len(), None),
            Some(&"*") => n += 1,
            Some(t) if t == st => n += 1,
            Some(t) => return (n, Some((i + 1, t.to_string(), st.to_string()))),
            None => return (n, Some((i + 1, "(end)".into(), st.to_string()))),
        }
    }
    if r.len() > s.len() {
        return (
            n,
            Some((s.len() + 1, r[s.len()].to_string(), "(end)".into())),
        );
    }
    (n, None)
}

fn nearest<'a>(rules: impl Iterator<Item = &'a str>, subject: &str) -> Option<Nearest> {
    let mut best: Option<Nearest> = None;
    for r in rules {
        let (n, d) = leading_match(r, subject);
        if best.as_ref().is_none_or(|b| n > b.matched_tokens) {
            best = Some(Nearest {
                rule: r.to_string(),
                matched_tokens: n,
                differs_at: d,
            });
        }
    }
    best
}

/// The endpoint a request subject is addressed to.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// `METHOD host:port/path`.
    pub text: String,
    /// The destination service.
    pub owner: String,
    /// The endpoint id in the model, when one matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

fn route_matches(route: &str, path: &[&str]) -> bool {
    let segs: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    for (i, seg) in segs.iter().enumerate() {
        if seg.starts_with('{') && seg.ends_with("...}") {
            return path.len() > i;
        }
        let Some(p) = path.get(i) else { return false };
        if !(seg.starts_with('{') && seg.ends_with('}')) && seg != p {
            return false;
        }
    }
    segs.len() == path.len()
}

fn target_of(subject: &str, model: Option<&Model>) -> Option<Target> {
    let t: Vec<&str> = subject.split('.').collect();
    if t.len() < 8 || t[1] == "reply" {
        return None;
    }
    let owner = buswarden_rules::hostname::unflatten(t[4]).unwrap_or_else(|| t[4].to_string());
    let port: u16 = t[2].parse().ok()?;
    let path: Vec<&str> = t[7..].to_vec();
    let endpoint = model.and_then(|m| {
        m.endpoints
            .iter()
            .find(|e| {
                e.host == owner
                    && e.port == port
                    && (e.method == t[6] || e.method == "ANY")
                    && route_matches(&e.route, &path)
            })
            .map(|e| e.id.clone())
    });
    Some(Target {
        text: format!("{} {owner}:{port}/{}", t[6], path.join("/")),
        owner,
        endpoint,
    })
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// What was refused.
    pub violation: Violation,
    /// The service the user is.
    pub service: Option<String>,
    /// Its deploy (`deploy:<id>` tag).
    pub deploy: Option<String>,
    /// Where the user was found: its `.creds` file, or `account server <url>`.
    pub creds: Option<String>,
    /// The signed allow entry that covers the subject (then something else refused it).
    pub covered_by: Option<String>,
    /// The nearest signed allow entry (or `nats.acl` rule without creds).
    pub nearest: Option<Nearest>,
    /// The committed `nats.acl` of the service, when found.
    pub acl: Option<String>,
    /// Whether the committed `nats.acl` grants it.
    pub acl_covers: Option<bool>,
    /// The endpoint addressed.
    pub target: Option<Target>,
    /// The code's call sites for it (`file:line`), from the model.
    pub call_sites: Vec<String>,
    /// One line: `no call site in code`, `call site at file:line, nats.acl stale`, …
    pub verdict: String,
}

/// What `why` is given.
pub struct WhyInput<'a> {
    /// A log line (or `None` with subject and user).
    pub line: Option<&'a str>,
    /// The subject, without a line.
    pub subject: Option<&'a str>,
    /// The user public key, without a line or to override it.
    pub user: Option<&'a str>,
    /// The service, when the user is in no creds file.
    pub service: Option<&'a str>,
    /// A subscription (with `subject`).
    pub subscribe: bool,
    /// `.creds` / `nats.acl` files or folders.
    pub grants: &'a [PathBuf],
    /// The reachability model.
    pub model: Option<&'a Path>,
    /// The busop setup whose account server is asked for signed users.
    pub account_server: Option<&'a Path>,
}

fn deploy_of(c: &UserClaims) -> Option<String> {
    c.nats
        .generic
        .tags
        .iter()
        .find_map(|t| t.strip_prefix("deploy:").map(str::to_string))
}

/// Answers one violation.
pub fn answer(
    v: Violation,
    grants: &Grants,
    model: Option<&Model>,
    service: Option<&str>,
) -> Answer {
    let verb = if v.kind == "publish" {
        Verb::Pub
    } else {
        Verb::Sub
    };
    let signed = v
        .user
        .as_deref()
        .and_then(|u| grants.users.iter().rev().find(|s| s.user_key == u));
    let host = signed
        .map(|s| s.hostname.clone())
        .or_else(|| service.map(str::to_string));
    let plane = v.subject.split('.').next().unwrap_or("");
    let (covered_by, nearest_signed) = match signed {
        Some(s) => {
            let allow = s.allow(verb, plane);
            let covered = allow
                .iter()
                .find(|e| pattern::matches(e, &v.subject))
                .cloned();
            (
                covered,
                nearest(allow.iter().map(String::as_str), &v.subject),
            )
        }
        None => (None, None),
    };
    // The subject in nats.acl form, for the committed rules and the model.
    let placeholder = match v.subject.split_once('.') {
        Some((_, rest)) => format!("{PLANE_PLACEHOLDER}.{rest}"),
        None => v.subject.clone(),
    };
    let acl = host
        .as_deref()
        .and_then(|h| grants.acls.iter().find(|(_, name, _)| name == h));
    let acl_covers = acl.map(|(_, _, rules)| rules.allows(verb, &placeholder));
    let nearest = nearest_signed.or_else(|| {
        acl.and_then(|(_, _, rules)| {
            let subjects: Vec<&str> = rules.of(verb).map(|r| r.subject.as_str()).collect();
            nearest(subjects.into_iter(), &placeholder)
        })
    });
    let call_sites: Vec<String> = match (model, host.as_deref()) {
        (Some(m), Some(h)) if verb == Verb::Pub => {
            let mut sites: Vec<String> = m
                .edges
                .iter()
                .filter(|e| e.from == h && e.kind != EdgeKind::Internet)
                .filter(|e| {
                    e.rule
                        .as_deref()
                        .and_then(|r| Rule::parse(r).ok())
                        .is_some_and(|r| pattern::matches(&r.subject, &placeholder))
                })
                .flat_map(|e| e.sites.iter().map(|s| s.location()))
                .collect();
            sites.sort();
            sites.dedup();
            sites
        }
        _ => vec![],
    };
    let verdict = if host.is_none() {
        "unknown user: no .creds file among the grants (nor the account server) names this user key (pass the deploy's creds folder, --account-server, or --service)".to_string()
    } else if let Some(c) = &covered_by {
        format!(
            "allowed by the signed creds ({c}): another user or a deny rule refused it; check which creds the client runs with"
        )
    } else if model.is_none() {
        "call sites unknown: pass --model (gencreds graph --format json) to see whether the code calls it".to_string()
    } else if verb == Verb::Sub {
        let hooked = model.zip(host.as_deref()).is_some_and(|(m, h)| {
            m.hooks.iter().any(|k| {
                k.service == h
                    && Rule::parse(&k.rule)
                        .is_ok_and(|r| pattern::matches(&r.subject, &placeholder))
            })
        });
        if !hooked {
            "no hook in code subscribes to it".to_string()
        } else if acl_covers == Some(true) {
            "the code hooks it and nats.acl has it, creds stale: sign the deploy again".to_string()
        } else {
            "the code hooks it, nats.acl stale: run `gencreds scan`, review and commit the nats.acl, then sign again".to_string()
        }
    } else if call_sites.is_empty() {
        "no call site in code".to_string()
    } else if acl_covers == Some(true) {
        format!(
            "call site at {}, nats.acl has it, creds stale: sign the deploy again",
            call_sites[0]
        )
    } else {
        format!(
            "call site at {}, nats.acl stale: run `gencreds scan`, review and commit the nats.acl, then sign again",
            call_sites[0]
        )
    };
    Answer {
        target: target_of(&v.subject, model),
        service: host,
        deploy: signed.and_then(|s| s.deploy.clone()),
        creds: signed.map(|s| s.source.clone()),
        covered_by,
        nearest,
        acl: acl.map(|(p, _, _)| p.display().to_string()),
        acl_covers,
        call_sites,
        verdict,
        violation: v,
    }
}

fn human(a: &Answer) -> String {
    let mut h = String::new();
    let v = &a.violation;
    let kind = if v.kind == "publish" {
        "Publish Violation"
    } else {
        "Subscription Violation"
    };
    let _ = writeln!(h, "{kind}: {}", v.subject);
    let user = v
        .user
        .as_deref()
        .or(v.client.as_deref())
        .unwrap_or("(not named)");
    match (&a.service, &a.deploy) {
        (Some(s), Some(d)) => {
            let _ = writeln!(h, "  user      {user} = {s}, deploy {d}");
        }
        (Some(s), None) => {
            let _ = writeln!(h, "  user      {user} = {s}");
        }
        _ => {
            let _ = writeln!(h, "  user      {user} (not found in the grant files)");
        }
    }
    if let Some(c) = &a.creds {
        let _ = writeln!(h, "  creds     {c}");
    }
    if let Some(t) = &a.target {
        let ep = t
            .endpoint
            .as_deref()
            .map(|e| format!(", endpoint {e}"))
            .unwrap_or_default();
        let _ = writeln!(h, "  target    {} (owner {}{ep})", t.text, t.owner);
    }
    match &a.covered_by {
        Some(c) => {
            let _ = writeln!(h, "  covered   yes, by {c}");
        }
        None => {
            let _ = writeln!(h, "  covered   no rule of its credentials covers it");
        }
    }
    if let Some(n) = &a.nearest {
        let diff = n
            .differs_at
            .as_ref()
            .map(|(i, r, s)| format!("; differs at token {i}: rule `{r}`, subject `{s}`"))
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "  nearest   {} (matches {} leading tokens{diff})",
            n.rule, n.matched_tokens
        );
    }
    if let (Some(f), Some(c)) = (&a.acl, a.acl_covers) {
        let _ = writeln!(
            h,
            "  nats.acl  {f} {}",
            if c { "grants it" } else { "does not grant it" }
        );
    }
    let _ = writeln!(h, "  verdict   {}", a.verdict);
    h
}

/// Runs `busop why`.
pub fn run(input: &WhyInput<'_>) -> Result<Report> {
    let mut violations = vec![];
    match (input.line, input.subject) {
        (Some("-"), None) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(BusopError::io("reading", "standard input"))?;
            for l in text.lines().filter(|l| l.contains(" Violation")) {
                violations.push(parse_line(l)?);
            }
            if violations.is_empty() {
                return Err(BusopError::Usage(
                    "no `Publish Violation` or `Subscription Violation` line on standard input"
                        .into(),
                ));
            }
        }
        (Some(line), None) => violations.push(parse_line(line)?),
        (None, Some(subject)) => {
            if subject.is_empty()
                || subject.contains(char::is_whitespace)
                || !pattern::is_valid(subject)
                || subject.contains(['*', '>'])
            {
                return Err(BusopError::Usage(format!(
                    "--subject {subject:?} is not a subject (tokens separated by dots, no spaces or wildcards)"
                )));
            }
            violations.push(Violation {
                kind: if input.subscribe {
                    "subscribe"
                } else {
                    "publish"
                },
                subject: subject.to_string(),
                queue: None,
                user: None,
                client: None,
            })
        }
        (Some(_), Some(_)) => {
            return Err(BusopError::Usage(
                "give a log line or --subject, not both".into(),
            ));
        }
        (None, None) => {
            return Err(BusopError::Usage(
                "give a nats-server log line (or `-` for standard input), or --subject and --user"
                    .into(),
            ));
        }
    }
    if let Some(u) = input.user {
        if !is_user_key(u) {
            return Err(BusopError::Usage(format!(
                "--user {u:?} is not a user public key (56 characters starting with U)"
            )));
        }
        for v in &mut violations {
            v.user = Some(u.to_string());
        }
    }
    if input.grants.is_empty() && input.account_server.is_none() {
        return Err(BusopError::Usage(
            "pass the deploy's .creds (and nats.acl) folder with --grants, or --account-server"
                .into(),
        ));
    }
    let mut grants = load_grants(input.grants)?;
    if let Some(dir) = input.account_server {
        grants.users.extend(account_server_users(dir)?);
    }
    let model = match input.model {
        Some(p) => Some(crate::diff::read_model(&p.display().to_string())?),
        None => None,
    };
    let answers: Vec<Answer> = violations
        .into_iter()
        .map(|v| answer(v, &grants, model.as_ref(), input.service))
        .collect();
    let text: Vec<String> = answers.iter().map(human).collect();
    let json = if answers.len() == 1 {
        serde_json::to_value(&answers[0])
    } else {
        serde_json::to_value(&answers)
    }
    .unwrap_or_default();
    Ok(Report::new(text.join("\n"), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";

    #[test]
    fn lines_as_nats_server_2_15_prints_them() {
        let l = format!(
            "[20716] 2026/12/05 07:17:17.387463 [ERR] 127.0.0.1:55482 - cid:5 - \"v2.16.0:python3\" - \"{U}\" - Publish Violation - Subject \"a.b.c\""
        );
        let v = parse_line(&l).unwrap();
        assert_eq!(v.kind, "publish");
        assert_eq!(v.subject, "a.b.c");
        assert_eq!(v.user.as_deref(), Some(U));
        let l = "[1] [ERR] 127.0.0.1:1 - cid:5 - \"v\" - \"$G/user:a\" - Subscription Violation - Subject \"bad.sub\", Queue: \"q1\", SID 1";
        let v = parse_line(l).unwrap();
        assert_eq!(v.kind, "subscribe");
        assert_eq!(v.queue.as_deref(), Some("q1"));
        assert_eq!(v.user, None);
        assert_eq!(v.client.as_deref(), Some("$G/user:a"));
        let old = format!("[ERR] x - Publish Violation - User \"{U}\", Subject \"x.y\"");
        assert_eq!(parse_line(&old).unwrap().user.as_deref(), Some(U));
        for bad in [
            "",
            "hello",
            "Publish Violation",
            "Publish Violation - Subject \"",
            "Publish Violation - Subject \"a b\"",
            "Publish Violation - Subject \"\"",
            "\u{0}\u{ffff} Subscription Violation Subject",
        ] {
            assert!(
                matches!(parse_line(bad), Err(BusopError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_nearest_rule_matches_the_most_leading_tokens() {
        let n = nearest(
            [
                "m.safe.443.a.b.*.GET.x",
                "m.safe.443.a.c.*.POST.y",
                "m.reply._.a.>",
            ]
            .into_iter(),
            "m.safe.443.a.c.0.GET.y",
        )
        .unwrap();
        assert_eq!(n.rule, "m.safe.443.a.c.*.POST.y");
        assert_eq!(n.matched_tokens, 6);
        assert_eq!(n.differs_at, Some((7, "POST".into(), "GET".into())));
        assert!(route_matches("/items/{id}", &["items", "4"]));
        assert!(route_matches("/files/{p...}", &["files", "a", "b"]));
        assert!(!route_matches("/items/{id}", &["items"]));
    }
}
