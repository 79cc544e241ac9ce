//! Issue 15, High 1, in the analyzer: an endpoint served under another host
//! (`//orders.example/…`) would subscribe to that host's requests. The rule
//! validator refuses such a SUB for every signer; the analyzer reports it at
//! the endpoint's declaration (`foreign-endpoint-host`), so `check` and
//! `sign` fail at a file, line and column.

use gencreds::analysis::{Options, analyze};
use gencreds::diagnostic::{Code, Severity};
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn an_endpoint_under_another_host_is_an_error_at_its_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "api/Cargo.toml",
        "[package]\nname = \"catalog-api\"\nversion = \"0.1.0\"\n",
    );
    write(
        r,
        "api/src/lib.rs",
        r#"#[buswarden::api(host = "catalog.example")]
pub trait Catalog {
    #[function(GET, "/items")]
    async fn items(&self) -> Result<(), buswarden::Error>;
    #[function(POST, "//orders.example/orders")]
    async fn orders(&self) -> Result<(), buswarden::Error>;
}
"#,
    );
    write(
        r,
        "svc/Cargo.toml",
        "[package]\nname = \"catalog\"\nversion = \"0.1.0\"\n[dependencies]\ncatalog-api = { path = \"../api\" }\n",
    );
    write(
        r,
        "svc/src/lib.rs",
        r#"pub struct Service;

impl catalog_api::Catalog for Service {
    async fn items(&self) -> Result<(), buswarden::Error> {
        Ok(())
    }
    async fn orders(&self) -> Result<(), buswarden::Error> {
        Ok(())
    }
}
"#,
    );
    let an = analyze(r, Options::default()).unwrap();
    let found: Vec<_> = an
        .diags
        .iter()
        .filter(|d| d.code == Code::ForeignEndpointHost)
        .collect();
    assert_eq!(found.len(), 1, "{:#?}", an.diags);
    let d = found[0];
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.file, "api/src/lib.rs");
    assert!(d.line >= 5 && d.column > 0, "{d:?}");
    assert!(
        d.message.contains("//orders.example:443/orders"),
        "{}",
        d.message
    );
    // Reported once, at the endpoint, not again as `invalid-rules`.
    assert!(
        !an.diags.iter().any(|d| d.code == Code::InvalidRules),
        "{:#?}",
        an.diags
    );
}
