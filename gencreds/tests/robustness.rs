//! Hostile and broken inputs: each yields a diagnostic at an exact place,
//! never a panic or a stack overflow, and the rest of the tree is still
//! analysed. Large inputs are generated here, never committed.

use gencreds::analysis::{Analysis, Options, analyze};
use gencreds::diagnostic::{Code, Diagnostic};
use std::path::Path;

const MANIFEST: &str = r#"[package]
name = "svc"
version = "0.1.0"
edition = "2024"

[package.metadata.buswarden]
hostname = "svc.example"
"#;

/// A service whose main.rs declares `mod bad;` and makes one good call.
fn tree(bad: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("svc/src")).unwrap();
    std::fs::write(root.join("svc/Cargo.toml"), MANIFEST).unwrap();
    std::fs::write(
        root.join("svc/src/main.rs"),
        "mod bad;\nasync fn run(svc: &buswarden::Connector) {\n    svc.get(\"https://good.example/still\").await.ok();\n}\nfn main() {}\n",
    )
    .unwrap();
    std::fs::write(root.join("svc/src/bad.rs"), bad).unwrap();
    dir
}

fn run(root: &Path) -> Analysis {
    analyze(root, Options::default()).unwrap()
}

fn only(an: &Analysis, code: Code) -> &Diagnostic {
    let found: Vec<&Diagnostic> = an.diags.iter().filter(|d| d.code == code).collect();
    assert_eq!(found.len(), 1, "{:#?}", an.diags);
    found[0]
}

fn still_analysed(an: &Analysis) {
    let s = &an.services[0];
    assert!(
        s.rules
            .iter()
            .any(|r| r.subject.ends_with("good_example.*.GET.still")),
        "{:?}",
        s.rules
    );
    assert!(
        s.blocked,
        "an error in its own files must block the service"
    );
}

#[test]
fn non_utf8_file() {
    let mut bad = b"fn ok() {}\n// caf".to_vec();
    bad.extend([0xff, 0xfe, b'\n']);
    let t = tree(&bad);
    let an = run(t.path());
    let d = only(&an, Code::UnreadableFile);
    assert_eq!(
        (d.file.as_str(), d.line, d.column),
        ("svc/src/bad.rs", 2, 7)
    );
    still_analysed(&an);
}

#[test]
fn syntax_error() {
    let t = tree(b"fn ok() {}\nfn broken( -> {}\n");
    let an = run(t.path());
    let d = only(&an, Code::ParseError);
    assert_eq!((d.file.as_str(), d.line), ("svc/src/bad.rs", 2));
    still_analysed(&an);
}

#[test]
fn fifty_megabyte_file() {
    let line = "pub fn generated_function_with_a_long_name() -> u64 { 1 + 2 + 3 }\n";
    let big = line.repeat(50 * 1024 * 1024 / line.len() + 1);
    let t = tree(big.as_bytes());
    let an = run(t.path());
    let d = only(&an, Code::FileTooLarge);
    assert_eq!(
        (d.file.as_str(), d.line, d.column),
        ("svc/src/bad.rs", 0, 0)
    );
    assert!(
        d.message.contains("larger than the 8388608 bytes"),
        "{}",
        d.message
    );
    still_analysed(&an);
}

