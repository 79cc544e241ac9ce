//! Shared by the ingress's end-to-end tests: an operator-mode nats-server
//! 2.15.1, the shop (fixtures/app) and the framework's token services
//! signed from their committed `nats.acl` files (the ingress's among them,
//! derived from core/buswarden.toml's `[edge]`), an echo service that shows
//! what a handler receives, a monitor user subscribed to `>`, the ingress
//! itself, and a real HTTP client.
#![allow(dead_code)]

use buswarden::{Connector, Error, Request, Response, context};
use buswarden_creds::claims::{AccountClaims, OperatorClaims, UserClaims};
use buswarden_creds::creds::format_user_config;
use buswarden_creds::jwt;
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::sign::{self, AccountRef, AccountSigner, DeployId, ServiceAcl, SignOptions};
use buswarden_testkit::NatsServer;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A test service that answers every method and path on :443, :444 and
/// :8080 with what its handler saw.
#[buswarden::api(host = "echo.example")]
pub trait Echo {
    /// Port 443.
    #[web(ANY, "/{path...}")]
    async fn public(&self, req: Request) -> Result<Response, Error>;
    /// Port 444 (internal).
    #[web(ANY, ":444/{path...}")]
    async fn internal(&self, req: Request) -> Result<Response, Error>;
    /// Port 8080 (opened by core/buswarden.toml's allowed-internal-ports).
    #[web(ANY, ":8080/{path...}")]
    async fn alt(&self, req: Request) -> Result<Response, Error>;
}

/// The echo service.
pub struct EchoService;

