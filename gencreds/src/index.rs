//! The symbol index of a whole tree: module trees per crate target (`mod x;`
//! files, `#[path]`, inline modules), the items the analyzer cares about, and
//! name resolution through `use` (renames, globs, groups, `crate::`,
//! `self::`, `super::`, `pub use` re-exports across crates, extern names
//! from `Cargo.toml`).
//!
//! Visibility is not checked (rustc does that); resolution follows Rust 2018
//! paths: a name is an item or import of the current module, or an extern
//! crate name. Glob and re-export cycles are cut by a visited set.

use crate::diagnostic::Code;
use crate::ir::*;
use crate::source::{Limits, SourceFile, parse_one};
use crate::workspace::{CrateInfo, Workspace};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Index of a module.
pub type ModId = usize;
/// Index of a body owner (fn, method, const initializer, item macro).
pub type UnitId = usize;
/// Index of an API trait.
pub type ApiId = usize;
/// Index of a struct.
pub type StructId = usize;

/// What the `#[buswarden::api]` attribute generates next to a trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gen {
    /// The trait itself.
    Trait,
    /// `XClient`.
    Client,
    /// `XMulticastClient`.
    Multicast,
    /// `XTrigger`.
    Trigger,
    /// `XHook`.
    Hook,
    /// `X_HOST`.
    HostConst,
}

/// A wrapper layer of a type: `Option`/`Result`.
pub const WRAP_OPT: u16 = 1;
/// A wrapper layer of a type: `Mutex`/`RwLock`.
pub const WRAP_LOCK: u16 = 2;
/// A wrapper layer of a type: `RefCell`/`OnceCell`/`OnceLock`.
pub const WRAP_CELL: u16 = 3;

/// [`Index::bearing`]: the struct holds a generated client.
pub const HOLDS_CLIENT: u8 = 1;
/// [`Index::bearing`]: the struct holds a `buswarden::Connector`.
pub const HOLDS_CONNECTOR: u8 = 2;

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Def {
    /// A module.
    Mod(ModId),
    /// A function.
    Fn(UnitId),
    /// A struct.
    Struct(StructId),
    /// A trait that is not an API trait.
    Trait,
    /// An API trait or one of its generated items.
    Api(ApiId, Gen),
    /// A const or static: its string value, if a literal.
    Const(Option<String>),
    /// An item of the runtime crate, by path inside it.
    Runtime(Vec<String>),
    /// An item of a crate that is not in the tree, by path.
    External(Vec<String>),
    /// `Type::name`: an associated item of `Def`.
    Assoc(Box<Def>, String),
}

/// One module.
#[derive(Debug, Default)]
pub struct Module {
    /// Its crate.
    pub krate: usize,
    /// Its target's root module (`crate::`).
    pub root: ModId,
    /// Its parent module.
    pub parent: Option<ModId>,
    /// Its name in its parent (empty for a target root).
    pub name: Name,
    /// The file it is in.
    pub file: usize,
    /// Items defined in it.
    pub names: BTreeMap<Name, Vec<Def>>,
    /// Named imports: alias -> path.
    pub uses: Vec<(Name, PathRef)>,
    /// Glob imports.
    pub globs: Vec<PathRef>,
}

/// A body owner: where it is and what it is.
#[derive(Debug)]
pub struct Unit<'a> {
    /// Its module.
    pub module: ModId,
    /// The definition.
    pub def: &'a FnDef,
    /// For methods: the implementing type (as written in the impl).
    pub self_ty: Option<&'a PathRef>,
    /// A method of an inherent impl (`impl S { … }`, no trait): called only
    /// where the code names it, never by a framework behind a trait.
    pub inherent: bool,
}

/// A validated endpoint of an API trait.
#[derive(Debug, Clone)]
pub struct ApiEndpoint {
    /// Function, web or event.
    pub kind: EndpointKind,
    /// The method.
    pub method: buswarden_rules::Method,
    /// The route.
    pub route: buswarden_rules::Route,
    /// The required-claims expression, as written.
    pub claims: Option<String>,
    /// Where it is declared.
    pub loc: Loc,
}

/// An API trait.
#[derive(Debug)]
pub struct Api {
    /// Trait name.
    pub name: Name,
    /// Its module.
    pub module: ModId,
    /// Where it is declared.
    pub loc: Loc,
    /// Its hostname (`None` when invalid: reported once).
    pub host: Option<buswarden_rules::Hostname>,
    /// Endpoints by method name (`None`: declared but invalid, reported once).
    pub endpoints: BTreeMap<Name, Option<ApiEndpoint>>,
}

/// A struct.
#[derive(Debug)]
pub struct Struct<'a> {
    /// Its module.
    pub module: ModId,
    /// Its definition.
    pub def: &'a StructDef,
}

