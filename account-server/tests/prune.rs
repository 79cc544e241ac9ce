//! The janitor prunes a revocation once every JWT it revokes has expired,
//! keeps the others (and those of keys the server never signed), and
//! records the pruning in the audit log; the state survives a restart.

mod common;

use account_server::AccountServer;
use buswarden_creds::keys::{KeyKind, KeyPair};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_are_pruned_only_after_their_jwts_expired() {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let (server, stop, handle) = serve_in_process(&bed).await;
    let client = http();
    assert_eq!(
        api(
            &client,
            &bed,
            "POST",
            "/v1/deploys",
            json!({ "deploy": "d1" }),
            &bed.ci
        )
        .await
        .status,
        201
    );
    let short = KeyPair::generate(KeyKind::User);
    let long = KeyPair::generate(KeyKind::User);
    let foreign = KeyPair::generate(KeyKind::User);
    for (k, h, exp) in [
        (&short, "calc.example", "1h"),
        (&long, "cart.shop.example", "2h"),
    ] {
        let body = json!({ "users": [{ "hostname": h, "user_key": k.public_key(), "rules": rules_for(h) }], "expires": exp });
        let r = api(&client, &bed, "POST", "/v1/deploys/d1/users", body, &bed.ci).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for k in [&short, &long, &foreign] {
        let r = api(
            &client,
            &bed,
            "POST",
            "/v1/revocations",
            json!({ "user_key": k.public_key() }),
            &bed.op,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let revoked =
        |v: &serde_json::Value, k: &KeyPair| v["revocations"].get(k.public_key()).is_some();

    // Ninety minutes on: the 1h JWT has expired, the 2h one has not.
    server
        .tidy(buswarden_creds::jwt::now() + 90 * 60)
        .await
        .unwrap();
    let account = api(
        &client,
        &bed,
        "GET",
        "/v1/account",
        json!(null),
        &bed.reader,
    )
    .await
    .json();
    assert!(!revoked(&account, &short), "pruned: its JWT expired");
    assert!(revoked(&account, &long), "kept: its JWT is still valid");
    assert!(
        revoked(&account, &foreign),
        "kept: not ours, its expiry is unknown"
    );
    let served = buswarden_creds::jwt::decode_account(account["jwt"].as_str().unwrap()).unwrap();
    assert!(!served.nats.revocations.contains_key(short.public_key()));
    let audit = api(
        &client,
        &bed,
        "GET",
        "/v1/audit?since=0",
        json!(null),
        &bed.reader,
    )
    .await
    .json();
    let prune = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "prune")
        .unwrap()
        .clone();
    assert_eq!(prune["subjects"], json!([short.public_key()]));
    let _ = stop.send(());
    handle.await.unwrap();
    drop(server);

    // After a restart the state is the same.
    let server = AccountServer::start(bed.config()).await.unwrap();
    let again = server.account().await;
    assert_eq!(again["revocations"], account["revocations"]);
}
