//! Evaluation of one body (a fn, method, const initializer or item macro):
//! walks its expression skeleton with a scoped environment of local types
//! and turns every bus-related expression into a [`Fact`]: a typed client
//! call, an event fired or hooked, a raw call, an explicit grant, a call of
//! another body (a helper), or a finding.
//!
//! Receiver types come from `let` bindings (with shadowing and type
//! annotations), parameters, struct fields, `self.field`, return types of
//! helpers, and constructor calls. A type is either bus-related (a client,
//! a `Connector`, a workspace struct), known and unrelated (`Other`), or
//! unknown. Raw-call method names (`get`, `post`, `request`, `publish`) are
//! treated as bus calls on a `Connector`, and on an unknown receiver only
//! when the arguments look like a bus call (a `Method::X` first argument, or
//! an `http(s)://` literal); so `map.get(&k)` is never a finding.

use crate::diagnostic::{Code, Severity};
use crate::index::{Def, Gen, Index, StructId, UnitId};
use crate::ir::*;
use buswarden_rules::{Hostname, Method, Route, Url};

/// Where a typed client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A generated client of an API.
    Client(usize, Gen, ClientDest),
    /// A workspace struct.
    Struct(StructId),
    /// A string known at analysis time.
    Str(Name),
    /// A `Method::X` value.
    Method(Name),
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

/// Methods whose result is, for the analyzer, the receiver itself.
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

/// Method names of raw calls on a `Connector`.
const RAW_VERBS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

/// Bindings in scope while a unit is evaluated (reused from unit to unit).
pub type Scopes = Vec<(Name, Ty)>;

