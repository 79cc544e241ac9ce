//! Required claims on served endpoints, on a real nats-server: the claims
//! compiled into an endpoint are never read from an unverified token. Here
//! no issuer serves keys, so an endpoint that declares claims answers 401 to
//! every call, with or without a (forged) actor, while its neighbours
//! without claims are served. `core/access-token/service/tests/actors.rs`
//! runs the same endpoints with access.token.core on the bus.

use buswarden::{Connector, Error, context};
use buswarden_testkit::NatsServer;
use std::time::Duration;

#[buswarden::api(host = "vault.example")]
pub trait Vault {
    #[function(GET, "/open", claims = "roles.admin || (level > 5 && !guest)")]
    async fn open(&self) -> Result<String, Error>;
    #[function(GET, "/public")]
    async fn public(&self) -> Result<String, Error>;
}

struct VaultService;

impl Vault for VaultService {
    async fn open(&self) -> Result<String, Error> {
        Ok("opened".into())
    }
    async fn public(&self) -> Result<String, Error> {
        Ok("hello".into())
    }
}

async fn connector(server: &NatsServer, host: &str) -> Connector {
    let c = Connector::with_config(host, buswarden::Config::default())
        .with_url(server.url())
        .with_timeout(Duration::from_secs(5));
    c.connect().await.expect("connect");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claims_endpoint_refuses_every_unverified_actor() {
    let server = NatsServer::start("").unwrap();
    let vault = connector(&server, "vault.example").await;
    vault.serve(VaultServer::new(VaultService)).await.unwrap();
    let caller = connector(&server, "caller.example").await;
    let client = VaultClient::new(&caller);

    assert_eq!(client.public().await.unwrap(), "hello");
    // A forged token whose unverified payload would satisfy the expression
    // ({"roles": ["admin"]}, unsigned) changes nothing.
    let forged = "eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJhZG1pbiJdfQ.";
    for actor in [None, Some(forged)] {
        let call = client.open();
        let result = match actor {
            Some(token) => context::with_actor(token, call).await,
            None => call.await,
        };
        match result {
            Err(Error::Remote {
                status, message, ..
            }) => {
                assert_eq!(status, 401, "{message}");
                if actor.is_none() {
                    assert!(message.contains("roles.admin"), "{message}");
                }
            }
            other => panic!("expected 401, got {other:?}"),
        }
    }
}

#[test]
fn the_spec_carries_the_compiled_check() {
    let check = buswarden::claims_check!("roles.admin || (level > 5 && !guest)");
    let claims: buswarden::claims::Claims =
        serde_json::from_str(r#"{"roles": ["admin"], "level": 1}"#).unwrap();
    assert!(check(&claims));
    let claims: buswarden::claims::Claims =
        serde_json::from_str(r#"{"level": 9, "guest": true}"#).unwrap();
    assert!(!check(&claims));
}
