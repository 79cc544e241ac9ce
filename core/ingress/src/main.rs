//! The `ingress` binary: `ingress [--config ingress.toml]`. Reads the
//! configuration (refusing any bad value, and a policy that opens 666 or
//! 888, at a file and line), connects to the bus, serves until SIGINT or
//! SIGTERM, then shuts down gracefully. Logs through `tracing`
//! (`RUST_LOG`, default `info`).

#![forbid(unsafe_code)]

use anyhow::Context as _;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingress: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn config_path() -> anyhow::Result<Option<PathBuf>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (None, _, _) => Ok(None),
        (Some("--config"), Some(p), None) => Ok(Some(PathBuf::from(p))),
        (Some("--help" | "-h"), _, _) => {
            println!("usage: ingress [--config ingress.toml]\nsee docs/ingress.md");
            std::process::exit(0)
        }
        _ => anyhow::bail!("usage: ingress [--config ingress.toml]"),
    }
}

async fn run() -> anyhow::Result<()> {
    let config = match config_path()? {
        Some(p) => ingress_core::Config::load(&p)?,
        None => ingress_core::Config::default(),
    };
    let svc = ingress_core::connector(&config);
    svc.connect().await.context("connecting to the bus")?;
    let ingress = ingress_core::Ingress::new(config, svc.clone());
    let running = ingress_core::start(ingress).await?;
    println!(
        "ready {} {} http={} ops={}",
        svc.hostname(),
        svc.instance_id().unwrap_or_default(),
        running.addr,
        running
            .metrics_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into())
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    svc.close().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
