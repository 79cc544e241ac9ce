//! The per-caller rate limit on the bus, on nats-server 2.15.1 in operator
//! mode (every service a user signed from its allow-list): service A over
//! its limit at B is answered 429 by B, while C, calling the same endpoint
//! at the same time, is served. The key is the subject's source segment,
//! which the broker pins to the publisher's own hostname, so A forging
//! `Microbus-From-Host: c.example` changes nothing.

use buswarden::{Connector, Error, Request, Response};
use buswarden_creds::claims::{AccountClaims, OperatorClaims};
use buswarden_creds::jwt;
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::sign::{self, AccountRef, AccountSigner, DeployId, ServiceAcl, SignOptions};
use buswarden_testkit::NatsServer;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[buswarden::api(host = "b.example")]
pub trait B {
    #[web(ANY, "/work")]
    async fn work(&self, req: Request) -> Result<Response, Error>;
}

struct Bsvc;

impl B for Bsvc {
    async fn work(&self, _req: Request) -> Result<Response, Error> {
        Ok(Response::ok(
            buswarden::context::caller().unwrap_or_default(),
        ))
    }
}

fn acl(host: &str, calls_b: bool) -> ServiceAcl {
    let me = host.replace('.', "_");
    let mut text = format!("# nats.acl for {host}\n");
    if calls_b {
        text += &format!("PUB {{{{plane}}}}.safe.443.{me}.b_example.*.*.work\n");
    }
    text += &format!(
        "PUB {{{{plane}}}}.reply._.{me}.>\n\nSUB {{{{plane}}}}.reply._.*.{me}.*\nSUB {{{{plane}}}}.safe.*.*.{me}.>\nSUB {{{{plane}}}}.safe.888.*.all.>\n"
    );
    let parsed = buswarden_rules::acl::parse(&text).unwrap();
    ServiceAcl {
        path: PathBuf::from(format!("{host}.acl")),
        hostname: parsed.hostname,
        rules: parsed.rules,
    }
}

/// An operator-mode server and the signed creds of a, b and c.
fn operator_server(out: &Path) -> NatsServer {
    let now = jwt::now();
    let operator = KeyPair::generate(KeyKind::Operator);
    let system = KeyPair::generate(KeyKind::Account);
    let account = KeyPair::generate(KeyKind::Account);
    let signing = KeyPair::generate(KeyKind::Account);
    let mut op = OperatorClaims::new_operator(operator.public_key());
    op.nats.system_account = system.public_key().into();
    let op_jwt = jwt::encode(&mut op, &operator, now).unwrap();
    let mut sys = AccountClaims::new_account(system.public_key());
    let sys_jwt = jwt::encode(&mut sys, &operator, now).unwrap();
    let mut acc = AccountClaims::new_account(account.public_key());
    acc.nats.signing_keys.add_plain(signing.public_key());
    acc.nats.default_permissions.publish.deny = vec![">".into()];
    acc.nats.default_permissions.subscribe.deny = vec![">".into()];
    let acc_jwt = jwt::encode(&mut acc, &operator, now).unwrap();
    let signer = AccountSigner::new(signing, Some(AccountRef::Jwt(Box::new(acc)))).unwrap();
    let mut opts = SignOptions::new();
    opts.deploy = DeployId::parse("limits-1").unwrap();
    opts.sync = false;
    let services = [
        acl("a.example", true),
        acl("b.example", false),
        acl("c.example", true),
    ];
    sign::sign_services(&services, out, &signer, &opts).unwrap();
    NatsServer::start(&format!(
        "operator: {op_jwt}\nsystem_account: {sys}\nresolver: MEMORY\nresolver_preload: {{\n  {sys}: {sys_jwt}\n  {acc}: {acc_jwt}\n}}\n",
        sys = system.public_key(),
        acc = account.public_key(),
    ))
    .unwrap()
}

async fn connect(svc: Connector, server: &NatsServer, creds: &Path) -> Connector {
    let svc = svc
        .with_url(server.url())
        .with_creds_dir(creds)
        .with_timeout(Duration::from_secs(5));
    svc.connect().await.unwrap();
    svc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_its_limit_gets_429_while_others_are_served() {
    let creds = tempfile::tempdir().unwrap();
    let server = operator_server(creds.path());
    let b = connect(
        Connector::new("b.example").with_caller_rate_limit(10.0, 5),
        &server,
        creds.path(),
    )
    .await;
    b.serve(BServer::new(Bsvc)).await.unwrap();
    let a = connect(Connector::new("a.example"), &server, creds.path()).await;
    let c = connect(Connector::new("c.example"), &server, creds.path()).await;

    // A at full speed (and forging its caller header), C at 5/s.
    let c_calls = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut out = vec![];
            for _ in 0..5 {
                out.push(c.get("https://b.example/work").send().await.map(|r| r.body));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            out
        })
    };
    let (mut served, mut limited) = (0, 0);
    let start = std::time::Instant::now();
    for _ in 0..60 {
        match a
            .get("https://b.example/work")
            .header("Microbus-From-Host", "c.example")
            .send()
            .await
        {
            Ok(r) => {
                assert_eq!(r.body, b"a.example");
                served += 1;
            }
            Err(Error::Remote {
                status: 429,
                host,
                message,
            }) => {
                assert_eq!(host, "b.example");
                assert!(
                    message.contains("a.example is over its rate limit"),
                    "{message}"
                );
                limited += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // At most the burst plus what the rate refills meanwhile.
    assert!(
        f64::from(served) <= 5.0 + 10.0 * elapsed + 1.0,
        "{served} served in {elapsed:.2}s"
    );
    assert!(limited >= 20, "{limited} of 60 limited in {elapsed:.2}s");
    for r in c_calls.await.unwrap() {
        assert_eq!(r.unwrap(), b"c.example", "C is unaffected");
    }
    assert_eq!(b.stats().rate_limited, limited);
    for s in [a, b, c] {
        s.close().await;
    }
}
