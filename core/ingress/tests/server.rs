//! The ingress as a server: HTTP/2 (cleartext with prior knowledge, and
//! over TLS by ALPN), HTTP/1.1 over TLS (rustls), `/healthz` and
//! `/metrics` on their own listener, a graceful shutdown that lets a
//! request in flight finish, and the binary refusing a configuration that
//! opens 666 at the file and line. Behind it: a real nats-server and the
//! echo service.

mod common;

use buswarden::Connector;
use bytes::Bytes;
use common::{EchoServer, EchoService, client, send};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

async fn echo(server: &buswarden_testkit::NatsServer) -> Connector {
    let svc = Connector::new("echo.example").with_url(server.url());
    svc.connect().await.unwrap();
    svc.serve(EchoServer::new(EchoService)).await.unwrap();
    svc
}

fn config(dir: &Path, server: &buswarden_testkit::NatsServer, extra: &str) -> ingress_core::Config {
    let path = dir.join("ingress.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics-listen = \"127.0.0.1:0\"\nnats-url = \"{}\"\nshutdown-grace = \"5s\"\n{extra}\n",
            server.url()
        ),
    )
    .unwrap();
    ingress_core::Config::load(&path).unwrap()
}

/// A test CA and a certificate it signs for 127.0.0.1 (openssl, as
/// ci/deps.sh has it): the chain, the key, and the CA to trust.
fn certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat());
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-subj",
            "/CN=127.0.0.1",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    ]
    .concat());
    (p("cert.pem"), p("key.pem"), p("ca.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_tls_healthz_metrics_and_a_graceful_shutdown() {
    let server = buswarden_testkit::NatsServer::start("").unwrap();
    let _echo = echo(&server).await;
    let dir = tempfile::tempdir().unwrap();

    // Cleartext: HTTP/1.1 and HTTP/2 with prior knowledge.
    let (ingress, running, svc) = common::start_ingress(config(dir.path(), &server, "")).await;
    let base = format!("http://{}", running.addr);
    let a = send(
        &client(),
        "GET",
        &format!("{base}/echo.example/h1"),
        &[],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    let h2 = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let resp = h2
        .request(
            hyper::Request::get(format!("{base}/echo.example/h2"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, hyper::Version::HTTP_2)
    );

    // Operators' listener.
    let ops = format!("http://{}", running.metrics_addr.unwrap());
    let health = send(&client(), "GET", &format!("{ops}/healthz"), &[], "").await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let metrics = send(&client(), "GET", &format!("{ops}/metrics"), &[], "")
        .await
        .text();
    assert!(metrics.contains("ingress_requests_total 2"), "{metrics}");
    assert!(
        metrics.contains("ingress_responses_total{class=\"2xx\"} 2"),
        "{metrics}"
    );
    assert_eq!(
        send(&client(), "GET", &format!("{ops}/other"), &[], "")
            .await
            .status,
        404
    );

    // Graceful shutdown: a request in flight finishes, then the listener
    // is closed.
    let slow = {
        let url = format!("{base}/echo.example/slow?sleep=800");
        tokio::spawn(async move { send(&client(), "GET", &url, &[], "").await.status })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = running.addr;
    running.shutdown().await;
    assert_eq!(slow.await.unwrap(), 200, "the request in flight finished");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
    drop(ingress);
    svc.close().await;

    // TLS (rustls): h2 by ALPN, and HTTP/1.1.
    let (cert, key, ca) = certificate(dir.path());
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let (_ingress, running, svc) = common::start_ingress(config(dir.path(), &server, &tls)).await;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    for (alpn, version) in [
        (b"h2".to_vec(), hyper::Version::HTTP_2),
        (b"http/1.1".to_vec(), hyper::Version::HTTP_11),
    ] {
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        let req = hyper::Request::get("/echo.example/tls")
            .header("Host", "127.0.0.1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = if version == hyper::Version::HTTP_2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = {
                let (mut parts, body) = req.into_parts();
                parts.uri = format!("https://127.0.0.1:{}/echo.example/tls", running.addr.port())
                    .parse()
                    .unwrap();
                hyper::Request::from_parts(parts, body)
            };
            send.send_request(req).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        };
        assert_eq!((resp.status().as_u16(), resp.version()), (200, version));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(common::seen_header(&seen, "x-forwarded-proto"), ["https"]);
    }
    running.shutdown().await;
    svc.close().await;
}

#[test]
fn the_binary_refuses_a_policy_that_opens_666_at_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("buswarden.toml"),
        "version = 1\n[edge]\nmode = \"prod\"\nallowed-internal-ports = [8080, 666]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ingress.toml"),
        "policy = \"buswarden.toml\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingress"))
        .arg("--config")
        .arg(dir.path().join("ingress.toml"))
        .env("BUSWARDEN_NATS_URL", "nats://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("buswarden.toml: 4:") && err.contains("port 666 can never be opened"),
        "{err}"
    );
    // A typo is refused too, never defaulted.
    std::fs::write(dir.path().join("typo.toml"), "lisen = \"127.0.0.1:0\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingress"))
        .arg("--config")
        .arg(dir.path().join("typo.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `lisen`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_reports_ready_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    let server = buswarden_testkit::NatsServer::start("").unwrap();
    let _echo = echo(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (port, ops) = (
        buswarden_testkit::free_port(),
        buswarden_testkit::free_port(),
    );
    std::fs::write(
        dir.path().join("ingress.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\nmetrics-listen = \"127.0.0.1:{ops}\"\nnats-url = \"{}\"\n",
            server.url()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ingress"))
        .arg("--config")
        .arg(dir.path().join("ingress.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || lines.next().unwrap().unwrap())
        .await
        .unwrap();
    assert!(
        ready.starts_with("ready http.ingress.core id-")
            && ready.contains(&format!("http=127.0.0.1:{port}")),
        "{ready}"
    );
    let a = send(
        &client(),
        "GET",
        &format!("http://127.0.0.1:{port}/echo.example/bin"),
        &[],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    let h = send(
        &client(),
        "GET",
        &format!("http://127.0.0.1:{ops}/healthz"),
        &[],
        "",
    )
    .await;
    assert_eq!(h.status, 200);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