fn echo(port: u16, req: &Request) -> Result<Response, Error> {
    let frame = context::current();
    let seen = serde_json::json!({
        "port": port,
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "caller": context::caller(),
        "actor": context::actor(),
        "baggage": frame.baggage,
        "headers": req.headers,
        "body_len": req.body.len(),
    });
    Ok(Response::ok(seen.to_string())
        .with_header("Content-Type", "application/json")
        .with_header("Microbus-Leak", "internal")
        .with_header(
            "Traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .with_header("X-Echo", "yes"))
}

impl Echo for EchoService {
    async fn public(&self, req: Request) -> Result<Response, Error> {
        // `?sleep=<ms>` makes a slow handler (the 504 test).
        if let Some(ms) = req
            .query
            .strip_prefix("sleep=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        echo(443, &req)
    }
    async fn internal(&self, req: Request) -> Result<Response, Error> {
        echo(444, &req)
    }
    async fn alt(&self, req: Request) -> Result<Response, Error> {
        echo(8080, &req)
    }
}

/// The echo service's allow-list (it calls nothing).
const ECHO_ACL: &str = "# nats.acl for echo.example
PUB {{plane}}.reply._.echo_example.>

SUB {{plane}}.reply._.*.echo_example.*
SUB {{plane}}.safe.*.*.echo_example.>
SUB {{plane}}.safe.888.*.all.>
";

/// What gencreds derives for the ingress when `[edge]` says `mode =
/// "local"` over a tree serving 443, 444 and 8080 (gencreds/tests/policy.rs
/// checks that derivation): used for the local-mode ingress.
pub const LOCAL_INGRESS_ACL: &str = "# nats.acl for http.ingress.core
PUB {{plane}}.danger.666.http_ingress_core.access_token_core.*.POST.mint
PUB {{plane}}.reply._.http_ingress_core.>
PUB {{plane}}.safe.443.http_ingress_core.*.*.*.>
PUB {{plane}}.safe.444.http_ingress_core.*.*.*.>
PUB {{plane}}.safe.8080.http_ingress_core.*.*.*.>
PUB {{plane}}.safe.888.http_ingress_core.bearer_token_core.*.POST.jwks

SUB {{plane}}.reply._.*.http_ingress_core.*
SUB {{plane}}.safe.888.*.all.>
";

/// The repository's `core/`.
pub fn core_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's `fixtures/app`.
pub fn app_root() -> PathBuf {
    core_root().join("../fixtures/app")
}

/// An operator, its system account and the application account (every
/// user denied everything by default) with a deploy signing key.
pub struct Trust {
    operator_jwt: String,
    system: KeyPair,
    system_jwt: String,
    account: KeyPair,
    account_claims: AccountClaims,
    account_jwt: String,
    deploy_key: KeyPair,
}

impl Trust {
    pub fn new() -> Trust {
        let now = jwt::now();
        let operator = KeyPair::generate(KeyKind::Operator);
        let system = KeyPair::generate(KeyKind::Account);
        let account = KeyPair::generate(KeyKind::Account);
        let deploy_key = KeyPair::generate(KeyKind::Account);
        let mut op = OperatorClaims::new_operator(operator.public_key());
        op.data.name = "edge-operator".into();
        op.nats.system_account = system.public_key().into();
        let operator_jwt = jwt::encode(&mut op, &operator, now).unwrap();
        let mut sys = AccountClaims::new_account(system.public_key());
        sys.data.name = "SYS".into();
        let system_jwt = jwt::encode(&mut sys, &operator, now).unwrap();
        let mut acc = AccountClaims::new_account(account.public_key());
        acc.data.name = "shop".into();
        acc.nats.signing_keys.add_plain(deploy_key.public_key());
        acc.nats.default_permissions.publish.deny = vec![">".into()];
        acc.nats.default_permissions.subscribe.deny = vec![">".into()];
        let account_jwt = jwt::encode(&mut acc, &operator, now).unwrap();
        Trust {
            operator_jwt,
            system,
            system_jwt,
            account,
            account_claims: acc,
            account_jwt,
            deploy_key,
        }
    }

    pub fn server(&self) -> NatsServer {
        NatsServer::start(&format!(
            "operator: {}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {}\n  {}: {}\n}}\n",
            self.operator_jwt,
            self.system.public_key(),
            self.system.public_key(),
            self.system_jwt,
            self.account.public_key(),
            self.account_jwt
        ))
        .expect("operator-mode nats-server")
    }

    fn signer(&self) -> AccountSigner {
        AccountSigner::new(
            self.deploy_key.clone(),
            Some(AccountRef::Jwt(Box::new(self.account_claims.clone()))),
        )
        .unwrap()
    }

    /// Signs the shop, core/ (the token services and the ingress) and the
    /// echo service into `out`.
    pub fn sign_deploy(&self, out: &Path) {
        let mut services = sign::discover(&app_root()).expect("the shop's nats.acl files");
        services.extend(sign::discover(&core_root()).expect("core's nats.acl files"));
        services.push(acl(ECHO_ACL));
        sign::sign_services(&services, out, &self.signer(), &options()).expect("signs");
    }

    /// Signs one hand-written allow-list into `out`.
    pub fn sign_acl(&self, text: &str, out: &Path) {
        sign::sign_services(&[acl(text)], out, &self.signer(), &options()).unwrap();
    }

    /// A user that may publish and subscribe to everything in the account:
    /// the monitor that proves what was (not) published.
    pub async fn monitor(&self, server: &NatsServer) -> Monitor {
        let user = KeyPair::generate(KeyKind::User);
        let mut claims = UserClaims::new_user(user.public_key());
        claims.data.name = "monitor".into();
        claims.nats.limits.publish.allow = vec![">".into()];
        claims.nats.limits.subscribe.allow = vec![">".into()];
        let token = jwt::encode(&mut claims, &self.account, jwt::now()).unwrap();
        let creds = format_user_config(&token, &user.seed());
        let text = String::from_utf8(creds.to_vec()).unwrap();
        let client = async_nats::ConnectOptions::new()
            .credentials(&text)
            .unwrap()
            .connect(server.url())
            .await
            .unwrap();
        let all = client.subscribe(">").await.unwrap();
        let mut monitor = Monitor { client, all };
        // async-nats's flush only writes the socket; the broker may not
        // have taken the subscription yet, and a monitor that misses what
        // comes next would prove "nothing published" without looking. Its
        // sentinel, through the broker and back on this connection, proves
        // the subscription is in place.
        monitor.published().await;
        monitor
    }
}

fn acl(text: &str) -> ServiceAcl {
    let parsed = buswarden_rules::acl::parse(text).unwrap();
    ServiceAcl {
        path: PathBuf::from("test.acl"),
        hostname: parsed.hostname,
        rules: parsed.rules,
    }
}

fn options() -> SignOptions {
    let mut opts = SignOptions::new();
    opts.deploy = DeployId::parse("edge-1").unwrap();
    opts.sync = false;
    opts
}

/// A subscription on `>` with every permission.
pub struct Monitor {
    client: async_nats::Client,
    all: async_nats::Subscriber,
}

impl Monitor {
    /// Every subject published since the last call (a sentinel of its own
    /// marks the end: the server delivers in order).
    pub async fn published(&mut self) -> Vec<String> {
        let sentinel = format!("monitor.sentinel.{}", buswarden_testkit::free_port());
        self.client
            .publish(sentinel.clone(), Bytes::new())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        let mut seen = vec![];
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.all.next())
                .await
                .expect("the sentinel arrives")
                .expect("the subscription is open");
            if msg.subject.as_str() == sentinel {
                return seen;
            }
            seen.push(msg.subject.to_string());
        }
    }

    /// Forgets what was published so far.
    pub async fn clear(&mut self) {
        let _ = self.published().await;
    }
}

/// Connects `svc` with `<creds>/<host>_nats.creds`.
pub async fn connect(svc: Connector, server: &NatsServer, creds: &Path) -> Connector {
    let svc = svc
        .with_url(server.url())
        .with_creds_dir(creds)
        .with_timeout(Duration::from_secs(5))
        .with_ack_window(Duration::from_millis(300));
    svc.connect()
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", svc.hostname()));
    svc
}

/// The shop (gateway, catalog, orders, notify), the two token services and
/// the echo service, each on its own connection and creds. `bearer` is
/// bearer.token.core's configuration.
pub async fn start_services(
    server: &NatsServer,
    creds: &Path,
    bearer: bearer_token_core::Config,
) -> Vec<Connector> {
    let access = connect(access_token_core::connector(), server, creds).await;
    let issuer = access_token_core::Service::new(access.clone(), &Default::default()).unwrap();
    access_token_core::start(&access, issuer).await.unwrap();
    let bearer_svc = connect(bearer_token_core::connector(), server, creds).await;
    let issuer = bearer_token_core::Service::new(&bearer).unwrap();
    bearer_token_core::start(&bearer_svc, issuer).await.unwrap();
    let catalog = connect(catalog::connector(), server, creds).await;
    catalog::start(&catalog).await.unwrap();
    let orders = connect(orders::connector(), server, creds).await;
    orders::start(&orders).await.unwrap();
    let notify = connect(notify::connector(), server, creds).await;
    notify::start(&notify).await.unwrap();
    let gateway = connect(gateway::connector(), server, creds).await;
    gateway::start(&gateway).await.unwrap();
    let echo = connect(Connector::new("echo.example"), server, creds).await;
    echo.serve(EchoServer::new(EchoService)).await.unwrap();
    vec![access, bearer_svc, catalog, orders, notify, gateway, echo]
}

/// Writes a `buswarden.toml` with `edge` as its `[edge]` body and an
/// ingress config around it, and parses it as the ingress would.
pub fn ingress_config(
    dir: &Path,
    edge: &str,
    extra: &str,
    server: &NatsServer,
    creds: &Path,
) -> Result<ingress_core::Config, ingress_core::config::ConfigError> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("buswarden.toml"),
        format!("version = 1\n[edge]\n{edge}\n"),
    )
    .unwrap();
    let budget = if extra.contains("time-budget") {
        ""
    } else {
        "time-budget = \"5s\"\n"
    };
    let text = format!(
        "listen = \"127.0.0.1:0\"\nmetrics-listen = \"127.0.0.1:0\"\npolicy = \"buswarden.toml\"\nnats-url = \"{}\"\ncreds = \"{}\"\n{budget}{extra}\n",
        server.url(),
        creds.join("http.ingress.core_nats.creds").display()
    );
    let path = dir.join("ingress.toml");
    std::fs::write(&path, &text).unwrap();
    ingress_core::Config::load(&path)
}

/// Connects and starts an ingress with `config`.
pub async fn start_ingress(
    config: ingress_core::Config,
) -> (
    std::sync::Arc<ingress_core::Ingress>,
    ingress_core::Running,
    Connector,
) {
    let svc = ingress_core::connector(&config).with_ack_window(Duration::from_millis(300));
    svc.connect().await.expect("the ingress connects");
    let ingress = ingress_core::Ingress::new(config, svc.clone());
    let running = ingress_core::start(ingress.clone()).await.unwrap();
    (ingress, running, svc)
}

/// An HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// The header values a handler saw (case-insensitive name).
pub fn seen_header(seen: &serde_json::Value, name: &str) -> Vec<String> {
    seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect()
}
