//! Workspace discovery: walks a tree (skipping `target/` and hidden
//! folders), reads every `Cargo.toml` itself (cargo is never run), and
//! returns the crates with their targets, source files and the names their
//! path dependencies are known by.
//!
//! What never grants is left out here: `tests/`, `benches/`, `examples/`,
//! build scripts, dev- and build-dependencies. Registry dependencies are
//! recorded as external names and not analysed.

use crate::diagnostic::{Code, Diagnostic};
use crate::ir::Loc;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The package name of the runtime crate: its items are known by name, its
/// code is not analysed.
pub const RUNTIME_PACKAGE: &str = "buswarden";

/// Why a workspace cannot be analysed at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    /// The root is missing or is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The root given.
        path: PathBuf,
    },
}

/// One crate (package) found in the tree.
#[derive(Debug, Clone)]
pub struct CrateInfo {
    /// The package name from `Cargo.toml`.
    pub package: String,
    /// The library name (`[lib] name`, else the package name with `-` -> `_`).
    pub lib_name: String,
    /// The crate's folder.
    pub dir: PathBuf,
    /// Its library root file, if it has a library.
    pub lib_root: Option<PathBuf>,
    /// Its binary root files.
    pub bin_roots: Vec<PathBuf>,
    /// Dependencies: extern name -> crate index (path dependencies) or `None`
    /// (registry dependencies: known as a name only).
    pub deps: BTreeMap<String, Option<usize>>,
    /// Path crates it uses only as dev- or build-dependencies (code that
    /// runs in tests and build scripts, never in the deployed service).
    pub dev_deps: Vec<usize>,
    /// `[package.metadata.buswarden] hostname`: a service that serves no API trait.
    pub hostname_meta: Option<String>,
    /// Whether this is the buswarden runtime crate.
    pub is_runtime: bool,
    /// The `.rs` files that may belong to its targets.
    pub files: Vec<PathBuf>,
    /// Whether it is a member of its workspace (or a workspace of its own).
    /// A crate a workspace `exclude`s is not: it is never a service, and
    /// its code is analysed only if a member depends on it.
    pub member: bool,
}

/// A discovered tree.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The scanned root.
    pub root: PathBuf,
    /// Every crate, sorted by folder.
    pub crates: Vec<CrateInfo>,
    /// Findings made while walking and reading manifests.
    pub diags: Vec<Diagnostic>,
}

impl Workspace {
    /// `path` relative to the root, `/`-separated.
    pub fn rel(&self, path: &Path) -> String {
        rel(&self.root, path)
    }
}

/// `path` relative to `root`, `/`-separated.
pub fn rel(root: &Path, path: &Path) -> String {
    let p = path.strip_prefix(root).unwrap_or(path);
    let s: Vec<String> = p
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    s.join("/")
}

struct Manifest {
    path: PathBuf,
    dir: PathBuf,
    table: toml::Table,
}

