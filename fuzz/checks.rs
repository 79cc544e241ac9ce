//! What each fuzz target asserts, shared by the libFuzzer targets and by the
//! stable test `rules/tests/fuzz_corpus.rs` that replays every corpus file:
//! no input panics, and whatever parses survives a round trip unchanged.
#![allow(dead_code)] // each target uses one function

use buswarden_rules::budget::{ConnectModel, estimate};
use buswarden_rules::derive::{ServiceModel, derive};
use buswarden_rules::diff::RuleDiff;
use buswarden_rules::hostname::Hostname;
use buswarden_rules::policy::{Policy, Violation, evaluate, evaluate_without_policy};
use buswarden_rules::route::{Route, Url};
use buswarden_rules::rule::Rule;
use buswarden_rules::subject::{Subject, decode, reply, request};
use buswarden_rules::{acl, validate};

/// Subject decoding: a decoded subject re-encodes to the same bytes.
pub fn decode_subject(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Ok(Subject::Request(r)) => {
            let again = request(
                &r.plane, r.port, &r.src, &r.dest, &r.pos, &r.method, &r.path,
            );
            assert_eq!(again, text, "request re-encodes differently");
        }
        Ok(Subject::Reply(r)) => {
            let again = reply(&r.plane, &r.responder, &r.caller, &r.caller_id);
            assert_eq!(again, text, "reply re-encodes differently");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `nats.acl` parsing: a parsed file prints canonically, and the canonical
/// text parses back to the same rules; validation, budget and diff accept it.
pub fn parse_acl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match acl::parse(text) {
        Ok(file) => {
            let printed = acl::print(&file.hostname, &file.rules);
            let again = acl::parse(&printed).expect("canonical text parses");
            assert_eq!(again, file, "print/parse round trip");
            assert_eq!(acl::print(&again.hostname, &again.rules), printed);
            let _ = validate::validate(&file.hostname, &file.rules);
            let e = estimate(&file.hostname, &file.rules, &ConnectModel::default());
            assert_eq!(e.contributors.len(), file.rules.len());
            assert!(RuleDiff::between(&file.rules, &file.rules).is_empty());
            let own = derive(&ServiceModel::new(file.hostname.clone()));
            let d = RuleDiff::between(&own, &file.rules);
            assert_eq!(
                d.added.len() + own.len(),
                d.removed.len() + file.rules.len()
            );
            let _ = evaluate_without_policy(&file.hostname, &file.rules);
            let mut min = file.rules.clone();
            min.minimize();
            assert!(min.len() <= file.rules.len());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `buswarden.toml` parsing: errors carry a location inside the file, and a
/// parsed policy evaluates any rule set without panicking.
pub fn parse_policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(text) {
        Ok(policy) => {
            for (caller, allowed) in &policy.callers {
                let mut rules = derive(&ServiceModel::new(caller.clone()));
                for g in allowed.trust_root.iter().chain(&allowed.wildcards) {
                    rules.insert(g.rule.clone());
                }
                // Every listed grant is allowed by the policy that lists it:
                // a violation names a rule its list does not hold.
                fn listed(grants: &[buswarden_rules::policy::Grant], r: &Rule) -> bool {
                    grants.iter().any(|g| &g.rule == r)
                }
                for v in evaluate(&policy, caller, &rules) {
                    match &v {
                        Violation::UnlistedTrustRootGrant { rule, .. } => {
                            assert!(!listed(&allowed.trust_root, rule), "{v}")
                        }
                        Violation::UnlistedWildcardGrant { rule, .. } => {
                            assert!(!listed(&allowed.wildcards, rule), "{v}")
                        }
                        Violation::DynamicTrustRoot { .. } => {
                            assert!(!allowed.dynamic_trust_root, "{v}")
                        }
                        _ => {}
                    }
                }
            }
        }
        Err(e) => {
            let lines = text.lines().count().max(1);
            if let Some(at) = e.location() {
                assert!(at.line >= 1 && at.line <= lines + 1, "{e} outside the file");
                assert!(at.column >= 1);
            }
            let _ = e.to_string();
        }
    }
}

/// Hostname, route and URL parsing: accepted values print back to text
/// that parses to the same value.
pub fn parse_route(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = Hostname::parse(text) {
        assert_eq!(Hostname::parse(h.as_str()), Ok(h.clone()));
        assert!(!h.flatten().contains(['.', '*', '>']));
    }
    if let Ok(r) = Route::parse(text) {
        let printed = r.to_string();
        assert_eq!(Route::parse(&printed).as_ref(), Ok(&r), "{printed}");
    }
    if let Ok(u) = Url::parse(text) {
        assert!(u.path.starts_with('/'));
        let _ = u.route();
    }
}
