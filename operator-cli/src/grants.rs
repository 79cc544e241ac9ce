//! A service's grants as busop shows them: read from a user JWT (the plane
//! filled in) or a `nats.acl` (`{{plane}}`), put in the `nats.acl` form so
//! both compare, and each grant classified: a trust-root (`danger`) grant,
//! a wildcard grant, or neither, with the rules crate's definitions.

use buswarden_creds::UserClaims;
use buswarden_rules::policy::{is_trust_root_grant, is_wildcard_grant};
use buswarden_rules::queue;
use buswarden_rules::rule::PLANE_PLACEHOLDER;
use buswarden_rules::{Hostname, Rule, RuleSet, Verb};
use serde::Serialize;

/// One allow (or deny) entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantLine {
    /// `PUB` or `SUB`.
    pub verb: Verb,
    /// The subject as written in the file (plane filled in for creds).
    pub subject: String,
    /// A trust-root grant: it can reach a `danger` subject.
    pub danger: bool,
    /// A wildcard grant (any host, port or method).
    pub wildcard: bool,
    /// The queue group a SUB entry is pinned to (`"<subject> <group>"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

/// The grants of one service.
#[derive(Debug, Clone, Default)]
pub struct ServiceGrants {
    /// The hostname, when the file names a valid one.
    pub hostname: Option<Hostname>,
    /// The name shown (the hostname, or the JWT's name or subject).
    pub name: String,
    /// The plane of the subjects, when they carry one.
    pub plane: Option<String>,
    /// The allow lists in `nats.acl` form (`{{plane}}` first).
    pub rules: RuleSet,
    /// Allow entries as written.
    pub allow: Vec<GrantLine>,
    /// Deny entries as written.
    pub deny: Vec<GrantLine>,
}

impl ServiceGrants {
    /// Trust-root grants.
    pub fn danger(&self) -> impl Iterator<Item = &GrantLine> {
        self.allow.iter().filter(|g| g.danger)
    }

    /// Wildcard grants.
    pub fn wildcards(&self) -> impl Iterator<Item = &GrantLine> {
        self.allow.iter().filter(|g| g.wildcard)
    }
}

fn is_bus_subject(subject: &str) -> bool {
    matches!(
        subject.split('.').nth(1),
        Some("safe" | "danger" | "reply" | "*")
    )
}

/// The plane most allow entries start with.
fn plane_of<'a>(subjects: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in subjects.filter(|s| is_bus_subject(s)) {
        if let Some(first) = s.split('.').next() {
            *counts.entry(first).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(p, _)| p.to_string())
}

fn template(subject: &str, plane: Option<&str>) -> String {
    match (plane, subject.split_once('.')) {
        (Some(p), Some((first, rest))) if first == p && is_bus_subject(subject) => {
            format!("{PLANE_PLACEHOLDER}.{rest}")
        }
        _ => subject.to_string(),
    }
}

fn line(me: &str, verb: Verb, entry: &str, plane: Option<&str>) -> GrantLine {
    // A SUB entry may carry its queue group after a space.
    let (subject, queue) = match verb {
        Verb::Sub => queue::split_entry(entry),
        Verb::Pub => (entry, None),
    };
    let (danger, wildcard) = match Rule::new(verb, template(subject, plane)) {
        Ok(rule) => {
            let danger = is_trust_root_grant(me, &rule);
            (danger, !danger && is_wildcard_grant(&rule))
        }
        // Not a valid pattern: flag it, a reviewer must look.
        Err(_) => (subject.contains("danger"), true),
    };
    GrantLine {
        verb,
        subject: subject.to_string(),
        danger,
        wildcard,
        queue: queue.map(str::to_string),
    }
}

/// The grants of a user JWT.
pub fn of_user(claims: &UserClaims) -> ServiceGrants {
    let hostname = Hostname::parse(&claims.data.name).ok();
    let name = if claims.data.name.is_empty() {
        claims.data.sub.clone()
    } else {
        claims.data.name.clone()
    };
    let me = hostname.as_ref().map(Hostname::flatten).unwrap_or_default();
    let limits = &claims.nats.limits;
    let plane = plane_of(
        limits
            .publish
            .allow
            .iter()
            .chain(&limits.subscribe.allow)
            .map(String::as_str),
    );
    let p = plane.as_deref();
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    let mut rules = RuleSet::new();
    for (verb, perm) in [(Verb::Pub, &limits.publish), (Verb::Sub, &limits.subscribe)] {
        for s in &perm.allow {
            let l = line(&me, verb, s, p);
            if let Ok(rule) = Rule::new(verb, template(&l.subject, p)) {
                rules.insert(rule);
            }
            allow.push(l);
        }
        for s in &perm.deny {
            // A deny entry takes reach away: never a trust-root or wildcard grant.
            deny.push(GrantLine {
                verb,
                subject: s.clone(),
                danger: false,
                wildcard: false,
                queue: None,
            });
        }
    }
    ServiceGrants {
        hostname,
        name,
        plane,
        rules,
        allow,
        deny,
    }
}

/// The grants of a `nats.acl` file.
pub fn of_acl(hostname: &Hostname, rules: &RuleSet) -> ServiceGrants {
    let me = hostname.flatten();
    let allow = rules
        .iter()
        .map(|r| line(&me, r.verb, &r.subject, None))
        .collect();
    ServiceGrants {
        hostname: Some(hostname.clone()),
        name: hostname.as_str().to_string(),
        plane: None,
        rules: rules.clone(),
        allow,
        deny: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_subjects_become_acl_rules() {
        let mut u = UserClaims::new_user("U");
        u.data.name = "calc.example".into();
        u.nats.limits.publish.allow = vec![
            "prod.danger.666.calc_example.token_core.*.POST.mint".into(),
            "prod.safe.443.calc_example.*.*.GET.x".into(),
            "prod.reply._.calc_example.>".into(),
        ];
        u.nats.limits.subscribe.allow = vec!["prod.safe.*.*.calc_example.>".into()];
        let g = of_user(&u);
        assert_eq!(g.plane.as_deref(), Some("prod"));
        assert!(
            g.rules
                .contains(&Rule::parse("PUB {{plane}}.reply._.calc_example.>").unwrap())
        );
        let danger: Vec<_> = g.danger().map(|l| l.subject.as_str()).collect();
        assert_eq!(
            danger,
            ["prod.danger.666.calc_example.token_core.*.POST.mint"]
        );
        let wild: Vec<_> = g.wildcards().map(|l| l.subject.as_str()).collect();
        assert_eq!(wild, ["prod.safe.443.calc_example.*.*.GET.x"]);
    }
}