/// Walks `root` and reads every crate in it.
pub fn discover(root: &Path) -> Result<Workspace, WorkspaceError> {
    if !root.is_dir() {
        return Err(WorkspaceError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    use rayon::prelude::*;
    let root = root.to_path_buf();
    let Walked {
        manifests: manifests_paths,
        mut rs_files,
        mut diags,
    } = pool_walk(&root);
    let mut manifests = read_manifests(&root, manifests_paths, &mut diags);

    // Path dependencies outside the scanned root are read too: cargo builds
    // them into the services, so a client type or helper they define must
    // be followed, never dropped. They are library crates of the scan,
    // never services (not members), each walked within its own folder.
    let canon = canonical_root(&root);
    let mut external: BTreeSet<PathBuf> = BTreeSet::new();
    let mut known: BTreeSet<PathBuf> = manifests.iter().map(|m| normalize(&m.dir)).collect();
    let mut next = 0;
    loop {
        let mut to_walk = vec![];
        for m in &manifests[next..] {
            if !m.table.get("package").is_some_and(toml::Value::is_table) {
                continue;
            }
            let ws = manifests
                .iter()
                .filter(|w| w.table.contains_key("workspace") && m.dir.starts_with(&w.dir))
                .max_by_key(|w| w.dir.components().count());
            for (name, dir) in path_dependency_dirs(m, ws) {
                if known.contains(&dir) {
                    continue;
                }
                if !dir.join("Cargo.toml").is_file() {
                    // Cargo would not build it; its calls could not be
                    // followed: refused, never silently dropped.
                    diags.push(Diagnostic::new(
                        Code::InvalidManifest,
                        &rel(&root, &m.path),
                        Loc::default(),
                        format!(
                            "the path dependency `{name}` ({}) has no Cargo.toml: its code cannot be analysed; fix the path",
                            dir.display()
                        ),
                    ));
                    known.insert(dir);
                    continue;
                }
                if inside_root(&canon, &dir) {
                    continue;
                }
                known.insert(dir.clone());
                to_walk.push(dir);
            }
        }
        next = manifests.len();
        if to_walk.is_empty() {
            break;
        }
        for dir in to_walk {
            let walked = pool_walk(&dir);
            rs_files.extend(walked.rs_files);
            diags.extend(walked.diags);
            let more = read_manifests(&root, walked.manifests, &mut diags);
            known.extend(more.iter().map(|m| normalize(&m.dir)));
            external.extend(more.iter().map(|m| normalize(&m.dir)));
            manifests.extend(more);
        }
    }

    // Workspace roots, deepest first, so a package finds its nearest one.
    let mut ws_roots: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| m.table.contains_key("workspace"))
        .collect();
    ws_roots.sort_by_key(|m| std::cmp::Reverse(m.dir.components().count()));

    let packages: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| m.table.get("package").is_some_and(toml::Value::is_table))
        .collect();
    for m in manifests
        .iter()
        .filter(|m| !m.table.contains_key("package") && !m.table.contains_key("workspace"))
    {
        diags.push(Diagnostic::new(
            Code::InvalidManifest,
            &rel(&root, &m.path),
            Loc::default(),
            "has neither [package] nor [workspace]; add a [package] section",
        ));
    }
    let crate_dirs: BTreeSet<PathBuf> = packages.iter().map(|m| m.dir.clone()).collect();
    // Target roots are looked up among the files the walk found (no
    // system call per crate).
    let walked_rs: std::collections::HashSet<&Path> =
        rs_files.iter().map(PathBuf::as_path).collect();

    // Each file goes to its nearest crate, found once.
    let mut files_of: BTreeMap<&Path, Vec<PathBuf>> = BTreeMap::new();
    let mut orphan_dirs = BTreeSet::new();
    let owners: Vec<Option<&Path>> = rs_files
        .par_iter()
        .map(|f| owning_crate(f, &crate_dirs))
        .collect();
    for (f, owner) in rs_files.iter().zip(owners) {
        match owner {
            Some(d) => files_of.entry(d).or_default().push(f.clone()),
            None => {
                if let Some(parent) = f.parent() {
                    orphan_dirs.insert(parent.to_path_buf());
                }
            }
        }
    }
    let mut crates: Vec<CrateInfo> = packages
        .par_iter()
        .map(|m| {
            crate_info(
                m,
                &walked_rs,
                files_of.get(m.dir.as_path()).map_or(&[][..], Vec::as_slice),
            )
        })
        .collect();
    let by_dir: BTreeMap<PathBuf, usize> = crates
        .iter()
        .enumerate()
        .map(|(i, c)| (normalize(&c.dir), i))
        .collect();
    let lib_names: Vec<String> = crates.iter().map(|c| c.lib_name.clone()).collect();
    let all_deps: Vec<_> = packages
        .par_iter()
        .map(|m| {
            let ws = ws_roots
                .iter()
                .find(|w| m.dir.starts_with(&w.dir) && is_member(w, &m.dir))
                .copied();
            let deps = dependencies(m, ws, &by_dir, &lib_names, dependency_tables(&m.table));
            let dev = dependencies(m, ws, &by_dir, &lib_names, dev_dependency_tables(&m.table));
            (deps, dev.into_values().flatten().collect())
        })
        .collect();
    for (c, (deps, dev)) in crates.iter_mut().zip(all_deps) {
        c.deps = deps;
        c.dev_deps = dev;
    }
    for (c, m) in crates.iter_mut().zip(&packages) {
        c.member = !excluded(&ws_roots, m) && !external.contains(&normalize(&m.dir));
    }
    // A target the manifest names outside its tree (`[lib] path =
    // "/proc/self/environ"`, a link out) is refused, never read.
    for (c, m) in crates.iter_mut().zip(&packages) {
        let mut outside = |p: &PathBuf| {
            let bad = !walked_rs.contains(p.as_path()) && p.exists() && !inside_root(&canon, p);
            if bad {
                diags.push(Diagnostic::new(
                    Code::OutsideRoot,
                    &rel(&root, &m.path),
                    Loc::default(),
                    format!(
                        "names the target {} outside the scanned root; it is not read. Keep crate targets inside the tree",
                        p.display()
                    ),
                ));
            }
            bad
        };
        if c.lib_root.as_ref().is_some_and(&mut outside) {
            c.lib_root = None;
        }
        c.bin_roots.retain(|b| !outside(b));
    }
    // An excluded crate no member depends on is not read at all.
    let mut reached: BTreeSet<usize> = (0..crates.len()).filter(|&i| crates[i].member).collect();
    let mut q: Vec<usize> = reached.iter().copied().collect();
    while let Some(i) = q.pop() {
        for d in crates[i].deps.values().flatten() {
            if reached.insert(*d) {
                q.push(*d);
            }
        }
    }
    for (i, c) in crates.iter_mut().enumerate() {
        if !reached.contains(&i) {
            c.files.clear();
            c.lib_root = None;
            c.bin_roots.clear();
        }
    }

    // Sources under no crate at all.
    for d in orphan_dirs {
        diags.push(Diagnostic::new(
            Code::NoManifest,
            &rel(&root, &d),
            Loc::default(),
            "Rust sources here belong to no crate (no Cargo.toml above them) and are not analysed; add a Cargo.toml if they are a service",
        ));
    }
    Ok(Workspace {
        root,
        crates,
        diags,
    })
}

