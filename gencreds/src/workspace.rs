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
    /// `[package.metadata.buswarden] hostname`: a service that serves no API trait.
    pub hostname_meta: Option<String>,
    /// Whether this is the buswarden runtime crate.
    pub is_runtime: bool,
    /// The `.rs` files that may belong to its targets.
    pub files: Vec<PathBuf>,
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
    let root = root.to_path_buf();
    let mut diags = vec![];
    let mut manifests_paths = vec![];
    let mut rs_files = vec![];
    let walker = walkdir::WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(e.file_type().is_dir()
                    && (e.file_name() == "target"
                        || e.file_name().to_string_lossy().starts_with('.')))
        });
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() => {
                let name = e.file_name();
                if name == "Cargo.toml" {
                    manifests_paths.push(e.path().to_path_buf());
                } else if e.path().extension().is_some_and(|x| x == "rs") {
                    rs_files.push(e.path().to_path_buf());
                }
            }
            Ok(_) => {}
            Err(err) => {
                let path = err.path().map(Path::to_path_buf).unwrap_or_default();
                let (code, msg) = if let Some(anc) = err.loop_ancestor() {
                    (
                        Code::SymlinkLoop,
                        format!(
                            "symbolic link loops back to {}; it is skipped. Remove the link or point it outside its own ancestors",
                            rel(&root, anc)
                        ),
                    )
                } else {
                    (
                        Code::UnreadableFile,
                        format!("cannot be read while walking the tree: {err}"),
                    )
                };
                diags.push(Diagnostic::new(
                    code,
                    &rel(&root, &path),
                    Loc::default(),
                    msg,
                ));
            }
        }
    }

    // Manifests are read and parsed in parallel, reported in path order.
    use rayon::prelude::*;
    let read: Vec<Result<Manifest, Diagnostic>> = manifests_paths
        .into_par_iter()
        .map(|path| {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Diagnostic::new(
                    Code::InvalidManifest,
                    &rel(&root, &path),
                    Loc::default(),
                    format!("cannot be read: {e}"),
                )
            })?;
            match text.parse::<toml::Table>() {
                Ok(table) => Ok(Manifest { path, dir, table }),
                Err(e) => Err(Diagnostic::new(
                    Code::InvalidManifest,
                    &rel(&root, &path),
                    Loc::default(),
                    format!("is not valid TOML: {}", e.message()),
                )),
            }
        })
        .collect();
    let mut manifests = vec![];
    for r in read {
        match r {
            Ok(m) => manifests.push(m),
            Err(d) => diags.push(d),
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
                &crate_dirs,
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
            dependencies(m, ws, &by_dir, &lib_names)
        })
        .collect();
    for (c, deps) in crates.iter_mut().zip(all_deps) {
        c.deps = deps;
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

fn is_member(ws: &Manifest, dir: &Path) -> bool {
    if ws.dir == dir {
        return true;
    }
    let Some(w) = ws.table.get("workspace").and_then(toml::Value::as_table) else {
        return false;
    };
    let Ok(relative) = dir.strip_prefix(&ws.dir) else {
        return false;
    };
    let relative = rel(Path::new(""), relative);
    let list = |key: &str| -> Vec<String> {
        w.get(key)
            .and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(|s| s.trim_end_matches('/').trim_start_matches("./").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let excluded = list("exclude")
        .iter()
        .any(|e| relative == *e || relative.starts_with(&format!("{e}/")));
    !excluded && list("members").iter().any(|g| glob_match(g, &relative))
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

fn crate_info(m: &Manifest, crate_dirs: &BTreeSet<PathBuf>, rs_files: &[PathBuf]) -> CrateInfo {
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
        None => Some(m.dir.join("src/lib.rs")).filter(|p| p.is_file()),
    };
    let mut bin_roots = BTreeSet::new();
    let autobins = pkg
        .and_then(|p| p.get("autobins"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(true);
    if autobins {
        let main = m.dir.join("src/main.rs");
        if main.is_file() {
            bin_roots.insert(main);
        }
        if let Ok(rd) = std::fs::read_dir(m.dir.join("src/bin")) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "rs") && p.is_file() {
                    bin_roots.insert(p);
                } else if p.join("main.rs").is_file() {
                    bin_roots.insert(p.join("main.rs"));
                }
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
        .filter(|f| {
            **f != build_script
                && owning_crate(f, crate_dirs) == Some(m.dir.as_path())
                && !excluded_dirs.iter().any(|d| f.starts_with(d))
        })
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
        hostname_meta,
        files,
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

fn dependencies(
    m: &Manifest,
    ws: Option<&Manifest>,
    by_dir: &BTreeMap<PathBuf, usize>,
    lib_names: &[String],
) -> BTreeMap<String, Option<usize>> {
    let ws_deps = ws
        .and_then(|w| w.table.get("workspace"))
        .and_then(|w| w.get("dependencies"))
        .and_then(toml::Value::as_table);
    let mut out = BTreeMap::new();
    for table in dependency_tables(&m.table) {
        for (key, spec) in table {
            // `x.workspace = true` takes path and package from the workspace.
            let (spec, base) = match spec.get("workspace").and_then(toml::Value::as_bool) {
                Some(true) => match (ws_deps.and_then(|d| d.get(key)), ws) {
                    (Some(s), Some(w)) => (s, w.dir.as_path()),
                    _ => (spec, m.dir.as_path()),
                },
                _ => (spec, m.dir.as_path()),
            };
            let renamed = spec.get("package").and_then(toml::Value::as_str).is_some();
            let target = spec
                .get("path")
                .and_then(toml::Value::as_str)
                .and_then(|p| by_dir.get(&normalize(&base.join(p))).copied());
            let name = match (renamed, target) {
                (false, Some(t)) => lib_names[t].clone(),
                _ => key.replace('-', "_"),
            };
            out.insert(name, target);
        }
    }
    out
}
