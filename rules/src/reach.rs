//! The reachability model of a deployment: who may call which endpoint.
//!
//! One model, computed from what the tools already know (every service's
//! endpoints with port, method, route and required claims; every service's
//! rule set with the call sites behind each rule; the policy's `[edge]` and
//! `[public]` tables), serves every view of it: the JSON document
//! (`gencreds graph --format json`, schema [`VERSION`]), the surface report
//! ([`Model::surface`]), the DOT and HTML graphs, the reachability section
//! of `busop diff` and `busop why`. Pure: the callers read the files.
//!
//! # Nodes and edges
//!
//! - A *service* node per service the deploy knows: the services whose
//!   crates were analysed (`in_tree`), and the hosts whose API is known but
//!   whose service crate is elsewhere (a path dependency's API crate).
//! - An *endpoint* per declared endpoint (functions, webs and events).
//! - An *edge* per (caller, `PUB` rule, endpoint the rule reaches): a call
//!   (`kind: "call"`), or a service firing its own event (`"event"`). A
//!   `PUB` rule that reaches no known endpoint still gives one edge, with
//!   `to: null` and the rule's target spelled out, so the edges are exactly
//!   the union of the `nats.acl` `PUB` rules (the implicit reply rule
//!   aside). Edges on `:666` are marked `trust_root`; edges whose rule has a
//!   wildcard destination (a `for_host(expr)` call, an escape-hatch grant
//!   with `*`) are marked `wildcard` and reach every matching endpoint.
//! - The `internet` node: edges of kind `"internet"` to every
//!   edge-reachable endpoint.
//!
//! # Edge-reachable
//!
//! An endpoint is edge-reachable when the ingress may forward a request
//! from outside to it: its port is one the `[edge]` firewall admits
//! ([`Edge::admits`]: never 666, 888 or 0) and it is not an event. When
//! the ingress's own service (the `[edge]` table's `ingress` hostname) is
//! in the model, its grants are the internet's reach: an endpoint is
//! edge-reachable only if an ingress edge reaches it too. Without an
//! `[edge]` table no ingress is configured, and the model assumes
//! Microbus's default firewall (`prod`: port 443 only), so a missing
//! setting never hides an endpoint from review; `ingress.configured` says
//! which case holds.

use crate::edge::{DEFAULT_INGRESS, Edge};
use crate::hostname::Hostname;
use crate::policy::{Policy, is_wildcard_grant};
use crate::route::{Method, Route, TRUST_ROOT_PORT};
use crate::rule::{Rule, RuleSet, Verb};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// The version of the JSON schema; a reader refuses any other.
pub const VERSION: u32 = 1;
/// The name of the node standing for everything outside the ingress.
pub const INTERNET: &str = "internet";

/// A call site behind an edge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SiteRef {
    /// File, relative to the scanned root.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What the code says there.
    pub what: String,
}

impl SiteRef {
    /// `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The endpoint kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// A typed function.
    Function,
    /// A raw web handler.
    Web,
    /// An outbound event the host fires.
    Event,
}

impl EndpointKind {
    /// Parses `function`, `web` or `event`.
    pub fn parse(s: &str) -> Option<EndpointKind> {
        match s {
            "function" => Some(EndpointKind::Function),
            "web" => Some(EndpointKind::Web),
            "event" => Some(EndpointKind::Event),
            _ => None,
        }
    }
}

/// The edge kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// A request to an endpoint.
    Call,
    /// A service firing its own event.
    Event,
    /// The internet reaching an endpoint through the ingress.
    Internet,
}

/// A service the builder is told about.
#[derive(Debug, Clone)]
pub struct ServiceIn {
    /// Its hostname.
    pub hostname: Hostname,
    /// Its package, when its crate was analysed.
    pub package: Option<String>,
    /// The bundle (a binary running several services) it runs in, if known.
    pub bundle: Option<String>,
    /// Its `nats.acl`, relative to the root.
    pub acl_path: Option<String>,
    /// Its rule set (`None`: only its API is known).
    pub rules: Option<RuleSet>,
    /// Every call site: the rule of the set that grants it, the narrower
    /// rule the site needs, and the site.
    pub sites: Vec<(Rule, Rule, SiteRef)>,
}

