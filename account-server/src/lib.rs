//! `account-server`: the long-running half of buswarden. nats-server asks it
//! for account JWTs (URL resolver); CI asks it to open a deploy and sign that
//! deploy's users from their public keys and rule sets; operators ask it to
//! retire, revoke and approve. Every change of the account JWT is committed
//! to a durable store first, then pushed to every nats-server over `$SYS` and
//! confirmed.
//!
//! - [`config`]: the config file; [`api`]: the router ([`app`]);
//! - [`conn`]: the connection loop and its timeouts;
//! - [`auth`]: signed requests, roles, nonces; [`error`]: the API error;
//! - [`server`]: state and start; [`lifecycle`]: deploys, users, revocations;
//! - [`ledger`]: the working set and the account JWT it signs;
//! - [`store`]: the durable [`store::Store`], its redb and JetStream KV backends;
//! - [`replica`]: several replicas on one KV store (catch-up, retries);
//! - [`seal`]: deploy seeds sealed at rest; [`push`]: updates to every broker;
//! - [`migrate`]: embedded store to KV;
//! - [`policy`]: the server's `buswarden.toml`; [`metrics`]; [`tls`].

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod config;
pub mod conn;
pub mod error;
pub mod ledger;
pub mod lifecycle;
pub mod metrics;
pub mod migrate;
pub mod policy;
pub mod push;
pub mod replica;
pub mod seal;
pub mod server;
pub mod store;
pub mod tls;

pub use api::app;
pub use server::AccountServer;

use std::sync::Arc;

use axum::serve::ListenerExt;

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The socket failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Serves `server` on its configured address (TLS when configured) until
/// `shutdown` resolves; in-flight requests finish first. Connections get
/// the configured header-read and idle timeouts ([`conn`]).
pub async fn serve(
    server: Arc<AccountServer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = server.config.listen;
    let listen = |source| ServeError::Listen { addr, source };
    let tcp = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    tracing::info!(%addr, tls = server.config.tls.is_some(), "listening");
    let router = app(server.clone());
    let timeouts = conn::Timeouts {
        header_read: server.config.http.header_read_timeout,
        idle: server.config.http.idle_timeout,
    };
    match &server.config.tls {
        Some(t) => {
            let config = tls::server_config(&t.cert_file, &t.key_file)?;
            let listener = tls::TlsListener::new(tcp, config)?;
            conn::serve(listener, router, timeouts, shutdown).await;
        }
        None => {
            // Small answers go out at once, without waiting on Nagle.
            let listener = tcp.tap_io(|s| {
                let _ = s.set_nodelay(true);
            });
            conn::serve(listener, router, timeouts, shutdown).await;
        }
    }
    Ok(())
}
