//! `account-server serve --config FILE [--init]` runs the server (`--init`
//! on the first start only: it creates the store, which is refused missing
//! or empty otherwise);
//! `account-server gen-kek FILE` writes a fresh key-encryption key (0600);
//! `account-server migrate --to-kv --config FILE` moves the embedded store
//! into the JetStream KV buckets of the config's `[kv]` table.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use account_server::config::Config;
use account_server::seal::Kek;
use account_server::{AccountServer, serve};
use anyhow::Context;

const USAGE: &str = "usage: account-server serve --config FILE [--init] | account-server gen-kek FILE | account-server migrate --to-kv --config FILE";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("account-server: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once: library errors already name
/// their source in their message, so a cause whose text is already shown is
/// not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen-kek", path] => {
            Kek::generate_file(&PathBuf::from(path))?;
            Ok(())
        }
        ["serve", "--config", path] | ["serve", "--config", path, "--init"] => {
            let mut config = Config::load(&PathBuf::from(path))?;
            config.init = args.iter().any(|a| a == "--init");
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(async {
                let server = AccountServer::start(config).await?;
                serve(server, shutdown_signal()).await?;
                tracing::info!("stopped");
                Ok(())
            })
        }
        ["migrate", "--to-kv", "--config", path] | ["migrate", "--to-kv", path] => {
            let config = Config::load(&PathBuf::from(path))?;
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let m = rt.block_on(account_server::migrate::to_kv(&config))?;
            println!(
                "migrated {} deploys, {} users, {} revocations, {} audit entries, {} nonces into JetStream KV",
                m.deploys, m.users, m.revocations, m.audit, m.nonces
            );
            Ok(())
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
