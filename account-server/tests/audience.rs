//! Issue 15, Low: two account servers trust the same keys (two deployments
//! configured alike). A request signed for one, and accepted there, is
//! refused when replayed at the other: the signed text names the server.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_signed_for_one_server_is_refused_at_another() {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let (_a, _stop_a, _handle_a) = serve_in_process(&bed).await;
    // Server B: the same config (the same trusted keys), its own address
    // and store.
    let b_port = free_port();
    let mut config = bed.config();
    config.listen = format!("127.0.0.1:{b_port}").parse().unwrap();
    config.store = bed.dir.path().join("state/b.redb");
    config.init = true;
    let b = account_server::AccountServer::start(config).await.unwrap();
    let (_stop_b, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(account_server::serve(b, async move {
        let _ = rx.await;
    }));
    let base_a = bed.base_url();
    let base_b = format!("http://127.0.0.1:{b_port}");
    let client = http();
    let mut up = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", b_port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(up, "server B answers");

    let header = buswarden_creds::request_auth::sign_now(
        &bed.reader,
        &buswarden_creds::request_auth::audience(&base_a).unwrap(),
        "GET",
        "/v1/deploys",
        b"",
    )
    .unwrap();
    let at_a = call(
        &client,
        &base_a,
        "GET",
        "/v1/deploys",
        b"",
        None,
        &[("authorization", &header)],
    )
    .await;
    assert_eq!(at_a.status, 200, "{}", at_a.text);
    // The same header, replayed at B (its nonce is new there).
    let at_b = call(
        &client,
        &base_b,
        "GET",
        "/v1/deploys",
        b"",
        None,
        &[("authorization", &header)],
    )
    .await;
    assert_eq!(at_b.status, 401, "{}", at_b.text);
    assert!(
        at_b.text.contains("signed for account server"),
        "{}",
        at_b.text
    );
    // Signed for B, B accepts it.
    let own = call(
        &client,
        &base_b,
        "GET",
        "/v1/deploys",
        b"",
        Some(&bed.reader),
        &[],
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.text);
}