/// An impl block.
#[derive(Debug)]
pub struct Impl<'a> {
    /// Its module.
    pub module: ModId,
    /// The impl.
    pub def: &'a ImplDef,
    /// Its methods' units.
    pub units: Vec<UnitId>,
}

/// A file-level diagnostic: (file index, code, loc, message).
pub type FileDiag = (usize, Code, Loc, String);

/// The index of a tree.
#[derive(Debug)]
pub struct Index<'a> {
    /// The workspace.
    pub ws: &'a Workspace,
    /// Files, by index (parsed up front or loaded on demand for `#[path]`).
    pub files: Vec<&'a SourceFile>,
    /// Modules.
    pub modules: Vec<Module>,
    /// Units.
    pub units: Vec<Unit<'a>>,
    /// API traits.
    pub apis: Vec<Api>,
    /// Structs.
    pub structs: Vec<Struct<'a>>,
    /// Impl blocks.
    pub impls: Vec<Impl<'a>>,
    /// Target roots per crate (lib first).
    pub roots: Vec<Vec<ModId>>,
    /// `macro_rules!` definitions: (module, def).
    pub macro_rules: Vec<(ModId, Loc, &'a [Name])>,
    /// Findings about module files and API declarations.
    pub diags: Vec<FileDiag>,
    /// Methods of each struct, by name.
    pub methods: BTreeMap<(StructId, Name), Vec<UnitId>>,
    /// Methods written for a generated client type (`impl XClient { … }`,
    /// `impl Ext for XClient`), by name: helpers that resolve to what they call.
    pub client_methods: BTreeMap<(ApiId, Gen, Name), Vec<UnitId>>,
    /// The names of [`Index::client_methods`].
    pub client_method_names: BTreeSet<Name>,
    /// What each struct holds, directly or through a field of a struct
    /// that does: [`HOLDS_CLIENT`] and/or [`HOLDS_CONNECTOR`] (0: neither).
    pub bearing: Vec<u8>,
    /// Methods written for `buswarden::Connector` (`impl Ext for
    /// Connector`), by name: helpers that resolve to what they call.
    pub connector_methods: BTreeMap<Name, Vec<UnitId>>,
    /// The names a type that may be a client or a struct of the tree can be
    /// written with (their own names and the imports renaming them): a
    /// declared type named otherwise is neither, without resolving it.
    pub type_names: std::collections::HashSet<Name>,
    /// Every generated client type name (`XClient`, `XTrigger`…).
    pub client_names: BTreeSet<Name>,
    /// Every endpoint method name of every API.
    pub endpoint_names: BTreeSet<Name>,
    /// The names of every method with a `self` receiver: the only names an
    /// unknown receiver's method call is checked against (`bus_methods`).
    pub self_method_names: std::collections::HashSet<Name>,
    /// Each file's path relative to the root, made on first use.
    rel_paths: std::sync::OnceLock<Vec<String>>,
    /// cfg alternatives: units that are the same item of the same target
    /// (same module path, same impl, same name) defined more than once,
    /// which only `cfg` allows (`#[cfg(feature = "x")] fn f` and
    /// `#[cfg(not(feature = "x"))] fn f`, also in twin modules or impls).
    /// Each group lists every alternative; a call to one reaches them all.
    alternates: HashMap<UnitId, std::sync::Arc<[UnitId]>>,
}

/// The (module, name) lookups in progress while one path resolves, and how
/// many were made (a bound: glob graphs that import each other cannot make
/// resolution exponential).
#[derive(Default)]
struct Visit<'s> {
    stack: Vec<(ModId, &'s str)>,
    steps: u32,
    /// Keep every lookup made (each is made once): the fallback over the bound.
    once: bool,
}

impl Visit<'_> {
    /// Lookups through imports one path may make.
    const MAX_STEPS: u32 = 4096;
}

struct Builder<'a> {
    idx: Index<'a>,
    by_path: HashMap<&'a Path, usize>,
    file_of: Vec<Option<usize>>,
    all: &'a [SourceFile],
    limits: Limits,
    load_extra: bool,
    extra: Vec<SourceFile>,
    /// The canonical root: a module file must resolve inside it.
    canon_root: PathBuf,
}

