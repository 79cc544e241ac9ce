//! The docs cannot go stale: every `sh` block of the README and of the docs
//! this crate owns is run, in order, on a copy of the repository with the
//! workspace's binaries on PATH; the command reference in `docs/cli.md` is
//! what the clap definitions produce; every test the threat model cites
//! exists where it says.
//!
//! Blocks marked `sh setup` are not run here: they install and build
//! (`source ci/deps.sh`, `cargo build --workspace --bins`, `ci/test`,
//! `ci/demo`), which is what `ci/test` itself does before this test runs.
//! Regenerate the reference with
//! `BUSWARDEN_WRITE_DOCS=1 cargo test -p buswarden-ci --test docs`.

mod common;

use clap::CommandFactory as _;
use common::*;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The documents whose `sh` blocks are run.
const RUN: &[&str] = &[
    "README.md",
    "docs/architecture.md",
    "docs/threat-model.md",
    "docs/runbook.md",
    "docs/formats.md",
    "docs/cli.md",
    "docs/reachability.md",
];

/// One fenced block: where it starts, its info string, its text.
struct Block {
    line: usize,
    info: String,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.take() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some(Block {
                        line: i + 1,
                        info: info.trim().to_string(),
                        text: String::new(),
                    });
                }
            }
            Some(mut b) => {
                if trimmed.starts_with("```") {
                    out.push(b);
                } else {
                    b.text.push_str(line);
                    b.text.push('\n');
                    open = Some(b);
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed fenced block");
    out
}

/// The document's `sh` blocks as one script, each announced.
fn script(doc: &str, markdown: &str) -> (String, usize) {
    let mut s = String::from(
        "set -euo pipefail\ntrap 'for p in $(jobs -p); do kill \"$p\" 2>/dev/null || true; done' EXIT\n",
    );
    let mut n = 0;
    for b in blocks(markdown) {
        match b.info.as_str() {
            "sh" => {
                n += 1;
                let _ = writeln!(s, "echo '::: {doc}:{}' >&2\n{}", b.line, b.text);
            }
            "sh setup" => {}
            other => assert!(
                !other.starts_with("sh")
                    && !other.starts_with("bash")
                    && !other.starts_with("shell"),
                "{doc}:{}: a shell block must be `sh` (run by this test) or `sh setup`",
                b.line
            ),
        }
    }
    (s, n)
}

/// Copies the repository's files (tracked and new, not ignored).
fn copy_repo(to: &Path) {
    let root = repo_root();
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root)
        .output()
        .expect("git ls-files");
    assert!(out.status.success());
    for rel in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let from = root.join(rel);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&from, &dest).unwrap();
    }
}

#[test]
fn every_shell_block_of_the_docs_runs() {
    let path = path_env();
    let mut ran = 0;
    for doc in RUN {
        let markdown =
            std::fs::read_to_string(repo_root().join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        let (text, n) = script(doc, &markdown);
        if n == 0 {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        copy_repo(tmp.path());
        let out = run_limited(
            Command::new("bash")
                .arg("-c")
                .arg(&text)
                .current_dir(tmp.path())
                .env("PATH", &path)
                .env("BUSWARDEN_BIN_DIR", bin_dir())
                .env("BUSWARDEN_NATS_SERVER", nats_server()),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{doc}: a shell block failed (the last `:::` line names it)\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += n;
    }
    assert!(ran >= 10, "only {ran} blocks ran");
}

/// The Markdown reference of one command tree.
fn reference(out: &mut String, cmd: &clap::Command, path: &str, depth: usize) {
    let _ = writeln!(out, "{} `{path}`\n", "#".repeat((depth + 1).min(5)));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(out, "{about}\n");
    }
    let usage = cmd
        .clone()
        .bin_name(path.to_string())
        .render_usage()
        .to_string();
    let _ = writeln!(
        out,
        "```text\n{}\n```\n",
        usage.trim_start_matches("Usage: ")
    );
    let mut rows = String::new();
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        if a.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        let values = a
            .get_value_names()
            .map(|v| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| id.to_uppercase());
        let name = match a.get_long() {
            Some(l) if a.get_action().takes_values() => format!("`--{l} <{values}>`"),
            Some(l) => format!("`--{l}`"),
            None => format!("`{values}`"),
        };
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect();
        let _ = writeln!(
            rows,
            "| {name} | {} | {} |",
            help.replace('|', "\\|"),
            defaults.join(", ")
        );
    }
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "| argument | meaning | default |\n|---|---|---|\n{rows}"
        );
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        reference(out, sub, &format!("{path} {}", sub.get_name()), depth + 1);
    }
}

