//! Evaluation of one body (a fn, method, const initializer or item macro):
//! walks its expression skeleton with a scoped environment of local types
//! and turns every bus-related expression into a [`Fact`]: a typed client
//! call, an event fired or hooked, a raw call, an explicit grant, a call of
//! another body (a helper), or a finding.
//!
//! Client values are tracked from where they are created (the generated
//! constructors, `for_host`) to every endpoint call made on them, with the
//! set of hosts they may send to ([`Dests`]). Their flow through locals,
//! annotated `let`s, parameters, struct fields, return values, `?`, `Some`/
//! `Ok` and the wrapper types is followed: what flows into a parameter, a
//! field or a return value is recorded as a [`FlowKey`] contribution, and
//! the caller ([`crate::analysis`]) evaluates again, with the contributions
//! merged into a [`Flow`], until nothing changes. Every other place a client
//! (or a struct holding one) can go — a collection, a tuple, an assignment,
//! a closure's result, a static, an enum variant, a slot of another declared
//! type (an alias, a generic, a trait object), an argument of a call the
//! analyzer does not resolve, a macro other than the formatting ones — is a
//! `client-escapes` error at that place. A method called on a client is an
//! endpoint when the API declares it, whatever its name.
//!
//! A `Connector` is followed the same way (it carries no host: a raw
//! call's URL names it), and refused the same way where it goes unfollowed.
//!
//! A type is either bus-related (a client, a `Connector`, a workspace
//! struct), known and unrelated (`Other`), or unknown (an untyped binding,
//! a trait object, `impl Trait`, a generic parameter). Raw-call method
//! names (`get`, `post`, `request`, `publish`) are bus calls on a
//! `Connector`; on a receiver of unknown type they are bus calls when the
//! arguments make one (a `Method::X` first argument, or an `http(s)://`
//! literal) and `ambiguous-receiver` otherwise; on a known unrelated type
//! (`map.get(&k)`) they are never a finding.

use crate::diagnostic::{Code, Severity};
use crate::index::{
    Def, Gen, HOLDS_CLIENT, HOLDS_CONNECTOR, Index, StructId, UnitId, WRAP_CELL, WRAP_LOCK,
    WRAP_OPT,
};
use crate::ir::*;
use buswarden_rules::{Hostname, Method, Route, Url};
use std::collections::HashMap;

/// Where a typed client sends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientDest {
    /// The API's own host (or the route's host override).
    Own,
    /// `for_host("x.example")`.
    Host(Hostname),
    /// `for_host(expr)`.
    Dynamic,
}

/// What the analyzer knows about a value's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// Nothing.
    Unknown,
    /// Known, and nothing to do with the bus.
    Other,
    /// A `buswarden::Connector`.
    Connector,
    /// A generated client of an API, with every host it may send to
    /// (empty: no creation site reaches this value).
    Client(usize, Gen, Dests),
    /// A workspace struct, with the hosts of its client fields when the
    /// value's construction site is known ([`Site`]).
    Struct(StructId, Site),
    /// A string known at analysis time.
    Str(Name),
    /// A `Method::X` value.
    Method(Name),
    /// A closure: its parameters and body (in its file's arena).
    Closure(ParamList, ExprId),
    /// A client or a struct inside wrapper layers that must be taken off
    /// to reach it (`Option`/`Result`, `Mutex`/`RwLock`, `RefCell`/
    /// `OnceLock`: [`crate::index::WRAP_OPT`]…), the outermost in the low
    /// two bits.
    Wrapped(u16, Box<Ty>),
}

impl Ty {
    /// The value inside its wrapper layers.
    pub fn peel(&self) -> &Ty {
        match self {
            Ty::Wrapped(_, i) => i,
            t => t,
        }
    }

    /// `inner` inside the layers `w` (only a client, a Connector or a
    /// struct is kept wrapped).
    pub fn wrap(w: u16, inner: Ty) -> Ty {
        match inner {
            Ty::Wrapped(w2, i) if w != 0 => Ty::Wrapped(w2 | (w << (2 * layers(w2))), i),
            i @ (Ty::Client(..) | Ty::Struct(..) | Ty::Connector) if w != 0 => {
                Ty::Wrapped(w, Box::new(i))
            }
            i => i,
        }
    }

    /// The same value with the destinations `d` (a client, wrapped or not).
    fn with_dests(self, d: Dests) -> Ty {
        match self {
            Ty::Client(a, g, _) => Ty::Client(a, g, d),
            Ty::Wrapped(w, i) => Ty::Wrapped(w, Box::new(i.with_dests(d))),
            t => t,
        }
    }

    /// Whether it is a client (wrapped or not).
    fn is_client(&self) -> bool {
        matches!(self.peel(), Ty::Client(..))
    }
}

/// The hosts each client field of one struct value holds, when the value
/// comes from a struct literal the analyzer saw (or is the `self` of an
/// inherent method, whose callers are all seen): its field reads are then
/// exact. `None`: the hosts of every literal of the struct.
pub type Site = Option<Box<[(Name, Dests)]>>;

/// Two sites one value may have: per field, the union.
fn join_sites(a: &Site, b: &Site) -> Site {
    let (Some(a), Some(b)) = (a, b) else {
        return None;
    };
    let mut out: Vec<(Name, Dests)> = a.to_vec();
    for (n, d) in b.iter() {
        match out.iter_mut().find(|(m, _)| m == n) {
            Some((_, have)) => {
                join_dests(have, d);
            }
            None => return None,
        }
    }
    if out.len() != b.len() {
        return None;
    }
    Some(out.into_boxed_slice())
}

/// The wrapper layers around a value (0: none).
fn layers_of(t: &Ty) -> u16 {
    match t {
        Ty::Wrapped(w, _) => *w,
        _ => 0,
    }
}

/// How many layers a wrapper stack holds.
fn layers(w: u16) -> u32 {
    (16 - w.leading_zeros()).div_ceil(2)
}

/// Takes the outermost layer off `t` when it is of kind `layer`; `None` otherwise.
fn unwrap_layer(t: &Ty, layer: u16) -> Option<Ty> {
    match t {
        Ty::Wrapped(w, i) if w & 3 == layer => Some(match w >> 2 {
            0 => (**i).clone(),
            rest => Ty::Wrapped(rest, i.clone()),
        }),
        _ => None,
    }
}

/// Puts a layer of kind `layer` around `t` (outermost).
fn push_layer(t: Ty, layer: u16) -> Ty {
    match t {
        Ty::Wrapped(w, i) if layers(w) < 8 => Ty::Wrapped((w << 2) | layer, i),
        i @ (Ty::Client(..) | Ty::Struct(..) | Ty::Connector) => Ty::Wrapped(layer, Box::new(i)),
        t => t,
    }
}

/// The hosts a client value may send to: sorted, without repeats.
pub type Dests = smallvec::SmallVec<[ClientDest; 1]>;

/// One destination.
fn one(d: ClientDest) -> Dests {
    smallvec::smallvec![d]
}

/// Adds `from` to `into`; whether anything was new.
pub fn join_dests(into: &mut Dests, from: &[ClientDest]) -> bool {
    let mut changed = false;
    for d in from {
        if let Err(i) = into.binary_search(d) {
            into.insert(i, d.clone());
            changed = true;
        }
    }
    changed
}

/// A place a client value flows into and out of again, across bodies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FlowKey {
    /// A parameter of a body ([`SELF_PARAM`]: its `self`).
    Param(UnitId, u32),
    /// A field of a struct (over every value of the struct).
    Field(StructId, Name),
    /// The return value of a body.
    Ret(UnitId),
    /// A client field of `self` in an inherent method (over every value
    /// the method is called on).
    SelfField(UnitId, Name),
}

/// The parameter index of `self`.
pub const SELF_PARAM: u32 = u32::MAX;

/// What is known to flow into each [`FlowKey`].
#[derive(Debug, Default)]
pub struct Flow {
    map: HashMap<FlowKey, Dests>,
}

impl Flow {
    /// The hosts known to flow into `k`.
    pub fn get(&self, k: &FlowKey) -> Dests {
        self.map.get(k).cloned().unwrap_or_default()
    }

    /// Adds `d` to `k`; whether anything was new.
    pub fn merge(&mut self, k: &FlowKey, d: &[ClientDest]) -> bool {
        match self.map.get_mut(k) {
            Some(have) => join_dests(have, d),
            None => {
                let mut v = Dests::new();
                join_dests(&mut v, d);
                self.map.insert(k.clone(), v);
                true
            }
        }
    }
}

/// What evaluating one body gives.
#[derive(Debug, Default)]
pub struct UnitOut {
    /// What the body does.
    pub facts: Vec<Fact>,
    /// What flows out of it into parameters, fields and return values.
    pub flows: Vec<(FlowKey, Dests)>,
    /// The [`Flow`] entries it read (it is evaluated again when the flow
    /// grows).
    pub reads: Vec<FlowKey>,
}

/// Where an outbound call goes before policy is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallDest {
    /// A static host.
    Host(Hostname),
    /// A computed host (`for_host(expr)`) or a `*` grant.
    Any,
}

