//! What a verified actor token costs a typed call: the same call to an
//! endpoint requiring a three-term claims expression, carrying a token
//! minted by access.token.core, against a call to the same handler without
//! claims and without a token, in one process on one nats-server, rounds
//! alternated. Prints p50 latency of sequential calls and throughput with
//! calls in flight for both, the median of the per-round ratios (goals:
//! latency <= 1.1x, throughput >= 0.9x), CPU per call of this process and
//! of nats-server, and the cost of a cache miss (a
//! token verified from scratch: decode, signature check, claims flattened).
//!
//!     source ci/deps.sh && cargo bench -p access-token-core --bench actor
//!     ... -- --sequential 2000 --concurrent 20000 --in-flight 32 --rounds 5
//!     ... -- --toy   (a few hundred calls: what the test command runs)
//!     ... -- --profile token|plain   (one side only, for `perf record`)

use std::sync::Arc;
use std::time::{Duration, Instant};

use buswarden::{Connector, Error, context};
use buswarden_testkit::{NatsServer, cpu_seconds};
use serde_json::{Map, json};

#[buswarden::api(host = "bench.example")]
pub trait Bench {
    #[function(POST, "/claims", claims = "roles.admin && level > 5 && !guest")]
    async fn with_claims(&self, data: String) -> Result<String, Error>;
    #[function(POST, "/plain")]
    async fn plain(&self, data: String) -> Result<String, Error>;
}

struct BenchService;
impl Bench for BenchService {
    async fn with_claims(&self, data: String) -> Result<String, Error> {
        Ok(data)
    }
    async fn plain(&self, data: String) -> Result<String, Error> {
        Ok(data)
    }
}

struct Settings {
    sequential: usize,
    concurrent: usize,
    in_flight: usize,
    rounds: usize,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().collect();
    let toy =
        args.iter().any(|a| a == "--toy") || std::env::var_os("BUSWARDEN_BENCH_TOY").is_some();
    let mut s = if toy {
        Settings {
            sequential: 100,
            concurrent: 400,
            in_flight: 16,
            rounds: 2,
        }
    } else {
        Settings {
            sequential: 2000,
            concurrent: 20000,
            in_flight: 32,
            rounds: 5,
        }
    };
    let mut i = 1;
    while i + 1 < args.len() {
        if let Ok(v) = args[i + 1].parse() {
            match args[i].as_str() {
                "--sequential" => s.sequential = v,
                "--concurrent" => s.concurrent = v,
                "--in-flight" => s.in_flight = v,
                "--rounds" => s.rounds = v,
                _ => {}
            }
        }
        i += 1;
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Clone, Copy)]
enum Side {
    Token,
    Plain,
}

async fn one(client: &BenchClient<'_>, side: Side, token: &Arc<str>) {
    let r = match side {
        Side::Token => context::with_actor(token, client.with_claims("x".into())).await,
        Side::Plain => client.plain("x".into()).await,
    };
    r.expect("call");
}

/// p50 of sequential calls, in microseconds.
async fn latency(svc: &Connector, side: Side, token: &Arc<str>, n: usize) -> f64 {
    let client = BenchClient::new(svc);
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        one(&client, side, token).await;
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(v)
}

/// What a throughput phase measured.
#[derive(Clone, Copy, Default)]
struct Tput {
    /// Calls per second.
    rate: f64,
    /// CPU per call of this process (caller, service and issuer), µs.
    cpu_here: f64,
    /// CPU per call of nats-server, µs.
    cpu_server: f64,
}

/// Calls per second with `in_flight` calls outstanding, and CPU per call.
async fn throughput(
    svc: &Connector,
    server_pid: u32,
    side: Side,
    token: &Arc<str>,
    n: usize,
    in_flight: usize,
) -> Tput {
    let (own0, srv0) = (cpu_seconds(std::process::id()), cpu_seconds(server_pid));
    let t = Instant::now();
    let per = n / in_flight;
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let svc = svc.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let client = BenchClient::new(&svc);
                for _ in 0..per {
                    one(&client, side, &token).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = t.elapsed().as_secs_f64();
    let (own1, srv1) = (cpu_seconds(std::process::id()), cpu_seconds(server_pid));
    let calls = (per * in_flight) as f64;
    Tput {
        rate: calls / elapsed,
        cpu_here: (own1 - own0) * 1e6 / calls,
        cpu_server: (srv1 - srv0) * 1e6 / calls,
    }
}

fn main() {
    let s = settings();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(s));
}