const START: &str = "<!-- GENERATED REFERENCE START -->\n";
const END: &str = "<!-- GENERATED REFERENCE END -->";

#[test]
fn the_cli_reference_is_what_the_clap_definitions_say() {
    let mut generated = String::new();
    reference(
        &mut generated,
        &gencreds::cli::Cli::command(),
        "gencreds",
        1,
    );
    reference(
        &mut generated,
        &buswarden_ci::cli::Cli::command(),
        "buswarden-ci",
        1,
    );
    let file = repo_root().join("docs/cli.md");
    let text = std::fs::read_to_string(&file).unwrap();
    let (a, b) = (
        text.find(START).expect("docs/cli.md: start marker"),
        text.find(END).expect("docs/cli.md: end marker"),
    );
    let current = &text[a + START.len()..b];
    if current != generated {
        if std::env::var_os("BUSWARDEN_WRITE_DOCS").is_some() {
            let new = format!("{}{START}{generated}{}", &text[..a], &text[b..]);
            std::fs::write(&file, new).unwrap();
        } else {
            panic!(
                "docs/cli.md is stale: BUSWARDEN_WRITE_DOCS=1 cargo test -p buswarden-ci --test docs"
            );
        }
    }
}

#[test]
fn every_test_the_threat_model_cites_exists() {
    let text = std::fs::read_to_string(repo_root().join("docs/threat-model.md")).unwrap();
    let mut cited = 0;
    for cite in text.split('`').filter(|s| s.contains(".rs::")) {
        let (file, name) = cite.split_once("::").unwrap();
        let source = std::fs::read_to_string(repo_root().join(file))
            .unwrap_or_else(|e| panic!("docs/threat-model.md cites {file}: {e}"));
        assert!(
            source.contains(&format!("fn {name}(")),
            "docs/threat-model.md cites {file}::{name}, which does not exist"
        );
        cited += 1;
    }
    assert!(cited >= 14, "only {cited} tests cited");
}

/// The README's first command, `ci/demo`, on the binaries already built.
#[test]
fn ci_demo_runs_the_main_job() {
    let out = run_limited(
        Command::new(repo_root().join("ci/demo"))
            .env("PATH", path_env())
            .env("BUSWARDEN_BIN_DIR", bin_dir())
            .env("BUSWARDEN_NATS_SERVER", nats_server()),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ci/demo failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "# nats.acl for gateway.example",
        "every nats.acl is true to code",
        "2 trust-root grant(s), 0 wildcard grant(s)",
        "# PUB microbus.danger.666.gateway_example.access_token_core.*.POST.mint",
        "ready catalog.example ",
        "ready orders.example ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
}

/// `account-server` has no clap definition; its usage line is the source of
/// truth, and every command in it must have its row in `docs/cli.md`.
#[test]
fn every_account_server_command_is_in_the_reference() {
    let out = run_limited(
        &mut Command::new(bin_dir().join("account-server")),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let usage = stderr
        .split_once("usage: ")
        .unwrap_or_else(|| panic!("no usage line: {stderr}"))
        .1
        .trim();
    let doc = std::fs::read_to_string(repo_root().join("docs/cli.md")).unwrap();
    let mut n = 0;
    for command in usage.split(" | ") {
        assert!(
            doc.contains(&format!("| `{command}` |")),
            "docs/cli.md has no row for `{command}`"
        );
        n += 1;
    }
    assert!(n >= 2, "{usage}");
}

/// Every relative link of the docs this crate owns points at a file.
#[test]
fn every_relative_link_resolves() {
    let mut checked = 0;
    for doc in RUN
        .iter()
        .chain(&["ci/templates/README.md", "docs/gencreds.md"])
    {
        let path = repo_root().join(doc);
        let text = std::fs::read_to_string(&path).unwrap();
        for link in text.split("](").skip(1) {
            let target = link.split([')', '#']).next().unwrap_or_default();
            if target.is_empty() || target.contains("://") {
                continue;
            }
            assert!(
                path.parent().unwrap().join(target).exists(),
                "{doc}: broken link {target}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} links");
}
