//! Validation of a rule set for the hostname it is meant for, run before
//! anything is signed (by `gencreds sign`, the creds pipeline and the account
//! server, and by `busop audit` on what was signed): the broker can only pin
//! a service's identity if every PUB rule is in that service's own name, and
//! keep other services' traffic from it only if every SUB rule is on its own
//! subjects: its own host as the destination (or `all` on the control port
//! 888), its own replies, and another host only for one of that host's `:417`
//! event routes. No rule may be wider than the layout allows.

use crate::hostname::Hostname;
use crate::rule::{PLANE_PLACEHOLDER, Rule, RuleSet, Verb};
use crate::subject::Plane;

/// Why a rule is refused for a hostname.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The plane token is neither `{{plane}}` nor (when filled) a valid plane.
    #[error("{rule}: the first token must be {{{{plane}}}} (or a plane of a-z, 0-9, '-')")]
    BadPlane {
        /// The rule.
        rule: Rule,
    },
    /// A wildcard where the layout needs a literal (plane, trust, source of a
    /// PUB, destination of a SUB).
    #[error("{rule}: wildcard in the {token} token, which must be literal")]
    Wildcard {
        /// The rule.
        rule: Rule,
        /// Which token.
        token: &'static str,
    },
    /// Not a request or reply subject of the layout.
    #[error("{rule}: not a subject of the bus layout ({reason})")]
    NotLayout {
        /// The rule.
        rule: Rule,
        /// What is wrong.
        reason: &'static str,
    },
    /// A PUB in another service's name (source / responder token).
    #[error("{rule}: publishes as {found:?}, but this service is {expected:?}")]
    ForeignSource {
        /// The rule.
        rule: Rule,
        /// The flattened hostname found.
        found: String,
        /// The service's flattened hostname.
        expected: String,
    },
    /// A SUB on replies meant for another service.
    #[error("{rule}: subscribes to replies of {found:?}, but this service is {expected:?}")]
    ForeignReplies {
        /// The rule.
        rule: Rule,
        /// The flattened hostname found.
        found: String,
        /// The service's flattened hostname.
        expected: String,
    },
    /// `danger` with a port other than 666, or port 666 without `danger`.
    #[error("{rule}: the 'danger' trust segment goes with port 666 and only with it")]
    TrustPortMismatch {
        /// The rule.
        rule: Rule,
    },
    /// A SUB on requests addressed to another host: a service subscribes to
    /// its own destination, to `all` on the control port 888, and to another
    /// host only for one of that host's `:417` events.
    #[error(
        "{rule}: subscribes to requests for {found:?}, but this service is {expected:?}; a service subscribes to its own host (or 'all' on :888), and to another host only for one of its :417 events ({{{{plane}}}}.safe.417.*.<source>.*.<METHOD>.<route>)"
    )]
    ForeignDestination {
        /// The rule.
        rule: Rule,
        /// The destination token found.
        found: String,
        /// The service's flattened hostname.
        expected: String,
    },
    /// A PUB whose port is `*` (port 0): port 0 is for subscriptions only;
    /// a publisher sends to one port.
    #[error(
        "{rule}: publishes to any port; port 0 means any port and is for subscriptions only: a call names its endpoint's port"
    )]
    PortWildcard {
        /// The rule.
        rule: Rule,
    },
    /// A PUB on another host's event port (417): only the source fires its events.
    #[error(
        "{rule}: publishes an event (:417) of another host; only the source fires its own events"
    )]
    ForeignEvent {
        /// The rule.
        rule: Rule,
    },
}

impl ValidationError {
    /// The refused rule.
    pub fn rule(&self) -> &Rule {
        match self {
            ValidationError::BadPlane { rule }
            | ValidationError::Wildcard { rule, .. }
            | ValidationError::NotLayout { rule, .. }
            | ValidationError::ForeignSource { rule, .. }
            | ValidationError::ForeignReplies { rule, .. }
            | ValidationError::ForeignDestination { rule, .. }
            | ValidationError::TrustPortMismatch { rule }
            | ValidationError::PortWildcard { rule }
            | ValidationError::ForeignEvent { rule } => rule,
        }
    }

