//! Queue groups: the one queue group name a service may join, and the
//! `sub.allow` entries a SUB rule is signed as, so the broker refuses a
//! subscription that joins another service's queue group.
//!
//! nats-server reads a `sub.allow` entry `"<subject> <queue>"` as "may
//! subscribe to `<subject>` in queue group `<queue>`". For a subscription in a
//! queue group it checks, among the allow entries matching the subject, the
//! ones that carry a queue: if there are any, the group must be one of
//! theirs; if there are none, a plain entry allows any group. A plain
//! subscription (no group) needs a plain entry. So each SUB rule is signed
//! in exactly the forms the runtime subscribes with ([`SubForm`]):
//!
//! - requests to the service itself (`<dest>` = its own flattened hostname):
//!   plain (the per-instance position and `:888` control endpoints) and
//!   pinned to its own group (the load-balanced `_` position);
//! - `:888` broadcasts to `all`, and replies: plain only (every replica
//!   receives them);
//! - a `:417` event of another host: pinned only (the replicas of a sink share
//!   each event; no other service can join that group and take its events).
//!
//! The group of a service is its flattened hostname ([`group`]): no dots, so
//! a grants line never makes `grep '\.danger\.'` match, and it is the same
//! identity the subjects use. The runtime subscribes with exactly this name.

use crate::hostname::Hostname;
use crate::rule::{Rule, RuleSet, Verb};

/// The queue group of a service: its flattened hostname (`orders_example`).
pub fn group(hostname: &Hostname) -> String {
    hostname.flatten()
}

/// How a SUB rule is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubForm {
    /// A plain entry only: subscriptions without a queue group.
    Plain,
    /// Pinned only: subscriptions in the service's own queue group.
    Pinned,
    /// Both: without a group, or in the service's own group.
    PlainAndPinned,
}

impl SubForm {
    /// Whether a plain entry is signed.
    pub fn plain(self) -> bool {
        matches!(self, SubForm::Plain | SubForm::PlainAndPinned)
    }

    /// Whether a pinned entry is signed.
    pub fn pinned(self) -> bool {
        matches!(self, SubForm::Pinned | SubForm::PlainAndPinned)
    }
}

/// The form a SUB rule of the service with flattened hostname `me` is signed
/// in (see the module docs). The destination token decides: `reply` rules
/// and `all` are plain, `me` is both, any other host (a `:417` hook, the
/// only foreign destination the validator accepts) is pinned.
pub fn form(me: &str, rule: &Rule) -> SubForm {
    let t: Vec<&str> = rule.tokens().collect();
    match t.get(1) {
        Some(&"reply") => SubForm::Plain,
        _ => match t.get(4) {
            Some(&"all") => SubForm::Plain,
            Some(dest) if *dest == me => SubForm::PlainAndPinned,
            _ => SubForm::Pinned,
        },
    }
}

/// The `sub.allow` entries of `rules` for the service with flattened
/// hostname `me`, `{{plane}}` left in: for each SUB rule in order, its plain
/// subject and/or `"<subject> <group>"`.
pub fn sub_allow(me: &str, rules: &RuleSet) -> Vec<String> {
    let mut out = Vec::new();
    for r in rules.of(Verb::Sub) {
        let f = form(me, r);
        if f.plain() {
            out.push(r.subject.clone());
        }
        if f.pinned() {
            out.push(format!("{} {me}", r.subject));
        }
    }
    out
}

/// Splits a `sub.allow` entry into its subject and queue group, if any.
pub fn split_entry(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once(' ') {
        Some((s, q)) => (s, Some(q)),
        None => (entry, None),
    }
}

/// Whether `entries` (a `sub.allow` list) let a subscription to the literal
/// `subject` in queue group `queue` (or none) through, as nats-server decides
/// it: a plain subscription needs a matching plain entry; a queued one needs,
/// when any matching entry carries a queue, one carrying exactly `queue`,
/// else a matching plain entry.
pub fn allows(entries: &[String], subject: &str, queue: Option<&str>) -> bool {
    let matching = entries
        .iter()
        .map(|e| split_entry(e))
        .filter(|(s, _)| crate::pattern::matches(s, subject));
    let (mut plain, mut queued, mut same) = (false, false, false);
    for (_, q) in matching {
        match q {
            None => plain = true,
            Some(q) => {
                queued = true;
                same |= Some(q) == queue;
            }
        }
    }
    match queue {
        None => plain,
        Some(_) if queued => same,
        Some(_) => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{Hook, ServiceModel, derive};
    use crate::route::{Method, Route};

    #[test]
    fn each_rule_is_signed_in_the_forms_the_runtime_subscribes_with() {
        let h = Hostname::parse("notify.example").unwrap();
        let mut model = ServiceModel::new(h.clone());
        model.hooks.push(Hook {
            source: Hostname::parse("catalog.example").unwrap(),
            method: Method::parse("POST").unwrap(),
            route: Route::parse(":417/on-item-changed").unwrap(),
        });
        let rules = derive(&model);
        assert_eq!(group(&h), "notify_example");
        assert_eq!(
            sub_allow("notify_example", &rules),
            [
                "{{plane}}.reply._.*.notify_example.*",
                "{{plane}}.safe.*.*.notify_example.>",
                "{{plane}}.safe.*.*.notify_example.> notify_example",
                "{{plane}}.safe.417.*.catalog_example.*.POST.on-item-changed notify_example",
                "{{plane}}.safe.888.*.all.>",
            ]
        );
        let entries = sub_allow("notify_example", &rules);
        let event = "{{plane}}.safe.417.catalog_example.catalog_example._.POST.on-item-changed";
        assert!(allows(&entries, event, Some("notify_example")));
        assert!(!allows(&entries, event, Some("orders_example")));
        assert!(!allows(&entries, event, None));
        let own = "{{plane}}.safe.443.x_example.notify_example._.POST.send";
        assert!(allows(&entries, own, None));
        assert!(allows(&entries, own, Some("notify_example")));
        assert!(!allows(&entries, own, Some("orders_example")));
        let all = "{{plane}}.safe.888.x_example.all._.POST.flush";
        assert!(allows(&entries, all, None));
        assert!(allows(&entries, all, Some("anything")));
    }
}