/// Reads and parses manifests in parallel, reporting failures in path order.
fn read_manifests(root: &Path, paths: Vec<PathBuf>, diags: &mut Vec<Diagnostic>) -> Vec<Manifest> {
    use rayon::prelude::*;
    let read: Vec<Result<Manifest, Diagnostic>> = paths
        .into_par_iter()
        .map(|path| {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Diagnostic::new(
                    Code::InvalidManifest,
                    &rel(root, &path),
                    Loc::default(),
                    format!("cannot be read: {e}"),
                )
            })?;
            match text.parse::<toml::Table>() {
                Ok(table) => Ok(Manifest { path, dir, table }),
                Err(e) => Err(Diagnostic::new(
                    Code::InvalidManifest,
                    &rel(root, &path),
                    Loc::default(),
                    format!("is not valid TOML: {}", e.message()),
                )),
            }
        })
        .collect();
    let mut out = vec![];
    for r in read {
        match r {
            Ok(m) => out.push(m),
            Err(d) => diags.push(d),
        }
    }
    out
}

/// The folders of a package's (non-dev) path dependencies, `.`/`..` folded.
/// A `x.workspace = true` entry the workspace does not define names no folder.
fn path_dependency_dirs(m: &Manifest, ws: Option<&Manifest>) -> Vec<(String, PathBuf)> {
    dependency_specs(m, ws, dependency_tables(&m.table))
        .filter(|d| d.resolved)
        .filter_map(|d| {
            let p = d.spec.get("path").and_then(toml::Value::as_str)?;
            Some((d.key.clone(), normalize(&d.base.join(p))))
        })
        .collect()
}

/// One dependency entry as Cargo reads it: a `x.workspace = true` entry
/// takes its spec from the workspace's `[workspace.dependencies]`, with
/// paths relative to the workspace's folder.
struct DependencySpec<'a> {
    key: &'a String,
    spec: &'a toml::Value,
    /// The folder a `path` in `spec` is relative to.
    base: &'a Path,
    /// False for a `workspace = true` entry the workspace does not define
    /// (`spec` is then the entry itself).
    resolved: bool,
}

/// Every entry of `tables`, resolved through the workspace.
fn dependency_specs<'a>(
    m: &'a Manifest,
    ws: Option<&'a Manifest>,
    tables: Vec<&'a toml::Table>,
) -> impl Iterator<Item = DependencySpec<'a>> {
    let ws_deps = ws
        .and_then(|w| w.table.get("workspace"))
        .and_then(|w| w.get("dependencies"))
        .and_then(toml::Value::as_table);
    tables.into_iter().flatten().map(move |(key, spec)| {
        let own = DependencySpec {
            key,
            spec,
            base: m.dir.as_path(),
            resolved: true,
        };
        if spec.get("workspace").and_then(toml::Value::as_bool) != Some(true) {
            return own;
        }
        match (ws_deps.and_then(|d| d.get(key)), ws) {
            (Some(s), Some(w)) => DependencySpec {
                spec: s,
                base: w.dir.as_path(),
                ..own
            },
            _ => DependencySpec {
                resolved: false,
                ..own
            },
        }
    })
}

/// What a walk of the tree found, in walk order: depth first, the entries
/// of each folder by file name (the order a sorted sequential walk gives).
#[derive(Default)]
struct Walked {
    manifests: Vec<PathBuf>,
    rs_files: Vec<PathBuf>,
    diags: Vec<Diagnostic>,
}

impl Walked {
    fn append(&mut self, other: Walked) {
        self.manifests.extend(other.manifests);
        self.rs_files.extend(other.rs_files);
        self.diags.extend(other.diags);
    }
}

/// A folder's identity (device, inode), to find symbolic links that loop
/// back to one of their own ancestors.
type DirId = Option<(u64, u64)>;

