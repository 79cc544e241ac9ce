//! `buswarden.toml` policy, the 4 KiB budget, and how they surface: a
//! `policy-violation` at each call site behind an unlisted trust-root or
//! wildcard grant, `invalid-policy` at the place in the file, and
//! `budget-exceeded` naming the largest rules.

use gencreds::analysis::{Analysis, Options, analyze};
use gencreds::diagnostic::{Code, Diagnostic, Severity};
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// An API with a :666 endpoint and a caller that calls it statically, on a
/// computed host, and holds a `*` grant.
fn tree(policy: Option<&str>) -> tempfile::TempDir {
    tree_with(policy, true)
}

/// [`tree`], with or without the computed-host `:666` call (line 5).
fn tree_with(policy: Option<&str>, dynamic: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "api/Cargo.toml",
        "[package]\nname = \"vault-api\"\nversion = \"0.1.0\"\n",
    );
    write(
        r,
        "api/src/lib.rs",
        r#"#[buswarden::api(host = "vault.example")]
pub trait Vault {
    #[function(POST, ":666/unseal")]
    async fn unseal(&self) -> Result<(), buswarden::Error>;
}
"#,
    );
    write(
        r,
        "ops/Cargo.toml",
        "[package]\nname = \"ops\"\nversion = \"0.1.0\"\n[package.metadata.buswarden]\nhostname = \"ops.example\"\n[dependencies]\nvault-api = { path = \"../api\" }\n",
    );
    let computed = if dynamic {
        "    VaultClient::new(svc).for_host(&host).unseal().await.ok();"
    } else {
        "    let _ = host;"
    };
    write(
        r,
        "ops/src/main.rs",
        &r#"use vault_api::VaultClient;

async fn run(svc: &buswarden::Connector, host: String) {
    VaultClient::new(svc).unseal().await.ok();
COMPUTED
}

#[buswarden::grant(POST, "https://*:444/webhook")]
async fn hook(svc: &buswarden::Connector, url: String) {
    svc.post(&url, vec![]).await.ok();
}

fn main() {}
"#
        .replace("COMPUTED", computed),
    );
    if let Some(p) = policy {
        write(r, "buswarden.toml", p);
    }
    dir
}

fn codes(an: &Analysis) -> Vec<(Code, Severity, String, u32, u32)> {
    an.diags
        .iter()
        .map(|d| (d.code, d.severity, d.file.clone(), d.line, d.column))
        .collect()
}

#[test]
fn without_policy_static_trust_root_and_wildcards_warn_and_computed_trust_root_errs() {
    let t = tree(None);
    let an = analyze(t.path(), Options::default()).unwrap();
    assert_eq!(
        codes(&an),
        [
            (
                Code::TrustRootGrant,
                Severity::Warning,
                "ops/src/main.rs".into(),
                4,
                27
            ),
            (
                Code::DynamicHostTrustRoot,
                Severity::Error,
                "ops/src/main.rs".into(),
                5,
                43
            ),
            (
                Code::WildcardGrant,
                Severity::Warning,
                "ops/src/main.rs".into(),
                8,
                1
            ),
        ]
    );
    assert!(an.services[0].blocked);
}

/// A policy allowing every grant, computed `:666` hosts included.
const PERMISSIVE: &str = r#"version = 1
[caller."ops.example"]
trust-root = ["POST vault.example:666/unseal", "POST *:666/unseal"]
dynamic-trust-root = true
wildcards = ["POST *:444/webhook"]
"#;

#[test]
fn a_computed_host_on_trust_root_is_refused_even_where_the_policy_allows_it() {
    let t = tree(Some(PERMISSIVE));
    let an = analyze(t.path(), Options::default()).unwrap();
    assert_eq!(
        codes(&an),
        [(
            Code::DynamicHostTrustRoot,
            Severity::Error,
            "ops/src/main.rs".into(),
            5,
            43
        )]
    );
    assert!(an.services[0].blocked);
}

#[test]
fn a_policy_that_lists_every_grant_passes() {
    let t = tree_with(Some(PERMISSIVE), false);
    let an = analyze(t.path(), Options::default()).unwrap();
    assert_eq!(codes(&an), []);
    let s = &an.services[0];
    assert!(!s.blocked);
    let acl = gencreds::cli::acl_text(s);
    assert!(
        acl.contains("PUB {{plane}}.danger.666.ops_example.vault_example.*.POST.unseal\n"),
        "{acl}"
    );
    assert!(
        acl.contains("PUB {{plane}}.safe.444.ops_example.*.*.POST.webhook\n"),
        "{acl}"
    );
}

