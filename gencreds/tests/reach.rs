//! The reachability model on the shop (fixtures/app plus core/'s token
//! services): its edges are exactly the union of the committed `nats.acl`
//! `PUB` rules (computed here from the files, independently of the model),
//! the surface report lists exactly the edge-reachable endpoints with and
//! without an `[edge]` table, and a change that makes a new endpoint
//! edge-reachable without claims fails `gencreds check` when `[public]`
//! is listed.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gencreds(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gencreds"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn acl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            acl_files(&p, out);
        } else if name == "nats.acl" {
            out.push(p);
        }
    }
}

/// (hostname, PUB rule) of every committed nats.acl, the reply rule aside:
/// read from the files with plain string handling.
fn committed_pub_rules(trees: &[PathBuf]) -> BTreeSet<(String, String)> {
    let mut files = vec![];
    for t in trees {
        acl_files(t, &mut files);
    }
    assert!(files.len() >= 6, "the shop's deploy has six services");
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let host = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# nats.acl for "))
            .unwrap()
            .to_string();
        for l in text.lines().filter(|l| l.starts_with("PUB ")) {
            if l.contains(".reply._.") {
                continue;
            }
            out.insert((host.clone(), l.to_string()));
        }
    }
    out
}

fn model(cwd: &Path, roots: &[&str]) -> Value {
    let mut args = vec!["graph"];
    args.extend_from_slice(roots);
    args.extend_from_slice(&["--format", "json"]);
    let (code, out, err) = gencreds(cwd, &args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn model_edges_are_the_union_of_the_committed_acls() {
    let root = repo();
    let m = model(&root, &["fixtures/app", "core"]);
    assert_eq!(m["version"], 1);
    let edges = m["edges"].as_array().unwrap();
    let from_model: BTreeSet<(String, String)> = edges
        .iter()
        .filter(|e| e["kind"] != "internet")
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let committed = committed_pub_rules(&[root.join("fixtures/app"), root.join("core")]);
    assert_eq!(from_model, committed);

    // Every edge's endpoint exists; trust-root edges are the danger rules.
    let ids: BTreeSet<&str> = m["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for e in edges {
        if let Some(to) = e["to"].as_str() {
            assert!(ids.contains(to), "{e}");
        }
    }
    let trust: BTreeSet<(String, String)> = edges
        .iter()
        .filter(|e| e["trust_root"] == true)
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let danger: BTreeSet<(String, String)> = committed
        .iter()
        .filter(|(_, r)| r.contains(".danger.666."))
        .cloned()
        .collect();
    assert_eq!(trust, danger);
    assert_eq!(
        trust.len(),
        3,
        "the gateway's two Mint calls and the ingress's exchange"
    );
    // Every service node of the deploy, and every edge has a call site.
    let hosts: BTreeSet<&str> = m["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hostname"].as_str().unwrap())
        .collect();
    for h in [
        "access.token.core",
        "bearer.token.core",
        "catalog.example",
        "gateway.example",
        "http.ingress.core",
        "notify.example",
        "orders.example",
    ] {
        assert!(hosts.contains(h), "{h}");
    }
    for e in edges.iter().filter(|e| e["kind"] != "internet") {
        let sites = e["sites"].as_array().unwrap();
        assert!(!sites.is_empty(), "no call site: {e}");
        for s in sites {
            assert!(s["line"].as_u64().unwrap() > 0, "{s}");
        }
    }
    // The bundle runs catalog and orders.
    for s in m["services"].as_array().unwrap() {
        let want = matches!(
            s["hostname"].as_str().unwrap(),
            "catalog.example" | "orders.example"
        );
        assert_eq!(s["bundle"] == "shop-bundle", want, "{s}");
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The shop and core at the same relative places, in a temp folder.
fn shop_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(
        &repo().join("fixtures/app"),
        &tmp.path().join("fixtures/app"),
    );
    copy_tree(&repo().join("core"), &tmp.path().join("core"));
    tmp
}

/// The surface computed here from `scan --format json` (each service's
/// declared endpoints) and a firewall written out in the test.
fn expected_surface(cwd: &Path, admits: impl Fn(u16) -> bool) -> Vec<String> {
    let mut lines = vec![];
    for root in ["fixtures/app", "core"] {
        let (_, out, err) = gencreds(cwd, &["scan", root, "--stdout", "--format", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
        for s in v["services"].as_array().unwrap() {
            let host = s["hostname"].as_str().unwrap();
            for e in s["endpoints"].as_array().unwrap() {
                if e["kind"] == "event" {
                    continue;
                }
                let route = e["route"].as_str().unwrap();
                let (port, path) = match route.strip_prefix(':') {
                    Some(r) => {
                        let i = r.find('/').unwrap();
                        (r[..i].parse::<u16>().unwrap(), &r[i..])
                    }
                    None => (443, route),
                };
                if port == 666 || port == 888 || !admits(port) {
                    continue;
                }
                let claims = e["claims"]
                    .as_str()
                    .map(|c| c.replace(' ', ""))
                    .unwrap_or_else(|| "-".into());
                lines.push(format!(
                    "EDGE {port} {host} {} {path} claims={claims}",
                    e["method"].as_str().unwrap()
                ));
            }
        }
    }
    lines.sort();
    lines
}

fn surface(cwd: &Path) -> Vec<String> {
    let (code, out, err) = gencreds(cwd, &["surface", "fixtures/app", "core"]);
    assert_eq!(code, 0, "{err}");
    out.lines().map(str::to_string).collect()
}

#[test]
fn surface_lists_exactly_the_edge_reachable_endpoints_with_and_without_an_edge_table() {
    let tmp = shop_copy();
    let cwd = tmp.path();
    // Without [edge]: the default firewall, 443 only.
    let without = surface(cwd);
    assert_eq!(without, expected_surface(cwd, |p| p == 443));
    assert!(without.contains(&"EDGE 443 catalog.example GET /items/{id} claims=-".to_string()));
    assert!(
        without.contains(&"EDGE 443 orders.example POST /orders claims=roles.buyer".to_string())
    );
    assert!(!without.iter().any(|l| l.contains(" 444 ")));

    // With [edge] in local mode and core's ingress in the tree: the
    // ingress's grants (derived from core/buswarden.toml: 443 and 8080)
    // are the internet's reach, so 444 stays out.
    let policy = cwd.join("fixtures/app/buswarden.toml");
    let base = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("{base}\n[edge]\nmode = \"local\"\n")).unwrap();
    assert_eq!(
        surface(cwd),
        expected_surface(cwd, |p| p == 443 || p == 8080)
    );
    // Without the ingress in the tree: every port but 666 and 888 (444
    // appears).
    std::fs::remove_dir_all(cwd.join("core/ingress")).unwrap();
    let local = surface(cwd);
    assert_eq!(local, expected_surface(cwd, |_| true));
    assert!(
        local.contains(&"EDGE 444 catalog.example PUT /items/{id} claims=roles.admin".to_string())
    );
    assert!(
        !local
            .iter()
            .any(|l| l.contains(" 666 ") || l.contains(" 888 "))
    );
    assert!(local.len() > without.len());

    // With [edge] in prod mode and no extra ports: the same as without.
    std::fs::write(&policy, format!("{base}\n[edge]\nmode = \"prod\"\n")).unwrap();
    assert_eq!(surface(cwd), without);
    let m = model(cwd, &["fixtures/app", "core"]);
    assert_eq!(m["ingress"]["configured"], true);
}

#[test]
fn a_new_edge_reachable_endpoint_without_claims_fails_check_with_a_public_list() {
    let tmp = shop_copy();
    let cwd = tmp.path();
    let policy = cwd.join("fixtures/app/buswarden.toml");
    let base = std::fs::read_to_string(&policy).unwrap();
    // List today's claim-less edge endpoints: check passes.
    let public: Vec<String> = surface(cwd)
        .iter()
        .filter(|l| {
            l.ends_with("claims=-")
                && !l.contains(" access.token.core ")
                && !l.contains(" bearer.token.core ")
        })
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!("\"{} {}{}\"", f[3], f[2], f[4])
        })
        .collect();
    assert!(!public.is_empty());
    std::fs::write(
        &policy,
        format!(
            "{base}\n[edge]\nmode = \"prod\"\n\n[public]\nendpoints = [\n  {},\n]\n",
            public.join(",\n  ")
        ),
    )
    .unwrap();
    let (code, out, err) = gencreds(cwd, &["check", "fixtures/app"]);
    assert_eq!(code, 0, "{out}{err}");

    // The pull request: a new :443 endpoint on the catalog without claims.
    let api = cwd.join("fixtures/app/catalog/api/src/lib.rs");
    let text = std::fs::read_to_string(&api).unwrap();
    let anchor = "    #[function(PUT, \":444/items/{id}\", claims = \"roles.admin\")]";
    assert!(text.contains(anchor));
    let added = "    #[function(GET, \"/export\")]\n    async fn export(&self) -> Result<String, Error>;\n\n";
    std::fs::write(&api, text.replacen(anchor, &format!("{added}{anchor}"), 1)).unwrap();
    let line = text[..text.find(anchor).unwrap()].lines().count() + 1;
    let (code, out, err) = gencreds(cwd, &["check", "fixtures/app", "--format", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let found: Vec<&Value> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "public-endpoint-unlisted")
        .collect();
    assert_eq!(found.len(), 1, "{out}");
    let d = found[0];
    assert_eq!(d["file"], "catalog/api/src/lib.rs");
    assert_eq!(d["line"].as_u64().unwrap() as usize, line, "{d}");
    let msg = d["message"].as_str().unwrap();
    assert!(msg.contains("\"GET catalog.example:443/export\""), "{msg}");
    assert!(msg.contains("[public]"), "{msg}");
}

#[test]
fn the_dot_graph_marks_trust_root_edges_and_groups_the_bundle() {
    let (code, dot, err) = gencreds(
        &repo(),
        &["graph", "fixtures/app", "core", "--format", "dot"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(dot.starts_with("digraph buswarden {"));
    let trust: Vec<&str> = dot
        .lines()
        .filter(|l| l.contains("class=\"trust-root\""))
        .collect();
    assert_eq!(trust.len(), 3, "{dot}");
    assert!(trust.iter().any(|l| {
        l.starts_with("  \"http.ingress.core\" -> \"access.token.core\" [label=\"ANY :666/mint\"")
    }));
    assert!(trust.iter().any(|l| {
        l.starts_with("  \"gateway.example\" -> \"access.token.core\" [label=\"ANY :666/mint\"")
    }));
    assert!(trust.iter().any(|l| {
        l.starts_with("  \"gateway.example\" -> \"bearer.token.core\" [label=\"ANY :666/mint\"")
    }));
    assert!(dot.contains("subgraph \"cluster_shop-bundle\""));
    assert!(dot.contains("\"internet\" -> \"catalog.example\""));
    assert!(dot.trim_end().ends_with('}'));
}
