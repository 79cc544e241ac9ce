//! The whole analysis of a tree: discover crates, parse every file in
//! parallel, index, evaluate every body, then build each service's model
//! from its own bodies and the bodies of other crates they reach
//! (transitively, cycles handled), apply the event and trust-root rules, and
//! derive its rule set with provenance for every rule.
//!
//! Grant scope: every body of a service crate grants, reached or not; a body
//! of another crate grants only when a service body reaches it through calls.
//! What flows into a client parameter or field is counted per service: the
//! bodies a service reaches that read what code outside its reach also
//! fills are evaluated again with only its own flows (`narrowed_facts`).

use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::eval::{CallDest, Dests, Fact, FactKind, Flow, FlowKey, UnitOut, eval_unit_with};
use crate::index::{self, Def, Gen, Index, UnitId};
use crate::ir::Loc;
use crate::source::{self, Limits};
use crate::workspace::{self, Workspace};
use buswarden_rules::derive::{call_rule, endpoint_rule, event_rule, hook_rule, implicit_rules};
use buswarden_rules::policy::{self as rules_policy, Policy};
use buswarden_rules::validate::ValidationError;
use buswarden_rules::{
    Call, Dest, Endpoint, EventOut, Hook, Hostname, Rule, RuleSet, ServiceModel, budget,
};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// How to analyse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// File limits.
    pub limits: Limits,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// Where a rule comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    /// File, relative to the root.
    pub file: String,
    /// Location in it.
    pub loc: Loc,
    /// What the code says there.
    pub what: String,
    /// For code in another crate: the service's own call site that reaches it.
    pub via: Option<String>,
}

impl Site {
    /// `file:line:col`.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.loc.line, self.loc.col)
    }
}

/// One rule a call site asked for, and the rule of the set that grants it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Provenance {
    /// The rule in the final set that covers it.
    pub granted_by: Rule,
    /// The rule the site itself needs.
    pub rule: Rule,
    /// The site.
    pub site: Site,
}

/// One endpoint a service declares, as its API trait says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServedEndpoint {
    /// The route.
    pub route: String,
    /// The method token.
    pub method: String,
    /// `function`, `web` or `event`.
    pub kind: &'static str,
    /// The trait method.
    pub name: String,
    /// The required-claims expression, as written.
    pub claims: Option<String>,
    /// The file that declares it, relative to the root.
    pub file: String,
    /// Where in that file.
    pub loc: Loc,
}

/// An API trait the analysis knows (a service's own, or one read from a
/// dependency whose service crate is elsewhere), with its endpoints.
#[derive(Debug, Clone)]
pub struct DeclaredApi {
    /// The API's hostname.
    pub host: Hostname,
    /// Its endpoints (events included), sorted.
    pub endpoints: Vec<ServedEndpoint>,
}

/// One service: its model, rules, and where each rule comes from.
#[derive(Debug, Clone)]
pub struct Service {
    /// The package name.
    pub package: String,
    /// The crate folder, relative to the root.
    pub dir: String,
    /// The `nats.acl` path, relative to the root.
    pub acl_path: String,
    /// Absolute `nats.acl` path.
    pub acl_abs: PathBuf,
    /// Its model.
    pub model: ServiceModel,
    /// The endpoints it serves (events it declares included), each with its
    /// required claims, sorted by route then method.
    pub endpoints: Vec<ServedEndpoint>,
    /// Its minimized rule set.
    pub rules: RuleSet,
    /// Provenance of every non-implicit rule.
    pub provenance: Vec<Provenance>,
    /// Whether an error in its code, its dependencies or its rules blocks it.
    pub blocked: bool,
    /// The bundle (a binary crate running it with other services) it runs in.
    pub bundle: Option<String>,
}

/// The result of analysing a tree.
#[derive(Debug)]
pub struct Analysis {
    /// The scanned root.
    pub root: PathBuf,
    /// Services, sorted by hostname then folder.
    pub services: Vec<Service>,
    /// Every finding, sorted and deduplicated.
    pub diags: Vec<Diagnostic>,
    /// Files parsed.
    pub files: usize,
    /// The policy (`buswarden.toml` at the root), when there is one.
    pub policy: Option<Policy>,
    /// Every API trait with a valid hostname, by hostname.
    pub apis: Vec<DeclaredApi>,
}

impl Analysis {
    /// Whether any error stands.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }
}

/// Why the analysis could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// The tree could not be walked.
    #[error(transparent)]
    Workspace(#[from] workspace::WorkspaceError),
    /// The worker threads could not be started.
    #[error("cannot start the parse threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
}

/// Analyses the tree under `root`.
pub fn analyze(root: &Path, opts: Options) -> Result<Analysis, AnalysisError> {
    let mut timing = Timing::new();
    let pool = source::pool(opts.threads)?;
    let ws = pool.install(|| workspace::discover(root))?;
    timing.mark("discover");
    let r = pool.install(|| analyze_in(&ws, opts, None));
    timing.mark("finish");
    drop(pool);
    timing.mark("pool drop");
    r
}

/// Analyses the tree under `root`, reusing and then refreshing the file
/// cache at `cache` (unchanged files are not parsed again).
pub fn analyze_cached(root: &Path, opts: Options, cache: &Path) -> Result<Analysis, AnalysisError> {
    let mut timing = Timing::new();
    let pool = source::pool(opts.threads)?;
    let ws = pool.install(|| workspace::discover(root))?;
    timing.mark("discover");
    pool.install(|| analyze_in(&ws, opts, Some(cache)))
}

/// Prints phase timings to stderr when `GENCREDS_TIMING` is set.
struct Timing(Option<(std::time::Instant, std::time::Duration)>);