/// One thing a body does, at a location in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactKind {
    /// An outbound request (typed, raw or granted).
    Call {
        /// Destination.
        dest: CallDest,
        /// Method as sent.
        method: Method,
        /// Route.
        route: Route,
        /// Whether the host was computed (`for_host(expr)`).
        dynamic: bool,
        /// Whether it comes from `#[buswarden::grant]`.
        grant: bool,
        /// What the code says, for `explain`.
        what: String,
    },
    /// An event fired through `XTrigger`.
    Event {
        /// The API's host.
        source: Hostname,
        /// Method.
        method: Method,
        /// Route.
        route: Route,
        /// What the code says.
        what: String,
    },
    /// An event hooked through `XHook`.
    Hook {
        /// The source host.
        source: Hostname,
        /// Method.
        method: Method,
        /// Route.
        route: Route,
        /// What the code says.
        what: String,
    },
    /// A call of another body.
    Edge(UnitId),
    /// `#[buswarden::edge_proxy]`: this body forwards to the edge's open
    /// ports (expanded from `[edge]` in `buswarden.toml` by the analysis).
    EdgeProxy,
    /// `Connector::new(host)`: the literal host, if any.
    ConnectorNew(Option<String>),
    /// A method call on an unknown receiver (checked against helper names).
    UnknownMethod(Name),
    /// A finding.
    Diag(Code, Severity, String),
}

/// A fact and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// What.
    pub kind: FactKind,
    /// Where (in the unit's file).
    pub loc: Loc,
}

/// Methods whose result is, for the analyzer, the receiver itself (on a
/// client: only when the API declares no endpoint of that name).
const PASSTHROUGH: &[&str] = &[
    "clone",
    "as_ref",
    "as_mut",
    "borrow",
    "borrow_mut",
    "unwrap",
    "expect",
    "lock",
    "read",
    "write",
    "deref",
    "to_owned",
    "into",
    "as_deref",
    "unwrap_or_default",
    "get_or_init",
    "to_string",
    "as_str",
];

/// Macros that only format their arguments (a client named there goes nowhere).
const FORMATTING: &[&str] = &[
    "format",
    "print",
    "println",
    "eprint",
    "eprintln",
    "write",
    "writeln",
    "panic",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "format_args",
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "unreachable",
    "todo",
    "unimplemented",
];

/// The raw-call methods of `buswarden::Connector` (every public method
/// that publishes): on a receiver of unknown type, a bus call or a refusal.
const RAW_NAMES: &[&str] = &["get", "post", "request", "publish"];

/// Method names of raw calls on a `Connector`.
const RAW_VERBS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

/// Bindings in scope while a unit is evaluated (reused from unit to unit).
pub type Scopes = Vec<(Name, Ty)>;

/// Evaluates one unit against what is known to flow so far; `scopes` is a
/// scratch stack reused from unit to unit (cleared here).
pub fn eval_unit_with(idx: &Index<'_>, flow: &Flow, u: UnitId, scopes: &mut Scopes) -> UnitOut {
    scopes.clear();
    let unit = &idx.units[u];
    let file = idx.files[idx.modules[unit.module].file];
    let mut ev = Eval {
        idx,
        flow,
        ar: &file.ir,
        unit: u,
        m: unit.module,
        scopes: std::mem::take(scopes),
        facts: vec![],
        flows: vec![],
        reads: Vec::new(),
        closures: 0,
        last_loc: unit.def.loc,
        granted: !unit.def.grants.is_empty() || unit.def.edge_proxy.is_some(),
    };
    for g in &unit.def.grants {
        ev.grant(g);
    }
    if let Some(at) = unit.def.edge_proxy {
        ev.fact(FactKind::EdgeProxy, at);
    }
    if unit.def.has_self {
        let t = ev.self_ty();
        let t = match t {
            t if t.is_client() => {
                let d = ev.read(FlowKey::Param(u, SELF_PARAM));
                t.with_dests(d)
            }
            // An inherent method is called only where the code names it:
            // its `self`'s client fields hold what its callers' values do.
            Ty::Struct(s, None) if unit.inherent => {
                let site = ev.self_site(u, s);
                Ty::Struct(s, site)
            }
            t => t,
        };
        ev.bind("self", t);
    }
    for (i, (p, t)) in unit.def.params.iter().enumerate() {
        let ty = t
            .as_ref()
            .map_or(Ty::Unknown, |t| ev.ty_of(unit.module, t, unit.self_ty));
        let ty = if ty.is_client() {
            let d = ev.read(FlowKey::Param(u, i as u32));
            ty.with_dests(d)
        } else {
            ty
        };
        let loc = unit.def.loc;
        ev.bind_pat(p, ty, loc);
    }
    if let Some(body) = unit.def.body {
        // Every expression of the body, read once in address order: the
        // loads do not depend on each other, so the CPU overlaps their
        // cache misses (the tree walk below depends on each load to find
        // the next and would take them one at a time).
        let touched = file
            .ir
            .run(unit.def.span)
            .iter()
            .filter(|e| matches!(e, Expr::Unknown))
            .count();
        std::hint::black_box(touched);
        let tail = ev.block(body);
        let at = ev.last_loc;
        ev.returned(tail, at);
    }
    *scopes = std::mem::take(&mut ev.scopes);
    UnitOut {
        facts: ev.facts,
        flows: ev.flows,
        reads: ev.reads,
    }
}

/// Parses a grant's URL pattern: `http(s)://host[:port]/path` with `{arg}`,
/// a final `{arg...}`, and host `*`.
pub fn parse_grant(method: &str, url: &str) -> Result<(CallDest, Method, Route), String> {
    let method = Method::parse(method).map_err(|e| e.to_string())?;
    if method.is_any() {
        return Err("ANY is not a method a call sends; name the method, e.g. GET".into());
    }
    let (default_port, rest) = if let Some(r) = url.strip_prefix("https://") {
        (443u16, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (80, r)
    } else {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.to_string()),
        None => (authority, default_port.to_string()),
    };
    let dest = if host == "*" {
        CallDest::Any
    } else {
        CallDest::Host(Hostname::parse_destination(host).map_err(|e| e.to_string())?)
    };
    let route = Route::parse(&format!(":{port}{path}")).map_err(|e| e.to_string())?;
    Ok((dest, method, route))
}

struct Eval<'i, 'a> {
    idx: &'i Index<'a>,
    /// What is known to flow into parameters, fields and return values.
    flow: &'i Flow,
    /// What flows out of this unit.
    flows: Vec<(FlowKey, Dests)>,
    /// The `flow` entries read.
    reads: Vec<FlowKey>,
    /// How many closures the walk is inside (a `return` there leaves the closure).
    closures: u32,
    /// The last location seen (where an escape without a location of its own is reported).
    last_loc: Loc,
    /// The lowered form (arenas) of the unit's file.
    ar: &'a FileIr,
    unit: UnitId,
    m: usize,
    /// Every binding in scope, innermost last (a scope ends by truncating
    /// back to the length it started at: no vector per scope).
    scopes: Vec<(Name, Ty)>,
    facts: Vec<Fact>,
    granted: bool,
}

impl Eval<'_, '_> {
    fn fact(&mut self, kind: FactKind, loc: Loc) {
        self.facts.push(Fact { kind, loc });
    }

    fn diag(&mut self, code: Code, loc: Loc, msg: String) {
        self.fact(FactKind::Diag(code, code.severity(), msg), loc);
    }

    fn bind(&mut self, name: &str, ty: Ty) {
        self.scopes.push((Name::from(name), ty));
    }

    /// What flows into `k` so far (and a note that this unit depends on it).
    fn read(&mut self, k: FlowKey) -> Dests {
        let d = self.flow.get(&k);
        self.reads.push(k);
        d
    }

    /// Whether a value may carry a client or a Connector (a value whose
    /// flow is followed: where it goes unfollowed is an error).
    fn bearing(&self, t: &Ty) -> bool {
        self.holds(t) != 0
    }