#[cfg(unix)]
fn dir_id(md: &std::fs::Metadata) -> DirId {
    use std::os::unix::fs::MetadataExt;
    Some((md.dev(), md.ino()))
}

#[cfg(not(unix))]
fn dir_id(_: &std::fs::Metadata) -> DirId {
    None
}

/// Walks `root` following symbolic links, skipping `target/` and hidden
/// folders below it; sibling folders near the root are walked in parallel
/// (call inside a rayon pool) and their findings joined in walk order, so
/// the result does not depend on the threads.
fn pool_walk(root: &Path) -> Walked {
    let id = std::fs::metadata(root).ok().and_then(|m| dir_id(&m));
    let canon = canonical_root(root);
    let tree = Tree {
        root,
        canon: &canon,
    };
    walk_dir(&tree, root, &[(root.to_path_buf(), id)])
}

/// The scanned root as the walk sees it, and its canonical form (what a
/// link's target must stay inside).
struct Tree<'p> {
    root: &'p Path,
    canon: &'p Path,
}

/// The canonical form of the root (the root itself if it has none).
pub fn canonical_root(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

/// Whether `path` (through every link on the way) stays inside the
/// canonical root `canon`. A path that cannot be resolved is not inside.
pub fn inside_root(canon: &Path, path: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|p| p.starts_with(canon))
}

/// How deep the walk recurses in parallel; below that, each subtree is
/// walked by one thread with an explicit stack, so no directory depth can
/// exhaust a thread's stack.
const PARALLEL_DEPTH: usize = 3;

/// What a folder entry is to the walk.
enum Kind {
    File,
    Dir(DirId),
    Skip,
}

/// A folder's entries sorted by name, classified (links followed); what
/// cannot be read is reported to `diags`.
fn list(
    tree: &Tree<'_>,
    dir: &Path,
    ancestors: &[(PathBuf, DirId)],
    diags: &mut Vec<Diagnostic>,
) -> Vec<(PathBuf, Kind)> {
    let root = tree.root;
    let unreadable = |path: &Path, e: &dyn std::fmt::Display| {
        Diagnostic::new(
            Code::UnreadableFile,
            &rel(root, path),
            Loc::default(),
            format!("cannot be read while walking the tree: {e}"),
        )
    };
    let mut entries: Vec<std::fs::DirEntry> = match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v = vec![];
            for e in rd {
                match e {
                    Ok(e) => v.push(e),
                    Err(e) => diags.push(unreadable(dir, &e)),
                }
            }
            v
        }
        Err(e) => {
            diags.push(unreadable(dir, &e));
            return vec![];
        }
    };
    entries.sort_by_key(std::fs::DirEntry::file_name);
    entries
        .iter()
        .map(|e| {
            let path = e.path();
            let name = e.file_name();
            let ft = match e.file_type() {
                Ok(ft) => ft,
                Err(err) => {
                    diags.push(unreadable(&path, &err));
                    return (path, Kind::Skip);
                }
            };
            let (is_dir, is_file, id) = if ft.is_symlink() {
                // A link is followed only while it stays inside the root:
                // a link to `/proc/self/environ` or `/etc` is never read.
                if !inside_root(tree.canon, &path) && std::fs::metadata(&path).is_ok() {
                    diags.push(Diagnostic::new(
                        Code::OutsideRoot,
                        &rel(root, &path),
                        Loc::default(),
                        "symbolic link leads outside the scanned root; it is not read. Copy what it points at into the tree, or scan from a root that contains it",
                    ));
                    return (path, Kind::Skip);
                }
                match std::fs::metadata(&path) {
                    Ok(md) => (md.is_dir(), md.is_file(), dir_id(&md)),
                    Err(err) => {
                        diags.push(unreadable(&path, &err));
                        return (path, Kind::Skip);
                    }
                }
            } else {
                (ft.is_dir(), ft.is_file(), entry_id(e, ancestors))
            };
            let hidden = name == "target" || name.to_string_lossy().starts_with('.');
            let kind = if is_dir && !hidden {
                Kind::Dir(id)
            } else if is_file {
                Kind::File
            } else {
                Kind::Skip
            };
            (path, kind)
        })
        .collect()
}

/// The diagnostic for a folder link that leads back to an ancestor, if
/// `id` is one of `ancestors`.
fn loop_back(
    root: &Path,
    path: &Path,
    id: DirId,
    ancestors: &[(PathBuf, DirId)],
) -> Option<Diagnostic> {
    let (anc, _) = ancestors.iter().find(|(_, a)| id.is_some() && *a == id)?;
    Some(Diagnostic::new(
        Code::SymlinkLoop,
        &rel(root, path),
        Loc::default(),
        format!(
            "symbolic link loops back to {}; it is skipped. Remove the link or point it outside its own ancestors",
            rel(root, anc)
        ),
    ))
}

