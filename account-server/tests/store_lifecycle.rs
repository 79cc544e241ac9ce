//! Issue 15, Medium 5: the server never starts fresh by accident. A missing
//! or zero-length store is refused unless the start says `--init` (the first
//! start only), `--init` on a store that holds state is refused, and a
//! corrupted store is a clear error, not a panic. In every refused case
//! nothing is pushed: the broker keeps the account JWT with its
//! revocations and the revoked user stays out.

mod common;

use std::time::Duration;

use account_server::AccountServer;
use account_server::store::StoreError;
use buswarden_creds::keys::{KeyKind, KeyPair};
use common::*;
use serde_json::json;

fn start_error(e: account_server::server::StartError) -> String {
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_corrupted_store_is_refused_and_the_revocations_stay_on_the_broker() {
    let bed = Bed::new(Options::default());
    let (server, stop, handle) = serve_in_process(&bed).await;
    let nats = bed.start_nats();
    let client = http();
    open_deploy(&client, &bed, "d1", &bed.ci).await;
    let victim = KeyPair::generate(KeyKind::User);
    let body = json!({ "users": [{ "hostname": "calc.example", "user_key": victim.public_key(), "rules": rules_for("calc.example") }], "expires": "1h" });
    let r = api(&client, &bed, "POST", "/v1/deploys/d1/users", body, &bed.ci).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let jwt = r.json()["users"][0]["jwt"].as_str().unwrap().to_string();
    let (_c, mut events) = connect_user(nats.url(), &jwt, &victim)
        .await
        .expect("connects");
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/revocations",
        json!({ "user_key": victim.public_key() }),
        &bed.op,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(disconnected(&mut events, Duration::from_secs(10)).await);
    let _ = stop.send(());
    handle.await.unwrap();
    stop_server(server).await;

    let config = bed.config();
    assert!(!config.init, "the store exists: no --init");
    let store = config.store.clone();
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&store), 0o600, "the store is created 0600");
    let backup = bed.dir.path().join("store.backup");
    std::fs::copy(&store, &backup).unwrap();
    let app = bed.app.public_key();
    let still_revoked = || async {
        let on_broker = broker_account(nats.url(), &bed.sys_creds, app).await;
        assert!(
            on_broker.nats.revocations.contains_key(victim.public_key()),
            "the broker keeps the revocation"
        );
        assert!(
            connect_user(nats.url(), &jwt, &victim).await.is_err(),
            "the revoked user stays out"
        );
    };

    // Zero length.
    std::fs::write(&store, b"").unwrap();
    let err = start_error(AccountServer::start(bed.config()).await.unwrap_err());
    assert!(err.contains("empty") && err.contains("--init"), "{err}");
    still_revoked().await;
    // The binary says the same and exits 2.
    let out = serve_command(&bed.config_path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--init") && stderr.contains("backup"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Missing.
    std::fs::remove_file(&store).unwrap();
    let mut c = bed.config();
    c.init = false;
    let err = start_error(AccountServer::start(c).await.unwrap_err());
    assert!(
        err.contains("does not exist") && err.contains("--init"),
        "{err}"
    );
    assert!(!store.exists(), "a refused start creates nothing");
    still_revoked().await;

    // Corrupted: garbage of the same length as the real store.
    let len = std::fs::metadata(&backup).unwrap().len() as usize;
    std::fs::write(&store, vec![0xa5u8; len]).unwrap();
    std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let err = start_error(AccountServer::start(bed.config()).await.unwrap_err());
    assert!(err.contains("corrupted") && err.contains("backup"), "{err}");
    let out = serve_command(&bed.config_path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    still_revoked().await;

    // Restored from the backup: --init is refused, a plain start serves the
    // revocation.
    std::fs::copy(&backup, &store).unwrap();
    let mut c = bed.config();
    c.init = true;
    match AccountServer::start(c).await {
        Err(account_server::server::StartError::Store(StoreError::AlreadyInitialised {
            ..
        })) => {}
        other => panic!("--init on a store with state: {other:?}"),
    }
    let server = AccountServer::start(bed.config()).await.unwrap();
    let account = server.account().await;
    assert!(account["revocations"].get(victim.public_key()).is_some());
    still_revoked().await;
}

/// Issue 15, Low: every secret the server reads (operator signing key, KEK,
/// the system user's creds) open to group or others stops the start with
/// the file named and the fix; nothing is created or pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_readable_by_others_stop_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let d = bed.dir.path();
    for file in ["keys/operator-signing.nk", "keys/kek", "keys/sys.creds"] {
        let path = d.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AccountServer::start(bed.config())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(file) && err.contains("644") && err.contains("chmod 600"),
            "{file}: {err}"
        );
        assert!(
            !bed.config().store.exists(),
            "{file}: a refused start creates no store"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let server = AccountServer::start(bed.config()).await.unwrap();
    drop(server);
}

/// Issue 15, Low: a wrong key-encryption key stops the start with a clear
/// error (not the first signing), with or without deploys in the store; the
/// right one starts and signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_kek_stops_the_start() {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let kek = bed.dir.path().join("keys/kek");
    let right = std::fs::read(&kek).unwrap();
    let wrong_kek = || {
        std::fs::remove_file(&kek).unwrap();
        account_server::seal::Kek::generate_file(&kek).unwrap();
    };
    let right_kek = || {
        std::fs::write(&kek, &right).unwrap();
    };
    stop_server(AccountServer::start(bed.config()).await.unwrap()).await;

    wrong_kek();
    let err = AccountServer::start(bed.config())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("keys/kek") && err.contains("not the KEK this store was sealed with"),
        "{err}"
    );

    right_kek();
    let (server, stop, handle) = serve_in_process(&bed).await;
    let client = http();
    open_deploy(&client, &bed, "d1", &bed.ci).await;
    let _ = stop.send(());
    handle.await.unwrap();
    stop_server(server).await;

    wrong_kek();
    let err = AccountServer::start(bed.config())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not the KEK"), "{err}");
    right_kek();
    let (_server, _stop, _handle) = serve_in_process(&bed).await;
    let key = KeyPair::generate(KeyKind::User);
    let body = json!({ "users": [{ "hostname": "calc.example", "user_key": key.public_key(), "rules": rules_for("calc.example") }] });
    let r = api(&client, &bed, "POST", "/v1/deploys/d1/users", body, &bed.ci).await;
    assert_eq!(r.status, 200, "the right KEK signs: {}", r.text);
}
