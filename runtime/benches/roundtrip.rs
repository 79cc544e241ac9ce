//! Request/reply round trip through the runtime (a typed call on a
//! `#[buswarden::api]` client, served by a generated server) against raw
//! async-nats request/reply (`Client::request`, a subscriber answering on the
//! `_INBOX` reply subject) on the same nats-server, in the same process and
//! run. Prints p50/p99 latency of sequential calls, throughput with many
//! calls in flight, and the runtime/raw ratios (the median of the per-round
//! ratios, judged against the goals, and the ratio of the medians), then two
//! references on a layout-shaped subject: raw async-nats carrying Microbus's
//! HTTP/1.1 framing (what the runtime sends) and carrying the runtime's
//! previous binary envelope, and the cost of the HTTP framing against it.
//!
//!     source ci/deps.sh && cargo bench -p buswarden --bench roundtrip
//!     ... -- --sequential 3000 --concurrent 20000 --in-flight 32 --rounds 5 [--current-thread]
//!     ... -- --profile raw|runtime   (one side only, for `perf record`)

use buswarden::wire::{Envelope, Kind};
use buswarden::{Connector, Error, id};
use buswarden_testkit::{NatsServer, cpu_seconds};
use futures_util::StreamExt as _;
use std::time::{Duration, Instant};

#[buswarden::api(host = "echo.bench")]
pub trait Echo {
    #[function(POST, "/echo")]
    async fn echo(&self, data: String) -> Result<String, Error>;
}

struct EchoService;
impl Echo for EchoService {
    async fn echo(&self, data: String) -> Result<String, Error> {
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
    let mut s = Settings {
        sequential: 3000,
        concurrent: 20000,
        in_flight: 32,
        rounds: 5,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse().ok());
        match (args[i].as_str(), value) {
            ("--sequential", Some(v)) => s.sequential = v,
            ("--concurrent", Some(v)) => s.concurrent = v,
            ("--in-flight", Some(v)) => s.in_flight = v,
            ("--rounds", Some(v)) => s.rounds = v,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    s
}

#[derive(Clone, Copy)]
struct Figures {
    p50: Duration,
    p99: Duration,
    throughput: f64,
    /// CPU µs per call in this process and in nats-server (concurrent phase).
    cpu_client: f64,
    cpu_server: f64,
    /// Read and write system calls per call in this process (concurrent
    /// phase): how well the writes of many calls are batched.
    syscalls: f64,
    /// Thread context switches per call in this process (concurrent phase).
    switches: f64,
}

/// Context switches of all this process's threads so far (voluntary and
/// not): how often worker threads parked and were woken.
fn context_switches() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|st| {
            st.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Read plus write system calls of this process so far (`/proc/self/io`).
fn syscalls() -> f64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .filter(|l| l.starts_with("syscr:") || l.starts_with("syscw:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure<F, Fut>(s: &Settings, server_pid: u32, call: F) -> Figures
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    for _ in 0..200 {
        call().await;
    }
    let mut lat = Vec::with_capacity(s.sequential);
    for _ in 0..s.sequential {
        let t = Instant::now();
        call().await;
        lat.push(t.elapsed());
    }
    lat.sort();
    let per_task = s.concurrent / s.in_flight;
    let (own0, srv0) = (cpu_seconds(std::process::id()), cpu_seconds(server_pid));
    let sys0 = syscalls();
    let cs0 = context_switches();
    let start = Instant::now();
    let tasks: Vec<_> = (0..s.in_flight)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    call().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    let calls = (per_task * s.in_flight) as f64;
    let throughput = calls / start.elapsed().as_secs_f64();
    let (own1, srv1) = (cpu_seconds(std::process::id()), cpu_seconds(server_pid));
    let sys1 = syscalls();
    let cs1 = context_switches();
    Figures {
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        throughput,
        cpu_client: (own1 - own0) * 1e6 / calls,
        cpu_server: (srv1 - srv0) * 1e6 / calls,
        syscalls: (sys1 - sys0) / calls,
        switches: (cs1 - cs0) / calls,
    }
}

fn main() {
    let s = settings();
    // `--current-thread` runs everything on one thread (no cross-thread
    // wake-ups); the default is a 2-worker multi-thread runtime.
    let rt = if std::env::args().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    rt.block_on(run(s));
}

async fn run(s: Settings) {
    let server = NatsServer::start("").expect("nats-server (source ci/deps.sh)");
    let payload = "x".repeat(100);

    // Raw async-nats: a responder on its own connection, a requester on another.
    let responder = async_nats::connect(server.url()).await.expect("connect");
    let mut sub = responder.subscribe("bench.echo").await.expect("subscribe");
    let r2 = responder.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = r2.publish(reply, msg.payload).await;
            }
        }
    });
    // The same raw request/reply on a layout-shaped subject, carrying
    // Microbus's HTTP framing (`runtime/src/wire.rs`, the headers the runtime
    // writes), decoded and answered with a response: what the wire format
    // alone costs, without the runtime's code.
    let mut hsub = responder.subscribe(HTTP_SUBJECT).await.expect("subscribe");
    let r3 = responder.clone();
    tokio::spawn(async move {
        while let Some(msg) = hsub.next().await {
            if let (Some(reply), Ok((env, body))) = (msg.reply, Envelope::decode(&msg.payload)) {
                // As the runtime answers a typed call: transport headers,
                // the JSON object of named outputs, no Content-Type.
                let mut out = Envelope::reply(Kind::Response, 200, &env.msg_id, "id-responder1");
                out.from_host = "echo.refer".into();
                if let Ok(out) = out.encode(&body) {
                    let _ = r3.publish(reply, out).await;
                }
            }
        }
    });
    // The same with the previous binary envelope.
    let mut bsub = responder
        .subscribe(BINARY_SUBJECT)
        .await
        .expect("subscribe");
    let r4 = responder.clone();
    tokio::spawn(async move {
        while let Some(msg) = bsub.next().await {
            if let (Some(reply), Some(out)) = (msg.reply, binary_envelope::respond(&msg.payload)) {
                let _ = r4.publish(reply, out.into()).await;
            }
        }
    });
    responder.flush().await.expect("flush");
    let requester = async_nats::connect(server.url()).await.expect("connect");

