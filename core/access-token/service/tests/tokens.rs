//! The token services on a real nats-server: what `Mint` stamps, what
//! `JWKS` lists (joined over replicas for access.token.core), that every
//! token verifies with exactly its issuer's key, lifetimes, and refusals of
//! malformed mint requests.

use std::collections::HashSet;
use std::time::Duration;

use buswarden::token::{self, ACCESS_TYP, BEARER_TYP, Jwks};
use buswarden::{Connector, Error};
use buswarden_testkit::NatsServer;
use serde_json::{Map, Value, json};

async fn connector(server: &NatsServer, host: &str, timeout: Duration) -> Connector {
    let c = Connector::with_config(host, buswarden::Config::default())
        .with_url(server.url())
        .with_timeout(timeout);
    c.connect().await.expect("connect");
    c
}

async fn access_replica(server: &NatsServer) -> Connector {
    let svc = connector(server, token::ACCESS_ISSUER, Duration::from_secs(5)).await;
    let service = access_token_core::Service::new(svc.clone(), &Default::default()).unwrap();
    access_token_core::start(&svc, service).await.unwrap();
    svc
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// Verifies `token` with the key its `kid` names in `jwks`; returns the
/// header `typ` and the payload.
fn verify(token: &str, jwks: &Jwks) -> Result<(String, Value), String> {
    let t = token::decode(token).map_err(|e| e.to_string())?;
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == t.header.kid)
        .ok_or("kid not in JWKS")?;
    t.verify(&jwk.verifying_key().ok_or("bad JWK")?)
        .map_err(|e| e.to_string())?;
    Ok((
        t.header.typ.clone(),
        serde_json::from_slice(&t.payload).unwrap(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_are_stamped_signed_and_listed_by_every_replica() {
    let server = NatsServer::start("").unwrap();
    let _a = access_replica(&server).await;
    let _b = access_replica(&server).await;
    let caller = connector(&server, "gateway.example", Duration::from_secs(5)).await;

    let input = claims(json!({
        "sub": "u-1", "roles": ["buyer"], "iss": "https://bearer.token.core",
        "exp": 99_999_999_999i64, "jti": "chosen-by-caller"
    }));
    let t1 = access_token_core_api::mint(&caller, &input).await.unwrap();
    let t2 = access_token_core_api::mint(&caller, &input).await.unwrap();

    // JWKS from either replica lists both replicas' keys.
    let jwks = access_token_core_api::jwks(&caller).await.unwrap();
    let kids: HashSet<&str> = jwks.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids.len(), 2, "{jwks:?}");
    for k in &jwks.keys {
        assert_eq!(
            (
                k.kty.as_str(),
                k.crv.as_str(),
                k.use_.as_str(),
                k.alg.as_str()
            ),
            ("OKP", "Ed25519", "sig", "EdDSA")
        );
    }

    let (typ, p1) = verify(&t1, &jwks).unwrap();
    let (_, p2) = verify(&t2, &jwks).unwrap();
    assert_eq!(typ, ACCESS_TYP);
    assert_eq!(p1["iss"], "https://access.token.core");
    assert_eq!(p1["idp"], "https://bearer.token.core");
    assert_eq!(p1["sub"], "u-1");
    assert_eq!(p1["roles"], json!(["buyer"]));
    assert_ne!(p1["jti"], "chosen-by-caller");
    assert_ne!(p1["jti"], p2["jti"]);
    let (iat, exp) = (p1["iat"].as_i64().unwrap(), p1["exp"].as_i64().unwrap());
    // The caller's budget (5 s less a round trip) plus 5 s each side.
    assert!(
        (13..=15).contains(&(exp - iat)),
        "exp - iat = {}",
        exp - iat
    );
    let now = buswarden_token_signing::unix_now();
    assert!((now - 7..=now).contains(&iat), "iat {iat} now {now}");

    // A token verifies with its own key only.
    let other = Jwks {
        keys: jwks
            .keys
            .iter()
            .filter(|k| k.kid != token::decode(&t1).unwrap().header.kid)
            .cloned()
            .collect(),
    };
    assert!(verify(&t1, &other).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_lives_for_the_callers_budget_at_most_fifteen_minutes() {
    let server = NatsServer::start("").unwrap();
    let _a = access_replica(&server).await;
    for (budget, want) in [(60, 68..=70), (3600, 908..=910)] {
        let caller = connector(&server, "gateway.example", Duration::from_secs(budget)).await;
        let t = access_token_core_api::mint(&caller, &Map::new())
            .await
            .unwrap();
        let jwks = access_token_core_api::jwks(&caller).await.unwrap();
        let (_, p) = verify(&t, &jwks).unwrap();
        let life = p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap();
        assert!(want.contains(&life), "budget {budget}s: exp - iat = {life}");
        assert!(p.get("idp").is_none(), "no input iss, no idp");
        caller.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_use_the_configured_keys_and_ttl() {
    let server = NatsServer::start("").unwrap();
    let svc = connector(&server, token::BEARER_ISSUER, Duration::from_secs(5)).await;
    let service = bearer_token_core::Service::new(&bearer_token_core::Config {
        development: true,
        ttl: Some(Duration::from_secs(3600)),
        ..Default::default()
    })
    .unwrap();
    bearer_token_core::start(&svc, service).await.unwrap();
    let _access = access_replica(&server).await;
    let caller = connector(&server, "login.example", Duration::from_secs(5)).await;

    let t = bearer_token_core_api::mint(&caller, &claims(json!({"sub": "u-2", "iss": "x"})))
        .await
        .unwrap();
    let bearer_jwks = bearer_token_core_api::jwks(&caller).await.unwrap();
    assert_eq!(bearer_jwks.keys.len(), 2, "key and alternate");
    let (typ, p) = verify(&t, &bearer_jwks).unwrap();
    assert_eq!(typ, BEARER_TYP);
    assert_eq!(p["iss"], "https://bearer.token.core");
    assert_eq!(p["sub"], "u-2");
    assert_eq!(
        p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(),
        3600 + 300
    );

    // The two issuers' keys are disjoint: neither verifies the other's tokens.
    let access_jwks = access_token_core_api::jwks(&caller).await.unwrap();
    assert!(verify(&t, &access_jwks).is_err());
    let a = access_token_core_api::mint(&caller, &Map::new())
        .await
        .unwrap();
    assert!(verify(&a, &bearer_jwks).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mint_requests_are_refused() {
    let server = NatsServer::start("").unwrap();
    let _a = access_replica(&server).await;
    let caller = connector(&server, "gateway.example", Duration::from_secs(5)).await;
    let client = access_token_core_api::AccessTokenCoreClient::new(&caller);
    for (body, status) in [
        (b"not json".to_vec(), 400),
        (br#"{"claims": ["a"]}"#.to_vec(), 400),
        (br#"{}"#.to_vec(), 400),
        (vec![b' '; token::MAX_MINT_REQUEST + 1], 413),
    ] {
        match client.mint(buswarden::Request::new().with_body(body)).await {
            Err(Error::Remote { status: s, .. }) => assert_eq!(s, status),
            Ok(r) if r.status == status => {}
            other => panic!("expected {status}, got {other:?}"),
        }
    }
}