#[test]
fn ten_thousand_deep_brackets() {
    let deep = format!(
        "fn f() -> u8 {{\n    {}1{}\n}}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let t = tree(deep.as_bytes());
    let an = run(t.path());
    let d = only(&an, Code::NestingTooDeep);
    // The fn body's `{` is depth 1, so the 256th `(` (the first is at
    // column 5) reaches depth 257, one over the limit.
    assert_eq!(
        (d.file.as_str(), d.line, d.column),
        ("svc/src/bad.rs", 2, 5 + 255)
    );
    still_analysed(&an);
}

#[test]
fn ten_thousand_deep_unbracketed_expressions() {
    // No brackets: the guard lets it through to syn (on a large stack) and
    // lowering stops at its own depth limit with a finding.
    let unary = format!("fn f() -> bool {{\n    {}true\n}}\n", "!".repeat(10_000));
    let t = tree(unary.as_bytes());
    let an = run(t.path());
    let d = only(&an, Code::NestingTooDeep);
    assert_eq!((d.file.as_str(), d.line), ("svc/src/bad.rs", 2));
    still_analysed(&an);

    let chain = format!(
        "fn f(x: u8) -> u8 {{\n    x{}\n}}\n",
        ".max(1)".repeat(10_000)
    );
    let t = tree(chain.as_bytes());
    let an = run(t.path());
    assert_eq!(only(&an, Code::NestingTooDeep).line, 2);
    still_analysed(&an);
}

#[cfg(unix)]
#[test]
fn symlink_loop() {
    let t = tree(b"fn ok() {}\n");
    std::os::unix::fs::symlink("..", t.path().join("svc/src/loop")).unwrap();
    let an = run(t.path());
    let d = only(&an, Code::SymlinkLoop);
    assert_eq!(d.file, "svc/src/loop");
    let s = &an.services[0];
    assert!(!s.blocked, "a skipped symlink loop is a warning");
}

#[test]
fn crate_without_manifest_is_reported_and_the_rest_analysed() {
    let t = tree(b"fn ok() {}\n");
    std::fs::create_dir_all(t.path().join("loose/src")).unwrap();
    std::fs::write(
        t.path().join("loose/src/lib.rs"),
        "fn f(svc: &buswarden::Connector) { svc.get(\"https://loose.example/x\"); }\n",
    )
    .unwrap();
    let an = run(t.path());
    assert_eq!(only(&an, Code::NoManifest).file, "loose/src");
    assert_eq!(an.services.len(), 1);
    assert!(!an.services[0].blocked);
}

#[test]
fn macro_heavy_code() {
    let mut src = String::from("use calc_api::CalculatorClient;\n");
    for i in 0..2_000 {
        src.push_str(&format!(
            "fn m{i}() {{ html! {{ <div class=\"x\">{{ format!(\"{{}}\", {i}) }}</div> }}; quote::quote! {{ #(#xs),* }}; sql!(SELECT * FROM t WHERE a = {i}); }}\n"
        ));
    }
    src.push_str("fn client_in_dsl() { html! { <p>{ CalculatorClient::new(svc) }</p> } }\n");
    let t = tree(src.as_bytes());
    let an = run(t.path());
    // The DSL mentions a name that is not a client of this tree (no API
    // crate here): nothing to report, and nothing panics.
    assert!(
        an.diags.iter().all(|d| d.code != Code::ParseError),
        "{:#?}",
        an.diags
    );
    let s = &an.services[0];
    assert!(!s.blocked);
}

#[test]
fn missing_root_is_a_tool_failure() {
    let mut out = vec![];
    let mut err = vec![];
    let code = gencreds::cli::run(
        ["gencreds", "scan", "/nonexistent/buswarden/root"],
        &mut out,
        &mut err,
    );
    assert_eq!(code, 2);
    assert!(String::from_utf8_lossy(&err).contains("not a directory"));
}

#[test]
fn file_cache_reuses_unchanged_files_and_reparses_changed_ones() {
    let t = tree(b"async fn more(svc: &buswarden::Connector) { svc.get(\"https://v1.example/x\").await.ok(); }\n");
    let cache = t.path().join("target/gencreds.cache");
    let cold = gencreds::analysis::analyze_cached(t.path(), Options::default(), &cache).unwrap();
    assert!(cache.is_file());
    let warm = gencreds::analysis::analyze_cached(t.path(), Options::default(), &cache).unwrap();
    let plain = run(t.path());
    let texts =
        |a: &Analysis| -> Vec<String> { a.services.iter().map(gencreds::cli::acl_text).collect() };
    assert_eq!(texts(&cold), texts(&plain));
    assert_eq!(texts(&warm), texts(&plain));
    assert_eq!(warm.diags, plain.diags);
    // A changed file is parsed again: its new call shows.
    std::fs::write(
        t.path().join("svc/src/bad.rs"),
        "async fn more(svc: &buswarden::Connector) { svc.get(\"https://v2.example/x\").await.ok(); }\n",
    )
    .unwrap();
    let changed = gencreds::analysis::analyze_cached(t.path(), Options::default(), &cache).unwrap();
    let acl = texts(&changed).join("");
    assert!(
        acl.contains("v2_example") && !acl.contains("v1_example"),
        "{acl}"
    );
    // A corrupt cache is an empty cache.
    std::fs::write(&cache, b"not a cache").unwrap();
    let again = gencreds::analysis::analyze_cached(t.path(), Options::default(), &cache).unwrap();
    assert_eq!(texts(&again), texts(&changed));
}

/// Runs `gencreds check ROOT --format F` and returns (exit code, stdout + stderr).
fn check_output(root: &Path, format: &str) -> (i32, String) {
    let mut out = vec![];
    let mut err = vec![];
    let code = gencreds::cli::run(
        [
            "gencreds",
            "check",
            root.to_str().unwrap(),
            "--format",
            format,
        ],
        &mut out,
        &mut err,
    );
    out.extend(err);
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// A secret in a file outside the scanned tree.
const SECRET: &str = "CI_DEPLOY_TOKEN=s3cr3t-never-printed";

fn outside_secret() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("environ"),
        format!("{SECRET}\nfn broken( -> {{\n"),
    )
    .unwrap();
    d
}

