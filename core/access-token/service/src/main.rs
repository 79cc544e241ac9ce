//! The `access-token-core` binary: serves access.token.core with the
//! connector configured from the environment (`BUSWARDEN_NATS_URL`,
//! `BUSWARDEN_CREDS_DIR`, …) and `BUSWARDEN_ACCESS_TOKEN_ROTATION` (a
//! duration such as `6h`; at least `2h`). Prints `ready <host> <instance>`,
//! runs until SIGINT or SIGTERM.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use access_token_core::{Config, Service};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("access-token-core: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    if let Ok(text) = std::env::var("BUSWARDEN_ACCESS_TOKEN_ROTATION") {
        config.rotation = humantime::parse_duration(&text)
            .map_err(|e| format!("BUSWARDEN_ACCESS_TOKEN_ROTATION={text:?}: {e}"))?;
    }
    let svc = access_token_core::connector();
    let service = Service::new(svc.clone(), &config)?;
    svc.connect().await?;
    access_token_core::start(&svc, service).await?;
    println!(
        "ready {} {}",
        svc.hostname(),
        svc.instance_id().unwrap_or_default()
    );
    buswarden_token_signing::shutdown_signal().await;
    svc.close().await;
    Ok(())
}
