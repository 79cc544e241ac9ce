//! `busop diff OLD NEW`: grant changes per service between two files,
//! folders or git revisions, trust-root (`danger`) lines first, as text,
//! JSON, or a Markdown comment ready to post on a pull request.
//!
//! The change in reachability comes first: new caller -> endpoint edges,
//! endpoints that became reachable from the internet, new trust-root edges.
//! With the reachability models of both sides (`--old-model`/`--new-model`,
//! from `gencreds graph --format json`) it is exact, endpoints and required
//! claims included; without them it is read from the `PUB` rules (the
//! internet's reach then from the ingress's own `nats.acl`, when present).

use crate::error::{BusopError, Result};
use crate::report::{EXIT_FINDINGS, Report};
use crate::source::{self, RuleSets};
use buswarden_rules::diff::{DiffLine, RuleDiff};
use buswarden_rules::edge::DEFAULT_INGRESS;
use buswarden_rules::reach::{self, EdgeKind, Model};
use buswarden_rules::{RuleSet, Verb};
use serde::Serialize;
use std::collections::BTreeSet;
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

/// A caller -> endpoint edge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ReachEdge {
    /// The caller.
    pub from: String,
    /// `METHOD host:port/path`.
    pub target: String,
    /// On :666.
    pub trust_root: bool,
    /// A wildcard grant.
    pub wildcard: bool,
}

/// An endpoint that became reachable from the internet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NewSurface {
    /// `EDGE <port> <host> <METHOD> <route> claims=<expr|->`, or the target
    /// the ingress's rule names when only `nats.acl` files are known.
    pub endpoint: String,
    /// Whether it requires no claims (`None`: unknown without models).
    pub no_claims: Option<bool>,
    /// Whether a `[public]` entry names it (`None`: unknown).
    pub public: Option<bool>,
}

/// What can now reach what that could not before.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reachability {
    /// `models` (both sides' `gencreds graph` JSON) or `nats.acl`.
    pub source: &'static str,
    /// New caller -> endpoint edges.
    pub new_edges: Vec<ReachEdge>,
    /// Endpoints that became reachable from the internet.
    pub new_edge_reachable: Vec<NewSurface>,
    /// New trust-root edges (also in `new_edges`).
    pub new_trust_root: Vec<ReachEdge>,
}

impl Reachability {
    /// Whether nothing new can be reached.
    pub fn is_empty(&self) -> bool {
        self.new_edges.is_empty() && self.new_edge_reachable.is_empty()
    }

    /// From the `PUB` rules of both sides.
    pub fn from_rules(old: &RuleSets, new: &RuleSets) -> Reachability {
        let empty = RuleSet::new();
        let mut r = Reachability {
            source: "nats.acl",
            ..Default::default()
        };
        for (name, n) in new {
            let o = old.get(name).map_or(&empty, |s| &s.rules);
            for rule in n.rules.of(Verb::Pub) {
                if rule.tokens().nth(1) == Some("reply") || o.covering(rule).is_some() {
                    continue;
                }
                let target = reach::rule_target(rule);
                if name == DEFAULT_INGRESS {
                    let port = rule.tokens().nth(2).unwrap_or("");
                    if port != "666" && port != "888" {
                        r.new_edge_reachable.push(NewSurface {
                            endpoint: target.clone(),
                            no_claims: None,
                            public: None,
                        });
                    }
                }
                r.new_edges.push(ReachEdge {
                    from: name.clone(),
                    target,
                    trust_root: rule.is_danger(),
                    wildcard: buswarden_rules::policy::is_wildcard_grant(rule),
                });
            }
        }
        r.finish()
    }

    /// From both sides' reachability models.
    pub fn from_models(old: &Model, new: &Model) -> Reachability {
        let key = |e: &reach::ModelEdge| (e.from.clone(), e.target.clone());
        let before: BTreeSet<(String, String)> = old
            .edges
            .iter()
            .filter(|e| e.kind != EdgeKind::Internet)
            .map(key)
            .collect();
        let mut r = Reachability {
            source: "models",
            ..Default::default()
        };
        for e in new.edges.iter().filter(|e| e.kind != EdgeKind::Internet) {
            if !before.contains(&key(e)) {
                r.new_edges.push(ReachEdge {
                    from: e.from.clone(),
                    target: e.target.clone(),
                    trust_root: e.trust_root,
                    wildcard: e.wildcard,
                });
            }
        }
        let was: BTreeSet<&str> = old
            .endpoints
            .iter()
            .filter(|e| e.edge)
            .map(|e| e.id.as_str())
            .collect();
        for e in new.endpoints.iter().filter(|e| e.edge) {
            if !was.contains(e.id.as_str()) {
                r.new_edge_reachable.push(NewSurface {
                    endpoint: e.surface_line(),
                    no_claims: Some(e.claims.is_none()),
                    public: Some(e.public),
                });
            }
        }
        r.finish()
    }

