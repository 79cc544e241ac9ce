//! What the docs and template tests share: the workspace's binaries (built
//! once by `cargo build --workspace --bins`, as `ci/test` does), a real
//! nats-server 2.15.1 from `ci/deps.sh`, child processes that die with the
//! test, a copy of a tree (and of the shop's deployment), and the
//! workspace's tools run in a folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The folder holding the workspace's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let own = PathBuf::from(env!("CARGO_BIN_EXE_buswarden-ci"));
    let dir = own.parent().expect("a binary has a folder").to_path_buf();
    for bin in ["gencreds", "busop", "account-server", "shop-bundle"] {
        assert!(
            dir.join(bin).is_file(),
            "{} missing: run `cargo build --workspace --bins` first (ci/test does)",
            dir.join(bin).display()
        );
    }
    dir
}

/// The nats-server binary (`source ci/deps.sh` exports it).
pub fn nats_server() -> PathBuf {
    PathBuf::from(std::env::var("BUSWARDEN_NATS_SERVER").expect(
        "BUSWARDEN_NATS_SERVER unset: run `source ci/deps.sh` first (installs nats-server 2.15.1)",
    ))
}

/// PATH with the workspace's binaries and nats-server's folder first.
pub fn path_env() -> String {
    let nats_dir = nats_server().parent().unwrap().to_path_buf();
    format!(
        "{}:{}:{}",
        bin_dir().display(),
        nats_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A free loopback port a config can name ahead of time (see the testkit).
#[allow(unused_imports)] // not every test binary names a port ahead of time
pub use buswarden_testkit::free_port;

/// A child process killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` with a time limit; returns its output.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} ran over {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `ok()` or panics after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Copies the tree at `from` to `to` (files and folders; `target/` and
/// `.git/` left out), keeping file modes.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let ty = entry.file_type().unwrap();
        let dest = to.join(&name);
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Copies the shop's deployment into `repo` at the same relative places:
/// `fixtures/app` and the framework's `core/` its API dependencies point at
/// (`../../../../core/…`).
pub fn copy_shop(repo: &Path) {
    copy_tree(
        &repo_root().join("fixtures/app"),
        &repo.join("fixtures/app"),
    );
    copy_tree(&repo_root().join("core"), &repo.join("core"));
}

/// Runs the workspace binary `bin` with `args` in `dir`.
pub fn tool(dir: &Path, bin: &str, args: &[&str]) -> Output {
    Command::new(bin_dir().join(bin))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
