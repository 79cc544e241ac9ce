//! The janitor prunes a revocation once every JWT it revokes has expired,
//! keeps the others (and those of keys the server never signed), and
//! records the pruning in the audit log; the state survives a restart.

mod common;

use account_server::AccountServer;
use buswarden_creds::keys::{KeyKind, KeyPair};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_are_pruned_only_after_their_jwts_expired() {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let (server, stop, handle) = serve_in_process(&bed).await;
    let client = http();
    assert_eq!(
        api(
            &client,
            &bed,
            "POST",
            "/v1/deploys",
            json!({ "deploy": "d1" }),
            &bed.ci
        )
        .await
        .status,
        201
    );
    let short = KeyPair::generate(KeyKind::User);
    let long = KeyPair::generate(KeyKind::User);
    let foreign = KeyPair::generate(KeyKind::User);
    for (k, h, exp) in [
        (&short, "calc.example", "1h"),
        (&long, "cart.shop.example", "2h"),
    ] {
        let body = json!({ "users": [{ "hostname": h, "user_key": k.public_key(), "rules": rules_for(h) }], "expires": exp });
        let r = api(&client, &bed, "POST", "/v1/deploys/d1/users", body, &bed.ci).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for k in [&short, &long, &foreign] {
        let r = api(
            &client,
            &bed,
            "POST",
            "/v1/revocations",
            json!({ "user_key": k.public_key() }),
            &bed.op,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let revoked =
        |v: &serde_json::Value, k: &KeyPair| v["revocations"].get(k.public_key()).is_some();

    // Ninety minutes on: the 1h JWT has expired, the 2h one has not.
    server
        .tidy(buswarden_creds::jwt::now() + 90 * 60)
        .await
        .unwrap();
    let account = api(
        &client,
        &bed,
        "GET",
        "/v1/account",
        json!(null),
        &bed.reader,
    )
    .await
    .json();
    assert!(!revoked(&account, &short), "pruned: its JWT expired");
    assert!(revoked(&account, &long), "kept: its JWT is still valid");
    assert!(
        revoked(&account, &foreign),
        "kept: not ours, its expiry is unknown"
    );
    let served = buswarden_creds::jwt::decode_account(account["jwt"].as_str().unwrap()).unwrap();
    assert!(!served.nats.revocations.contains_key(short.public_key()));
    let audit = api(
        &client,
        &bed,
        "GET",
        "/v1/audit?since=0",
        json!(null),
        &bed.reader,
    )
    .await
    .json();
    let prune = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "prune")
        .unwrap()
        .clone();
    assert_eq!(prune["subjects"], json!([short.public_key()]));
    let _ = stop.send(());
    handle.await.unwrap();
    common::stop_server(server).await;

    // After a restart the state is the same.
    let server = AccountServer::start(bed.config()).await.unwrap();
    let again = server.account().await;
    assert_eq!(again["revocations"], account["revocations"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_account_jwt_from_busop_is_taken_as_the_base_and_revocations_are_kept() {
    let bed = Bed::new(Options {
        with_nats: false,
        ..Options::default()
    });
    let (server, stop, handle) = serve_in_process(&bed).await;
    let client = http();
    let ours = KeyPair::generate(KeyKind::User);
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/revocations",
        json!({ "user_key": ours.public_key() }),
        &bed.op,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let _ = stop.send(());
    handle.await.unwrap();
    common::stop_server(server).await;

    // busop re-signs the account (a new name, one revocation of its own)
    // with a later iat, as `busop` does with the operator signing key.
    let path = bed.dir.path().join("jwt/app.jwt");
    let mut claims =
        buswarden_creds::jwt::decode_account(std::fs::read_to_string(&path).unwrap().trim())
            .unwrap();
    let theirs = KeyPair::generate(KeyKind::User);
    claims.data.name = "APP-v2".into();
    claims
        .nats
        .revocations
        .insert(theirs.public_key().to_string(), buswarden_creds::jwt::now());
    let signer = buswarden_creds::keyfile::load_key_file(
        &bed.dir.path().join("keys/operator-signing.nk"),
        Some(KeyKind::Operator),
    )
    .unwrap();
    let token = buswarden_creds::jwt::encode(&mut claims, &signer, buswarden_creds::jwt::now() + 5)
        .unwrap();
    std::fs::write(&path, token).unwrap();

    let server = AccountServer::start(bed.config()).await.unwrap();
    let account = server.account().await;
    let served = buswarden_creds::jwt::decode_account(account["jwt"].as_str().unwrap()).unwrap();
    assert_eq!(served.data.name, "APP-v2", "the new base is served");
    assert!(
        served.nats.revocations.contains_key(ours.public_key()),
        "the server's revocation is kept"
    );
    assert!(
        served.nats.revocations.contains_key(theirs.public_key()),
        "busop's revocation is merged"
    );
    assert!(
        served.data.iat > claims.data.iat,
        "served iat is later than the file's"
    );
    let audit = server.audit(0, 100).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "rebase"));
}

/// Issue 15, Medium 4: revoke a user on a real broker, let its JWT expire
/// and the janitor prune its entry from the account JWT: renewing it and
/// signing the same key again are still refused (the server keeps a
/// permanent record of revoked keys, across a restart too), so it never
/// reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stays_revoked_after_its_entry_is_pruned() {
    let bed = Bed::new(Options::default());
    let (server, stop, handle) = serve_in_process(&bed).await;
    let nats = bed.start_nats();
    let client = http();
    open_deploy(&client, &bed, "d1", &bed.ci).await;
    let victim = KeyPair::generate(KeyKind::User);
    let sign_body = json!({ "users": [{ "hostname": "calc.example", "user_key": victim.public_key(), "rules": rules_for("calc.example") }], "expires": "3s" });
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/d1/users",
        sign_body.clone(),
        &bed.ci,
    )
    .await;
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
    assert!(
        disconnected(&mut events, std::time::Duration::from_secs(10)).await,
        "revoked user dropped"
    );

    // Past the JWT's expiry the janitor prunes the entry (on the broker too).
    let exp = buswarden_creds::jwt::decode_user(&jwt).unwrap().data.exp;
    while buswarden_creds::jwt::now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.tidy(buswarden_creds::jwt::now()).await.unwrap();
    let app = bed.app.public_key();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let on_broker = broker_account(nats.url(), &bed.sys_creds, app).await;
        if !on_broker.nats.revocations.contains_key(victim.public_key()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker never got the pruned JWT"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The attack: renew, then sign the same key again.
    let renew = format!("/v1/users/{}/renew", victim.public_key());
    let r = api(&client, &bed, "POST", &renew, json!(null), &bed.ci).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("revoked"), "{}", r.text);
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/d1/users",
        sign_body.clone(),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        connect_user(nats.url(), &jwt, &victim).await.is_err(),
        "the old JWT expired"
    );

    // And after a restart.
    let _ = stop.send(());
    handle.await.unwrap();
    common::stop_server(server).await;
    let (_server, _stop, _handle) = serve_in_process(&bed).await;
    let r = api(&client, &bed, "POST", &renew, json!(null), &bed.ci).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/d1/users",
        sign_body,
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text);
}

