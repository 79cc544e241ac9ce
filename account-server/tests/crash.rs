//! Crash safety: the account-server process is killed with SIGKILL at
//! random moments while a stream of revocations is running, and restarted
//! each time. Afterwards every revocation that was acknowledged (HTTP 200)
//! is in the store (served JWT) and on the broker (asked over `$SYS`).
//! Bounded: the whole test stops within a minute.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use buswarden_creds::keys::{KeyKind, KeyPair};
use common::*;
use serde_json::json;

/// Starts the binary (debug logs); its log goes beside the config.
fn spawn(config: &Path, generation: usize) -> Child {
    let log =
        std::fs::File::create(config.with_file_name(format!("account-server.{generation}.log")))
            .unwrap();
    serve_command(config)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Kills the current account-server process when the test ends, passed or not.
struct KillOnDrop(Arc<Mutex<Child>>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// xorshift64: enough randomness for kill timing; the seed is printed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_revocations_survive_sigkill_and_reach_the_broker() {
    let deadline = Instant::now() + Duration::from_secs(55);
    let bed = Bed::new(Options::default());
    let child = Arc::new(Mutex::new(spawn(&bed.config_path, 0)));
    let _guard = KillOnDrop(child.clone());
    bed.wait_http().await;
    let nats = bed.start_nats();
    let client = http();

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
    let keys: Vec<KeyPair> = (0..60).map(|_| KeyPair::generate(KeyKind::User)).collect();
    let users: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let h = format!("s{i}.shop.example");
            json!({ "hostname": h, "user_key": k.public_key(), "rules": rules_for(&h) })
        })
        .collect();
    // A watcher that is never revoked keeps the account loaded on the
    // broker, so every update must really be applied there.
    let watcher = KeyPair::generate(KeyKind::User);
    let mut users = users;
    users.push(json!({ "hostname": "calc.example", "user_key": watcher.public_key(), "rules": rules_for("calc.example") }));
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/d1/users",
        json!({ "users": users }),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let watcher_jwt = r.json()["users"][60]["jwt"].as_str().unwrap().to_string();
    let (_watcher, _) = connect_user(nats.url(), &watcher_jwt, &watcher)
        .await
        .expect("watcher connects");
    let loaded = broker_account(nats.url(), &bed.sys_creds, bed.app.public_key()).await;
    assert!(loaded.nats.revocations.is_empty());

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill schedule seed {seed}");
    let mut rng = Rng(seed);
    let delays: Vec<u64> = (0..4).map(|_| 50 + rng.below(550)).collect();

    // The killer: SIGKILL at random moments, restart at once.
    let killer = {
        let child = child.clone();
        let bed_config = bed.config_path.clone();
        tokio::spawn(async move {
            for (generation, ms) in delays.into_iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let mut c = child.lock().unwrap();
                c.kill().unwrap(); // SIGKILL
                c.wait().unwrap();
                *c = spawn(&bed_config, generation + 1);
            }
        })
    };

    // The stream: one revocation after another; a refused or broken
    // connection is not an acknowledgement.
    let mut acked = Vec::new();
    let mut unacked = 0;
    let mut next = keys.iter();
    let mut key = next.next();
    while let Some(k) = key {
        if Instant::now() > deadline - Duration::from_secs(25) {
            break;
        }
        let body = serde_json::to_vec(&json!({ "user_key": k.public_key() })).unwrap();
        let auth = buswarden_creds::request_auth::sign_now(
            &bed.op,
            &buswarden_creds::request_auth::audience(&bed.base_url()).unwrap(),
            "POST",
            "/v1/revocations",
            &body,
        )
        .unwrap();
        let req = hyper::Request::builder()
            .method("POST")
            .uri(format!("{}/v1/revocations", bed.base_url()))
            .header("authorization", auth)
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
            Ok(Ok(resp)) if resp.status() == 200 => {
                acked.push(k.public_key().to_string());
                key = next.next();
            }
            _ => {
                // Killed mid-request or not up yet: not acknowledged; the
                // same key is sent again once the server is back.
                unacked += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    killer.await.unwrap();
    println!(
        "acknowledged {} revocations, {unacked} not acknowledged, 4 SIGKILLs",
        acked.len()
    );
    assert_eq!(acked.len(), keys.len(), "the stream went on between kills");

    // After the last restart: in the store...
    bed.wait_http().await;
    let r = api(
        &client,
        &bed,
        "GET",
        "/v1/account",
        json!(null),
        &bed.reader,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stored = r.json()["revocations"].as_object().unwrap().clone();
    for k in &acked {
        assert!(
            stored.contains_key(k),
            "acknowledged revocation of {k} lost from the store"
        );
    }
    // ...and on the broker, re-pushed at start.
    loop {
        let on_broker = broker_account(nats.url(), &bed.sys_creds, bed.app.public_key()).await;
        let missing: Vec<_> = acked
            .iter()
            .filter(|k| !on_broker.nats.revocations.contains_key(*k))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged revocations not on the broker",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Logs carry no seed, at debug level, in any generation (some were
    // killed before they finished starting).
    for g in 0..5 {
        let log = std::fs::read_to_string(bed.dir.path().join(format!("account-server.{g}.log")))
            .unwrap();
        assert!(
            g < 4 || log.contains("state loaded"),
            "the last generation started"
        );
        assert!(!has_seed(&log), "a seed in the log of generation {g}");
    }
}
