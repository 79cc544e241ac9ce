//! `gencreds`: the buswarden analyzer. It reads a tree of Rust crates (never
//! running cargo), resolves every bus call each service's code makes, and
//! derives the exact NATS allow-list of each service (`nats.acl`), with the
//! call sites behind every rule.
//!
//! - [`workspace`]: crates, targets and dependency names from `Cargo.toml`;
//! - [`source`]: guarded, parallel parsing; [`lower`]: syn to [`ir`];
//! - [`index`]: modules and name resolution; [`eval`]: facts per body;
//! - [`analysis`]: services, grant scope, rules and provenance;
//! - [`diagnostic`], [`report`]: findings and their formats; [`cli`]: commands;
//! - [`sign`]: `gencreds sign`, credentials only from a tree that passes `check`;
//! - [`coverage`]: `gencreds coverage`, recorded runs checked against each `nats.acl`;
//! - [`synth`]: the synthetic workspace generator used by the benchmark;
//! - [`allocator`]: the allocator settings the binary and the benchmark run with;
//! - [`reach`]: the deploy's reachability model (`graph`, `surface`, `public-endpoint-unlisted`);
//! - [`graph`]: the model drawn as Graphviz DOT and as one self-contained HTML page.

#![forbid(unsafe_code)]

pub mod allocator;
pub mod analysis;
pub mod cache;
pub mod cli;
pub mod coverage;
pub mod diagnostic;
pub mod eval;
pub mod graph;
pub mod index;
pub mod ir;
pub mod lower;
pub mod reach;
pub mod report;
pub mod sign;
pub mod source;
pub mod synth;
pub mod workspace;

pub use analysis::{Analysis, Options, analyze};
pub use diagnostic::{Code, Diagnostic, Severity};
