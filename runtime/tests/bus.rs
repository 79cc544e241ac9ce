//! The runtime against a real nats-server (plain mode): every call form,
//! certified caller identity, reply and event spoofing, broker refusals.

use buswarden::wire::{self, Envelope, Kind};
use buswarden::{Connector, Error, Method, Request, Response, context};
use buswarden_testkit::NatsServer;
use futures_util::StreamExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What a handler saw: certified caller, actor, `Tenant` baggage.
pub type Seen = (Option<String>, Option<String>, Option<String>);

#[buswarden::api(host = "calc.example")]
pub trait Calc {
    /// Adds, subtracts or multiplies.
    #[function(GET, ":443/arithmetic")]
    async fn arithmetic(&self, x: i64, op: String, y: i64) -> Result<i64, Error>;
    #[function(POST, "/square")]
    async fn square(&self, x: i64) -> Result<i64, Error>;
    #[function(GET, "/items/{id}/parts/{part}")]
    async fn item(&self, id: String, part: u32, verbose: bool) -> Result<String, Error>;
    #[web(GET, ":444/files/{path...}")]
    async fn files(&self, req: Request) -> Result<Response, Error>;
    #[function(ANY, ":666/rotate-keys")]
    async fn rotate_keys(&self) -> Result<(), Error>;
    #[function(GET, ":888/whoami")]
    async fn whoami(&self) -> Result<String, Error>;
    #[function(GET, "/context")]
    async fn context(&self) -> Result<Seen, Error>;
    #[function(GET, "/slow")]
    async fn slow(&self, ms: u64) -> Result<String, Error>;
    /// Served under another hostname (the service still replies as itself).
    #[function(GET, "//calc-legacy.example:443/legacy/{id}")]
    async fn legacy(&self, id: String) -> Result<String, Error>;
    #[event(POST, ":417/on-overflow")]
    async fn on_overflow(&self, x: i64) -> Result<i64, Error>;
}

/// The same route as `Calc::square`, served under another hostname.
#[buswarden::api(host = "calc-eu.example")]
pub trait CalcEu {
    #[function(POST, "/square")]
    async fn square(&self, x: i64) -> Result<i64, Error>;
}

#[buswarden::api(host = "front.example")]
pub trait Front {
    #[function(GET, "/relay")]
    async fn relay(&self) -> Result<Seen, Error>;
}

struct CalcService {
    svc: Connector,
    rotations: Arc<AtomicU32>,
}

impl Calc for CalcService {
    async fn arithmetic(&self, x: i64, op: String, y: i64) -> Result<i64, Error> {
        match op.as_str() {
            "+" => Ok(x + y),
            "-" => Ok(x - y),
            "*" => Ok(x * y),
            _ => Err(Error::status(400, format!("unknown operator {op:?}"))),
        }
    }
    async fn square(&self, x: i64) -> Result<i64, Error> {
        let sq = x * x;
        if sq > 100 {
            let sinks = CalcTrigger::new(&self.svc).on_overflow(sq).await?;
            return Ok(sinks.into_iter().map(|r| r.unwrap_or(-1)).sum());
        }
        Ok(sq)
    }
    async fn item(&self, id: String, part: u32, verbose: bool) -> Result<String, Error> {
        Ok(format!("{id}/{part}/{verbose}"))
    }
    async fn files(&self, req: Request) -> Result<Response, Error> {
        Ok(
            Response::ok(format!("{} {} {}", req.method, req.path, req.query))
                .with_header("X-From", req.from_host().unwrap_or_default()),
        )
    }
    async fn rotate_keys(&self) -> Result<(), Error> {
        self.rotations.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn whoami(&self) -> Result<String, Error> {
        Ok(self.svc.instance_id().unwrap_or_default())
    }
    async fn context(&self) -> Result<Seen, Error> {
        Ok((
            context::caller(),
            context::actor(),
            context::baggage("tenant"),
        ))
    }
    async fn slow(&self, ms: u64) -> Result<String, Error> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok("genuine".into())
    }
    async fn legacy(&self, id: String) -> Result<String, Error> {
        Ok(format!("legacy {id}"))
    }
}

struct EuService;
impl CalcEu for EuService {
    async fn square(&self, x: i64) -> Result<i64, Error> {
        Ok(-x * x)
    }
}

struct FrontService {
    svc: Connector,
}
impl Front for FrontService {
    async fn relay(&self) -> Result<Seen, Error> {
        CalcClient::new(&self.svc).context().await
    }
}

