//! Interop with a Go Microbus peer on a real nats-server: the peer
//! (runtime/interop/peer, built by ci/deps.sh from Go's net/http and the
//! NATS Go client, following the reference documents, not this crate) calls
//! a buswarden service and a buswarden service calls it, every way the
//! protocol has: unicast, query-string and JSON arguments, multicast, a slow
//! handler (ack path), an error, a fragmented 2.5 MiB body both ways, a time
//! budget that runs out, call depth 64, header propagation, a host nobody
//! serves. Byte-level golden checks: the requests and responses the runtime
//! publishes are read back with Go's `http.ReadRequest`/`ReadResponse`.

use buswarden::wire::{self, Envelope};
use buswarden::{Connector, Error, context};
use buswarden_testkit::NatsServer;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a handler saw of its caller and the propagated headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Who {
    caller: String,
    actor: String,
    tenant: String,
    language: String,
    forwarded: String,
    trace: String,
    depth: u32,
    #[serde(rename = "budgetMs")]
    budget_ms: i64,
}

#[buswarden::api(host = "rs.example")]
pub trait Rs {
    #[function(GET, "/add")]
    #[output("sum")]
    async fn add(&self, x: i64, y: i64) -> Result<i64, Error>;
    #[function(GET, "/greet")]
    #[output("greeting")]
    async fn greet(&self, #[json("name")] who: String) -> Result<String, Error>;
    #[function(GET, ":888/ping")]
    #[output("pong")]
    async fn ping(&self) -> Result<String, Error>;
    #[function(GET, "/slow")]
    #[output("done")]
    async fn slow(&self, ms: u64) -> Result<bool, Error>;
    #[function(GET, "/fail")]
    async fn fail(&self) -> Result<(), Error>;
    #[function(POST, "/echo")]
    async fn echo(&self, data: String) -> Result<String, Error>;
    #[function(GET, "/recurse")]
    #[output("depth")]
    async fn recurse(&self) -> Result<u32, Error>;
    #[function(GET, "/context")]
    #[output("who")]
    async fn context(&self) -> Result<Who, Error>;
}

/// The Go peer's endpoints, as a buswarden client sees them.
#[buswarden::api(host = "go.example")]
pub trait Go {
    #[function(GET, "/hello")]
    #[output("greeting")]
    async fn hello(&self, name: String) -> Result<String, Error>;
    #[function(POST, "/echo")]
    #[output("data")]
    async fn echo(&self, data: String) -> Result<String, Error>;
    #[function(GET, "/slow")]
    #[output("done")]
    async fn slow(&self, ms: u64) -> Result<bool, Error>;
    #[function(GET, "/fail")]
    async fn fail(&self) -> Result<(), Error>;
    #[function(GET, "/whoami")]
    #[output("who")]
    async fn whoami(&self) -> Result<Who, Error>;
    #[function(GET, "/recurse")]
    #[output("depth")]
    async fn recurse(&self) -> Result<u32, Error>;
    #[function(GET, ":888/ping")]
    #[output("pong")]
    async fn ping(&self) -> Result<String, Error>;
}

struct RsService {
    svc: Connector,
}

impl Rs for RsService {
    async fn add(&self, x: i64, y: i64) -> Result<i64, Error> {
        Ok(x + y)
    }
    async fn greet(&self, who: String) -> Result<String, Error> {
        Ok(format!("hello {who}"))
    }
    async fn ping(&self) -> Result<String, Error> {
        Ok(self.svc.instance_id().unwrap_or_default())
    }
    async fn slow(&self, ms: u64) -> Result<bool, Error> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(true)
    }
    async fn fail(&self) -> Result<(), Error> {
        Err(Error::status(409, "rust says no"))
    }
    async fn echo(&self, data: String) -> Result<String, Error> {
        Ok(data)
    }
    async fn recurse(&self) -> Result<u32, Error> {
        GoClient::new(&self.svc).recurse().await
    }
    async fn context(&self) -> Result<Who, Error> {
        let frame = context::current();
        let header = |name: &str| {
            frame
                .forwarded
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Ok(Who {
            caller: frame.caller.clone().unwrap_or_default(),
            actor: frame.actor.as_deref().unwrap_or_default().to_string(),
            tenant: context::baggage("tenant").unwrap_or_default(),
            language: header("Accept-Language"),
            forwarded: header("X-Forwarded-Host"),
            trace: frame.trace.clone().map(|(t, _)| t).unwrap_or_default(),
            depth: frame.depth,
            budget_ms: 0,
        })
    }
}

fn peer_binary() -> String {
    std::env::var("BUSWARDEN_INTEROP_PEER")
        .expect("BUSWARDEN_INTEROP_PEER is not set: source ci/deps.sh (it builds the Go peer)")
}

/// The Go peer serving go.example (two instances) until dropped.
struct GoPeer(Child);

impl GoPeer {
    fn start(url: &str) -> Self {
        let mut child = Command::new(peer_binary())
            .args([
                "serve",
                "-url",
                url,
                "-host",
                "go.example",
                "-target",
                "rs.example",
                "-instances",
                "2",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Go peer");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        GoPeer(child)
    }
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn configured(server: &NatsServer, host: &str) -> Connector {
    Connector::with_config(host, buswarden::Config::default())
        .with_url(server.url())
        .with_timeout(Duration::from_secs(20))
        .with_ack_window(Duration::from_millis(500))
}

async fn connector(server: &NatsServer, host: &str) -> Connector {
    let c = configured(server, host);
    c.connect().await.expect("connect");
    c
}

async fn rs(server: &NatsServer) -> Connector {
    rs_in(server, None).await
}

/// An instance of rs.example, in `locality` if given.
async fn rs_in(server: &NatsServer, locality: Option<&str>) -> Connector {
    let mut svc = configured(server, "rs.example");
    if let Some(l) = locality {
        svc = svc.with_locality(l);
    }
    svc.connect().await.expect("connect");
    svc.serve(RsServer::new(RsService { svc: svc.clone() }))
        .await
        .unwrap();
    svc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_peer_calls_buswarden_every_way() {
    let server = NatsServer::start("").unwrap();
    let a = rs(&server).await;
    let b = rs_in(&server, Some("eu-west")).await;
    let _go = GoPeer::start(server.url());
    let url = server.url().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(peer_binary())
            .args([
                "call",
                "-url",
                &url,
                "-host",
                "probe.example",
                "-target",
                "rs.example",
            ])
            .output()
            .expect("run the Go peer")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let get = |name: &str| {
        lines
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .clone()
    };
    let unicast = get("unicast");
    assert_eq!(unicast["status"], 200, "{unicast}");
    assert_eq!(unicast["body"], serde_json::json!({"sum": 42}));
    let query = get("query-string");
    assert_eq!(
        query["body"],
        serde_json::json!({"greeting": "hello Gopher & co"}),
        "{query}"
    );
    let multicast = get("multicast");
    let mut pongs: Vec<String> = serde_json::from_value(multicast["body"].clone()).unwrap();
    pongs.sort();
    let mut ids = vec![a.instance_id().unwrap(), b.instance_id().unwrap()];
    ids.sort();
    assert_eq!(pongs, ids, "{multicast}");
    let slow = get("slow");
    assert_eq!(slow["status"], 200, "{slow}");
    assert_eq!(slow["body"], serde_json::json!({"done": true}));
    assert!(slow["ms"].as_i64().unwrap() >= 800);
    let error = get("error");
    assert_eq!(
        (&error["status"], &error["error"]),
        (&serde_json::json!(409), &serde_json::json!("rust says no")),
        "{error}"
    );
    let large = get("large");
    assert_eq!(large["status"], 200, "{large}");
    assert_eq!(
        large["body"],
        serde_json::json!({"length": 16 * 160 * 1024, "intact": true})
    );
    let budget = get("budget");
    assert_eq!(budget["status"], 408, "{budget}");
    assert!(budget["ms"].as_i64().unwrap() < 2_000, "{budget}");
    let depth = get("depth");
    assert_eq!(depth["status"], 508, "{depth}");
    let propagation = get("propagation");
    assert_eq!(
        propagation["body"]["who"],
        serde_json::json!({
            "caller": "probe.example",
            "actor": "actor-go",
            "tenant": "acme",
            "language": "fr-CA",
            "forwarded": "www.example.com",
            "trace": "0af7651916cd43dd8448eb211c80319c",
            "depth": 1,
            "budgetMs": 0,
        }),
        "{propagation}"
    );
    let nobody = get("nobody");
    assert_eq!(nobody["status"], 404, "{nobody}");
    assert!(nobody["ms"].as_i64().unwrap() < 1_500, "{nobody}");
    // Locality: only instance b is in eu-west; it answers calls to
    // loc-eu-west and loc-eu and names its locality, as Microbus does.
    assert_eq!(b.locality().as_deref(), Some("loc-eu-west"));
    for (name, sum) in [("locality", 3), ("locality-broad", 7)] {
        let l = get(name);
        assert_eq!(l["status"], 200, "{l}");
        assert_eq!(l["body"], serde_json::json!({"sum": sum}), "{l}");
        assert_eq!(l["locality"], "eu-west", "{l}");
    }
    let l = get("locality-nobody");
    assert_eq!(l["status"], 404, "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buswarden_calls_a_go_peer_every_way() {
    let server = NatsServer::start("").unwrap();
    let rs_svc = rs(&server).await;
    let _go = GoPeer::start(server.url());
    let caller = connector(&server, "caller.example").await;
    let go = GoClient::new(&caller);

    assert_eq!(
        go.hello("Rustacean & co".into()).await.unwrap(),
        "hello Rustacean & co"
    );
    let pongs = GoMulticastClient::new(&caller).ping().await.unwrap();
    assert_eq!(pongs.len(), 2, "{pongs:?}");
    assert!(pongs.iter().all(|p| p.as_ref().unwrap().starts_with("id-")));
    let all = GoMulticastClient::new(&caller)
        .for_host("all")
        .ping()
        .await
        .unwrap();
    // The broadcast host reaches every service with the control endpoint:
    // the two Go replicas and the buswarden service.
    assert_eq!(all.len(), 3, "{all:?}");

    let start = Instant::now();
    assert!(go.slow(800).await.unwrap());
    assert!(start.elapsed() >= Duration::from_millis(800));

    match go.fail().await {
        Err(Error::Remote {
            host,
            status,
            message,
        }) => assert_eq!(
            (host.as_str(), status, message.as_str()),
            ("go.example", 409, "go says no")
        ),
        other => panic!("expected a remote 409, got {other:?}"),
    }

    let big: String = "fedcba9876543210".repeat(160 * 1024);
    assert_eq!(go.echo(big.clone()).await.unwrap(), big);

    let start = Instant::now();
    let err = caller
        .get("https://go.example/slow?ms=3000")
        .timeout(Duration::from_millis(700))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 408, "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));

    match go.recurse().await {
        Err(Error::Remote { status: 508, .. }) => {}
        other => panic!("expected 508, got {other:?}"),
    }

    let frame = context::Frame {
        actor: Some("actor-rs".into()),
        forwarded: vec![
            ("Accept-Language".into(), "de-CH".into()),
            ("X-Forwarded-Host".into(), "shop.example.com".into()),
        ],
        trace: Some(("4bf92f3577b34da6a3ce929d0e0e4736".into(), "01".into())),
        ..Default::default()
    }
    .with_baggage("Tenant", "globex");
    let who = frame.scope(go.whoami()).await.unwrap();
    assert_eq!(
        (
            who.caller.as_str(),
            who.actor.as_str(),
            who.tenant.as_str(),
            who.language.as_str(),
            who.forwarded.as_str(),
            who.trace.as_str(),
            who.depth
        ),
        (
            "caller.example",
            "actor-rs",
            "globex",
            "de-CH",
            "shop.example.com",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            1
        )
    );
    // The budget the Go handler got: the call's 20 s minus a round trip.
    assert!(
        (18_000..20_000).contains(&who.budget_ms),
        "{}",
        who.budget_ms
    );

    let start = Instant::now();
    let err = caller.get("https://nobody.example/x").await.unwrap_err();
    assert!(matches!(err, Error::AckTimeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    drop(rs_svc);
}

/// Reads a message with Go's net/http through the peer.
fn go_parse(kind: &str, bytes: &[u8]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(peer_binary())
        .arg(kind)
        .arg(&path)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_reads_what_the_runtime_writes_byte_for_byte() {
    let server = NatsServer::start("").unwrap();
    let rs_svc = rs(&server).await;
    let caller = connector(&server, "caller.example").await;
    // A raw observer sees every message the runtime publishes.
    let spy = async_nats::connect(server.url()).await.unwrap();
    let mut wire = spy.subscribe("microbus.>").await.unwrap();
    buswarden_testkit::round_trip(&spy, "probe.spy").await;

    let frame = context::Frame {
        actor: Some("actor-1".into()),
        trace: Some(("4bf92f3577b34da6a3ce929d0e0e4736".into(), "01".into())),
        ..Default::default()
    }
    .with_baggage("Tenant", "acme");
    let c = RsClient::new(&caller);
    assert_eq!(frame.scope(c.add(1, 2)).await.unwrap(), 3);
    assert!(c.slow(300).await.unwrap());
    assert!(matches!(
        c.fail().await,
        Err(Error::Remote { status: 409, .. })
    ));
    assert_eq!(
        c.echo("ünïcode \"quoted\"".into()).await.unwrap(),
        "ünïcode \"quoted\""
    );

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.len() < 10 && Instant::now() < deadline {
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), wire.next()).await {
            seen.push(msg);
        }
    }
    let mut kinds = std::collections::BTreeSet::new();
    let mut traced = 0;
    for msg in &seen {
        let (envelope, body) = Envelope::decode(&msg.payload).unwrap();
        let is_request = !msg.subject.as_str().starts_with("microbus.reply.");
        let go = go_parse(
            if is_request {
                "parse-request"
            } else {
                "parse-response"
            },
            &msg.payload,
        );
        assert!(
            go.get("error").is_none(),
            "Go refused {:?}: {go}",
            msg.payload
        );
        assert_eq!(go["body"].as_str().unwrap().as_bytes(), &body[..]);
        let headers = &go["headers"];
        assert_eq!(headers["Microbus-Msg-Id"][0], envelope.msg_id.as_str());
        assert_eq!(headers["Microbus-Op-Code"][0], envelope.kind.op_code());
        if is_request {
            assert_eq!(go["method"], envelope.method.as_str());
            assert_eq!(go["url"], envelope.url.as_str());
            assert_eq!(headers["Microbus-Call-Depth"][0], "1");
            // Sent only inside a trace (as Microbus with tracing off):
            // where it is, Go reads it.
            if let Some(tp) = envelope.header(wire::TRACEPARENT) {
                assert_eq!(headers["Traceparent"][0].as_str(), Some(tp));
                assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
                traced += 1;
            }
            // Microbus omits From-Version for version 0; so do we.
            assert!(headers.get("Microbus-From-Version").is_none());
        } else {
            assert_eq!(go["status"], envelope.status);
        }
        kinds.insert(envelope.kind.op_code());
    }
    // The call made inside the trace carried it (the others none).
    assert_eq!(
        traced,
        1,
        "{:?}",
        seen.iter()
            .map(|m| String::from_utf8_lossy(&m.payload[..m.payload.len().min(120)]).into_owned())
            .collect::<Vec<_>>()
    );
    // Requests, responses, the slow handler's ack and the error were all read.
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec!["Ack", "Err", "Req", "Res"]
    );
    drop(Arc::new(rs_svc));
}
