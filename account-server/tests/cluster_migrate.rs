//! `account-server migrate --to-kv --config FILE`: a deployment on the
//! embedded store moves to JetStream KV with one command and goes on as it
//! was: same account JWT and revocations, deploys whose sealed seeds still
//! sign, the audit log, and nonces (a request sent before the move cannot
//! be replayed after it). A second migration into the used bucket is refused.

mod cluster_bed;
mod common;

use std::process::Command;

use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::request_auth;
use cluster_bed::Cluster;
use common::*;
use serde_json::json;

fn migrate(config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_account-server"))
        .args(["migrate", "--to-kv", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_moves_the_embedded_store_to_kv() {
    let cluster = Cluster::start();
    cluster.wait_jetstream().await;
    let bed = &cluster.bed;
    let client = http();
    let mut embedded = cluster.spawn_replica("m", true).await;
    let base = embedded.base.clone();
    let call_on = |base: String,
                   method: &'static str,
                   path: String,
                   body: serde_json::Value,
                   key: KeyPair| {
        let client = client.clone();
        async move {
            let bytes = if body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&body).unwrap()
            };
            call(&client, &base, method, &path, &bytes, Some(&key), &[]).await
        }
    };
    let r = call_on(
        base.clone(),
        "POST",
        "/v1/deploys".into(),
        json!({"deploy": "d1"}),
        bed.ci.clone(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let victim = KeyPair::generate(KeyKind::User);
    let h = "cart.shop.example";
    let r = call_on(
        base.clone(),
        "POST",
        "/v1/deploys/d1/users".into(),
        json!({"users": [{"hostname": h, "user_key": victim.public_key(), "rules": rules_for(h)}]}),
        bed.ci.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call_on(
        base.clone(),
        "POST",
        "/v1/revocations".into(),
        json!({"user_key": victim.public_key()}),
        bed.op.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A read whose signed header we replay after the move.
    // Signed for the replicas' shared name, so only its nonce can refuse it
    // at the KV replica.
    let header = request_auth::sign_now(
        &bed.reader,
        cluster_bed::SHARED_AUDIENCE,
        "GET",
        "/v1/deploys",
        b"",
    )
    .unwrap();
    let r = call(
        &client,
        &base,
        "GET",
        "/v1/deploys",
        b"",
        None,
        &[("authorization", &header)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before_account = call_on(
        base.clone(),
        "GET",
        "/v1/account".into(),
        json!(null),
        bed.reader.clone(),
    )
    .await
    .json();
    let before_audit = call_on(
        base.clone(),
        "GET",
        "/v1/audit".into(),
        json!(null),
        bed.reader.clone(),
    )
    .await
    .json();
    embedded.kill();

    // The one command: the same config plus a [kv] table.
    let port = free_port();
    let config = cluster.replica_config("m", port, false);
    let out = migrate(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("migrated 1 deploys, 1 users, 1 revocations"),
        "{said}"
    );
    assert!(!has_seed(&said) && !has_seed(&String::from_utf8_lossy(&out.stderr)));

    // The bucket holds the migrated state: the KV replica starts without --init.
    cluster
        .kv_initialised
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let kv = cluster.spawn_on("m-kv", config.clone(), port).await;
    let after_account = call_on(
        kv.base.clone(),
        "GET",
        "/v1/account".into(),
        json!(null),
        bed.reader.clone(),
    )
    .await
    .json();
    assert_eq!(
        after_account["jwt"], before_account["jwt"],
        "the same account JWT is served"
    );
    assert_eq!(after_account["revocations"], before_account["revocations"]);
    let after_audit = call_on(
        kv.base.clone(),
        "GET",
        "/v1/audit".into(),
        json!(null),
        bed.reader.clone(),
    )
    .await
    .json();
    let actions = |v: &serde_json::Value| -> Vec<String> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(actions(&after_audit), actions(&before_audit));
    // The replayed request is refused: its nonce moved too.
    let r = call(
        &client,
        &kv.base,
        "GET",
        "/v1/deploys",
        b"",
        None,
        &[("authorization", &header)],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text);
    // The sealed seed moved as it was and still signs.
    let user = KeyPair::generate(KeyKind::User);
    let h = "pay.shop.example";
    let r = call_on(
        kv.base.clone(),
        "POST",
        "/v1/deploys/d1/users".into(),
        json!({"users": [{"hostname": h, "user_key": user.public_key(), "rules": rules_for(h)}]}),
        bed.ci.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The bucket is in use now: a second migration is refused.
    let out = migrate(&config);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
