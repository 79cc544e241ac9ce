//! Issue 15, High 1, at the account server: a CI key limited to
//! `*.shop.example` asks for `catalog.shop.example` users whose SUB rules
//! name another host (orders' and the gateway's requests, a trust-root
//! endpoint, on a server without a policy file). Every request is refused
//! by the same validator `gencreds sign` runs, nothing is signed, and the
//! true-to-code request still is.

mod common;

use buswarden_creds::keys::{KeyKind, KeyPair};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_request_with_a_foreign_sub_grant_is_refused() {
    let bed = Bed::new(Options::default());
    let (_server, stop, handle) = serve_in_process(&bed).await;
    let _nats = bed.start_nats();
    let client = http();
    open_deploy(&client, &bed, "d1", &bed.ci).await;
    let host = "catalog.shop.example";
    let users = "/v1/deploys/d1/users";
    for foreign in [
        "SUB {{plane}}.safe.*.*.orders_shop_example.>",
        "SUB {{plane}}.safe.*.*.gateway_shop_example.>",
        "SUB {{plane}}.danger.666.*.access_token_core.>",
        "SUB {{plane}}.safe.417.*.orders_shop_example.>",
    ] {
        let mut rules = rules_for(host);
        rules.push(foreign.to_string());
        let key = KeyPair::generate(KeyKind::User);
        let r = api(
            &client,
            &bed,
            "POST",
            users,
            json!({ "users": [{ "hostname": host, "user_key": key.public_key(), "rules": rules }] }),
            &bed.ci,
        )
        .await;
        assert_eq!(r.status, 422, "{foreign}: {}", r.text);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            msg.contains("subscribes to requests for")
                && msg.contains(foreign.split('.').nth(4).unwrap()),
            "{foreign}: {msg}"
        );
        assert!(!r.text.contains("eyJ"), "no JWT in a refusal");
    }
    // The true-to-code request signs, with its SUB entries pinned to its own
    // queue group.
    let key = KeyPair::generate(KeyKind::User);
    let r = api(
        &client,
        &bed,
        "POST",
        users,
        json!({ "users": [{ "hostname": host, "user_key": key.public_key(), "rules": rules_for(host) }] }),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let jwt = r.json()["users"][0]["jwt"].as_str().unwrap().to_string();
    let claims = buswarden_creds::jwt::decode_user(&jwt).unwrap();
    assert!(
        claims
            .nats
            .limits
            .subscribe
            .allow
            .iter()
            .any(|e| e.ends_with(".catalog_shop_example.> catalog_shop_example")),
        "{:?}",
        claims.nats.limits.subscribe.allow
    );
    let _ = stop.send(());
    handle.await.unwrap();
}