    // The runtime: a served echo API and a caller, each with its own connection.
    let echo =
        Connector::with_config("echo.bench", buswarden::Config::default()).with_url(server.url());
    echo.connect().await.expect("connect");
    echo.serve(EchoServer::new(EchoService))
        .await
        .expect("serve");
    let caller =
        Connector::with_config("caller.bench", buswarden::Config::default()).with_url(server.url());
    caller.connect().await.expect("connect");

    println!(
        "request/reply, 100-byte payload: {} sequential calls, {} calls with {} in flight, median of {} rounds",
        s.sequential, s.concurrent, s.in_flight, s.rounds
    );
    // `--profile raw|runtime`: one side only, round after round, so a
    // profiler sees that side's cost alone.
    let profile = std::env::args().skip_while(|a| a != "--profile").nth(1);
    if let Some(side) = profile {
        for _ in 0..s.rounds {
            let f = if side == "raw" {
                let (rq, p) = (requester.clone(), payload.clone());
                measure(&s, server.pid(), move || {
                    let (rq, p) = (rq.clone(), p.clone());
                    async move {
                        rq.request("bench.echo", p.into())
                            .await
                            .expect("raw request");
                    }
                })
                .await
            } else {
                let (c, p) = (caller.clone(), payload.clone());
                measure(&s, server.pid(), move || {
                    let (c, p) = (c.clone(), p.clone());
                    async move {
                        EchoClient::new(&c).echo(p).await.expect("runtime call");
                    }
                })
                .await
            };
            println!(
                "{side}: {:.0} req/s, cpu/call {:.2} µs here, {:.2} µs nats-server",
                f.throughput, f.cpu_client, f.cpu_server
            );
        }
        return;
    }
    let mut raw = Vec::new();
    let mut ours = Vec::new();
    let mut http = Vec::new();
    let mut binary = Vec::new();
    for round in 0..s.rounds {
        let (rq, p) = (requester.clone(), payload.clone());
        let r = measure(&s, server.pid(), move || {
            let (rq, p) = (rq.clone(), p.clone());
            async move {
                rq.request("bench.echo", p.into())
                    .await
                    .expect("raw request");
            }
        })
        .await;
        let (c, p) = (caller.clone(), payload.clone());
        let o = measure(&s, server.pid(), move || {
            let (c, p) = (c.clone(), p.clone());
            async move {
                EchoClient::new(&c).echo(p).await.expect("runtime call");
            }
        })
        .await;
        // The references after the pair they explain.
        http.push(framed(&s, server.pid(), &requester, &payload, Framing::Http).await);
        binary.push(framed(&s, server.pid(), &requester, &payload, Framing::Binary).await);
        println!(
            "round {round}: raw p50 {:?} p99 {:?} {:.0} req/s (cpu/call {:.2} µs here, {:.2} µs nats-server, {:.2} syscalls, {:.2} switches) | runtime p50 {:?} p99 {:?} {:.0} req/s (cpu/call {:.2} µs here, {:.2} µs nats-server, {:.2} syscalls, {:.2} switches)",
            r.p50,
            r.p99,
            r.throughput,
            r.cpu_client,
            r.cpu_server,
            r.syscalls,
            r.switches,
            o.p50,
            o.p99,
            o.throughput,
            o.cpu_client,
            o.cpu_server,
            o.syscalls,
            o.switches
        );
        raw.push(r);
        ours.push(o);
    }
    let us = |v: &[Figures], f: fn(&Figures) -> f64| median(v.iter().map(f).collect());
    let p50 = |f: &Figures| f.p50.as_secs_f64() * 1e6;
    let p99 = |f: &Figures| f.p99.as_secs_f64() * 1e6;
    let tput = |f: &Figures| f.throughput;
    let (rp50, rp99, rt) = (us(&raw, p50), us(&raw, p99), us(&raw, tput));
    let (op50, op99, ot) = (us(&ours, p50), us(&ours, p99), us(&ours, tput));
    // Each round measures both sides back to back, so a ratio within a round
    // cancels the drift of a shared machine (whose speed can change by 2x
    // within one run): the median of the per-round ratios is the figure
    // judged against the goals. The ratio of the two columns' medians is
    // printed too; it mixes rounds and moves with the drift.
    let paired =
        |f: fn(&Figures) -> f64| median(raw.iter().zip(&ours).map(|(r, o)| f(o) / f(r)).collect());
    println!(
        "| figure | raw async-nats | buswarden runtime | runtime/raw: median of per-round ratios | ratio of the medians | goal |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| p50 latency | {rp50:.0} µs | {op50:.0} µs | {:.2}x | {:.2}x | <= 1.2x |",
        paired(p50),
        op50 / rp50
    );
    println!(
        "| p99 latency | {rp99:.0} µs | {op99:.0} µs | {:.2}x | {:.2}x | <= 1.2x |",
        paired(p99),
        op99 / rp99
    );
    println!(
        "| throughput ({} in flight) | {rt:.0} req/s | {ot:.0} req/s | {:.2}x | {:.2}x | >= 0.85x |",
        s.in_flight,
        paired(tput),
        ot / rt
    );
    let cpu = |v: &[Figures]| (us(v, |f| f.cpu_client), us(v, |f| f.cpu_server));
    let ((rc, rs), (oc, os)) = (cpu(&raw), cpu(&ours));
    println!(
        "| CPU per call, this process | {rc:.2} µs | {oc:.2} µs | {:.2}x | |",
        oc / rc
    );
    println!(
        "| CPU per call, nats-server | {rs:.2} µs | {os:.2} µs | {:.2}x | |",
        os / rs
    );
    for (what, v) in [
        ("Microbus's HTTP framing (what the runtime sends)", &http),
        ("the previous binary envelope", &binary),
    ] {
        let (wp50, wt) = (us(v, p50), us(v, tput));
        let (wc, ws) = cpu(v);
        println!(
            "reference, raw async-nats on a layout subject carrying {what}: \
             p50 {wp50:.0} µs ({:.2}x raw), {wt:.0} req/s ({:.2}x raw), CPU per call {wc:.1} µs here, {ws:.1} µs nats-server, {:.2} syscalls per call here",
            wp50 / rp50,
            wt / rt,
            us(v, |f| f.syscalls)
        );
    }
    let pair = |f: fn(&Figures) -> f64| {
        median(http.iter().zip(&binary).map(|(h, b)| f(h) / f(b)).collect())
    };
    println!(
        "cost of the HTTP framing against the binary envelope (median of per-round ratios): \
         p50 {:.2}x, throughput {:.2}x, CPU per call here {:.2}x, in nats-server {:.2}x; \
         request {} bytes vs {} bytes, response {} vs {} bytes",
        pair(p50),
        pair(tput),
        pair(|f| f.cpu_client),
        pair(|f| f.cpu_server),
        http_request(&payload).len(),
        binary_envelope::request(1, "id-abcdefghij", payload.as_bytes()).len(),
        http_response_len(&payload),
        binary_envelope::respond(&binary_envelope::request(
            1,
            "id-abcdefghij",
            payload.as_bytes()
        ))
        .map_or(0, |r| r.len()),
    );
}

