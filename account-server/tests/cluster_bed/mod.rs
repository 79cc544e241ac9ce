//! A three-node nats-server 2.15.1 cluster with JetStream on loopback, in
//! operator mode, for account-server replicas on the JetStream KV store
//! (shared by the cluster test and the KV benchmark).
//!
//! Accounts: SYS (system), APP (the managed application account, no
//! JetStream; its JWT reaches the brokers only by the account servers'
//! pushes) and KV (JetStream enabled; its only user is the account server,
//! whose `.creds` the `[kv]` table names). The brokers use the full (nats)
//! resolver with SYS and KV preloaded: a URL resolver pointing at the
//! account server cannot be used here, because the account server needs
//! the KV account before it can answer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use buswarden_creds::claims::{AccountClaims, UserClaims};
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::{creds, jwt, keyfile};
use buswarden_testkit::NatsServer;

use crate::common::{Bed, Options, free_port};

/// The cluster and the files of its account servers.
/// The name every replica answers to besides its own address.
pub const SHARED_AUDIENCE: &str = "replicas.test:7370";

pub struct Cluster {
    pub bed: Bed,
    pub nodes: Vec<Option<NatsServer>>,
    pub client_ports: Vec<u16>,
    pub kv_account: KeyPair,
    pub kv_creds: PathBuf,
    /// `[nats] push_wait` of the replicas' configs.
    pub push_wait: &'static str,
    /// Whether the KV bucket holds state already (the next KV replica
    /// starts without `--init`).
    pub kv_initialised: std::sync::atomic::AtomicBool,
}

/// An account-server child process; killed (SIGKILL) when dropped.
pub struct Replica {
    pub child: Child,
    pub base: String,
    pub config: PathBuf,
}

impl Replica {
    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn node_config(c: &Cluster, i: usize, routes: &[u16], dir: &Path) -> String {
    let sys_jwt = std::fs::read_to_string(c.bed.dir.path().join("jwt/sys.jwt")).unwrap();
    let kv_jwt = std::fs::read_to_string(c.bed.dir.path().join("jwt/kv.jwt")).unwrap();
    let route_list: Vec<String> = routes
        .iter()
        .map(|p| format!("nats-route://127.0.0.1:{p}"))
        .collect();
    format!(
        r#"server_name: n{i}
listen: 127.0.0.1:{client}
operator: {operator}
system_account: {sys}
resolver: {{ type: full, dir: {jwt_dir:?} }}
resolver_preload: {{
  {sys}: {sys_jwt}
  {kv}: {kv_jwt}
}}
jetstream {{ store_dir: {js_dir:?} }}
cluster {{
  name: buswarden
  listen: 127.0.0.1:{route}
  routes: [{routes}]
}}
"#,
        client = c.client_ports[i],
        operator = c.bed.operator_jwt,
        sys = c.bed.sys.public_key(),
        kv = c.kv_account.public_key(),
        jwt_dir = dir.join("jwt"),
        js_dir = dir.join("js"),
        route = routes[i],
        routes = route_list.join(", "),
    )
}

impl Cluster {
    /// Generates the accounts and starts three clustered nodes.
    pub fn start() -> Cluster {
        let bed = Bed::new(Options {
            more_nats: 2,
            ..Default::default()
        });
        let d = bed.dir.path();
        // The KV account: JetStream on, apart from the application account.
        let op_signing =
            keyfile::load_key_file(&d.join("keys/operator-signing.nk"), Some(KeyKind::Operator))
                .unwrap();
        let kv_account = KeyPair::generate(KeyKind::Account);
        let mut kc = AccountClaims::new_account(kv_account.public_key());
        kc.data.name = "KV".into();
        kc.nats.limits.jetstream.mem_storage = -1;
        kc.nats.limits.jetstream.disk_storage = -1;
        kc.nats.limits.jetstream.streams = -1;
        kc.nats.limits.jetstream.consumer = -1;
        let kv_jwt = jwt::encode(&mut kc, &op_signing, jwt::now()).unwrap();
        std::fs::write(d.join("jwt/kv.jwt"), &kv_jwt).unwrap();
        let kv_user = KeyPair::generate(KeyKind::User);
        let mut uc = UserClaims::new_user(kv_user.public_key());
        uc.data.name = "account-server".into();
        let kv_user_jwt = jwt::encode(&mut uc, &kv_account, jwt::now()).unwrap();
        let kv_creds = d.join("keys/kv.creds");
        keyfile::write_private_file(
            &kv_creds,
            &creds::format_user_config(&kv_user_jwt, &kv_user.seed()),
            true,
        )
        .unwrap();

        let client_ports = std::iter::once(bed.nats_port)
            .chain(bed.more_nats_ports.iter().copied())
            .collect::<Vec<_>>();
        let mut c = Cluster {
            bed,
            nodes: Vec::new(),
            client_ports,
            kv_account,
            kv_creds,
            push_wait: "300ms",
            kv_initialised: Default::default(),
        };
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for i in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let config = node_config(&c, i, &routes, dir.path());
            c.nodes.push(Some(
                NatsServer::start_in(dir, &config).expect("cluster node"),
            ));
        }
        c
    }