/// Adds a file the walk found to what it collects.
fn found_file(out: &mut Walked, path: PathBuf) {
    if path.file_name().is_some_and(|n| n == "Cargo.toml") {
        out.manifests.push(path);
    } else if path.extension().is_some_and(|x| x == "rs") {
        out.rs_files.push(path);
    }
}

/// Walks `dir`: its subfolders in parallel down to [`PARALLEL_DEPTH`].
fn walk_dir(tree: &Tree<'_>, dir: &Path, ancestors: &[(PathBuf, DirId)]) -> Walked {
    use rayon::prelude::*;
    let root = tree.root;
    let mut out = Walked::default();
    let kinds = list(tree, dir, ancestors, &mut out.diags);
    let subdirs: Vec<Option<Walked>> = kinds
        .par_iter()
        .map(|(path, kind)| {
            let Kind::Dir(id) = kind else { return None };
            if let Some(d) = loop_back(root, path, *id, ancestors) {
                let mut w = Walked::default();
                w.diags.push(d);
                return Some(w);
            }
            let mut chain = ancestors.to_vec();
            chain.push((path.clone(), *id));
            Some(if chain.len() < PARALLEL_DEPTH {
                walk_dir(tree, path, &chain)
            } else {
                walk_deep(tree, path, chain)
            })
        })
        .collect();
    for ((path, kind), sub) in kinds.into_iter().zip(subdirs) {
        if let Kind::File = kind {
            found_file(&mut out, path);
        }
        if let Some(w) = sub {
            out.append(w);
        }
    }
    out
}

/// Walks `dir` on this thread with an explicit stack (any depth), in the
/// same order as [`walk_dir`]: entries by name, a folder's contents right
/// after it.
fn walk_deep(tree: &Tree<'_>, dir: &Path, chain: Vec<(PathBuf, DirId)>) -> Walked {
    let root = tree.root;
    struct Frame {
        kinds: std::vec::IntoIter<(PathBuf, Kind)>,
        chain: Vec<(PathBuf, DirId)>,
    }
    let mut out = Walked::default();
    let kinds = list(tree, dir, &chain, &mut out.diags);
    let mut stack = vec![Frame {
        kinds: kinds.into_iter(),
        chain,
    }];
    while let Some(top) = stack.last_mut() {
        let Some((path, kind)) = top.kinds.next() else {
            stack.pop();
            continue;
        };
        match kind {
            Kind::File => found_file(&mut out, path),
            Kind::Skip => {}
            Kind::Dir(id) => {
                if let Some(d) = loop_back(root, &path, id, &top.chain) {
                    out.diags.push(d);
                    continue;
                }
                let mut chain = top.chain.clone();
                chain.push((path.clone(), id));
                let kinds = list(tree, &path, &chain, &mut out.diags);
                stack.push(Frame {
                    kinds: kinds.into_iter(),
                    chain,
                });
            }
        }
    }
    out
}

/// The identity of a folder that is not a link: its inode from the folder
/// listing (no system call), on its parent's device.
#[cfg(unix)]
fn entry_id(e: &std::fs::DirEntry, ancestors: &[(PathBuf, DirId)]) -> DirId {
    use std::os::unix::fs::DirEntryExt;
    let dev = ancestors.last().and_then(|(_, id)| *id)?.0;
    Some((dev, e.ino()))
}

#[cfg(not(unix))]
fn entry_id(_: &std::fs::DirEntry, _: &[(PathBuf, DirId)]) -> DirId {
    None
}

/// A path with `.` and `..` folded, for matching dependency paths.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether a package is left out of the workspace it sits in, as Cargo
/// decides: the nearest enclosing workspace root (its own manifest first)
/// that does not `exclude` it is its workspace; a package some root
/// excludes and no root above takes is not a member of the scanned tree.
fn excluded(ws_roots: &[&Manifest], m: &Manifest) -> bool {
    if m.table.contains_key("workspace") {
        return false;
    }
    let mut excluded_by_one = false;
    for w in ws_roots.iter().filter(|w| m.dir.starts_with(&w.dir)) {
        if excludes(w, &m.dir) {
            excluded_by_one = true;
        } else {
            return false;
        }
    }
    excluded_by_one
}

