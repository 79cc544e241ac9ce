//! Against a real nats-server 2.15.1 whose URL resolver is the account
//! server: the server starts and resolves accounts, users signed through the
//! lifecycle API connect, revoking a user or retiring a deploy (by the
//! operator, or after the grace period) closes the affected connections and
//! only those.

mod common;

use std::time::Duration;

use buswarden_creds::keys::{KeyKind, KeyPair};
use common::*;
use serde_json::json;

async fn open_and_sign(
    client: &Http,
    bed: &Bed,
    deploy: &str,
    hosts: &[&str],
) -> Vec<(KeyPair, String)> {
    let r = api(
        client,
        bed,
        "POST",
        "/v1/deploys",
        json!({ "deploy": deploy }),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["state"], "open");
    assert!(r.json()["signing_key"].as_str().unwrap().starts_with('A'));
    let keys: Vec<KeyPair> = hosts
        .iter()
        .map(|_| KeyPair::generate(KeyKind::User))
        .collect();
    let users: Vec<_> = hosts
        .iter()
        .zip(&keys)
        .map(|(h, k)| json!({ "hostname": h, "user_key": k.public_key(), "rules": rules_for(h) }))
        .collect();
    let r = api(
        client,
        bed,
        "POST",
        &format!("/v1/deploys/{deploy}/users"),
        json!({ "users": users, "expires": "1h" }),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let signed = r.json()["users"].as_array().unwrap().clone();
    assert_eq!(signed.len(), hosts.len());
    assert!(!has_seed(&r.text), "no seed ever in a reply");
    keys.into_iter()
        .zip(signed)
        .map(|(k, s)| {
            assert_eq!(s["user_key"], k.public_key());
            (k, s["jwt"].as_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_resolves_accepts_and_drops_users_through_the_lifecycle() {
    let bed = Bed::new(Options::default());
    let (_server, stop, handle) = serve_in_process(&bed).await;
    let nats = bed.start_nats();
    let client = http();
    let base = bed.base_url();

    // The resolver protocol.
    let r = call(&client, &base, "GET", "/jwt/v1/accounts/", b"", None, &[]).await;
    assert_eq!(r.status, 200);
    let app = bed.app.public_key();
    let r = call(
        &client,
        &base,
        "GET",
        &format!("/jwt/v1/accounts/{app}"),
        b"",
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let claims = buswarden_creds::jwt::decode_account(&r.text).unwrap();
    assert_eq!(claims.data.sub, app);
    let etag = r.etag.clone().unwrap();
    let r304 = call(
        &client,
        &base,
        "GET",
        &format!("/jwt/v1/accounts/{app}"),
        b"",
        None,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(r304.status, 304);
    assert!(r304.text.is_empty());
    let unknown = KeyPair::generate(KeyKind::Account);
    let r = call(
        &client,
        &base,
        "GET",
        &format!("/jwt/v1/accounts/{}", unknown.public_key()),
        b"",
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 404);

    // Deploy 1: two services, activated.
    let d1 = open_and_sign(&client, &bed, "d1", &["calc.example", "cart.shop.example"]).await;
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/d1/activate",
        json!(null),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["deploy"]["state"], "active");

    let (calc, mut calc_events) = connect_user(nats.url(), &d1[0].1, &d1[0].0)
        .await
        .expect("calc connects");
    let (cart, mut cart_events) = connect_user(nats.url(), &d1[1].1, &d1[1].0)
        .await
        .expect("cart connects");
    // The grants work: calc may subscribe to its own requests and publish replies.
    let mut sub = calc
        .subscribe("microbus.safe.443.x.calc_example._.GET.hi")
        .await
        .unwrap();
    calc.flush().await.unwrap();
    cart.publish(
        "microbus.reply._.cart_shop_example.calc_example.id-1",
        "ok".into(),
    )
    .await
    .unwrap();
    cart.flush().await.unwrap();
    drop(sub.unsubscribe().await);

    // An ETag changes with the JWT.
    let r = call(
        &client,
        &base,
        "GET",
        &format!("/jwt/v1/accounts/{app}"),
        b"",
        None,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(
        r.status, 200,
        "the account JWT changed, so the old ETag no longer matches"
    );

    // Revoking calc closes calc's connection, not cart's.
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/revocations",
        json!({ "user_key": d1[0].0.public_key() }),
        &bed.op,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["push"]["confirmed"], 1);
    assert!(
        disconnected(&mut calc_events, Duration::from_secs(5)).await,
        "revoked user disconnected"
    );
    assert!(
        !disconnected(&mut cart_events, Duration::from_millis(300)).await,
        "other user stays"
    );
    assert!(
        connect_user(nats.url(), &d1[0].1, &d1[0].0).await.is_err(),
        "revoked user cannot reconnect"
    );
    let on_broker = broker_account(nats.url(), &bed.sys_creds, app).await;
    assert!(
        on_broker
            .nats
            .revocations
            .contains_key(d1[0].0.public_key())
    );

    // Deploy 2 replaces deploy 1; the operator retires deploy 1 at once:
    // cart@d1 is dropped, cart@d2 connects and stays.
    let d2 = open_and_sign(&client, &bed, "d2", &["cart.shop.example"]).await;
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/d2/activate",
        json!(null),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_cart2, mut cart2_events) = connect_user(nats.url(), &d2[0].1, &d2[0].0)
        .await
        .expect("cart@d2 connects");
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
    assert_eq!(
        states,
        vec![
            ("d1".into(), "retiring".into()),
            ("d2".into(), "active".into())
        ]
    );
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/d1/retire",
        json!(null),
        &bed.op,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        disconnected(&mut cart_events, Duration::from_secs(5)).await,
        "retiring d1 drops its users"
    );
    assert!(
        !disconnected(&mut cart2_events, Duration::from_millis(300)).await,
        "d2 users stay"
    );
    let on_broker = broker_account(nats.url(), &bed.sys_creds, app).await;
    assert!(
        !on_broker
            .nats
            .signing_keys
            .contains(r.json()["deploy"]["signing_key"].as_str().unwrap())
    );

    // Renew gives a fresh JWT with the same grants; a revoked user cannot be renewed.
    let r = api(
        &client,
        &bed,
        "POST",
        &format!("/v1/users/{}/renew", d2[0].0.public_key()),
        json!(null),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let renewed = buswarden_creds::jwt::decode_user(r.json()["jwt"].as_str().unwrap()).unwrap();
    let first = buswarden_creds::jwt::decode_user(&d2[0].1).unwrap();
    assert_eq!(renewed.nats.limits.publish, first.nats.limits.publish);
    assert_eq!(renewed.nats.generic.tags, ["deploy:d2"]);
    assert_eq!(renewed.nats.issuer_account, app);
    assert_eq!(renewed.nats.limits.subscribe, first.nats.limits.subscribe);
    // The same claims as `gencreds sign` writes (creds::sign::user_claims):
    // every SUB rule ending in `*` carries its `sub.deny` guard, so the
    // server cannot widen it to `>`.
    let guards: Vec<&String> = first.nats.limits.subscribe.deny.iter().collect();
    assert!(
        first
            .nats
            .limits
            .subscribe
            .allow
            .iter()
            .filter(|s| s.ends_with(".*"))
            .all(|s| guards.contains(&&format!("{s}.>"))),
        "allow {:?} deny {:?}",
        first.nats.limits.subscribe.allow,
        guards
    );
    assert!(!guards.is_empty());
    connect_user(nats.url(), r.json()["jwt"].as_str().unwrap(), &d2[0].0)
        .await
        .expect("renewed JWT connects");
    let r = api(
        &client,
        &bed,
        "POST",
        &format!("/v1/users/{}/renew", d1[0].0.public_key()),
        json!(null),
        &bed.ci,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text);

    // The audit log has every step with the caller's key.
    let r = api(
        &client,
        &bed,
        "GET",
        "/v1/audit?since=0",
        json!(null),
        &bed.reader,
    )
    .await;
    let actions: Vec<String> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        [
            "import",
            "open",
            "sign",
            "activate",
            "revoke-user",
            "open",
            "sign",
            "activate",
            "retire",
            "renew"
        ]
    );
    let entries = r.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries[4]["caller"], bed.op.public_key());
    assert_eq!(entries[1]["caller"], bed.ci.public_key());
    // Issue 15, Low: a `sign` (and `renew`) entry records what was signed,
    // the rules and their hash, per user, so a rogue grant can be found.
    let grants = entries[2]["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2, "{}", entries[2]);
    for (g, (key, host)) in grants.iter().zip([
        (d1[0].0.public_key(), "calc.example"),
        (d1[1].0.public_key(), "cart.shop.example"),
    ]) {
        assert_eq!(g["user_key"], key);
        assert_eq!(g["hostname"], host);
        let rules: Vec<String> = g["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        let mut sorted_expected = rules_for(host);
        sorted_expected.sort();
        let mut sorted = rules.clone();
        sorted.sort();
        assert_eq!(sorted, sorted_expected, "the rules signed for {host}");
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for r in &rules {
            h.update(r.as_bytes());
            h.update(b"\n");
        }
        assert_eq!(g["rules_sha256"], hex::encode(h.finalize()));
    }
    let renew = entries.last().unwrap();
    assert_eq!(renew["grants"].as_array().unwrap().len(), 1, "{renew}");

    // Health and metrics.
    let r = call(&client, &base, "GET", "/healthz", b"", None, &[]).await;
    assert_eq!((r.status, r.text.as_str()), (200, "ok\n"));
    let m = call(&client, &base, "GET", "/metrics", b"", None, &[])
        .await
        .text;
    assert!(
        m.contains("buswarden_account_server_revocations_total 1\n"),
        "{m}"
    );
    assert!(
        m.contains("buswarden_account_server_resolver_not_modified_total 1\n"),
        "{m}"
    );
    assert!(
        m.contains("buswarden_account_server_deploys_opened_total 2\n"),
        "{m}"
    );

    let _ = stop.send(());
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_retires_the_previous_deploy_and_a_deploy_revoke_drops_its_users() {
    let bed = Bed::new(Options {
        grace: "2s",
        ..Options::default()
    });
    let (_server, stop, handle) = serve_in_process(&bed).await;
    let nats = bed.start_nats();
    let client = http();
    let d1 = open_and_sign(&client, &bed, "d1", &["calc.example"]).await;
    assert_eq!(
        api(
            &client,
            &bed,
            "POST",
            "/v1/deploys/d1/activate",
            json!(null),
            &bed.ci
        )
        .await
        .status,
        200
    );
    let (_c1, mut ev1) = connect_user(nats.url(), &d1[0].1, &d1[0].0).await.unwrap();
    let d2 = open_and_sign(&client, &bed, "d2", &["calc.example"]).await;
    assert_eq!(
        api(
            &client,
            &bed,
            "POST",
            "/v1/deploys/d2/activate",
            json!(null),
            &bed.ci
        )
        .await
        .status,
        200
    );
    // Checked right after activation, before anything else takes time on a
    // loaded machine: the grace period has not run out yet.
    assert!(
        !disconnected(&mut ev1, Duration::from_millis(500)).await,
        "d1 serves during the grace period"
    );
    let (_c2, mut ev2) = connect_user(nats.url(), &d2[0].1, &d2[0].0).await.unwrap();
    assert!(
        disconnected(&mut ev1, Duration::from_secs(10)).await,
        "d1 dropped after the grace period"
    );
    let r = api(
        &client,
        &bed,
        "GET",
        "/v1/deploys",
        json!(null),
        &bed.reader,
    )
    .await;
    assert_eq!(r.json()["deploys"][0]["state"], "retired");

    // Revoking the whole of d2 drops its users and revokes their keys.
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/d2/revoke",
        json!(null),
        &bed.op,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(disconnected(&mut ev2, Duration::from_secs(5)).await);
    let on_broker = broker_account(nats.url(), &bed.sys_creds, bed.app.public_key()).await;
    assert!(
        on_broker
            .nats
            .revocations
            .contains_key(d2[0].0.public_key())
    );
    let _ = stop.send(());
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_gets_the_update_and_confirms_it() {
    let bed = Bed::new(Options {
        more_nats: 1,
        ..Options::default()
    });
    let (_server, stop, handle) = serve_in_process(&bed).await;
    let a = bed.start_nats();
    let b =
        buswarden_testkit::NatsServer::start(&bed.nats_config_on(bed.more_nats_ports[0])).unwrap();
    let client = http();
    let users = open_and_sign(&client, &bed, "d1", &["calc.example", "cart.shop.example"]).await;
    let (_ca, mut on_a) = connect_user(a.url(), &users[0].1, &users[0].0)
        .await
        .unwrap();
    let (_cb, mut on_b) = connect_user(b.url(), &users[1].1, &users[1].0)
        .await
        .unwrap();
    for ((key, _), events) in users.iter().zip([&mut on_a, &mut on_b]) {
        let r = api(
            &client,
            &bed,
            "POST",
            "/v1/revocations",
            json!({ "user_key": key.public_key() }),
            &bed.op,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["push"]["servers"], 2);
        assert_eq!(r.json()["push"]["confirmed"], 2, "both servers confirmed");
        assert!(disconnected(events, Duration::from_secs(5)).await);
    }
    for server in [&a, &b] {
        let on_broker = broker_account(server.url(), &bed.sys_creds, bed.app.public_key()).await;
        for (key, _) in &users {
            assert!(on_broker.nats.revocations.contains_key(key.public_key()));
        }
    }
    let _ = stop.send(());
    handle.await.unwrap();
}

/// Issue 15, High 2: a ci key limited to one service opens a deploy, signs
/// its one user and tries to activate it over the live two-service deploy
/// (grace 0, so a successful activation would drop the live users at once).
/// The activation is refused with 403, the live deploy stays active and its
/// users stay connected on the real broker; the operator may activate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_key_for_one_service_cannot_activate_over_the_live_deploy() {
    let bed = Bed::new(Options {
        grace: "0s",
        ..Options::default()
    });
    let (_server, stop, handle) = serve_in_process(&bed).await;
    let nats = bed.start_nats();
    let client = http();
    let live = open_and_sign(
        &client,
        &bed,
        "live",
        &["calc.example", "cart.shop.example"],
    )
    .await;
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
    let (_calc, mut calc_events) = connect_user(nats.url(), &live[0].1, &live[0].0)
        .await
        .expect("calc connects");
    let (_cart, mut cart_events) = connect_user(nats.url(), &live[1].1, &live[1].0)
        .await
        .expect("cart connects");

    // The attack: the calc-only key opens, signs calc, activates.
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys",
        json!({ "deploy": "rogue" }),
        &bed.ci_calc,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let user = KeyPair::generate(KeyKind::User);
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/rogue/users",
        json!({ "users": [{ "hostname": "calc.example", "user_key": user.public_key(), "rules": rules_for("calc.example") }] }),
        &bed.ci_calc,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/rogue/activate",
        json!(null),
        &bed.ci_calc,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("cart.shop.example"), "{}", r.text);
    assert!(r.text.contains("operator role"), "{}", r.text);

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
    assert_eq!(
        states,
        vec![
            ("live".into(), "active".into()),
            ("rogue".into(), "open".into())
        ]
    );
    assert!(
        !disconnected(&mut calc_events, Duration::from_secs(2)).await,
        "the live calc stays connected"
    );
    assert!(
        !disconnected(&mut cart_events, Duration::from_millis(300)).await,
        "the live cart stays connected"
    );
    assert!(
        connect_user(nats.url(), &live[1].1, &live[1].0)
            .await
            .is_ok(),
        "the live deploy's users still connect"
    );

    // The operator may activate (and with grace 0 the live deploy goes at once).
    let r = api(
        &client,
        &bed,
        "POST",
        "/v1/deploys/rogue/activate",
        json!(null),
        &bed.op,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        disconnected(&mut cart_events, Duration::from_secs(10)).await,
        "an operator's activation retires the live deploy"
    );
    drop(stop);
    let _ = handle.await;
}