/// Builds the index over parsed `files`. With `load_extra`, files named by
/// `#[path]` that were not parsed are parsed here and returned as `Err` so
/// the caller can append them and build again; without it they are skipped.
pub fn build<'a>(
    ws: &'a Workspace,
    files: &'a [SourceFile],
    limits: Limits,
    load_extra: bool,
) -> Result<Index<'a>, Vec<SourceFile>> {
    let mut b = Builder {
        idx: Index {
            ws,
            files: vec![],
            modules: vec![],
            units: vec![],
            apis: vec![],
            structs: vec![],
            impls: vec![],
            roots: vec![vec![]; ws.crates.len()],
            macro_rules: vec![],
            diags: vec![],
            methods: BTreeMap::new(),
            client_methods: BTreeMap::new(),
            client_method_names: BTreeSet::new(),
            bearing: vec![],
            connector_methods: BTreeMap::new(),
            type_names: std::collections::HashSet::new(),
            client_names: BTreeSet::new(),
            endpoint_names: BTreeSet::new(),
            self_method_names: std::collections::HashSet::new(),
            rel_paths: std::sync::OnceLock::new(),
            alternates: HashMap::new(),
        },
        by_path: files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.as_path(), i))
            .collect(),
        file_of: vec![None; files.len()],
        all: files,
        limits,
        load_extra,
        extra: vec![],
        canon_root: crate::workspace::canonical_root(&ws.root),
    };
    for (ci, c) in ws.crates.iter().enumerate() {
        if c.is_runtime {
            continue;
        }
        for root in c.lib_root.iter().chain(c.bin_roots.iter()) {
            if let Some(m) = b.load_root(ci, c, root) {
                b.idx.roots[ci].push(m);
            }
        }
    }
    if !b.extra.is_empty() {
        return Err(b.extra);
    }
    b.finish();
    Ok(b.idx)
}

impl<'a> Builder<'a> {
    fn file_index(&mut self, path: &Path) -> Option<usize> {
        if let Some(&i) = self.by_path.get(path) {
            if let Some(fi) = self.file_of[i] {
                return Some(fi);
            }
            self.idx.files.push(&self.all[i]);
            let fi = self.idx.files.len() - 1;
            self.file_of[i] = Some(fi);
            return Some(fi);
        }
        if self.load_extra && path.is_file() {
            // Outside the crate's scanned files: parse it on the next round.
            self.extra.push(parse_one(path, self.limits));
        }
        None
    }

    fn load_root(&mut self, ci: usize, c: &CrateInfo, root: &Path) -> Option<ModId> {
        let fi = self.file_index(root)?;
        let m = self.idx.modules.len();
        self.idx.modules.push(Module {
            krate: ci,
            root: m,
            parent: None,
            file: fi,
            ..Module::default()
        });
        let dir = root.parent().unwrap_or(&c.dir).to_path_buf();
        let file = self.idx.files[fi];
        let mut seen = BTreeSet::new();
        seen.insert(root.to_path_buf());
        self.load_items(m, &file.ir.items, &dir, &dir, &mut seen);
        Some(m)
    }

    /// `mod_dir`: where `mod x;` files of this module live; `file_dir`: the
    /// directory of the file the items are in (for `#[path]`).
    fn load_items(
        &mut self,
        m: ModId,
        items: &'a [Item],
        mod_dir: &Path,
        file_dir: &Path,
        seen: &mut BTreeSet<PathBuf>,
    ) {
        for item in items {
            self.load_item(m, item, mod_dir, file_dir, seen);
        }
    }

    fn add_name(&mut self, m: ModId, name: &str, def: Def) {
        self.idx.modules[m]
            .names
            .entry(Name::from(name))
            .or_default()
            .push(def);
    }

    fn add_unit(
        &mut self,
        m: ModId,
        def: &'a FnDef,
        self_ty: Option<&'a PathRef>,
        inherent: bool,
    ) -> UnitId {
        if def.has_self {
            self.idx.self_method_names.insert(def.name.clone());
        }
        self.idx.units.push(Unit {
            module: m,
            def,
            self_ty,
            inherent,
        });
        self.idx.units.len() - 1
    }

    fn new_child(&mut self, parent: ModId, file: usize, name: &Name) -> ModId {
        let p = &self.idx.modules[parent];
        let child = Module {
            krate: p.krate,
            root: p.root,
            parent: Some(parent),
            name: name.clone(),
            file,
            ..Module::default()
        };
        self.idx.modules.push(child);
        self.idx.modules.len() - 1
    }