impl Timing {
    fn new() -> Self {
        Timing(std::env::var_os("GENCREDS_TIMING").map(|_| (std::time::Instant::now(), cpu_time())))
    }
    fn mark(&mut self, phase: &str) {
        if let Some((t, c)) = self.0 {
            let cpu = cpu_time();
            eprintln!(
                "gencreds timing: {phase}: {:.3?} (cpu {} ms)",
                t.elapsed(),
                cpu.saturating_sub(c).as_millis()
            );
            self.0 = Some((std::time::Instant::now(), cpu));
        }
    }
}

/// CPU time of the whole process so far (user + system, all threads), from
/// `/proc/self/stat` (clock ticks of 10 ms); zero where it cannot be read.
/// Phase timings and the scan benchmark read it.
pub fn cpu_time() -> std::time::Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    std::time::Duration::from_millis(ticks * 10)
}

fn analyze_in(
    ws: &Workspace,
    opts: Options,
    cache_path: Option<&Path>,
) -> Result<Analysis, AnalysisError> {
    let mut timing = Timing::new();
    let paths: Vec<PathBuf> = ws
        .crates
        .iter()
        .filter(|c| !c.is_runtime)
        .flat_map(|c| c.files.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cache_stale = false;
    let mut files = match cache_path {
        Some(cp) => {
            let cache = crate::cache::Cache::load(cp, opts.limits);
            let (files, misses) = source::parse_all_cached(&paths, opts.limits, &cache);
            cache_stale = misses > 0 || cache.len() != files.len();
            files
        }
        None => source::parse_all(&paths, opts.limits),
    };
    timing.mark("parse");
    // Files named by `#[path]` outside the scanned folders are parsed on
    // demand; a chain of them takes a round each.
    let any_path_attr = files.iter().any(|f| has_path_attr(&f.ir.items));
    for _ in 0..if any_path_attr { 16 } else { 0 } {
        match index::build(ws, &files, opts.limits, true) {
            Ok(_) => break,
            Err(extra) => files.extend(extra),
        }
    }
    let idx = match index::build(ws, &files, opts.limits, false) {
        Ok(idx) => idx,
        Err(_) => unreachable_index(),
    };
    timing.mark("index");
    let (facts, flow_info) = FlowInfo::split(eval_all(&idx));
    timing.mark("eval");
    let mut out = Collector::default();
    out.ws_diags(ws, &idx);
    for (u, fs) in facts.iter().enumerate() {
        for f in fs {
            if let FactKind::Diag(code, sev, msg) = &f.kind {
                let file = idx.unit_file(u);
                out.push(
                    Diagnostic::new(*code, &file, f.loc, msg.clone()).with_severity(*sev),
                    Some(idx.unit_crate(u)),
                );
            }
        }
    }
    let policy = load_policy(ws, &mut out);
    let services = services(ws, &idx, &facts, &flow_info, policy.as_ref(), &mut out);
    timing.mark("services");
    let apis = declared_apis(&idx);
    if let Some(cp) = cache_path
        && cache_stale
        && let Err(e) = crate::cache::Cache::save(cp, opts.limits, &files)
    {
        out.push(
            Diagnostic::new(
                Code::UnreadableFile,
                &ws.rel(cp),
                Loc::default(),
                format!(
                    "the file cache cannot be written ({e}); the next scan parses everything again"
                ),
            )
            .with_severity(Severity::Warning),
            None,
        );
    }
    timing.mark("cache save");
    let file_count = files.len();
    drop(idx);
    // The trees are large: free them on every worker thread.
    facts.into_par_iter().for_each(drop);
    files.into_par_iter().for_each(drop);
    timing.mark("drop");
    let diags: Vec<Diagnostic> = out
        .diags
        .into_iter()
        .map(|(d, _)| d)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut analysis = Analysis {
        root: ws.root.clone(),
        services,
        diags,
        files: file_count,
        policy,
        apis,
    };
    // Edge-reachable endpoints without claims that `[public]` does not list.
    let public = crate::reach::public_diags(&analysis);
    if !public.is_empty() {
        analysis.diags.extend(public);
        analysis.diags.sort();
        analysis.diags.dedup();
    }
    attach_source_lines(&ws.root, &mut analysis.diags);
    Ok(analysis)
}

/// Evaluates every body, then again every body that read a flow entry
/// (a client parameter, field or return value) while what flows into
/// them grows, until nothing changes (the destinations are finite sets of
/// the hosts the code names, so this ends); the facts of the last round.
fn eval_all(idx: &Index<'_>) -> Vec<UnitOut> {
    let mut flow = Flow::default();
    let mut outs: Vec<UnitOut> = (0..idx.units.len())
        .into_par_iter()
        .map_init(Vec::new, |scopes, u| eval_unit_with(idx, &flow, u, scopes))
        .collect();
    let merge = |flow: &mut Flow, outs: &[UnitOut]| {
        let mut changed = false;
        for o in outs {
            for (k, d) in &o.flows {
                changed |= flow.merge(k, d);
            }
        }
        changed
    };
    let readers: Vec<UnitId> = (0..outs.len())
        .filter(|&u| !outs[u].reads.is_empty())
        .collect();
    while merge(&mut flow, &outs) {
        let again: Vec<UnitOut> = readers
            .par_iter()
            .map_init(Vec::new, |scopes, &u| eval_unit_with(idx, &flow, u, scopes))
            .collect();
        for (&u, o) in readers.iter().zip(again) {
            outs[u] = o;
        }
    }
    outs
}

/// What each unit contributes to the flow and reads from it (the facts
/// taken out), for narrowing per service ([`narrowed_facts`]).
struct FlowInfo {
    /// Per unit: what flows out of it.
    flows: Vec<Vec<(FlowKey, Dests)>>,
    /// Per unit: the entries it reads.
    reads: Vec<Vec<FlowKey>>,
    /// Per entry: the units contributing to it.
    contributors: HashMap<FlowKey, Vec<UnitId>>,
}

impl FlowInfo {
    fn split(outs: Vec<UnitOut>) -> (Vec<Vec<Fact>>, FlowInfo) {
        let mut facts = Vec::with_capacity(outs.len());
        let mut flows = Vec::with_capacity(outs.len());
        let mut reads = Vec::with_capacity(outs.len());
        let mut contributors: HashMap<FlowKey, Vec<UnitId>> = HashMap::new();
        for (u, o) in outs.into_iter().enumerate() {
            for (k, _) in &o.flows {
                let list = contributors.entry(k.clone()).or_default();
                if list.last() != Some(&u) {
                    list.push(u);
                }
            }
            facts.push(o.facts);
            flows.push(o.flows);
            reads.push(o.reads);
        }
        (
            facts,
            FlowInfo {
                flows,
                reads,
                contributors,
            },
        )
    }
}

/// The facts of the units `reach` (one service's code and what it calls)
/// whose flow-dependent facts change when only what flows inside `reach`
/// is counted: a helper's client parameter then gets the hosts of this
/// service's callers only, a struct field those of this service's
/// literals only. The whole-tree evaluation is a superset (it counts every
/// caller in the tree); a unit not listed keeps its facts from it. Empty
/// when nothing outside `reach` flows into an entry read inside it.
fn narrowed_facts(
    idx: &Index<'_>,
    reach: &BTreeMap<UnitId, Option<String>>,
    info: &FlowInfo,
) -> HashMap<UnitId, Vec<Fact>> {
    let readers: Vec<UnitId> = reach
        .keys()
        .copied()
        .filter(|&u| !info.reads[u].is_empty())
        .collect();
    let foreign = readers.iter().any(|&u| {
        info.reads[u].iter().any(|k| {
            info.contributors
                .get(k)
                .is_some_and(|c| c.iter().any(|w| !reach.contains_key(w)))
        })
    });
    if !foreign {
        return HashMap::new();
    }
    // The same fixed point as `eval_all`, over this service's units only:
    // the others' contributions do not depend on the flow.
    let mut flow = Flow::default();
    for (&u, _) in reach.iter() {
        if info.reads[u].is_empty() {
            for (k, d) in &info.flows[u] {
                flow.merge(k, d);
            }
        }
    }
    let mut scopes = Vec::new();
    let mut outs: HashMap<UnitId, UnitOut> = HashMap::new();
    loop {
        for &u in &readers {
            outs.insert(u, eval_unit_with(idx, &flow, u, &mut scopes));
        }
        let mut changed = false;
        for &u in &readers {
            for (k, d) in &outs[&u].flows {
                changed |= flow.merge(k, d);
            }
        }
        if !changed {
            break;
        }
    }
    outs.into_iter().map(|(u, o)| (u, o.facts)).collect()
}

/// The policy file at the root of the scanned tree.
pub const POLICY_FILE: &str = "buswarden.toml";

/// Reads `buswarden.toml` at the root: `None` without one. A file that does
/// not parse is reported and replaced by an empty policy, so every
/// trust-root and wildcard grant fails closed.
fn load_policy(ws: &Workspace, out: &mut Collector) -> Option<Policy> {
    let path = ws.root.join(POLICY_FILE);
    if !path.exists() {
        return None;
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            out.push(
                Diagnostic::new(
                    Code::InvalidPolicy,
                    POLICY_FILE,
                    Loc::default(),
                    format!("cannot be read: {e}"),
                ),
                None,
            );
            return Some(Policy::default());
        }
    };
    match Policy::parse_all(&text) {
        Ok(p) => Some(p),
        Err(errs) => {
            for e in errs {
                let loc = e
                    .location()
                    .map(|l| Loc {
                        line: l.line as u32,
                        col: l.column as u32,
                    })
                    .unwrap_or_default();
                out.push(
                    Diagnostic::new(
                        Code::InvalidPolicy,
                        POLICY_FILE,
                        loc,
                        format!(
                            "{e}; until it parses, every trust-root and wildcard grant is refused"
                        ),
                    ),
                    None,
                );
            }
            Some(Policy::default())
        }
    }
}

