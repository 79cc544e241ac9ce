//! A test bed shared by the integration tests and the benchmarks: a fresh
//! operator, system account and application account (keys generated at test
//! time), the account server's config and secret files in a private temp
//! folder, a real nats-server 2.15.1 in operator mode whose URL resolver
//! points at the account server, a signed-request HTTP client, and NATS
//! clients for users signed through the API.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use account_server::config::Config;
use account_server::seal::Kek;
use buswarden_creds::claims::{AccountClaims, OperatorClaims, UserClaims};
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::request_auth;
use buswarden_creds::{creds, jwt, keyfile};
use buswarden_testkit::NatsServer;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Whether a first start on the embedded store of the config at `path`
/// needs `--init` (its store file does not exist yet).
pub fn needs_init(path: &Path) -> bool {
    let c = Config::load(path).unwrap();
    c.kv.is_none() && !c.store.exists()
}

/// `account-server serve --config <path>`, with `--init` when its embedded
/// store does not exist yet.
pub fn serve_command(path: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_account-server"));
    cmd.args(["serve", "--config"]).arg(path);
    if needs_init(path) {
        cmd.arg("--init");
    }
    cmd
}

/// A free loopback port a config can name ahead of time (see the testkit).
#[allow(unused_imports)] // not every test binary names a port ahead of time
pub use buswarden_testkit::free_port;

/// Keys and files of one test deployment.
pub struct Bed {
    pub dir: tempfile::TempDir,
    pub operator: KeyPair,
    pub operator_jwt: String,
    pub sys: KeyPair,
    pub app: KeyPair,
    pub ci: KeyPair,
    /// A ci key limited to `calc.example` alone.
    pub ci_calc: KeyPair,
    pub op: KeyPair,
    pub reader: KeyPair,
    pub http_port: u16,
    pub nats_port: u16,
    /// Ports of further nats-servers the account server pushes to.
    pub more_nats_ports: Vec<u16>,
    pub config_path: PathBuf,
    pub sys_creds: PathBuf,
}

/// Extra config lines, e.g. `grace`.
pub struct Options {
    pub grace: &'static str,
    pub policy: Option<&'static str>,
    pub with_nats: bool,
    pub max_body: usize,
    /// nats-servers besides the first.
    pub more_nats: usize,
    /// `[auth] audience` (the server's names), instead of the default.
    pub audience: Option<&'static str>,
    /// `[deploys] max_open` (high by default: most tests open many).
    pub max_open: usize,
    /// `[deploys] open_ttl`.
    pub open_ttl: &'static str,
    /// An `[http]` table (its lines), e.g. short connection timeouts.
    pub http: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            grace: "10m",
            policy: None,
            with_nats: true,
            max_body: 65536,
            more_nats: 0,
            audience: None,
            max_open: 10_000,
            open_ttl: "1d",
            http: None,
        }
    }
}

impl Bed {
    pub fn new(opts: Options) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let d = dir.path();
        let operator = KeyPair::generate(KeyKind::Operator);
        let op_signing = KeyPair::generate(KeyKind::Operator);
        let sys = KeyPair::generate(KeyKind::Account);
        let app = KeyPair::generate(KeyKind::Account);

        let mut oc = OperatorClaims::new_operator(operator.public_key());
        oc.data.name = "test-operator".into();
        oc.nats.signing_keys = vec![op_signing.public_key().to_string()];
        oc.nats.system_account = sys.public_key().to_string();
        let operator_jwt = jwt::encode(&mut oc, &operator, jwt::now()).unwrap();

        let mut sc = AccountClaims::new_account(sys.public_key());
        sc.data.name = "SYS".into();
        let sys_jwt = jwt::encode(&mut sc, &op_signing, jwt::now()).unwrap();
        let mut ac = AccountClaims::new_account(app.public_key());
        ac.data.name = "APP".into();
        // Users without permissions must get nothing.
        ac.nats.default_permissions.publish.deny = vec![">".into()];
        ac.nats.default_permissions.subscribe.deny = vec![">".into()];
        let app_jwt = jwt::encode(&mut ac, &op_signing, jwt::now() - 10).unwrap();

