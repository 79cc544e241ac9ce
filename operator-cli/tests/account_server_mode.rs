//! `busop revoke` with an account server configured makes its change through
//! the account server's API (one writer): against the workspace's real
//! `account-server` binary (run from the target folder, not linked: busop
//! does not depend on it) and a real nats-server 2.15.1 whose URL resolver
//! is that account server, all on loopback.

use busop::account_server::call;
use busop::setup::AccountServerConfig;
use buswarden_creds::keys::{KeyKind, KeyPair};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

/// The folder holding the workspace's binaries (`target/debug`).
fn bin_dir() -> PathBuf {
    let own = PathBuf::from(env!("CARGO_BIN_EXE_busop"));
    let dir = own.parent().expect("a binary has a folder").to_path_buf();
    assert!(
        dir.join("account-server").is_file(),
        "{} missing: run `cargo build --workspace --bins` first (ci/test does)",
        dir.join("account-server").display()
    );
    dir
}

fn nats_server() -> PathBuf {
    PathBuf::from(std::env::var("BUSWARDEN_NATS_SERVER").expect(
        "BUSWARDEN_NATS_SERVER unset: run `source ci/deps.sh` first (installs nats-server 2.15.1)",
    ))
}

use buswarden_testkit::free_port;

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(what: &str, port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the busop binary (off the async runtime: it runs its own).
async fn busop(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_busop"));
    cmd.arg("--dir").arg(dir).args(args).stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// A request signed with `key` (a ci key: it may read the account and audit log).
async fn api(url: &str, key: &KeyPair, method: &str, path: &str, body: Option<Value>) -> Value {
    let cfg = AccountServerConfig {
        url: url.to_string(),
        key: key.public_key().to_string(),
        ca_file: None,
    };
    call(&cfg, key, method, path, body.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_goes_through_the_account_server_and_closes_the_connection() {
    let bin = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let setup = tmp.path().join("setup");
    let nats_port = free_port();
    let as_port = free_port();
    let server = format!("http://127.0.0.1:{as_port}");

    // Bootstrap with the account server as URL resolver, then point busop at it.
    let init = busop(
        &setup,
        &[
            "init",
            "--listen",
            &format!("127.0.0.1:{nats_port}"),
            "--url-resolver",
            &format!("{server}/jwt/v1/accounts/"),
            "--server",
            &format!("nats://127.0.0.1:{nats_port}"),
            "--format",
            "json",
        ],
    )
    .await;
    assert!(init.status.success(), "{}", show(&init));
    let init: Value = serde_json::from_slice(&init.stdout).unwrap();
    let op_key = init["operator_signing_key"].as_str().unwrap();
    let app = init["account_key"].as_str().unwrap().to_string();
    let op_seed = setup.join(format!("keys/O/{}/{op_key}.nk", &op_key[1..3]));
    assert!(op_seed.is_file(), "{}", op_seed.display());
    let configured = busop(&setup, &["account-server", &server, "--format", "json"]).await;
    assert!(configured.status.success(), "{}", show(&configured));
    let configured: Value = serde_json::from_slice(&configured.stdout).unwrap();
    let busop_key = configured["key"].as_str().unwrap().to_string();

    // The account server lists busop's key as an operator.
    let state = tmp.path().join("account-server");
    std::fs::create_dir_all(&state).unwrap();
    let ci = KeyPair::generate(KeyKind::User);
    let kek = Command::new(bin.join("account-server"))
        .arg("gen-kek")
        .arg(state.join("kek"))
        .output()
        .unwrap();
    assert!(kek.status.success(), "{}", show(&kek));
    let config = format!(
        r#"listen = "127.0.0.1:{as_port}"
store = "account-server.redb"
kek_file = "kek"
plane = "microbus"
[operator]
signing_key_file = "{op_seed}"
[account]
jwt_file = "{setup}/accounts/APP.jwt"
[system_account]
jwt_file = "{setup}/accounts/SYS.jwt"
creds_file = "{setup}/creds/sys.creds"
[nats]
servers = ["nats://127.0.0.1:{nats_port}"]
push_wait = "2s"
[deploys]
grace = "0s"
default_user_expiry = "1h"
max_user_expiry = "1d"
[[keys]]
key = "{ci}"
role = "ci"
hostnames = ["*"]
[[keys]]
key = "{busop_key}"
role = "operator"
"#,
        op_seed = op_seed.display(),
        setup = setup.display(),
        ci = ci.public_key(),
    );
    std::fs::write(state.join("account-server.toml"), config).unwrap();
    let _account_server = Running(
        Command::new(bin.join("account-server"))
            .args(["serve", "--config"])
            .arg(state.join("account-server.toml"))
            .arg("--init")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state.join("log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_port("the account server", as_port);
    let _nats = Running(
        Command::new(nats_server())
            .arg("-c")
            .arg(setup.join("nats-server.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port("nats-server", nats_port);

    // One user, signed through the API in an activated deploy.
    let host = "calc.example";
    let rules: Vec<String> = buswarden_rules::derive(&buswarden_rules::ServiceModel::new(
        buswarden_rules::Hostname::parse(host).unwrap(),
    ))
    .iter()
    .map(|r| r.to_string())
    .collect();
    let user = KeyPair::generate(KeyKind::User);
    api(
        &server,
        &ci,
        "POST",
        "/v1/deploys",
        Some(json!({ "deploy": "d1" })),
    )
    .await;
    let signed = api(
        &server,
        &ci,
        "POST",
        "/v1/deploys/d1/users",
        Some(json!({ "users": [{ "hostname": host, "user_key": user.public_key(), "rules": rules }] })),
    )
    .await;
    let jwt = signed["users"][0]["jwt"].as_str().unwrap().to_string();
    api(&server, &ci, "POST", "/v1/deploys/d1/activate", None).await;

    let creds =
        String::from_utf8(buswarden_creds::creds::format_user_config(&jwt, &user.seed()).to_vec())
            .unwrap();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_credentials(&creds)
        .unwrap()
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        })
        .max_reconnects(Some(1))
        .connect(format!("nats://127.0.0.1:{nats_port}"))
        .await
        .expect("the signed user connects");
    client.flush().await.unwrap();

    // busop why asks the account server who a user key is: its audit log
    // names the hostname, the deploy and the rules it signed.
    let why = |subject: &'static str| {
        let setup = setup.clone();
        let user = user.public_key().to_string();
        async move {
            let out = busop(
                &setup,
                &[
                    "why",
                    "--subject",
                    subject,
                    "--user",
                    &user,
                    "--account-server",
                    "--format",
                    "json",
                ],
            )
            .await;
            assert!(out.status.success(), "{}", show(&out));
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        }
    };
    let v = why("microbus.safe.443.calc_example.store_example.0.GET.items").await;
    assert_eq!(v["service"], host, "{v}");
    assert_eq!(v["deploy"], "d1", "{v}");
    assert_eq!(v["creds"], format!("account server {server}"), "{v}");
    assert_eq!(v["covered_by"], Value::Null, "{v}");
    assert_eq!(
        v["nearest"]["rule"], "microbus.reply._.calc_example.>",
        "{v}"
    );
    let v = why("microbus.reply._.calc_example.x").await;
    assert_eq!(v["covered_by"], "microbus.reply._.calc_example.>", "{v}");

    // busop revokes: through the API, exit 0, the server confirmed the push.
    let revoked = busop(
        &setup,
        &["revoke", "--user", user.public_key(), "--format", "json"],
    )
    .await;
    assert_eq!(revoked.status.code(), Some(0), "{}", show(&revoked));
    let report: Value = serde_json::from_slice(&revoked.stdout).unwrap();
    assert_eq!(report["account_server"], server.as_str(), "{report}");
    assert_eq!(report["confirmed"], true, "{report}");
    assert_eq!(
        report["answers"][0]["user_key"],
        user.public_key(),
        "{report}"
    );

    // The broker closes the live connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let closed = loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(async_nats::Event::Disconnected)) => break true,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break false,
        }
    };
    assert!(closed, "the revoked user's connection stays open");

    // The audit log records the revocation by busop's key.
    let audit = api(&server, &ci, "GET", "/v1/audit", None).await;
    let entries = audit["entries"].as_array().unwrap();
    let by_busop: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "revoke-user")
        .collect();
    assert_eq!(by_busop.len(), 1, "{audit}");
    assert_eq!(by_busop[0]["caller"], busop_key.as_str(), "{audit}");
    assert!(
        by_busop[0].to_string().contains(user.public_key()),
        "{audit}"
    );

    // The account JWT the account server serves (the resolver's) revokes the user.
    let jwt_text = api(
        &server,
        &ci,
        "GET",
        &format!("/jwt/v1/accounts/{app}"),
        None,
    )
    .await;
    let served = buswarden_creds::jwt::decode_account(jwt_text.as_str().unwrap()).unwrap();
    assert_eq!(served.data.sub, app);
    assert!(
        served.nats.revocations.contains_key(user.public_key()),
        "{served:?}"
    );

    // busop's own files did not change: the account server is the one writer.
    let ledger = setup.join(busop::revoke::LEDGER_FILE);
    assert!(!ledger.exists(), "busop wrote {}", ledger.display());

    // push refuses: with an account server, busop does not write account JWTs.
    let push = busop(&setup, &["push"]).await;
    assert_eq!(push.status.code(), Some(2), "{}", show(&push));
    assert!(
        String::from_utf8_lossy(&push.stderr).contains("account server"),
        "{}",
        show(&push)
    );
}
