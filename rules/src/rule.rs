//! ACL rules: a verb (`PUB`/`SUB`) and a subject pattern whose first token is
//! `{{plane}}`, and the rule sets built from them, with subsumption.

use crate::pattern;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// The placeholder that stands for the plane until signing fills it in.
pub const PLANE_PLACEHOLDER: &str = "{{plane}}";

/// Publish or subscribe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verb {
    /// Publish.
    Pub,
    /// Subscribe.
    Sub,
}

impl Verb {
    /// `PUB` or `SUB`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Pub => "PUB",
            Verb::Sub => "SUB",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a rule's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The verb is neither `PUB` nor `SUB`.
    #[error("expected 'PUB <subject>' or 'SUB <subject>', found {text:?}")]
    BadVerb {
        /// The text.
        text: String,
    },
    /// The subject is not a valid NATS subject pattern.
    #[error(
        "{subject:?} is not a valid NATS subject pattern (empty token, whitespace, or misplaced wildcard)"
    )]
    InvalidSubject {
        /// The subject.
        subject: String,
    },
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// Publish or subscribe.
    pub verb: Verb,
    /// The subject pattern, `{{plane}}` first.
    pub subject: String,
}

impl Rule {
    /// A rule from parts; the subject must be a valid pattern.
    pub fn new(verb: Verb, subject: impl Into<String>) -> Result<Self, RuleError> {
        let subject = subject.into();
        if !pattern::is_valid(&subject) {
            return Err(RuleError::InvalidSubject { subject });
        }
        Ok(Rule { verb, subject })
    }

    /// Parses `PUB <subject>` / `SUB <subject>` (single space, no trailing text).
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let (verb, subject) = match text.split_once(' ') {
            Some(("PUB", s)) => (Verb::Pub, s),
            Some(("SUB", s)) => (Verb::Sub, s),
            _ => {
                return Err(RuleError::BadVerb {
                    text: text.to_string(),
                });
            }
        };
        Rule::new(verb, subject)
    }

    /// Whether this rule allows everything `other` allows (same verb, broader or equal pattern).
    pub fn covers(&self, other: &Rule) -> bool {
        self.verb == other.verb && pattern::covers(&self.subject, &other.subject)
    }

    /// The subject with `{{plane}}` replaced by `plane`.
    pub fn subject_for_plane(&self, plane: &str) -> String {
        match self.subject.strip_prefix(PLANE_PLACEHOLDER) {
            Some(rest) => format!("{plane}{rest}"),
            None => self.subject.clone(),
        }
    }

    /// The subject's tokens.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.subject.split('.')
    }

    /// Whether this is a trust-root (`danger`) rule.
    pub fn is_danger(&self) -> bool {
        self.tokens().nth(1) == Some("danger")
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.subject)
    }
}

/// A rule serializes as its `nats.acl` line, `"PUB <subject>"`.
impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Rule::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A sorted set of rules: PUB before SUB, each bytewise by subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    rules: BTreeSet<Rule>,
}

impl RuleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule; returns whether it was new.
    pub fn insert(&mut self, rule: Rule) -> bool {
        self.rules.insert(rule)
    }

    /// Whether the exact rule is present.
    pub fn contains(&self, rule: &Rule) -> bool {
        self.rules.contains(rule)
    }

    /// The rules, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// The rules of one verb, sorted.
    pub fn of(&self, verb: Verb) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.verb == verb)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Drops every rule covered by another rule of the same verb. Of two
    /// rules that cover each other (only possible when equal) one stays.
    pub fn minimize(&mut self) {
        // Split every subject once and bucket the rules by verb and
        // destination token (the fifth): a rule can only be covered by a
        // rule of its own bucket or by one whose destination (or an earlier
        // token) is a wildcard, or that is shorter. This keeps a 200-call
        // service well under a millisecond (see docs/benchmarks.md).
        const KEY: usize = 4;
        let split: Vec<(Verb, Vec<&str>)> = self
            .rules
            .iter()
            .map(|r| (r.verb, r.subject.split('.').collect()))
            .collect();
        let is_wild = |t: &str| t == "*" || t == ">";
        let mut buckets: HashMap<(Verb, &str), Vec<usize>> = HashMap::new();
        let mut wide: Vec<usize> = Vec::new();
        for (i, (verb, tokens)) in split.iter().enumerate() {
            match tokens.get(KEY) {
                Some(t) if !tokens[..=KEY].iter().any(|t| is_wild(t)) => {
                    buckets.entry((*verb, t)).or_default().push(i)
                }
                _ => wide.push(i),
            }
        }
        let covered_by = |i: usize, j: usize| {
            let ((v, narrow), (w, broad)) = (&split[i], &split[j]);
            j != i && v == w && pattern::covers_tokens(broad, narrow)
        };
        let covered: Vec<bool> = (0..split.len())
            .map(|i| {
                let (verb, tokens) = &split[i];
                let bucket = tokens
                    .get(KEY)
                    .and_then(|t| buckets.get(&(*verb, *t)))
                    .map_or(&[][..], Vec::as_slice);
                wide.iter().chain(bucket).any(|&j| covered_by(i, j))
            })
            .collect();
        let mut keep = covered.into_iter().map(|c| !c);
        self.rules.retain(|_| keep.next().unwrap_or(true));
    }

    /// The rule of this set that covers `rule`: itself if present, else the
    /// first broader rule of the same verb.
    pub fn covering(&self, rule: &Rule) -> Option<&Rule> {
        self.rules
            .get(rule)
            .or_else(|| self.rules.iter().find(|r| r.covers(rule)))
    }

    /// Whether a literal subject (with `{{plane}}` or a plane) is allowed for `verb`.
    pub fn allows(&self, verb: Verb, subject: &str) -> bool {
        self.of(verb).any(|r| pattern::matches(&r.subject, subject))
    }

    /// The `sub.deny` entries that keep nats-server from widening SUB rules
    /// that end in `*`: see [`SubGuards`].
    pub fn sub_guards(&self) -> SubGuards {
        let mut guards = SubGuards::default();
        for r in self.of(Verb::Sub) {
            if r.tokens().last() != Some("*") {
                continue;
            }
            let deny = format!("{}.>", r.subject);
            let clashes = self
                .of(Verb::Sub)
                .any(|o| o != r && pattern::overlaps(&o.subject, &deny));
            if clashes {
                guards.unguarded.push(r.clone());
            } else {
                guards.deny.push(Guard {
                    rule: r.clone(),
                    deny,
                });
            }
        }
        guards
    }
}

