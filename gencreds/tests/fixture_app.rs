//! The fixture application (`fixtures/app`, built by the runtime work): its
//! committed `nats.acl` files must be exactly what its code says, with no
//! error standing. This is `gencreds check fixtures/app` in CI.
//!
//! Until the application lands in this tree the test says so and checks
//! nothing else; once it is there, a missing or stale `nats.acl` fails it
//! (run `gencreds scan fixtures/app`, review, commit).

use std::path::Path;

#[test]
fn fixture_app_nats_acl_files_are_true_to_code() {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/app");
    if !app.join("README.md").exists() {
        eprintln!("fixtures/app is not in this tree yet; nothing to check");
        return;
    }
    let root = app.to_string_lossy().into_owned();
    let mut out = vec![];
    let mut err = vec![];
    let code = gencreds::cli::run(["gencreds", "check", &root], &mut out, &mut err);
    assert_eq!(
        code,
        0,
        "gencreds check fixtures/app failed:\n{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
}

/// The framework's own services (`core/`: access.token.core,
/// bearer.token.core, http.ingress.core) are checked like any user service.
#[test]
fn core_services_nats_acl_files_are_true_to_code() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core");
    let root = core.to_string_lossy().into_owned();
    let mut out = vec![];
    let mut err = vec![];
    let code = gencreds::cli::run(["gencreds", "check", &root], &mut out, &mut err);
    assert_eq!(
        code,
        0,
        "gencreds check core failed:\n{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    assert!(text.contains("3 service(s)"), "{text}");
}

/// The ingress's committed allow-list is the port firewall of core's
/// `[edge]` table: one PUB line per open port (443 and 8080), no `safe.*`
/// port wildcard at all, `:888` only for bearer.token.core's JWKS, and
/// `danger` only for access.token.core's Mint.
#[test]
fn the_ingress_allow_list_is_the_edge_firewall() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core");
    let acl = std::fs::read_to_string(core.join("ingress/nats.acl")).unwrap();
    let pubs: Vec<&str> = acl.lines().filter(|l| l.starts_with("PUB ")).collect();
    assert!(
        pubs.contains(&"PUB {{plane}}.safe.443.http_ingress_core.*.*.*.>"),
        "{acl}"
    );
    assert!(
        pubs.contains(&"PUB {{plane}}.safe.8080.http_ingress_core.*.*.*.>"),
        "{acl}"
    );
    // Not even the implicit SUB on its own endpoints: it serves none.
    assert_eq!(acl.matches(".safe.*.").count(), 0, "{acl}");
    let control: Vec<&&str> = pubs.iter().filter(|l| l.contains(".888.")).collect();
    assert_eq!(
        control,
        [&"PUB {{plane}}.safe.888.http_ingress_core.bearer_token_core.*.POST.jwks"]
    );
    let danger: Vec<&&str> = pubs.iter().filter(|l| l.contains(".danger.")).collect();
    assert_eq!(
        danger,
        [&"PUB {{plane}}.danger.666.http_ingress_core.access_token_core.*.POST.mint"]
    );
    // The same table is what the ingress enforces at request time.
    let policy = std::fs::read_to_string(core.join("buswarden.toml")).unwrap();
    let edge = buswarden_rules::policy::Policy::parse(&policy)
        .unwrap()
        .edge
        .unwrap();
    for port in [443u16, 8080] {
        assert!(edge.admits(port));
    }
    assert!(!edge.admits(444) && !edge.admits(666) && !edge.admits(888));
}
