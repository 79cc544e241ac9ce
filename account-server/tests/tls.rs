//! The TLS option on a real socket: with `[tls]` the server answers HTTPS
//! with the configured certificate (a client trusting only that certificate
//! gets the resolver and health answers), and plain HTTP gets nothing.
//! The certificate is made at test time with the openssl command line.

mod common;

use std::io::Write;
use std::process::Command;
use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_the_configured_certificate() {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let d = bed.dir.path();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .output()
        .expect("openssl is installed");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // The private key is its owner's alone (the server refuses it otherwise).
    std::fs::set_permissions(
        d.join("key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&bed.config_path)
        .unwrap();
    writeln!(f, "[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"").unwrap();
    drop(f);

    let server = account_server::AccountServer::start(bed.config())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(account_server::serve(server, async move {
        let _ = rx.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(d.join("cert.pem")).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut answer = String::new();
    for _ in 0..100 {
        let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", bed.http_port)).await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let mut tls = connector
            .connect(
                ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into()),
                tcp,
            )
            .await
            .expect("TLS handshake with the configured certificate");
        let path = format!("/jwt/v1/accounts/{}", bed.app.public_key());
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        tls.read_to_string(&mut answer).await.unwrap();
        break;
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("etag: \""), "{answer}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let client = http();
    let plain = client
        .get(
            format!("http://127.0.0.1:{}/healthz", bed.http_port)
                .parse()
                .unwrap(),
        )
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP must not be served on the TLS port"
    );
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
}