    /// A stable kebab-case code for reports (`busop audit`).
    pub fn code(&self) -> &'static str {
        match self {
            ValidationError::BadPlane { .. } => "bad-plane",
            ValidationError::Wildcard { .. } => "wildcard-token",
            ValidationError::NotLayout { .. } => "not-layout",
            ValidationError::ForeignSource { .. } => "foreign-source",
            ValidationError::ForeignReplies { .. } => "foreign-replies",
            ValidationError::ForeignDestination { .. } => "foreign-destination",
            ValidationError::TrustPortMismatch { .. } => "trust-port-mismatch",
            ValidationError::PortWildcard { .. } => "port-wildcard",
            ValidationError::ForeignEvent { .. } => "foreign-event",
        }
    }
}

fn is_wild(t: &str) -> bool {
    t == "*" || t == ">"
}

/// The control port, whose requests may also be addressed to [`BROADCAST`].
const CONTROL: &str = "888";
/// The event port: the only one on which a service hears another host.
const EVENT: &str = "417";
/// The broadcast destination of control requests.
const BROADCAST: &str = "all";

/// Whether the tokens of a SUB subject addressed to another host name one
/// event route of that host: `{{plane}}.safe.417.<src>.<source>.<pos>.<METHOD>.<route>`
/// with a literal port 417, a method (or `*` for a hook on `ANY`) and a
/// literal first path token. Wildcards in the source, the position and
/// deeper path tokens (path arguments of the route) are fine.
fn check_foreign_event_sub(t: &[&str]) -> Result<(), ()> {
    let literal = |i: usize| t.get(i).is_some_and(|x| !is_wild(x));
    let ok = t.len() >= 8
        && t[1] == "safe"
        && t[2] == EVENT
        && t[3] != ">"
        && t[5] != ">"
        && t[6] != ">"
        && literal(7);
    if ok { Ok(()) } else { Err(()) }
}

/// Checks one rule for a service with flattened hostname `me`.
pub fn validate_rule(me: &str, rule: &Rule) -> Result<(), ValidationError> {
    let t: Vec<&str> = rule.tokens().collect();
    let wild = |token| ValidationError::Wildcard {
        rule: rule.clone(),
        token,
    };
    let not_layout = |reason| ValidationError::NotLayout {
        rule: rule.clone(),
        reason,
    };
    if is_wild(t[0]) {
        return Err(wild("plane"));
    }
    if t[0] != PLANE_PLACEHOLDER && Plane::parse(t[0]).is_err() {
        return Err(ValidationError::BadPlane { rule: rule.clone() });
    }
    let trust = *t.get(1).ok_or_else(|| not_layout("no trust token"))?;
    if is_wild(trust) {
        return Err(wild("trust"));
    }
    match trust {
        "reply" => {
            if t.len() < 4 {
                return Err(not_layout("a reply rule has at least 4 tokens"));
            }
            if t[2] != "_" {
                return Err(not_layout("the third token of a reply subject is '_'"));
            }
            let (idx, name) = match rule.verb {
                Verb::Pub => (3, "responder"),
                Verb::Sub => (4, "caller"),
            };
            let found = *t
                .get(idx)
                .ok_or_else(|| not_layout("reply rule too short"))?;
            if is_wild(found) {
                return Err(wild(name));
            }
            if found != me {
                let (found, expected) = (found.to_string(), me.to_string());
                return Err(match rule.verb {
                    Verb::Pub => ValidationError::ForeignSource {
                        rule: rule.clone(),
                        found,
                        expected,
                    },
                    Verb::Sub => ValidationError::ForeignReplies {
                        rule: rule.clone(),
                        found,
                        expected,
                    },
                });
            }
            Ok(())
        }
        "safe" | "danger" => {
            if t.len() < 8 && t.last() != Some(&">") {
                return Err(not_layout("a request rule has at least 8 tokens"));
            }
            let port = *t.get(2).ok_or_else(|| not_layout("no port token"))?;
            if port == ">" {
                return Err(wild("port"));
            }
            if (trust == "danger") != (port == "666") {
                return Err(ValidationError::TrustPortMismatch { rule: rule.clone() });
            }
            if port != "*" && port.parse::<u16>().is_err() {
                return Err(not_layout("the port token is not a number"));
            }
            let src = *t.get(3).ok_or_else(|| not_layout("no source token"))?;
            if is_wild(src) && (rule.verb == Verb::Pub || src == ">") {
                return Err(wild("source"));
            }
            let dest = *t.get(4).ok_or_else(|| not_layout("no destination token"))?;
            match rule.verb {
                Verb::Pub => {
                    if src != me {
                        return Err(ValidationError::ForeignSource {
                            rule: rule.clone(),
                            found: src.to_string(),
                            expected: me.to_string(),
                        });
                    }
                    if dest == ">" {
                        return Err(wild("destination"));
                    }
                    if port == "417" && dest != me {
                        return Err(ValidationError::ForeignEvent { rule: rule.clone() });
                    }
                }
                Verb::Sub => {
                    if is_wild(dest) {
                        return Err(wild("destination"));
                    }
                    if dest != me && !(port == CONTROL && dest == BROADCAST) {
                        check_foreign_event_sub(&t).map_err(|()| {
                            ValidationError::ForeignDestination {
                                rule: rule.clone(),
                                found: dest.to_string(),
                                expected: me.to_string(),
                            }
                        })?;
                    }
                }
            }
            Ok(())
        }
        _ => Err(not_layout(
            "the trust token is not 'safe', 'danger' or 'reply'",
        )),
    }
}

