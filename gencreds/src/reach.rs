//! The reachability model of what gencreds analysed: every service's rules
//! with their call sites, every known API's endpoints with their required
//! claims and declarations, and the policy's `[edge]`/`[public]` tables,
//! handed to [`buswarden_rules::reach::build`]. Owns the
//! `public-endpoint-unlisted` check, which `check` and `sign` refuse on.

use crate::analysis::{Analysis, ServedEndpoint};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::Loc;
use buswarden_rules::reach::{self, EndpointIn, EndpointKind, Model, ServiceIn, SiteRef};
use buswarden_rules::{Hostname, Method, Route};
use std::collections::BTreeSet;

fn endpoint_in(host: &Hostname, e: &ServedEndpoint) -> Option<EndpointIn> {
    Some(EndpointIn {
        host: host.clone(),
        method: Method::parse(&e.method).ok()?,
        route: Route::parse(&e.route).ok()?,
        kind: EndpointKind::parse(e.kind)?,
        name: e.name.clone(),
        claims: e.claims.clone(),
        at: Some(SiteRef {
            file: e.file.clone(),
            line: e.loc.line,
            column: e.loc.col,
            what: format!("{} {} {}", e.kind, e.method, e.route),
        }),
    })
}

/// The builder's inputs from analyses of one deploy (the first root's
/// policy is the deploy's; a service analysed twice counts once, first
/// root first).
pub fn inputs(analyses: &[&Analysis]) -> (Vec<ServiceIn>, Vec<EndpointIn>) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut services = vec![];
    let mut endpoints = vec![];
    for an in analyses {
        for s in &an.services {
            if !seen.insert(s.model.hostname.as_str()) {
                continue;
            }
            let sites = s
                .provenance
                .iter()
                .map(|p| {
                    let what = match &p.site.via {
                        Some(v) => format!("{} (reached from {v})", p.site.what),
                        None => p.site.what.clone(),
                    };
                    (
                        p.granted_by.clone(),
                        p.rule.clone(),
                        SiteRef {
                            file: p.site.file.clone(),
                            line: p.site.loc.line,
                            column: p.site.loc.col,
                            what,
                        },
                    )
                })
                .collect();
            services.push(ServiceIn {
                hostname: s.model.hostname.clone(),
                package: Some(s.package.clone()),
                bundle: s.bundle.clone(),
                acl_path: Some(s.acl_path.clone()),
                rules: Some(s.rules.clone()),
                sites,
            });
        }
    }
    // Endpoints: every known API (own services' and dependencies'); an API
    // known from several roots counts once (the builder keeps the first).
    for an in analyses {
        for api in &an.apis {
            endpoints.extend(
                api.endpoints
                    .iter()
                    .filter_map(|e| endpoint_in(&api.host, e)),
            );
        }
    }
    (services, endpoints)
}

/// The model of one or more analyses (one deploy).
pub fn model(analyses: &[&Analysis]) -> Model {
    let (services, endpoints) = inputs(analyses);
    let policy = analyses.first().and_then(|a| a.policy.as_ref());
    reach::build(&services, &endpoints, policy)
}

/// `public-endpoint-unlisted`: with a `[public]` list in `buswarden.toml`,
/// every edge-reachable endpoint without required claims must be listed;
/// each one that is not is an error at its declaration.
pub fn public_diags(an: &Analysis) -> Vec<Diagnostic> {
    let Some(policy) = an.policy.as_ref().filter(|p| p.public.is_some()) else {
        return vec![];
    };
    let m = model(&[an]);
    m.unlisted_public(policy)
        .into_iter()
        .map(|e| {
            let (file, loc) = match &e.at {
                Some(s) => (
                    s.file.as_str(),
                    Loc {
                        line: s.line,
                        col: s.column,
                    },
                ),
                None => (crate::analysis::POLICY_FILE, Loc::default()),
            };
            let entry = if e.method == "ANY" {
                format!("{}:{}{}", e.host, e.port, e.route)
            } else {
                format!("{} {}:{}{}", e.method, e.host, e.port, e.route)
            };
            Diagnostic::new(
                Code::PublicEndpointUnlisted,
                file,
                loc,
                format!(
                    "endpoint {} {} :{}{} is reachable from the internet through the ingress ({}) and requires no claims; if it is public on purpose add \"{entry}\" to `endpoints` under [public] in buswarden.toml, otherwise require claims on it (e.g. `claims = \"roles.user\"` in its attribute)",
                    e.host, e.method, e.port, e.route, m.ingress.hostname
                ),
            )
        })
        .collect()
}