        let sys_user = KeyPair::generate(KeyKind::User);
        let mut uc = UserClaims::new_user(sys_user.public_key());
        uc.data.name = "sys-pusher".into();
        let sys_user_jwt = jwt::encode(&mut uc, &sys, jwt::now()).unwrap();
        let sys_creds = d.join("keys/sys.creds");
        keyfile::create_private_dir(&d.join("keys")).unwrap();
        keyfile::write_private_file(
            &sys_creds,
            &creds::format_user_config(&sys_user_jwt, &sys_user.seed()),
            true,
        )
        .unwrap();
        keyfile::write_key_file(&op_signing, &d.join("keys/operator-signing.nk")).unwrap();
        std::fs::create_dir_all(d.join("jwt")).unwrap();
        std::fs::write(d.join("jwt/app.jwt"), &app_jwt).unwrap();
        std::fs::write(d.join("jwt/sys.jwt"), &sys_jwt).unwrap();
        Kek::generate_file(&d.join("keys/kek")).unwrap();
        if let Some(policy) = opts.policy {
            std::fs::write(d.join("buswarden.toml"), policy).unwrap();
        }

        let ci = KeyPair::generate(KeyKind::User);
        let ci_calc = KeyPair::generate(KeyKind::User);
        let op = KeyPair::generate(KeyKind::User);
        let reader = KeyPair::generate(KeyKind::User);
        let http_port = free_port();
        let nats_port = free_port();
        let more_nats_ports: Vec<u16> = (0..opts.more_nats).map(|_| free_port()).collect();
        let servers = if opts.with_nats {
            let urls: Vec<String> = std::iter::once(nats_port)
                .chain(more_nats_ports.iter().copied())
                .map(|p| format!("\"nats://127.0.0.1:{p}\""))
                .collect();
            format!("[{}]", urls.join(", "))
        } else {
            "[]".into()
        };
        let policy_line = if opts.policy.is_some() {
            "policy_file = \"buswarden.toml\"\n"
        } else {
            ""
        };
        let mut auth_table = match opts.audience {
            Some(a) => format!("[auth]\naudience = [\"{a}\"]\n"),
            None => String::new(),
        };
        if let Some(http) = opts.http {
            auth_table.push_str(&format!("[http]\n{http}\n"));
        }
        let config = format!(
            r#"listen = "127.0.0.1:{http_port}"
store = "state/store.redb"
kek_file = "keys/kek"
max_body_bytes = {max_body}
{policy_line}
[operator]
signing_key_file = "keys/operator-signing.nk"
[account]
jwt_file = "jwt/app.jwt"
[system_account]
jwt_file = "jwt/sys.jwt"
creds_file = "keys/sys.creds"
[nats]
servers = {servers}
push_wait = "3s"
[deploys]
grace = "{grace}"
max_open = {max_open}
open_ttl = "{open_ttl}"
{auth_table}[[keys]]
key = "{ci}"
role = "ci"
hostnames = ["calc.example", "*.shop.example"]
[[keys]]
key = "{ci_calc}"
role = "ci"
hostnames = ["calc.example"]
[[keys]]
key = "{op}"
role = "operator"
[[keys]]
key = "{reader}"
role = "read-only"
"#,
            grace = opts.grace,
            max_open = opts.max_open,
            open_ttl = opts.open_ttl,
            max_body = opts.max_body,
            ci = ci.public_key(),
            ci_calc = ci_calc.public_key(),
            op = op.public_key(),
            reader = reader.public_key(),
        );
        std::fs::create_dir_all(d.join("state")).unwrap();
        let config_path = d.join("account-server.toml");
        std::fs::write(&config_path, config).unwrap();
        Bed {
            dir,
            operator,
            operator_jwt,
            sys,
            app,
            ci,
            ci_calc,
            op,
            reader,
            http_port,
            nats_port,
            more_nats_ports,
            config_path,
            sys_creds,
        }
    }

    /// The config, with `init` set when its store does not exist yet (as
    /// `serve --init` on a first start).
    pub fn config(&self) -> Config {
        let mut c = Config::load(&self.config_path).unwrap();
        c.init = needs_init(&self.config_path);
        c
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The nats-server config: operator mode, URL resolver at the account server.
    pub fn nats_config(&self) -> String {
        self.nats_config_on(self.nats_port)
    }

    /// The same config listening on `port`.
    pub fn nats_config_on(&self, port: u16) -> String {
        format!(
            "listen: 127.0.0.1:{}\noperator: {}\nsystem_account: {}\nresolver: URL(\"http://127.0.0.1:{}/jwt/v1/accounts/\")\n",
            port,
            self.operator_jwt,
            self.sys.public_key(),
            self.http_port
        )
    }

    /// Starts nats-server (the account server must answer already).
    pub fn start_nats(&self) -> NatsServer {
        NatsServer::start(&self.nats_config())
            .expect("nats-server starts against the account server")
    }

    /// Waits until the account server answers the resolver probe.
    pub async fn wait_http(&self) {
        let client = http();
        for _ in 0..500 {
            let uri: hyper::Uri = format!("{}/jwt/v1/accounts/", self.base_url())
                .parse()
                .unwrap();
            if let Ok(r) = client.get(uri).await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("account server did not answer");
    }
}

pub type Http = Client<HttpConnector, Full<Bytes>>;

pub fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A reply: status, ETag, body text.
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

/// Sends a request, signed by `key` when given.
pub async fn call(
    client: &Http,
    base: &str,
    method: &str,
    path: &str,
    body: &[u8],
    key: Option<&KeyPair>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header(
            "authorization",
            request_auth::sign_now(
                k,
                &request_auth::audience(base).unwrap(),
                method,
                path,
                body,
            )
            .unwrap(),
        );
    }
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        etag,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A signed JSON call.
pub async fn api(
    client: &Http,
    bed: &Bed,
    method: &str,
    path: &str,
    body: serde_json::Value,
    key: &KeyPair,
) -> Reply {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    call(
        client,
        &bed.base_url(),
        method,
        path,
        &bytes,
        Some(key),
        &[],
    )
    .await
}

/// Opens deploy `id` with `key` and asserts the 201.
pub async fn open_deploy(client: &Http, bed: &Bed, id: &str, key: &KeyPair) {
    let r = api(
        client,
        bed,
        "POST",
        "/v1/deploys",
        serde_json::json!({ "deploy": id }),
        key,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// The derived rule set of a service with no calls, as strings.
pub fn rules_for(hostname: &str) -> Vec<String> {
    let h = buswarden_rules::Hostname::parse(hostname).unwrap();
    buswarden_rules::derive(&buswarden_rules::ServiceModel::new(h))
        .iter()
        .map(|r| r.to_string())
        .collect()
}

/// A NATS client for a user: its JWT plus its key; events go to the channel.
pub async fn connect_user(
    url: &str,
    jwt: &str,
    key: &KeyPair,
) -> Result<
    (
        async_nats::Client,
        tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>,
    ),
    async_nats::ConnectError,
> {
    let creds_text =
        String::from_utf8(creds::format_user_config(jwt, &key.seed()).to_vec()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_credentials(&creds_text)
        .unwrap()
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        })
        .max_reconnects(Some(1))
        .connect(url)
        .await?;
    Ok((client, rx))
}

/// Waits up to `within` for a disconnect event.
pub async fn disconnected(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(async_nats::Event::Disconnected)) => return true,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return false,
        }
    }
}

