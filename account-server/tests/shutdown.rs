//! The binary: `gen-kek` writes a private key file and never overwrites
//! one; `serve` listens on the configured loopback address and stops
//! cleanly (exit 0) on SIGTERM; a bad config is a plain error with exit 2.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_account-server");

#[test]
fn gen_kek_writes_a_private_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    assert!(
        Command::new(BIN)
            .arg("gen-kek")
            .arg(&kek)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = Command::new(BIN).arg("gen-kek").arg(&kek).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    let bad = Command::new(BIN)
        .args(["serve", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/x.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_cleanly_on_sigterm() {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let mut child = serve_command(&bed.config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    bed.wait_http().await;
    let r = call(&http(), &bed.base_url(), "GET", "/healthz", b"", None, &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not stop within 10 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
}