/// Whether any `mod` carries `#[path]` (only those can name files outside
/// the crate folders that were parsed up front).
fn has_path_attr(items: &[crate::ir::Item]) -> bool {
    items.iter().any(|i| match i {
        crate::ir::Item::Mod {
            path_attr, body, ..
        } => path_attr.is_some() || body.as_deref().is_some_and(has_path_attr),
        _ => false,
    })
}

/// `index::build` with `load_extra = false` never asks for more files.
fn unreachable_index() -> ! {
    unreachable!("index::build without extra loading returned Err")
}

#[derive(Default)]
struct Collector {
    /// Diagnostics with the crate they are in (`None`: workspace-level).
    diags: Vec<(Diagnostic, Option<usize>)>,
}

impl Collector {
    fn push(&mut self, d: Diagnostic, krate: Option<usize>) {
        self.diags.push((d, krate));
    }

    fn ws_diags(&mut self, ws: &Workspace, idx: &Index<'_>) {
        for d in &ws.diags {
            self.push(d.clone(), None);
        }
        let file_crate: BTreeMap<usize, usize> =
            idx.modules.iter().map(|m| (m.file, m.krate)).collect();
        for (fi, f) in idx.files.iter().enumerate() {
            for d in &f.ir.diags {
                self.push(
                    Diagnostic::new(d.code, &ws.rel(&f.path), d.loc, d.message.clone()),
                    file_crate.get(&fi).copied(),
                );
            }
        }
        for (fi, code, loc, msg) in &idx.diags {
            let path = ws.rel(&idx.files[*fi].path);
            self.push(
                Diagnostic::new(*code, &path, *loc, msg.clone()),
                file_crate.get(fi).copied(),
            );
        }
        for (m, loc, idents) in &idx.macro_rules {
            if let Some(c) = idents.iter().find(|i| idx.client_names.contains(*i)) {
                self.push(
                    Diagnostic::new(
                        Code::UnresolvedMacro,
                        &idx.module_file(*m),
                        *loc,
                        format!("this macro_rules! body names `{c}`; the analyzer does not expand macros, so make the client call in a fn and call that fn from the macro"),
                    ),
                    Some(idx.modules[*m].krate),
                );
            }
        }
    }
}

