//! Against a real nats-server 2.15.1 (testkit): `init` writes a config the
//! server accepts and the system user connects with; `revoke` and `push`
//! (through `rotate account-key --remove-old`) close a live connection.

mod common;

use buswarden_creds::creds::format_user_config;
use buswarden_creds::jwt;
use buswarden_creds::{KeyKind, KeyPair, UserClaims};
use buswarden_testkit::NatsServer;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::busop;

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
    let (app, signer) = common::app_signer(dir);
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
    let rt = common::rt();
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
    let rt = common::rt();
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
    let rt = common::rt();
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

#[test]
fn revoking_a_signing_key_cuts_off_every_user_it_signed() {
    let (dir, server) = init_and_start();
    let (_user, creds) = app_user(dir.path());
    let setup = busop::setup::Setup::open(dir.path()).unwrap();
    let sk = setup
        .account(None)
        .unwrap()
        .claims
        .nats
        .signing_keys
        .0
        .keys()
        .next()
        .unwrap()
        .clone();
    let rt = common::rt();
    let w = rt.block_on(connect(server.url(), &creds));
    let out = busop(
        dir.path(),
        &[
            "--format",
            "json",
            "revoke",
            "--signing-key",
            &sk,
            "--server",
            server.url(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["removed_signing_keys"][0], sk.as_str());
    assert_eq!(v["change"]["push"]["confirmed"], true);
    rt.block_on(wait_closed(&w));
    let out = busop(dir.path(), &["revoke", "--signing-key", &sk, "--no-push"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("is not a signing key of account APP"),
        "{}",
        out.stderr
    );
}

/// A reload does not apply a new operator JWT: the server refuses it.
fn reload_is_refused(dir: &Path, server: &NatsServer) {
    let conf = std::fs::read_to_string(dir.join("nats-server.conf"))
        .unwrap()
        .replace(
            "listen: 127.0.0.1:-1",
            &format!("listen: 127.0.0.1:{}", server.port()),
        );
    server.rewrite_config(&conf).unwrap();
    server.reload().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server
        .log()
        .contains("config reload not supported for TrustedOperators")
    {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn operator_key_rotation_steps_are_printed_checked_and_enforced_in_order() {
    let (dir, server) = init_and_start();
    let d = dir.path();
    let url = server.url().to_string();
    let (_user, creds) = app_user(d);
    // Another writer revoked a user; only the live JWT knows.
    let other = KeyPair::generate(KeyKind::User);
    let setup = busop::setup::Setup::open(d).unwrap();
    let app = setup.account(None).unwrap();
    let mut claims = app.claims.clone();
    claims
        .nats
        .revocations
        .insert(other.public_key().to_string(), jwt::now());
    let token = jwt::encode(
        &mut claims,
        &setup.operator_signer().unwrap(),
        app.claims.data.iat + 1,
    )
    .unwrap();
    let sys = std::fs::read(d.join("creds/sys.creds")).unwrap();
    common::rt().block_on(async {
        let s = connect(&url, &sys).await;
        s.client
            .request(
                format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE", app.claims.data.sub),
                token.into(),
            )
            .await
            .unwrap();
    });
    let out = busop(
        d,
        &[
            "--format",
            "json",
            "rotate",
            "operator-key",
            "--server",
            &url,
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["live_read"], true);
    let app_resigned = v["resigned"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account"] == "APP")
        .unwrap();
    assert_eq!(
        app_resigned["merged_revocations"][0],
        other.public_key(),
        "{}",
        out.stdout
    );
    let new_key = v["new_signing_key"].as_str().unwrap().to_string();
    assert_eq!(v["steps"].as_array().unwrap().len(), 4);
    assert_eq!(
        v["signing_keys"].as_array().unwrap().len(),
        2,
        "old key kept until the rotation is done"
    );
    let human = busop(d, &["rotate", "check", "--server", &url]);
    assert_eq!(human.code, 1, "{}{}", human.stdout, human.stderr);
    assert!(
        human.stdout.contains("does NOT trust the new key yet"),
        "{}",
        human.stdout
    );

    // Step 3 before steps 1-2: push is held back, nothing reaches the server.
    let out = busop(d, &["--format", "json", "push", "--server", &url]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["accounts"][0]["push"]["servers"][0]["status"], "untrusted-signer",
        "{}",
        out.stdout
    );

    // Steps 1-2: the new operator JWT reaches the server's config; a reload
    // is refused, a restart (same resolver store) applies it.
    reload_is_refused(d, &server);
    server.stop();
    let conf = std::fs::read_to_string(d.join("nats-server.conf")).unwrap();
    let server = NatsServer::start(&conf).expect("restart with the new operator JWT");
    let url = server.url().to_string();
    let out = busop(
        d,
        &["--format", "json", "rotate", "check", "--server", &url],
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["servers"][0]["trusts_new_key"],
        true,
        "{}\n{}",
        out.stdout,
        server.log()
    );
    // The restarted server preloads the re-signed accounts from the rewritten
    // config (the full resolver keeps the newer iat), so step 3 shows done;
    // servers of a cluster that start from their own store still need the push.
    assert_eq!(
        v["servers"][0]["accounts_behind"].as_array().unwrap().len(),
        0,
        "{}",
        out.stdout
    );
    assert_eq!(v["steps"][2]["done"], true);
    // Step 3.
    let out = busop(d, &["--format", "json", "push", "--server", &url]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["confirmed"], true);
    let out = busop(
        d,
        &["--format", "json", "rotate", "check", "--server", &url],
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    let setup = busop::setup::Setup::open(d).unwrap();
    for a in setup.accounts().unwrap() {
        assert_eq!(a.claims.data.iss, new_key);
    }
    // Users keep working across the rotation: the account's own keys did not change.
    let rt = common::rt();
    rt.block_on(async {
        let w = connect(&url, &creds).await;
        w.client.flush().await.unwrap();
    });
}

#[test]
fn revoke_by_deploy_and_prune() {
    let (dir, server) = init_and_start();
    let d = dir.path();
    let url = server.url().to_string();
    let out_dir = d.join("deploy-d1");
    let (_, user_a) = common::mint_creds(d, common::CALC_ACL, &out_dir, Some(600), jwt::now());
    let (_, user_b) =
        common::mint_creds(d, common::DANGER_ZONE_ACL, &out_dir, Some(600), jwt::now());
    let out = busop(
        d,
        &[
            "--format",
            "json",
            "revoke",
            "--deploy",
            "d1",
            "--creds",
            out_dir.to_str().unwrap(),
            "--server",
            &url,
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut revoked: Vec<&str> = v["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    revoked.sort();
    let mut want = vec![user_a.as_str(), user_b.as_str()];
    want.sort();
    assert_eq!(revoked, want);
    let out = busop(
        d,
        &[
            "revoke",
            "--deploy",
            "nope",
            "--creds",
            out_dir.to_str().unwrap(),
            "--no-push",
        ],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no user of deploy nope"),
        "{}",
        out.stderr
    );
    // An entry busop has no expiry record of (a revocation from elsewhere).
    let stranger = KeyPair::generate(KeyKind::User);
    let out = busop(
        d,
        &["revoke", "--user", stranger.public_key(), "--server", &url],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut ledger = busop::revoke::read_ledger(&busop::setup::Setup::open(d).unwrap()).unwrap();
    for book in ledger.values_mut() {
        book.remove(stranger.public_key());
    }
    busop::revoke::write_ledger(&busop::setup::Setup::open(d).unwrap(), &ledger).unwrap();

    // Before the revoked JWTs expire nothing goes; after, only what busop knows expired.
    let out = busop(d, &["--format", "json", "prune", "--server", &url]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["pruned"].as_array().unwrap().len(), 0, "{}", out.stdout);
    // Ten minutes later, as far as the ledger is concerned: the revoked JWTs expired.
    let setup = busop::setup::Setup::open(d).unwrap();
    let mut ledger = busop::revoke::read_ledger(&setup).unwrap();
    for book in ledger.values_mut() {
        for e in book.values_mut() {
            assert!(
                e.expires > jwt::now() + 500,
                "the ledger holds the JWTs' exp"
            );
            e.expires = jwt::now() - 1;
        }
    }
    busop::revoke::write_ledger(&setup, &ledger).unwrap();
    let out = busop(d, &["--format", "json", "prune", "--server", &url]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut pruned: Vec<&str> = v["pruned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    pruned.sort();
    assert_eq!(pruned, want);
    assert_eq!(v["change"]["push"]["confirmed"], true);
    let app = busop::setup::Setup::open(d).unwrap().account(None).unwrap();
    assert_eq!(
        app.claims.nats.revocations.keys().collect::<Vec<_>>(),
        [stranger.public_key()]
    );
    std::thread::sleep(Duration::from_millis(1100));
    let out = busop(
        d,
        &[
            "--format",
            "json",
            "prune",
            "--max-lifetime",
            "1s",
            "--server",
            &url,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["pruned"][0], stranger.public_key(), "{}", out.stdout);
}

#[test]
fn no_command_ever_prints_a_seed() {
    let (dir, server) = init_and_start();
    let d = dir.path();
    let ds = d.to_str().unwrap();
    let url = server.url().to_string();
    let deploy = d.join("deploy");
    let (creds, user) = common::mint_creds(d, common::CALC_ACL, &deploy, Some(3600), jwt::now());
    let cs = creds.to_str().unwrap();
    let seed_file = walk_files(&d.join("keys"))[0].clone();
    let sf = seed_file.to_str().unwrap();
    let acl_dir = d.join("src");
    std::fs::create_dir_all(&acl_dir).unwrap();
    std::fs::write(acl_dir.join("nats.acl"), common::CALC_ACL).unwrap();
    let acl = acl_dir.to_str().unwrap();
    let other = tempfile::tempdir().unwrap();
    let os = other.path().to_str().unwrap();
    let sys_creds_path = format!("{ds}/creds/sys.creds");
    let creds_folder = format!("{ds}/creds");
    let runs: Vec<Vec<&str>> = vec![
        vec!["init", os],
        vec![
            "inspect",
            cs,
            "accounts/APP.jwt",
            "operator.jwt",
            "creds/sys.creds",
            sf,
        ],
        vec!["inspect", &sys_creds_path],
        vec!["audit", ds],
        vec!["audit", &creds_folder],
        vec!["diff", cs, acl],
        vec!["revoke", "--user", &user, "--server", &url],
        vec![
            "revoke",
            "--deploy",
            "d1",
            "--creds",
            deploy.to_str().unwrap(),
            "--no-push",
        ],
        vec!["push", "--server", &url],
        vec!["rotate", "account-key", "--server", &url],
        vec!["rotate", "operator-key"],
        vec!["rotate", "check", "--server", &url],
        vec!["prune", "--max-lifetime", "1s", "--no-push"],
        vec!["import-nsc", ds],
        vec!["account-server", "http://127.0.0.1:1"],
        vec!["revoke", "--user", &user],
        vec!["push", "--server", &url],
        vec!["account-server", "none"],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["--help"],
        vec!["revoke", "--help"],
        vec!["inspect"],
        vec!["bogus"],
    ];
    // Word boundaries: a public key (O…, A…, U…, 56 characters) may contain
    // `S[OAUNC]` followed by 50 base32 characters, but never starts with S.
    let seed_re = regex::Regex::new(r"\bS[OAUNC][A-Z2-7]{50,}\b").unwrap();
    let mut seeds: Vec<String> = walk_files(&d.join("keys"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().trim().to_string())
        .collect();
    let sys_creds = std::fs::read_to_string(d.join("creds/sys.creds")).unwrap();
    seeds.push(
        sys_creds
            .lines()
            .find(|l| l.starts_with("SU"))
            .unwrap()
            .to_string(),
    );
    let cwd_runs = std::env::current_dir().unwrap();
    std::env::set_current_dir(d).unwrap();
    let mut ran = 0;
    for args in &runs {
        for format in ["human", "json"] {
            let mut all = vec!["busop", "--dir", ds, "--format", format];
            all.extend_from_slice(args);
            let out = busop::run(all);
            let text = format!("{}{}", out.stdout, out.stderr);
            assert!(!text.is_empty(), "{args:?} printed nothing");
            assert!(!seed_re.is_match(&text), "{args:?} printed a seed:\n{text}");
            for s in &seeds {
                assert!(!text.contains(s.as_str()), "{args:?} printed a seed");
            }
            ran += 1;
        }
    }
    std::env::set_current_dir(cwd_runs).unwrap();
    assert_eq!(ran, runs.len() * 2);
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The cluster port a testkit server reports in its ports file.
fn cluster_url(server: &NatsServer) -> String {
    let ports = std::fs::read_dir(server.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "ports"))
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ports).unwrap()).unwrap();
    v["cluster"][0]
        .as_str()
        .expect("cluster port in the ports file")
        .to_string()
}

#[test]
fn push_collects_every_server_of_a_cluster_through_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::init(d);
    let conf = std::fs::read_to_string(d.join("nats-server.conf")).unwrap();
    let a = NatsServer::start(&format!(
        "{conf}\nserver_name: a\ncluster {{ name: c, listen: 127.0.0.1:-1 }}\n"
    ))
    .unwrap();
    let b_store = tempfile::tempdir().unwrap();
    let conf_b = conf.replace(
        &format!("{:?}", d.join("jwt").display().to_string()),
        &format!("{:?}", b_store.path().display().to_string()),
    );
    assert_ne!(conf_b, conf, "server b has its own resolver store");
    let b = NatsServer::start(&format!(
        "{conf_b}\nserver_name: b\ncluster {{ name: c, listen: 127.0.0.1:-1, routes: [{:?}] }}\n",
        cluster_url(&a).replace("nats://", "nats-route://")
    ))
    .unwrap();
    // Wait for the route.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.log().contains("Route connection created") {
        assert!(Instant::now() < deadline, "{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // A user connected to b; busop talks to a only.
    let (user, creds) = app_user(d);
    let rt = common::rt();
    let w = rt.block_on(connect(b.url(), &creds));
    let out = busop(
        d,
        &[
            "--format",
            "json",
            "revoke",
            "--user",
            &user,
            "--server",
            a.url(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let servers = v["change"]["push"]["servers"].as_array().unwrap();
    let mut names: Vec<&str> = servers
        .iter()
        .map(|s| s["server"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"], "{}", out.stdout);
    assert_eq!(v["change"]["push"]["confirmed"], true, "{}", out.stdout);
    for s in servers {
        assert_eq!(s["code"], 200, "{s}");
    }
    rt.block_on(wait_closed(&w));
}

/// A static HTTP server (python's http.server) serving `root`; killed on drop.
struct StaticHttp {
    child: std::process::Child,
    port: u16,
}

impl StaticHttp {
    fn start(root: &Path) -> StaticHttp {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(root)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 45678 (http://127.0.0.1:45678/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        StaticHttp { child, port }
    }
}

impl Drop for StaticHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn init_with_a_url_resolver_runs_against_a_server_that_serves_the_accounts() {
    // Any HTTP server that serves <base><account-pub> works as a URL
    // resolver; the account server is one. Here: static files.
    let web = tempfile::tempdir().unwrap();
    let accounts = web.path().join("jwt/v1/accounts");
    std::fs::create_dir_all(&accounts).unwrap();
    let http = StaticHttp::start(web.path());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = format!("http://127.0.0.1:{}/jwt/v1/accounts/", http.port);
    let out = busop(
        d,
        &["init", "--listen", "127.0.0.1:-1", "--url-resolver", &base],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for a in busop::setup::Setup::open(d).unwrap().accounts().unwrap() {
        std::fs::write(accounts.join(&a.claims.data.sub), &a.token).unwrap();
    }
    let conf = std::fs::read_to_string(d.join("nats-server.conf")).unwrap();
    let server = NatsServer::start(&conf).expect("the URL-resolver config runs");
    let creds = std::fs::read(d.join("creds/sys.creds")).unwrap();
    let (_user, app_creds) = app_user(d);
    common::rt().block_on(async {
        let sys = connect(server.url(), &creds).await;
        sys.client
            .request("$SYS.REQ.SERVER.PING.STATSZ", "".into())
            .await
            .expect("the system user may ask $SYS");
        let app = connect(server.url(), &app_creds).await;
        app.client.flush().await.unwrap();
    });
}