    fn load_item(
        &mut self,
        m: ModId,
        item: &'a Item,
        mod_dir: &Path,
        file_dir: &Path,
        seen: &mut BTreeSet<PathBuf>,
    ) {
        let file = self.idx.modules[m].file;
        match item {
            Item::Mod {
                name,
                loc,
                body: Some(items),
                path_attr,
            } => {
                let child = self.new_child(m, file, name);
                self.add_name(m, name, Def::Mod(child));
                // As rustc: an inline module's `#[path]` is a folder
                // relative to the module's own folder (the file's folder,
                // not the `x/` of a non-mod-rs file `x.rs`); without one,
                // the module's folder for `mod` files plus its name. Inside
                // it, `mod y;` and `#[path]` both resolve from that folder.
                let child_dir = match path_attr {
                    Some(p) => file_dir.join(p),
                    None => mod_dir.join(name),
                };
                let _ = loc;
                self.load_items(child, items, &child_dir, &child_dir, seen);
            }
            Item::Mod {
                name,
                loc,
                body: None,
                path_attr,
            } => {
                let candidates: Vec<PathBuf> = match path_attr {
                    Some(p) => vec![file_dir.join(p)],
                    None => vec![
                        mod_dir.join(format!("{name}.rs")),
                        mod_dir.join(name).join("mod.rs"),
                    ],
                };
                // A parsed file exists (no system call); others are looked up.
                let Some(path) = candidates
                    .iter()
                    .find(|p| self.by_path.contains_key(p.as_path()) || p.is_file())
                    .cloned()
                else {
                    self.idx.diags.push((
                        file,
                        Code::MissingModule,
                        *loc,
                        format!(
                            "`mod {name};` has no file ({}); create it or remove the declaration",
                            candidates
                                .iter()
                                .map(|p| self.idx.ws.rel(p))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ));
                    return;
                };
                // A file the walk did not find may lie outside the tree
                // (`#[path = "/proc/self/environ"]`, a link out): refused
                // here, at the `mod` line, and never read.
                if !self.by_path.contains_key(path.as_path())
                    && !crate::workspace::inside_root(&self.canon_root, &path)
                {
                    self.idx.diags.push((
                        file,
                        Code::OutsideRoot,
                        *loc,
                        format!(
                            "`mod {name};` leads to {}, outside the scanned root (through `#[path]` or a symbolic link); it is not read. Move the module file into the tree",
                            if path.starts_with(&self.idx.ws.root) {
                                self.idx.ws.rel(&path)
                            } else {
                                path.display().to_string()
                            }
                        ),
                    ));
                    return;
                }
                if !seen.insert(path.clone()) {
                    return;
                }
                let Some(fi) = self.file_index(&path) else {
                    return;
                };
                let child = self.new_child(m, fi, name);
                self.add_name(m, name, Def::Mod(child));
                let fdir = path.parent().unwrap_or(mod_dir).to_path_buf();
                // As rustc: a `#[path]` file is treated as a mod-rs file
                // (its `mod y;` children are its siblings), as is `x/mod.rs`;
                // a non-mod-rs `x.rs` keeps its children in `x/`.
                let is_mod_rs =
                    path_attr.is_some() || path.file_name().is_some_and(|n| n == "mod.rs");
                let child_dir = if is_mod_rs {
                    fdir.clone()
                } else {
                    fdir.join(name.as_str())
                };
                let f = self.idx.files[fi];
                self.load_items(child, &f.ir.items, &child_dir, &fdir, seen);
                seen.remove(&path);
            }
            Item::Use(entries) => {
                for e in entries {
                    if e.glob {
                        self.idx.modules[m].globs.push(e.path.clone());
                    } else if let Some(a) = &e.alias {
                        self.idx.modules[m].uses.push((a.clone(), e.path.clone()));
                    }
                }
            }
            Item::Fn(f) => {
                let u = self.add_unit(m, f, None, false);
                self.add_name(m, &f.name, Def::Fn(u));
            }
            Item::Code(f) => {
                self.add_unit(m, f, None, false);
            }
            Item::Const(c) => {
                self.add_unit(m, &c.body, None, false);
                self.add_name(m, &c.name, Def::Const(c.lit.clone()));
            }
            Item::Struct(s) => {
                self.idx.structs.push(Struct { module: m, def: s });
                let id = self.idx.structs.len() - 1;
                self.add_name(m, &s.name, Def::Struct(id));
            }
            Item::Trait(t) => {
                for f in &t.methods {
                    self.add_unit(m, f, None, false);
                }
                match &t.api {
                    Some(api) => self.add_api(m, t, api),
                    None => self.add_name(m, &t.name, Def::Trait),
                }
            }
            Item::Impl(i) => {
                let units = i
                    .methods
                    .iter()
                    .map(|f| self.add_unit(m, f, i.self_ty.as_ref(), i.trait_path.is_none()))
                    .collect();
                self.idx.impls.push(Impl {
                    module: m,
                    def: i,
                    units,
                });
            }
            Item::MacroRules { loc, idents, .. } => {
                self.idx.macro_rules.push((m, *loc, idents));
            }
        }
    }

    fn add_api(&mut self, m: ModId, t: &TraitDef, api: &ApiAttr) {
        let file = self.idx.modules[m].file;
        let id = self.idx.apis.len();
        let host = match &api.host {
            Ok(h) => match buswarden_rules::Hostname::parse(h) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.idx.diags.push((
                        file,
                        Code::InvalidApi,
                        api.loc,
                        format!("API `{}`: {e}", t.name),
                    ));
                    None
                }
            },
            Err(e) => {
                self.idx.diags.push((
                    file,
                    Code::InvalidApi,
                    api.loc,
                    format!("#[buswarden::api] on `{}`: {e}; write #[buswarden::api(host = \"name.example\")]", t.name),
                ));
                None
            }
        };
        for (l, msg) in &api.malformed {
            self.idx.diags.push((
                file,
                Code::InvalidApi,
                *l,
                format!("{msg}; write e.g. #[function(GET, \"/path\")]"),
            ));
        }
        let mut endpoints = BTreeMap::new();
        for am in &api.methods {
            let method = buswarden_rules::Method::parse(&am.method);
            let route = buswarden_rules::Route::parse(&am.route);
            let ep = match (method, route) {
                (Ok(method), Ok(route)) => Some(ApiEndpoint {
                    kind: am.kind,
                    method,
                    route,
                    claims: am.claims.clone(),
                    loc: am.loc,
                }),
                (Err(e), _) | (_, Err(e)) => {
                    self.idx.diags.push((
                        file,
                        Code::InvalidRoute,
                        am.loc,
                        format!("endpoint `{}`: {e}", am.name),
                    ));
                    None
                }
            };
            self.idx.endpoint_names.insert(am.name.clone());
            endpoints.insert(am.name.clone(), ep);
        }
        self.idx.apis.push(Api {
            name: t.name.clone(),
            module: m,
            loc: t.loc,
            host,
            endpoints,
        });
        let n = &t.name;
        let gens = [
            (n.clone(), Gen::Trait),
            (compact_str::format_compact!("{n}Client"), Gen::Client),
            (
                compact_str::format_compact!("{n}MulticastClient"),
                Gen::Multicast,
            ),
            (compact_str::format_compact!("{n}Trigger"), Gen::Trigger),
            (compact_str::format_compact!("{n}Hook"), Gen::Hook),
            (
                Name::from(buswarden_rules::naming::host_const(n)),
                Gen::HostConst,
            ),
        ];
        for (name, g) in gens {
            if !matches!(g, Gen::Trait | Gen::HostConst) {
                self.idx.client_names.insert(name.clone());
            }
            self.add_name(m, &name, Def::Api(id, g));
        }
    }

    fn finish(&mut self) {
        use rayon::prelude::*;
        // Each impl's self type resolved (independently: in parallel) and
        // every (struct, method name, unit) listed, sorted in parallel
        // (stable: a name's units keep impl order), then grouped into the
        // map in one bulk build.
        let idx = &self.idx;
        let self_defs: Vec<Option<Def>> = idx
            .impls
            .par_iter()
            .map(|im| {
                im.def
                    .self_ty
                    .as_ref()
                    .and_then(|t| idx.resolve(im.module, t))
            })
            .collect();
        let mut entries: Vec<((StructId, Name), UnitId)> = idx
            .impls
            .par_iter()
            .zip(self_defs.par_iter())
            .flat_map_iter(|(im, d)| {
                let s = match d {
                    Some(Def::Struct(s)) => Some(*s),
                    _ => None,
                };
                im.units
                    .iter()
                    .filter_map(move |&u| s.map(|s| ((s, idx.units[u].def.name.clone()), u)))
            })
            .collect();
        entries.par_sort_by(|a, b| a.0.cmp(&b.0));
        let mut grouped: Vec<((StructId, Name), Vec<UnitId>)> = Vec::new();
        for (key, u) in entries {
            match grouped.last_mut() {
                Some((k, units)) if *k == key => units.push(u),
                _ => grouped.push((key, vec![u])),
            }
        }
        let methods: BTreeMap<(StructId, Name), Vec<UnitId>> = grouped.into_iter().collect();
        self.idx.methods = methods;
        let mut client_methods: BTreeMap<(ApiId, Gen, Name), Vec<UnitId>> = BTreeMap::new();
        for (im, d) in self.idx.impls.iter().zip(&self_defs) {
            if let Some(Def::Api(a, g)) = d.clone()
                && !matches!(g, Gen::Trait | Gen::HostConst)
            {
                for &u in &im.units {
                    let name = self.idx.units[u].def.name.clone();
                    self.idx.client_method_names.insert(name.clone());
                    client_methods.entry((a, g, name)).or_default().push(u);
                }
            }
        }
        self.idx.client_methods = client_methods;
        let mut connector_methods: BTreeMap<Name, Vec<UnitId>> = BTreeMap::new();
        for (im, d) in self.idx.impls.iter().zip(&self_defs) {
            if matches!(d, Some(Def::Runtime(rp)) if rp.last().is_some_and(|l| l == "Connector")) {
                for &u in &im.units {
                    let name = self.idx.units[u].def.name.clone();
                    connector_methods.entry(name).or_default().push(u);
                }
            }
        }
        self.idx.connector_methods = connector_methods;
        // A struct holds a client (a Connector) when a field's type is a
        // client (a Connector) or a struct that holds one (to a fixed
        // point: nesting is shallow).
        let n = self.idx.structs.len();
        let mut bearing = vec![0u8; n];
        // Only a field whose type is named like a client or a struct of
        // the tree (or an import renaming one) can hold one: the others
        // are not resolved at all.
        let mut type_names: std::collections::HashSet<Name> = self
            .idx
            .structs
            .iter()
            .map(|st| st.def.name.clone())
            .chain(self.idx.client_names.iter().cloned())
            .chain(std::iter::once(Name::from("Connector")))
            .collect();
        loop {
            let before = type_names.len();
            for m in &self.idx.modules {
                for (alias, path) in &m.uses {
                    if path.last().is_some_and(|l| type_names.contains(l)) {
                        type_names.insert(alias.clone());
                    }
                }
            }
            if type_names.len() == before {
                break;
            }
        }
        self.idx.type_names = type_names;
        let idx = &self.idx;
        // A field type that does not resolve but is named `Connector` is
        // the runtime's (as `eval` reads it).
        let unresolved_connector = Def::Runtime(vec!["Connector".into()]);
        let field_defs: Vec<Vec<Option<Def>>> = (0..n)
            .map(|s| {
                let st = &idx.structs[s];
                st.def
                    .fields
                    .iter()
                    .map(|(_, t)| {
                        let t = t
                            .as_ref()
                            .filter(|t| t.last().is_some_and(|l| idx.type_names.contains(l)))?;
                        idx.resolve_type(st.module, t).1.or_else(|| {
                            (t.last() == Some("Connector")).then(|| unresolved_connector.clone())
                        })
                    })
                    .collect()
            })
            .collect();
        loop {
            let mut changed = false;
            for s in 0..n {
                let holds = field_defs[s].iter().fold(bearing[s], |h, d| {
                    h | match d {
                        Some(Def::Api(_, g)) if !matches!(g, Gen::Trait | Gen::HostConst) => {
                            HOLDS_CLIENT
                        }
                        Some(Def::Runtime(rp)) if rp.last().is_some_and(|l| l == "Connector") => {
                            HOLDS_CONNECTOR
                        }
                        Some(Def::Struct(t)) => bearing[*t],
                        _ => 0,
                    }
                });
                if holds != bearing[s] {
                    bearing[s] = holds;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.idx.bearing = bearing;
        self.idx.alternates = alternates(&self.idx);
    }
}

/// The cfg alternatives of a tree (see [`Index::alternates`]): free
/// functions keyed by (target root, module path, name), methods by (target
/// root, module path, impl self type, impl trait, name). Two definitions of
/// one key can only coexist under different `cfg`s.
fn alternates(idx: &Index<'_>) -> HashMap<UnitId, std::sync::Arc<[UnitId]>> {
    use rayon::prelude::*;
    // Each module's path, interned: twin modules (same parent path, same
    // name) share an id. Parents are created before their children.
    let mut interned: HashMap<(usize, &Name), usize> = HashMap::new();
    let mut path_id = vec![0usize; idx.modules.len()];
    for (m, module) in idx.modules.iter().enumerate() {
        path_id[m] = match module.parent {
            // A target root: its own path (roots never share one).
            None => usize::MAX - m,
            Some(p) => {
                let next = interned.len();
                *interned.entry((path_id[p], &module.name)).or_insert(next)
            }
        };
    }
    // Same-named fns of twin modules, and same-named methods of impls of
    // one self type and trait in twin modules: (key, unit) pairs in the
    // order the units were defined, stably sorted by key, then runs of
    // more than one unit (most names have no twin, so no map entry or
    // vector is made per name).
    let mut fns: Vec<((usize, &Name), UnitId)> = vec![];
    for (m, module) in idx.modules.iter().enumerate() {
        for (name, defs) in &module.names {
            for d in defs {
                if let Def::Fn(u) = d {
                    fns.push(((path_id[m], name), *u));
                }
            }
        }
    }
    let text = |p: Option<&PathRef>| {
        p.map(|p| {
            p.segs
                .iter()
                .map(Name::as_str)
                .collect::<Vec<_>>()
                .join("::")
        })
        .unwrap_or_default()
    };
    // Each impl's (module path, self type, trait) interned once.
    let mut impl_keys: HashMap<(usize, String, String), usize> = HashMap::new();
    let mut methods: Vec<((usize, &Name), UnitId)> = vec![];
    for im in &idx.impls {
        let next = impl_keys.len();
        let key = *impl_keys
            .entry((
                path_id[im.module],
                text(im.def.self_ty.as_ref()),
                text(im.def.trait_path.as_ref()),
            ))
            .or_insert(next);
        methods.extend(im.units.iter().map(|&u| ((key, &idx.units[u].def.name), u)));
    }
    let mut out = HashMap::new();
    for mut pairs in [fns, methods] {
        pairs.par_sort_by(|a, b| a.0.cmp(&b.0));
        for run in pairs.chunk_by(|a, b| a.0 == b.0) {
            if run.len() > 1 {
                let shared: std::sync::Arc<[UnitId]> = run.iter().map(|&(_, u)| u).collect();
                for &(_, u) in run {
                    out.insert(u, shared.clone());
                }
            }
        }
    }
    out
}

/// Names the runtime exports that a glob import of it brings in.
const RUNTIME_NAMES: &[&str] = &[
    "Connector",
    "Method",
    "api",
    "grant",
    "edge_proxy",
    "Request",
    "Response",
    "Error",
];

impl<'a> Index<'a> {
    /// The crate of a module.
    pub fn crate_of(&self, m: ModId) -> &CrateInfo {
        &self.ws.crates[self.modules[m].krate]
    }

    /// Resolves a path written in module `m`.
    pub fn resolve(&self, m: ModId, path: &PathRef) -> Option<Def> {
        let mut visited = Visit::default();
        let found = self.resolve_in(m, path, &mut visited);
        if visited.steps < Visit::MAX_STEPS {
            return found;
        }
        // Over the bound: each lookup at most once (linear, and what a
        // name reached on one import path resolves to).
        let mut visited = Visit {
            once: true,
            ..Visit::default()
        };
        self.resolve_in(m, path, &mut visited)
    }

    /// `visited` holds the (module, name) lookups in progress: a re-export
    /// or glob cycle ends there (a lookup that completes leaves it, so a
    /// name reached twice on different import paths resolves both times).
    fn resolve_in<'s>(
        &'s self,
        m: ModId,
        path: &'s PathRef,
        visited: &mut Visit<'s>,
    ) -> Option<Def> {
        let (first, rest) = path.segs.split_first()?;
        let mut def = if path.global {
            self.extern_crate(m, first)?
        } else {
            match first.as_str() {
                "crate" => Def::Mod(self.modules[m].root),
                "self" => Def::Mod(m),
                "super" => Def::Mod(self.modules[m].parent?),
                _ => self
                    .lookup(m, first, visited)
                    .or_else(|| self.extern_crate(m, first))?,
            }
        };
        for seg in rest {
            def = self.step(def, seg, visited)?;
        }
        Some(def)
    }

    fn step<'s>(&'s self, def: Def, seg: &'s str, visited: &mut Visit<'s>) -> Option<Def> {
        Some(match def {
            Def::Mod(mm) => match seg {
                "super" => Def::Mod(self.modules[mm].parent?),
                "self" => Def::Mod(mm),
                _ => match self.lookup(mm, seg, visited) {
                    Some(d) => {
                        let twins: Vec<&Def> = self
                            .twin_modules(mm)
                            .filter_map(|t| self.modules[t].names.get(seg))
                            .flatten()
                            .collect();
                        self.cfg_value(&d, twins.into_iter())
                    }
                    // A twin module under another cfg may define it.
                    None => self
                        .twin_modules(mm)
                        .find_map(|t| self.lookup(t, seg, visited))?,
                },
            },
            Def::Runtime(mut p) => {
                p.push(seg.to_string());
                Def::Runtime(p)
            }
            Def::External(mut p) => {
                p.push(seg.to_string());
                Def::External(p)
            }
            d @ (Def::Api(..) | Def::Struct(_) | Def::Trait) => {
                Def::Assoc(Box::new(d), seg.to_string())
            }
            Def::Fn(_) | Def::Const(_) | Def::Assoc(..) => return None,
        })
    }

    /// A const under several cfgs (`#[cfg(a)] const H: &str = "a.example";`
    /// and `#[cfg(not(a))] const H: &str = "b.example";`) has no one value:
    /// when the alternatives disagree it is computed (`Const(None)`), so a
    /// host becomes `*` and a URL a computed one, never the first value only.
    fn cfg_value<'d>(&self, d: &Def, others: impl Iterator<Item = &'d Def>) -> Def {
        match d {
            Def::Const(v) => {
                let mut others = others;
                if others.any(|o| matches!(o, Def::Const(w) if w != v)) {
                    Def::Const(None)
                } else {
                    d.clone()
                }
            }
            _ => d.clone(),
        }
    }

    /// The other modules of the same name in the same parent as `m` (cfg
    /// alternatives: `#[cfg(unix)] mod imp;` / `#[cfg(not(unix))] mod imp;`).
    fn twin_modules(&self, m: ModId) -> impl Iterator<Item = ModId> + '_ {
        let module = &self.modules[m];
        module
            .parent
            .and_then(|p| self.modules[p].names.get(&module.name))
            .into_iter()
            .flatten()
            .filter_map(move |d| match d {
                Def::Mod(t) if *t != m => Some(*t),
                _ => None,
            })
    }

    /// A crate name visible from module `m`: a dependency or the crate's own library.
    fn extern_crate(&self, m: ModId, name: &str) -> Option<Def> {
        let ci = self.modules[m].krate;
        let c = &self.ws.crates[ci];
        if let Some(dep) = c.deps.get(name) {
            return Some(match dep {
                Some(t) if self.ws.crates[*t].is_runtime => Def::Runtime(vec![]),
                Some(t) => Def::Mod(*self.roots[*t].first()?),
                None if name == crate::workspace::RUNTIME_PACKAGE => Def::Runtime(vec![]),
                None => Def::External(vec![name.to_string()]),
            });
        }
        if name == c.lib_name && c.lib_root.is_some() {
            return self.roots[ci].first().map(|r| Def::Mod(*r));
        }
        None
    }

    /// A name defined or imported in module `m` (not the extern prelude).
    fn lookup<'s>(&'s self, m: ModId, name: &'s str, visited: &mut Visit<'s>) -> Option<Def> {
        let module = &self.modules[m];
        // An item of the module itself needs no cycle guard (and the
        // common case then allocates nothing).
        if let Some(defs) = module.names.get(name) {
            return defs.first().map(|d| self.cfg_value(d, defs.iter()));
        }
        if visited.stack.contains(&(m, name))
            || (!visited.once && visited.steps >= Visit::MAX_STEPS)
        {
            return None;
        }
        visited.steps += 1;
        visited.stack.push((m, name));
        let found = self.lookup_imports(m, name, visited);
        if !visited.once {
            visited.stack.pop();
        }
        found
    }

    /// A name imported into module `m` (by name, then through a glob).
    fn lookup_imports<'s>(
        &'s self,
        m: ModId,
        name: &'s str,
        visited: &mut Visit<'s>,
    ) -> Option<Def> {
        let module = &self.modules[m];
        for (alias, path) in &module.uses {
            if alias == name
                && let Some(d) = self.resolve_in(m, path, visited)
            {
                return Some(d);
            }
        }
        for g in &module.globs {
            match self.resolve_in(m, g, visited) {
                Some(Def::Mod(gm)) => {
                    if let Some(d) = self.lookup(gm, name, visited) {
                        return Some(d);
                    }
                }
                Some(Def::Runtime(mut p)) if RUNTIME_NAMES.contains(&name) => {
                    p.push(name.to_string());
                    return Some(Def::Runtime(p));
                }
                _ => {}
            }
        }
        None
    }

    /// Resolves a type path written in module `m` (as lowered by
    /// [`crate::lower::type_ref`]): its wrapper layers, outermost in the
    /// low two bits ([`WRAP_OPT`], [`WRAP_LOCK`], [`WRAP_CELL`]; 8 at most),
    /// and what the wrapped path names.
    pub fn resolve_type(&self, m: ModId, p: &PathRef) -> (u16, Option<Def>) {
        let n = p
            .segs
            .iter()
            .take_while(|s| {
                s.starts_with('<')
                    && s.as_str() != crate::lower::OPAQUE_TYPE
                    && s.as_str() != crate::lower::DYN_TYPE
            })
            .count();
        if n == 0 {
            return (0, self.resolve(m, p));
        }
        let mut wraps = 0u16;
        for s in p.segs[..n].iter().rev().take(8) {
            let code = match s.as_str() {
                crate::lower::WRAP_OPT => WRAP_OPT,
                crate::lower::WRAP_LOCK => WRAP_LOCK,
                _ => WRAP_CELL,
            };
            wraps = (wraps << 2) | code;
        }
        let inner = PathRef {
            global: p.global,
            segs: Segs::from(p.segs[n..].to_vec()),
        };
        (wraps, self.resolve(m, &inner))
    }

    /// Whether module `m` has a glob import from a crate outside the tree
    /// (a name that does not resolve may come from it).
    pub fn has_external_glob(&self, m: ModId) -> bool {
        self.modules[m]
            .globs
            .iter()
            .any(|g| matches!(self.resolve(m, g), Some(Def::External(_)) | None))
    }

    /// Every definition of the item unit `u` defines: `u` itself and its cfg
    /// alternatives (a call to one must grant what any of them calls).
    pub fn alternates(&self, u: UnitId) -> impl Iterator<Item = UnitId> + '_ {
        let group = self.alternates.get(&u);
        group
            .into_iter()
            .flat_map(|g| g.iter().copied())
            .chain(group.is_none().then_some(u))
    }

    /// The crate index of a unit.
    pub fn unit_crate(&self, u: UnitId) -> usize {
        self.modules[self.units[u].module].krate
    }

    /// The file path of a unit, relative to the root.
    pub fn unit_file(&self, u: UnitId) -> String {
        self.module_file(self.units[u].module)
    }

    /// The file path of a module, relative to the root.
    pub fn module_file(&self, m: ModId) -> String {
        // Sequential on purpose: a parallel iterator inside `get_or_init`
        // could steal another caller of this function onto the same thread.
        let rel = self
            .rel_paths
            .get_or_init(|| self.files.iter().map(|f| self.ws.rel(&f.path)).collect());
        rel[self.modules[m].file].clone()
    }
}
