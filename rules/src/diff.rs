//! Rule-set diff: what a change to a service's allow-list adds and removes,
//! per verb, in the canonical order, with trust-root (`danger`) lines and
//! real widenings marked so a reviewer (or `busop diff`, `gencreds check`)
//! can single them out.
//!
//! ```text
//! +PUB {{plane}}.danger.666.ingress_core.access_token_core.*.POST.mint
//! -PUB {{plane}}.safe.443.ingress_core.calc_example.*.GET.square
//! ```
//!
//! Every line keeps the rule's full subject, so `grep danger` on the diff
//! lists the trust-root changes.

use crate::rule::{Rule, RuleSet, Verb};
use std::fmt;

/// Whether a line adds or removes a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The rule is in the new set only.
    Added,
    /// The rule is in the old set only.
    Removed,
}

impl Change {
    /// `+` or `-`.
    pub fn sign(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
        }
    }
}

/// One changed rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffLine {
    /// Added or removed.
    pub change: Change,
    /// The verb of the rule.
    pub verb: Verb,
    /// The rule's subject pattern.
    pub subject: String,
    /// Whether the rule is a trust-root (`danger`) rule.
    pub danger: bool,
    /// Whether the line changes what the service may do: an added rule that
    /// no old rule covered (a real widening), or a removed rule that no new
    /// rule covers (a real narrowing). A rule replaced by a broader or
    /// narrower one of the same reach is `false`.
    pub changes_reach: bool,
}

impl DiffLine {
    /// The rule this line is about.
    pub fn rule(&self) -> Rule {
        Rule {
            verb: self.verb,
            subject: self.subject.clone(),
        }
    }
}

impl fmt::Display for DiffLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{} {}", self.change.sign(), self.verb, self.subject)
    }
}

/// The difference between an old and a new rule set.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleDiff {
    /// Added rules, PUB before SUB, each bytewise by subject.
    pub added: Vec<DiffLine>,
    /// Removed rules, same order.
    pub removed: Vec<DiffLine>,
}

impl RuleDiff {
    /// The rules added and removed going from `old` to `new`.
    pub fn between(old: &RuleSet, new: &RuleSet) -> Self {
        let line = |change, rule: &Rule, other: &RuleSet| DiffLine {
            change,
            verb: rule.verb,
            subject: rule.subject.clone(),
            danger: rule.is_danger(),
            changes_reach: other.covering(rule).is_none(),
        };
        RuleDiff {
            added: new
                .iter()
                .filter(|r| !old.contains(r))
                .map(|r| line(Change::Added, r, old))
                .collect(),
            removed: old
                .iter()
                .filter(|r| !new.contains(r))
                .map(|r| line(Change::Removed, r, new))
                .collect(),
        }
    }

    /// Whether the two sets are equal.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// Added rules of one verb.
    pub fn added_of(&self, verb: Verb) -> impl Iterator<Item = &DiffLine> {
        self.added.iter().filter(move |l| l.verb == verb)
    }

    /// Removed rules of one verb.
    pub fn removed_of(&self, verb: Verb) -> impl Iterator<Item = &DiffLine> {
        self.removed.iter().filter(move |l| l.verb == verb)
    }

    /// Every line in print order: removed then added, each PUB before SUB.
    pub fn lines(&self) -> impl Iterator<Item = &DiffLine> {
        self.removed.iter().chain(&self.added)
    }

    /// Trust-root (`danger`) lines, added or removed.
    pub fn danger_lines(&self) -> impl Iterator<Item = &DiffLine> {
        self.lines().filter(|l| l.danger)
    }

    /// Whether the new set can do something the old one could not.
    pub fn widens(&self) -> bool {
        self.added.iter().any(|l| l.changes_reach)
    }

    /// Whether a trust-root rule was added.
    pub fn adds_danger(&self) -> bool {
        self.added.iter().any(|l| l.danger)
    }
}

impl fmt::Display for RuleDiff {
    /// One line per change (`-` lines first), each ending in `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rules: &[&str]) -> RuleSet {
        rules.iter().map(|r| Rule::parse(r).unwrap()).collect()
    }

    #[test]
    fn added_and_removed_per_verb_sorted() {
        let old = set(&[
            "PUB {{plane}}.safe.443.a.b.*.GET.x",
            "PUB {{plane}}.safe.443.a.b.*.GET.y",
            "SUB {{plane}}.safe.*.*.a.>",
        ]);
        let new = set(&[
            "SUB {{plane}}.safe.*.*.a.>",
            "SUB {{plane}}.safe.417.*.c.*.POST.e",
            "PUB {{plane}}.safe.443.a.b.*.GET.y",
            "PUB {{plane}}.danger.666.a.t.*.POST.mint",
            "PUB {{plane}}.safe.443.a.b.*.GET.z",
        ]);
        let d = RuleDiff::between(&old, &new);
        assert_eq!(
            d.to_string(),
            "-PUB {{plane}}.safe.443.a.b.*.GET.x\n\
             +PUB {{plane}}.danger.666.a.t.*.POST.mint\n\
             +PUB {{plane}}.safe.443.a.b.*.GET.z\n\
             +SUB {{plane}}.safe.417.*.c.*.POST.e\n"
        );
        assert_eq!(d.added_of(Verb::Pub).count(), 2);
        assert_eq!(d.added_of(Verb::Sub).count(), 1);
        assert_eq!(d.removed_of(Verb::Sub).count(), 0);
        let danger: Vec<String> = d.danger_lines().map(|l| l.to_string()).collect();
        assert_eq!(danger, ["+PUB {{plane}}.danger.666.a.t.*.POST.mint"]);
        assert!(d.adds_danger() && d.widens());
        assert!(RuleDiff::between(&new, &new).is_empty());
        assert!(!RuleDiff::between(&new, &old).adds_danger());
    }

    #[test]
    fn replacing_by_a_covering_rule_is_not_a_widening() {
        let old = set(&[
            "PUB {{plane}}.safe.443.a.b.*.GET.x.>",
            "PUB {{plane}}.safe.443.a.b.*.GET.x.y",
        ]);
        let new = set(&["PUB {{plane}}.safe.443.a.b.*.GET.x.>"]);
        let d = RuleDiff::between(&old, &new);
        assert_eq!(d.removed.len(), 1);
        assert!(!d.removed[0].changes_reach);
        let back = RuleDiff::between(&new, &old);
        assert!(!back.widens());
        let wider = set(&["PUB {{plane}}.safe.443.a.b.*.*.>"]);
        let d = RuleDiff::between(&new, &wider);
        assert!(d.widens());
        assert!(!d.removed[0].changes_reach, "the old rule is still covered");
        assert_eq!(
            d.added[0].rule(),
            Rule::parse("PUB {{plane}}.safe.443.a.b.*.*.>").unwrap()
        );
    }
}
