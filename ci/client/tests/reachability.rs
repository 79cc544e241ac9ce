//! A pull request that makes a new endpoint reachable from the internet
//! without claims, reviewed with the real tools: `gencreds check` fails
//! (`public-endpoint-unlisted`, at the endpoint), and the pull-request
//! comment (`busop diff --format markdown` with both sides' reachability
//! models from `gencreds graph --format json`) names it in its first lines.
//! The shop and core/ are copied at the same relative places.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
}

/// `gencreds graph` of the shop's deployment in `repo`, as JSON to `out`.
fn model(repo: &Path, out: &str) {
    let args = [
        "graph",
        "fixtures/app",
        "core",
        "--format",
        "json",
        "--out",
        out,
    ];
    let graph = tool(repo, "gencreds", &args);
    assert!(graph.status.success(), "{}", text(&graph.stderr));
}

#[test]
fn a_new_edge_endpoint_without_claims_fails_check_and_leads_the_pr_comment() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    copy_shop(&repo);

    // Today's claim-less edge endpoints are listed as public on purpose.
    let surface = tool(&repo, "gencreds", &["surface", "fixtures/app", "core"]);
    assert!(surface.status.success(), "{}", text(&surface.stderr));
    let public: Vec<String> = text(&surface.stdout)
        .lines()
        .filter(|l| l.ends_with("claims=-"))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!("\"{} {}{}\"", f[3], f[2], f[4])
        })
        .collect();
    let policy = repo.join("fixtures/app/buswarden.toml");
    let base = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        format!(
            "{base}\n[edge]\nmode = \"prod\"\n\n[public]\nendpoints = [\n  {},\n]\n",
            public.join(",\n  ")
        ),
    )
    .unwrap();
    let check = tool(&repo, "gencreds", &["check", "fixtures/app"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.email", "ci@example.invalid"]);
    git(&repo, &["config", "user.name", "ci"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "base"]);
    model(&repo, "../base.json");

    // The pull request: GET /export on the catalog, no claims.
    let api = repo.join("fixtures/app/catalog/api/src/lib.rs");
    let src = std::fs::read_to_string(&api).unwrap();
    let anchor = "    #[function(PUT, \":444/items/{id}\", claims = \"roles.admin\")]";
    assert!(src.contains(anchor));
    std::fs::write(
        &api,
        src.replacen(
            anchor,
            &format!(
                "    #[function(GET, \"/export\")]\n    async fn export(&self) -> Result<String, Error>;\n\n{anchor}"
            ),
            1,
        ),
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "catalog: export"]);

    let check = tool(&repo, "gencreds", &["check", "fixtures/app"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stderr));
    let err = text(&check.stderr);
    assert!(err.contains("public-endpoint-unlisted"), "{err}");
    assert!(err.contains("catalog/api/src/lib.rs:"), "{err}");

    model(&repo, "../head.json");
    let diff = tool(
        &repo,
        "busop",
        &[
            "diff",
            "--format",
            "markdown",
            "git:HEAD~1:fixtures/app",
            "git:HEAD:fixtures/app",
            "--old-model",
            "../base.json",
            "--new-model",
            "../head.json",
        ],
    );
    assert!(diff.status.success(), "{}", text(&diff.stderr));
    let md = text(&diff.stdout);
    let first: Vec<&str> = md.lines().take(7).collect();
    assert_eq!(
        first,
        vec![
            "## buswarden: broker grant changes",
            "",
            "### Reachability",
            "",
            "**Newly reachable from the internet**",
            "",
            "- `EDGE 443 catalog.example GET /export claims=-` **no claims, not listed in `[public]`**",
        ],
        "{md}"
    );
    insta::assert_snapshot!("pr_comment_new_edge_endpoint", md);

    // A malformed model is a clear error, not a panic.
    std::fs::write(tmp.path().join("bad.json"), "{\"version\": 7}").unwrap();
    let bad = tool(
        &repo,
        "busop",
        &[
            "diff",
            "git:HEAD~1:fixtures/app",
            "git:HEAD:fixtures/app",
            "--old-model",
            "../bad.json",
            "--new-model",
            "../head.json",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("version 7"),
        "{}",
        text(&bad.stderr)
    );
}
