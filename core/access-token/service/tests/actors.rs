//! Actor tokens verified by a receiving service on a real nats-server:
//! required claims (200, 403, 401), expiry, issuer binding (a bearer token,
//! or a token signed by another issuer's key that claims to be an access
//! token, is 401), rotation and key eviction without a restart, and a flood
//! of unknown key ids costing at most two JWKS fetches.

use std::time::{Duration, Instant};

use access_token_core::{KeyRing, Service};
use buswarden::token::{ACCESS_TYP, BEARER_TYP};
use buswarden::{Connector, Error, context};
use buswarden_testkit::NatsServer;
use buswarden_token_signing::{TokenKey, unix_now};
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

#[buswarden::api(host = "vault.example")]
pub trait Vault {
    #[function(GET, "/open", claims = "roles.admin || (level > 5 && !guest)")]
    async fn open(&self) -> Result<String, Error>;
    #[function(GET, "/whoami", claims = "true")]
    async fn whoami(&self) -> Result<Option<String>, Error>;
    #[function(GET, "/anonymous")]
    async fn anonymous(&self) -> Result<Option<String>, Error>;
}

struct VaultService {
    svc: Connector,
}

impl Vault for VaultService {
    async fn open(&self) -> Result<String, Error> {
        // The verified actor is at hand without a second verification.
        let actor = self.svc.actor()?.expect("verified before the handler");
        Ok(format!(
            "opened for {}",
            actor.subject.clone().unwrap_or_default()
        ))
    }
    async fn whoami(&self) -> Result<Option<String>, Error> {
        Ok(self.svc.actor()?.and_then(|a| a.subject.clone()))
    }
    async fn anonymous(&self) -> Result<Option<String>, Error> {
        Ok(self.svc.actor()?.and_then(|a| a.subject.clone()))
    }
}

async fn connector(server: &NatsServer, host: &str) -> Connector {
    let c = Connector::with_config(host, buswarden::Config::default())
        .with_url(server.url())
        .with_timeout(Duration::from_secs(5));
    c.connect().await.expect("connect");
    c
}

fn copy(key: &TokenKey) -> TokenKey {
    TokenKey::from_pkcs8_text(&key.to_pkcs8_pem()).unwrap()
}

/// An access.token.core replica signing with `key`.
async fn issuer(server: &NatsServer, key: &TokenKey) -> Connector {
    let svc = connector(server, "access.token.core").await;
    let hours = Duration::from_secs(6 * 3600);
    let ring = KeyRing::with_key(copy(key), Instant::now(), hours, Duration::from_secs(10));
    access_token_core::start(&svc, Service::with_ring(svc.clone(), ring))
        .await
        .unwrap();
    svc
}

async fn vault(server: &NatsServer) -> Connector {
    let svc = connector(server, "vault.example").await;
    svc.serve(VaultServer::new(VaultService { svc: svc.clone() }))
        .await
        .unwrap();
    svc
}

fn access_claims(extra: Value, exp_in: i64) -> Map<String, Value> {
    let mut c = extra.as_object().unwrap().clone();
    let now = unix_now();
    c.insert("iss".into(), "https://access.token.core".into());
    c.insert("iat".into(), (now - 5).into());
    c.insert("exp".into(), (now + exp_in).into());
    c
}

async fn open_as(caller: &Connector, token: Option<&str>) -> Result<String, Error> {
    let call = VaultClient::new(caller).open();
    match token {
        Some(t) => context::with_actor(t, call).await,
        None => call.await,
    }
}

