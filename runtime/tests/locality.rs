//! Locality on a real nats-server: instances of one service in different
//! localities ([`Connector::with_locality`]); a call addressed to
//! `loc-<locality>.<host>` reaches only instances in that locality (or a
//! sub-locality of it), a call to a locality nobody is in fails fast with
//! 404, and a plain call still reaches any instance.

use buswarden::{Connector, Error, wire};
use buswarden_testkit::NatsServer;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[buswarden::api(host = "geo.example")]
pub trait Geo {
    /// The answering instance's name.
    #[function(GET, "/where")]
    async fn where_is(&self) -> Result<String, Error>;
    /// The same, slowly (forces the ack path).
    #[function(GET, "/slow-where")]
    async fn slow_where(&self) -> Result<String, Error>;
}

struct Site(&'static str);

impl Geo for Site {
    async fn where_is(&self) -> Result<String, Error> {
        Ok(self.0.to_string())
    }
    async fn slow_where(&self) -> Result<String, Error> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(self.0.to_string())
    }
}

fn connector(server: &NatsServer, host: &str) -> Connector {
    Connector::with_config(host, buswarden::Config::default())
        .with_url(server.url())
        .with_timeout(Duration::from_secs(5))
        .with_ack_window(Duration::from_millis(500))
}

/// Serves `name` as one instance of geo.example in `locality`.
async fn site(server: &NatsServer, name: &'static str, locality: Option<&str>) -> Connector {
    let mut c = connector(server, "geo.example");
    if let Some(l) = locality {
        c = c.with_locality(l);
    }
    c.connect().await.expect("connect");
    c.serve(GeoServer::new(Site(name))).await.expect("serve");
    c
}

/// Who answers `calls` calls to `host`.
async fn answerers(caller: &Connector, host: &str, calls: usize) -> HashSet<String> {
    let mut seen = HashSet::new();
    for _ in 0..calls {
        let who = GeoClient::new(caller)
            .for_host(host)
            .where_is()
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        seen.insert(who);
    }
    seen
}

fn set(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicast_to_a_locality_picks_the_instances_in_it() {
    let server = NatsServer::start("").unwrap();
    let west = site(&server, "west", Some("US-WEST-b")).await;
    let _east = site(&server, "east", Some("us-east")).await;
    // Dot notation, most specific level first: eu-central-1.
    let eu = site(&server, "eu", Some("1.central.eu")).await;
    let _nowhere = site(&server, "nowhere", None).await;
    assert_eq!(west.locality().as_deref(), Some("loc-us-west-b"));
    assert_eq!(eu.locality().as_deref(), Some("loc-eu-central-1"));

    let caller = connector(&server, "caller.example");
    caller.connect().await.unwrap();
    // Exact localities, any case in the URL.
    assert_eq!(
        answerers(&caller, "loc-us-west-b.geo.example", 12).await,
        set(&["west"])
    );
    assert_eq!(
        answerers(&caller, "LOC-EU-CENTRAL-1.geo.example", 12).await,
        set(&["eu"])
    );
    // A broader level reaches every instance under it, and no other.
    assert_eq!(
        answerers(&caller, "loc-us-west.geo.example", 12).await,
        set(&["west"])
    );
    let us = answerers(&caller, "loc-us.geo.example", 40).await;
    assert!(us.is_subset(&set(&["west", "east"])), "{us:?}");
    assert_eq!(
        answerers(&caller, "loc-eu.geo.example", 12).await,
        set(&["eu"])
    );
    // A handler that waits acks first: the ack path works on a locality.
    let slow = GeoClient::new(&caller)
        .for_host("loc-us-east.geo.example")
        .slow_where()
        .await
        .unwrap();
    assert_eq!(slow, "east");
    // Raw calls address localities the same way.
    let resp = caller
        .get("https://loc-eu-central.geo.example/where")
        .await
        .unwrap();
    assert_eq!(resp.body, br#"{"result":"eu"}"#.to_vec());
    // Nobody in this locality: no ack, 404 within the ack timeout (not the
    // 5 s budget).
    let start = Instant::now();
    let err = GeoClient::new(&caller)
        .for_host("loc-ap.geo.example")
        .where_is()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AckTimeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // A plain call still reaches every instance, the one without a
    // locality included.
    let all = answerers(&caller, "geo.example", 80).await;
    assert!(all.contains("nowhere") && all.len() >= 3, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_of_a_located_instance_carry_its_locality() {
    let server = NatsServer::start("").unwrap();
    let _west = site(&server, "west", Some("us-west")).await;
    // A plain NATS client (certified as nobody in plain mode) listens on
    // the reply subject of a made-up caller and sends a Microbus request by
    // hand, as a Go peer would.
    let nc = async_nats::connect(server.url()).await.unwrap();
    use futures_util::StreamExt as _;
    let mut replies = nc
        .subscribe("microbus.reply._.*.probe_example.id-probe00001")
        .await
        .unwrap();
    let request = "GET https://loc-us-west.geo.example/where HTTP/1.1\r\n\
        Host: loc-us-west.geo.example\r\n\
        Microbus-Call-Depth: 1\r\n\
        Microbus-From-Host: probe.example\r\n\
        Microbus-From-Id: id-probe00001\r\n\
        Microbus-Msg-Id: Ab3dEf7h\r\n\
        Microbus-Op-Code: Req\r\n\
        Microbus-Time-Budget: 5s\r\n\r\n";
    nc.publish(
        "microbus.safe.443.probe_example.geo_example.loc-us-west.GET.where",
        request.into(),
    )
    .await
    .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), replies.next())
        .await
        .expect("a response")
        .unwrap();
    let (env, body) = wire::Envelope::decode(&msg.payload).unwrap();
    assert_eq!(env.kind, wire::Kind::Response);
    assert_eq!(body.as_ref(), br#"{"result":"west"}"#);
    let text = String::from_utf8_lossy(&msg.payload);
    assert!(
        text.contains("\r\nMicrobus-Locality: us-west\r\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_localities_are_refused_with_a_typed_error() {
    let server = NatsServer::start("").unwrap();
    let long = "a".repeat(65);
    let huge = "x".repeat(1 << 20);
    for bad in [
        "",
        ".",
        "*",
        ">",
        "us.*",
        "us.>",
        "us west",
        "us\r\nX: y",
        "ünïcode",
        "us_west",
        "-us",
        "us--west",
        "id-abc",
        "loc-us",
        "all",
        &long,
        &huge,
    ] {
        let c = connector(&server, "geo.example").with_locality(bad);
        match c.connect().await {
            Err(Error::InvalidLocality { locality, reason }) => {
                assert!(locality.chars().count() <= 200, "{bad:?}");
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(!c.is_connected());
        assert_eq!(c.locality(), None);
    }
    // A locality-shaped host a caller cannot address is an invalid URL,
    // not a panic.
    let caller = connector(&server, "caller.example");
    caller.connect().await.unwrap();
    for bad in [
        "https://loc-.geo.example/where",
        "https://loc-us_west.geo.example/where",
        "https://loc-*.geo.example/where",
        "https://loc-ü.geo.example/where",
    ] {
        let err = caller.get(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{bad}: {err:?}");
    }
}
