//! Derivation of a service's rule set from its service model: its own
//! endpoints, the calls and events its code makes, the events it hooks, and
//! the implicit rules every service gets.
//!
//! Every rule is built with the same escaping as the wire (see
//! [`crate::subject`]), so what a service is granted is exactly what its
//! runtime publishes.

use crate::hostname::{Hostname, flatten};
use crate::route::{Method, Route, TRUST_ROOT_PORT};
use crate::rule::{PLANE_PLACEHOLDER, Rule, RuleSet, Verb};
use crate::subject::{Trust, route_path_tokens};

/// Where an outbound call goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dest {
    /// One host, known statically.
    Host(Hostname),
    /// Any host (`for_host(expr)` with a computed host): `*`.
    Any,
}

impl Dest {
    fn token(&self) -> String {
        match self {
            Dest::Host(h) => h.flatten(),
            Dest::Any => "*".to_string(),
        }
    }
}

/// An endpoint the service serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Its method (`ANY` accepts every method).
    pub method: Method,
    /// Its route; a host in the route serves it under that host.
    pub route: Route,
}

/// An outbound request the service's code makes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    /// The destination.
    pub dest: Dest,
    /// The method as sent on the wire (a typed call to `ANY` is sent as `POST`).
    pub method: Method,
    /// The route: port and path pattern (its `host` is ignored; `dest` rules).
    pub route: Route,
}

/// An outbound event the service fires (under its own hostname).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventOut {
    /// The event's method.
    pub method: Method,
    /// The event's route (normally on port 417).
    pub route: Route,
}

/// An inbound event the service hooks: fired by `source`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hook {
    /// The event source's hostname.
    pub source: Hostname,
    /// The event's method.
    pub method: Method,
    /// The event's route.
    pub route: Route,
}

/// Everything about one service that its grants depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceModel {
    /// The service's hostname.
    pub hostname: Hostname,
    /// Endpoints it serves.
    pub endpoints: Vec<Endpoint>,
    /// Requests its code makes.
    pub calls: Vec<Call>,
    /// Events it fires.
    pub events_out: Vec<EventOut>,
    /// Events it hooks.
    pub hooks: Vec<Hook>,
}

impl ServiceModel {
    /// A model with no endpoints, calls or events.
    pub fn new(hostname: Hostname) -> Self {
        ServiceModel {
            hostname,
            endpoints: vec![],
            calls: vec![],
            events_out: vec![],
            hooks: vec![],
        }
    }
}

fn port_token(port: u16) -> String {
    if port == 0 {
        "*".to_string()
    } else {
        port.to_string()
    }
}

/// `{{plane}}.<trust>.<port>.<src>.<dest>.*.<method>.<path pattern>`: the
/// shape of every request rule (port 0 is `*`).
pub(crate) fn request_pattern(
    port: u16,
    src: &str,
    dest: &str,
    method: &str,
    route: &Route,
) -> String {
    let mut s = format!(
        "{PLANE_PLACEHOLDER}.{}.{}.{src}.{dest}.*.{method}.",
        Trust::of_port(port).as_str(),
        port_token(port)
    );
    route_path_tokens(&mut s, &route.segments);
    s
}

/// `PUB {{plane}}.safe.<port>.<self>.*.*.*.>`: what the HTTP ingress's
/// `#[buswarden::edge_proxy]` fn is granted on one port the edge opens
/// (any host, instance, method and path on that port; never a `*` port).
pub fn edge_proxy_rule(own: &Hostname, port: u16) -> Rule {
    debug_assert!(port != 0 && port != TRUST_ROOT_PORT);
    rule(
        Verb::Pub,
        format!(
            "{PLANE_PLACEHOLDER}.{}.{port}.{}.*.*.*.>",
            Trust::of_port(port).as_str(),
            own.flatten()
        ),
    )
}