/// Each service crate's hostname and API traits.
fn service_crates(
    ws: &Workspace,
    idx: &Index<'_>,
    out: &mut Collector,
) -> BTreeMap<usize, (Hostname, Vec<usize>)> {
    let mut found: BTreeMap<usize, Vec<(usize, Loc, usize)>> = BTreeMap::new();
    for im in &idx.impls {
        let Some(tp) = &im.def.trait_path else {
            continue;
        };
        if let Some(Def::Api(a, Gen::Trait)) = idx.resolve(im.module, tp) {
            found
                .entry(idx.modules[im.module].krate)
                .or_default()
                .push((a, im.def.loc, im.module));
        }
    }
    let mut out_map = BTreeMap::new();
    for (ci, c) in ws.crates.iter().enumerate() {
        let impls = found.remove(&ci).unwrap_or_default();
        if !c.member {
            continue;
        }
        let mut hosts: BTreeSet<Hostname> = impls
            .iter()
            .filter_map(|(a, _, _)| idx.apis[*a].host.clone())
            .collect();
        if let Some(h) = &c.hostname_meta {
            match Hostname::parse(h) {
                Ok(h) => {
                    hosts.insert(h);
                }
                Err(e) => {
                    out.push(
                        Diagnostic::new(
                            Code::InvalidManifest,
                            &format!("{}/Cargo.toml", ws.rel(&c.dir)),
                            Loc::default(),
                            format!("[package.metadata.buswarden] hostname: {e}"),
                        ),
                        Some(ci),
                    );
                }
            }
        }
        let Some(host) = hosts.iter().next().cloned() else {
            continue;
        };
        if hosts.len() > 1 {
            let (_, loc, m) = impls.first().copied().unwrap_or((0, Loc::default(), 0));
            let list: Vec<&str> = hosts.iter().map(Hostname::as_str).collect();
            out.push(
                Diagnostic::new(
                    Code::HostnameMismatch,
                    &idx.module_file(m),
                    loc,
                    format!("crate `{}` implements API traits of several hostnames ({}); one service crate is one hostname: move each implementation into its own crate", c.package, list.join(", ")),
                ),
                Some(ci),
            );
        }
        let apis: Vec<usize> = impls
            .iter()
            .map(|(a, _, _)| *a)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let at = impls.first().map_or_else(
            || {
                let manifest = c.dir.join("Cargo.toml");
                (ws.rel(&manifest), hostname_line(&manifest))
            },
            |(_, loc, m)| (idx.module_file(*m), *loc),
        );
        out_map.insert(ci, (host, apis, at));
    }
    duplicate_hostnames(ws, &out_map, out);
    out_map
        .into_iter()
        .map(|(ci, (host, apis, _))| (ci, (host, apis)))
        .collect()
}

/// The ports `#[buswarden::edge_proxy]` is granted: outside `local`, 443
/// and every port of `allowed-internal-ports` (one rule each: NATS has no
/// port ranges); in `local`, every port an endpoint of the scanned tree
/// serves, so the grant stays exact instead of `safe.*`. Never 0, 666 or
/// 888 ([`buswarden_rules::edge::Edge::admits`] decides).
fn edge_ports(idx: &Index<'_>, edge: &buswarden_rules::edge::Edge) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    if edge.mode == buswarden_rules::edge::Mode::Local {
        for api in &idx.apis {
            for ep in api.endpoints.values().flatten() {
                if ep.kind != crate::ir::EndpointKind::Event {
                    ports.insert(ep.route.port);
                }
            }
        }
    } else {
        for r in edge.open_ports() {
            ports.extend(r.first..=r.last);
        }
    }
    ports.retain(|&p| edge.admits(p));
    ports
}

/// Where a manifest's `[package.metadata.buswarden] hostname` is written
/// (the first `hostname` key after that table header), else nowhere.
fn hostname_line(manifest: &Path) -> Loc {
    let text = std::fs::read_to_string(manifest).unwrap_or_default();
    let mut in_table = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t.replace(' ', "") == "[package.metadata.buswarden]";
        } else if in_table && t.starts_with("hostname") {
            return Loc {
                line: i as u32 + 1,
                col: (line.len() - line.trim_start().len()) as u32 + 1,
            };
        }
    }
    Loc::default()
}

/// A service crate's hostname, API traits and where it claims the hostname
/// (file, place).
type ClaimedService = (Hostname, Vec<usize>, (String, Loc));

/// Two service crates claiming one hostname: an error in each (both are
/// blocked), at the impl or the manifest that claims it.
fn duplicate_hostnames(
    ws: &Workspace,
    services: &BTreeMap<usize, ClaimedService>,
    out: &mut Collector,
) {
    let mut by_host: BTreeMap<&Hostname, Vec<usize>> = BTreeMap::new();
    for (ci, (host, _, _)) in services {
        by_host.entry(host).or_default().push(*ci);
    }
    for (host, crates) in by_host.into_iter().filter(|(_, c)| c.len() > 1) {
        for &ci in &crates {
            let others: Vec<String> = crates
                .iter()
                .filter(|&&o| o != ci)
                .map(|&o| format!("`{}` ({})", ws.crates[o].package, ws.rel(&ws.crates[o].dir)))
                .collect();
            let (file, loc) = &services[&ci].2;
            out.push(
                Diagnostic::new(
                    Code::DuplicateHostname,
                    file,
                    *loc,
                    format!(
                        "crate `{}` claims hostname {host}, and so does {}; one hostname is one service crate (their credentials would overwrite each other): give each crate its own hostname or merge them",
                        ws.crates[ci].package,
                        others.join(", ")
                    ),
                ),
                Some(ci),
            );
        }
    }
}

/// Crates a crate depends on, transitively (path dependencies), itself included.
fn dep_closure(ws: &Workspace, ci: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::from([ci]);
    let mut q = vec![ci];
    while let Some(c) = q.pop() {
        for d in ws.crates[c].deps.values().flatten() {
            if seen.insert(*d) {
                q.push(*d);
            }
        }
    }
    seen
}