    /// The client URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.client_ports[i])
    }

    /// SIGKILLs node `i`.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.stop();
        }
    }

    /// Waits until JetStream answers for the KV account (meta leader elected).
    pub async fn wait_jetstream(&self) {
        let client = async_nats::ConnectOptions::with_credentials_file(&self.kv_creds)
            .await
            .unwrap()
            .connect(self.url(0))
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        for _ in 0..200 {
            if js.query_account().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("JetStream cluster did not come up");
    }

    /// Writes an account-server config for a replica listening on
    /// `http_port`: the bed's config with `[kv]` (unless `embedded`), the
    /// three nodes to push to, and a short push wait.
    pub fn replica_config(&self, name: &str, http_port: u16, embedded: bool) -> PathBuf {
        let text = std::fs::read_to_string(&self.bed.config_path).unwrap();
        let mut text = text
            .replace(
                &format!("listen = \"127.0.0.1:{}\"", self.bed.http_port),
                &format!("listen = \"127.0.0.1:{http_port}\""),
            )
            .replace(
                "push_wait = \"3s\"",
                &format!("push_wait = \"{}\"", self.push_wait),
            )
            .replace(
                "store = \"state/store.redb\"",
                &format!("store = \"state/{name}.redb\""),
            );
        // Every replica also answers to one shared name, as behind a load
        // balancer: a request signed for it is valid at each of them.
        text.push_str(&format!(
            "[auth]\naudience = [\"127.0.0.1:{http_port}\", \"{SHARED_AUDIENCE}\"]\n"
        ));
        if !embedded {
            let servers: Vec<String> = (0..3).map(|i| format!("{:?}", self.url(i))).collect();
            text.push_str(&format!(
                "[kv]\nservers = [{}]\ncreds_file = \"keys/kv.creds\"\nbucket = \"bw_state\"\nreplicas = 3\n",
                servers.join(", ")
            ));
        }
        let path = self.bed.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts `account-server serve` on `config` and waits until it answers.
    pub async fn spawn_replica(&self, name: &str, embedded: bool) -> Replica {
        let port = free_port();
        let config = self.replica_config(name, port, embedded);
        self.spawn_on(name, config, port).await
    }

    /// Starts `account-server serve` on an existing config listening on `port`.
    pub async fn spawn_on(&self, name: &str, config: PathBuf, port: u16) -> Replica {
        let log = std::fs::File::create(self.bed.dir.path().join(format!("{name}.log"))).unwrap();
        let mut cmd = crate::common::serve_command(&config);
        // The first replica on the shared KV bucket creates it (`--init`).
        if std::fs::read_to_string(&config).unwrap().contains("[kv]")
            && !self
                .kv_initialised
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            cmd.arg("--init");
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut replica = Replica {
            child,
            base: format!("http://127.0.0.1:{port}"),
            config,
        };
        let client = crate::common::http();
        for _ in 0..600 {
            let uri: hyper::Uri = format!("{}/healthz", replica.base).parse().unwrap();
            if let Ok(r) = client.get(uri).await
                && r.status() == 200
            {
                return replica;
            }
            if let Ok(Some(status)) = replica.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                let log = std::fs::read_to_string(self.bed.dir.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                panic!("replica {name} exited with {status}:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replica.kill();
        panic!("replica {name} did not answer");
    }

    /// The account JWT node `i` itself holds (asked by server id over `$SYS`).
    pub async fn node_account_jwt(&self, i: usize, account: &str) -> Option<String> {
        let client = async_nats::ConnectOptions::with_credentials_file(&self.bed.sys_creds)
            .await
            .ok()?
            .connect(self.url(i))
            .await
            .ok()?;
        let id = client.server_info().server_id;
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(
                format!("$SYS.REQ.SERVER.{id}.ACCOUNTZ"),
                serde_json::to_vec(&serde_json::json!({ "account": account }))
                    .unwrap()
                    .into(),
            ),
        )
        .await
        .ok()?
        .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
        v["data"]["account_detail"]["jwt"]
            .as_str()
            .map(str::to_string)
    }
}

/// `n` fresh user keys and the sign request entries for them
/// (`v<i>.shop.example`, the derived rule set of a service with no calls).
pub fn victims(n: usize) -> (Vec<KeyPair>, Vec<serde_json::Value>) {
    let keys: Vec<KeyPair> = (0..n).map(|_| KeyPair::generate(KeyKind::User)).collect();
    let users = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let h = format!("v{i}.shop.example");
            serde_json::json!({"hostname": h, "user_key": k.public_key(), "rules": crate::common::rules_for(&h)})
        })
        .collect();
    (keys, users)
}
