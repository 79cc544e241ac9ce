//! `busop why` on real violation lines: a nats-server 2.15.1 in operator
//! mode (`busop init`'s config, with debug and trace on, as `-DV`), the
//! shop signed by `gencreds sign`, the notify service's real credentials
//! publishing outside its allow-list; the server's own log lines are fed to
//! `busop why`, which names the service and deploy and says `no call site
//! in code`, and, once the code calls an endpoint the committed nats.acl
//! does not grant, names the call site and says the nats.acl is stale.
//! Malformed lines are a clear error (exit 2).

mod common;

use buswarden_testkit::NatsServer;
use common::*;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Publishes `subject` with `creds` and returns the server's violation
/// line for it.
fn refused_line(server: &NatsServer, creds: &Path, subject: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .unwrap()
            .connect(server.url())
            .await
            .expect("notify connects with its creds");
        client
            .publish(subject.to_string(), "x".into())
            .await
            .unwrap();
        let _ = client.flush().await;
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(l) = server
            .log()
            .lines()
            .find(|l| l.contains("Publish Violation") && l.contains(subject))
        {
            return l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no violation logged for {subject}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn why_names_the_service_deploy_and_call_site_of_real_violations() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    copy_shop(&repo);
    let setup = tmp.path().join("setup");
    let init: serde_json::Value = serde_json::from_str(&ok(tool(
        &repo,
        "busop",
        &[
            "init",
            setup.to_str().unwrap(),
            "--listen",
            "127.0.0.1:-1",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    let conf = std::fs::read_to_string(setup.join("nats-server.conf")).unwrap();
    let server = NatsServer::start(&format!("{conf}\ndebug: true\ntrace: true\n")).unwrap();
    let sk = init["account_signing_key"].as_str().unwrap();
    let key = setup.join(format!("keys/A/{}/{sk}.nk", &sk[1..3]));
    let creds = tmp.path().join("creds");
    ok(tool(
        &repo,
        "gencreds",
        &[
            "sign",
            "fixtures/app",
            "--signing-key",
            key.to_str().unwrap(),
            "--account",
            init["account_key"].as_str().unwrap(),
            "--out",
            creds.to_str().unwrap(),
            "--deploy",
            "d7",
        ],
    ));
    let notify = creds.join("notify.example_nats.creds");
    assert!(notify.is_file());
    let model = tmp.path().join("model.json");
    let graph = |out: &Path| {
        ok(tool(
            &repo,
            "gencreds",
            &[
                "graph",
                "fixtures/app",
                "core",
                "--format",
                "json",
                "--out",
                out.to_str().unwrap(),
            ],
        ))
    };
    graph(&model);

    // 1. notify mints tokens: no code does that.
    let subject = "microbus.danger.666.notify_example.access_token_core.0.POST.mint";
    let line = refused_line(&server, &notify, subject);
    println!("captured: {line}");
    let why = |line: &str, model: &Path, format: &str| {
        tool(
            &repo,
            "busop",
            &[
                "--format",
                format,
                "why",
                line,
                "--grants",
                creds.to_str().unwrap(),
                "--grants",
                "fixtures/app",
                "--model",
                model.to_str().unwrap(),
            ],
        )
    };
    let human = ok(why(&line, &model, "human"));
    assert!(human.contains("= notify.example, deploy d7"), "{human}");
    assert!(human.contains("verdict   no call site in code"), "{human}");
    assert!(
        human.contains("target    POST access.token.core:666/mint (owner access.token.core, endpoint access.token.core ANY :666/mint)"),
        "{human}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(why(&line, &model, "json"))).unwrap();
    assert_eq!(v["service"], "notify.example");
    assert_eq!(v["deploy"], "d7");
    assert_eq!(v["violation"]["subject"], subject);
    assert_eq!(v["covered_by"], serde_json::Value::Null);
    assert_eq!(v["verdict"], "no call site in code");
    assert_eq!(v["acl_covers"], false);
    assert!(
        v["nearest"]["rule"]
            .as_str()
            .unwrap()
            .starts_with("microbus.")
    );

    // 2. The code now calls orders' GET /orders/{id}; nats.acl (and the
    // signed creds) were not regenerated.
    let lib = repo.join("fixtures/app/notify/service/src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    let anchor = "        let svc = &self.svc;\n";
    let call = "        let _receipt = svc.get(\"https://orders.example/orders/42\").await?;\n";
    assert!(src.contains(anchor));
    std::fs::write(&lib, src.replacen(anchor, &format!("{anchor}{call}"), 1)).unwrap();
    let line_no = src[..src.find(anchor).unwrap()].lines().count() + 2;
    let stale_model = tmp.path().join("stale-model.json");
    graph(&stale_model);
    let subject = "microbus.safe.443.notify_example.orders_example.0.GET.orders.42";
    let line = refused_line(&server, &notify, subject);
    let v: serde_json::Value = serde_json::from_str(&ok(why(&line, &stale_model, "json"))).unwrap();
    let site = format!("notify/service/src/lib.rs:{line_no}");
    assert_eq!(v["call_sites"], serde_json::json!([site]));
    assert_eq!(
        v["verdict"].as_str().unwrap(),
        format!(
            "call site at {site}, nats.acl stale: run `gencreds scan`, review and commit the nats.acl, then sign again"
        )
    );
    assert_eq!(
        v["target"]["endpoint"], "orders.example GET :443/orders/{id}",
        "{v}"
    );
    // The nearest signed rule is notify's call to POST /orders.
    assert_eq!(
        v["nearest"]["rule"],
        "microbus.safe.443.notify_example.orders_example.*.POST.orders"
    );

    // The same answer from --subject and --user.
    let user = v["violation"]["user"].as_str().unwrap().to_string();
    let by_key = ok(tool(
        &repo,
        "busop",
        &[
            "why",
            "--subject",
            subject,
            "--user",
            &user,
            "--grants",
            creds.to_str().unwrap(),
            "--model",
            stale_model.to_str().unwrap(),
        ],
    ));
    assert!(
        by_key.contains(&format!("call site at {site}, nats.acl stale")),
        "{by_key}"
    );

    // Malformed input: a clear error, exit 2.
    for bad in [
        "hello",
        "[ERR] 127.0.0.1:1 - cid:1 - Publish Violation - Subject",
        "[ERR] Publish Violation - Subject \"a b\"",
    ] {
        let out = why(bad, &model, "human");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = text(&out.stderr);
        assert!(err.contains("not a permissions violation line"), "{err}");
    }
    let out = tool(
        &repo,
        "busop",
        &[
            "why",
            "--subject",
            "a.*",
            "--grants",
            creds.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}
