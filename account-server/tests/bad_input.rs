//! Bad input never gets anything signed or stored: unauthenticated, wrongly
//! signed, replayed, stale, oversized, malformed, invalid subjects, policy
//! violations, wrong roles and hostnames each get a 4xx with a plain JSON
//! message and no internals; afterwards the account JWT, the deploys, the
//! users and the audit log are exactly as before. Also: a new trust-root
//! grant needs an operator's approval.

mod common;

use std::sync::Arc;

use account_server::{AccountServer, app};
use axum::body::Body;
use axum::http::Request;
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::request_auth;
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const POLICY: &str = r#"version = 1
[caller."calc.example"]
trust-root = ["POST token.core:666/mint"]
"#;

/// The name the servers of these tests answer to (`[auth] audience`).
const AUD: &str = "accounts.test:7370";

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    body: Vec<u8>,
    auth: Option<String>,
}

impl<'a> Call<'a> {
    fn signed(method: &'a str, path: &'a str, body: Value, key: &KeyPair) -> Self {
        let body = if body.is_null() {
            vec![]
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let auth = request_auth::sign_now(key, AUD, method, path, &body).unwrap();
        Call {
            method,
            path,
            body,
            auth: Some(auth),
        }
    }
}

async fn send(server: &Arc<AccountServer>, c: &Call<'_>) -> (u16, Value) {
    let mut req = Request::builder().method(c.method).uri(c.path);
    if let Some(a) = &c.auth {
        req = req.header("authorization", a);
    }
    let resp = app(server.clone())
        .oneshot(req.body(Body::from(c.body.clone())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

/// Asserts a plain 4xx error message without internals.
fn refused(status: u16, body: &Value, expected: u16, contains: &str) {
    assert_eq!(status, expected, "{body}");
    let msg = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {body}"));
    assert!(
        msg.contains(contains),
        "{msg:?} should mention {contains:?}"
    );
    for leak in [
        "redb",
        "panicked",
        "src/",
        ".rs:",
        "Backend",
        "StoreError",
        "sealed",
        "/tmp",
    ] {
        assert!(!msg.contains(leak), "{msg:?} leaks {leak:?}");
    }
    assert!(!has_seed(msg));
}

async fn state(server: &Arc<AccountServer>, reader: &KeyPair) -> (Value, Value, Value) {
    let (_, account) = send(
        server,
        &Call::signed("GET", "/v1/account", Value::Null, reader),
    )
    .await;
    let (_, deploys) = send(
        server,
        &Call::signed("GET", "/v1/deploys", Value::Null, reader),
    )
    .await;
    let (_, audit) = send(
        server,
        &Call::signed("GET", "/v1/audit?since=0", Value::Null, reader),
    )
    .await;
    (account, deploys, audit)
}

fn user(hostname: &str, rules: Vec<String>) -> Value {
    json!({ "users": [{ "hostname": hostname, "user_key": KeyPair::generate(KeyKind::User).public_key(), "rules": rules }] })
}

#[tokio::test]
async fn bad_input_gets_a_plain_4xx_and_changes_nothing() {
    let bed = Bed::new(Options {
        audience: Some(AUD),
        policy: Some(POLICY),
        with_nats: false,
        ..Options::default()
    });
    let server = AccountServer::start(bed.config()).await.unwrap();
    let (s, v) = send(
        &server,
        &Call::signed("POST", "/v1/deploys", json!({ "deploy": "d1" }), &bed.ci),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let before = state(&server, &bed.reader).await;
    let users = "/v1/deploys/d1/users";
    let good = user("calc.example", rules_for("calc.example"));

    // Unauthenticated and wrongly authenticated.
    refused_call(
        &server,
        Call {
            method: "POST",
            path: "/v1/deploys",
            body: b"{\"deploy\":\"x\"}".to_vec(),
            auth: None,
        },
        401,
        "missing Authorization",
    )
    .await;
    refused_call(
        &server,
        Call {
            method: "POST",
            path: "/v1/deploys",
            body: vec![],
            auth: Some("Bearer abc".into()),
        },
        401,
        "scheme",
    )
    .await;
    let stranger = KeyPair::generate(KeyKind::User);
    refused_call(
        &server,
        Call::signed("POST", "/v1/deploys", json!({ "deploy": "x" }), &stranger),
        401,
        "unknown key",
    )
    .await;
    let mut tampered = Call::signed("POST", users, good.clone(), &bed.ci);
    tampered.body = serde_json::to_vec(&user("calc.example", rules_for("calc.example"))).unwrap();
    refused_call(&server, tampered, 401, "signature does not match").await;
    let mut other_path = Call::signed("POST", "/v1/deploys/d2/users", good.clone(), &bed.ci);
    other_path.path = users;
    refused_call(&server, other_path, 401, "signature does not match").await;
    let body = serde_json::to_vec(&json!({ "deploy": "x" })).unwrap();
    let stale = request_auth::sign(
        &bed.ci,
        AUD,
        "POST",
        "/v1/deploys",
        &body,
        buswarden_creds::jwt::now() - 3600,
        &request_auth::new_nonce().unwrap(),
    )
    .unwrap();
    refused_call(
        &server,
        Call {
            method: "POST",
            path: "/v1/deploys",
            body,
            auth: Some(stale),
        },
        401,
        "window",
    )
    .await;

    // Replayed: the first copy is refused for its content, the second as a replay.
    let once = Call::signed(
        "POST",
        users,
        user("calc.example", vec!["PUB {{plane}}.>".into()]),
        &bed.ci,
    );
    let (s, _) = send(&server, &once).await;
    assert_eq!(s, 422);
    let (s, v) = send(&server, &once).await;
    refused(s, &v, 401, "replayed");

    // Oversized, malformed.
    let big = json!({ "users": [{ "hostname": "calc.example", "user_key": "U", "rules": ["x".repeat(70_000)] }] });
    refused_call(
        &server,
        Call::signed("POST", users, big, &bed.ci),
        413,
        "too large",
    )
    .await;
    let mut bad_json = Call::signed("POST", users, Value::Null, &bed.ci);
    bad_json.body = b"{\"users\": [".to_vec();
    bad_json.auth =
        Some(request_auth::sign_now(&bed.ci, AUD, "POST", users, &bad_json.body).unwrap());
    refused_call(&server, bad_json, 400, "invalid JSON").await;
    refused_call(
        &server,
        Call::signed("POST", users, json!({ "users": [], "extra": 1 }), &bed.ci),
        400,
        "invalid JSON",
    )
    .await;
    refused_call(
        &server,
        Call::signed(
            "POST",
            "/v1/deploys",
            json!({ "deploy": "../etc" }),
            &bed.ci,
        ),
        400,
        "deploy id",
    )
    .await;
    // Issue 15, Low: `grep '\.danger\.'` on a .creds file must list only
    // trust-root grants; the deploy id is printed there, so ids containing
    // `danger` are refused as `gencreds sign` refuses them.
    for id in ["x.danger.y", "danger", "d1-danger", "D1"] {
        refused_call(
            &server,
            Call::signed("POST", "/v1/deploys", json!({ "deploy": id }), &bed.ci),
            400,
            "deploy id",
        )
        .await;
    }
    refused_call(&server, Call::signed("POST", users, json!({ "users": [{ "hostname": "calc.example", "user_key": "UNOTAKEY", "rules": rules_for("calc.example") }] }), &bed.ci), 400, "user public key").await;
    refused_call(
        &server,
        Call::signed(
            "POST",
            users,
            user("Bad_Host", rules_for("calc.example")),
            &bed.ci,
        ),
        400,
        "hostname",
    )
    .await;
    refused_call(
        &server,
        Call::signed(
            "POST",
            users,
            json!({ "users": good["users"], "expires": "400d" }),
            &bed.ci,
        ),
        400,
        "expires",
    )
    .await;

    // Invalid subjects and rule sets.
    for (rules, why) in [
        (vec!["PUB {{plane}}.>".to_string()], "wildcard"),
        (vec!["FOO bar".to_string()], "calc.example"),
        (
            vec![
                "PUB {{plane}}.safe.443.other_example.x.*.GET.a".to_string(),
                "SUB {{plane}}.reply._.*.calc_example.*".to_string(),
            ],
            "publishes as",
        ),
        (
            vec!["PUB {{plane}}.reply._.calc_example.>".to_string()],
            "at least one PUB and one SUB",
        ),
    ] {
        refused_call(
            &server,
            Call::signed("POST", users, user("calc.example", rules), &bed.ci),
            422,
            why,
        )
        .await;
    }
    // A rule set whose JWT would not fit the CONNECT line.
    let mut huge = rules_for("calc.example");
    huge.extend((0..80).map(|i| format!("PUB {{{{plane}}}}.safe.443.calc_example.other_example.*.GET.a-rather-long-path-segment-{i}")));
    refused_call(
        &server,
        Call::signed("POST", users, user("calc.example", huge), &bed.ci),
        422,
        "CONNECT line",
    )
    .await;
    // The policy: a trust-root grant it does not list.
    let mut burn = rules_for("calc.example");
    burn.push("PUB {{plane}}.danger.666.calc_example.token_core.*.POST.burn".into());
    refused_call(
        &server,
        Call::signed("POST", users, user("calc.example", burn), &bed.ci),
        422,
        "policy violation",
    )
    .await;

    // Roles and hostname limits.
    refused_call(
        &server,
        Call::signed(
            "POST",
            users,
            user("other.example", rules_for("other.example")),
            &bed.ci,
        ),
        403,
        "may not sign for other.example",
    )
    .await;
    refused_call(
        &server,
        Call::signed("POST", "/v1/deploys", json!({ "deploy": "x" }), &bed.reader),
        403,
        "needs the ci role",
    )
    .await;
    refused_call(
        &server,
        Call::signed(
            "POST",
            "/v1/revocations",
            json!({ "user_key": stranger.public_key() }),
            &bed.ci,
        ),
        403,
        "needs the operator role",
    )
    .await;
    refused_call(
        &server,
        Call::signed("POST", "/v1/deploys/nope/activate", Value::Null, &bed.ci),
        404,
        "no deploy",
    )
    .await;

    let after = state(&server, &bed.reader).await;
    assert_eq!(before, after, "nothing stored, nothing signed");
    assert_eq!(after.1["deploys"][0]["users"], 0);
}

async fn refused_call(server: &Arc<AccountServer>, c: Call<'_>, status: u16, contains: &str) {
    let (s, v) = send(server, &c).await;
    refused(s, &v, status, contains);
}

#[tokio::test]
async fn a_new_trust_root_grant_needs_an_operator_approval() {
    let bed = Bed::new(Options {
        audience: Some(AUD),
        policy: Some(POLICY),
        with_nats: false,
        ..Options::default()
    });
    let server = AccountServer::start(bed.config()).await.unwrap();
    let mint = "PUB {{plane}}.danger.666.calc_example.token_core.*.POST.mint";
    let mut rules = rules_for("calc.example");
    rules.push(mint.into());
    let (s, _) = send(
        &server,
        &Call::signed("POST", "/v1/deploys", json!({ "deploy": "d1" }), &bed.ci),
    )
    .await;
    assert_eq!(s, 201);
    let sign = |d: &'static str| {
        Call::signed(
            "POST",
            if d == "d1" {
                "/v1/deploys/d1/users"
            } else {
                "/v1/deploys/d2/users"
            },
            user("calc.example", rules.clone()),
            &bed.ci,
        )
    };
    let (s, v) = send(&server, &sign("d1")).await;
    refused(s, &v, 403, "must approve");
    // Only an operator approves.
    let approval = json!({ "deploy": "d1", "rule": mint });
    let (s, v) = send(
        &server,
        &Call::signed("POST", "/v1/approvals", approval.clone(), &bed.ci),
    )
    .await;
    refused(s, &v, 403, "operator");
    let (s, v) = send(
        &server,
        &Call::signed("POST", "/v1/approvals", approval, &bed.op),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = send(&server, &sign("d1")).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = send(
        &server,
        &Call::signed("POST", "/v1/deploys/d1/activate", Value::Null, &bed.ci),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // The next deploy keeps the grant the active deploy has: no approval needed.
    let (s, _) = send(
        &server,
        &Call::signed("POST", "/v1/deploys", json!({ "deploy": "d2" }), &bed.ci),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = send(&server, &sign("d2")).await;
    assert_eq!(s, 200, "{v}");
    let (_, audit) = send(
        &server,
        &Call::signed("GET", "/v1/audit?since=0", Value::Null, &bed.reader),
    )
    .await;
    let approve = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "approve")
        .unwrap();
    assert_eq!(approve["caller"], bed.op.public_key());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_change_cannot_be_replayed_not_even_concurrently() {
    let bed = Bed::new(Options {
        audience: Some(AUD),
        with_nats: false,
        ..Options::default()
    });
    let server = AccountServer::start(bed.config()).await.unwrap();
    let victim = KeyPair::generate(KeyKind::User);
    let revoke = Call::signed(
        "POST",
        "/v1/revocations",
        json!({ "user_key": victim.public_key() }),
        &bed.op,
    );
    let (s, v) = send(&server, &revoke).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = send(&server, &revoke).await;
    refused(s, &v, 401, "replayed");

    // Two copies at once: exactly one goes through.
    let other = KeyPair::generate(KeyKind::User);
    let twice = Call::signed(
        "POST",
        "/v1/revocations",
        json!({ "user_key": other.public_key() }),
        &bed.op,
    );
    let (a, b) = tokio::join!(send(&server, &twice), send(&server, &twice));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{a:?} {b:?}");
    let (_, audit) = send(
        &server,
        &Call::signed("GET", "/v1/audit?since=0", Value::Null, &bed.reader),
    )
    .await;
    let revokes = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "revoke-user")
        .count();
    assert_eq!(revokes, 2);
    // And after a restart the nonces are still known.
    common::stop_server(server).await;
    let server = AccountServer::start(bed.config()).await.unwrap();
    let (s, v) = send(&server, &revoke).await;
    refused(s, &v, 401, "replayed");
    let (s, v) = send(&server, &twice).await;
    refused(s, &v, 401, "replayed");
}

/// Issue 15, Medium 8: a user signed with a trust-root grant the policy
/// allowed; the operator then drops the grant from the policy and restarts
/// the server. Renewing the user is refused (422, policy violation) and
/// nothing is signed or stored.
#[tokio::test]
async fn renew_refuses_grants_the_current_policy_forbids() {
    let bed = Bed::new(Options {
        audience: Some(AUD),
        policy: Some(POLICY),
        with_nats: false,
        ..Options::default()
    });
    let server = AccountServer::start(bed.config()).await.unwrap();
    let mint = "PUB {{plane}}.danger.666.calc_example.token_core.*.POST.mint";
    let mut rules = rules_for("calc.example");
    rules.push(mint.into());
    let (s, _) = send(
        &server,
        &Call::signed("POST", "/v1/deploys", json!({ "deploy": "d1" }), &bed.ci),
    )
    .await;
    assert_eq!(s, 201);
    let approval = json!({ "deploy": "d1", "rule": mint });
    let (s, v) = send(
        &server,
        &Call::signed("POST", "/v1/approvals", approval, &bed.op),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let key = KeyPair::generate(KeyKind::User);
    let body = json!({ "users": [{ "hostname": "calc.example", "user_key": key.public_key(), "rules": rules }] });
    let (s, v) = send(
        &server,
        &Call::signed("POST", "/v1/deploys/d1/users", body, &bed.ci),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let renew = format!("/v1/users/{}/renew", key.public_key());
    let (s, v) = send(&server, &Call::signed("POST", &renew, Value::Null, &bed.ci)).await;
    assert_eq!(s, 200, "renewal under the same policy: {v}");

    // The policy no longer lists the grant.
    common::stop_server(server).await;
    std::fs::write(bed.dir.path().join("buswarden.toml"), "version = 1\n").unwrap();
    let server = AccountServer::start(bed.config()).await.unwrap();
    let before = state(&server, &bed.reader).await;
    let (s, v) = send(&server, &Call::signed("POST", &renew, Value::Null, &bed.ci)).await;
    refused(s, &v, 422, "policy violation");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("token_core.*.POST.mint"),
        "{v}"
    );
    let after = state(&server, &bed.reader).await;
    assert_eq!(before.0, after.0, "account unchanged");
    assert_eq!(before.1, after.1, "deploys unchanged");
    assert_eq!(before.2, after.2, "audit unchanged");
}

/// Issue 15, Low: timestamps at the ends of i64 (`ts = now - 2^63` made the
/// handler overflow) and a request signed for another account server are
/// each a plain 401, and the server keeps answering.
#[tokio::test]
async fn extreme_timestamps_and_requests_for_another_server_are_401() {
    let bed = Bed::new(Options {
        audience: Some(AUD),
        with_nats: false,
        ..Options::default()
    });
    let server = AccountServer::start(bed.config()).await.unwrap();
    let before = state(&server, &bed.reader).await;
    let body = serde_json::to_vec(&json!({ "deploy": "x" })).unwrap();
    let now = buswarden_creds::jwt::now();
    for ts in [
        now.wrapping_add(i64::MIN),
        i64::MIN,
        i64::MAX,
        now.wrapping_sub(i64::MAX),
    ] {
        let auth = request_auth::sign(
            &bed.ci,
            AUD,
            "POST",
            "/v1/deploys",
            &body,
            ts,
            &request_auth::new_nonce().unwrap(),
        )
        .unwrap();
        refused_call(
            &server,
            Call {
                method: "POST",
                path: "/v1/deploys",
                body: body.clone(),
                auth: Some(auth),
            },
            401,
            "window",
        )
        .await;
    }
    // Signed (correctly, by a key this server trusts) for another server.
    let auth = request_auth::sign_now(
        &bed.ci,
        "other-accounts.test:7370",
        "POST",
        "/v1/deploys",
        &body,
    )
    .unwrap();
    refused_call(
        &server,
        Call {
            method: "POST",
            path: "/v1/deploys",
            body: body.clone(),
            auth: Some(auth),
        },
        401,
        "signed for account server \"other-accounts.test:7370\"",
    )
    .await;
    let after = state(&server, &bed.reader).await;
    assert_eq!(before.0, after.0);
    assert_eq!(before.1, after.1);
    assert_eq!(before.2, after.2);
}