fn rule(verb: Verb, subject: String) -> Rule {
    // Invariant: every token above is either escaped or a fixed token, so the
    // pattern is always valid; `Rule::new` re-checks it in debug builds.
    debug_assert!(crate::pattern::is_valid(&subject), "{subject}");
    Rule { verb, subject }
}

/// `PUB {{plane}}.<trust>.<port>.<self>.<dest>.*.<METHOD>.<path>`.
///
/// The method is taken literally: a publisher sends one method, so a PUB rule
/// never widens `ANY` to `*`.
pub fn call_rule(own: &Hostname, call: &Call) -> Rule {
    let method = call.method.as_str();
    rule(
        Verb::Pub,
        request_pattern(
            call.route.port,
            &own.flatten(),
            &call.dest.token(),
            method,
            &call.route,
        ),
    )
}

/// `PUB {{plane}}.safe.417.<self>.<self>.*.<METHOD>.<route>`.
pub fn event_rule(own: &Hostname, event: &EventOut) -> Rule {
    let me = own.flatten();
    rule(
        Verb::Pub,
        request_pattern(
            event.route.port,
            &me,
            &me,
            event.method.as_str(),
            &event.route,
        ),
    )
}

/// `SUB {{plane}}.safe.417.*.<source>.*.<METHOD>.<route>`.
pub fn hook_rule(hook: &Hook) -> Rule {
    let method = if hook.method.is_any() {
        "*"
    } else {
        hook.method.as_str()
    };
    rule(
        Verb::Sub,
        request_pattern(
            hook.route.port,
            "*",
            &hook.source.flatten(),
            method,
            &hook.route,
        ),
    )
}

/// The SUB rule an endpoint needs beyond the implicit ones: `Some` only for
/// an endpoint served under another hostname.
pub fn endpoint_rule(own: &Hostname, endpoint: &Endpoint) -> Option<Rule> {
    let host = endpoint.route.host.as_ref().filter(|h| *h != own)?;
    let method = if endpoint.method.is_any() {
        "*"
    } else {
        endpoint.method.as_str()
    };
    Some(rule(
        Verb::Sub,
        request_pattern(
            endpoint.route.port,
            "*",
            &host.flatten(),
            method,
            &endpoint.route,
        ),
    ))
}

/// The issuer of access tokens, whose keys every service with required
/// claims fetches to verify its actors.
pub const ACCESS_ISSUER: &str = "access.token.core";

/// The call a service's runtime makes to verify actor tokens:
/// access.token.core's JWKS (`:888/jwks`, an `ANY` endpoint, so sent as
/// `POST`). gencreds grants it to every service whose endpoints declare
/// required claims.
pub fn actor_keys_call() -> Call {
    Call {
        dest: Dest::Host(Hostname::parse(ACCESS_ISSUER).unwrap_or_else(|_| unreachable!())),
        method: Method::post(),
        route: Route::parse(":888/jwks").unwrap_or_else(|_| unreachable!()),
    }
}

/// The implicit rules of a service: its replies, its own endpoints, replies
/// to it, control broadcasts, and its own trust-root endpoints if any.
pub fn implicit_rules(own: &Hostname, has_trust_root_endpoint: bool) -> Vec<Rule> {
    let me = flatten(own.as_str());
    let p = PLANE_PLACEHOLDER;
    let mut rules = vec![
        rule(Verb::Pub, format!("{p}.reply._.{me}.>")),
        rule(Verb::Sub, format!("{p}.safe.*.*.{me}.>")),
        rule(Verb::Sub, format!("{p}.reply._.*.{me}.*")),
        rule(Verb::Sub, format!("{p}.safe.888.*.all.>")),
    ];
    if has_trust_root_endpoint {
        rules.push(rule(Verb::Sub, format!("{p}.danger.666.*.{me}.>")));
    }
    rules
}

