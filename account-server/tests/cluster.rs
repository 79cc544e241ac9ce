//! Two account-server replicas on the JetStream KV store of a three-node
//! nats-server 2.15.1 cluster (bucket replicas 3), under a stream of
//! concurrent lifecycle calls and revocations sent to both; mid-stream one
//! account server is SIGKILLed (a real child process: its store client, its
//! in-flight requests and its pushers die with it, as in a crash) and one
//! nats-server node is SIGKILLed. Then: every acknowledged change is in the
//! store exactly once, the account JWT on every live node is the current
//! one, and every revoked user was disconnected while the others stayed.

mod cluster_bed;
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use buswarden_creds::jwt;
use buswarden_creds::keys::{KeyKind, KeyPair};
use cluster_bed::Cluster;
use common::*;
use serde_json::json;

/// Victims signed before the stream; the first ones get revoked.
const VICTIMS: usize = 16;
const REVOKED: usize = 12;
const WORKERS: usize = 4;
const ROUNDS: usize = 9;

#[derive(Debug, Clone)]
struct Outcome {
    action: &'static str,
    subject: String,
    acked: bool,
}

async fn signed(
    client: &Http,
    base: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
    key: &KeyPair,
) -> Option<Reply> {
    let bytes = serde_json::to_vec(&body).unwrap();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("content-type", "application/json");
    req = req.header(
        "authorization",
        buswarden_creds::request_auth::sign_now(
            key,
            &buswarden_creds::request_auth::audience(base).unwrap(),
            method,
            path,
            &bytes,
        )
        .unwrap(),
    );
    let fut = client.request(
        req.body(http_body_util::Full::new(hyper::body::Bytes::from(bytes)))
            .unwrap(),
    );
    let resp = tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    use http_body_util::BodyExt;
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some(Reply {
        status,
        etag: None,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_a_cluster_lose_no_acknowledged_change_when_a_replica_and_a_node_die() {
    let started = std::time::Instant::now();
    let mut cluster = Cluster::start();
    cluster.wait_jetstream().await;
    let mut a = cluster.spawn_replica("a", false).await;
    let b = cluster.spawn_replica("b", false).await;
    let client = http();
    let (ci, op, reader) = (
        cluster.bed.ci.clone(),
        cluster.bed.op.clone(),
        cluster.bed.reader.clone(),
    );
    let app = cluster.bed.app.public_key().to_string();

    // The base deploy and its users, signed through replica A.
    let r = signed(
        &client,
        &a.base,
        "POST",
        "/v1/deploys",
        json!({"deploy": "base"}),
        &ci,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let (victims, users) = cluster_bed::victims(VICTIMS);
    let r = signed(
        &client,
        &b.base,
        "POST",
        "/v1/deploys/base/users",
        json!({ "users": users }),
        &ci,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "replica B sees A's deploy: {}", r.text);
    let jwts: Vec<String> = r.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["jwt"].as_str().unwrap().to_string())
        .collect();
    let r = signed(
        &client,
        &a.base,
        "POST",
        "/v1/deploys/base/activate",
        json!({}),
        &ci,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);

    // Victims on the two nodes that stay up (node 2 dies).
    let mut conns = Vec::new();
    for (i, key) in victims.iter().enumerate() {
        let url = cluster.url(i % 2);
        let mut tries = 0;
        let conn = loop {
            match connect_user(&url, &jwts[i], key).await {
                Ok(c) => break c,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 50, "victim {i} cannot connect: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        conns.push(conn);
    }

    // The stream: workers on both replicas; a failed call is unacknowledged
    // and the worker moves to the other replica.
    let a_dead = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let victim_keys: Vec<String> = victims.iter().map(|k| k.public_key().to_string()).collect();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, a_base, b_base) = (client.clone(), a.base.clone(), b.base.clone());
        let (ci, op) = (ci.clone(), op.clone());
        let (a_dead, acked) = (a_dead.clone(), acked.clone());
        let to_revoke: Vec<String> = victim_keys
            .iter()
            .skip(w)
            .step_by(WORKERS)
            .take(REVOKED / WORKERS)
            .cloned()
            .collect();
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for k in 0..ROUNDS {
                let base = if w % 2 == 0 && !a_dead.load(Ordering::SeqCst) {
                    &a_base
                } else {
                    &b_base
                };
                let id = format!("w{w}-{k}");
                let r = signed(&client, base, "POST", "/v1/deploys", json!({"deploy": id}), &ci).await;
                let ok = r.as_ref().is_some_and(|r| r.status == 201);
                out.push(Outcome { action: "open", subject: id.clone(), acked: ok });
                if ok {
                    acked.fetch_add(1, Ordering::SeqCst);
                    let user = KeyPair::generate(KeyKind::User);
                    let h = format!("w{w}k{k}.shop.example");
                    let body = json!({"users": [{"hostname": h, "user_key": user.public_key(), "rules": rules_for(&h)}]});
                    let r = signed(&client, base, "POST", &format!("/v1/deploys/{id}/users"), body, &ci).await;
                    let ok = r.as_ref().is_some_and(|r| r.status == 200);
                    out.push(Outcome { action: "sign", subject: id.clone(), acked: ok });
                    if ok {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                }
                if k % 3 == 0
                    && let Some(victim) = to_revoke.get(k / 3)
                {
                    let r = signed(&client, base, "POST", "/v1/revocations", json!({"user_key": victim}), &op).await;
                    let ok = r.as_ref().is_some_and(|r| r.status == 200);
                    out.push(Outcome { action: "revoke-user", subject: victim.clone(), acked: ok });
                    if ok {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            out
        }));
    }

    // Mid-stream: SIGKILL replica A and nats node 2.
    for _ in 0..600 {
        if acked.load(Ordering::SeqCst) >= 14 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_dead.store(true, Ordering::SeqCst);
    a.kill();
    cluster.kill_node(2);
    println!(
        "killed replica A and node n2 after {} acknowledged calls",
        acked.load(Ordering::SeqCst)
    );

    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(
            tokio::time::timeout(Duration::from_secs(60), w)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let n_acked = outcomes.iter().filter(|o| o.acked).count();
    println!("{} calls, {n_acked} acknowledged", outcomes.len());
    assert!(
        n_acked >= 20,
        "the stream went on after the kills: {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.acked && o.action == "revoke-user"),
        "some revocation acknowledged"
    );

    // Every acknowledged change exactly once (audit log and state, as B sees it).
    let r = signed(
        &client,
        &b.base,
        "GET",
        "/v1/audit?limit=10000",
        json!(null),
        &reader,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let entries = r.json()["entries"].as_array().unwrap().clone();
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &entries {
        let action = e["action"].as_str().unwrap().to_string();
        let subject = if action == "revoke-user" {
            e["subjects"][0].as_str().unwrap().to_string()
        } else {
            e["deploy"].as_str().unwrap_or("").to_string()
        };
        *counts.entry((action, subject)).or_default() += 1;
    }
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "audit in commit order"
    );
    for o in &outcomes {
        let n = counts
            .get(&(o.action.to_string(), o.subject.clone()))
            .copied()
            .unwrap_or(0);
        if o.acked {
            assert_eq!(
                n, 1,
                "acknowledged {} {} recorded {n} times",
                o.action, o.subject
            );
        } else {
            assert!(
                n <= 1,
                "unacknowledged {} {} recorded {n} times",
                o.action,
                o.subject
            );
        }
    }
    let r = signed(&client, &b.base, "GET", "/v1/deploys", json!(null), &reader)
        .await
        .unwrap();
    let deploys = r.json()["deploys"].as_array().unwrap().clone();
    for o in outcomes
        .iter()
        .filter(|o| o.acked && o.action != "revoke-user")
    {
        let d = deploys
            .iter()
            .find(|d| d["deploy"] == o.subject.as_str())
            .unwrap_or_else(|| panic!("acknowledged deploy {} missing", o.subject));
        if o.action == "sign" {
            assert_eq!(d["users"], 1, "{d}");
        }
    }
    let r = signed(&client, &b.base, "GET", "/v1/account", json!(null), &reader)
        .await
        .unwrap();
    let account = r.json();
    let live_jwt = account["jwt"].as_str().unwrap().to_string();
    let claims = jwt::decode_account(&live_jwt).unwrap();
    let revoked: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.acked && o.action == "revoke-user")
        .collect();
    for o in &revoked {
        assert!(
            claims.nats.revocations.contains_key(&o.subject),
            "acknowledged revocation of {} is in the account JWT",
            o.subject
        );
    }
    for o in outcomes.iter().filter(|o| o.acked && o.action == "open") {
        let d = deploys
            .iter()
            .find(|d| d["deploy"] == o.subject.as_str())
            .unwrap();
        let key = d["signing_key"].as_str().unwrap();
        assert!(
            claims.nats.signing_keys.0.contains_key(key),
            "{} signing key live",
            o.subject
        );
    }

    // The account JWT on every live node is the current one.
    for node in 0..2 {
        let mut seen = None;
        for _ in 0..100 {
            seen = cluster.node_account_jwt(node, &app).await;
            if seen.as_deref() == Some(live_jwt.as_str()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            seen.as_deref(),
            Some(live_jwt.as_str()),
            "node n{node} holds the current account JWT"
        );
    }

    // Revoked users were disconnected; the others stay connected.
    let revoked_keys: Vec<String> = revoked.iter().map(|o| o.subject.clone()).collect();
    for (i, (conn, rx)) in conns.iter_mut().enumerate() {
        let key = victims[i].public_key().to_string();
        let attempted: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.action == "revoke-user" && o.subject == key)
            .collect();
        if revoked_keys.contains(&key) {
            assert!(
                disconnected(rx, Duration::from_secs(5)).await,
                "revoked victim {i} disconnected"
            );
        } else if attempted.is_empty() {
            assert!(
                !disconnected(rx, Duration::from_millis(50)).await,
                "victim {i} untouched"
            );
            assert_eq!(
                conn.connection_state(),
                async_nats::connection::State::Connected
            );
        }
    }
    // The buckets live in the KV account, three copies each; the
    // application account has no JetStream at all.
    let kv_client = async_nats::ConnectOptions::with_credentials_file(&cluster.kv_creds)
        .await
        .unwrap()
        .connect(cluster.url(0))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(kv_client);
    for stream in ["KV_bw_state", "KV_bw_state_nonces"] {
        let mut s = js.get_stream(stream).await.unwrap();
        let info = s.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3, "{stream} has 3 replicas");
    }
    assert_eq!(
        claims.nats.limits.jetstream.disk_storage, 0,
        "APP has no JetStream"
    );
    assert_eq!(
        claims.nats.limits.jetstream.mem_storage, 0,
        "APP has no JetStream"
    );
    let took = started.elapsed();
    println!("cluster test took {took:?}");
    assert!(took < Duration::from_secs(110), "fits in CI: {took:?}");
}