/// Issue 15 item 9: a `mod` whose file is a symbolic link out of the tree
/// (here to a secret file, and to /proc/self/environ) is refused at the
/// `mod` line and never read: neither the human nor the JSON output echoes
/// a byte of it.
#[test]
fn mod_through_a_symlink_out_of_the_tree_is_refused_and_never_echoed() {
    let secret = outside_secret();
    for target in [
        secret.path().join("environ"),
        Path::new("/proc/self/environ").to_path_buf(),
    ] {
        if !target.exists() {
            continue;
        }
        let t = tree(b"fn ok() {}\n");
        std::fs::remove_file(t.path().join("svc/src/bad.rs")).unwrap();
        std::os::unix::fs::symlink(&target, t.path().join("svc/src/bad.rs")).unwrap();
        let an = run(t.path());
        // The walk reports the link (and skips it); the `mod` is refused at
        // its line.
        let found: Vec<&Diagnostic> = an
            .diags
            .iter()
            .filter(|d| d.code == Code::OutsideRoot)
            .collect();
        let at: Vec<(&str, u32, u32)> = found
            .iter()
            .map(|d| (d.file.as_str(), d.line, d.column))
            .collect();
        assert_eq!(
            at,
            vec![("svc/src/bad.rs", 0, 0), ("svc/src/main.rs", 1, 5)],
            "{:#?}",
            an.diags
        );
        assert_eq!(found[0].source_line, None);
        assert_eq!(found[1].source_line.as_deref(), Some("mod bad;"));
        still_analysed(&an);
        for format in ["human", "json"] {
            let (code, text) = check_output(t.path(), format);
            assert_eq!(code, 1, "{text}");
            assert!(!text.contains(SECRET), "{format}: {text}");
            assert!(!text.contains("PATH="), "{format}: {text}");
            assert!(text.contains("outside-root"), "{format}: {text}");
        }
    }
}

/// `#[path]` to an absolute file, a `[lib] path` out of the tree and a
/// folder link out of the tree: each refused, none read.
#[test]
fn path_attr_manifest_target_and_folder_links_out_of_the_tree_are_refused() {
    let secret = outside_secret();
    let env = secret.path().join("environ");
    let t = tree(b"fn ok() {}\n");
    std::fs::write(
        t.path().join("svc/src/bad.rs"),
        format!("#[path = {:?}]\nmod env;\n", env.to_str().unwrap()),
    )
    .unwrap();
    std::fs::create_dir_all(t.path().join("lib/src")).unwrap();
    std::fs::write(
        t.path().join("lib/Cargo.toml"),
        format!(
            "[package]\nname = \"lib\"\nversion = \"0.1.0\"\n\n[lib]\npath = {:?}\n",
            env.to_str().unwrap()
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(secret.path(), t.path().join("svc/src/linked")).unwrap();
    let an = run(t.path());
    let found: Vec<(&str, u32)> = an
        .diags
        .iter()
        .filter(|d| d.code == Code::OutsideRoot)
        .map(|d| (d.file.as_str(), d.line))
        .collect();
    assert_eq!(
        found,
        vec![
            ("lib/Cargo.toml", 0),
            ("svc/src/bad.rs", 2),
            ("svc/src/linked", 0)
        ],
        "{:#?}",
        an.diags
    );
    for format in ["human", "json"] {
        let (_, text) = check_output(t.path(), format);
        assert!(!text.contains(SECRET), "{format}: {text}");
    }
}

/// `include!` of a file outside the project (absolute, or through a link)
/// is not read: a finding at the macro, and nothing of the file printed.
#[test]
fn include_out_of_the_project_is_not_read() {
    let secret = outside_secret();
    let t = tree(b"fn ok() {}\n");
    std::fs::write(t.path().join("svc/Cargo.toml"), MANIFEST).unwrap();
    std::os::unix::fs::symlink(
        secret.path().join("environ"),
        t.path().join("svc/src/env.in"),
    )
    .unwrap();
    std::fs::write(
        t.path().join("svc/src/bad.rs"),
        format!(
            "fn a() {{ include!({:?}); }}\nfn b() {{ include!(\"env.in\"); }}\n",
            secret.path().join("environ").to_str().unwrap()
        ),
    )
    .unwrap();
    let an = run(t.path());
    let found: Vec<(u32, &str)> = an
        .diags
        .iter()
        .filter(|d| d.file == "svc/src/bad.rs")
        .map(|d| (d.line, d.message.as_str()))
        .collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found
            .iter()
            .all(|(_, m)| m.contains("leads outside the project")),
        "{found:#?}"
    );
    for format in ["human", "json"] {
        let (_, text) = check_output(t.path(), format);
        assert!(!text.contains(SECRET), "{format}: {text}");
    }
}

/// Modules that glob-import each other (every one from every other) make
/// name resolution's import graph dense: resolving names through it stays
/// bounded (no exponential walk), a name reached on two import paths
/// still resolves, and the rest is analysed.
#[test]
fn dense_glob_import_graph_resolves_in_bounded_time() {
    let n = 12;
    let mut bad = String::new();
    for i in 0..n {
        let _ = std::fmt::Write::write_fmt(&mut bad, format_args!("pub mod m{i} {{\n"));
        for j in 0..n {
            if i != j {
                let _ = std::fmt::Write::write_fmt(
                    &mut bad,
                    format_args!("    pub use super::m{j}::*;\n"),
                );
            }
        }
        bad.push_str("}\n");
    }
    bad.push_str("pub use m0::*;\npub async fn deep(svc: &buswarden::Connector) {\n    let _ = NotDefinedAnywhere::new(svc);\n    svc.get(\"https://deep.example/x\").await.ok();\n}\n");
    let dir = tree(bad.as_bytes());
    let an = run(dir.path());
    assert!(
        an.services[0]
            .rules
            .iter()
            .any(|r| r.subject.ends_with("good_example.*.GET.still"))
    );
}
