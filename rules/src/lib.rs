//! `buswarden-rules`: THE definition of the Microbus subject layout and of
//! buswarden's NATS ACL rules. Pure: no I/O, no async.
//!
//! The analyzer derives allow-lists with it, the runtime puts messages on the
//! wire with it, the account server and `busop` validate and diff with it:
//! because the wire and the allow-list come from the same code, they cannot
//! drift.
//!
//! - [`hostname`]: hostname validation and flattening;
//! - [`route`]: methods, ports, endpoint routes, raw-call URLs;
//! - [`subject`]: request and reply subjects, encode and decode;
//! - [`pattern`]: NATS wildcard matching and covering;
//! - [`rule`]: `PUB`/`SUB` rules and rule sets with subsumption;
//! - [`derive`]: a service model to its rule set;
//! - [`acl`]: the `nats.acl` text format;
//! - [`naming`]: the names `#[buswarden::api]` generates (macro and analyzer);
//! - [`validate`]: the checks run on a rule set before it is signed;
//! - [`edge`]: the ingress's port firewall and the public endpoints (`[edge]`, `[public]`);
//! - [`diff`]: what changed between two rule sets;
//! - [`queue`]: the queue group a service may join and the `sub.allow` entries pinned to it;
//! - [`budget`]: the CONNECT line a rule set will produce, against the 4 KiB limit;
//! - [`policy`]: the `buswarden.toml` policy and its evaluation;
//! - [`reach`]: the deployment's reachability model (who may call which endpoint).

#![forbid(unsafe_code)]

pub mod acl;
pub mod budget;
pub mod derive;
pub mod diff;
pub mod edge;
pub mod hostname;
pub mod naming;
pub mod pattern;
pub mod policy;
pub mod queue;
pub mod reach;
pub mod route;
pub mod rule;
pub mod subject;
pub mod validate;

pub use derive::{Call, Dest, Endpoint, EventOut, Hook, ServiceModel, derive};
pub use hostname::{Hostname, HostnameError};
pub use route::{Method, Route, RouteError, Segment, Url};
pub use rule::{Rule, RuleError, RuleSet, Verb};
pub use subject::{Plane, Position, Trust};
