//! Benchmarks of the account server (run by `account-server/bench/run.sh`,
//! not part of the tests). Each figure comes with a baseline measured in
//! the same run:
//!
//! 1. resolver GETs per second and p99 under wrk on loopback, the release
//!    `account-server` binary against nginx serving the same JWT as a static
//!    file (both separate processes; medians of alternating runs);
//! 2. revocation propagation over 100 revocations against a real
//!    nats-server: from the API request to the victim's disconnect, and from
//!    the API's reply to the disconnect (negative when the broker dropped
//!    the client before the reply, which waits for the push confirmation);
//! 3. signing a deploy of 500 services through the API, against signing the
//!    same 500 user JWTs in-process with `buswarden_creds` alone.
//!
//! `--toy` runs every part at a tiny size (seconds), for a smoke check;
//! `--only=resolver|revocations|sign` runs one part.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use buswarden_creds::claims::UserClaims;
use buswarden_creds::jwt;
use buswarden_creds::keys::{KeyKind, KeyPair};
use common::*;
use serde_json::json;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// Parses wrk's "Requests/sec" and the 99% latency (ms).
fn wrk(url: &str, secs: u64) -> (f64, f64) {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", url])
        .output()
        .expect("wrk is installed (apt-get install -y wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| to_ms(v.trim()))
        .unwrap_or_else(|| panic!("no 99% in wrk output:\n{text}"));
    let non2xx = text.lines().any(|l| l.contains("Non-2xx"));
    assert!(!non2xx, "wrk saw errors:\n{text}");
    (rps, p99)
}

fn to_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// nginx in the foreground with its own config, serving `jwt` at the same path.
fn start_nginx(dir: &std::path::Path, account: &str, jwt: &str) -> (std::process::Child, u16) {
    let port = free_port();
    let root = dir.join("www/jwt/v1/accounts");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(account), jwt).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes auto;\npid {pid};\nerror_log stderr error;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  sendfile off;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
               client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {www};\n    default_type application/jwt;\n  }}\n}}\n",
            pid = dir.join("nginx.pid").display(),
            tmp = dir.display(),
            www = dir.join("www").display(),
        ),
    )
    .unwrap();
    let mut child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("nginx is installed (apt-get install -y nginx)");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop_nginx(&mut child);
    panic!("nginx did not start");
}

/// SIGTERM, so the master takes its workers down (SIGKILL would orphan them).
fn stop_nginx(nginx: &mut std::process::Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(nginx.id().to_string())
        .status();
    let _ = nginx.wait();
}

