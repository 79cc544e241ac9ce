//! The ingress end to end: a real HTTP client against the ingress, the
//! fixture shop behind it, nats-server 2.15.1 in operator mode with every
//! service (the ingress included) on the creds signed from its committed
//! `nats.acl`, and a monitor subscribed to `>` proving what was (not)
//! published.

mod common;

use buswarden::Connector;
use buswarden_token_signing::TokenKey;
use common::*;
use serde_json::json;
use std::time::Duration;

/// A signed deploy on an operator-mode server, its services running.
struct Deploy {
    trust: Trust,
    server: buswarden_testkit::NatsServer,
    creds: tempfile::TempDir,
    dir: tempfile::TempDir,
    /// The key bearer.token.core signs with (to forge expired tokens).
    bearer_key: TokenKey,
    services: Vec<Connector>,
    monitor: Monitor,
}

async fn deploy() -> Deploy {
    let trust = Trust::new();
    let server = trust.server();
    let creds = tempfile::tempdir().unwrap();
    trust.sign_deploy(creds.path());
    let dir = tempfile::tempdir().unwrap();
    let bearer_key = TokenKey::generate();
    let key_file = dir.path().join("bearer.pem");
    std::fs::write(&key_file, bearer_key.to_pkcs8_pem().as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let bearer = bearer_token_core::Config {
        key_file: Some(key_file),
        ..Default::default()
    };
    let services = start_services(&server, creds.path(), bearer).await;
    let monitor = trust.monitor(&server).await;
    Deploy {
        trust,
        server,
        creds,
        dir,
        bearer_key,
        services,
        monitor,
    }
}

impl Deploy {
    /// An ingress in `mode` (core's `[edge]` ports otherwise), with its
    /// prod creds, or the local-mode creds for `local`.
    async fn ingress(
        &self,
        name: &str,
        edge: &str,
        extra: &str,
    ) -> (
        std::sync::Arc<ingress_core::Ingress>,
        ingress_core::Running,
        Connector,
    ) {
        let creds = if edge.contains("\"local\"") {
            let dir = self.dir.path().join(format!("{name}-creds"));
            self.trust.sign_acl(LOCAL_INGRESS_ACL, &dir);
            dir
        } else {
            self.creds.path().to_path_buf()
        };
        let config = ingress_config(
            &self.dir.path().join(name),
            edge,
            extra,
            &self.server,
            &creds,
        )
        .expect("the ingress config");
        start_ingress(config).await
    }
}

fn base(running: &ingress_core::Running) -> String {
    format!("http://{}", running.addr)
}

/// `{"result": …}` of a typed function.
fn result(a: &Answer) -> serde_json::Value {
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()["result"].clone()
}

async fn login(c: &Client, base: &str, user: &str) -> String {
    let a = send(
        c,
        "POST",
        &format!("{base}/gateway.example/login"),
        &[("Content-Type", "application/json")],
        json!({ "user": user }).to_string(),
    )
    .await;
    result(&a).as_str().unwrap().to_string()
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_works_end_to_end_from_outside() {
    let mut d = deploy().await;
    let (ingress, running, _svc) = d
        .ingress(
            "prod",
            "mode = \"prod\"\nallowed-internal-ports = [8080]",
            "",
        )
        .await;
    let c = client();
    let base = base(&running);

    // Log in (a bearer token from the gateway), read the catalog, place an
    // order under the exchanged access token (orders requires roles.buyer).
    let ann = login(&c, &base, "ann").await;
    let item = result(
        &send(
            &c,
            "GET",
            &format!("{base}/catalog.example/items/widget"),
            &[],
            "",
        )
        .await,
    );
    assert_eq!(item["id"], "widget");
    let bearer = format!("Bearer {ann}");
    let order_body = json!({"item": "widget", "qty": 3}).to_string();
    let auth = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let url = format!("{base}/orders.example/orders");
    let order = result(&send(&c, "POST", &url, &auth, order_body.clone()).await);
    assert_eq!(
        (order["buyer"].as_str(), order["total"].as_u64()),
        (Some("ann"), Some(750))
    );
    // The minted access token is reused: one Mint for many requests.
    for _ in 0..4 {
        assert_eq!(
            send(&c, "POST", &url, &auth, order_body.clone())
                .await
                .status,
            200
        );
    }
    assert_eq!(
        ingress.mints(),
        1,
        "one :666 Mint for five requests with one bearer token"
    );
    // Concurrent first requests with a new bearer token wait for one Mint.
    let root = format!("Bearer {}", login(&c, &base, "root").await);
    let burst: Vec<_> = (0..16)
        .map(|_| {
            let (c, url, root, body) = (c.clone(), url.clone(), root.clone(), order_body.clone());
            tokio::spawn(async move {
                let h = [
                    ("Authorization", root.as_str()),
                    ("Content-Type", "application/json"),
                ];
                send(&c, "POST", &url, &h, body).await.status
            })
        })
        .collect();
    for b in burst {
        assert_eq!(b.await.unwrap(), 200);
    }
    assert_eq!(
        ingress.mints(),
        2,
        "one Mint for sixteen concurrent requests"
    );
    // Claims are checked downstream: no token is 401, a guest is 403.
    assert_eq!(
        send(&c, "POST", &url, &[], order_body.clone()).await.status,
        401
    );
    let guest = format!("Bearer {}", login(&c, &base, "guest").await);
    assert_eq!(
        send(
            &c,
            "POST",
            &url,
            &[("Authorization", &guest)],
            order_body.clone()
        )
        .await
        .status,
        403
    );

    // Invalid bearer tokens are 401 and nothing is published: garbage, an
    // expired token signed with the issuer's own key, a genuine token with
    // its claims altered (the key is known by now: no JWKS fetch either).
    let now = buswarden_token_signing::unix_now();
    let mut expired = serde_json::Map::new();
    expired.insert("iss".into(), json!("https://bearer.token.core"));
    expired.insert("sub".into(), json!("ann"));
    expired.insert("roles".into(), json!(["buyer"]));
    expired.insert("iat".into(), json!(now - 7200));
    expired.insert("exp".into(), json!(now - 3600));
    let expired = d.bearer_key.sign("JWT", &expired);
    let mut parts: Vec<String> = ann.split('.').map(str::to_string).collect();
    parts[1] = base64_url(&json!({"iss": "https://bearer.token.core", "sub": "root", "roles": ["admin"], "exp": now + 3600}).to_string());
    let altered = parts.join(".");
    d.monitor.clear().await;
    for bad in ["garbage", expired.as_str(), altered.as_str()] {
        let h = format!("Bearer {bad}");
        let a = send(
            &c,
            "POST",
            &url,
            &[("Authorization", &h)],
            order_body.clone(),
        )
        .await;
        assert_eq!(a.status, 401, "{bad}: {}", a.text());
        let cookie = format!("Authorization={bad}");
        let a = send(
            &c,
            "GET",
            &format!("{base}/echo.example/x"),
            &[("Cookie", &cookie)],
            "",
        )
        .await;
        assert_eq!(a.status, 401, "cookie {bad}");
        assert_eq!(d.monitor.published().await, Vec::<String>::new(), "{bad}");
    }

    // The bearer token never reaches a handler, neither as a header nor as
    // a cookie; the handler gets the exchanged access token as its actor.
    let cookie = format!("theme=dark; Authorization={ann}; lang=en");
    let a = send(
        &c,
        "GET",
        &format!("{base}/echo.example/who?x=1"),
        &[("Authorization", &bearer), ("Cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let seen = a.json();
    assert!(
        !a.text().contains(&ann),
        "the bearer token reached the handler: {seen}"
    );
    assert!(seen_header(&seen, "authorization").is_empty());
    assert_eq!(seen_header(&seen, "cookie"), ["theme=dark; lang=en"]);
    let actor = seen["actor"].as_str().expect("an actor");
    let t = buswarden::token::decode(actor).unwrap();
    assert_eq!(t.header.typ, buswarden::token::ACCESS_TYP);
    assert_eq!(seen["query"], "x=1");

    // Forged transport headers: the handler sees the ingress as caller, no
    // actor and no baggage; a spoofed X-Forwarded-For is replaced by the
    // socket address; internal response headers do not leak out.
    let a = send(
        &c,
        "GET",
        &format!("{base}/echo.example/forged"),
        &[
            ("Microbus-From-Host", "gateway.example"),
            ("Microbus-From-Id", "id-forged0001"),
            ("Microbus-Actor", actor),
            ("Microbus-Baggage-Role", "admin"),
            ("Microbus-Call-Depth", "63"),
            (
                "Traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Host", "evil.example"),
        ],
        "",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let seen = a.json();
    assert_eq!(seen["caller"], "http.ingress.core");
    assert_eq!(seen["actor"], serde_json::Value::Null);
    assert_eq!(seen["baggage"], json!([]));
    assert_eq!(seen_header(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(
        seen_header(&seen, "x-forwarded-host"),
        [running.addr.to_string()]
    );
    assert_eq!(seen_header(&seen, "x-forwarded-prefix"), ["/echo.example"]);
    assert!(seen_header(&seen, "traceparent").is_empty());
    assert!(a.headers.get("microbus-leak").is_none());
    assert!(a.headers.get("traceparent").is_none());
    assert_eq!(a.headers.get("x-echo").unwrap(), "yes");

    running.shutdown().await;
    drop(d.services);
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_firewall_holds_at_the_edge_and_at_the_broker() {
    let mut d = deploy().await;
    let c = client();
    // 666 and 888 are 404 in every mode, nothing published; 444 is 404
    // outside local and reaches the endpoint in local; 8080 is open where
    // listed.
    for mode in ["local", "testing", "lab", "prod"] {
        let edge = format!("mode = \"{mode}\"\nallowed-internal-ports = [8080]");
        let (_ing, running, svc) = d.ingress(mode, &edge, "").await;
        let base = base(&running);
        d.monitor.clear().await;
        for path in [
            "/echo.example:666/x",
            "/echo.example:888/x",
            "/access.token.core:666/mint",
            "/bearer.token.core:888/jwks",
            "/catalog.example:888/flush-cache",
        ] {
            for method in ["GET", "POST"] {
                let a = send(&c, method, &format!("{base}{path}"), &[], "{}").await;
                assert_eq!(a.status, 404, "{mode} {method} {path}");
            }
        }
        assert_eq!(d.monitor.published().await, Vec::<String>::new(), "{mode}");
        let a = send(&c, "GET", &format!("{base}/echo.example:444/x"), &[], "").await;
        if mode == "local" {
            assert_eq!(
                (a.status, a.json()["port"].as_u64()),
                (200, Some(444)),
                "{mode}"
            );
        } else {
            assert_eq!(a.status, 404, "{mode}");
            assert_eq!(
                d.monitor.published().await,
                Vec::<String>::new(),
                "{mode} :444"
            );
        }
        let a = send(&c, "GET", &format!("{base}/echo.example:8080/x"), &[], "").await;
        assert_eq!(
            (a.status, a.json()["port"].as_u64()),
            (200, Some(8080)),
            "{mode}"
        );
        running.shutdown().await;
        svc.close().await;
    }

    // A configuration that tries to open 666, 888 or a port below 1024 is
    // refused at start, with the file and line.
    for bad in ["666", "888", "\"600-700\"", "444"] {
        let edge = format!("mode = \"prod\"\nallowed-internal-ports = [{bad}]");
        let err = ingress_config(
            &d.dir.path().join("bad"),
            &edge,
            "",
            &d.server,
            d.creds.path(),
        )
        .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("buswarden.toml: 4:"), "{text}");
    }

    // The broker enforces the same firewall: with the ingress's own creds,
    // a raw publish to any :888 endpoint or a port outside its list is a
    // Permissions Violation.
    let own = connect(
        Connector::new("http.ingress.core"),
        &d.server,
        d.creds.path(),
    )
    .await;
    for url in [
        "https://catalog.example:888/flush-cache",
        "https://echo.example:888/x",
        "https://access.token.core:888/jwks",
        "https://echo.example:444/x",
        "https://echo.example:9999/x",
        "https://bearer.token.core:666/mint",
    ] {
        match own.post(url, Vec::new()).await {
            Err(buswarden::Error::PublishDenied { subject }) => {
                assert!(subject.contains(".http_ingress_core."), "{subject}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(own.stats().denied_publishes >= 6);
    // Its creds hold no port wildcard: `grep -c '\.safe\.\*\.'` prints 0
    // (the readable grants block and the JWT's permissions alike).
    let creds =
        std::fs::read_to_string(d.creds.path().join("http.ingress.core_nats.creds")).unwrap();
    assert_eq!(
        creds.lines().filter(|l| l.contains(".safe.*.")).count(),
        0,
        "{creds}"
    );
    let jwt_text = creds
        .lines()
        .skip_while(|l| !l.contains("BEGIN NATS USER JWT"))
        .nth(1)
        .unwrap();
    let claims = buswarden_creds::jwt::decode_user(jwt_text.trim()).unwrap();
    let pubs = &claims.nats.limits.publish.allow;
    assert!(pubs.iter().all(|p| !p.contains(".safe.*.")), "{pubs:?}");
    let subs = &claims.nats.limits.subscribe;
    assert!(
        subs.allow
            .iter()
            .chain(&subs.deny)
            .all(|p| !p.contains(".safe.*.")),
        "{subs:?}"
    );
    assert!(
        pubs.iter()
            .any(|p| p == "microbus.safe.443.http_ingress_core.*.*.*.>"),
        "{pubs:?}"
    );
    assert!(
        pubs.iter()
            .any(|p| p == "microbus.safe.8080.http_ingress_core.*.*.*.>"),
        "{pubs:?}"
    );
    own.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_before_anything_is_published() {
    let mut d = deploy().await;
    let (_ing, running, _svc) = d
        .ingress(
            "limits",
            "mode = \"prod\"",
            "max-body-bytes = 1048576\nmax-path-bytes = 256\ntime-budget = \"1s\"\nbody-read-timeout = \"1s\"\nmax-header-bytes = 16384\n",
        )
        .await;
    let c = client();
    let base = base(&running);
    d.monitor.clear().await;
    // 2 MiB over a 1 MiB limit: 413, nothing published (declared length,
    // and a chunked body that only turns out too large).
    // Refused by its declared length, the body is still read and dropped
    // after the answer: closing with unread bytes would reset the
    // connection and the client could lose the 413 (it did, in CI). Each
    // try is a new connection.
    let big = vec![b'x'; 2 * 1024 * 1024];
    for _ in 0..12 {
        let a = send(
            &client(),
            "POST",
            &format!("{base}/echo.example/upload"),
            &[],
            big.clone(),
        )
        .await;
        assert_eq!(a.status, 413);
        assert_eq!(a.headers["connection"], "close");
    }
    let (status, _) = raw_http(
        running.addr,
        b"POST /echo.example/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        Some(&big),
    )
    .await;
    assert_eq!(status, 413);
    // A client that waits for `100 Continue` gets the 413 at once, without
    // sending the body.
    let (status, head) = raw_http(
        running.addr,
        b"POST /echo.example/upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2097152\r\n\r\n",
        None,
    )
    .await;
    assert_eq!(status, 413, "{head}");
    // A path over the limit: 414; a scanner path: 404; a head over the
    // limit: 431.
    let long = "a".repeat(300);
    assert_eq!(
        send(&c, "GET", &format!("{base}/echo.example/{long}"), &[], "")
            .await
            .status,
        414
    );
    assert_eq!(
        send(
            &c,
            "GET",
            &format!("{base}/echo.example/wp-login.php"),
            &[],
            ""
        )
        .await
        .status,
        404
    );
    let (status, _) = raw_http(
        running.addr,
        format!(
            "GET /echo.example/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "b".repeat(40_000)
        )
        .as_bytes(),
        None,
    )
    .await;
    assert_eq!(status, 431);
    // A body that never comes: 408 after the read timeout.
    let (status, _) = raw_http(
        running.addr,
        b"POST /echo.example/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
        None,
    )
    .await;
    assert_eq!(status, 408);
    // CORS: another origin is 403 (pinned to the request's own origin).
    let a = send(
        &c,
        "GET",
        &format!("{base}/echo.example/x"),
        &[("Origin", "https://evil.example")],
        "",
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(d.monitor.published().await, Vec::<String>::new());
    // The request's own origin passes; a preflight is answered here.
    let own = base.clone();
    let a = send(
        &c,
        "GET",
        &format!("{base}/echo.example/x"),
        &[("Origin", &own)],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers.get("access-control-allow-origin").unwrap(),
        own.as_str()
    );
    let a = send(
        &c,
        "OPTIONS",
        &format!("{base}/echo.example/x"),
        &[("Origin", &own), ("Access-Control-Request-Method", "PUT")],
        "",
    )
    .await;
    assert_eq!(a.status, 204);
    assert_eq!(
        a.headers.get("access-control-allow-methods").unwrap(),
        "PUT"
    );
    // The time budget: a handler slower than it is 504.
    let a = send(
        &c,
        "GET",
        &format!("{base}/echo.example/slow?sleep=3000"),
        &[],
        "",
    )
    .await;
    assert_eq!(a.status, 504, "{}", a.text());
    // A port name that is not a number, and no host at all: 404.
    assert_eq!(
        send(&c, "GET", &format!("{base}/echo.example:http/x"), &[], "")
            .await
            .status,
        404
    );
    assert_eq!(
        send(&c, "GET", &format!("{base}/"), &[], "").await.status,
        404
    );
    running.shutdown().await;
}

/// Writes `head` (and `body` as one chunked body, when given) on a fresh
/// connection and reads the status line of the answer.
async fn raw_http(addr: std::net::SocketAddr, head: &[u8], body: Option<&[u8]>) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let head = head.to_vec();
    let body = body.map(<[u8]>::to_vec);
    let writer = tokio::spawn(async move {
        w.write_all(&head).await?;
        if let Some(body) = body {
            for chunk in body.chunks(64 * 1024) {
                w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                w.write_all(chunk).await?;
                w.write_all(b"\r\n").await?;
            }
            w.write_all(b"0\r\n\r\n").await?;
        }
        // Keep the connection open until the server answers.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, std::io::Error>(())
    });
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_key_on_the_verified_sub_and_not_on_forwarded_headers() {
    let d = deploy().await;
    let (ingress, running, _svc) = d
        .ingress(
            "rate",
            "mode = \"prod\"",
            "[rate-limit]\nper-second = 10\nburst = 1\n",
        )
        .await;
    let c = client();
    let base = base(&running);
    let (ann, bob) = {
        // Log in through another ingress: this one's limit is under test.
        let (_i, free, _s) = d.ingress("rate-free", "mode = \"prod\"", "").await;
        let b = format!("http://{}", free.addr);
        let pair = (login(&c, &b, "ann").await, login(&c, &b, "root").await);
        free.shutdown().await;
        pair
    };
    let url = format!("{base}/echo.example/limited");
    // ann at 100 requests/s for a second, bob at 5/s meanwhile.
    let mut ann_calls = vec![];
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let bob_calls = {
        let (c, url, bob) = (c.clone(), url.clone(), format!("Bearer {bob}"));
        tokio::spawn(async move {
            let mut statuses = vec![];
            for _ in 0..5 {
                statuses.push(
                    send(&c, "GET", &url, &[("Authorization", &bob)], "")
                        .await
                        .status,
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            statuses
        })
    };
    for _ in 0..100 {
        tick.tick().await;
        let (c, url, ann) = (c.clone(), url.clone(), format!("Bearer {ann}"));
        ann_calls.push(tokio::spawn(async move {
            let a = send(&c, "GET", &url, &[("Authorization", &ann)], "").await;
            (a.status, a.headers.get("retry-after").cloned())
        }));
    }
    let mut limited = 0;
    for call in ann_calls {
        let (status, retry) = call.await.unwrap();
        if status == 429 {
            limited += 1;
            assert!(retry.is_some(), "429 without Retry-After");
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(
        limited >= 85,
        "only {limited} of 100 requests over 10/s were 429"
    );
    assert_eq!(bob_calls.await.unwrap(), [200; 5], "another sub is served");
    assert!(ingress.mints() <= 2, "the exchange reused its tokens");
    // Without a token the key is the socket address: rotating
    // X-Forwarded-For does not escape it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut limited = 0;
    for i in 0..50 {
        let xff = format!("203.0.113.{i}");
        let a = send(&c, "GET", &url, &[("X-Forwarded-For", &xff)], "").await;
        if a.status == 429 {
            limited += 1;
        } else {
            assert_eq!(seen_header(&a.json(), "x-forwarded-for"), ["127.0.0.1"]);
        }
    }
    assert!(
        limited >= 40,
        "rotating X-Forwarded-For escaped the limit: {limited} of 50 limited"
    );
    running.shutdown().await;
}