/// The `exclude` and `members` lists of a workspace root.
fn ws_list(ws: &Manifest, key: &str) -> Vec<String> {
    ws.table
        .get("workspace")
        .and_then(toml::Value::as_table)
        .and_then(|w| w.get(key))
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(|s| s.trim_end_matches('/').trim_start_matches("./").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the workspace `ws` excludes the package in `dir`: a path of its
/// `exclude` list is the folder or one of its ancestors, and no `members`
/// entry names the folder exactly (Cargo's rule).
fn excludes(ws: &Manifest, dir: &Path) -> bool {
    let Ok(relative) = dir.strip_prefix(&ws.dir) else {
        return false;
    };
    let relative = rel(Path::new(""), relative);
    let under = ws_list(ws, "exclude")
        .iter()
        .any(|e| relative == *e || relative.starts_with(&format!("{e}/")));
    // Cargo: a `members` entry written as the folder or an ancestor of it
    // (literally: a glob does not) overrides the exclusion.
    let named = ws_list(ws, "members")
        .iter()
        .any(|m| relative == *m || relative.starts_with(&format!("{m}/")));
    under && !named
}

fn is_member(ws: &Manifest, dir: &Path) -> bool {
    if ws.dir == dir {
        return true;
    }
    if !ws.table.get("workspace").is_some_and(toml::Value::is_table) || excludes(ws, dir) {
        return false;
    }
    let Ok(relative) = dir.strip_prefix(&ws.dir) else {
        return false;
    };
    let relative = rel(Path::new(""), relative);
    ws_list(ws, "members")
        .iter()
        .any(|g| glob_match(g, &relative))
}

/// Matches a `members` glob (`*`, `?`, `**` per path segment) against a
/// `/`-separated relative path.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn segs(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => segs(&p[1..], s) || (!s.is_empty() && segs(p, &s[1..])),
            (Some(pp), Some(ss)) => seg(pp.as_bytes(), ss.as_bytes()) && segs(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn seg(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => seg(&p[1..], s) || (!s.is_empty() && seg(p, &s[1..])),
            (Some(b'?'), Some(_)) => seg(&p[1..], &s[1..]),
            (Some(a), Some(b)) => a == b && seg(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let s: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segs(&p, &s)
}

/// The folder of the crate a file belongs to: its nearest ancestor with a
/// package `Cargo.toml`.
fn owning_crate<'a>(file: &Path, crate_dirs: &'a BTreeSet<PathBuf>) -> Option<&'a Path> {
    file.ancestors()
        .skip(1)
        .find_map(|a| crate_dirs.get(a))
        .map(PathBuf::as_path)
}

/// A crate's targets and files. `walked_rs`: every `.rs` file the walk
/// found; `rs_files`: the ones whose nearest crate is this one.
fn crate_info(
    m: &Manifest,
    walked_rs: &std::collections::HashSet<&Path>,
    rs_files: &[PathBuf],
) -> CrateInfo {
    let is_file = |p: &Path| walked_rs.contains(p);
    let pkg = m.table.get("package").and_then(toml::Value::as_table);
    let package = pkg
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let lib = m.table.get("lib").and_then(toml::Value::as_table);
    let lib_name = lib
        .and_then(|l| l.get("name"))
        .and_then(toml::Value::as_str)
        .map_or_else(|| package.replace('-', "_"), str::to_string);
    let lib_root = match lib
        .and_then(|l| l.get("path"))
        .and_then(toml::Value::as_str)
    {
        Some(p) => Some(m.dir.join(p)),
        None => Some(m.dir.join("src/lib.rs")).filter(|p| is_file(p)),
    };
    let mut bin_roots = BTreeSet::new();
    let autobins = pkg
        .and_then(|p| p.get("autobins"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(true);
    if autobins {
        let main = m.dir.join("src/main.rs");
        if is_file(&main) {
            bin_roots.insert(main);
        }
        // `src/bin/x.rs` and `src/bin/x/main.rs`.
        let bin_dir = m.dir.join("src/bin");
        for p in rs_files.iter().filter(|p| p.starts_with(&bin_dir)) {
            let below: Vec<_> = p
                .strip_prefix(&bin_dir)
                .map_or(vec![], |r| r.components().collect());
            if below.len() == 1
                || (below.len() == 2 && p.file_name().is_some_and(|n| n == "main.rs"))
            {
                bin_roots.insert(p.clone());
            }
        }
    }
    for b in m
        .table
        .get("bin")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(p) = b.get("path").and_then(toml::Value::as_str) {
            bin_roots.insert(m.dir.join(p));
        }
    }
    let build_script = pkg
        .and_then(|p| p.get("build"))
        .and_then(toml::Value::as_str)
        .map_or_else(|| m.dir.join("build.rs"), |b| m.dir.join(b));
    let excluded_dirs = ["tests", "benches", "examples"].map(|d| m.dir.join(d));
    let files = rs_files
        .iter()
        .filter(|f| **f != build_script && !excluded_dirs.iter().any(|d| f.starts_with(d)))
        .cloned()
        .collect();
    let hostname_meta = pkg
        .and_then(|p| p.get("metadata"))
        .and_then(|v| v.get("buswarden"))
        .and_then(|v| v.get("hostname"))
        .and_then(toml::Value::as_str)
        .map(str::to_string);
    CrateInfo {
        is_runtime: package == RUNTIME_PACKAGE,
        package,
        lib_name,
        dir: m.dir.clone(),
        lib_root,
        bin_roots: bin_roots.into_iter().collect(),
        deps: BTreeMap::new(),
        dev_deps: vec![],
        hostname_meta,
        files,
        member: true,
    }
}

/// The dependency tables that grant: `[dependencies]` and every
/// `[target.'…'.dependencies]` (never dev- or build-dependencies).
fn dependency_tables(t: &toml::Table) -> Vec<&toml::Table> {
    let mut out = vec![];
    if let Some(d) = t.get("dependencies").and_then(toml::Value::as_table) {
        out.push(d);
    }
    if let Some(targets) = t.get("target").and_then(toml::Value::as_table) {
        for (_, tv) in targets {
            if let Some(d) = tv.get("dependencies").and_then(toml::Value::as_table) {
                out.push(d);
            }
        }
    }
    out
}

/// The dependency tables that never grant: dev- and build-dependencies,
/// also per target.
fn dev_dependency_tables(t: &toml::Table) -> Vec<&toml::Table> {
    let keys = ["dev-dependencies", "build-dependencies"];
    let mut out: Vec<&toml::Table> = keys
        .iter()
        .filter_map(|k| t.get(*k).and_then(toml::Value::as_table))
        .collect();
    if let Some(targets) = t.get("target").and_then(toml::Value::as_table) {
        for (_, tv) in targets {
            out.extend(
                keys.iter()
                    .filter_map(|k| tv.get(*k).and_then(toml::Value::as_table)),
            );
        }
    }
    out
}

fn dependencies(
    m: &Manifest,
    ws: Option<&Manifest>,
    by_dir: &BTreeMap<PathBuf, usize>,
    lib_names: &[String],
    tables: Vec<&toml::Table>,
) -> BTreeMap<String, Option<usize>> {
    dependency_specs(m, ws, tables)
        .map(|d| {
            let renamed = d
                .spec
                .get("package")
                .and_then(toml::Value::as_str)
                .is_some();
            let target = d
                .spec
                .get("path")
                .and_then(toml::Value::as_str)
                .and_then(|p| by_dir.get(&normalize(&d.base.join(p))).copied());
            let name = match (renamed, target) {
                (false, Some(t)) => lib_names[t].clone(),
                _ => d.key.replace('-', "_"),
            };
            (name, target)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel walk finds what a sorted sequential walk (walkdir,
    /// following links, skipping `target/` and hidden folders) finds, in
    /// the same order.
    #[test]
    fn parallel_walk_matches_a_sorted_sequential_walk() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for f in [
            "Cargo.toml",
            "a/Cargo.toml",
            "a/src/lib.rs",
            "a/src/z.rs",
            "a/src/m/mod.rs",
            "a/src/m/x.rs",
            "a/src/bin/tool.rs",
            "a/src/bin/two/main.rs",
            "b.rs",
            "b/Cargo.toml",
            "b/src/main.rs",
            "b/target/debug/gen.rs",
            "b/.hidden/h.rs",
            "c/deep/er/still/Cargo.toml",
            "c/deep/er/still/src/lib.rs",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("a/src"), root.join("c/linked")).unwrap();
            std::os::unix::fs::symlink("..", root.join("a/src/m/up")).unwrap();
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let ours = pool.install(|| pool_walk(root));
        let mut expected_rs = vec![];
        let mut expected_manifests = vec![];
        let mut loops = 0;
        let walker = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0
                    || !(e.file_type().is_dir()
                        && (e.file_name() == "target"
                            || e.file_name().to_string_lossy().starts_with('.')))
            });
        for e in walker {
            match e {
                Ok(e) if e.file_type().is_file() => {
                    if e.file_name() == "Cargo.toml" {
                        expected_manifests.push(e.path().to_path_buf());
                    } else if e.path().extension().is_some_and(|x| x == "rs") {
                        expected_rs.push(e.path().to_path_buf());
                    }
                }
                Ok(_) => {}
                Err(_) => loops += 1,
            }
        }
        assert_eq!(ours.rs_files, expected_rs);
        assert_eq!(ours.manifests, expected_manifests);
        assert_eq!(ours.diags.len(), loops);
        assert!(cfg!(not(unix)) || loops >= 2, "both links loop: {loops}");
        assert!(
            ours.diags.iter().all(|d| d.code == Code::SymlinkLoop),
            "{:?}",
            ours.diags
        );
        assert!(
            !ours
                .rs_files
                .iter()
                .any(|p| p.ends_with("gen.rs") || p.ends_with("h.rs"))
        );
    }

    /// `exclude` as Cargo reads it: an excluded folder and everything below
    /// it is out (its files are not read when no member depends on it), a
    /// literal `members` entry overrides it, a glob does not, and an excluded
    /// crate with its own `[workspace]` is a workspace of its own.
    /// A path dependency outside the scanned root is read as cargo builds
    /// it (a library of the scan, never a service), with its own path
    /// dependencies; an unrelated crate beside it is not read.
    #[test]
    fn path_dependencies_outside_the_root_are_read_as_libraries() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path();
        let pkg = |name: &str, deps: &str| {
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n[dependencies]\n{deps}")
        };
        let files = [
            (
                "app/svc/Cargo.toml",
                pkg("svc", "api = { path = \"../../libs/api\" }\n"),
            ),
            (
                "libs/api/Cargo.toml",
                pkg("api", "util = { path = \"../util\" }\n"),
            ),
            ("libs/util/Cargo.toml", pkg("util", "")),
            ("libs/other/Cargo.toml", pkg("other", "")),
        ];
        for (f, text) in &files {
            let p = top.join(f);
            std::fs::create_dir_all(p.parent().unwrap().join("src")).unwrap();
            std::fs::write(&p, text).unwrap();
            std::fs::write(p.parent().unwrap().join("src/lib.rs"), "").unwrap();
        }
        let ws = discover(&top.join("app")).unwrap();
        let get = |name: &str| ws.crates.iter().find(|c| c.package == name);
        let svc = get("svc").unwrap();
        assert!(svc.member);
        let api = get("api").expect("the out-of-root path dependency is read");
        assert!(!api.member && api.lib_root.is_some());
        assert_eq!(
            svc.deps
                .get("api")
                .copied()
                .flatten()
                .map(|i| &ws.crates[i].package),
            Some(&"api".to_string())
        );
        let util = get("util").expect("its own path dependency too");
        assert!(!util.member && util.lib_root.is_some());
        assert!(get("other").is_none());

        // A path dependency that is not there is refused at the manifest.
        std::fs::write(
            top.join("app/svc/Cargo.toml"),
            pkg("svc", "gone = { path = \"../../libs/gone\" }\n"),
        )
        .unwrap();
        let ws = discover(&top.join("app")).unwrap();
        assert!(
            ws.diags
                .iter()
                .any(|d| d.code == Code::InvalidManifest && d.message.contains("`gone`")),
            "{:?}",
            ws.diags
        );
    }

    #[test]
    fn workspace_exclude_is_honoured_as_cargo_does() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let pkg = |name: &str| format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n");
        let files = [
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"crates/*\", \"crates/forced\"]\nexclude = [\"crates/skip\", \"crates/forced\", \"crates/own\", \"crates/used\"]\n".to_string(),
            ),
            ("crates/a/Cargo.toml", format!("{}\n[dependencies]\nused = {{ path = \"../used\" }}\n", pkg("a"))),
            ("crates/skip/Cargo.toml", pkg("skip")),
            ("crates/skip/deeper/Cargo.toml", pkg("deeper")),
            ("crates/forced/Cargo.toml", pkg("forced")),
            ("crates/own/Cargo.toml", format!("{}[workspace]\n", pkg("own"))),
            ("crates/used/Cargo.toml", pkg("used")),
        ];
        for (f, text) in &files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            std::fs::create_dir_all(p.parent().unwrap().join("src")).unwrap();
            std::fs::write(p.parent().unwrap().join("src/lib.rs"), "").unwrap();
        }
        let ws = discover(root).unwrap();
        let get = |name: &str| ws.crates.iter().find(|c| c.package == name).unwrap();
        for (name, member, read) in [
            ("a", true, true),
            ("skip", false, false),
            ("deeper", false, false),
            ("forced", true, true),
            ("own", true, true),
            ("used", false, true),
        ] {
            let c = get(name);
            assert_eq!(c.member, member, "{name}");
            assert_eq!(!c.files.is_empty() && c.lib_root.is_some(), read, "{name}");
        }
    }

    /// A tree nested 800 folders deep is walked on a thread with a small
    /// stack: the depth is walked with an explicit stack, not recursion.
    #[test]
    fn deep_trees_do_not_exhaust_the_stack() {
        let t = tempfile::tempdir().unwrap();
        let mut dir = t.path().to_path_buf();
        for _ in 0..800 {
            dir.push("d");
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("deep.rs"), "").unwrap();
        let root = t.path().to_path_buf();
        let walked = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .stack_size(256 * 1024)
                    .build()
                    .unwrap();
                pool.install(|| pool_walk(&root)).rs_files
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(walked.len(), 1);
        assert!(walked[0].ends_with("deep.rs"));
    }
}
