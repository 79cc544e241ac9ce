//! The ingress benchmark's server side (run by `core/ingress/bench/run.sh`,
//! never by the test suite): a nats-server, a bus endpoint
//! (`GET https://bench.example/hello`), the ingress in front of it, and a
//! plain hyper backend answering `GET /hello` with the same bytes (what
//! nginx proxies to). Before it reports ready it measures the ingress's
//! overhead over a direct bus call: the same request sequentially, from a
//! Rust bus client and through the ingress over one keep-alive HTTP/1.1
//! connection.
//!
//! It also serves the **floor**: the least any HTTP-to-bus bridge can cost
//! on this machine, a bare hyper server whose handler forwards each request
//! as one raw async-nats request (`Client::request`, `_INBOX` reply, no
//! Microbus framing, no checks) to a raw subscriber answering the same
//! bytes. No buswarden code is on that path, so what the floor serves is an
//! upper bound for the ingress's throughput.
//!
//! Prints `direct …`/`through …` latency lines, then
//! `ready <ingress port> <backend port> <floor port>`, and runs until its
//! standard input closes.

use buswarden::{Connector, Error, Request, Response};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// What both backends answer.
const BODY: &[u8] =
    br#"{"result":"hello from the bench endpoint, a body of about one hundred bytes......."}"#;

#[buswarden::api(host = "bench.example")]
pub trait Bench {
    #[web(GET, "/hello")]
    async fn hello(&self, req: Request) -> Result<Response, Error>;
}

struct BenchService;

impl Bench for BenchService {
    async fn hello(&self, _req: Request) -> Result<Response, Error> {
        Ok(Response::ok(BODY).with_header("Content-Type", "application/json"))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    println!(
        "{name} n={} p50={}us p99={}us",
        samples.len(),
        p50.as_micros(),
        percentile(&samples, 0.99).as_micros()
    );
    p50
}

fn main() -> anyhow::Result<()> {
    // INGRESS_BENCH_WORKERS: the runtime's worker threads (default: one
    // per core), to see how the proxy scales on the shared cores.
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("INGRESS_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        rt.worker_threads(n);
    }
    rt.enable_all().build()?.block_on(run())
}

/// Serves every connection to a new loopback port (HTTP/1.1 or 2) with
/// `handle` answering each request, on a task of its own. Returns the port.
async fn serve_http<F, Fut>(handle: F) -> anyhow::Result<u16>
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = hyper::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handle = handle.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(handle().await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(port)
}

fn json_response(body: Bytes) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(body));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// The floor (see the module doc): a raw responder on `floor.hello` and a
/// bare hyper server forwarding each request to it over its own NATS
/// connection. Returns the HTTP port.
async fn floor(url: &str) -> anyhow::Result<u16> {
    let responder = async_nats::connect(url).await?;
    let mut sub = responder.subscribe("floor.hello").await?;
    buswarden_testkit::round_trip(&responder, "floor.probe").await;
    tokio::spawn(async move {
        while let Some(msg) = futures_util::StreamExt::next(&mut sub).await {
            if let Some(reply) = msg.reply {
                let _ = responder.publish(reply, Bytes::from_static(BODY)).await;
            }
        }
    });
    let proxy = async_nats::connect(url).await?;
    serve_http(move || {
        let proxy = proxy.clone();
        async move {
            match proxy.request("floor.hello", Bytes::new()).await {
                Ok(msg) => json_response(msg.payload),
                Err(_) => {
                    let mut r = hyper::Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                    r
                }
            }
        }
    })
    .await
}

async fn run() -> anyhow::Result<()> {
    let server = buswarden_testkit::NatsServer::start("max_payload: 1048576\n")?;
    let bench = Connector::new("bench.example").with_url(server.url());
    bench.connect().await?;
    bench.serve(BenchServer::new(BenchService)).await?;

    // The ingress, prod mode, no rate limit.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ingress.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nnats-url = \"{}\"\n",
            server.url()
        ),
    )?;
    let config = ingress_core::Config::load(&path)?;
    let svc = ingress_core::connector(&config);
    svc.connect().await?;
    let ingress = ingress_core::Ingress::new(config, svc);
    let running = ingress_core::start(ingress).await?;

    // The plain backend nginx proxies to: the same bytes, same header.
    let backend_port = serve_http(|| async { json_response(Bytes::from_static(BODY)) }).await?;
    let floor_port = floor(server.url()).await?;

    // Overhead over a direct bus call: sequential, warm.
    let client = Connector::new("client.example").with_url(server.url());
    client.connect().await?;
    let n = 3000;
    let mut direct = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let t = Instant::now();
        let r = client.get("https://bench.example/hello").send().await?;
        if i >= 200 {
            direct.push(t.elapsed());
        }
        assert_eq!(r.body, BODY);
    }
    let stream = tokio::net::TcpStream::connect(running.addr).await?;
    stream.set_nodelay(true)?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("the connection to the ingress failed: {e:?}");
        }
    });
    let mut through = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let req = hyper::Request::get("/bench.example/hello")
            .header("Host", "127.0.0.1")
            .body(Full::new(Bytes::new()))?;
        send.ready().await?;
        let t = Instant::now();
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| anyhow::anyhow!("request {i} through the ingress: {e:?}"))?;
        let body = resp.into_body().collect().await?.to_bytes();
        if i >= 200 {
            through.push(t.elapsed());
        }
        assert_eq!(&body[..], BODY);
    }
    let d = report("direct bus call (Rust client)", direct);
    let t = report("through the ingress (HTTP/1.1 keep-alive)", through);
    println!(
        "ingress overhead p50={}us ({:.2}x the direct call)",
        t.saturating_sub(d).as_micros(),
        t.as_secs_f64() / d.as_secs_f64()
    );
    // The bus alone under the same concurrency as wrk's (64 calls in
    // flight, 5 s): what the endpoint and the broker give without HTTP.
    let stop = Instant::now() + Duration::from_secs(5);
    let mut tasks = vec![];
    for _ in 0..64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop {
                if client
                    .get("https://bench.example/hello")
                    .send()
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut calls = 0;
    for t in tasks {
        calls += t.await?;
    }
    println!(
        "direct bus calls, 64 in flight: {:.0} calls/s",
        calls as f64 / 5.0
    );
    println!("ready {} {backend_port} {floor_port}", running.addr.port());

    // Until the script closes our standard input.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await?;
    running.shutdown().await;
    drop(server);
    Ok(())
}