fn status(r: Result<String, Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(Error::Remote { status, .. }) => status,
        Err(e) => panic!("not a remote answer: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_claims_decide_on_verified_tokens_only() {
    let server = NatsServer::start("").unwrap();
    let key = TokenKey::generate();
    let _issuer = issuer(&server, &key).await;
    let _vault = vault(&server).await;
    let gateway = connector(&server, "gateway.example").await;

    // A token minted by access.token.core itself.
    let mut input = Map::new();
    input.insert("sub".into(), "alice".into());
    input.insert("roles".into(), json!(["admin"]));
    let minted = access_token_core_api::mint(&gateway, &input).await.unwrap();
    assert_eq!(
        open_as(&gateway, Some(&minted)).await.unwrap(),
        "opened for alice"
    );
    let whoami = context::with_actor(&minted, VaultClient::new(&gateway).whoami()).await;
    assert_eq!(whoami.unwrap().as_deref(), Some("alice"));

    let admin = key.sign(ACCESS_TYP, &access_claims(json!({"roles": ["admin"]}), 60));
    let senior = key.sign(ACCESS_TYP, &access_claims(json!({"level": 7}), 60));
    let guest = key.sign(
        ACCESS_TYP,
        &access_claims(json!({"level": 7, "guest": true}), 60),
    );
    let expired = key.sign(ACCESS_TYP, &access_claims(json!({"roles": ["admin"]}), -60));
    assert_eq!(status(open_as(&gateway, Some(&admin)).await), 200);
    assert_eq!(status(open_as(&gateway, Some(&senior)).await), 200);
    assert_eq!(status(open_as(&gateway, Some(&guest)).await), 403);
    assert_eq!(status(open_as(&gateway, None).await), 401);
    assert_eq!(status(open_as(&gateway, Some(&expired)).await), 401);
    assert_eq!(status(open_as(&gateway, Some("not.a.token")).await), 401);
    // `claims = "true"`: any verified actor; none or a junk token is 401.
    let r = context::with_actor("junk", VaultClient::new(&gateway).whoami()).await;
    assert!(matches!(r, Err(Error::Remote { status: 401, .. })), "{r:?}");
    let r = VaultClient::new(&gateway).whoami().await;
    assert!(matches!(r, Err(Error::Remote { status: 401, .. })), "{r:?}");
    // An endpoint without claims never reads a token: none is fine, a
    // present one is refused rather than read unverified.
    assert_eq!(VaultClient::new(&gateway).anonymous().await.unwrap(), None);
    let r = context::with_actor(&minted, VaultClient::new(&gateway).anonymous()).await;
    assert!(matches!(r, Err(Error::Remote { status: 401, .. })), "{r:?}");
    // No claims of a token whose signature fails are read.
    let mut forged = admin.clone();
    forged.pop();
    forged.push(if admin.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(status(open_as(&gateway, Some(&forged)).await), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_are_bound_to_their_keys() {
    let server = NatsServer::start("").unwrap();
    let access_key = TokenKey::generate();
    let _issuer = issuer(&server, &access_key).await;
    let _vault = vault(&server).await;
    let gateway = connector(&server, "gateway.example").await;
    let admin = json!({"roles": ["admin"]});

    // A genuine bearer token (bearer.token.core's key, typ JWT) is no actor.
    let bearer_key = TokenKey::generate();
    let mut bearer = access_claims(admin.clone(), 60);
    bearer.insert("iss".into(), "https://bearer.token.core".into());
    let genuine_bearer = bearer_key.sign(BEARER_TYP, &bearer);
    assert_eq!(status(open_as(&gateway, Some(&genuine_bearer)).await), 401);
    // Signed by the bearer key but claiming to be an access token: its key
    // id is not in access.token.core's JWKS.
    let posing = bearer_key.sign(ACCESS_TYP, &access_claims(admin.clone(), 60));
    assert_eq!(status(open_as(&gateway, Some(&posing)).await), 401);
    // The access key signing a token that claims another issuer.
    let mut other = access_claims(admin.clone(), 60);
    other.insert("iss".into(), "https://evil.example".into());
    let other = access_key.sign(ACCESS_TYP, &other);
    assert_eq!(status(open_as(&gateway, Some(&other)).await), 401);
    // And the access key with the right issuer passes.
    let good = access_key.sign(ACCESS_TYP, &access_claims(admin, 60));
    assert_eq!(status(open_as(&gateway, Some(&good)).await), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_tokens_and_eviction_drops_departed_keys() {
    let server = NatsServer::start("").unwrap();
    let k1 = TokenKey::generate();
    let first = issuer(&server, &k1).await;
    let vault_svc = vault(&server)
        .await
        .with_actor_key_eviction(Duration::from_secs(2));
    let gateway = connector(&server, "gateway.example").await;
    let admin = || access_claims(json!({"roles": ["admin"]}), 600);

    let old = k1.sign(ACCESS_TYP, &admin());
    assert_eq!(status(open_as(&gateway, Some(&old)).await), 200);

    // The replica holding k1 goes; one holding k2 serves the JWKS now.
    first.close().await;
    let k2 = TokenKey::generate();
    let _second = issuer(&server, &k2).await;
    let new = k2.sign(ACCESS_TYP, &admin());
    tokio::time::sleep(Duration::from_millis(1100)).await; // the fetch cooldown
    assert_eq!(status(open_as(&gateway, Some(&new)).await), 200);
    // A token verified before keeps verifying until it expires.
    assert_eq!(status(open_as(&gateway, Some(&old)).await), 200);

    // Past the eviction time, k1 (absent from the JWKS) verifies nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh_k1 = k1.sign(
        ACCESS_TYP,
        &access_claims(json!({"roles": ["admin"], "n": 2}), 600),
    );
    assert_eq!(status(open_as(&gateway, Some(&fresh_k1)).await), 401);
    assert!(vault_svc.jwks_fetches() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_key_ids_costs_at_most_two_fetches() {
    let server = NatsServer::start("").unwrap();
    let key = TokenKey::generate();
    let _issuer = issuer(&server, &key).await;
    let _vault = vault(&server).await;
    let gateway = connector(&server, "gateway.example").await;
    let monitor = async_nats::connect(server.url()).await.unwrap();
    let mut seen = monitor.subscribe(">").await.unwrap();
    buswarden_testkit::round_trip(&monitor, "probe.monitor").await;

    // Tokens naming random key ids nobody has (made before the clock runs).
    let tokens: Vec<String> = (0..1000)
        .map(|i| TokenKey::generate().sign(ACCESS_TYP, &access_claims(json!({"i": i}), 60)))
        .collect();
    // A patient caller: a thousand requests at once on two loaded cores.
    let gateway = gateway.with_ack_window(Duration::from_secs(3));
    let started = Instant::now();
    let calls = tokens.iter().map(|token| {
        let gateway = gateway.clone();
        async move { status(open_as(&gateway, Some(token)).await) }
    });
    let statuses = futures_util::future::join_all(calls).await;
    let took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 401));
    drop(seen.unsubscribe().await);
    let mut fetches = 0;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), seen.next()).await {
        let s = msg.subject.as_str();
        if s.contains(".888.") && s.contains(".access_token_core.") && s.ends_with(".jwks") {
            fetches += 1;
        }
    }
    eprintln!("1000 unknown-kid requests in {took:?}: {fetches} JWKS fetches");
    let seconds = took.as_secs_f64().ceil() as usize;
    assert!(
        fetches >= 1 && fetches <= 2 * seconds.max(1),
        "{fetches} fetches in {took:?}"
    );
}
