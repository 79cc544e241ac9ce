//! Benchmark of the JetStream KV store (run by `account-server/bench/kv.sh`,
//! not part of the tests), beside the embedded store in the same run, each
//! on its own fresh three-node nats-server 2.15.1 cluster on loopback:
//!
//! 1. lifecycle calls per second: `CLIENTS` concurrent clients, each
//!    opening a deploy and signing one user for it (two calls a round);
//!    KV: two replicas, the clients spread over both (every change
//!    revision-checked, conflicts re-read and retried); embedded: one server;
//! 2. revocation propagation: users connected to node 0 revoked one at a
//!    time (KV: alternating replicas), from the API request to the victim's
//!    disconnect; p50 and p99.
//!
//! `--toy` runs at a tiny size, a smoke check.

#[path = "../tests/cluster_bed/mod.rs"]
mod cluster_bed;
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use buswarden_creds::keys::{KeyKind, KeyPair};
use cluster_bed::Cluster;
use common::*;
use serde_json::json;

const CLIENTS: usize = 4;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

struct Figures {
    calls_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn post(
    client: &Http,
    base: &str,
    path: &str,
    body: serde_json::Value,
    key: &KeyPair,
) -> Reply {
    let bytes = serde_json::to_vec(&body).unwrap();
    call(client, base, "POST", path, &bytes, Some(key), &[]).await
}

async fn run(kv: bool, push_wait: &'static str, rounds: usize, revocations: usize) -> Figures {
    let mut cluster = Cluster::start();
    cluster.push_wait = push_wait;
    cluster.wait_jetstream().await;
    let replicas = if kv {
        vec![
            cluster.spawn_replica("a", false).await,
            cluster.spawn_replica("b", false).await,
        ]
    } else {
        vec![cluster.spawn_replica("e", true).await]
    };
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let client = http();
    let (ci, op) = (cluster.bed.ci.clone(), cluster.bed.op.clone());

    // 1. Lifecycle calls.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base, ci) = (client.clone(), bases[c % bases.len()].clone(), ci.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..rounds {
                let id = format!("c{c}-{k}");
                let r = post(&client, &base, "/v1/deploys", json!({"deploy": id}), &ci).await;
                assert_eq!(r.status, 201, "{}", r.text);
                let user = KeyPair::generate(KeyKind::User);
                let h = format!("c{c}k{k}.shop.example");
                let r = post(&client, &base, &format!("/v1/deploys/{id}/users"),
                    json!({"users": [{"hostname": h, "user_key": user.public_key(), "rules": rules_for(&h)}]}), &ci).await;
                assert_eq!(r.status, 200, "{}", r.text);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let calls = (CLIENTS * rounds * 2) as f64;
    let calls_per_s = calls / started.elapsed().as_secs_f64();

    // 2. Revocation propagation.
    let r = post(
        &client,
        &bases[0],
        "/v1/deploys",
        json!({"deploy": "victims"}),
        &ci,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (victims, users) = cluster_bed::victims(revocations);
    let r = post(
        &client,
        &bases[0],
        "/v1/deploys/victims/users",
        json!({"users": users}),
        &ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let jwts: Vec<String> = r.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["jwt"].as_str().unwrap().to_string())
        .collect();
    let mut lat = Vec::new();
    for (i, key) in victims.iter().enumerate() {
        let mut conn = None;
        for _ in 0..50 {
            if let Ok(c) = connect_user(&cluster.url(0), &jwts[i], key).await {
                conn = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_c, mut rx) = conn.expect("victim connects");
        let base = &bases[i % bases.len()];
        let t0 = Instant::now();
        let request = {
            let (client, base, op, user) = (
                client.clone(),
                base.clone(),
                op.clone(),
                key.public_key().to_string(),
            );
            tokio::spawn(async move {
                post(
                    &client,
                    &base,
                    "/v1/revocations",
                    json!({"user_key": user}),
                    &op,
                )
                .await
            })
        };
        assert!(
            disconnected(&mut rx, Duration::from_secs(5)).await,
            "victim {i} disconnected"
        );
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
        let r = request.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    Figures {
        calls_per_s,
        p50_ms: percentile(&mut lat, 0.5),
        p99_ms: percentile(&mut lat, 0.99),
    }
}

fn main() {
    let toy = std::env::args().any(|a| a == "--toy");
    let (rounds, revocations) = if toy { (3, 5) } else { (50, 100) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for push_wait in ["300ms", "0s"] {
        let embedded = rt.block_on(run(false, push_wait, rounds, revocations));
        let kv = rt.block_on(run(true, push_wait, rounds, revocations));
        println!(
            "== push_wait {push_wait} (how long a call waits for every broker's confirmation)"
        );
        println!(
            "lifecycle calls ({CLIENTS} clients, {} calls each store):",
            CLIENTS * rounds * 2
        );
        println!(
            "  embedded store, 1 server : {:8.1} calls/s",
            embedded.calls_per_s
        );
        println!(
            "  JetStream KV, 2 replicas : {:8.1} calls/s  ({:.2}x embedded)",
            kv.calls_per_s,
            kv.calls_per_s / embedded.calls_per_s
        );
        println!("revocation propagation, request to disconnect ({revocations} revocations):");
        println!(
            "  embedded store: p50 {:7.2} ms  p99 {:7.2} ms",
            embedded.p50_ms, embedded.p99_ms
        );
        println!(
            "  JetStream KV  : p50 {:7.2} ms  p99 {:7.2} ms  (p99 {:.2}x embedded)",
            kv.p50_ms,
            kv.p99_ms,
            kv.p99_ms / embedded.p99_ms
        );
    }
}
