//! `http.ingress.core`: the HTTP ingress, the one door from the internet to
//! the bus.
//!
//! An external request `https://<ingress>/<host>[:<port>]/<path>?<query>`
//! becomes a unicast bus call to `https://<host>:<port>/<path>?<query>`
//! (port 443 by default) made under the ingress's own identity, and the
//! response (status, headers, body) goes back to the client. On the way:
//!
//! - [`mapping`]: the URL mapping and the port firewall (the `[edge]` table
//!   of `buswarden.toml`; 666 and 888 never open), refused ports are 404
//!   with nothing published; `gencreds` derives the ingress's own NATS
//!   allow-list from the same table, so the broker enforces it too;
//! - [`headers`]: `Microbus-*`, `Traceparent`, `Tracestate` and the bearer
//!   token stripped, `X-Forwarded-*` set from the socket (kept from a
//!   client only behind a configured trusted proxy);
//! - [`exchange`]: a bearer token verified against bearer.token.core's
//!   pinned JWKS and exchanged for an access token at access.token.core's
//!   `Mint`, reused while most of its life is left; an invalid one is 401;
//! - [`ratelimit`]: a token bucket per verified `sub` (else per client
//!   address), 429 with `Retry-After`;
//! - [`proxy`]: the gates in order and the bus call ([`proxy::Ingress`]);
//! - [`server`]: HTTP/1.1 and HTTP/2, TLS (rustls), graceful shutdown, and
//!   `/healthz` + `/metrics` ([`metrics`]) on their own listener;
//! - [`config`]: the TOML configuration.

#![forbid(unsafe_code)]

pub mod config;
pub mod exchange;
pub mod headers;
pub mod mapping;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod server;

pub use config::Config;
pub use proxy::Ingress;
pub use server::{Running, start};

/// The ingress's connector, configured from `config` over the runtime's
/// environment (`BUSWARDEN_NATS_URL`, `BUSWARDEN_CREDS_DIR`, …): calls wait
/// at most the request's time budget.
pub fn connector(config: &Config) -> buswarden::Connector {
    // The request body limit is the ingress's own gate; the connector keeps
    // the runtime's (larger) limit, which also bounds responses.
    let svc = buswarden::Connector::new(config.hostname.as_str()).with_timeout(config.time_budget);
    let svc = match &config.nats_url {
        Some(u) => svc.with_url(u.clone()),
        None => svc,
    };
    let svc = match &config.plane {
        Some(p) => svc.with_plane(p.clone()),
        None => svc,
    };
    match &config.creds {
        Some(c) => svc.with_creds_file(c.clone()),
        None => svc,
    }
}