/// The full, minimized rule set of a service.
pub fn derive(model: &ServiceModel) -> RuleSet {
    let own = &model.hostname;
    let own_trust_root = model
        .endpoints
        .iter()
        .any(|e| e.route.port == TRUST_ROOT_PORT && e.route.host.as_ref().is_none_or(|h| h == own));
    let mut set: RuleSet = implicit_rules(own, own_trust_root).into_iter().collect();
    set.extend(model.endpoints.iter().filter_map(|e| endpoint_rule(own, e)));
    set.extend(model.calls.iter().map(|c| call_rule(own, c)));
    set.extend(model.events_out.iter().map(|e| event_rule(own, e)));
    set.extend(model.hooks.iter().map(hook_rule));
    set.minimize();
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hostname {
        Hostname::parse(s).unwrap()
    }
    fn m(s: &str) -> Method {
        Method::parse(s).unwrap()
    }
    fn rt(s: &str) -> Route {
        Route::parse(s).unwrap()
    }

    #[test]
    fn derives_the_kitchen_shapes() {
        let mut model = ServiceModel::new(h("kitchen.fixture"));
        model.endpoints.push(Endpoint {
            method: m("GET"),
            route: rt("//alt.kitchen:443/alt-fn"),
        });
        model.endpoints.push(Endpoint {
            method: m("GET"),
            route: rt("/own"),
        });
        model.calls.push(Call {
            dest: Dest::Host(h("weird.fixture")),
            method: m("POST"),
            route: rt(":666/dangerous"),
        });
        model.calls.push(Call {
            dest: Dest::Host(h("alt.host")),
            method: m("GET"),
            route: rt("/greedy/{rest...}"),
        });
        model.calls.push(Call {
            dest: Dest::Host(h("weird.fixture")),
            method: m("GET"),
            route: rt("/path-arg/{a}"),
        });
        model.calls.push(Call {
            dest: Dest::Host(h("weird.fixture")),
            method: m("GET"),
            route: rt("/path-arg/x"),
        });
        model.calls.push(Call {
            dest: Dest::Any,
            method: m("GET"),
            route: rt(":444/file.txt"),
        });
        model.events_out.push(EventOut {
            method: m("POST"),
            route: rt(":417/on-cooked"),
        });
        model.hooks.push(Hook {
            source: h("weird.fixture"),
            method: m("POST"),
            route: rt(":417/on-something"),
        });
        let got: Vec<String> = derive(&model).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            got,
            [
                "PUB {{plane}}.danger.666.kitchen_fixture.weird_fixture.*.POST.dangerous",
                "PUB {{plane}}.reply._.kitchen_fixture.>",
                "PUB {{plane}}.safe.417.kitchen_fixture.kitchen_fixture.*.POST.on-cooked",
                "PUB {{plane}}.safe.443.kitchen_fixture.alt_host.*.GET.greedy.>",
                "PUB {{plane}}.safe.443.kitchen_fixture.weird_fixture.*.GET.path-arg.*",
                "PUB {{plane}}.safe.444.kitchen_fixture.*.*.GET.file%2etxt",
                "SUB {{plane}}.reply._.*.kitchen_fixture.*",
                "SUB {{plane}}.safe.*.*.kitchen_fixture.>",
                "SUB {{plane}}.safe.417.*.weird_fixture.*.POST.on-something",
                "SUB {{plane}}.safe.443.*.alt_kitchen.*.GET.alt-fn",
                "SUB {{plane}}.safe.888.*.all.>",
            ]
        );
    }

    #[test]
    fn own_trust_root_endpoint_adds_danger_sub() {
        let mut model = ServiceModel::new(h("access.token.core"));
        model.endpoints.push(Endpoint {
            method: m("POST"),
            route: rt(":666/mint"),
        });
        let set = derive(&model);
        assert!(
            set.iter()
                .any(|r| r.to_string() == "SUB {{plane}}.danger.666.*.access_token_core.>")
        );
        let plain = derive(&ServiceModel::new(h("x.example")));
        assert!(!plain.iter().any(Rule::is_danger));
    }
}