    fn finish(mut self) -> Reachability {
        self.new_edges.sort();
        self.new_edges.dedup();
        self.new_edge_reachable.sort();
        self.new_edge_reachable.dedup();
        self.new_trust_root = self
            .new_edges
            .iter()
            .filter(|e| e.trust_root)
            .cloned()
            .collect();
        self
    }

    fn edge_text(e: &ReachEdge) -> String {
        let mut s = format!("{} -> {}", e.from, e.target);
        if e.trust_root {
            s.push_str("  (trust root)");
        }
        if e.wildcard {
            s.push_str("  (wildcard)");
        }
        s
    }

    fn surface_text(s: &NewSurface) -> String {
        let mut t = s.endpoint.clone();
        if s.no_claims == Some(true) {
            t.push_str(if s.public == Some(true) {
                "  (no claims; listed in [public])"
            } else {
                "  (NO CLAIMS, not listed in [public])"
            });
        }
        t
    }

    /// Human text lines.
    pub fn human(&self) -> String {
        let mut h = String::new();
        if self.is_empty() {
            return h;
        }
        let _ = writeln!(h, "reachability (from {}):", self.source);
        for s in &self.new_edge_reachable {
            let _ = writeln!(h, "  newly edge-reachable  {}", Self::surface_text(s));
        }
        for e in &self.new_trust_root {
            let _ = writeln!(h, "  new trust-root edge   {}", Self::edge_text(e));
        }
        for e in &self.new_edges {
            let _ = writeln!(h, "  new edge              {}", Self::edge_text(e));
        }
        h
    }

    /// The Markdown section (first in the pull-request comment).
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "### Reachability\n");
        if self.is_empty() {
            let _ = writeln!(
                m,
                "Nothing new can be reached: no new caller → endpoint edge, no endpoint newly reachable from the internet.\n"
            );
            return m;
        }
        if !self.new_edge_reachable.is_empty() {
            let _ = writeln!(m, "**Newly reachable from the internet**\n");
            for s in &self.new_edge_reachable {
                let _ = writeln!(
                    m,
                    "- `{}`{}",
                    s.endpoint,
                    match (s.no_claims, s.public) {
                        (Some(true), Some(true)) => " (no claims; listed in `[public]`)",
                        (Some(true), _) => " **no claims, not listed in `[public]`**",
                        _ => "",
                    }
                );
            }
            m.push('\n');
        }
        if !self.new_trust_root.is_empty() {
            let _ = writeln!(m, "**New trust-root (:666) edges**\n");
            for e in &self.new_trust_root {
                let _ = writeln!(m, "- `{}` → `{}`", e.from, e.target);
            }
            m.push('\n');
        }
        let others: Vec<&ReachEdge> = self.new_edges.iter().filter(|e| !e.trust_root).collect();
        if !others.is_empty() {
            let _ = writeln!(m, "**New caller → endpoint edges**\n");
            for e in others {
                let mark = match (e.trust_root, e.wildcard) {
                    (true, _) => " (trust root)",
                    (_, true) => " (wildcard)",
                    _ => "",
                };
                let _ = writeln!(m, "- `{}` → `{}`{mark}", e.from, e.target);
            }
            m.push('\n');
        }
        if self.source == "nats.acl" {
            let _ = writeln!(
                m,
                "<sub>Read from the `PUB` rules; pass `--old-model`/`--new-model` (`gencreds graph --format json`) for endpoints and required claims.</sub>\n"
            );
        }
        m
    }
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

/// The pull-request comment: reachability first, then the grants.
pub fn markdown(diffs: &[ServiceDiff], reach: &Reachability) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "## buswarden: broker grant changes\n");
    m.push_str(&reach.markdown());
    let _ = writeln!(m, "### Grants\n");
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
        let _ = writeln!(m, "\n#### `{}`\n", d.service);
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

/// Reads a reachability model: a file or `git:REV:path`.
pub fn read_model(spec: &str) -> Result<Model> {
    let text = match spec.strip_prefix("git:") {
        Some(rest) => {
            let (rev, path) = rest.split_once(':').unwrap_or((rest, ""));
            if rev.is_empty() || rev.starts_with('-') || path.is_empty() {
                return Err(BusopError::Usage(format!("{spec}: expected git:REV:path")));
            }
            source::git(&["show", &format!("{rev}:./{path}")])?
        }
        None => std::fs::read_to_string(spec).map_err(BusopError::io("read", spec))?,
    };
    Model::from_json(&text).map_err(|e| BusopError::Unrecognized {
        path: spec.into(),
        what: e.to_string(),
    })
}