/// The resolver runs as its own release process (like nginx), so nothing
/// else of this benchmark shares its runtime.
async fn resolver(toy: bool) {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let log = std::fs::File::create(bed.dir.path().join("account-server.log")).unwrap();
    let mut server = common::serve_command(&bed.config_path)
        .env("RUST_LOG", "warn")
        // Experiments: TOKIO_WORKER_THREADS passes through when set.
        .envs(std::env::var("TOKIO_WORKER_THREADS").map(|v| ("TOKIO_WORKER_THREADS", v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    bed.wait_http().await;
    let account = bed.app.public_key().to_string();
    let client = http();
    let r = call(
        &client,
        &bed.base_url(),
        "GET",
        &format!("/jwt/v1/accounts/{account}"),
        b"",
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let nginx_dir = tempfile::tempdir().unwrap();
    let (mut nginx, nginx_port) = start_nginx(nginx_dir.path(), &account, &r.text);
    let ours = format!("{}/jwt/v1/accounts/{account}", bed.base_url());
    let theirs = format!("http://127.0.0.1:{nginx_port}/jwt/v1/accounts/{account}");
    let (rounds, secs) = if toy { (1, 1) } else { (5, 3) };
    let (mut a_rps, mut a_p99, mut n_rps, mut n_p99) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (r, p) = tokio::task::block_in_place(|| wrk(&ours, secs));
        a_rps.push(r);
        a_p99.push(p);
        let (r, p) = tokio::task::block_in_place(|| wrk(&theirs, secs));
        n_rps.push(r);
        n_p99.push(p);
    }
    stop_nginx(&mut nginx);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let _ = server.wait();
    let (ar, ap, nr, np) = (
        median(&mut a_rps),
        median(&mut a_p99),
        median(&mut n_rps),
        median(&mut n_p99),
    );
    println!(
        "resolver GET ({} byte JWT, wrk -t2 -c64 -d{secs}s, median of {rounds}):",
        r.text.len()
    );
    println!("  account-server  {ar:>10.0} req/s  p99 {ap:.2} ms");
    println!("  nginx static    {nr:>10.0} req/s  p99 {np:.2} ms");
    println!(
        "  ratio           {:.2}x throughput, p99 {:.2}x",
        ar / nr,
        ap / np
    );
}

async fn revocations(bed: &Bed, nats_url: &str, n: usize) {
    let client = http();
    let r = api(
        &client,
        bed,
        "POST",
        "/v1/deploys",
        json!({ "deploy": "rev" }),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let keys: Vec<KeyPair> = (0..n).map(|_| KeyPair::generate(KeyKind::User)).collect();
    let users: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let h = format!("r{i}.shop.example");
            json!({ "hostname": h, "user_key": k.public_key(), "rules": rules_for(&h) })
        })
        .collect();
    let r = api(
        &client,
        bed,
        "POST",
        "/v1/deploys/rev/users",
        json!({ "users": users }),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let jwts: Vec<String> = r.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["jwt"].as_str().unwrap().to_string())
        .collect();
    let (mut from_request, mut from_reply) = (vec![], vec![]);
    for (k, token) in keys.iter().zip(&jwts) {
        // The disconnect time is taken inside the client's event callback.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let creds_text = String::from_utf8(
            buswarden_creds::creds::format_user_config(token, &k.seed()).to_vec(),
        )
        .unwrap();
        let victim = async_nats::ConnectOptions::with_credentials(&creds_text)
            .unwrap()
            .max_reconnects(Some(0))
            .event_callback(move |e| {
                let tx = tx.clone();
                let at = Instant::now();
                async move {
                    if matches!(e, async_nats::Event::Disconnected) {
                        let _ = tx.send(at);
                    }
                }
            })
            .connect(nats_url)
            .await
            .unwrap();
        victim.flush().await.unwrap();
        let t0 = Instant::now();
        let r = api(
            &client,
            bed,
            "POST",
            "/v1/revocations",
            json!({ "user_key": k.public_key() }),
            &bed.op,
        )
        .await;
        let t_reply = Instant::now();
        assert_eq!(r.status, 200, "{}", r.text);
        let t_disc = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        from_request.push((t_disc - t0).as_secs_f64() * 1000.0);
        from_reply.push(if t_disc >= t_reply {
            (t_disc - t_reply).as_secs_f64() * 1000.0
        } else {
            -((t_reply - t_disc).as_secs_f64() * 1000.0)
        });
        drop(victim);
    }
    println!("revocation -> victim disconnected ({n} revocations, 1 nats-server 2.15.1):");
    println!(
        "  from API request  p50 {:.2} ms  p99 {:.2} ms",
        percentile(&mut from_request, 0.5),
        percentile(&mut from_request, 0.99)
    );
    println!(
        "  from API reply    p50 {:.2} ms  p99 {:.2} ms  (negative: dropped before the reply, which waits for the broker's confirmation)",
        percentile(&mut from_reply, 0.5),
        percentile(&mut from_reply, 0.99)
    );
}

async fn sign_deploy(bed: &Bed, services: usize, rounds: usize) {
    let client = http();
    let rules: Vec<Vec<String>> = (0..services)
        .map(|i| rules_for(&format!("svc{i}.shop.example")))
        .collect();
    let (mut api_ms, mut base_ms) = (vec![], vec![]);
    for round in 0..rounds {
        let id = format!("sign{round}");
        let r = api(
            &client,
            bed,
            "POST",
            "/v1/deploys",
            json!({ "deploy": id }),
            &bed.ci,
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let users: Vec<_> = rules
            .iter()
            .enumerate()
            .map(|(i, rs)| json!({ "hostname": format!("svc{i}.shop.example"), "user_key": KeyPair::generate(KeyKind::User).public_key(), "rules": rs }))
            .collect();
        let body = json!({ "users": users });
        let t = Instant::now();
        let r = api(
            &client,
            bed,
            "POST",
            &format!("/v1/deploys/{id}/users"),
            body,
            &bed.ci,
        )
        .await;
        api_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(300)]);

        // Baseline: the same number of user JWTs signed in-process (user
        // keys made beforehand, as the API's callers make theirs).
        let signer = KeyPair::generate(KeyKind::Account);
        let user_keys: Vec<KeyPair> = rules
            .iter()
            .map(|_| KeyPair::generate(KeyKind::User))
            .collect();
        let t = Instant::now();
        for (i, (rs, user)) in rules.iter().zip(&user_keys).enumerate() {
            let mut c = UserClaims::new_user(user.public_key());
            c.data.name = format!("svc{i}.shop.example");
            c.data.exp = jwt::now() + 3600;
            c.nats.issuer_account = bed.app.public_key().to_string();
            let (pubs, subs): (Vec<_>, Vec<_>) = rs.iter().partition(|r| r.starts_with("PUB"));
            c.nats.limits.publish.allow = pubs
                .iter()
                .map(|r| r[4..].replace("{{plane}}", "microbus"))
                .collect();
            c.nats.limits.subscribe.allow = subs
                .iter()
                .map(|r| r[4..].replace("{{plane}}", "microbus"))
                .collect();
            std::hint::black_box(jwt::encode(&mut c, &signer, jwt::now()).unwrap());
        }
        base_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (a, b) = (median(&mut api_ms), median(&mut base_ms));
    println!("signing a deploy of {services} services (median of {rounds}):");
    println!("  POST /v1/deploys/<id>/users (validate, policy, sign, commit)  {a:.1} ms");
    println!("  in-process jwt::encode of the same users                      {b:.1} ms");
    println!("  ratio {:.2}x", a / b);
}

fn main() {
    let toy = std::env::args().any(|a| a == "--toy");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bed = Arc::new(Bed::new(Options {
            max_body: 16 << 20,
            ..Options::default()
        }));
        let (_server, stop, handle) = serve_in_process(&bed).await;
        let nats = bed.start_nats();
        let only = std::env::args().find_map(|a| a.strip_prefix("--only=").map(String::from));
        let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
        if run("resolver") {
            resolver(toy).await;
        }
        if run("revocations") {
            revocations(&bed, nats.url(), if toy { 5 } else { 100 }).await;
        }
        if run("sign") {
            sign_deploy(&bed, if toy { 20 } else { 500 }, if toy { 1 } else { 5 }).await;
        }
        let _ = stop.send(());
        let _ = handle.await;
    });
}