/// The account JWT the broker has (asked over `$SYS` with the system creds).
pub async fn broker_account(url: &str, creds_file: &Path, account: &str) -> AccountClaims {
    let client = async_nats::ConnectOptions::with_credentials_file(creds_file)
        .await
        .unwrap()
        .connect(url)
        .await
        .unwrap();
    let reply = client
        .request(format!("$SYS.REQ.ACCOUNT.{account}.INFO"), "".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    let token = v["data"]["jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("no jwt in {v}"));
    jwt::decode_account(token).unwrap()
}

/// Starts the server in this process and serves it until the returned
/// sender is dropped or fired.
pub async fn serve_in_process(
    bed: &Bed,
) -> (
    Arc<account_server::AccountServer>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let server = account_server::AccountServer::start(bed.config())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s2 = server.clone();
    let handle = tokio::spawn(async move {
        account_server::serve(s2, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    bed.wait_http().await;
    (server, tx, handle)
}

/// Whether `text` holds something shaped like an nkey seed (`S` + 57 base32).
pub fn has_seed(text: &str) -> bool {
    let b = text.as_bytes();
    let is_b32 = |c: u8| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c);
    b.windows(58).any(|w| {
        w[0] == b'S'
            && matches!(w[1], b'O' | b'A' | b'U' | b'N' | b'C' | b'X')
            && w.iter().all(|&c| is_b32(c))
    })
}

/// Drops the last handle of a server and waits (bounded) until its
/// background work has let go of it too, so its store can be opened again:
/// the janitor holds the server for the length of one tidy-up, which on a
/// loaded machine can outlast the test's own `drop`.
pub async fn stop_server(server: std::sync::Arc<account_server::AccountServer>) {
    let weak = std::sync::Arc::downgrade(&server);
    drop(server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while weak.strong_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the account server was still held 10 s after its last handle was dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
