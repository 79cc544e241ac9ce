//! Issue 15, Low: a seed sent by mistake (as `user_key`, in a path, as a
//! hostname, inside malformed JSON, in the Authorization header) is never
//! echoed: not in the 400 body, not in the server's log. Runs the real
//! binary and reads its log.

mod common;

use std::process::Stdio;

use buswarden_creds::keys::{KeyKind, KeyPair};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_sent_by_mistake_is_never_echoed() {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let log_path = bed.dir.path().join("server.log");
    let mut child = serve_command(&bed.config_path)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    bed.wait_http().await;
    let client = http();
    let user = KeyPair::generate(KeyKind::User);
    let seed_text = user.seed();
    let seed = seed_text.expose().to_string();
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys",
        json!({ "deploy": "d1" }),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let mut replies = Vec::new();
    let users = "/v1/deploys/d1/users";
    for body in [
        json!({ "users": [{ "hostname": "calc.example", "user_key": seed, "rules": rules_for("calc.example") }] }),
        json!({ "users": [{ "hostname": seed, "user_key": user.public_key(), "rules": rules_for("calc.example") }] }),
        json!({ "users": seed }),
        json!({ "users": [{ "hostname": "calc.example", "user_key": user.public_key(), "rules": [seed] }] }),
        json!({ "users": [], seed.clone(): 1 }),
    ] {
        replies.push(api(&client, &bed, "POST", users, body, &bed.ci).await);
    }
    replies.push(
        api(
            &client,
            &bed,
            "POST",
            "/v1/revocations",
            json!({ "user_key": seed }),
            &bed.op,
        )
        .await,
    );
    replies.push(
        api(
            &client,
            &bed,
            "POST",
            &format!("/v1/users/{seed}/renew"),
            json!(null),
            &bed.ci,
        )
        .await,
    );
    let base = bed.base_url();
    replies.push(
        call(
            &client,
            &base,
            "GET",
            "/v1/deploys",
            b"",
            None,
            &[(
                "authorization",
                &format!("Buswarden-Nkey key={seed},aud=x:1,ts=1,nonce=0,sig=x"),
            )],
        )
        .await,
    );
    replies.push(
        call(
            &client,
            &base,
            "GET",
            "/v1/deploys",
            b"",
            None,
            &[("authorization", &format!("Buswarden-Nkey {seed}=1"))],
        )
        .await,
    );
    for r in &replies {
        assert!((400..500).contains(&r.status), "{} {}", r.status, r.text);
        assert!(!r.text.contains(&seed[..16]), "echoed: {}", r.text);
    }
    assert!(
        replies.iter().any(|r| r.text.contains("<seed redacted>")),
        "the redaction is visible"
    );

    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("request refused"),
        "the refusals are logged:\n{log}"
    );
    assert!(!log.contains(&seed[..16]), "the log holds the seed:\n{log}");
    assert!(!has_seed(&log));
}