/// An endpoint the builder is told about.
#[derive(Debug, Clone)]
pub struct EndpointIn {
    /// The serving host (a route's own host overrides it).
    pub host: Hostname,
    /// Its method.
    pub method: Method,
    /// Its route.
    pub route: Route,
    /// Its kind.
    pub kind: EndpointKind,
    /// The API's method name.
    pub name: String,
    /// The required-claims expression, as written.
    pub claims: Option<String>,
    /// Where it is declared.
    pub at: Option<SiteRef>,
}

/// The ingress as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingress {
    /// Whether the policy has an `[edge]` table.
    pub configured: bool,
    /// The ingress hostname.
    pub hostname: String,
    /// The firewall mode.
    pub mode: String,
    /// The ports opened outside `local` (`"443"`, `"9000-9099"`).
    pub open_ports: Vec<String>,
    /// Whether the ingress's own service is in the model.
    pub in_tree: bool,
}

/// A service node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNode {
    /// Hostname.
    pub hostname: String,
    /// Package, when analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The bundle it runs in, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Its `nats.acl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_path: Option<String>,
    /// Whether its service crate was analysed (else only its API is known).
    pub in_tree: bool,
    /// Whether it is the ingress.
    pub ingress: bool,
}

/// An endpoint node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointNode {
    /// `HOST METHOD :PORT/ROUTE`, unique in the model.
    pub id: String,
    /// Serving host.
    pub host: String,
    /// Method (`ANY` for any).
    pub method: String,
    /// Port.
    pub port: u16,
    /// Path as declared (`/items/{id}`).
    pub route: String,
    /// Kind.
    pub kind: EndpointKind,
    /// The API method.
    pub name: String,
    /// Required claims, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
    /// Declaration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<SiteRef>,
    /// On port 666.
    pub trust_root: bool,
    /// Reachable from the internet through the ingress.
    pub edge: bool,
    /// Named by a `[public]` entry.
    pub public: bool,
}

/// An edge: a caller may reach an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEdge {
    /// The caller's hostname, or [`INTERNET`].
    pub from: String,
    /// The endpoint's id, or `None` when the rule reaches no known endpoint.
    pub to: Option<String>,
    /// `METHOD host:port/path` the rule names (the endpoint's, or the rule's target).
    pub target: String,
    /// The `PUB` rule (`None` for internet edges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Kind.
    pub kind: EdgeKind,
    /// On port 666.
    pub trust_root: bool,
    /// The rule's destination (or port, method, trust) is a wildcard.
    pub wildcard: bool,
    /// The call sites behind it.
    #[serde(default)]
    pub sites: Vec<SiteRef>,
}

/// A service hooking another's event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEdge {
    /// The sink's hostname.
    pub service: String,
    /// The event endpoint's id, when known.
    pub event: Option<String>,
    /// The `SUB` rule.
    pub rule: String,
}

/// The whole model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// Schema version ([`VERSION`]).
    pub version: u32,
    /// The ingress.
    pub ingress: Ingress,
    /// Services, by hostname.
    pub services: Vec<ServiceNode>,
    /// Endpoints, by id.
    pub endpoints: Vec<EndpointNode>,
    /// Edges: calls and events by caller then target, then internet edges.
    pub edges: Vec<ModelEdge>,
    /// Event hooks.
    pub hooks: Vec<HookEdge>,
}

/// Why a model document was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Not JSON of the model's shape.
    #[error("not a reachability model (`gencreds graph --format json`): {0}")]
    Json(#[from] serde_json::Error),
    /// Another schema version.
    #[error("reachability model version {found}; this tool reads version {VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
}

/// `METHOD host:port/path`.
pub fn target_text(method: &str, host: &str, port: u16, route: &str) -> String {
    format!("{method} {host}:{port}{route}")
}