#[test]
fn unlisted_grants_are_policy_violations_at_their_call_sites() {
    let t = tree(Some(
        "version = 1\n[caller.\"ops.example\"]\ntrust-root = [\"POST vault.example:666/unseal\"]\n",
    ));
    let an = analyze(t.path(), Options::default()).unwrap();
    let v: Vec<&Diagnostic> = an
        .diags
        .iter()
        .filter(|d| d.code == Code::PolicyViolation)
        .collect();
    let at: Vec<(u32, u32)> = v.iter().map(|d| (d.line, d.column)).collect();
    // The computed-host :666 call is refused on its own (it grants
    // nothing); the static one is listed; the `*` grant is not.
    assert_eq!(at, [(8, 1)], "{:#?}", an.diags);
    assert!(
        an.diags
            .iter()
            .any(|d| d.code == Code::DynamicHostTrustRoot && (d.line, d.column) == (5, 43))
    );
    assert!(v.iter().any(|d| {
        d.message
            .contains("wildcard grant `PUB {{plane}}.safe.444.ops_example.*.*.POST.webhook`")
    }));
    assert_eq!(an.diags.len(), 2, "no warnings besides: {:#?}", an.diags);
    assert!(an.services[0].blocked);

    let mut out = vec![];
    let mut err = vec![];
    let root = t.path().to_string_lossy().into_owned();
    assert_eq!(
        gencreds::cli::run(["gencreds", "check", &root], &mut out, &mut err),
        1
    );
    assert!(
        String::from_utf8_lossy(&err).contains("error[policy-violation] ops/src/main.rs:8:1: ")
    );
}

#[test]
fn an_invalid_policy_is_reported_where_it_is_wrong_and_fails_closed() {
    let t = tree(Some(
        "version = 1\n[caller.\"ops.example\"]\ntrust-rot = []\n",
    ));
    let an = analyze(t.path(), Options::default()).unwrap();
    let bad: Vec<&Diagnostic> = an
        .diags
        .iter()
        .filter(|d| d.code == Code::InvalidPolicy)
        .collect();
    assert_eq!(bad.len(), 1, "{:#?}", an.diags);
    assert_eq!(
        (bad[0].file.as_str(), bad[0].line, bad[0].column),
        ("buswarden.toml", 3, 1)
    );
    assert!(an.diags.iter().any(|d| d.code == Code::PolicyViolation));
    assert!(an.services[0].blocked);
}

#[test]
fn over_budget_names_the_largest_rules() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "big/Cargo.toml",
        "[package]\nname = \"big\"\nversion = \"0.1.0\"\n[package.metadata.buswarden]\nhostname = \"big.example\"\n",
    );
    let mut src = String::from("async fn run(svc: &buswarden::Connector) {\n");
    for i in 0..120 {
        src.push_str(&format!(
            "    svc.get(\"https://host{i}.example/a/fairly/long/path/number/{i}\").await.ok();\n"
        ));
    }
    src.push_str("}\nfn main() {}\n");
    write(r, "big/src/main.rs", &src);
    let an = analyze(r, Options::default()).unwrap();
    let d: Vec<&Diagnostic> = an
        .diags
        .iter()
        .filter(|d| d.code == Code::BudgetExceeded)
        .collect();
    assert_eq!(d.len(), 1, "{:#?}", an.diags);
    assert_eq!(d[0].file, "big/nats.acl");
    assert!(
        d[0].message.contains("max_control_line of 4096"),
        "{}",
        d[0].message
    );
    assert!(an.services[0].blocked);
}

/// A tree with an ingress (`#[buswarden::edge_proxy]`) and an API serving
/// several ports, under `policy`.
fn edge_tree(policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "api/Cargo.toml",
        "[package]\nname = \"shop-api\"\nversion = \"0.1.0\"\n",
    );
    write(
        r,
        "api/src/lib.rs",
        r#"#[buswarden::api(host = "shop.example")]
pub trait Shop {
    #[function(GET, "/items")]
    async fn items(&self) -> Result<(), buswarden::Error>;
    #[function(GET, ":444/internal")]
    async fn internal(&self) -> Result<(), buswarden::Error>;
    #[function(GET, ":8080/alt")]
    async fn alt(&self) -> Result<(), buswarden::Error>;
    #[function(POST, ":666/root")]
    async fn root(&self) -> Result<(), buswarden::Error>;
    #[function(POST, ":888/control")]
    async fn control(&self) -> Result<(), buswarden::Error>;
    #[event(POST, ":417/on-change")]
    async fn on_change(&self) -> Result<(), buswarden::Error>;
}
"#,
    );
    write(
        r,
        "ingress/Cargo.toml",
        "[package]\nname = \"ingress\"\nversion = \"0.1.0\"\n[package.metadata.buswarden]\nhostname = \"http.ingress.core\"\n",
    );
    write(
        r,
        "ingress/src/main.rs",
        r#"#[buswarden::edge_proxy]
async fn forward(svc: &buswarden::Connector, method: String, url: String) {
    svc.request(method.as_str(), &url).await.ok();
}

fn main() {}
"#,
    );
    write(r, "buswarden.toml", policy);
    dir
}

fn ingress_pubs(an: &Analysis) -> Vec<String> {
    let s = an
        .services
        .iter()
        .find(|s| s.model.hostname.as_str() == "http.ingress.core")
        .expect("the ingress is a service");
    assert!(!s.blocked, "{:#?}", an.diags);
    gencreds::cli::acl_text(s)
        .lines()
        .filter(|l| l.starts_with("PUB ") && l.contains(".safe."))
        .map(str::to_string)
        .collect()
}