/// Issue 15, Low: open deploys are capped (each adds a signing key to the
/// account JWT) and an open deploy left unused past `deploys.open_ttl` is
/// retired by the janitor; an active deploy is never expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_deploys_are_capped_and_unused_ones_expire() {
    let bed = Bed::new(Options {
        with_nats: false,
        max_open: 2,
        open_ttl: "1h",
        ..Options::default()
    });
    let (server, _stop, _handle) = serve_in_process(&bed).await;
    let client = http();
    let open = |id: &'static str| {
        let (client, bed) = (&client, &bed);
        async move {
            api(
                client,
                bed,
                "POST",
                "/v1/deploys",
                json!({ "deploy": id }),
                &bed.ci,
            )
            .await
        }
    };
    assert_eq!(open("live").await.status, 201);
    let key = KeyPair::generate(KeyKind::User);
    let body = json!({ "users": [{ "hostname": "calc.example", "user_key": key.public_key(), "rules": rules_for("calc.example") }] });
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/live/users",
        body,
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/live/activate",
        json!(null),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(open("a").await.status, 201);
    assert_eq!(open("b").await.status, 201);
    let r = open("c").await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("max_open"), "{}", r.text);
    let keys = |v: &serde_json::Value| v["signing_keys"].as_array().unwrap().len();
    let account = api(
        &client,
        &bed,
        "GET",
        "/v1/account",
        json!(null),
        &bed.reader,
    )
    .await
    .json();
    assert_eq!(keys(&account), 3, "live, a and b: {account}");

    // An hour on, a and b expire; the active deploy stays.
    server
        .tidy(buswarden_creds::jwt::now() + 3601)
        .await
        .unwrap();
    let r = api(
        &client,
        &bed,
        "GET",
        "/v1/deploys",
        json!(null),
        &bed.reader,
    )
    .await;
    let states: Vec<(String, String)> = r.json()["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["deploy"].as_str().unwrap().into(),
                d["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        states.contains(&("live".into(), "active".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("a".into(), "retired".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("b".into(), "retired".into())),
        "{states:?}"
    );
    let account = api(
        &client,
        &bed,
        "GET",
        "/v1/account",
        json!(null),
        &bed.reader,
    )
    .await
    .json();
    assert_eq!(keys(&account), 1, "only the active deploy's key: {account}");
    let audit = api(
        &client,
        &bed,
        "GET",
        "/v1/audit?since=0",
        json!(null),
        &bed.reader,
    )
    .await
    .json();
    let expired: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "expire")
        .map(|e| e["deploy"].as_str().unwrap())
        .collect();
    assert_eq!(expired, ["a", "b"]);
    assert_eq!(open("c").await.status, 201, "room again");
}