/// Methods in non-service crates whose bodies reach a bus fact: an
/// unknown receiver calling one of these names is ambiguous.
fn bus_methods(
    idx: &Index<'_>,
    facts: &[Vec<Fact>],
    services: &BTreeSet<usize>,
) -> BTreeSet<String> {
    let n = idx.units.len();
    let mut callers: Vec<Vec<UnitId>> = vec![vec![]; n];
    let mut busy = vec![false; n];
    let mut q = VecDeque::new();
    for (u, fs) in facts.iter().enumerate() {
        for f in fs {
            match &f.kind {
                FactKind::Edge(v) => {
                    for alt in idx.alternates(*v) {
                        callers[alt].push(u);
                    }
                }
                FactKind::Call { .. } | FactKind::Event { .. } | FactKind::Hook { .. }
                    if !busy[u] =>
                {
                    busy[u] = true;
                    q.push_back(u);
                }
                _ => {}
            }
        }
    }
    while let Some(u) = q.pop_front() {
        for &c in &callers[u] {
            if !busy[c] {
                busy[c] = true;
                q.push_back(c);
            }
        }
    }
    (0..n)
        .filter(|&u| busy[u] && idx.units[u].def.has_self && !services.contains(&idx.unit_crate(u)))
        .map(|u| idx.units[u].def.name.to_string())
        .collect()
}

fn services(
    ws: &Workspace,
    idx: &Index<'_>,
    facts: &[Vec<Fact>],
    flow_info: &FlowInfo,
    policy: Option<&Policy>,
    out: &mut Collector,
) -> Vec<Service> {
    let svc_crates = service_crates(ws, idx, out);
    let svc_set: BTreeSet<usize> = svc_crates.keys().copied().collect();
    let bus_methods = bus_methods(idx, facts, &svc_set);
    let mut units_of: Vec<Vec<UnitId>> = vec![Vec::new(); ws.crates.len()];
    for u in 0..idx.units.len() {
        if let Some(list) = units_of.get_mut(idx.unit_crate(u)) {
            list.push(u);
        }
    }
    // Each service is derived on its own (in parallel); whether it is
    // blocked is decided afterwards, from every diagnostic at once.
    let entries: Vec<_> = svc_crates.iter().collect();
    let cx = ServiceCx {
        ws,
        idx,
        facts,
        flow_info,
        policy,
        bus_methods: &bus_methods,
        units_of: &units_of,
    };
    let built: Vec<(usize, Vec<Diagnostic>, Service)> = entries
        .into_par_iter()
        .map(|(&ci, (host, apis))| derive_service(&cx, ci, host, apis))
        .collect();
    // A service is blocked by an error in its own code or in any crate it
    // depends on (service crates included).
    let mut error_crates: BTreeSet<usize> = out
        .diags
        .iter()
        .filter(|(d, _)| d.is_error())
        .filter_map(|(_, k)| *k)
        .collect();
    for (ci, sdiags, _) in &built {
        if sdiags.iter().any(Diagnostic::is_error) {
            error_crates.insert(*ci);
        }
    }
    calls_outside_services(ws, idx, facts, &svc_set, out);
    let bundles = bundles(ws, &svc_set);
    let mut result = Vec::with_capacity(built.len());
    for (ci, sdiags, mut service) in built {
        service.bundle = bundles.get(&ci).cloned();
        service.blocked = dep_closure(ws, ci).iter().any(|k| error_crates.contains(k));
        for d in sdiags {
            out.push(d, Some(ci));
        }
        result.push(service);
    }
    result.sort_by(|a, b| (&a.model.hostname, &a.dir).cmp(&(&b.model.hostname, &b.dir)));
    result
}

/// The bundle of each service crate: a member crate with a binary that is
/// not a service itself and depends directly on two or more service
/// crates runs them in one process (the first such crate by folder wins).
fn bundles(ws: &Workspace, services: &BTreeSet<usize>) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    for (ci, c) in ws.crates.iter().enumerate() {
        if services.contains(&ci) || c.bin_roots.is_empty() || !c.member {
            continue;
        }
        let run: BTreeSet<usize> = c
            .deps
            .values()
            .flatten()
            .copied()
            .filter(|d| services.contains(d))
            .collect();
        if run.len() >= 2 {
            for d in run {
                out.entry(d).or_insert_with(|| c.package.clone());
            }
        }
    }
    out
}

/// Every API trait with a valid hostname and its endpoints, by hostname.
fn declared_apis(idx: &Index<'_>) -> Vec<DeclaredApi> {
    let mut by_host: BTreeMap<Hostname, Vec<ServedEndpoint>> = BTreeMap::new();
    for api in &idx.apis {
        let Some(host) = &api.host else { continue };
        let file = idx.module_file(api.module);
        let list = by_host.entry(host.clone()).or_default();
        for (name, ep) in &api.endpoints {
            let Some(ep) = ep else { continue };
            list.push(ServedEndpoint {
                route: ep.route.to_string(),
                method: ep.method.to_string(),
                kind: match ep.kind {
                    crate::ir::EndpointKind::Function => "function",
                    crate::ir::EndpointKind::Web => "web",
                    crate::ir::EndpointKind::Event => "event",
                },
                name: name.to_string(),
                claims: ep.claims.clone(),
                file: file.clone(),
                loc: ep.loc,
            });
        }
    }
    by_host
        .into_iter()
        .map(|(host, mut endpoints)| {
            endpoints.sort();
            endpoints.dedup();
            DeclaredApi { host, endpoints }
        })
        .collect()
}