/// The target a `PUB` request rule names: `METHOD host:port/path`, with
/// `*` for wildcard tokens and the host unflattened where it can be.
pub fn rule_target(rule: &Rule) -> String {
    let t: Vec<&str> = rule.tokens().collect();
    if t.len() < 8 {
        return rule.subject.clone();
    }
    let host = if t[4] == "*" {
        "*".to_string()
    } else {
        crate::hostname::unflatten(t[4]).unwrap_or_else(|| t[4].to_string())
    };
    let mut path = String::new();
    for seg in &t[7..] {
        path.push('/');
        path.push_str(seg);
    }
    format!("{} {host}:{}{path}", t[6], t[2])
}

fn is_reply_rule(rule: &Rule) -> bool {
    rule.tokens().nth(1) == Some("reply")
}

/// The request pattern an endpoint receives from any caller.
fn endpoint_pattern(e: &EndpointIn, host: &Hostname) -> String {
    let method = if e.method.is_any() {
        "*"
    } else {
        e.method.as_str()
    };
    let dest = host.flatten();
    let src = if e.kind == EndpointKind::Event {
        dest.as_str()
    } else {
        "*"
    };
    crate::derive::request_pattern(e.route.port, src, &dest, method, &e.route)
}

/// Builds the model.
pub fn build(services: &[ServiceIn], endpoints: &[EndpointIn], policy: Option<&Policy>) -> Model {
    let edge_cfg = policy.and_then(|p| p.edge.clone());
    let configured = edge_cfg.is_some();
    let fw: Edge = edge_cfg.unwrap_or_default();
    let ingress_host = fw.ingress.as_str().to_string();
    let known: BTreeSet<&str> = services.iter().map(|s| s.hostname.as_str()).collect();
    let ingress_in_tree = services
        .iter()
        .any(|s| s.hostname.as_str() == ingress_host && s.rules.is_some());

    // Endpoints, deduplicated by id, indexed by flattened host.
    struct Ep<'a> {
        node: EndpointNode,
        pattern: String,
        input: &'a EndpointIn,
    }
    let mut eps: BTreeMap<String, Ep<'_>> = BTreeMap::new();
    for e in endpoints {
        let host = e.route.host.clone().unwrap_or_else(|| e.host.clone());
        let route = e.route.path();
        let id = format!(
            "{} {} :{}{}",
            host.as_str(),
            e.method.as_str(),
            e.route.port,
            route
        );
        let public = policy.and_then(|p| p.public.as_ref()).is_some_and(|list| {
            list.iter()
                .any(|p| p.endpoint.names(&e.method, &host, &e.route))
        });
        let pattern = endpoint_pattern(e, &host);
        eps.entry(id.clone()).or_insert(Ep {
            node: EndpointNode {
                id,
                host: host.as_str().to_string(),
                method: e.method.as_str().to_string(),
                port: e.route.port,
                route,
                kind: e.kind,
                name: e.name.clone(),
                claims: e.claims.clone(),
                at: e.at.clone(),
                trust_root: e.route.port == TRUST_ROOT_PORT,
                edge: false,
                public,
            },
            pattern,
            input: e,
        });
    }
    let mut by_host: HashMap<String, Vec<&str>> = HashMap::new();
    for (id, ep) in &eps {
        by_host
            .entry(
                ep.input
                    .route
                    .host
                    .as_ref()
                    .unwrap_or(&ep.input.host)
                    .flatten(),
            )
            .or_default()
            .push(id.as_str());
    }
    let all_ids: Vec<&str> = eps.keys().map(String::as_str).collect();

    let mut edges: Vec<ModelEdge> = vec![];
    let mut hooks: Vec<HookEdge> = vec![];
    for s in services {
        let Some(rules) = &s.rules else { continue };
        let me = s.hostname.as_str();
        for rule in rules.iter() {
            let t: Vec<&str> = rule.tokens().collect();
            if rule.verb == Verb::Sub {
                // Hooks: SUB on another host's :417 routes.
                if t.get(2) == Some(&"417") && t.get(3) == Some(&"*") {
                    let event = t
                        .get(4)
                        .and_then(|d| by_host.get(*d))
                        .into_iter()
                        .flatten()
                        .find(|id| {
                            let ep = &eps[**id];
                            ep.input.kind == EndpointKind::Event
                                && crate::pattern::overlaps(&rule.subject, &ep.pattern)
                        })
                        .map(|id| id.to_string());
                    hooks.push(HookEdge {
                        service: me.to_string(),
                        event,
                        rule: rule.to_string(),
                    });
                }
                continue;
            }
            if is_reply_rule(rule) {
                continue;
            }
            let candidates: &[&str] = match t.get(4) {
                Some(&"*") | Some(&">") | None => &all_ids,
                Some(d) => by_host.get(*d).map_or(&[], Vec::as_slice),
            };
            let wildcard = is_wildcard_grant(rule);
            let trust_root = rule.is_danger();
            let rule_sites: Vec<&(Rule, Rule, SiteRef)> =
                s.sites.iter().filter(|(g, _, _)| g == rule).collect();
            let mut hit = false;
            for id in candidates {
                let ep = &eps[*id];
                if !crate::pattern::overlaps(&rule.subject, &ep.pattern) {
                    continue;
                }
                // An event is fired by its own host only.
                if ep.input.kind == EndpointKind::Event && ep.node.host != me {
                    continue;
                }
                hit = true;
                let mut sites: Vec<SiteRef> = rule_sites
                    .iter()
                    .filter(|(_, need, _)| crate::pattern::overlaps(&need.subject, &ep.pattern))
                    .map(|(_, _, site)| site.clone())
                    .collect();
                if sites.is_empty() {
                    sites = rule_sites.iter().map(|(_, _, s)| s.clone()).collect();
                }
                sites.sort();
                sites.dedup();
                edges.push(ModelEdge {
                    from: me.to_string(),
                    to: Some(ep.node.id.clone()),
                    target: target_text(
                        &ep.node.method,
                        &ep.node.host,
                        ep.node.port,
                        &ep.node.route,
                    ),
                    rule: Some(rule.to_string()),
                    kind: if ep.input.kind == EndpointKind::Event {
                        EdgeKind::Event
                    } else {
                        EdgeKind::Call
                    },
                    trust_root: trust_root || ep.node.trust_root,
                    wildcard,
                    sites,
                });
            }
            if !hit {
                let mut sites: Vec<SiteRef> =
                    rule_sites.iter().map(|(_, _, s)| s.clone()).collect();
                sites.sort();
                sites.dedup();
                edges.push(ModelEdge {
                    from: me.to_string(),
                    to: None,
                    target: rule_target(rule),
                    rule: Some(rule.to_string()),
                    kind: if t.get(2) == Some(&"417") {
                        EdgeKind::Event
                    } else {
                        EdgeKind::Call
                    },
                    trust_root,
                    wildcard,
                    sites,
                });
            }
        }
    }

    // Edge reachability.
    let ingress_reach: Option<BTreeSet<&str>> = ingress_in_tree.then(|| {
        edges
            .iter()
            .filter(|e| e.from == ingress_host)
            .filter_map(|e| e.to.as_deref())
            .collect()
    });
    let mut internet = vec![];
    for ep in eps.values_mut() {
        let reachable = ep.input.kind != EndpointKind::Event
            && fw.admits(ep.node.port)
            && ep.node.host != ingress_host
            && ingress_reach
                .as_ref()
                .is_none_or(|r| r.contains(ep.node.id.as_str()));
        ep.node.edge = reachable;
        if reachable {
            internet.push(ModelEdge {
                from: INTERNET.to_string(),
                to: Some(ep.node.id.clone()),
                target: target_text(&ep.node.method, &ep.node.host, ep.node.port, &ep.node.route),
                rule: None,
                kind: EdgeKind::Internet,
                trust_root: false,
                wildcard: false,
                sites: vec![],
            });
        }
    }
    edges.sort_by(|a, b| (&a.from, &a.target, &a.rule).cmp(&(&b.from, &b.target, &b.rule)));
    edges.extend(internet);
    hooks.sort_by(|a, b| (&a.service, &a.rule).cmp(&(&b.service, &b.rule)));

    let mut nodes: BTreeMap<String, ServiceNode> = BTreeMap::new();
    for s in services {
        nodes.insert(
            s.hostname.as_str().to_string(),
            ServiceNode {
                hostname: s.hostname.as_str().to_string(),
                package: s.package.clone(),
                bundle: s.bundle.clone(),
                acl_path: s.acl_path.clone(),
                in_tree: s.rules.is_some(),
                ingress: s.hostname.as_str() == ingress_host,
            },
        );
    }
    for ep in eps.values() {
        if !known.contains(ep.node.host.as_str()) {
            nodes
                .entry(ep.node.host.clone())
                .or_insert_with(|| ServiceNode {
                    hostname: ep.node.host.clone(),
                    package: None,
                    bundle: None,
                    acl_path: None,
                    in_tree: false,
                    ingress: ep.node.host == ingress_host,
                });
        }
    }
    Model {
        version: VERSION,
        ingress: Ingress {
            configured,
            hostname: if configured {
                ingress_host
            } else {
                DEFAULT_INGRESS.to_string()
            },
            mode: fw.mode.as_str().to_string(),
            open_ports: fw.open_ports().iter().map(|p| p.to_string()).collect(),
            in_tree: ingress_in_tree,
        },
        services: nodes.into_values().collect(),
        endpoints: eps.into_values().map(|e| e.node).collect(),
        edges,
        hooks,
    }
}