async fn run(s: Settings) {
    let server = NatsServer::start("").expect("nats-server");
    let pid = server.pid();
    let connect = |host: &str| {
        let c = Connector::with_config(host, buswarden::Config::default())
            .with_url(server.url())
            .with_timeout(Duration::from_secs(30));
        async move {
            c.connect().await.expect("connect");
            c
        }
    };
    let issuer = connect("access.token.core").await;
    let service =
        access_token_core::Service::new(issuer.clone(), &Default::default()).expect("issuer");
    access_token_core::start(&issuer, service)
        .await
        .expect("serve issuer");
    let bench = connect("bench.example").await;
    bench
        .serve(BenchServer::new(BenchService))
        .await
        .expect("serve");
    let caller = connect("caller.example").await;

    let mut claims = Map::new();
    claims.insert("sub".into(), "bench".into());
    claims.insert("roles".into(), json!(["admin"]));
    claims.insert("level".into(), json!(9));
    // The token lives for the caller's budget (30 s): long enough for the
    // run; a fresh one per round.
    let mint = || access_token_core_api::mint(&caller, &claims);

    // Warm up both paths (and the verifier's key set).
    // Held as an `Arc<str>`, as an edge holds a token it reuses: every
    // call shares it (the handler's outbound calls do the same).
    let token: Arc<str> = mint().await.expect("mint").into();
    for side in [Side::Token, Side::Plain] {
        latency(&caller, side, &token, 50).await;
    }

    // `--profile token|plain`: one side's throughput only, round after
    // round, so a profiler sees that side's cost alone.
    if let Some(side) = std::env::args().skip_while(|a| a != "--profile").nth(1) {
        let side = match side.as_str() {
            "token" => Side::Token,
            "plain" => Side::Plain,
            other => {
                eprintln!("--profile takes token or plain, not {other:?}");
                std::process::exit(2);
            }
        };
        for _ in 0..s.rounds {
            let token: Arc<str> = mint().await.expect("mint").into();
            let t = throughput(&caller, pid, side, &token, s.concurrent, s.in_flight).await;
            println!(
                "{:.0} calls/s, cpu/call {:.2} µs here, {:.2} µs nats-server",
                t.rate, t.cpu_here, t.cpu_server
            );
        }
        return;
    }

    let (mut lat_ratios, mut tput_ratios, mut cpu_ratios) = (vec![], vec![], vec![]);
    let (mut lat, mut tput) = ([vec![], vec![]], [vec![], vec![]]);
    for round in 0..s.rounds {
        let token: Arc<str> = mint().await.expect("mint").into();
        // Alternate which side goes first.
        let order = if round % 2 == 0 {
            [Side::Token, Side::Plain]
        } else {
            [Side::Plain, Side::Token]
        };
        let mut l = [0.0; 2];
        let mut t = [Tput::default(); 2];
        for side in order {
            let i = side as usize;
            l[i] = latency(&caller, side, &token, s.sequential).await;
            t[i] = throughput(&caller, pid, side, &token, s.concurrent, s.in_flight).await;
        }
        lat_ratios.push(l[0] / l[1]);
        tput_ratios.push(t[0].rate / t[1].rate);
        cpu_ratios.push((t[0].cpu_here + t[0].cpu_server) / (t[1].cpu_here + t[1].cpu_server));
        for i in 0..2 {
            lat[i].push(l[i]);
            tput[i].push(t[i]);
        }
        println!(
            "round {}: p50 {:.1} µs vs {:.1} µs ({:.3}x), {:.0} vs {:.0} calls/s ({:.3}x), cpu/call {:.2}+{:.2} vs {:.2}+{:.2} µs",
            round + 1,
            l[0],
            l[1],
            l[0] / l[1],
            t[0].rate,
            t[1].rate,
            t[0].rate / t[1].rate,
            t[0].cpu_here,
            t[0].cpu_server,
            t[1].cpu_here,
            t[1].cpu_server,
        );
    }

    // A cache miss: verification from scratch, measured in-process on a
    // fresh token each time (decode, Ed25519 check, claims flattened).
    let jwks = access_token_core_api::jwks(&caller).await.expect("jwks");
    let mut miss = vec![];
    for _ in 0..s.rounds.max(3) {
        let token = mint().await.expect("mint");
        let t = Instant::now();
        let n = 200;
        for _ in 0..n {
            let u = buswarden::token::decode(&token).expect("decode");
            let key = jwks
                .keys
                .iter()
                .find(|k| k.kid == u.header.kid)
                .and_then(|k| k.verifying_key())
                .expect("key");
            u.verify(&key).expect("verify");
            let _: buswarden::claims::Claims = serde_json::from_slice(&u.payload).expect("claims");
        }
        miss.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }

    println!();
    println!("| | with verified token + 3-term claims | plain | ratio (median of rounds) | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| p50 latency | {:.1} µs | {:.1} µs | {:.3}x | <= 1.1x |",
        median(lat[0].clone()),
        median(lat[1].clone()),
        median(lat_ratios)
    );
    println!(
        "| throughput, {} in flight | {:.0}/s | {:.0}/s | {:.3}x | >= 0.9x |",
        s.in_flight,
        median(tput[0].iter().map(|t| t.rate).collect()),
        median(tput[1].iter().map(|t| t.rate).collect()),
        median(tput_ratios)
    );
    let cpu = |i: usize, f: fn(&Tput) -> f64| median(tput[i].iter().map(f).collect());
    println!(
        "| CPU per call, this process + nats-server | {:.2} + {:.2} µs | {:.2} + {:.2} µs | {:.3}x | |",
        cpu(0, |t| t.cpu_here),
        cpu(0, |t| t.cpu_server),
        cpu(1, |t| t.cpu_here),
        cpu(1, |t| t.cpu_server),
        median(cpu_ratios)
    );
    println!(
        "cache miss (decode + Ed25519 verify + claims), median: {:.1} µs",
        median(miss)
    );
    println!("JWKS fetches by the service: {}", bench.jwks_fetches());
}