/// The request subject of the reference runs, shaped like the runtime's.
const HTTP_SUBJECT: &str = "microbus.safe.443.caller_bench.echo_refer._.POST.echo";
/// The same shape for the binary envelope (its own subscription).
const BINARY_SUBJECT: &str = "microbus.safe.443.caller_bench.echo_binary._.POST.echo";

#[derive(Clone, Copy)]
enum Framing {
    Http,
    Binary,
}

/// A request as the runtime writes it for a call outside any trace:
/// transport headers (no `From-Version`, as Microbus for version 0),
/// budget and depth, a JSON object body (no `traceparent`: sent only
/// inside a trace, as Microbus with tracing off).
fn http_request(payload: &str) -> bytes::Bytes {
    let mut env = Envelope::request(
        "POST",
        "https://echo.refer/echo",
        &id::message_id(),
        "id-abcdefghij",
    );
    env.from_host = "caller.bench".into();
    env.time_budget = Some(Duration::from_secs(20));
    env.call_depth = 1;
    env.encode(payload.as_bytes()).expect("request")
}

fn http_response_len(payload: &str) -> usize {
    let mut out = Envelope::reply(Kind::Response, 200, "Ab3dEf7h", "id-responder1");
    out.from_host = "echo.refer".into();
    out.encode(payload.as_bytes()).map_or(0, |b| b.len())
}

