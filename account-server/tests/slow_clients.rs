//! Issue 15, Low: slow clients cannot hold the account server's connections.
//! Clients that send no request head, or trickle one a byte at a time, are
//! disconnected at the header-read timeout; a keep-alive connection left
//! idle is closed at the same timeout; a request whose body stops coming is
//! closed at the idle timeout; the server answers others all along.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const HEADER_READ: Duration = Duration::from_secs(1);
const IDLE: Duration = Duration::from_secs(2);
/// Slack for a loaded machine: a connection must be closed by then.
const SLACK: Duration = Duration::from_secs(8);

/// Reads until the server closes the connection; returns what it sent and
/// when it closed, or `None` if it was still open at `limit`.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> Option<(Vec<u8>, Instant)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some((got, Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_disconnected_at_the_timeouts() {
    let bed = Bed::new(Options {
        with_nats: false,
        http: Some("header_read_timeout = \"1s\"\nidle_timeout = \"2s\""),
        ..Options::default()
    });
    let (_server, _stop, _handle) = serve_in_process(&bed).await;
    let addr = format!("127.0.0.1:{}", bed.http_port);
    let start = Instant::now();

    // 100 silent clients and 100 that trickle a request head.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut trickle = Vec::new();
    for _ in 0..100 {
        let addr = addr.clone();
        trickle.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            let opened = Instant::now();
            for b in head.iter().chain(std::iter::repeat(&b'a')) {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                if opened.elapsed() > HEADER_READ + SLACK {
                    return None;
                }
            }
            until_closed(&mut s, SLACK).await.map(|(_, at)| at - opened)
        }));
    }
    // Meanwhile the server answers.
    let r = call(&http(), &bed.base_url(), "GET", "/healthz", b"", None, &[]).await;
    assert_eq!(r.status, 200);
    for mut s in silent {
        let (_, at) = until_closed(&mut s, HEADER_READ + SLACK)
            .await
            .expect("a silent client is disconnected");
        let held = at - start;
        assert!(
            held >= HEADER_READ - Duration::from_millis(100),
            "closed too early: {held:?}"
        );
        assert!(held <= HEADER_READ + SLACK, "held {held:?}");
    }
    for t in trickle {
        let held = t
            .await
            .unwrap()
            .expect("a trickling client is disconnected");
        assert!(held <= HEADER_READ + SLACK, "held {held:?}");
    }

    // Keep-alive: one request answered, then idle until the header timeout.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let sent = Instant::now();
    let (got, at) = until_closed(&mut s, HEADER_READ + SLACK)
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{got:?}"
    );
    assert!(at - sent >= HEADER_READ - Duration::from_millis(100));

    // A signed request whose body stops after 10 of 100 bytes: closed at the
    // idle timeout.
    let body = vec![b' '; 100];
    let auth = buswarden_creds::request_auth::sign_now(
        &bed.ci,
        &buswarden_creds::request_auth::audience(&bed.base_url()).unwrap(),
        "POST",
        "/v1/deploys",
        &body,
    )
    .unwrap();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/deploys HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    let sent = Instant::now();
    let (_, at) = until_closed(&mut s, IDLE + SLACK)
        .await
        .expect("a stalled body is closed");
    assert!(
        at - sent >= IDLE - Duration::from_millis(100),
        "{:?}",
        at - sent
    );

    let r = call(&http(), &bed.base_url(), "GET", "/healthz", b"", None, &[]).await;
    assert_eq!(r.status, 200, "still serving");
}
