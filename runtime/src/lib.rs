//! `buswarden`: the minimal runtime a service depends on.
//!
//! One [`Connector`] per service: its own NATS connection, its own `.creds`
//! (re-read at every connect), requests, replies and events on the subjects
//! of `buswarden_rules::subject`, so the traffic is exactly what the analyzer
//! grants. The user-facing surface:
//!
//! - [`api`]: `#[buswarden::api(host = "…")]` on a trait generates its typed
//!   clients, trigger, hook and serving glue (see the `buswarden-macros` crate);
//! - [`grant`]: `#[buswarden::grant(METHOD, "URL")]`, the reviewable escape
//!   hatch for a genuinely dynamic raw call (validated, otherwise a no-op);
//! - [`edge_proxy`]: `#[buswarden::edge_proxy]`, the HTTP ingress's
//!   forwarding fn, granted the `[edge]` table's open ports by gencreds;
//! - [`Connector`]: configuration, `connect`, `serve`, raw calls;
//! - [`context`]: the certified caller and the actor/baggage headers that
//!   flow from an inbound request to the calls made while handling it;
//! - [`wire`]: how requests and responses are encoded on NATS;
//! - [`token`]: actor tokens: the pinned issuers, their JWKS, a strict JWT
//!   reader and signature check;
//! - [`claims`]: required-claims expressions (`buswarden-claims`);
//! - [`actor`]: actor tokens verified against access.token.core's keys, and
//!   required claims enforced before a handler runs ([`Connector::actor`]).
//!
//! Modules: [`config`] (code and environment settings), [`creds`] (the
//! `.creds` file and the per-connect auth callback), [`connector`] (the live
//! connection, pending calls, reply dispatch), [`call`] (unicast, multicast,
//! raw calls), `arena` (where outgoing messages and subjects are written),
//! `pump` (who reads the reply subscription), `serve`
//! (endpoints and certified caller identity), [`event`]
//! (triggers and hooks), [`error`], [`method`], [`id`].

#![forbid(unsafe_code)]

pub mod actor;
mod arena;
pub mod call;
pub mod config;
pub mod connector;
pub mod context;
pub mod creds;
pub mod error;
pub mod event;
mod frag;
pub mod id;
pub mod method;
mod pump;
mod ratelimit;
pub mod record;
pub(crate) mod serve;
pub mod token;
pub mod wire;

#[doc(hidden)]
pub mod __private;

/// Required-claims expressions and the claims of a verified actor.
pub use buswarden_claims as claims;
pub use buswarden_macros::{api, claims_check, edge_proxy, grant};
pub use call::{RawCall, RawMulticast};
pub use config::{Config, Credentials};
pub use connector::{Connector, Stats};
pub use error::Error;
pub use method::Method;
pub use wire::{Request, Response};

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