fn edge_rule(port: u16) -> String {
    format!("PUB {{{{plane}}}}.safe.{port}.http_ingress_core.*.*.*.>")
}

/// The edge proxy's grant is the `[edge]` table: outside `local`, 443 and
/// one rule per listed port (ranges expanded); in `local`, one rule per
/// port an endpoint of the tree serves, minus 666 and 888 (events are not
/// served); without `[edge]`, 443 only. No policy violation: the `[edge]`
/// table itself authorizes these wildcard-host rules.
#[test]
fn the_edge_proxy_is_granted_exactly_the_ports_the_edge_opens() {
    for (policy, ports) in [
        (
            "version = 1\n[edge]\nmode = \"prod\"\nallowed-internal-ports = [8080, \"9000-9002\"]\n",
            vec![443u16, 8080, 9000, 9001, 9002],
        ),
        ("version = 1\n[edge]\nmode = \"lab\"\n", vec![443]),
        (
            "version = 1\n[edge]\nmode = \"local\"\n",
            vec![443, 444, 8080],
        ),
        ("version = 1\n", vec![443]),
    ] {
        let dir = edge_tree(policy);
        let an = analyze(dir.path(), Options::default()).unwrap();
        assert!(
            an.diags.iter().all(|d| !d.is_error()),
            "{policy}: {:#?}",
            an.diags
        );
        let want: Vec<String> = ports.iter().map(|p| edge_rule(*p)).collect();
        let mut got = ingress_pubs(&an);
        got.sort_by_key(|l| l.split('.').nth(2).unwrap().parse::<u16>().unwrap());
        assert_eq!(got, want, "{policy}");
        assert!(got.iter().all(|l| !l.contains(".safe.*.")));
    }
}

/// A policy whose `[edge]` opens 666 (or 888) is refused where it is
/// written, and every service fails closed; an `[edge]` naming another
/// ingress refuses the edge proxy.
#[test]
fn an_edge_that_opens_666_or_names_another_ingress_is_refused() {
    for bad in ["666", "888", "\"600-700\"", "444"] {
        let dir = edge_tree(&format!(
            "version = 1\n[edge]\nallowed-internal-ports = [{bad}]\n"
        ));
        let an = analyze(dir.path(), Options::default()).unwrap();
        assert!(
            an.diags.iter().any(|d| d.code == Code::InvalidPolicy
                && d.file == "buswarden.toml"
                && d.line == 3),
            "{bad}: {:#?}",
            an.diags
        );
    }
    let dir = edge_tree("version = 1\n[edge]\ningress = \"gate.example\"\n");
    let an = analyze(dir.path(), Options::default()).unwrap();
    assert!(
        an.diags.iter().any(|d| d.code == Code::EdgeProxyHost
            && d.file == "ingress/src/main.rs"
            && d.line == 1),
        "{:#?}",
        an.diags
    );
}

/// One source of truth: once the ingress's `nats.acl` is committed, a change
/// to the `[edge]` table alone (a port opened or closed) makes `check` fail
/// until the allow-list is derived again.
#[test]
fn check_fails_when_the_edge_table_and_the_committed_allow_list_disagree() {
    let dir = edge_tree("version = 1\n[edge]\nallowed-internal-ports = [8080]\n");
    let root = dir.path().to_string_lossy().into_owned();
    let run = |cmd: &str| {
        let (mut out, mut err) = (vec![], vec![]);
        let code = gencreds::cli::run(["gencreds", cmd, &root], &mut out, &mut err);
        (
            code,
            format!(
                "{}{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            ),
        )
    };
    assert_eq!(run("scan").0, 0);
    assert_eq!(run("check").0, 0);
    for edge in [
        "allowed-internal-ports = [8080, 8081]",
        "allowed-internal-ports = []",
        "mode = \"local\"",
    ] {
        write(
            dir.path(),
            "buswarden.toml",
            &format!("version = 1\n[edge]\n{edge}\n"),
        );
        let (code, text) = run("check");
        assert_ne!(code, 0, "{edge}: {text}");
        assert!(text.contains("ingress/nats.acl"), "{edge}: {text}");
    }
}

/// `#[buswarden::edge_proxy]` in a library no service reaches grants
/// nothing and is refused where it is (`call-outside-service`), not left to
/// the broker to deny at run time.
#[test]
fn an_edge_proxy_no_service_reaches_is_refused() {
    let dir = edge_tree("version = 1\n");
    write(
        dir.path(),
        "lib/Cargo.toml",
        "[package]\nname = \"stray\"\nversion = \"0.1.0\"\n",
    );
    write(
        dir.path(),
        "lib/src/lib.rs",
        "#[buswarden::edge_proxy]\npub async fn forward(svc: &buswarden::Connector, url: String) {\n    svc.get(&url).await.ok();\n}\n",
    );
    let an = analyze(dir.path(), Options::default()).unwrap();
    assert!(
        an.diags.iter().any(|d| d.code == Code::CallOutsideService
            && d.file == "lib/src/lib.rs"
            && d.line == 1),
        "{:#?}",
        an.diags
    );
}