impl EndpointNode {
    /// The surface line: `EDGE <port> <host> <METHOD> <route> claims=<expr|->`.
    pub fn surface_line(&self) -> String {
        let claims = match &self.claims {
            Some(c) => c.split_whitespace().collect::<Vec<_>>().join(""),
            None => "-".to_string(),
        };
        format!(
            "EDGE {} {} {} {} claims={claims}",
            self.port, self.host, self.method, self.route
        )
    }
}

impl Model {
    /// Reads a model document, refusing another version.
    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        #[derive(Deserialize)]
        struct Head {
            version: u32,
        }
        let head: Head = serde_json::from_str(text)?;
        if head.version != VERSION {
            return Err(ModelError::Version {
                found: head.version,
            });
        }
        Ok(serde_json::from_str(text)?)
    }

    /// The surface report: one line per edge-reachable endpoint, sorted.
    pub fn surface(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .endpoints
            .iter()
            .filter(|e| e.edge)
            .map(EndpointNode::surface_line)
            .collect();
        lines.sort();
        lines
    }

    /// The surface report as text, one line each.
    pub fn surface_text(&self) -> String {
        let mut out = String::new();
        for l in self.surface() {
            let _ = writeln!(out, "{l}");
        }
        out
    }

    /// Edge-reachable endpoints that require no claims and that no
    /// `[public]` entry names (checked only when the policy has the list).
    pub fn unlisted_public<'m>(&'m self, policy: &Policy) -> Vec<&'m EndpointNode> {
        if policy.public.is_none() {
            return vec![];
        }
        self.endpoints
            .iter()
            .filter(|e| e.edge && e.claims.is_none() && !e.public)
            .collect()
    }

    /// The endpoint with this id.
    pub fn endpoint(&self, id: &str) -> Option<&EndpointNode> {
        self.endpoints
            .binary_search_by(|e| e.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.endpoints[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{Call, Dest, ServiceModel, derive};

    fn h(s: &str) -> Hostname {
        Hostname::parse(s).unwrap()
    }

    fn ep(host: &str, method: &str, route: &str, claims: Option<&str>) -> EndpointIn {
        EndpointIn {
            host: h(host),
            method: Method::parse(method).unwrap(),
            route: Route::parse(route).unwrap(),
            kind: EndpointKind::Function,
            name: "f".into(),
            claims: claims.map(str::to_string),
            at: None,
        }
    }

    fn svc(host: &str, calls: &[(Dest, &str, &str)]) -> ServiceIn {
        let mut m = ServiceModel::new(h(host));
        for (dest, method, route) in calls {
            m.calls.push(Call {
                dest: dest.clone(),
                method: Method::parse(method).unwrap(),
                route: Route::parse(route).unwrap(),
            });
        }
        ServiceIn {
            hostname: h(host),
            package: None,
            bundle: None,
            acl_path: None,
            rules: Some(derive(&m)),
            sites: vec![],
        }
    }

    #[test]
    fn edges_follow_rules_and_mark_trust_root_and_wildcards() {
        let eps = vec![
            ep("a.example", "GET", "/items/{id}", None),
            ep("a.example", "POST", ":666/mint", None),
            ep("b.example", "GET", "/items/{id}", Some("roles.admin")),
            ep("b.example", "GET", ":444/x", None),
        ];
        let services = vec![
            svc(
                "c.example",
                &[
                    (Dest::Host(h("a.example")), "GET", "/items/7"),
                    (Dest::Host(h("a.example")), "POST", ":666/mint"),
                    (Dest::Any, "GET", "/items/{x}"),
                    (Dest::Host(h("z.example")), "GET", "/nowhere"),
                ],
            ),
            svc("a.example", &[]),
        ];
        let m = build(&services, &eps, None);
        let from_c: Vec<(&str, Option<&str>, bool, bool)> = m
            .edges
            .iter()
            .filter(|e| e.from == "c.example")
            .map(|e| (e.target.as_str(), e.to.as_deref(), e.trust_root, e.wildcard))
            .collect();
        assert!(from_c.contains(&(
            "POST a.example:666/mint",
            Some("a.example POST :666/mint"),
            true,
            false
        )));
        // The wildcard reaches both hosts' /items/{id}.
        let wild: Vec<_> = from_c.iter().filter(|e| e.3).map(|e| e.1).collect();
        assert_eq!(
            wild,
            vec![
                Some("a.example GET :443/items/{id}"),
                Some("b.example GET :443/items/{id}")
            ]
        );
        assert!(from_c.contains(&("GET z.example:443/nowhere", None, false, false)));
        // No [edge]: the default firewall, 443 only; 666 never.
        assert!(!m.ingress.configured);
        assert_eq!(
            m.surface(),
            vec![
                "EDGE 443 a.example GET /items/{id} claims=-",
                "EDGE 443 b.example GET /items/{id} claims=roles.admin",
            ]
        );
        let round = Model::from_json(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(round, m);
        let mut v: serde_json::Value = serde_json::to_value(&m).unwrap();
        v["version"] = 2.into();
        assert!(matches!(
            Model::from_json(&v.to_string()),
            Err(ModelError::Version { found: 2 })
        ));
    }

    #[test]
    fn the_ingress_in_the_tree_is_the_internet_s_reach() {
        let eps = vec![
            ep("a.example", "GET", "/one", None),
            ep("a.example", "GET", "/two", None),
            ep("a.example", "GET", ":9000/three", None),
        ];
        let policy = Policy::parse(
            "version = 1\n[edge]\nallowed-internal-ports = [9000]\n[public]\nendpoints = [\"GET a.example/one\"]\n",
        )
        .unwrap();
        let without = build(&[], &eps, Some(&policy));
        assert_eq!(without.surface().len(), 3);
        assert_eq!(
            without
                .unlisted_public(&policy)
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>(),
            vec!["a.example GET :443/two", "a.example GET :9000/three"]
        );
        let ingress = svc(
            "http.ingress.core",
            &[(Dest::Host(h("a.example")), "GET", "/one")],
        );
        let with = build(&[ingress], &eps, Some(&policy));
        assert!(with.ingress.in_tree);
        assert_eq!(with.surface(), vec!["EDGE 443 a.example GET /one claims=-"]);
    }
}
