//! The reachability page in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `ci/deps.sh`) opens the shop's HTML graph,
//! takes a screenshot (kept under the target folder's `tmp/reachability/`)
//! and dumps the DOM after the page's script ran; the test checks there
//! that every service node and every trust-root edge is present, that
//! `#filter=HOST` hides every node that is not the service or a direct
//! neighbour, and that `#edge=e-N` shows the edge's rule and call sites.
//! A 1,000-service page is checked for size and its render time printed.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn artifacts() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reachability");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("BUSWARDEN_CHROMIUM") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("no chromium: run `source ci/deps.sh` (it installs Debian's chromium)");
}

/// Runs headless Chromium on `url` with `args`; returns stdout.
fn browse(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn gencreds(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gencreds"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `attr` on the element whose id is `id`, in a DOM dump.
fn attr_of(dom: &str, id: &str, attr: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let tag_end = start + dom[start..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!(" {attr}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')?;
    Some(tag[i..i + j].to_string())
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn the_shop_s_page_in_headless_chromium() {
    let dir = artifacts();
    let model: Value = serde_json::from_str(&gencreds(&[
        "graph",
        "fixtures/app",
        "core",
        "--format",
        "json",
    ]))
    .unwrap();
    let page = dir.join("shop.html");
    gencreds(&[
        "graph",
        "fixtures/app",
        "core",
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch, and the page's own policy forbids it.
    assert!(html.contains("content=\"default-src 'none';"));
    for needle in [" src=", " href=", "@import", "<link", "<iframe", "<img"] {
        assert!(!html.contains(needle), "the page loads something: {needle}");
    }
    assert_eq!(
        html.matches("url(").count(),
        html.matches("url(#arrow)").count()
    );
    let url = format!("file://{}", page.display());

    // The screenshot, kept as an artifact.
    let shot = dir.join("shop.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &[
            "--window-size=1600,420",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    assert_eq!(png_size(&shot), (1600, 420));
    let bytes = std::fs::metadata(&shot).unwrap().len();
    assert!(bytes > 30_000, "a near-empty screenshot ({bytes} bytes)");
    println!("screenshot: {} ({bytes} bytes)", shot.display());

    // Every service node and every trust-root edge, in the live DOM.
    let dom = browse(&["--dump-dom"], &url);
    let hosts: Vec<String> = model["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hostname"].as_str().unwrap().to_string())
        .collect();
    // The shop's six services and core's HTTP ingress.
    assert_eq!(hosts.len(), 7);
    for h in hosts.iter().map(String::as_str).chain(["internet"]) {
        let class =
            attr_of(&dom, &format!("n-{h}"), "class").unwrap_or_else(|| panic!("no node for {h}"));
        assert!(!class.contains("hidden"), "{h}: {class}");
    }
    let edges = model["edges"].as_array().unwrap();
    let trust: Vec<usize> = (0..edges.len())
        .filter(|&i| edges[i]["trust_root"] == true)
        .collect();
    // The gateway's two Mint calls and the ingress's exchange.
    assert_eq!(trust.len(), 3);
    for &i in &trust {
        let class =
            attr_of(&dom, &format!("e-{i}"), "class").unwrap_or_else(|| panic!("no edge e-{i}"));
        assert!(
            class.split(' ').any(|c| c == "trust-root"),
            "e-{i}: {class}"
        );
    }
    assert_eq!(dom.matches("trust-root\" data-from").count(), trust.len());

    // Filtering by a service hides every other node that is not a neighbour.
    let f = "notify.example";
    let mut keep: BTreeSet<String> = BTreeSet::from([f.to_string()]);
    let host_of = |id: &str| {
        model["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .map(|e| e["host"].as_str().unwrap().to_string())
    };
    for e in edges {
        let to = e["to"].as_str().and_then(host_of);
        if e["from"] == f
            && let Some(t) = &to
        {
            keep.insert(t.clone());
        }
        if to.as_deref() == Some(f) {
            keep.insert(e["from"].as_str().unwrap().to_string());
        }
    }
    let dom = browse(&["--dump-dom"], &format!("{url}#filter={f}"));
    let mut hidden = 0;
    for h in hosts.iter().map(String::as_str).chain(["internet"]) {
        let class = attr_of(&dom, &format!("n-{h}"), "class").unwrap();
        let is_hidden = class.split(' ').any(|c| c == "hidden");
        assert_eq!(is_hidden, !keep.contains(h), "{h}: {class} (keep {keep:?})");
        hidden += usize::from(is_hidden);
    }
    assert!(hidden >= 3, "the filter hides the others ({hidden} hidden)");
    for (i, edge) in edges.iter().enumerate() {
        if let Some(class) = attr_of(&dom, &format!("e-{i}"), "class") {
            let touches =
                edge["from"] == f || edge["to"].as_str().and_then(host_of).as_deref() == Some(f);
            assert_eq!(!class.contains("hidden"), touches, "e-{i}: {class}");
        }
    }
    let shot = dir.join("shop-filter-notify.png");
    browse(
        &[
            "--window-size=1600,420",
            &format!("--screenshot={}", shot.display()),
        ],
        &format!("{url}#filter={f}"),
    );
    assert_eq!(png_size(&shot), (1600, 420));

    // Clicking an edge (its fragment) shows its rule and call sites.
    let i = trust[0];
    let dom = browse(&["--dump-dom"], &format!("{url}#edge=e-{i}"));
    let rule = edges[i]["rule"].as_str().unwrap();
    assert!(
        dom.contains(&format!("<code id=\"panel-rule\">{rule}</code>")),
        "panel: rule"
    );
    let site = &edges[i]["sites"][0];
    let at = format!("{}:{}", site["file"].as_str().unwrap(), site["line"]);
    assert!(dom.contains(&at), "panel: call site {at}");
    assert!(
        attr_of(&dom, &format!("e-{i}"), "class")
            .unwrap()
            .contains("selected")
    );
}

/// A synthetic deploy of `n` services, each with five endpoints and calls
/// to the next three (the scan benchmark's shape at the model level).
fn big_model(n: usize) -> buswarden_rules::reach::Model {
    use buswarden_rules::derive::{Call, Dest, ServiceModel, derive};
    use buswarden_rules::reach::{EndpointIn, EndpointKind, ServiceIn, SiteRef, build};
    use buswarden_rules::{Hostname, Method, Route};
    let host = |i: usize| Hostname::parse(&format!("svc{i}.example")).unwrap();
    let routes = [
        "/items/{id}",
        "/list",
        "/put/{id}",
        ":444/files/{p...}",
        ":888/flush",
    ];
    let mut eps = vec![];
    let mut services = vec![];
    for i in 0..n {
        for (k, r) in routes.iter().enumerate() {
            eps.push(EndpointIn {
                host: host(i),
                method: Method::parse(if k == 2 { "PUT" } else { "GET" }).unwrap(),
                route: Route::parse(r).unwrap(),
                kind: EndpointKind::Function,
                name: format!("e{k}"),
                claims: (k == 2).then(|| "roles.admin".to_string()),
                at: None,
            });
        }
        let mut m = ServiceModel::new(host(i));
        let mut sites = vec![];
        for d in 1..=3 {
            let call = Call {
                dest: Dest::Host(host((i + d) % n)),
                method: Method::parse("GET").unwrap(),
                route: Route::parse("/items/{id}").unwrap(),
            };
            let rule = buswarden_rules::derive::call_rule(&host(i), &call);
            sites.push((
                rule.clone(),
                rule,
                SiteRef {
                    file: format!("svc{i}/service/src/lib.rs"),
                    line: 10 + d as u32,
                    column: 5,
                    what: "ApiClient::items".into(),
                },
            ));
            m.calls.push(call);
        }
        services.push(ServiceIn {
            hostname: host(i),
            package: Some(format!("svc{i}-service")),
            bundle: None,
            acl_path: None,
            rules: Some(derive(&m)),
            sites,
        });
    }
    build(&services, &eps, None)
}

#[test]
fn a_thousand_service_page_stays_small_and_its_render_time_is_printed() {
    let m = big_model(1000);
    let t = Instant::now();
    let html = gencreds::graph::html(&m);
    let built = t.elapsed();
    assert!(
        html.len() < 5 * 1024 * 1024,
        "{} bytes for 1,000 services",
        html.len()
    );
    let page = artifacts().join("thousand.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());
    let t = Instant::now();
    let dom = browse(&["--dump-dom"], &url);
    let render = t.elapsed();
    assert!(dom.contains("id=\"n-svc999.example\""));
    println!(
        "1,000-service page: {:.2} MB, built in {:.0?}, rendered by headless chromium (load + script + DOM dump) in {:.2?}",
        html.len() as f64 / 1048576.0,
        built,
        render
    );
}
