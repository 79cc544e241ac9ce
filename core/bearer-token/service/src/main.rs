//! The `bearer-token-core` binary: serves bearer.token.core with the
//! connector configured from the environment (`BUSWARDEN_NATS_URL`,
//! `BUSWARDEN_CREDS_DIR`, …) and:
//! - `BUSWARDEN_BEARER_KEY_FILE`: the signing key (PKCS#8 PEM or base64 DER,
//!   mode 0600);
//! - `BUSWARDEN_BEARER_ALT_KEY_FILE`: the alternate key, listed in the JWKS;
//! - `BUSWARDEN_BEARER_TTL`: token lifetime (default `720h`);
//! - `BUSWARDEN_DEPLOYMENT=LOCAL` or `TESTING`: development mode, keys
//!   generated in memory when no key file is set.
//!
//! Prints `ready <host> <instance>`, runs until SIGINT or SIGTERM.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use bearer_token_core::{Config, Service};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bearer-token-core: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let ttl = match std::env::var("BUSWARDEN_BEARER_TTL") {
        Ok(text) => Some(
            humantime::parse_duration(&text)
                .map_err(|e| format!("BUSWARDEN_BEARER_TTL={text:?}: {e}"))?,
        ),
        Err(_) => None,
    };
    let deployment = std::env::var("BUSWARDEN_DEPLOYMENT").unwrap_or_default();
    let config = Config {
        key_file: var("BUSWARDEN_BEARER_KEY_FILE").map(Into::into),
        alt_key_file: var("BUSWARDEN_BEARER_ALT_KEY_FILE").map(Into::into),
        ttl,
        development: matches!(
            deployment.to_ascii_uppercase().as_str(),
            "LOCAL" | "TESTING"
        ),
    };
    let service = Service::new(&config)?;
    let svc = bearer_token_core::connector();
    svc.connect().await?;
    bearer_token_core::start(&svc, service).await?;
    println!(
        "ready {} {}",
        svc.hostname(),
        svc.instance_id().unwrap_or_default()
    );
    buswarden_token_signing::shutdown_signal().await;
    svc.close().await;
    Ok(())
}
