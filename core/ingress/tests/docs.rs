//! The configuration examples of docs/ingress.md parse as documented: the
//! `buswarden.toml` whose `[edge]` is the firewall, and the ingress's own
//! file pointing at it.

use std::path::Path;

/// The fenced ```toml block after `<!-- example: NAME -->`.
fn example(doc: &str, name: &str) -> String {
    let marker = format!("<!-- example: {name} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("{marker} is in the doc"));
    let rest = &doc[at..];
    let start = rest.find("```toml\n").unwrap() + "```toml\n".len();
    let end = rest[start..].find("```").unwrap();
    rest[start..start + end].to_string()
}

#[test]
fn the_documented_examples_parse() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ingress.md"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("buswarden.toml"),
        example(&doc, "buswarden.toml"),
    )
    .unwrap();
    let path = dir.path().join("ingress.toml");
    std::fs::write(&path, example(&doc, "ingress.toml")).unwrap();
    let c = ingress_core::Config::load(&path).unwrap();
    assert_eq!(c.hostname, "http.ingress.core");
    assert_eq!(c.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(c.metrics_listen.unwrap().to_string(), "127.0.0.1:9090");
    assert_eq!(c.edge.mode, buswarden_rules::edge::Mode::Prod);
    for (port, open) in [
        (443, true),
        (8080, true),
        (9001, true),
        (9003, false),
        (444, false),
        (666, false),
        (888, false),
    ] {
        assert_eq!(c.edge.admits(port), open, "{port}");
    }
    assert_eq!(c.max_body_bytes, 1 << 20);
    assert_eq!(c.time_budget, std::time::Duration::from_secs(20));
    assert_eq!(c.trusted_proxies.len(), 1);
    assert_eq!(c.cors_origins, ["https://shop.example.com"]);
    assert!(c.tls.is_some());
    let rate = c.rate_limit.unwrap();
    assert_eq!((rate.per_second, rate.burst), (20.0, 40));
    // Policy-level refusals name the policy file and line.
    std::fs::write(
        dir.path().join("buswarden.toml"),
        example(&doc, "buswarden.toml").replace("[8080,", "[888, 8080,"),
    )
    .unwrap();
    let err = ingress_core::Config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("buswarden.toml: 6:") && err.contains("888"),
        "{err}"
    );
    // A hostname that is not the [edge] ingress is refused.
    std::fs::write(
        dir.path().join("buswarden.toml"),
        example(&doc, "buswarden.toml"),
    )
    .unwrap();
    let renamed = example(&doc, "ingress.toml").replace(
        "hostname = \"http.ingress.core\"",
        "hostname = \"gate.example\"",
    );
    std::fs::write(&path, renamed).unwrap();
    let err = ingress_core::Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("not the [edge] ingress"), "{err}");
}