/// A bus call, event or hook in a crate no service crate reaches (not a
/// service and in no service's dependencies) is made with no service's
/// credentials: an error at the call, unless the crate is only a dev- or
/// build-dependency (test and build code never grants).
fn calls_outside_services(
    ws: &Workspace,
    idx: &Index<'_>,
    facts: &[Vec<Fact>],
    services: &BTreeSet<usize>,
    out: &mut Collector,
) {
    let reached: BTreeSet<usize> = services.iter().flat_map(|&s| dep_closure(ws, s)).collect();
    let test_only: BTreeSet<usize> = ws
        .crates
        .iter()
        .flat_map(|c| c.dev_deps.iter())
        .flat_map(|&d| dep_closure(ws, d))
        .collect();
    for (u, fs) in facts.iter().enumerate() {
        let ci = idx.unit_crate(u);
        if reached.contains(&ci) || test_only.contains(&ci) || ws.crates[ci].is_runtime {
            continue;
        }
        for f in fs {
            let edge_proxy = "#[buswarden::edge_proxy]".to_string();
            let what = match &f.kind {
                FactKind::Call { what, .. }
                | FactKind::Event { what, .. }
                | FactKind::Hook { what, .. } => what,
                FactKind::EdgeProxy => &edge_proxy,
                _ => continue,
            };
            out.push(
                Diagnostic::new(
                    Code::CallOutsideService,
                    &idx.unit_file(u),
                    f.loc,
                    format!(
                        "{what} is in crate `{}`, which no service crate reaches: it would run with no service's credentials and the broker would refuse it. Move the call into the service crate that makes it (a function there, called from here)",
                        ws.crates[ci].package
                    ),
                ),
                Some(ci),
            );
        }
    }
}

/// What deriving one service reads.
#[derive(Clone, Copy)]
struct ServiceCx<'c, 'a> {
    ws: &'c Workspace,
    idx: &'c Index<'a>,
    facts: &'c [Vec<Fact>],
    flow_info: &'c FlowInfo,
    policy: Option<&'c Policy>,
    bus_methods: &'c BTreeSet<String>,
    units_of: &'c [Vec<UnitId>],
}