async fn connector(server: &NatsServer, host: &str) -> Connector {
    let c = Connector::with_config(host, buswarden::Config::default())
        .with_url(server.url())
        .with_timeout(Duration::from_secs(3))
        .with_ack_window(Duration::from_millis(500));
    c.connect().await.expect("connect");
    c
}

async fn calc(server: &NatsServer) -> (Connector, Arc<AtomicU32>) {
    let svc = connector(server, "calc.example").await;
    let rotations = Arc::new(AtomicU32::new(0));
    svc.serve(CalcServer::new(CalcService {
        svc: svc.clone(),
        rotations: rotations.clone(),
    }))
    .await
    .expect("serve");
    (svc, rotations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_in_every_form() {
    let server = NatsServer::start("").unwrap();
    let (_calc, rotations) = calc(&server).await;
    let caller = connector(&server, "caller.example").await;

    let c = CalcClient::new(&caller);
    assert_eq!(c.arithmetic(2, "+".into(), 3).await.unwrap(), 5);
    assert_eq!(c.square(4).await.unwrap(), 16);
    assert_eq!(c.item("a-b".into(), 7, true).await.unwrap(), "a-b/7/true");
    match c.arithmetic(1, "%".into(), 1).await {
        Err(Error::Remote {
            host,
            status,
            message,
        }) => {
            assert_eq!((host.as_str(), status), ("calc.example", 400));
            assert!(message.contains("unknown operator"), "{message}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    c.rotate_keys().await.unwrap();
    assert_eq!(rotations.load(Ordering::SeqCst), 1);
    // An endpoint served under another hostname answers (its reply comes
    // from calc.example, the API's host, and is accepted as such).
    assert_eq!(c.legacy("7".into()).await.unwrap(), "legacy 7");

    let resp = c
        .files(Request::new().with_path("/files/a/b.txt").with_query("v=1"))
        .await
        .unwrap();
    assert_eq!(resp.text(), "GET /files/a/b.txt v=1");
    assert_eq!(resp.header("X-From"), Some("caller.example"));

    // The client works from an Arc and from a struct field with 'static.
    let shared = Arc::new(caller.clone());
    struct Holder {
        calc: CalcClient<'static>,
    }
    let h = Holder {
        calc: CalcClient::new(&shared),
    };
    assert_eq!(h.calc.square(3).await.unwrap(), 9);
    let spawned = tokio::spawn(async move { h.calc.square(5).await });
    assert_eq!(spawned.await.unwrap().unwrap(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_calls_for_host_multicast_and_direct_addressing() {
    let server = NatsServer::start("").unwrap();
    let (a, _) = calc(&server).await;
    let (b, _) = calc(&server).await;
    let eu = connector(&server, "calc-eu.example").await;
    eu.serve(CalcEuServer::new(EuService)).await.unwrap();
    let caller = connector(&server, "caller.example").await;

    let r = caller
        .get("https://calc.example:444/files/x/y?z=1")
        .await
        .unwrap();
    assert_eq!(r.text(), "GET /files/x/y z=1");
    let r = caller
        .post("https://calc.example/square", br#"{"x":6}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(r.text(), r#"{"result":36}"#);
    let r = caller
        .request(Method::POST, "https://calc.example:666/rotate-keys")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = caller
        .request("GET", "https://calc.example/items/q/parts/2")
        .body(br#"{"verbose":true}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(r.text(), r#"{"result":"q/2/true"}"#);
    // A missing argument is the callee's 400, not a silent default.
    match caller.get("https://calc.example/items/q/parts/2").await {
        Err(Error::Remote {
            status: 400,
            message,
            ..
        }) => assert!(message.contains("verbose"), "{message}"),
        other => panic!("expected a 400, got {other:?}"),
    }

    // for_host: the same API shape on another host.
    assert_eq!(
        CalcClient::new(&caller)
            .for_host("calc-eu.example")
            .square(3)
            .await
            .unwrap(),
        -9
    );

    // Multicast on :888 (no queue group): every replica answers.
    let mut ids: Vec<String> = CalcMulticastClient::new(&caller)
        .whoami()
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    ids.sort();
    let mut expected = vec![a.instance_id().unwrap(), b.instance_id().unwrap()];
    expected.sort();
    assert_eq!(ids, expected);
    let raw = caller
        .publish(Method::GET, "https://calc.example:888/whoami")
        .await
        .unwrap();
    assert_eq!(raw.len(), 2);
    // The control broadcast host `all` reaches every replica too.
    let all = CalcMulticastClient::new(&caller)
        .for_host("all")
        .whoami()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    // On a load-balanced endpoint one replica of the host answers.
    let sq = CalcMulticastClient::new(&caller).square(2).await.unwrap();
    assert_eq!(sq.len(), 1);

    // Direct addressing: every call reaches the named instance.
    let target = b.instance_id().unwrap();
    for _ in 0..6 {
        let who = CalcClient::new(&caller)
            .for_host(&format!("{target}.calc.example"))
            .whoami()
            .await
            .unwrap();
        assert_eq!(who, target);
        let raw = caller
            .get(&format!("https://{target}.calc.example:888/whoami"))
            .await
            .unwrap();
        assert_eq!(raw.text(), format!(r#"{{"result":"{target}"}}"#));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_hooks_and_foreign_events_are_dropped() {
    let server = NatsServer::start("").unwrap();
    let (calc_svc, _) = calc(&server).await;
    let sink1 = connector(&server, "sink-one.example").await;
    let sink2 = connector(&server, "sink-two.example").await;
    let seen = Arc::new(AtomicU32::new(0));
    for (sink, add) in [(&sink1, 1), (&sink2, 2)] {
        let seen = seen.clone();
        CalcHook::new(sink)
            .on_overflow(move |x: i64| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    Ok(x + add)
                }
            })
            .await
            .unwrap();
    }
    let caller = connector(&server, "caller.example").await;
    // square(11) = 121 > 100 fires the event; the result sums the sinks' replies.
    assert_eq!(
        CalcClient::new(&caller).square(11).await.unwrap(),
        122 + 123
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    // Only calc fires calc's events.
    match CalcTrigger::new(&caller).on_overflow(1).await {
        Err(Error::ForeignEvent { source_host, .. }) => assert_eq!(source_host, "calc.example"),
        other => panic!("expected ForeignEvent, got {other:?}"),
    }
    // A forged event published under another source segment is dropped.
    let raw = buswarden::__private::nats_client(&caller).unwrap();
    let before = sink1.stats().foreign_events + sink2.stats().foreign_events;
    let forged = Envelope::request(
        "POST",
        "https://calc.example:417/on-overflow",
        "forged01",
        &caller.instance_id().unwrap(),
    );
    raw.publish(
        "microbus.safe.417.caller_example.calc_example._.POST.on-overflow",
        forged.encode(br#"{"x":5}"#).unwrap(),
    )
    .await
    .unwrap();
    raw.flush().await.unwrap();
    wait_until(|| sink1.stats().foreign_events + sink2.stats().foreign_events > before).await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "a foreign event reached a handler"
    );
    drop(calc_svc);
}

async fn wait_until(f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !f() {
        assert!(Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certified_identity_overwrites_forged_from_host() {
    let server = NatsServer::start("").unwrap();
    let (calc_svc, _) = calc(&server).await;
    let caller = connector(&server, "caller.example").await;
    // Through the typed path the handler's context names the real caller.
    let (who, _, _) = CalcClient::new(&caller).context().await.unwrap();
    assert_eq!(who.as_deref(), Some("caller.example"));

    let raw = buswarden::__private::nats_client(&caller).unwrap();
    let mut replies = raw
        .subscribe(format!(
            "microbus.reply._.*.caller_example.{}",
            caller.instance_id().unwrap()
        ))
        .await
        .unwrap();

    // The runtime never sends a user-set From-Host; a raw publisher forges it.
    for forged in ["Microbus-From-Host", "microbus-from-host"] {
        let mut envelope = Envelope::request(
            "GET",
            "https://calc.example:444/files/who",
            "forged02",
            &caller.instance_id().unwrap(),
        );
        if forged == wire::FROM_HOST {
            envelope.from_host = "admin.example".into();
        } else {
            envelope
                .headers
                .push((forged.to_string(), "admin.example".to_string()));
        }
        raw.publish(
            "microbus.safe.444.caller_example.calc_example._.GET.files.who",
            envelope.encode(b"").unwrap(),
        )
        .await
        .unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(3), replies.next())
            .await
            .unwrap()
            .unwrap();
        let (response, _) = Envelope::decode(&msg.payload).unwrap();
        assert_eq!(response.kind, Kind::Response);
        assert_eq!(
            response.header("X-From"),
            Some("caller.example"),
            "the handler saw a forged caller"
        );
    }
    // A request without a source segment is rejected.
    let before = calc_svc.stats().anonymous_requests;
    let envelope = Envelope::request(
        "POST",
        "https://calc.example/square",
        "forged03",
        &caller.instance_id().unwrap(),
    );
    raw.publish(
        "microbus.safe.443.__.calc_example._.POST.square".replace("__", "_"),
        envelope.encode(br#"{"x":2}"#).unwrap(),
    )
    .await
    .unwrap();
    wait_until(|| calc_svc.stats().anonymous_requests > before).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), replies.next())
            .await
            .is_err(),
        "an anonymous request was answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_replies_are_dropped() {
    let server = NatsServer::start("").unwrap();
    let (_calc, _) = calc(&server).await;
    let caller = connector(&server, "caller.example").await;
    // An eavesdropper on the bus sees the request and answers first, under its
    // own responder segment.
    let evil = async_nats::connect(server.url()).await.unwrap();
    let mut requests = evil
        .subscribe("microbus.safe.443.caller_example.calc_example._.GET.slow")
        .await
        .unwrap();
    buswarden_testkit::round_trip(&evil, "probe.evil").await;
    let evil2 = evil.clone();
    let forger = tokio::spawn(async move {
        let msg = requests.next().await.unwrap();
        let (request, _) = Envelope::decode(&msg.payload).unwrap();
        let response = Envelope::reply(Kind::Response, 200, &request.msg_id, "");
        evil2
            .publish(
                format!(
                    "microbus.reply._.evil_example.caller_example.{}",
                    request.from_id
                ),
                response.encode(b"\"forged\"").unwrap(),
            )
            .await
            .unwrap();
        evil2.flush().await.unwrap();
    });
    let answer = CalcClient::new(&caller).slow(300).await.unwrap();
    forger.await.unwrap();
    assert_eq!(answer, "genuine");
    assert_eq!(caller.stats().spoofed_replies, 1);
    assert_eq!(caller.stats().waiting_calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_kept_but_not_awaited_stalls_no_other_call() {
    let server = NatsServer::start("").unwrap();
    let (_calc, _) = calc(&server).await;
    let caller = connector(&server, "caller.example").await;
    let slow = CalcClient::new(&caller).slow(300);
    tokio::pin!(slow);
    // Polled (so it has read the reply subscription), then left alone.
    assert!(
        tokio::time::timeout(Duration::from_millis(30), &mut slow)
            .await
            .is_err()
    );
    for x in 1..4 {
        let start = Instant::now();
        assert_eq!(CalcClient::new(&caller).square(x).await.unwrap(), x * x);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Its reply was dispatched meanwhile; awaiting it again completes it.
    assert_eq!(slow.await.unwrap(), "genuine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_leave_nothing_waiting() {
    let server = NatsServer::start("").unwrap();
    let (_calc, _) = calc(&server).await;
    let caller = connector(&server, "caller.example").await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        CalcClient::new(&caller).slow(500),
    )
    .await;
    assert!(gave_up.is_err());
    assert_eq!(caller.stats().waiting_calls, 0);
    let err = caller
        .get("https://nobody.example/x")
        .timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }));
    assert_eq!(caller.stats().waiting_calls, 0);
    // The late reply of the abandoned call is counted and dropped.
    wait_until(|| caller.stats().unmatched_replies == 1).await;
    assert_eq!(CalcClient::new(&caller).square(2).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_and_baggage_flow_to_downstream_calls() {
    let server = NatsServer::start("").unwrap();
    let (_calc, _) = calc(&server).await;
    let front = connector(&server, "front.example").await;
    front
        .serve(FrontServer::new(FrontService { svc: front.clone() }))
        .await
        .unwrap();
    let edge = connector(&server, "edge.example").await;
    let frame = context::Frame {
        actor: Some("actor-token-1".into()),
        ..Default::default()
    }
    .with_baggage("Tenant", "acme");
    let (who, actor, tenant) = frame.scope(FrontClient::new(&edge).relay()).await.unwrap();
    // calc sees front as its certified caller, and edge's actor and baggage.
    assert_eq!(who.as_deref(), Some("front.example"));
    assert_eq!(actor.as_deref(), Some("actor-token-1"));
    assert_eq!(tenant.as_deref(), Some("acme"));
    // Outside a frame nothing is carried.
    let (_, actor, tenant) = CalcClient::new(&edge).context().await.unwrap();
    assert_eq!((actor, tenant), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_creds_file_is_named_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Connector::with_config("calc.example", buswarden::Config::default())
        .with_url("nats://127.0.0.1:1")
        .with_creds_dir(dir.path());
    match svc.connect().await {
        Err(Error::Creds { path, .. }) => {
            assert_eq!(path, dir.path().join("calc.example_nats.creds"))
        }
        other => panic!("expected a creds error, got {other:?}"),
    }
    std::fs::write(dir.path().join("calc.example_nats.creds"), "no blocks here").unwrap();
    let err = svc.connect().await.unwrap_err();
    assert!(err.to_string().contains("no user JWT found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_misuse_are_typed_errors() {
    let server = NatsServer::start("").unwrap();
    let caller = connector(&server, "caller.example").await;
    // Nobody serves it: no ack within the ack timeout (500 ms here) is a
    // 404 long before the 3 s time budget.
    let start = Instant::now();
    let err = caller.get("https://nobody.example/x").await.unwrap_err();
    assert!(matches!(err, Error::AckTimeout { .. }), "{err:?}");
    assert_eq!(err.status_code(), 404);
    assert!(start.elapsed() < Duration::from_secs(2));
    // A budget shorter than the ack timeout runs out first: 408.
    let err = caller
        .get("https://nobody.example/x")
        .timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(err.status_code(), 408);
    assert!(matches!(
        caller.get("not a url").await,
        Err(Error::InvalidUrl { .. })
    ));
    assert!(matches!(
        caller.request("G3T", "https://a.example/").await,
        Err(Error::InvalidMethod { .. })
    ));
    let idle = Connector::with_config("idle.example", buswarden::Config::default());
    assert!(matches!(
        CalcClient::new(&idle).square(1).await,
        Err(Error::NotConnected { .. })
    ));
    assert!(matches!(
        caller.connect().await,
        Err(Error::AlreadyConnected { .. })
    ));
    let wrong = connector(&server, "other.example").await;
    let err = wrong.serve(CalcEuServer::new(EuService)).await.unwrap_err();
    assert!(matches!(err, Error::HostMismatch { .. }), "{err:?}");
    let bad = Connector::with_config("bad_host.example", buswarden::Config::default())
        .with_url(server.url());
    assert!(matches!(
        bad.connect().await,
        Err(Error::InvalidHostname { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_refusals_fail_fast_and_name_the_subject() {
    let server = NatsServer::start(
        r#"authorization {
  users = [
    { user: calc, password: calc-pw, permissions: {
        publish: { allow: ["microbus.reply._.calc_example.>"] },
        subscribe: { allow: ["microbus.safe.*.*.calc_example.>", "microbus.danger.666.*.calc_example.>", "microbus.safe.888.*.all.>", "microbus.safe.*.*.calc-legacy_example.>", "microbus.reply._.*.calc_example.*"] } } },
    { user: caller, password: caller-pw, permissions: {
        publish: { allow: ["microbus.safe.443.caller_example.calc_example.*.POST.square", "microbus.reply._.caller_example.>"] },
        subscribe: { allow: ["microbus.reply._.*.caller_example.*"] } } },
    { user: noreply, password: noreply-pw, permissions: {
        publish: { allow: ["microbus.safe.443.noreply_example.calc_example.*.POST.square"] },
        subscribe: { allow: ["microbus.reply._.*.noreply_example.*"] } } },
    { user: nosub, password: nosub-pw, permissions: {
        publish: { allow: ["microbus.reply._.nosub_example.>"] },
        subscribe: { allow: ["nothing.here"] } } }
  ]
}"#,
    )
    .unwrap();
    let calc = Connector::with_config("calc.example", buswarden::Config::default())
        .with_url(server.url())
        .with_user_password("calc", "calc-pw");
    calc.connect().await.unwrap();
    calc.serve(CalcServer::new(CalcService {
        svc: calc.clone(),
        rotations: Arc::new(AtomicU32::new(0)),
    }))
    .await
    .unwrap();
    let caller = Connector::with_config("caller.example", buswarden::Config::default())
        .with_url(server.url())
        .with_user_password("caller", "caller-pw")
        .with_timeout(Duration::from_secs(10));
    caller.connect().await.unwrap();

    // The granted call works.
    assert_eq!(CalcClient::new(&caller).square(5).await.unwrap(), 25);
    // An ungranted one fails at once with the subject, not after 10 s.
    for _ in 0..3 {
        let start = Instant::now();
        let err = CalcClient::new(&caller).rotate_keys().await.unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
        match &err {
            Error::PublishDenied { subject } => {
                assert_eq!(
                    subject,
                    "microbus.danger.666.caller_example.calc_example._.POST.rotate-keys"
                )
            }
            other => panic!("expected PublishDenied, got {other:?}"),
        }
        assert!(err.to_string().contains("rotate-keys"));
    }
    let err = caller
        .get("https://calc.example:444/files/x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PublishDenied { .. }), "{err:?}");
    // A multicast refused by the broker fails the same way.
    let err = CalcMulticastClient::new(&caller)
        .whoami()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PublishDenied { .. }), "{err:?}");
    // A refused subscription (a hook the creds do not allow) is an error too.
    let err = CalcHook::new(&caller)
        .on_overflow(|x: i64| async move { Ok(x) })
        .await
        .unwrap_err();
    match err {
        Error::SubscribeDenied { subject } => {
            assert_eq!(
                subject,
                "microbus.safe.417.*.calc_example._.POST.on-overflow"
            )
        }
        other => panic!("expected SubscribeDenied, got {other:?}"),
    }
    assert!(caller.stats().denied_publishes >= 5);
    // The connection stays usable.
    assert_eq!(CalcClient::new(&caller).square(6).await.unwrap(), 36);

    // Creds without the grant every service has (`PUB <plane>.reply._.<own>.>`:
    // it could never reply) fail at connect, at once, saying so.
    let err = refused_at_connect(&server, "noreply.example", "noreply").await;
    assert!(
        matches!(&err, Error::Subscribe { reason, .. } if reason.contains("PUB <plane>.reply._.<own>.>")),
        "{err:?}"
    );
    // Creds that refuse the reply subscription itself: the refusal, named,
    // at once (the round trip could never come back).
    let err = refused_at_connect(&server, "nosub.example", "nosub").await;
    assert!(
        matches!(&err, Error::SubscribeDenied { subject } if subject.starts_with("microbus.reply._.*.nosub_example.id-")),
        "{err:?}"
    );
}

/// The error `host` gets connecting as `user` (password `<user>-pw`), which
/// must come well before its 10 s timeout.
async fn refused_at_connect(server: &NatsServer, host: &str, user: &str) -> Error {
    let svc = Connector::with_config(host, buswarden::Config::default())
        .with_url(server.url())
        .with_user_password(user, format!("{user}-pw"))
        .with_timeout(Duration::from_secs(10));
    let start = Instant::now();
    let err = svc.connect().await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    err
}

/// Replies are dispatched by the reply subscription's own waker, on the
/// NATS connection task: 2,000 calls in flight at once each get their own
/// answer, on both runtime flavors, and nothing is left waiting or
/// unmatched.
async fn burst_of_replies_reaches_every_call() {
    let server = NatsServer::start("").unwrap();
    let (_calc, _) = calc(&server).await;
    let caller = connector(&server, "caller.example").await;
    let mut calls = Vec::new();
    for x in 0..2_000i64 {
        let c = caller.clone();
        calls.push(tokio::spawn(async move {
            (x, CalcClient::new(&c).arithmetic(x, "*".into(), x).await)
        }));
    }
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        let mut out = Vec::new();
        for call in calls {
            out.push(call.await.unwrap());
        }
        out
    })
    .await
    .expect("every call answered");
    for (x, answer) in all {
        assert_eq!(answer.unwrap(), x * x);
    }
    let stats = caller.stats();
    assert_eq!(stats.waiting_calls, 0);
    assert_eq!(stats.unmatched_replies, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_replies_reaches_every_call_multi_thread() {
    burst_of_replies_reaches_every_call().await;
}

#[tokio::test(flavor = "current_thread")]
async fn burst_of_replies_reaches_every_call_current_thread() {
    burst_of_replies_reaches_every_call().await;
}

/// `serve` returns only once the broker routes to the new endpoint: a call
/// from another connection made the moment it returns is answered. (A
/// socket flush alone does not promise it: the broker may read the
/// caller's request before the server's subscription; the runtime makes a
/// round trip through the broker on its own reply subject first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_answers_the_moment_serve_returns() {
    let server = NatsServer::start("").unwrap();
    let caller = connector(&server, "caller.example").await;
    for i in 0..40i64 {
        let eu = connector(&server, "calc-eu.example").await;
        eu.serve(CalcEuServer::new(EuService)).await.unwrap();
        let got = CalcEuClient::new(&caller).square(i).await;
        assert_eq!(got.unwrap(), -i * i, "call {i}, made as serve returned");
        eu.close().await;
    }
}
