//! Against a real nats-server 2.15.1 (testkit): `init` writes a config the
//! server accepts and the system user connects with; `revoke` and `push`
//! (through `rotate account-key --remove-old`) close a live connection.

use buswarden_creds::creds::format_user_config;
use buswarden_creds::jwt;
use buswarden_creds::{KeyKind, KeyPair, UserClaims};
use buswarden_testkit::NatsServer;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn busop(dir: &Path, args: &[&str]) -> busop::Outcome {
    let mut all = vec!["busop", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    busop::run(all)
}

fn init_and_start() -> (tempfile::TempDir, NatsServer) {
    let dir = tempfile::tempdir().unwrap();
    let out = busop(dir.path(), &["init", "--listen", "127.0.0.1:-1"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let conf = std::fs::read_to_string(dir.path().join("nats-server.conf")).unwrap();
    let server = NatsServer::start(&conf).expect("nats-server accepts the generated config");
    (dir, server)
}

/// A user of the application account signed by its signing key.
fn app_user(dir: &Path) -> (String, Vec<u8>) {
    let setup = busop::setup::Setup::open(dir).unwrap();
    let app = setup.account(None).unwrap();
    let sk = app
        .claims
        .nats
        .signing_keys
        .0
        .keys()
        .next()
        .unwrap()
        .clone();
    let signer = setup.key(&sk, "test").unwrap();
    let user = KeyPair::generate(KeyKind::User);
    let mut claims = UserClaims::new_user(user.public_key());
    claims.data.name = "calc.example".into();
    claims.data.exp = jwt::now() + 3600;
    claims.nats.issuer_account = app.claims.data.sub.clone();
    claims.nats.generic.tags = vec!["deploy:d1".into()];
    claims.nats.limits.publish.allow = vec!["microbus.safe.443.calc_example.>".into()];
    claims.nats.limits.subscribe.allow = vec!["microbus.safe.*.*.calc_example.>".into()];
    let token = jwt::encode(&mut claims, &signer, jwt::now() - 1).unwrap();
    (
        user.public_key().to_string(),
        format_user_config(&token, &user.seed()).to_vec(),
    )
}

struct Watched {
    client: async_nats::Client,
    events: Arc<Mutex<Vec<String>>>,
}

async fn connect(url: &str, creds: &[u8]) -> Watched {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let client = async_nats::ConnectOptions::with_credentials(std::str::from_utf8(creds).unwrap())
        .unwrap()
        .max_reconnects(Some(1))
        .event_callback(move |e| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(e.to_string());
            }
        })
        .connect(url)
        .await
        .expect("the user connects");
    client.flush().await.unwrap();
    Watched { client, events }
}

async fn wait_closed(w: &Watched) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let ev = w.events.lock().unwrap().clone();
        if ev.iter().any(|e| {
            e.to_lowercase().contains("disconnect") || e.to_lowercase().contains("revoked")
        }) {
            return ev;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "connection was not closed: events {:?}, state {:?}",
        w.events.lock().unwrap(),
        w.client.connection_state()
    );
}

#[test]
fn init_config_runs_and_the_system_user_connects() {
    let (dir, server) = init_and_start();
    let creds = std::fs::read(dir.path().join("creds/sys.creds")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let w = connect(server.url(), &creds).await;
        let reply = w
            .client
            .request("$SYS.REQ.SERVER.PING.STATSZ", "".into())
            .await
            .expect("the system user may ask $SYS");
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(body["server"]["ver"], "2.15.1");
    });
    // A user of the application account with no permissions of its own gets
    // the account's defaults: deny everything.
    let setup = busop::setup::Setup::open(dir.path()).unwrap();
    let app = setup.account(None).unwrap();
    assert_eq!(app.claims.nats.default_permissions.publish.deny, [">"]);
    let (op_token, op) = setup.operator().unwrap();
    assert!(op.nats.strict_signing_key_usage);
    assert!(!op_token.is_empty());
}

#[test]
fn revoke_closes_a_live_connection_and_push_confirms() {
    let (dir, server) = init_and_start();
    let (user, creds) = app_user(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(connect(server.url(), &creds));
    let out = busop(
        dir.path(),
        &[
            "--format",
            "json",
            "revoke",
            "--user",
            &user,
            "--server",
            server.url(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["change"]["push"]["confirmed"], true, "{}", out.stdout);
    let status = v["change"]["push"]["servers"][0]["status"]
        .as_str()
        .unwrap();
    assert!(status == "applied", "{status}");
    let events = rt.block_on(wait_closed(&w));
    assert!(
        events
            .iter()
            .any(|e| e.contains("Revoked") || e.contains("revoked") || e.contains("isconnect")),
        "{events:?}"
    );
    // The server's own record: INFO shows the revocation.
    let setup = busop::setup::Setup::open(dir.path()).unwrap();
    let app = setup.account(None).unwrap();
    assert!(app.claims.nats.revocations.contains_key(&user));

    // A second writer's revocation that only the live JWT holds survives the
    // next change (union), and the next iat is later than the live one.
    let other = KeyPair::generate(KeyKind::User);
    let live_iat = app.claims.data.iat;
    let mut claims = app.claims.clone();
    claims
        .nats
        .revocations
        .insert(other.public_key().to_string(), jwt::now());
    let signer = setup.operator_signer().unwrap();
    let token = jwt::encode(&mut claims, &signer, live_iat + 5).unwrap();
    let out = busop::run([
        "busop",
        "--dir",
        dir.path().to_str().unwrap(),
        "push",
        "--server",
        server.url(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Put the other writer's JWT live directly, behind busop's back.
    rt.block_on(async {
        let sys = std::fs::read(dir.path().join("creds/sys.creds")).unwrap();
        let s = connect(server.url(), &sys).await;
        let r = s
            .client
            .request(
                format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE", app.claims.data.sub),
                token.clone().into(),
            )
            .await
            .unwrap();
        assert!(
            String::from_utf8_lossy(&r.payload).contains("jwt updated"),
            "{:?}",
            r.payload
        );
    });
    let third = KeyPair::generate(KeyKind::User);
    let out = busop(
        dir.path(),
        &[
            "--format",
            "json",
            "revoke",
            "--user",
            third.public_key(),
            "--server",
            server.url(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["change"]["merged_revocations"][0], other.public_key());
    assert!(v["change"]["iat"].as_i64().unwrap() > live_iat + 5);
    let app = busop::setup::Setup::open(dir.path())
        .unwrap()
        .account(None)
        .unwrap();
    for k in [user.as_str(), other.public_key(), third.public_key()] {
        assert!(app.claims.nats.revocations.contains_key(k), "{k} lost");
    }
}

#[test]
fn push_of_a_removed_signing_key_closes_its_users() {
    let (dir, server) = init_and_start();
    let (_user, creds) = app_user(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(connect(server.url(), &creds));
    let out = busop(
        dir.path(),
        &[
            "--format",
            "json",
            "rotate",
            "account-key",
            "--remove-old",
            "--server",
            server.url(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["change"]["push"]["confirmed"], true);
    assert_eq!(v["removed"].as_array().unwrap().len(), 1);
    rt.block_on(wait_closed(&w));
}