/// One service crate's model, rules and provenance, and the diagnostics
/// found on the way (whether it is blocked is decided by the caller, from
/// every diagnostic at once).
fn derive_service(
    cx: &ServiceCx<'_, '_>,
    ci: usize,
    host: &Hostname,
    apis: &[usize],
) -> (usize, Vec<Diagnostic>, Service) {
    let ServiceCx {
        ws,
        idx,
        facts,
        flow_info,
        policy,
        bus_methods,
        units_of,
    } = *cx;
    let c = &ws.crates[ci];
    let mut sdiags: Vec<Diagnostic> = vec![];
    // Reach other crates' bodies from this crate's own.
    let own: &[UnitId] = units_of.get(ci).map_or(&[], Vec::as_slice);
    let mut via: BTreeMap<UnitId, Option<String>> = own.iter().map(|&u| (u, None)).collect();
    let mut q: VecDeque<UnitId> = own.iter().copied().collect();
    while let Some(u) = q.pop_front() {
        for f in &facts[u] {
            let FactKind::Edge(target) = f.kind else {
                continue;
            };
            // A call reaches every cfg alternative of its callee.
            for v in idx.alternates(target) {
                if via.contains_key(&v) {
                    continue;
                }
                let from = match via.get(&u).cloned().flatten() {
                    Some(v) => Some(v),
                    None => Some(format!("{}:{}:{}", idx.unit_file(u), f.loc.line, f.loc.col)),
                };
                via.insert(v, from);
                q.push_back(v);
            }
        }
    }
    let mut model = ServiceModel::new(host.clone());
    let mut wanted: Vec<(Rule, Site)> = vec![];
    // The rules `#[buswarden::edge_proxy]` expands to (authorized by the
    // `[edge]` table itself, not by the wildcard list).
    let mut edge_rules: Vec<Rule> = vec![];
    let mut served = vec![];
    for &a in apis {
        for (name, ep) in &idx.apis[a].endpoints {
            let Some(ep) = ep else { continue };
            served.push(ServedEndpoint {
                route: ep.route.to_string(),
                method: ep.method.to_string(),
                kind: match ep.kind {
                    crate::ir::EndpointKind::Function => "function",
                    crate::ir::EndpointKind::Web => "web",
                    crate::ir::EndpointKind::Event => "event",
                },
                name: name.to_string(),
                claims: ep.claims.clone(),
                file: idx.module_file(idx.apis[a].module),
                loc: ep.loc,
            });
            if ep.kind != crate::ir::EndpointKind::Event {
                model.endpoints.push(Endpoint {
                    method: ep.method.clone(),
                    route: ep.route.clone(),
                });
            }
            // An endpoint with required claims verifies its actor: the
            // runtime fetches access.token.core's keys (JWKS) over the bus.
            if let Some(expr) = &ep.claims {
                let call = buswarden_rules::derive::actor_keys_call();
                let site = Site {
                    file: idx.module_file(idx.apis[a].module),
                    loc: ep.loc,
                    what: format!(
                        "required claims `{expr}` on {} {} (the runtime verifies actor tokens with access.token.core's keys)",
                        ep.method, ep.route
                    ),
                    via: None,
                };
                wanted.push((call_rule(host, &call), site));
                model.calls.push(call);
            }
        }
    }
    // A helper's client parameter gets this service's callers' hosts only.
    let narrowed = narrowed_facts(idx, &via, flow_info);
    for (&u, v) in &via {
        let unit_facts = narrowed.get(&u).unwrap_or(&facts[u]);
        if unit_facts.is_empty() {
            continue;
        }
        let file = idx.unit_file(u);
        let is_own = idx.unit_crate(u) == ci;
        for f in unit_facts {
            let site = |what: &str| Site {
                file: file.clone(),
                loc: f.loc,
                what: what.to_string(),
                via: v.clone(),
            };
            let diag = |code: Code, msg: String| Diagnostic::new(code, &file, f.loc, msg);
            match &f.kind {
                FactKind::Call {
                    dest,
                    method,
                    route,
                    dynamic,
                    grant,
                    what,
                } => {
                    let dest = match dest {
                        CallDest::Host(h) => Dest::Host(h.clone()),
                        CallDest::Any => Dest::Any,
                    };
                    let port = route.port;
                    if port == 0 {
                        sdiags.push(diag(
                            Code::InvalidRoute,
                            format!("{what} publishes to port 0, which means any port and is for subscriptions only; a call is sent to one port: name the endpoint's real port (e.g. :443)"),
                        ));
                        continue;
                    }
                    if port == buswarden_rules::route::EVENT_PORT
                        && dest != Dest::Host(host.clone())
                    {
                        sdiags.push(diag(
                                Code::ForeignEvent,
                                format!("{what} publishes on a :417 event route of another host; only the source fires its own events (service {host}): hook the event with XHook instead"),
                            ));
                        continue;
                    }
                    // With a policy file, trust-root and wildcard grants
                    // are judged on the rule set below.
                    // A computed host on a :666 call is always refused.
                    if *dynamic && port == buswarden_rules::route::TRUST_ROOT_PORT {
                        sdiags.push(diag(
                                Code::DynamicHostTrustRoot,
                                format!("{what} is a :666 trust-root endpoint called with a host the analyzer cannot follow (for_host(expr), or a client whose host is lost on the way); call it with a literal host: for_host(\"x.example\") on a client the call site can see"),
                            ));
                        continue;
                    }
                    if *dynamic && policy.is_none() {
                        sdiags.push(diag(
                                Code::DynamicHost,
                                format!("{what} with a computed host (for_host(expr)) is granted to every host (`*`) for {host}; use a literal host to narrow it"),
                            ));
                    }
                    if *grant && dest == Dest::Any && policy.is_none() {
                        sdiags.push(diag(
                                Code::WildcardGrant,
                                format!("{what} grants {host} a call to every host; allowed without a buswarden.toml, list it there to keep it reviewed"),
                            ));
                    }
                    if port == buswarden_rules::route::TRUST_ROOT_PORT
                        && !*dynamic
                        && policy.is_none()
                    {
                        sdiags.push(diag(
                                Code::TrustRootGrant,
                                format!("{what} grants {host} a :666 trust-root call; allowed without a buswarden.toml, list it there to keep it reviewed"),
                            ));
                    }
                    let call = Call {
                        dest,
                        method: method.clone(),
                        route: route.clone(),
                    };
                    wanted.push((call_rule(host, &call), site(what)));
                    model.calls.push(call);
                }
                FactKind::Event {
                    source,
                    method,
                    route,
                    what,
                } => {
                    if source != host {
                        sdiags.push(diag(
                                Code::ForeignEvent,
                                format!("{what} fires an event of {source} from {host}; only {source} fires its own events: hook it with the Hook type instead"),
                            ));
                        continue;
                    }
                    if route.port == 0 {
                        sdiags.push(diag(
                            Code::InvalidRoute,
                            format!("{what} fires an event on port 0, which means any port and is for subscriptions only; declare the event on :417"),
                        ));
                        continue;
                    }
                    let ev = EventOut {
                        method: method.clone(),
                        route: route.clone(),
                    };
                    wanted.push((event_rule(host, &ev), site(what)));
                    model.events_out.push(ev);
                }
                FactKind::Hook {
                    source,
                    method,
                    route,
                    what,
                } => {
                    let hk = Hook {
                        source: source.clone(),
                        method: method.clone(),
                        route: route.clone(),
                    };
                    wanted.push((hook_rule(&hk), site(what)));
                    model.hooks.push(hk);
                }
                FactKind::EdgeProxy => {
                    let edge = policy.and_then(|p| p.edge.clone()).unwrap_or_default();
                    if &edge.ingress != host {
                        sdiags.push(diag(
                            Code::EdgeProxyHost,
                            format!("#[buswarden::edge_proxy] in {host}, but the ingress of the [edge] table in buswarden.toml is {}; set `ingress = \"{host}\"` under [edge] (or move the fn into the ingress's crate)", edge.ingress),
                        ));
                        continue;
                    }
                    for port in edge_ports(idx, &edge) {
                        let rule = buswarden_rules::derive::edge_proxy_rule(host, port);
                        let what = format!(
                            "#[buswarden::edge_proxy]: port {port} is open at the edge ([edge] mode = \"{}\")",
                            edge.mode
                        );
                        wanted.push((rule.clone(), site(&what)));
                        edge_rules.push(rule);
                    }
                }
                FactKind::ConnectorNew(Some(h))
                    if is_own && Hostname::parse(h).ok().as_ref() != Some(host) =>
                {
                    sdiags.push(diag(
                            Code::HostnameMismatch,
                            format!("Connector::new({h:?}) in crate `{}`, which is the service {host}; use \"{host}\" (or the API's generated _HOST constant)", c.package),
                        ));
                }
                FactKind::UnknownMethod(name) if bus_methods.contains(name.as_str()) => {
                    sdiags.push(diag(
                            Code::AmbiguousReceiver,
                            format!("`.{name}(…)` is called on a value whose type the analyzer cannot determine, and a method `{name}` in a library makes bus calls; give the value a type (`let x: Type = …;` or a typed parameter)"),
                        ));
                }
                _ => {}
            }
        }
    }
    let mut rules = buswarden_rules::derive(&model);
    if !edge_rules.is_empty() {
        rules.extend(edge_rules.iter().cloned());
        rules.minimize();
        // An ingress that serves no endpoint receives no request: it does
        // not get the implicit subscription to requests addressed to it
        // (its creds then carry no `.safe.*.` at all).
        if model.endpoints.is_empty() {
            let own = Rule::new(
                buswarden_rules::Verb::Sub,
                format!("{{{{plane}}}}.safe.*.*.{}.>", host.flatten()),
            )
            .ok();
            rules = rules
                .iter()
                .filter(|r| Some(*r) != own.as_ref())
                .cloned()
                .collect();
        }
    }
    let mut provenance: Vec<Provenance> = vec![];
    let mut foreign_endpoints: Vec<Rule> = vec![];
    for ep in &model.endpoints {
        if let Some(r) = endpoint_rule(host, ep) {
            let loc = apis
                .iter()
                .flat_map(|a| idx.apis[*a].endpoints.values().flatten())
                .find(|e| e.route == ep.route)
                .map(|e| e.loc)
                .unwrap_or_default();
            let file = apis
                .first()
                .map(|a| idx.module_file(idx.apis[*a].module))
                .unwrap_or_default();
            // A service subscribes only to its own host: serving under
            // another host would take that host's requests.
            sdiags.push(Diagnostic::new(
                Code::ForeignEndpointHost,
                &file,
                loc,
                format!(
                    "endpoint {} {} is served under another host, which would take that host's requests; serve it under this service's own host ({host}) or move it to the other host's service",
                    ep.method, ep.route
                ),
            ));
            foreign_endpoints.push(r.clone());
            wanted.push((
                r,
                Site {
                    file,
                    loc,
                    what: format!(
                        "endpoint {} {} served under another host",
                        ep.method, ep.route
                    ),
                    via: None,
                },
            ));
        }
    }
    for (r, site) in wanted {
        if let Some(g) = rules.covering(&r) {
            provenance.push(Provenance {
                granted_by: g.clone(),
                rule: r,
                site,
            });
        }
    }
    provenance.sort();
    provenance.dedup();
    let acl_rel = format!("{}/nats.acl", ws.rel(&c.dir));
    if let Err(errs) = buswarden_rules::validate::validate(host, &rules) {
        for e in errs {
            if let ValidationError::ForeignDestination { rule, .. } = &e
                && foreign_endpoints.contains(rule)
            {
                continue; // reported at the endpoint (`foreign-endpoint-host`)
            }
            sdiags.push(Diagnostic::new(
                Code::InvalidRules,
                &acl_rel,
                Loc::default(),
                e.to_string(),
            ));
        }
    }
    if let Err(e) = budget::check(host, &rules, &budget::ConnectModel::default()) {
        sdiags.push(Diagnostic::new(
            Code::BudgetExceeded,
            &acl_rel,
            Loc::default(),
            format!(
                "{e}; narrow the calls (fewer distinct endpoints or hosts) or split the service"
            ),
        ));
    }
    if let Some(p) = policy {
        for v in rules_policy::evaluate(p, host, &rules)
            .into_iter()
            .filter(|v| !edge_rules.contains(v.rule()))
        {
            let hint = match &v {
                rules_policy::Violation::UnlistedTrustRootGrant { .. } => {
                    "list it under trust-root, e.g. \"POST host.example:666/path\""
                }
                rules_policy::Violation::UnlistedWildcardGrant { .. } => {
                    "list it under wildcards, e.g. \"GET *:443/{path...}\""
                }
                rules_policy::Violation::DynamicTrustRoot { .. } => {
                    "set dynamic-trust-root = true for this caller"
                }
                _ => "list it in buswarden.toml",
            };
            let msg = format!("{v}; {hint} (buswarden.toml is reviewed like code)");
            let mut sites: Vec<&Site> = provenance
                .iter()
                .filter(|p| &p.granted_by == v.rule())
                .map(|p| &p.site)
                .collect();
            sites.dedup();
            if sites.is_empty() {
                sdiags.push(Diagnostic::new(
                    Code::PolicyViolation,
                    &acl_rel,
                    Loc::default(),
                    msg,
                ));
            } else {
                for site in sites {
                    sdiags.push(Diagnostic::new(
                        Code::PolicyViolation,
                        &site.file,
                        site.loc,
                        msg.clone(),
                    ));
                }
            }
        }
    }
    let dir = ws.rel(&c.dir);
    let service = Service {
        package: c.package.clone(),
        acl_path: if dir.is_empty() {
            "nats.acl".into()
        } else {
            format!("{dir}/nats.acl")
        },
        acl_abs: c.dir.join("nats.acl"),
        dir,
        model,
        endpoints: {
            served.sort();
            served.dedup();
            served
        },
        rules,
        provenance,
        blocked: false,
        bundle: None,
    };
    (ci, sdiags, service)
}