/// A service's PUB request rule never has a port wildcard (port 0 is for
/// subscriptions only). Policy patterns, which only allow, may.
fn publishes_to_any_port(rule: &Rule) -> Result<(), ValidationError> {
    let mut t = rule.tokens();
    let trust = t.nth(1);
    let port = t.next();
    if rule.verb == Verb::Pub && matches!(trust, Some("safe" | "danger")) && port == Some("*") {
        return Err(ValidationError::PortWildcard { rule: rule.clone() });
    }
    Ok(())
}

/// Checks every rule of a set for `hostname`; returns every failure.
pub fn validate(hostname: &Hostname, rules: &RuleSet) -> Result<(), Vec<ValidationError>> {
    let me = hostname.flatten();
    let errors: Vec<_> = rules
        .iter()
        .filter_map(|r| {
            validate_rule(&me, r)
                .and_then(|()| publishes_to_any_port(r))
                .err()
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{ServiceModel, derive};

    fn check(rule: &str) -> Result<(), ValidationError> {
        validate_rule("calc_example", &Rule::parse(rule).unwrap())
    }

    #[test]
    fn derived_rules_validate() {
        let h = Hostname::parse("calc.example").unwrap();
        assert_eq!(validate(&h, &derive(&ServiceModel::new(h.clone()))), Ok(()));
    }

    /// Port 0 is for subscriptions only: a service's PUB to any port is
    /// refused (never a port wildcard); a SUB on any port is fine.
    #[test]
    fn a_publish_to_any_port_is_refused() {
        let h = Hostname::parse("calc.example").unwrap();
        let set =
            |rules: &[&str]| -> RuleSet { rules.iter().map(|r| Rule::parse(r).unwrap()).collect() };
        let wide = set(&["PUB {{plane}}.safe.*.calc_example.x_example.*.GET.a"]);
        assert!(matches!(
            validate(&h, &wide).unwrap_err().as_slice(),
            [ValidationError::PortWildcard { .. }]
        ));
        let call = crate::derive::Call {
            dest: crate::derive::Dest::Host(Hostname::parse("x.example").unwrap()),
            method: crate::route::Method::parse("GET").unwrap(),
            route: crate::route::Route::parse(":0/a").unwrap(),
        };
        let derived = set(&[&crate::derive::call_rule(&h, &call).to_string()]);
        assert!(validate(&h, &derived).is_err(), "{derived:?}");
        assert!(validate(&h, &set(&["SUB {{plane}}.safe.*.*.calc_example.>"])).is_ok());
    }

    #[test]
    fn refuses_hand_edits() {
        assert!(matches!(
            check("PUB {{plane}}.>"),
            Err(ValidationError::Wildcard { token: "trust", .. })
        ));
        assert!(matches!(
            check("PUB >"),
            Err(ValidationError::Wildcard { token: "plane", .. })
        ));
        assert!(matches!(
            check("PUB {{plane}}.safe.>"),
            Err(ValidationError::Wildcard { token: "port", .. })
        ));
        assert!(matches!(
            check("PUB {{plane}}.safe.443.>"),
            Err(ValidationError::Wildcard {
                token: "source",
                ..
            })
        ));
        assert!(matches!(
            check("PUB {{plane}}.safe.443.*.x.*.GET.a"),
            Err(ValidationError::Wildcard {
                token: "source",
                ..
            })
        ));
        assert!(matches!(
            check("PUB {{plane}}.safe.443.other_example.x.*.GET.a"),
            Err(ValidationError::ForeignSource { .. })
        ));
        assert!(matches!(
            check("PUB {{plane}}.reply._.other.>"),
            Err(ValidationError::ForeignSource { .. })
        ));
        assert!(matches!(
            check("SUB {{plane}}.reply._.*.other.*"),
            Err(ValidationError::ForeignReplies { .. })
        ));
        assert!(matches!(
            check("SUB {{plane}}.safe.*.*.*.>"),
            Err(ValidationError::Wildcard {
                token: "destination",
                ..
            })
        ));
        assert!(matches!(
            check("PUB {{plane}}.danger.443.calc_example.x.*.GET.a"),
            Err(ValidationError::TrustPortMismatch { .. })
        ));
        assert!(matches!(
            check("PUB {{plane}}.safe.666.calc_example.x.*.GET.a"),
            Err(ValidationError::TrustPortMismatch { .. })
        ));
        assert!(matches!(
            check("PUB {{plane}}.danger.*.calc_example.x.*.GET.a"),
            Err(ValidationError::TrustPortMismatch { .. })
        ));
        assert!(matches!(
            check("PUB {{plane}}.safe.417.calc_example.other.*.POST.on-x"),
            Err(ValidationError::ForeignEvent { .. })
        ));
        assert!(matches!(
            check("PUB {{plane}}.weird.1.2.3.4.5.6"),
            Err(ValidationError::NotLayout { .. })
        ));
        assert!(matches!(
            check("PUB Bad.safe.443.calc_example.x.*.GET.a"),
            Err(ValidationError::BadPlane { .. })
        ));
        for foreign in [
            "SUB {{plane}}.safe.*.*.orders_example.>",
            "SUB {{plane}}.safe.443.*.orders_example.*.POST.orders",
            "SUB {{plane}}.danger.666.*.access_token_core.>",
            "SUB {{plane}}.safe.417.*.orders_example.>",
            "SUB {{plane}}.safe.417.*.orders_example.*.>",
            "SUB {{plane}}.safe.417.*.orders_example.*.POST.*",
            "SUB {{plane}}.safe.417.*.orders_example.*.POST.>",
            "SUB {{plane}}.safe.*.*.orders_example.*.POST.on-x",
            "SUB {{plane}}.safe.888.*.orders_example.>",
            "SUB {{plane}}.safe.443.*.all.>",
            "SUB {{plane}}.safe.*.*.all.>",
        ] {
            assert!(
                matches!(
                    check(foreign),
                    Err(ValidationError::ForeignDestination { .. })
                ),
                "{foreign}: {:?}",
                check(foreign)
            );
        }
        for fine in [
            "SUB {{plane}}.safe.*.*.calc_example.>",
            "SUB {{plane}}.danger.666.*.calc_example.>",
            "SUB {{plane}}.reply._.*.calc_example.*",
            "SUB {{plane}}.safe.888.*.all.>",
            "SUB {{plane}}.safe.417.*.orders_example.*.POST.on-x",
            "SUB {{plane}}.safe.417.*.orders_example.*.*.on-x",
            "SUB {{plane}}.safe.417.*.orders_example.*.POST.on-x.*",
            "SUB {{plane}}.safe.417.*.orders_example.*.POST.on-x.>",
        ] {
            assert_eq!(check(fine), Ok(()), "{fine}");
        }
        assert!(check("PUB microbus.safe.443.calc_example.x.*.GET.a").is_ok());
        assert!(check("PUB {{plane}}.danger.666.calc_example.x.*.POST.mint").is_ok());
        assert!(check("PUB {{plane}}.safe.443.calc_example.*.*.GET.a").is_ok());
    }
}