/// Runs `busop diff`; the models, when given, are both sides' reachability.
pub fn run(old: &str, new: &str, models: Option<(&str, &str)>, exit_code: bool) -> Result<Report> {
    let (o, n) = (source::read(old)?, source::read(new)?);
    let diffs = compare(&o, &n);
    let reach = match models {
        Some((a, b)) => Reachability::from_models(&read_model(a)?, &read_model(b)?),
        None => Reachability::from_rules(&o, &n),
    };
    let mut text = human(&diffs);
    text.push_str(&reach.human());
    let mut report = Report::new(
        text,
        serde_json::json!({
            "old": old,
            "new": new,
            "services": diffs,
            "danger": diffs.iter().map(|d| d.danger).sum::<usize>(),
            "reachability": reach,
        }),
    );
    report.markdown = Some(markdown(&diffs, &reach));
    if exit_code && (!diffs.is_empty() || !reach.is_empty()) {
        report.exit = EXIT_FINDINGS;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ServiceRules;
    use buswarden_rules::reach::{EndpointIn, EndpointKind, ServiceIn, build};
    use buswarden_rules::{Hostname, Method, Route, Rule, ServiceModel};

    fn sets(acls: &[(&str, &[&str])]) -> RuleSets {
        acls.iter()
            .map(|(host, pubs)| {
                let mut rules: RuleSet =
                    buswarden_rules::derive(&ServiceModel::new(Hostname::parse(host).unwrap()));
                for p in *pubs {
                    rules.insert(Rule::parse(p).unwrap());
                }
                (
                    host.to_string(),
                    ServiceRules {
                        file: format!("{host}/nats.acl"),
                        rules,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn from_rules_names_new_edges_trust_root_and_the_ingress_reach() {
        let old = sets(&[(
            "http.ingress.core",
            &["PUB {{plane}}.safe.443.http_ingress_core.a_example.*.GET.x"],
        )]);
        let new = sets(&[
            (
                "http.ingress.core",
                &[
                    "PUB {{plane}}.safe.443.http_ingress_core.a_example.*.GET.x",
                    "PUB {{plane}}.safe.443.http_ingress_core.b_example.*.GET.y.*",
                ],
            ),
            (
                "c.example",
                &["PUB {{plane}}.danger.666.c_example.access_token_core.*.POST.mint"],
            ),
        ]);
        let r = Reachability::from_rules(&old, &new);
        assert_eq!(r.source, "nats.acl");
        assert_eq!(
            r.new_edge_reachable
                .iter()
                .map(|s| s.endpoint.as_str())
                .collect::<Vec<_>>(),
            ["GET b.example:443/y/*"]
        );
        assert_eq!(r.new_trust_root.len(), 1);
        assert_eq!(
            r.new_trust_root[0].target,
            "POST access.token.core:666/mint"
        );
        assert_eq!(r.new_edges.len(), 2);
        let md = r.markdown();
        assert!(md.starts_with("### Reachability\n\n**Newly reachable from the internet**\n\n- `GET b.example:443/y/*`\n"), "{md}");
        assert!(Reachability::from_rules(&new, &new).is_empty());
    }

    #[test]
    fn from_models_flags_a_new_claimless_edge_endpoint() {
        let ep = |route: &str, claims: Option<&str>| EndpointIn {
            host: Hostname::parse("a.example").unwrap(),
            method: Method::parse("GET").unwrap(),
            route: Route::parse(route).unwrap(),
            kind: EndpointKind::Function,
            name: "f".into(),
            claims: claims.map(str::to_string),
            at: None,
        };
        let svc: Vec<ServiceIn> = vec![];
        let old = build(&svc, &[ep("/one", None)], None);
        let new = build(
            &svc,
            &[
                ep("/one", None),
                ep("/two", None),
                ep("/three", Some("roles.x")),
            ],
            None,
        );
        let r = Reachability::from_models(&old, &new);
        assert_eq!(r.source, "models");
        let lines: Vec<String> = r
            .new_edge_reachable
            .iter()
            .map(Reachability::surface_text)
            .collect();
        assert_eq!(
            lines,
            [
                "EDGE 443 a.example GET /three claims=roles.x",
                "EDGE 443 a.example GET /two claims=-  (NO CLAIMS, not listed in [public])",
            ]
        );
    }
}