/// Evaluates one unit; `scopes` is a scratch stack reused from unit to
/// unit (cleared here).
pub fn eval_unit_with(idx: &Index<'_>, u: UnitId, scopes: &mut Scopes) -> Vec<Fact> {
    scopes.clear();
    let unit = &idx.units[u];
    let file = idx.files[idx.modules[unit.module].file];
    let mut ev = Eval {
        idx,
        ar: &file.ir,
        unit: u,
        m: unit.module,
        scopes: std::mem::take(scopes),
        facts: vec![],
        granted: !unit.def.grants.is_empty(),
    };
    for g in &unit.def.grants {
        ev.grant(g);
    }
    if unit.def.has_self {
        let t = ev.self_ty();
        ev.bind("self", t);
    }
    for (p, t) in &unit.def.params {
        let ty = t
            .as_ref()
            .map_or(Ty::Unknown, |t| ev.ty_of(unit.module, t, unit.self_ty));
        ev.bind_pat(p, ty);
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
        ev.block(body);
    }
    *scopes = std::mem::take(&mut ev.scopes);
    ev.facts
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

    fn bind_pat(&mut self, p: &Pat, ty: Ty) {
        match p {
            Pat::Ident(n) => self.bind(n, ty),
            // `Some(c)`, `Ok(c)`, `let Some(c) = … else`: one name takes the
            // scrutinee's type (wrappers are stripped the same way in types).
            Pat::Binds(names) if names.len() == 1 && ty != Ty::Other => self.bind(&names[0], ty),
            Pat::Binds(names) => {
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

    /// The type a written type path denotes, in module `m`.
    fn ty_of(&self, m: usize, p: &PathRef, self_ty: Option<&PathRef>) -> Ty {
        if p.segs.len() == 1 && p.segs[0] == "Self" {
            return match self_ty {
                Some(s) => self.ty_of(m, s, None),
                None => Ty::Unknown,
            };
        }
        match self.idx.resolve(m, p) {
            Some(Def::Api(a, g)) if g != Gen::Trait && g != Gen::HostConst => {
                Ty::Client(a, g, ClientDest::Own)
            }
            Some(Def::Runtime(rp)) if rp.last().is_some_and(|l| l == "Connector") => Ty::Connector,
            Some(Def::Struct(s)) => Ty::Struct(s),
            None if p.last() == Some("Connector") => Ty::Connector,
            _ => Ty::Other,
        }
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
        if let Some(decl) = ty {
            let unit = &self.idx.units[self.unit];
            let d = self.ty_of(self.m, decl, unit.self_ty);
            if d != Ty::Other || !matches!(t, Ty::Str(_) | Ty::Method(_)) {
                t = d;
            }
        }
        if let Some(b) = els {
            self.block(*b);
        }
        self.bind_pat(pat, t);
        Ty::Other
    }

    /// The types of a run of expressions (call arguments: a few, kept on
    /// the stack).
    fn exprs(&mut self, es: ExprList) -> smallvec::SmallVec<[Ty; 4]> {
        let ar = self.ar;
        ar.run(es).iter().map(|e| self.expr(e)).collect()
    }

    fn sub(&mut self, id: ExprId) -> Ty {
        let ar = self.ar;
        self.expr(ar.expr(id))
    }

    fn expr(&mut self, e: &Expr) -> Ty {
        match e {
            Expr::Path(p, loc) => self.path_value(p, *loc),
            Expr::Lit(Some(s)) => Ty::Str(s.clone()),
            Expr::Lit(None) => Ty::Other,
            Expr::Call(f, args, loc) => {
                let tys = self.exprs(*args);
                let ar = self.ar;
                match ar.expr(*f) {
                    Expr::Path(p, _) => self.call_path(p, &tys, *loc),
                    other => {
                        self.expr(other);
                        Ty::Unknown
                    }
                }
            }
            Expr::Method(recv, name, args, loc) => {
                let rt = self.sub(*recv);
                let tys = self.exprs(*args);
                self.method(rt, name, &tys, *loc)
            }
            Expr::Field(base, name) => match self.sub(*base) {
                Ty::Struct(s) => self.field(s, name),
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
                self.scoped(|ev| {
                    for (p, t) in ar.param_run(*params) {
                        let unit = &ev.idx.units[ev.unit];
                        let ty = t
                            .as_ref()
                            .map_or(Ty::Unknown, |t| ev.ty_of(ev.m, t, unit.self_ty));
                        ev.bind_pat(p, ty);
                    }
                    ev.sub(*body);
                });
                Ty::Other
            }
            Expr::Match(scrut, arms) => {
                let st = self.sub(*scrut);
                let mut out: Option<Ty> = None;
                let ar = self.ar;
                for arm in ar.arm_run(*arms) {
                    let t = self.scoped(|ev| {
                        ev.bind_pat(&arm.pat, st.clone());
                        if let Some(g) = arm.guard {
                            ev.sub(g);
                        }
                        ev.sub(arm.body)
                    });
                    out = Some(match out {
                        None => t,
                        Some(prev) if prev == t => prev,
                        Some(_) => Ty::Unknown,
                    });
                }
                out.unwrap_or(Ty::Other)
            }
            Expr::If(cond, then, els) => {
                let t = self.scoped(|ev| {
                    ev.sub(*cond);
                    ev.block(*then)
                });
                match els {
                    Some(e) => {
                        let t2 = self.sub(*e);
                        if t == t2 { t } else { Ty::Unknown }
                    }
                    None => Ty::Other,
                }
            }
            Expr::Let(p, init) => {
                let t = self.sub(*init);
                self.bind_pat(p, t);
                Ty::Other
            }
            Expr::Loop(arm, iter) => {
                self.sub(*iter);
                let ar = self.ar;
                if let Some(arm) = ar.arm(*arm) {
                    self.scoped(|ev| {
                        ev.bind_pat(&arm.pat, Ty::Unknown);
                        ev.sub(arm.body);
                    });
                }
                Ty::Other
            }
            Expr::StructLit(p, fields) => {
                let ar = self.ar;
                for e in ar.run(*fields) {
                    self.expr(e);
                }
                match self.resolve_value(p) {
                    Some(Def::Struct(s)) => Ty::Struct(s),
                    _ => Ty::Other,
                }
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
                    self.expr(e);
                }
                Ty::Other
            }
            Expr::Unknown => Ty::Unknown,
        }
    }

    fn field(&self, s: StructId, name: &str) -> Ty {
        let st = &self.idx.structs[s];
        match st.def.fields.iter().find(|(n, _)| n == name) {
            Some((_, Some(t))) => self.ty_of(st.module, t, None),
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
            _ => Ty::Other,
        }
    }

    fn ret_ty(&self, callee: UnitId) -> Ty {
        let unit = &self.idx.units[callee];
        match &unit.def.ret {
            Some(t) => self.ty_of(unit.module, t, unit.self_ty),
            None => Ty::Other,
        }
    }

    fn call_path(&mut self, p: &PathRef, args: &[Ty], loc: Loc) -> Ty {
        if p.segs.len() == 1 && !p.global && self.local(&p.segs[0]).is_some() {
            return Ty::Unknown;
        }
        let first = || args.first().cloned().unwrap_or(Ty::Unknown);
        match self.resolve_value(p) {
            Some(Def::Fn(u)) => {
                self.fact(FactKind::Edge(u), loc);
                self.ret_ty(u)
            }
            Some(Def::Assoc(base, name)) => match *base {
                Def::Api(a, g) if g != Gen::Trait && g != Gen::HostConst => {
                    if name == "new" {
                        return Ty::Client(a, g, ClientDest::Own);
                    }
                    if self.idx.apis[a].endpoints.contains_key(name.as_str()) {
                        // UFCS: `CalculatorClient::square(&c, 1)`.
                        let dest = match first() {
                            Ty::Client(a2, g2, d) if a2 == a && g2 == g => d,
                            _ => ClientDest::Own,
                        };
                        return self.endpoint_call(a, g, dest, &name, loc);
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
                    for &u in &units {
                        self.fact(FactKind::Edge(u), loc);
                    }
                    match units.first() {
                        Some(&u) => match self.ret_ty(u) {
                            Ty::Other if self.idx.units[u].def.ret.is_none() => Ty::Other,
                            t => t,
                        },
                        None => Ty::Struct(s),
                    }
                }
                _ => Ty::Other,
            },
            Some(Def::Struct(s)) => Ty::Struct(s),
            Some(Def::Runtime(rp)) if ends_with_connector_new(&rp) => self.connector_new(args, loc),
            None if ends_with_connector_new(&p.segs) => self.connector_new(args, loc),
            _ => {
                let n = p.segs.len();
                let wrapper_ctor = n >= 2
                    && crate::lower::WRAPPERS.contains(&p.segs[n - 2].as_str())
                    && matches!(p.segs[n - 1].as_str(), "new" | "from" | "pin" | "clone");
                let variant = n == 1 && matches!(p.segs[0].as_str(), "Some" | "Ok");
                if wrapper_ctor || variant {
                    first()
                } else {
                    Ty::Other
                }
            }
        }
    }

    fn connector_new(&mut self, args: &[Ty], loc: Loc) -> Ty {
        let host = match args.first() {
            Some(Ty::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        self.fact(FactKind::ConnectorNew(host), loc);
        Ty::Connector
    }

    fn method(&mut self, recv: Ty, name: &str, args: &[Ty], loc: Loc) -> Ty {
        match recv {
            Ty::Client(a, g, dest) => {
                if name == "for_host" {
                    let dest = match args.first() {
                        Some(Ty::Str(h)) => match Hostname::parse_destination(h) {
                            Ok(h) => ClientDest::Host(h),
                            Err(e) => {
                                self.diag(Code::InvalidRoute, loc, format!("for_host({h:?}): {e}"));
                                dest
                            }
                        },
                        _ => ClientDest::Dynamic,
                    };
                    return Ty::Client(a, g, dest);
                }
                if PASSTHROUGH.contains(&name) {
                    return Ty::Client(a, g, dest);
                }
                self.endpoint_call(a, g, dest, name, loc)
            }
            Ty::Connector => {
                if RAW_VERBS.contains(&name) || name == "request" || name == "publish" {
                    self.raw_call(name, args, loc);
                    Ty::Other
                } else if PASSTHROUGH.contains(&name) {
                    Ty::Connector
                } else {
                    Ty::Other
                }
            }
            Ty::Struct(s) => {
                let units = self
                    .idx
                    .methods
                    .get(&(s, Name::from(name)))
                    .cloned()
                    .unwrap_or_default();
                for &u in &units {
                    self.fact(FactKind::Edge(u), loc);
                }
                match units.first() {
                    Some(&u) => self.ret_ty(u),
                    None if PASSTHROUGH.contains(&name) => Ty::Struct(s),
                    None => Ty::Other,
                }
            }
            t @ (Ty::Str(_) | Ty::Method(_)) if PASSTHROUGH.contains(&name) => t,
            Ty::Str(_) | Ty::Method(_) | Ty::Other => Ty::Other,
            Ty::Unknown => {
                let looks_raw = match (name, args.first()) {
                    ("request" | "publish", Some(Ty::Method(_))) => true,
                    ("get" | "post", Some(Ty::Str(u))) => {
                        u.starts_with("https://") || u.starts_with("http://")
                    }
                    _ => false,
                };
                if looks_raw {
                    self.raw_call(name, args, loc);
                } else if name == "for_host" || self.idx.endpoint_names.contains(name) {
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
                Ty::Unknown
            }
        }
    }

    fn endpoint_call(&mut self, a: usize, g: Gen, dest: ClientDest, name: &str, loc: Loc) -> Ty {
        let api = &self.idx.apis[a];
        let Some(ep) = api.endpoints.get(name) else {
            let list: Vec<&str> = api.endpoints.keys().map(Name::as_str).collect();
            let msg = format!(
                "`{}` declares no endpoint `{name}` (it declares: {}); call one of those or add it to the trait",
                api.name,
                list.join(", ")
            );
            self.diag(Code::UnknownEndpoint, loc, msg);
            return Ty::Other;
        };
        // Declared but invalid: reported once on the declaration.
        let Some(ep) = ep.clone() else {
            return Ty::Other;
        };
        let Some(api_host) = api.host.clone() else {
            return Ty::Other;
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
                        return Ty::Other;
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
        Ty::Other
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
        let parsed = Method::parse(&method).and_then(|m| Url::parse(&url).map(|u| (m, u)));
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
        let t = self.block(mc.body);
        let name = mc.path.last().unwrap_or_default();
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
            "format" | "vec" | "println" | "eprintln" | "write" | "writeln" | "assert"
            | "assert_eq" => Ty::Other,
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
            _ => t,
        }
    }
}

/// Whether a path ends in `Connector::new`.
fn ends_with_connector_new<S: AsRef<str>>(segs: &[S]) -> bool {
    matches!(segs, [.., a, b] if a.as_ref() == "Connector" && b.as_ref() == "new")
}
