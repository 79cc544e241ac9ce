//! A compromised sink floods one multicast (threat model: "multicast replies
//! are unbounded"). On a real nats-server where each service has only its
//! own grants, a raw async-nats client holding the sink's credentials
//! answers one event of calc.example with 3,000 responses of 64 KiB under
//! distinct responder instance ids. The caller keeps at most its responder
//! and byte limits, drops and counts the rest, frees everything when the
//! call ends, and its peak memory grows by a fraction of the 188 MiB sent.
//! (Its own test binary: the peak memory read is this process's alone.)

use buswarden::wire::{Envelope, Kind};
use buswarden::{Connector, Error};
use buswarden_testkit::NatsServer;
use futures_util::StreamExt as _;
use std::time::{Duration, Instant};

const FLOOD: usize = 3_000;
const SIZE: usize = 64 * 1024;

/// Peak resident memory of this process, in KiB (`VmHWM`).
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

const CONFIG: &str = r#"
max_payload: 1048576
authorization {
  users = [
    { user: calc, password: calc-pw, permissions: {
        publish: { allow: ["microbus.safe.417.calc_example.>", "microbus.reply._.calc_example.>"] },
        subscribe: { allow: ["microbus.reply._.*.calc_example.*"] } } },
    { user: sink, password: sink-pw, permissions: {
        publish: { allow: ["microbus.reply._.sink_example.>"] },
        subscribe: { allow: ["microbus.safe.417.*.calc_example.>", "microbus.reply._.*.sink_example.*"] } } }
  ]
}"#;

/// The hostile sink: answers the next event with `FLOOD` responses, each
/// under its own instance id. Returns when all are published.
async fn hostile_sink(server: &NatsServer) -> tokio::task::JoinHandle<()> {
    let sink = async_nats::ConnectOptions::new()
        .user_and_password("sink".into(), "sink-pw".into())
        .connect(server.url())
        .await
        .unwrap();
    let mut events = sink
        .subscribe("microbus.safe.417.*.calc_example.>")
        .await
        .unwrap();
    // async-nats's flush only writes the socket: the broker may not have
    // read the subscription when calc fires from its own connection (seen:
    // the event's PUB traced before the sink's SUB). A round trip within
    // the sink's own grants proves the subscription is in place.
    buswarden_testkit::round_trip(&sink, "microbus.reply._.sink_example.sink_example.probe").await;
    tokio::spawn(async move {
        let msg = events.next().await.unwrap();
        let (request, _) = Envelope::decode(&msg.payload).unwrap();
        let reply = format!(
            "microbus.reply._.sink_example.calc_example.{}",
            request.from_id
        );
        let body = vec![b'x'; SIZE];
        for i in 0..FLOOD {
            let response =
                Envelope::reply(Kind::Response, 200, &request.msg_id, &format!("id-{i:010}"));
            sink.publish(reply.clone(), response.encode(&body).unwrap())
                .await
                .unwrap();
            // The sink shares this process: flushing as it goes keeps its
            // own send buffer small, so the peak measured is the victim's.
            if i % 16 == 15 {
                sink.flush().await.unwrap();
            }
        }
        sink.flush().await.unwrap();
    })
}

async fn victim(server: &NatsServer, configure: impl FnOnce(Connector) -> Connector) -> Connector {
    let calc = configure(
        Connector::with_config("calc.example", buswarden::Config::default())
            .with_url(server.url())
            .with_user_password("calc", "calc-pw")
            .with_timeout(Duration::from_secs(30))
            // Long enough for the whole flood to arrive while the call waits.
            .with_ack_window(Duration::from_secs(4)),
    );
    calc.connect().await.unwrap();
    calc
}

/// Waits for the hostile sink to finish, failing (not hanging) when it
/// never received the event. (It did, in about 1 run in 25 with two copies
/// of this test at once, while the sink trusted async-nats's `flush` to
/// mean "subscribed": nats-server's trace showed calc's event processed
/// before the sink's subscription. The sink now makes a round trip.)
async fn sink_done(sink: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(60), sink)
        .await
        .expect("the sink never received the event it floods")
        .unwrap();
}

/// calc.example's event, fired through the generated code's own path
/// (`__private`, which only tests may name) to read the raw responses.
async fn fire(calc: &Connector) -> Vec<Result<buswarden::Response, Error>> {
    static SPEC: buswarden::__private::Spec =
        buswarden::__private::Spec::new("POST", ":417/on-overflow");
    buswarden::__private::Caller::new(calc.clone())
        .trigger(
            "calc.example",
            &SPEC,
            &[],
            buswarden::__private::Encoded {
                query: String::new(),
                body: br#"{"x":1}"#.to_vec(),
            },
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_multicast_replies_is_capped_and_freed() {
    let server = NatsServer::start(CONFIG).unwrap();
    let before = peak_kib();

    // The responder limit binds: 100 instances kept, 2,900 dropped.
    let calc = victim(&server, |c| c.with_max_responders(100)).await;
    let sink = hostile_sink(&server).await;
    let start = Instant::now();
    let results = fire(&calc).await;
    sink_done(sink).await;
    assert_eq!(results.len(), 100);
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().body.len() == SIZE)
    );
    let stats = calc.stats();
    assert_eq!(stats.waiting_calls, 0, "the call's entry is freed");
    // Every reply is accounted for: kept, dropped over the limit, or (once
    // the call ended) unmatched.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = calc.stats();
        let seen = 100 + s.dropped_replies + s.unmatched_replies;
        if seen as usize == FLOOD {
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(start.elapsed() < Duration::from_secs(15));
    drop(results);

    // The byte limit binds: 4 MiB of replies kept at most, whatever the
    // number of responders.
    let calc2 = victim(&server, |c| {
        c.with_max_responders(10_000)
            .with_max_reply_bytes(4 * 1024 * 1024)
    })
    .await;
    let sink = hostile_sink(&server).await;
    let results = fire(&calc2).await;
    sink_done(sink).await;
    let kept: usize = results.iter().map(|r| r.as_ref().unwrap().body.len()).sum();
    assert!(!results.is_empty() && kept <= 4 * 1024 * 1024, "{kept}");
    assert!(calc2.stats().dropped_replies as usize >= FLOOD - results.len() - 10);
    assert_eq!(calc2.stats().waiting_calls, 0);
    drop(results);

    // Two floods of 188 MiB each: peak memory grew by a small part of one.
    let grown_mib = (peak_kib() - before) / 1024;
    println!("peak memory grew by {grown_mib} MiB");
    assert!(
        grown_mib < 96,
        "peak memory grew by {grown_mib} MiB for two floods of {} MiB",
        FLOOD * SIZE / (1024 * 1024)
    );
}