/// nats-server (checked on 2.15.1) lets a client holding `sub.allow` of
/// `a.*` subscribe to `a.>`, and then delivers `a.b.c` to it: a SUB rule
/// whose last token is `*` reaches every deeper subject under it. For such a
/// rule `R` the deny entry `R.>` restores the meaning of the rule (the
/// server then filters deeper messages off that subscription), and denies
/// nothing `R` allows. A deny entry that would also cut into another SUB
/// rule of the set is not written; that rule is listed as unguarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubGuards {
    /// The deny entries to sign with the rule set, in rule order.
    pub deny: Vec<Guard>,
    /// SUB rules ending in `*` whose guard would clash with another rule.
    pub unguarded: Vec<Rule>,
}

/// One `sub.deny` entry and the rule it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The SUB rule ending in `*`.
    pub rule: Rule,
    /// Its deny subject (`{{plane}}` first, like rules).
    pub deny: String,
}

impl FromIterator<Rule> for RuleSet {
    fn from_iter<I: IntoIterator<Item = Rule>>(iter: I) -> Self {
        RuleSet {
            rules: iter.into_iter().collect(),
        }
    }
}

impl Extend<Rule> for RuleSet {
    fn extend<I: IntoIterator<Item = Rule>>(&mut self, iter: I) {
        self.rules.extend(iter)
    }
}

impl<'a> IntoIterator for &'a RuleSet {
    type Item = &'a Rule;
    type IntoIter = std::collections::btree_set::Iter<'a, Rule>;
    fn into_iter(self) -> Self::IntoIter {
        self.rules.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Rule {
        Rule::parse(s).unwrap()
    }

    #[test]
    fn parse_and_print() {
        assert_eq!(r("PUB a.b").to_string(), "PUB a.b");
        assert!(matches!(
            Rule::parse("pub a.b"),
            Err(RuleError::BadVerb { .. })
        ));
        assert!(matches!(
            Rule::parse("PUB  a.b"),
            Err(RuleError::InvalidSubject { .. })
        ));
        assert!(matches!(
            Rule::parse("PUB a.b x"),
            Err(RuleError::InvalidSubject { .. })
        ));
        assert!(matches!(Rule::parse("PUB"), Err(RuleError::BadVerb { .. })));
    }

    #[test]
    fn minimize_drops_covered_rules_of_the_same_verb() {
        let mut set: RuleSet = ["PUB a.>", "PUB a.b", "SUB a.b", "SUB a.*", "PUB c.d"]
            .map(r)
            .into_iter()
            .collect();
        set.minimize();
        let got: Vec<String> = set.iter().map(|r| r.to_string()).collect();
        assert_eq!(got, ["PUB a.>", "PUB c.d", "SUB a.*"]);
        assert_eq!(set.covering(&r("PUB a.x.y")), Some(&r("PUB a.>")));
        assert!(set.allows(Verb::Pub, "a.q"));
        assert!(!set.allows(Verb::Sub, "a.q.r"));
    }

    #[test]
    fn sub_rules_ending_in_a_wildcard_get_a_deny_guard() {
        let set: RuleSet = [
            "SUB {{plane}}.reply._.*.me.*",
            "SUB {{plane}}.safe.*.*.me.>",
            "SUB {{plane}}.safe.417.*.src.*.POST.on-x.*",
            "SUB {{plane}}.safe.417.*.me.*.POST.on-y.*",
            "PUB {{plane}}.safe.443.me.x.*.GET.items.*",
        ]
        .map(r)
        .into_iter()
        .collect();
        let g = set.sub_guards();
        let deny: Vec<&str> = g.deny.iter().map(|g| g.deny.as_str()).collect();
        assert_eq!(
            deny,
            [
                "{{plane}}.reply._.*.me.*.>",
                "{{plane}}.safe.417.*.src.*.POST.on-x.*.>"
            ]
        );
        // Own subjects under the implicit `me.>` rule must not be denied.
        assert_eq!(
            g.unguarded,
            [r("SUB {{plane}}.safe.417.*.me.*.POST.on-y.*")]
        );
    }

    #[test]
    fn plane_fill() {
        assert_eq!(
            r("PUB {{plane}}.reply._.x.>").subject_for_plane("microbus"),
            "microbus.reply._.x.>"
        );
        assert!(r("PUB {{plane}}.danger.666.a.b.*.POST.mint").is_danger());
    }
}