    /// What a value may carry: [`HOLDS_CLIENT`] and/or [`HOLDS_CONNECTOR`].
    fn holds(&self, t: &Ty) -> u8 {
        match t.peel() {
            Ty::Client(..) => HOLDS_CLIENT,
            Ty::Connector => HOLDS_CONNECTOR,
            Ty::Struct(s, _) => self.idx.bearing.get(*s).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// A short name of a client-bearing type, for messages.
    fn ty_name(&self, t: &Ty) -> String {
        match t.peel() {
            Ty::Client(a, g, _) => {
                let suffix = match g {
                    Gen::Multicast => "MulticastClient",
                    Gen::Trigger => "Trigger",
                    Gen::Hook => "Hook",
                    _ => "Client",
                };
                format!("{}{suffix}", self.idx.apis[*a].name)
            }
            Ty::Struct(s, _) => format!(
                "`{}` (a struct holding {})",
                self.idx.structs[*s].def.name,
                if self.holds(t) & HOLDS_CLIENT != 0 {
                    "a client"
                } else {
                    "a Connector"
                }
            ),
            Ty::Connector => "Connector".into(),
            _ => "a value".into(),
        }
    }

    /// Reports `t` leaving what the analyzer follows at `loc`, when it may
    /// carry a client.
    fn escape(&mut self, t: &Ty, loc: Loc, into: &str) {
        if !self.bearing(t) {
            return;
        }
        let what = self.ty_name(t);
        let what = if what.starts_with('`') {
            what
        } else {
            format!("a `{what}`")
        };
        if self.holds(t) & HOLDS_CLIENT == 0 {
            self.diag(
                Code::ClientEscapes,
                loc,
                format!(
                    "{what} goes into {into}, where the analyzer does not follow it, so the raw calls made on it (`get`, `post`, `request`, `publish`) cannot be resolved; keep the Connector in a local, a parameter, a struct field or a return value typed `Connector` (`&Connector`, `Arc<Connector>`, `Option<Connector>`), or write #[buswarden::grant(METHOD, \"https://host:port/path\")] on the fn that makes the raw calls"
                ),
            );
            return;
        }
        self.diag(
            Code::ClientEscapes,
            loc,
            format!(
                "{what} goes into {into}, where the analyzer does not follow it, so its calls cannot be resolved; keep the client in a local, a parameter, a struct field or a return value of its own client type (`let c: XClient = …;`), or write #[buswarden::grant(METHOD, \"https://host:port/path\")] on a fn that makes the calls and create the client there"
            ),
        );
    }

    /// A value flowing into a slot of declared type `slot` (a parameter, a
    /// field, a return value) through `key`.
    fn flow_into(&mut self, slot: &Ty, v: &Ty, key: FlowKey, loc: Loc, into: &str) {
        match (slot.peel(), v.peel()) {
            (Ty::Client(a, g, _), Ty::Client(a2, g2, d)) if a == a2 && g == g2 => {
                if !d.is_empty() {
                    self.flows.push((key, d.clone()));
                }
            }
            (Ty::Client(..), _) if self.bearing(v) => self.escape(v, loc, into),
            // A client typed value whose origin is not followed: any host.
            (Ty::Client(..), _) => self.flows.push((key, one(ClientDest::Dynamic))),
            (Ty::Struct(s, _), Ty::Struct(s2, _)) if s == s2 => {}
            // A Connector carries no host: its declared type is all there
            // is to follow.
            (Ty::Connector, Ty::Connector) => {}
            (Ty::Connector, _) if !self.bearing(v) => {}
            _ => self.escape(v, loc, into),
        }
    }

    /// The client fields of struct `s`, each with its declared client type.
    fn client_fields(&self, s: StructId) -> Vec<Name> {
        if self.idx.bearing.get(s).copied().unwrap_or(0) & HOLDS_CLIENT == 0 {
            return Vec::new();
        }
        let st = &self.idx.structs[s];
        st.def
            .fields
            .iter()
            .filter(|(_, t)| {
                t.as_ref().is_some_and(|t| {
                    t.last().is_some_and(|l| self.idx.type_names.contains(l))
                        && self.ty_of(st.module, t, None).is_client()
                })
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The site of `self` in the inherent method `u` of struct `s`: what
    /// its callers' receivers hold in each client field.
    fn self_site(&mut self, u: UnitId, s: StructId) -> Site {
        let fields = self.client_fields(s);
        if fields.is_empty() {
            return None;
        }
        let site: Vec<(Name, Dests)> = fields
            .into_iter()
            .map(|f| {
                let d = self.read(FlowKey::SelfField(u, f.clone()));
                (f, d)
            })
            .collect();
        Some(site.into_boxed_slice())
    }

    /// A receiver of struct `s` (built at `site`) into the inherent
    /// method `callee`: its client fields' hosts flow into the method's
    /// `self` fields.
    fn receiver_into(&mut self, callee: UnitId, s: StructId, site: &Site) {
        for f in self.client_fields(s) {
            let known = site
                .as_deref()
                .and_then(|fs| fs.iter().find(|(n, _)| *n == f))
                .map(|(_, d)| d.clone());
            let d = match known {
                Some(d) => d,
                None => self.read(FlowKey::Field(s, f.clone())),
            };
            if !d.is_empty() {
                self.flows.push((FlowKey::SelfField(callee, f), d));
            }
        }
    }

    /// The tail or a `return` value of the unit (or of a closure).
    fn returned(&mut self, t: Ty, loc: Loc) {
        if !self.bearing(&t) {
            return;
        }
        if self.closures > 0 {
            self.escape(&t, loc, "the result of a closure");
            return;
        }
        let unit = &self.idx.units[self.unit];
        let slot = match &unit.def.ret {
            Some(r) => self.ty_of(unit.module, r, unit.self_ty),
            None => Ty::Unknown,
        };
        let u = self.unit;
        self.flow_into(
            &slot,
            &t,
            FlowKey::Ret(u),
            loc,
            "a return value or static of another type",
        );
    }

    fn bind_pat(&mut self, p: &Pat, ty: Ty, loc: Loc) {
        match p {
            Pat::Ident(n) => self.bind(n, ty),
            // `let _ = x;`: the value is dropped, nothing is bound.
            Pat::Binds(names) if names.is_empty() => {}
            Pat::Binds(names) => {
                if let Ty::Struct(s, ref site) = ty {
                    // `S { a, b, .. }`: names that are fields take the field.
                    let st = &self.idx.structs[s];
                    let fields: Vec<bool> = names
                        .iter()
                        .map(|n| st.def.fields.iter().any(|(f, _)| f == n))
                        .collect();
                    if fields.iter().any(|f| *f) {
                        let mut lost = false;
                        for (n, is_field) in names.iter().zip(fields) {
                            let t = if is_field {
                                self.field(s, site, n)
                            } else {
                                lost = true;
                                Ty::Unknown
                            };
                            self.bind(n, t);
                        }
                        if lost {
                            self.escape(&Ty::Struct(s, None), loc, "a destructuring pattern");
                        }
                        return;
                    }
                }
                if names.len() == 1 && ty != Ty::Other {
                    // `Some(c)`, `Ok(c)`, `let Some(c) = … else` take an
                    // `Option`/`Result` layer off; `&c` binds the value.
                    let t = unwrap_layer(&ty, WRAP_OPT).unwrap_or(ty);
                    self.bind(&names[0], t);
                    return;
                }
                self.escape(&ty, loc, "a destructuring pattern");
                for n in names {
                    self.bind(n, Ty::Unknown);
                }
            }
        }
    }

    fn local(&self, name: &str) -> Option<&Ty> {
        self.scopes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    fn scoped<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let mark = self.scopes.len();
        let r = f(self);
        self.scopes.truncate(mark);
        r
    }

    fn self_ty(&self) -> Ty {
        let unit = &self.idx.units[self.unit];
        match unit.self_ty {
            Some(t) => self.ty_of(unit.module, t, None),
            None => Ty::Unknown,
        }
    }

    /// The type a written type path denotes, in module `m` (a client type
    /// with no destinations: the place it is read from fills them in).
    fn ty_of(&self, m: usize, p: &PathRef, self_ty: Option<&PathRef>) -> Ty {
        if p.segs.len() == 1 && p.segs[0] == "Self" {
            return match self_ty {
                Some(s) => self.ty_of(m, s, None),
                None => Ty::Unknown,
            };
        }
        let (wraps, def) = self.idx.resolve_type(m, p);
        let t = match def {
            Some(Def::Api(a, g)) if g != Gen::Trait && g != Gen::HostConst => {
                Ty::Client(a, g, Dests::new())
            }
            Some(Def::Runtime(rp)) if rp.last().is_some_and(|l| l == "Connector") => Ty::Connector,
            Some(Def::Struct(s)) => Ty::Struct(s, None),
            None if p.last() == Some("Connector") => Ty::Connector,
            // A trait object, `impl Trait`, a generic type parameter.
            None if p.last() == Some(crate::lower::DYN_TYPE) => Ty::Unknown,
            _ => Ty::Other,
        };
        Ty::wrap(wraps, t)
    }

    fn resolve_value(&self, p: &PathRef) -> Option<Def> {
        if p.segs.first().is_some_and(|s| s == "Self") {
            let unit = &self.idx.units[self.unit];
            let st = unit.self_ty?;
            let mut full = st.clone();
            full.segs.extend(p.segs[1..].iter().cloned());
            return self.idx.resolve(unit.module, &full);
        }
        self.idx.resolve(self.m, p)
    }

    fn block(&mut self, b: Block) -> Ty {
        let ar = self.ar;
        self.scoped(|ev| {
            let mut last = Ty::Other;
            for s in ar.run(b) {
                last = ev.expr(s);
            }
            last
        })
    }

    /// A `let` statement: binds into the rest of the enclosing block.
    fn let_stmt(&mut self, l: &Let) -> Ty {
        let Let { pat, ty, init, els } = l;
        let mut t = init.map_or(Ty::Unknown, |e| self.sub(e));
        let at = self.last_loc;
        if let Some(decl) = ty {
            let unit = &self.idx.units[self.unit];
            let d = self.ty_of(self.m, decl, unit.self_ty);
            // 0: same client, 1: another client type, 2: same struct,
            // 3: a client-bearing value into another type, 4: a literal
            // kept, 5: the declared type.
            let kind = match (d.peel(), t.peel()) {
                (Ty::Client(a, g, _), Ty::Client(a2, g2, _)) if a == a2 && g == g2 => 0,
                (Ty::Client(..), _) => 1,
                (Ty::Struct(s, _), Ty::Struct(s2, _)) if s == s2 => 2,
                (Ty::Connector, Ty::Connector) => 5,
                _ if self.bearing(&t) => 3,
                (Ty::Other, Ty::Str(_) | Ty::Method(_)) => 4,
                _ => 5,
            };
            t = match kind {
                0 => {
                    let ds = match t.peel() {
                        Ty::Client(_, _, ds) => ds.clone(),
                        _ => Dests::new(),
                    };
                    d.with_dests(ds)
                }
                1 => {
                    self.escape(&t, at, "a `let` of another client type");
                    d.with_dests(one(ClientDest::Dynamic))
                }
                3 => {
                    self.escape(
                        &t,
                        at,
                        "a `let` of another declared type (an alias, a trait object, a collection…)",
                    );
                    d
                }
                4 => t,
                2 if matches!((&d, &t), (Ty::Struct(..), Ty::Struct(..))) => t,
                _ => d,
            };
        }
        if let Some(b) = els {
            self.block(*b);
        }
        self.bind_pat(pat, t, at);
        Ty::Other
    }

    /// The types of a run of expressions (call arguments: a few, kept on
    /// the stack), with where each is.
    fn exprs(&mut self, es: ExprList) -> smallvec::SmallVec<[(Ty, Loc); 4]> {
        let ar = self.ar;
        ar.run(es)
            .iter()
            .map(|e| {
                let t = self.expr(e);
                (t, self.last_loc)
            })
            .collect()
    }

    fn sub(&mut self, id: ExprId) -> Ty {
        let ar = self.ar;
        self.expr(ar.expr(id))
    }

    /// Two values one expression may have (branches of an `if` or a `match`).
    fn join(&mut self, a: Ty, b: Ty, loc: Loc) -> Ty {
        match (a, b) {
            (a, b) if a == b => a,
            (Ty::Wrapped(w, i), Ty::Wrapped(w2, i2)) if w == w2 => {
                let j = self.join(*i, *i2, loc);
                Ty::wrap(w, j)
            }
            (w @ Ty::Wrapped(..), Ty::Other | Ty::Unknown)
            | (Ty::Other | Ty::Unknown, w @ Ty::Wrapped(..)) => w,
            (Ty::Client(a, g, mut d), Ty::Client(a2, g2, d2)) if a == a2 && g == g2 => {
                join_dests(&mut d, &d2);
                Ty::Client(a, g, d)
            }
            (Ty::Struct(s, x), Ty::Struct(s2, y)) if s == s2 => Ty::Struct(s, join_sites(&x, &y)),
            // The other branch diverges (`return`, `panic!`…) or is not
            // followed: a client's host is then any host.
            (Ty::Client(a, g, mut d), Ty::Unknown) | (Ty::Unknown, Ty::Client(a, g, mut d)) => {
                join_dests(&mut d, &[ClientDest::Dynamic]);
                Ty::Client(a, g, d)
            }
            (c @ Ty::Client(..), Ty::Other) | (Ty::Other, c @ Ty::Client(..)) => c,
            // The other branch diverges or is not followed (a Connector
            // carries no host).
            (Ty::Connector, Ty::Other | Ty::Unknown) | (Ty::Other | Ty::Unknown, Ty::Connector) => {
                Ty::Connector
            }
            // Two known values unrelated to the bus (different literals,
            // closures…): known and unrelated (a URL or host so joined is
            // computed).
            (
                Ty::Other | Ty::Str(_) | Ty::Method(_) | Ty::Closure(..),
                Ty::Other | Ty::Str(_) | Ty::Method(_) | Ty::Closure(..),
            ) => Ty::Other,
            (a, b) => {
                self.escape(&a, loc, "a branch whose other branches hold another type");
                self.escape(&b, loc, "a branch whose other branches hold another type");
                Ty::Unknown
            }
        }
    }

    fn expr(&mut self, e: &Expr) -> Ty {
        match e {
            Expr::Path(p, loc) => {
                self.last_loc = *loc;
                self.path_value(p, *loc)
            }
            Expr::Lit(Some(s)) => Ty::Str(s.clone()),
            Expr::Lit(None) => Ty::Other,
            Expr::Call(f, args, loc) => {
                let tys = self.exprs(*args);
                self.last_loc = *loc;
                let ar = self.ar;
                match ar.expr(*f) {
                    Expr::Path(p, _) => self.call_path(p, &tys, *loc),
                    other => {
                        self.expr(other);
                        for (t, l) in &tys {
                            self.escape(
                                t,
                                *l,
                                "an argument of a call the analyzer does not resolve",
                            );
                        }
                        Ty::Unknown
                    }
                }
            }
            Expr::Method(recv, name, args, loc) => {
                let rt = self.sub(*recv);
                let tys = self.exprs(*args);
                self.last_loc = *loc;
                self.method(rt, name, &tys, *loc)
            }
            Expr::Field(base, name) => match self.sub(*base) {
                Ty::Struct(s, site) => self.field(s, &site, name),
                Ty::Other => Ty::Other,
                _ => Ty::Unknown,
            },
            Expr::Block(b) => self.block(*b),
            Expr::Local(l) => {
                let ar = self.ar;
                match ar.local(*l) {
                    Some(l) => self.let_stmt(l),
                    None => Ty::Unknown,
                }
            }
            Expr::Closure(params, body) => {
                let ar = self.ar;
                self.closures += 1;
                self.scoped(|ev| {
                    let at = ev.last_loc;
                    for (p, t) in ar.param_run(*params) {
                        let unit = &ev.idx.units[ev.unit];
                        let ty = t
                            .as_ref()
                            .map_or(Ty::Unknown, |t| ev.ty_of(ev.m, t, unit.self_ty));
                        ev.bind_pat(p, ty, at);
                    }
                    let t = ev.sub(*body);
                    let at = ev.last_loc;
                    ev.returned(t, at);
                });
                self.closures -= 1;
                Ty::Closure(*params, *body)
            }
            Expr::Match(scrut, arms) => {
                let st = self.sub(*scrut);
                let at = self.last_loc;
                let mut out: Option<Ty> = None;
                let ar = self.ar;
                for arm in ar.arm_run(*arms) {
                    let t = self.scoped(|ev| {
                        ev.bind_pat(&arm.pat, st.clone(), at);
                        if let Some(g) = arm.guard {
                            ev.sub(g);
                        }
                        ev.sub(arm.body)
                    });
                    out = Some(match out {
                        None => t,
                        Some(prev) => self.join(prev, t, at),
                    });
                }
                out.unwrap_or(Ty::Other)
            }
            Expr::If(cond, then, els) => {
                let t = self.scoped(|ev| {
                    ev.sub(*cond);
                    ev.block(*then)
                });
                let at = self.last_loc;
                match els {
                    Some(e) => {
                        let t2 = self.sub(*e);
                        self.join(t, t2, at)
                    }
                    None => Ty::Other,
                }
            }
            Expr::Let(p, init) => {
                let t = self.sub(*init);
                let at = self.last_loc;
                self.bind_pat(p, t, at);
                Ty::Other
            }
            Expr::Loop(arm, iter) => {
                // `for c in [&a, &b]` / `vec![a, b]` over Connectors only:
                // each turn's value is a Connector.
                let elem = match self.connector_elems(*iter) {
                    Some(t) => t,
                    None => {
                        let it = self.sub(*iter);
                        let at = self.last_loc;
                        self.escape(&it, at, "a `for` loop");
                        Ty::Unknown
                    }
                };
                let at = self.last_loc;
                let ar = self.ar;
                if let Some(arm) = ar.arm(*arm) {
                    self.scoped(|ev| {
                        ev.bind_pat(&arm.pat, elem, at);
                        ev.sub(arm.body);
                    });
                }
                Ty::Other
            }
            Expr::StructLit(p, fields, names) => self.struct_lit(p, *fields, *names),
            Expr::Try(e) => {
                let t = self.sub(*e);
                unwrap_layer(&t, WRAP_OPT).unwrap_or(t)
            }
            Expr::Return(v) => {
                if let Some(v) = v {
                    let t = self.sub(*v);
                    let at = self.last_loc;
                    self.returned(t, at);
                }
                Ty::Other
            }
            Expr::Macro(mc) => {
                let ar = self.ar;
                match ar.mac(*mc) {
                    Some(mc) => self.macro_call(mc),
                    None => Ty::Unknown,
                }
            }
            Expr::Other(children) => {
                let ar = self.ar;
                for e in ar.run(*children) {
                    let t = self.expr(e);
                    let at = self.last_loc;
                    self.escape(&t, at, "a tuple, an array, an assignment or an operator");
                }
                Ty::Other
            }
            Expr::Unknown => Ty::Unknown,
        }
    }

    /// The element type of an array literal or a `vec!` of Connectors
    /// only (evaluated here; any other element escapes as it would in the
    /// literal): `Some(Connector)`; `None` (nothing evaluated) for any
    /// other expression.
    fn connector_elems(&mut self, id: ExprId) -> Option<Ty> {
        let ar = self.ar;
        let list = match ar.expr(id) {
            // `[&a, &b].iter()`, `vec![a, b].into_iter()`.
            Expr::Method(recv, name, args, _)
                if args.len == 0 && matches!(name.as_str(), "iter" | "into_iter") =>
            {
                return self.connector_elems(*recv);
            }
            Expr::Other(list) => *list,
            Expr::Macro(i) => {
                let mc = ar.mac(*i)?;
                if mc.path.last() != Some("vec")
                    || !mc.unparsed_idents.is_empty()
                    || mc.include.is_some()
                {
                    return None;
                }
                mc.body
            }
            _ => return None,
        };
        if list.len == 0 {
            return None;
        }
        let tys = self.exprs(list);
        if tys.iter().all(|(t, _)| *t == Ty::Connector) {
            return Some(Ty::Connector);
        }
        for (t, l) in &tys {
            self.escape(t, *l, "a tuple, an array, an assignment or an operator");
        }
        Some(Ty::Unknown)
    }

    /// `S { f: e, .. }` and `S(e, …)`: each value flows into its field.
    /// `S { f: e, .. }` and `S(e, …)`: each value flows into its field;
    /// the value's [`Site`] (the hosts of its client fields).
    fn struct_fields(&mut self, s: StructId, vals: &[(Option<Name>, Ty, Loc)]) -> Site {
        let st = &self.idx.structs[s];
        let mut site: Vec<(Name, Dests)> = Vec::new();
        let mut exact = true;
        for (name, t, l) in vals {
            let Some(name) = name else {
                // `..base`: the same struct, fields already followed.
                if !matches!(t, Ty::Struct(s2, _) if *s2 == s) {
                    self.escape(t, *l, "a struct update of another type");
                }
                exact = false;
                continue;
            };
            let slot = match st.def.fields.iter().find(|(n, _)| n == name) {
                Some((_, Some(ft))) => self.ty_of(st.module, ft, None),
                _ => Ty::Unknown,
            };
            if let Ty::Client(a, g, _) = slot.peel() {
                let d = match t.peel() {
                    Ty::Client(a2, g2, d) if a == a2 && g == g2 => d.clone(),
                    _ => one(ClientDest::Dynamic),
                };
                site.push((name.clone(), d));
            }
            self.flow_into(
                &slot,
                t,
                FlowKey::Field(s, name.clone()),
                *l,
                "a struct field of another declared type",
            );
        }
        (exact && !site.is_empty()).then(|| site.into_boxed_slice())
    }

    fn struct_lit(&mut self, p: &PathRef, fields: ExprList, names: u32) -> Ty {
        let ar = self.ar;
        let mut vals: Vec<(Option<Name>, Ty, Loc)> = Vec::new();
        for (i, e) in ar.run(fields).iter().enumerate() {
            let t = self.expr(e);
            // An empty name stands for `..base`.
            let name = ar.field_name(names, i).filter(|n| !n.is_empty()).cloned();
            vals.push((name, t, self.last_loc));
        }
        match self.resolve_value(p) {
            Some(Def::Struct(s)) => {
                let site = self.struct_fields(s, &vals);
                Ty::Struct(s, site)
            }
            _ => {
                for (_, t, l) in &vals {
                    self.escape(t, *l, "an enum variant or a struct outside the tree");
                }
                Ty::Other
            }
        }
    }

    /// Field `name` of a value of struct `s` built at `site`.
    fn field(&mut self, s: StructId, site: &Site, name: &str) -> Ty {
        let st = &self.idx.structs[s];
        match st.def.fields.iter().find(|(n, _)| n == name) {
            Some((_, Some(t))) => match self.ty_of(st.module, t, None) {
                t if t.is_client() => {
                    let known = site
                        .as_deref()
                        .and_then(|fs| fs.iter().find(|(n, _)| n == name))
                        .map(|(_, d)| d.clone());
                    let d = match known {
                        Some(d) => d,
                        None => self.read(FlowKey::Field(s, Name::from(name))),
                    };
                    t.with_dests(d)
                }
                t => t,
            },
            Some((_, None)) => Ty::Unknown,
            None => Ty::Unknown,
        }
    }

    fn path_value(&mut self, p: &PathRef, loc: Loc) -> Ty {
        if p.segs.len() == 1
            && !p.global
            && let Some(t) = self.local(&p.segs[0])
        {
            return t.clone();
        }
        match self.resolve_value(p) {
            Some(Def::Const(Some(lit))) => Ty::Str(Name::from(lit)),
            Some(Def::Api(a, Gen::HostConst)) => match &self.idx.apis[a].host {
                Some(h) => Ty::Str(Name::from(h.as_str())),
                None => Ty::Other,
            },
            Some(Def::Runtime(rp)) if rp.len() >= 2 && rp[rp.len() - 2] == "Method" => {
                Ty::Method(Name::from(rp[rp.len() - 1].as_str()))
            }
            Some(Def::Assoc(base, name)) => {
                if let Def::Api(a, g) = *base
                    && g != Gen::Trait
                    && self.idx.apis[a].endpoints.contains_key(name.as_str())
                {
                    let api = &self.idx.apis[a].name;
                    self.diag(
                        Code::UnresolvedCall,
                        loc,
                        format!(
                            "`{}` is used as a function value, so the analyzer cannot tell which host it will call; call the method on a client instead, e.g. `{api}Client::new(&svc).{name}(…)`",
                            p.segs.join("::")
                        ),
                    );
                }
                Ty::Other
            }
            None if p.segs.len() >= 2 && p.segs[p.segs.len() - 2] == "Method" => {
                Ty::Method(p.segs[p.segs.len() - 1].clone())
            }
            Some(Def::Fn(u)) => {
                // A fn used as a value (`LazyLock::new(make)`, `.map(make)`):
                // what it returns is created where the analyzer does not
                // follow it.
                let unit = &self.idx.units[u];
                if let Some(r) = &unit.def.ret
                    && r.last().is_some_and(|l| self.idx.type_names.contains(l))
                {
                    let t = self.ty_of(unit.module, r, unit.self_ty);
                    self.escape(
                        &t,
                        loc,
                        "a fn value (what the fn returns is created where the analyzer does not see the call)",
                    );
                }
                Ty::Other
            }
            _ => Ty::Other,
        }
    }

    /// The return type of a body, with what flows out of it.
    fn ret_ty(&mut self, callee: UnitId) -> Ty {
        let unit = &self.idx.units[callee];
        match &unit.def.ret {
            Some(t) => match self.ty_of(unit.module, t, unit.self_ty) {
                t if t.is_client() => {
                    let d = self.read(FlowKey::Ret(callee));
                    t.with_dests(d)
                }
                t => t,
            },
            None => Ty::Other,
        }
    }

    /// Arguments flowing into the parameters of `callee` (`recv`: the
    /// receiver, for a method called with `.`; for `Type::m(x, …)` of a
    /// method with `self`, the first argument is the receiver).
    fn call_unit(&mut self, callee: UnitId, recv: Option<&Ty>, args: &[(Ty, Loc)], loc: Loc) {
        self.fact(FactKind::Edge(callee), loc);
        let unit = &self.idx.units[callee];
        let (m, self_ty, has_self) = (unit.module, unit.self_ty, unit.def.has_self);
        let params = &unit.def.params;
        let mut args = args.iter();
        let recv = match recv {
            Some(r) => Some((r.clone(), loc)),
            None if has_self => args.next().cloned(),
            None => None,
        };
        if let Some((Ty::Struct(s, site), _)) = &recv
            && has_self
            && self.idx.units[callee].inherent
        {
            self.receiver_into(callee, *s, site);
        }
        if let Some((r, l)) = recv
            && has_self
            && r.is_client()
        {
            let slot = self.ty_of(m, &PathRef::single("Self"), self_ty);
            self.flow_into(
                &slot,
                &r,
                FlowKey::Param(callee, SELF_PARAM),
                l,
                "a receiver of another type",
            );
        }
        for (i, (t, l)) in args.enumerate() {
            let declared = params.get(i).and_then(|p| p.1.as_ref());
            // A value not known to hold a client matters only to a
            // parameter declared with a client type (it is then any host):
            // checked by name before anything is resolved.
            let untracked_into_client_slot = matches!(t, Ty::Unknown | Ty::Other)
                && declared
                    .is_some_and(|pt| pt.last().is_some_and(|l| self.idx.type_names.contains(l)));
            if !self.bearing(t) && !untracked_into_client_slot {
                continue;
            }
            let slot = match declared {
                Some(pt) => self.ty_of(m, pt, self_ty),
                None => Ty::Unknown,
            };
            if !self.bearing(&slot) && !self.bearing(t) {
                continue;
            }
            self.flow_into(
                &slot,
                t,
                FlowKey::Param(callee, i as u32),
                *l,
                "a parameter of another declared type (a generic, `impl Trait`, a trait object, an alias…)",
            );
        }
    }

    /// The result of calling `units` (every impl of one name): the first's
    /// return type, every one's flows.
    fn call_units(
        &mut self,
        units: &[UnitId],
        recv: Option<&Ty>,
        args: &[(Ty, Loc)],
        loc: Loc,
    ) -> Option<Ty> {
        for &u in units {
            self.call_unit(u, recv, args, loc);
        }
        let mut out: Option<Ty> = None;
        for &u in units {
            let t = self.ret_ty(u);
            out = Some(match out {
                None => t,
                Some(prev) => self.join(prev, t, loc),
            });
        }
        out
    }

    /// A local closure called with `args` (`let f = |c| …; f(&svc)`): its
    /// body is evaluated again with each parameter bound to the argument
    /// (an untyped parameter, or one typed as the argument's client,
    /// Connector or struct), so what the body does with a client or
    /// Connector it is given is followed; an argument into a parameter of
    /// another type escapes. (Its first evaluation, where it is written,
    /// saw the parameters' declared types or none.)
    fn call_closure(&mut self, params: ParamList, body: ExprId, args: &[(Ty, Loc)]) {
        let ar = self.ar;
        let ps = ar.param_run(params);
        let mut binds: Vec<Ty> = Vec::with_capacity(ps.len());
        let mut any = false;
        for (i, (p, declared)) in ps.iter().enumerate() {
            let unit = &self.idx.units[self.unit];
            let declared = declared
                .as_ref()
                .map(|t| self.ty_of(self.m, t, unit.self_ty));
            let arg = args.get(i);
            let t = match (arg, declared) {
                (Some((a, _)), None) if self.bearing(a) => a.clone(),
                (Some((a, l)), Some(d)) if self.bearing(a) => {
                    let same = match (d.peel(), a.peel()) {
                        (Ty::Client(x, g, _), Ty::Client(x2, g2, _)) => x == x2 && g == g2,
                        (Ty::Struct(s, _), Ty::Struct(s2, _)) => s == s2,
                        (Ty::Connector, Ty::Connector) => true,
                        _ => false,
                    };
                    if same && layers_of(&d) == layers_of(a) {
                        a.clone()
                    } else {
                        self.escape(a, *l, "a closure parameter of another declared type");
                        d
                    }
                }
                (_, Some(d)) => d,
                (_, None) => Ty::Unknown,
            };
            any |= self.bearing(&t);
            let _ = p;
            binds.push(t);
        }
        for (t, l) in args.iter().skip(ps.len()) {
            self.escape(t, *l, "an argument of a closure or fn value");
        }
        if !any {
            return;
        }
        self.closures += 1;
        self.scoped(|ev| {
            let at = ev.last_loc;
            for ((p, _), t) in ps.iter().zip(binds) {
                ev.bind_pat(p, t, at);
            }
            let t = ev.sub(body);
            let at = ev.last_loc;
            ev.returned(t, at);
        });
        self.closures -= 1;
    }

    fn call_path(&mut self, p: &PathRef, args: &[(Ty, Loc)], loc: Loc) -> Ty {
        if p.segs.len() == 1
            && !p.global
            && let Some(local) = self.local(&p.segs[0])
        {
            let Ty::Closure(params, body) = *local else {
                for (t, l) in args {
                    self.escape(t, *l, "an argument of a closure or fn value");
                }
                return Ty::Unknown;
            };
            self.call_closure(params, body, args);
            return Ty::Unknown;
        }
        let first = || args.first().map_or(Ty::Unknown, |a| a.0.clone());
        match self.resolve_value(p) {
            Some(Def::Fn(u)) => {
                // Each cfg alternative may be the one built: each is called.
                let units: smallvec::SmallVec<[UnitId; 2]> = self.idx.alternates(u).collect();
                self.call_units(&units, None, args, loc)
                    .unwrap_or(Ty::Other)
            }
            Some(Def::Assoc(base, name)) => match *base {
                Def::Api(a, g) if g != Gen::Trait && g != Gen::HostConst => {
                    if self.idx.apis[a].endpoints.contains_key(name.as_str()) {
                        // UFCS: `CalculatorClient::square(&c, 1)`.
                        let dests = match first().peel() {
                            Ty::Client(a2, g2, d) if *a2 == a && *g2 == g => d.clone(),
                            _ => one(ClientDest::Dynamic),
                        };
                        return self.endpoint_call(a, g, &dests, &name, loc);
                    }
                    if name == "new" {
                        return Ty::Client(a, g, one(ClientDest::Own));
                    }
                    let units = self
                        .idx
                        .client_methods
                        .get(&(a, g, Name::from(name.as_str())))
                        .cloned()
                        .unwrap_or_default();
                    if let Some(t) = self.call_units(&units, None, args, loc) {
                        return t;
                    }
                    for (t, l) in args {
                        self.escape(t, *l, "an argument of a call the analyzer does not resolve");
                    }
                    Ty::Other
                }
                Def::Struct(s) => {
                    let units = self
                        .idx
                        .methods
                        .get(&(s, Name::from(name.as_str())))
                        .cloned()
                        .unwrap_or_default();
                    match self.call_units(&units, None, args, loc) {
                        Some(Ty::Other)
                            if units
                                .first()
                                .is_some_and(|&u| self.idx.units[u].def.ret.is_none()) =>
                        {
                            Ty::Other
                        }
                        Some(t) => t,
                        None => {
                            for (t, l) in args {
                                self.escape(
                                    t,
                                    *l,
                                    "an argument of a method the analyzer does not find",
                                );
                            }
                            Ty::Struct(s, None)
                        }
                    }
                }
                _ => {
                    for (t, l) in args {
                        self.escape(t, *l, "an argument of a call the analyzer does not resolve");
                    }
                    Ty::Other
                }
            },
            Some(Def::Struct(s)) => {
                // A tuple struct: `W(c)`.
                let vals: Vec<(Option<Name>, Ty, Loc)> = args
                    .iter()
                    .enumerate()
                    .map(|(i, (t, l))| (Some(compact_str::format_compact!("{i}")), t.clone(), *l))
                    .collect();
                let site = self.struct_fields(s, &vals);
                Ty::Struct(s, site)
            }
            Some(Def::Runtime(rp)) if ends_with_connector_new(&rp) => self.connector_new(args, loc),
            None if ends_with_connector_new(&p.segs) => self.connector_new(args, loc),
            _ => {
                let n = p.segs.len();
                let wrapper_ctor = n >= 2
                    && crate::lower::WRAPPERS.contains(&p.segs[n - 2].as_str())
                    && matches!(p.segs[n - 1].as_str(), "new" | "from" | "pin" | "clone");
                let variant = n == 1 && matches!(p.segs[0].as_str(), "Some" | "Ok");
                // `XServer::new(imp)`: the implementation's methods are all
                // evaluated with their own `self` type, fields included.
                let served = n >= 2
                    && p.segs[n - 1] == "new"
                    && p.segs[n - 2].strip_suffix("Server").is_some_and(|t| {
                        let mut segs: Vec<Name> = p.segs[..n - 2].to_vec();
                        segs.push(Name::from(t));
                        let trait_path = PathRef {
                            global: p.global,
                            segs: Segs::from(segs),
                        };
                        matches!(
                            self.resolve_value(&trait_path),
                            Some(Def::Api(_, Gen::Trait))
                        )
                    });
                let dropped = served || matches!(p.segs.last().map(Name::as_str), Some("drop"));
                if wrapper_ctor || variant {
                    for (t, l) in args.iter().skip(1) {
                        self.escape(t, *l, "an argument of a call the analyzer does not resolve");
                    }
                    let layer = if variant {
                        crate::lower::WRAP_OPT
                    } else {
                        crate::lower::wrapper_marker(&p.segs[n - 2]).unwrap_or_default()
                    };
                    match layer {
                        crate::lower::WRAP_OPT => push_layer(first(), WRAP_OPT),
                        crate::lower::WRAP_LOCK => push_layer(first(), WRAP_LOCK),
                        crate::lower::WRAP_CELL => push_layer(first(), WRAP_CELL),
                        _ => first(),
                    }
                } else {
                    if !dropped && args.iter().any(|(t, _)| self.bearing(t)) {
                        let what = format!(
                            "`{}(…)`, which the analyzer does not follow (an enum variant, a collection, code outside the tree)",
                            p.segs.join("::")
                        );
                        for (t, l) in args {
                            self.escape(t, *l, &what);
                        }
                    }
                    Ty::Other
                }
            }
        }
    }

    fn connector_new(&mut self, args: &[(Ty, Loc)], loc: Loc) -> Ty {
        let host = match args.first() {
            Some((Ty::Str(s), _)) => Some(s.to_string()),
            _ => None,
        };
        self.fact(FactKind::ConnectorNew(host), loc);
        Ty::Connector
    }

    /// Whether a raw-call-looking method on a receiver of unknown type is a bus call.
    fn looks_raw(name: &str, args: &[(Ty, Loc)]) -> bool {
        match (name, args.first()) {
            ("request" | "publish", Some((Ty::Method(_), _))) => true,
            ("get" | "post", Some((Ty::Str(u), _))) => {
                u.starts_with("https://") || u.starts_with("http://")
            }
            _ => false,
        }
    }

    fn escape_args(&mut self, args: &[(Ty, Loc)], into: &str) {
        for (t, l) in args {
            self.escape(t, *l, into);
        }
    }

    fn method(&mut self, recv: Ty, name: &str, args: &[(Ty, Loc)], loc: Loc) -> Ty {
        let tys: smallvec::SmallVec<[Ty; 4]> = args.iter().map(|a| a.0.clone()).collect();
        match recv {
            Ty::Wrapped(w, inner) => self.wrapped_method(w, *inner, name, args, loc),
            Ty::Client(a, g, dests) => {
                // Endpoint names are looked up first, whatever the name.
                if self.idx.apis[a].endpoints.contains_key(name) {
                    self.escape_args(args, "an argument of an endpoint call");
                    return self.endpoint_call(a, g, &dests, name, loc);
                }
                if name == "for_host" {
                    if dests.is_empty() {
                        return Ty::Client(a, g, dests);
                    }
                    let dest = match tys.first() {
                        // A leading `id-…`/`loc-…` label addresses one
                        // instance or locality of the host: the grant is
                        // the host's (rules carry `*` in the position).
                        Some(Ty::Str(h)) => match buswarden_rules::Position::split_host(h)
                            .map_err(|e| e.to_string())
                            .and_then(|(_, rest)| {
                                Hostname::parse_destination(rest).map_err(|e| e.to_string())
                            }) {
                            Ok(h) => ClientDest::Host(h),
                            Err(e) => {
                                self.diag(Code::InvalidRoute, loc, format!("for_host({h:?}): {e}"));
                                ClientDest::Dynamic
                            }
                        },
                        _ => ClientDest::Dynamic,
                    };
                    return Ty::Client(a, g, one(dest));
                }
                let units = self
                    .idx
                    .client_methods
                    .get(&(a, g, Name::from(name)))
                    .cloned()
                    .unwrap_or_default();
                let recv = Ty::Client(a, g, dests);
                if let Some(t) = self.call_units(&units, Some(&recv), args, loc) {
                    return t;
                }
                if PASSTHROUGH.contains(&name) {
                    return recv;
                }
                let Ty::Client(a, g, dests) = recv else {
                    return Ty::Other;
                };
                self.endpoint_call(a, g, &dests, name, loc)
            }
            Ty::Connector => {
                if RAW_VERBS.contains(&name) || name == "request" || name == "publish" {
                    self.escape_args(args, "an argument of a Connector method");
                    self.raw_call(name, &tys, loc);
                    return Ty::Other;
                }
                // A helper written for the Connector (`impl Ext for Connector`).
                let units = self
                    .idx
                    .connector_methods
                    .get(name)
                    .cloned()
                    .unwrap_or_default();
                if let Some(t) = self.call_units(&units, Some(&Ty::Connector), args, loc) {
                    return t;
                }
                self.escape_args(args, "an argument of a Connector method");
                // The builder methods (`with_url`, `with_creds_dir`…) return it.
                if PASSTHROUGH.contains(&name) || name.starts_with("with_") {
                    Ty::Connector
                } else {
                    if self.idx.self_method_names.contains(name) {
                        // A blanket impl's method (`impl<T: AsRef<Connector>> X for T`).
                        self.fact(FactKind::UnknownMethod(Name::from(name)), loc);
                    }
                    Ty::Other
                }
            }
            Ty::Struct(s, site) => {
                let units = self
                    .idx
                    .methods
                    .get(&(s, Name::from(name)))
                    .cloned()
                    .unwrap_or_default();
                let recv = Ty::Struct(s, site);
                if let Some(t) = self.call_units(&units, Some(&recv), args, loc) {
                    return t;
                }
                // A `Deref` newtype: the method is the target's (an
                // endpoint name of the target first).
                let deref = self
                    .idx
                    .methods
                    .get(&(s, Name::from("deref")))
                    .and_then(|u| u.first().copied());
                let target_endpoint = deref.is_some_and(|d| {
                    let u = &self.idx.units[d];
                    u.def.ret.as_ref().is_some_and(|r| {
                        matches!(self.ty_of(u.module, r, u.self_ty),
                            Ty::Client(a, _, _) if self.idx.apis[a].endpoints.contains_key(name))
                    })
                });
                if PASSTHROUGH.contains(&name) && name != "deref" && !target_endpoint {
                    self.escape_args(args, "an argument of a method the analyzer does not find");
                    return recv;
                }
                if let Some(d) = deref {
                    self.fact(FactKind::Edge(d), loc);
                    let target = self.ret_ty(d);
                    if target != recv && !matches!(target, Ty::Struct(t, _) if t == s) {
                        return self.method(target, name, args, loc);
                    }
                }
                if self.idx.self_method_names.contains(name) {
                    // A blanket impl's method (`impl<T: Tr> X for T`).
                    self.fact(FactKind::UnknownMethod(Name::from(name)), loc);
                }
                if self.bearing(&recv)
                    && !matches!(name, "fmt" | "eq" | "cmp" | "hash" | "partial_cmp" | "ne")
                {
                    self.escape(
                        &recv,
                        loc,
                        &format!("`.{name}(…)`, a method the analyzer does not find in the tree (a trait's provided method, a derive, a blanket impl)"),
                    );
                }
                self.escape_args(args, "an argument of a method the analyzer does not find");
                Ty::Other
            }
            t @ (Ty::Str(_) | Ty::Method(_)) if PASSTHROUGH.contains(&name) => t,
            Ty::Str(_) | Ty::Method(_) | Ty::Other | Ty::Closure(..) => {
                self.escape_args(args, "an argument of a method of a type outside the tree (a collection, a cell, a channel…)");
                Ty::Other
            }
            Ty::Unknown => {
                if Self::looks_raw(name, args) {
                    self.raw_call(name, &tys, loc);
                } else if RAW_NAMES.contains(&name) {
                    // It may be a Connector whose type was lost: never
                    // "not bus-related".
                    self.diag(
                        Code::AmbiguousReceiver,
                        loc,
                        format!(
                            "`.{name}(…)` is called on a value whose type the analyzer cannot determine, and `{name}` is a raw call of `buswarden::Connector`; give the value its type (a typed parameter or closure parameter, `let x: &Connector = …;`, `let m: &HashMap<…> = …;`) so the call can be resolved or known not to be a bus call"
                        ),
                    );
                } else if name == "for_host"
                    || self.idx.endpoint_names.contains(name)
                    || self.idx.client_method_names.contains(name)
                {
                    self.diag(
                        Code::AmbiguousReceiver,
                        loc,
                        format!(
                            "`.{name}(…)` is called on a value whose type the analyzer cannot determine, and `{name}` is a client method; bind the client with its type (`let c: XClient = …;` or a typed parameter) so the call can be resolved"
                        ),
                    );
                } else if !PASSTHROUGH.contains(&name) && self.idx.self_method_names.contains(name)
                {
                    // Only a workspace method with a `self` receiver can be
                    // a bus method (`analysis::bus_methods`).
                    self.fact(FactKind::UnknownMethod(Name::from(name)), loc);
                }
                self.escape_args(
                    args,
                    "an argument of a method on a value whose type the analyzer cannot determine",
                );
                Ty::Unknown
            }
        }
    }

    /// A method of a wrapper layer around a client or struct: the layer's
    /// own methods take it off (or turn it into another); any other method
    /// is the wrapped value's.
    fn wrapped_method(
        &mut self,
        w: u16,
        inner: Ty,
        name: &str,
        args: &[(Ty, Loc)],
        loc: Loc,
    ) -> Ty {
        let t = Ty::Wrapped(w, Box::new(inner));
        let layer = w & 3;
        let off = || unwrap_layer(&t, layer).unwrap_or(Ty::Unknown);
        let became = |other: u16| push_layer(off(), other);
        if layer == WRAP_OPT && name == "unwrap_or" && args.len() == 1 {
            // `o.unwrap_or(c)`: the value inside, or `c`.
            let inner = off();
            return self.join(inner, args[0].0.clone(), loc);
        }
        let r = match (layer, name) {
            (
                WRAP_OPT,
                "unwrap" | "expect" | "unwrap_or_default" | "unwrap_or" | "unwrap_or_else"
                | "unwrap_unchecked",
            ) => Some(off()),
            (
                WRAP_OPT,
                "as_ref" | "as_mut" | "as_deref" | "as_deref_mut" | "clone" | "cloned" | "copied"
                | "take" | "ok" | "or" | "or_else" | "map_err" | "context" | "with_context"
                | "ok_or" | "ok_or_else" | "inspect",
            ) => Some(t.clone()),
            (WRAP_OPT, "is_some" | "is_none" | "is_ok" | "is_err") => Some(Ty::Other),
            (
                WRAP_LOCK,
                "lock" | "read" | "write" | "try_lock" | "try_read" | "try_write" | "get_mut"
                | "into_inner",
            ) => Some(became(WRAP_OPT)),
            (WRAP_CELL, "borrow" | "borrow_mut" | "get_mut" | "get_or_init" | "force") => {
                Some(off())
            }
            (WRAP_CELL, "get" | "take" | "into_inner" | "try_borrow" | "try_borrow_mut") => {
                Some(became(WRAP_OPT))
            }
            _ => None,
        };
        if let Some(r) = r {
            self.escape_args(args, "an argument of a wrapper's method");
            return r;
        }
        match t.peel() {
            // An endpoint name on the wrapped client (the layer does not
            // have it): the call.
            Ty::Client(a, _, _) if self.idx.apis[*a].endpoints.contains_key(name) => {
                let inner = t.peel().clone();
                self.method(inner, name, args, loc)
            }
            // A raw call or a helper on a guard around a Connector
            // (`svc.lock().await.get(…)` with an async mutex): the
            // Connector's (no wrapper layer has these methods).
            Ty::Connector
                if RAW_NAMES.contains(&name) || self.idx.connector_methods.contains_key(name) =>
            {
                self.method(Ty::Connector, name, args, loc)
            }
            Ty::Struct(..) => {
                let inner = t.peel().clone();
                self.method(inner, name, args, loc)
            }
            _ => {
                let what = match layer {
                    WRAP_OPT => "an `Option`/`Result`",
                    WRAP_LOCK => "a `Mutex`/`RwLock`",
                    _ => "a cell",
                };
                self.escape(
                    &t,
                    loc,
                    &format!("`.{name}(…)` on {what} the analyzer does not follow (take the value out with `?`, `match`, `if let`, `unwrap`, `lock` or `borrow` first)"),
                );
                self.escape_args(args, "an argument of a wrapper's method");
                Ty::Other
            }
        }
    }

    fn endpoint_call(
        &mut self,
        a: usize,
        g: Gen,
        dests: &[ClientDest],
        name: &str,
        loc: Loc,
    ) -> Ty {
        for d in dests {
            self.endpoint_call_to(a, g, d.clone(), name, loc);
        }
        if dests.is_empty() {
            // No creation site reaches the value: nothing is sent, but a
            // name the API does not declare is still reported.
            if !self.idx.apis[a].endpoints.contains_key(name) {
                self.endpoint_call_to(a, g, ClientDest::Own, name, loc);
            }
        }
        Ty::Other
    }

    fn endpoint_call_to(&mut self, a: usize, g: Gen, dest: ClientDest, name: &str, loc: Loc) {
        let api = &self.idx.apis[a];
        let Some(ep) = api.endpoints.get(name) else {
            let list: Vec<&str> = api.endpoints.keys().map(Name::as_str).collect();
            let msg = format!(
                "`{}` declares no endpoint `{name}` (it declares: {}); call one of those or add it to the trait",
                api.name,
                list.join(", ")
            );
            self.diag(Code::UnknownEndpoint, loc, msg);
            return;
        };
        // Declared but invalid: reported once on the declaration.
        let Some(ep) = ep.clone() else {
            return;
        };
        let Some(api_host) = api.host.clone() else {
            return;
        };
        let api_name = api.name.clone();
        let is_event = ep.kind == EndpointKind::Event;
        let type_name = match g {
            Gen::Client => "Client",
            Gen::Multicast => "MulticastClient",
            Gen::Trigger => "Trigger",
            Gen::Hook => "Hook",
            Gen::Trait | Gen::HostConst => "",
        };
        let what = format!("{api_name}{type_name}::{name}");
        match (g, is_event) {
            (Gen::Client | Gen::Multicast, false) => {
                let (cd, dynamic) = match dest {
                    ClientDest::Own => (CallDest::Host(ep.route.host.clone().unwrap_or(api_host)), false),
                    ClientDest::Host(h) => (CallDest::Host(h), false),
                    ClientDest::Dynamic => (CallDest::Any, true),
                };
                let method = if ep.method.is_any() { Method::post() } else { ep.method.clone() };
                self.fact(
                    FactKind::Call {
                        dest: cd,
                        method,
                        route: ep.route,
                        dynamic,
                        grant: false,
                        what,
                    },
                    loc,
                );
            }
            (Gen::Trigger, true) => self.fact(
                FactKind::Event {
                    source: api_host,
                    method: ep.method,
                    route: ep.route,
                    what,
                },
                loc,
            ),
            (Gen::Hook, true) => {
                let source = match dest {
                    ClientDest::Own => api_host,
                    ClientDest::Host(h) => h,
                    ClientDest::Dynamic => {
                        self.diag(
                            Code::UnresolvedCall,
                            loc,
                            format!("`{what}` hooks an event of a computed host; hook a literal host (for_host(\"x.example\")) or the API's own"),
                        );
                        return;
                    }
                };
                self.fact(
                    FactKind::Hook {
                        source,
                        method: ep.method,
                        route: ep.route,
                        what,
                    },
                    loc,
                );
            }
            (_, true) => self.diag(
                Code::UnknownEndpoint,
                loc,
                format!("`{name}` is an event of `{api_name}`: fire it with `{api_name}Trigger` (in its own service) or hook it with `{api_name}Hook`"),
            ),
            (_, false) => self.diag(
                Code::UnknownEndpoint,
                loc,
                format!("`{name}` is not an event of `{api_name}`: call it with `{api_name}Client`"),
            ),
        }
    }

    fn raw_call(&mut self, name: &str, args: &[Ty], loc: Loc) {
        let (method, url) = match name {
            "request" | "publish" => (
                match args.first() {
                    Some(Ty::Method(m) | Ty::Str(m)) => Some(m.to_string()),
                    _ => None,
                },
                args.get(1),
            ),
            verb => (Some(verb.to_ascii_uppercase()), args.first()),
        };
        let url = match url {
            Some(Ty::Str(u)) => Some(u.to_string()),
            _ => None,
        };
        let (Some(method), Some(url)) = (method, url) else {
            if !self.granted {
                self.diag(
                    Code::DynamicUrl,
                    loc,
                    format!(
                        "raw `.{name}(…)` with a method or URL that is not a literal; write the literal URL, use a typed client, or declare what it may call with #[buswarden::grant(METHOD, \"https://host:port/path/{{arg}}\")] on the enclosing fn"
                    ),
                );
            }
            return;
        };
        let parsed =
            Method::parse(&method).and_then(|m| Url::parse_addressed(&url).map(|(u, _)| (m, u)));
        match parsed {
            Ok((m, u)) => {
                let route = u.route();
                self.fact(
                    FactKind::Call {
                        dest: CallDest::Host(u.host.clone()),
                        method: m.clone(),
                        route,
                        dynamic: false,
                        grant: false,
                        what: format!("{name}({m}, {url:?})"),
                    },
                    loc,
                );
            }
            Err(e) => self.diag(Code::InvalidRoute, loc, format!("raw `.{name}(…)`: {e}")),
        }
    }

    fn grant(&mut self, g: &GrantAttr) {
        let r = match (&g.method, &g.url) {
            (Ok(m), Ok(u)) => parse_grant(m, u).map(|x| (x, u.clone(), m.clone())),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        match r {
            Ok(((dest, method, route), url, m)) => self.fact(
                FactKind::Call {
                    dest,
                    method,
                    route,
                    dynamic: false,
                    grant: true,
                    what: format!("#[buswarden::grant({m}, {url:?})]"),
                },
                g.loc,
            ),
            Err(e) => self.diag(
                Code::InvalidGrant,
                g.loc,
                format!("#[buswarden::grant]: {e}; write #[buswarden::grant(GET, \"https://host.example:443/path/{{arg}}\")]"),
            ),
        }
    }

    fn mentions_client(&self, idents: &[Name]) -> Option<Name> {
        idents
            .iter()
            .find(|i| self.idx.client_names.contains(*i))
            .cloned()
    }

    fn macro_call(&mut self, mc: &MacroCall) -> Ty {
        let name = mc.path.last().unwrap_or_default();
        let formatting = FORMATTING.contains(&name) || name == "dbg";
        let ar = self.ar;
        // A client handed to a macro (`vec![c]`, `my_macro!(c)`) goes where
        // the analyzer does not follow it (it does not expand macros).
        let t = self.scoped(|ev| {
            let mut last = Ty::Other;
            for st in ar.run(mc.body) {
                last = ev.expr(st);
                if !formatting && !matches!(st, Expr::Local(_)) && ev.bearing(&last) {
                    let at = ev.last_loc;
                    ev.escape(
                        &last,
                        at,
                        &format!("the macro `{name}!`, which the analyzer does not expand"),
                    );
                }
            }
            last
        });
        if let Some(c) = self.mentions_client(&mc.unparsed_idents) {
            self.diag(
                Code::UnresolvedMacro,
                mc.loc,
                format!("`{name}!` names `{c}` in arguments the analyzer cannot parse as expressions; make the client call outside the macro and pass its result in"),
            );
        }
        match &mc.include {
            Some(Ok(idents)) => {
                if let Some(c) = self.mentions_client(idents) {
                    self.diag(
                        Code::UnresolvedMacro,
                        mc.loc,
                        format!("include! brings in code that names `{c}`, which the analyzer does not follow; move that code into a module (`mod x;`)"),
                    );
                }
            }
            Some(Err(why)) => self.fact(
                FactKind::Diag(
                    Code::UnresolvedMacro,
                    Severity::Warning,
                    format!("{why}; code it brings in is not analysed (make no bus calls in generated code)"),
                ),
                mc.loc,
            ),
            None => {}
        }
        match name {
            "dbg" => t,
            _ if formatting || name == "vec" => Ty::Other,
            "concat" => {
                let mut s = String::new();
                for st in self.ar.run(mc.body) {
                    match st {
                        Expr::Lit(Some(l)) => s.push_str(l),
                        _ => return Ty::Other,
                    }
                }
                Ty::Str(Name::from(s))
            }
            _ if self.bearing(&t) => Ty::Unknown,
            _ => t,
        }
    }
}

/// Whether a path ends in `Connector::new` or `Connector::with_config`
/// (the Connector's constructors).
fn ends_with_connector_new<S: AsRef<str>>(segs: &[S]) -> bool {
    matches!(segs, [.., a, b] if a.as_ref() == "Connector" && matches!(b.as_ref(), "new" | "with_config"))
}