/// The implicit rules of a service, for `explain`.
pub fn implicit(service: &Service) -> Vec<Rule> {
    let own = &service.model.hostname;
    let trust_root = service.model.endpoints.iter().any(|e| {
        e.route.port == buswarden_rules::route::TRUST_ROOT_PORT
            && e.route.host.as_ref().is_none_or(|h| h == own)
    });
    implicit_rules(own, trust_root)
}

fn attach_source_lines(root: &Path, diags: &mut [Diagnostic]) {
    let mut cache: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    let canon = crate::workspace::canonical_root(root);
    for d in diags.iter_mut() {
        if d.line == 0 || d.file.is_empty() {
            continue;
        }
        let lines = cache.entry(d.file.clone()).or_insert_with(|| {
            let p = root.join(&d.file);
            // Only source and manifests inside the tree are ever echoed.
            let source = p.extension().is_some_and(|x| x == "rs" || x == "toml");
            if !source || !crate::workspace::inside_root(&canon, &p) {
                return None;
            }
            let md = std::fs::metadata(&p).ok()?;
            if md.len() > 64 * 1024 * 1024 {
                return None;
            }
            let bytes = std::fs::read(&p).ok()?;
            Some(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(str::to_string)
                    .collect(),
            )
        });
        if let Some(lines) = lines
            && let Some(l) = lines.get(d.line as usize - 1)
        {
            let mut l = l.clone();
            if l.len() > 400 {
                let cut = (0..=400)
                    .rev()
                    .find(|i| l.is_char_boundary(*i))
                    .unwrap_or(0);
                l.truncate(cut);
            }
            d.source_line = Some(l);
        }
    }
}

/// Severity counts: (errors, warnings).
pub fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let e = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (e, diags.len() - e)
}