/// Raw async-nats request/reply carrying one framing.
async fn framed(
    s: &Settings,
    server_pid: u32,
    requester: &async_nats::Client,
    payload: &str,
    framing: Framing,
) -> Figures {
    let (rq, p) = (requester.clone(), payload.to_string());
    measure(s, server_pid, move || {
        let (rq, p) = (rq.clone(), p.clone());
        async move {
            match framing {
                Framing::Http => {
                    let reply = rq
                        .request(HTTP_SUBJECT, http_request(&p))
                        .await
                        .expect("raw request with HTTP framing");
                    Envelope::decode(&reply.payload).expect("HTTP response");
                }
                Framing::Binary => {
                    let req = binary_envelope::request(rand_id(), "id-abcdefghij", p.as_bytes());
                    let reply = rq
                        .request(BINARY_SUBJECT, req.into())
                        .await
                        .expect("raw request with binary envelope");
                    binary_envelope::decode(&reply.payload).expect("binary response");
                }
            }
        }
    })
    .await
}

fn rand_id() -> u128 {
    u128::from_le_bytes(
        id::message_id()
            .repeat(2)
            .as_bytes()
            .try_into()
            .unwrap_or([0; 16]),
    )
}

/// The runtime's previous payload envelope (before it spoke Microbus's
/// HTTP framing), kept here only as the reference the HTTP framing is
/// measured against: version 0xB1, kind, flags, status, a 16-byte message
/// id, the sender id, the query, the headers (none here), the body.
mod binary_envelope {
    pub fn request(msg_id: u128, from_id: &str, body: &[u8]) -> Vec<u8> {
        write(1, 0, msg_id, from_id, body)
    }

    fn write(kind: u8, status: u16, msg_id: u128, from_id: &str, body: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + from_id.len() + body.len());
        buf.extend_from_slice(&[0xB1, kind, 0]);
        buf.extend_from_slice(&status.to_be_bytes());
        buf.extend_from_slice(&msg_id.to_be_bytes());
        buf.push(from_id.len() as u8);
        buf.extend_from_slice(from_id.as_bytes());
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.extend_from_slice(body);
        buf
    }

    /// Kind, status, message id, sender id and body, every length checked.
    pub fn decode(p: &[u8]) -> Option<(u8, u16, u128, &str, &[u8])> {
        if p.len() < 22 || p[0] != 0xB1 {
            return None;
        }
        let status = u16::from_be_bytes([p[3], p[4]]);
        let id = u128::from_be_bytes(p[5..21].try_into().ok()?);
        let n = usize::from(p[21]);
        let from = std::str::from_utf8(p.get(22..22 + n)?).ok()?;
        let mut at = 22 + n;
        let q = usize::from(u16::from_be_bytes(p.get(at..at + 2)?.try_into().ok()?));
        std::str::from_utf8(p.get(at + 2..at + 2 + q)?).ok()?;
        at += 2 + q;
        let headers = u16::from_be_bytes(p.get(at..at + 2)?.try_into().ok()?);
        if headers != 0 {
            return None;
        }
        Some((p[1], status, id, from, p.get(at + 2..)?))
    }

    /// The response to a request: same id, status 200, the body echoed.
    pub fn respond(p: &[u8]) -> Option<Vec<u8>> {
        let (_, _, id, _, body) = decode(p)?;
        Some(write(2, 200, id, "", body))
    }
}
