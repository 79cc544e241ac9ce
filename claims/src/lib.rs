//! `buswarden-claims`: the required-claims language of endpoints.
//!
//! An endpoint may demand claims of the verified actor, written in
//! Microbus's boolexp syntax: `roles.admin || (level > 5 && !guest)`. This
//! crate owns the language:
//! - [`parse`]: the grammar, with the places where Microbus's evaluator
//!   authorizes by accident refused at parse time (bare `t`/`inf`/`nan` are
//!   claim names, not literals; `!name == 'x'` must be parenthesised; quoted
//!   strings may hold operators; a regular expression must compile);
//! - [`expr`]: the syntax tree and its canonical printing
//!   (`parse(print(e)) == e`);
//! - [`claims`]: the claims of a verified token, flattened to dot paths
//!   (nested objects give `a.b`, an array gives one `key.member = true` per
//!   member), read straight from the token's JSON with serde;
//! - [`eval`]: the semantics, as the leaf tests both the macro-compiled
//!   endpoint checks and the reference interpreter ([`eval::interpret`]) call.
//!   A comparison with a missing or differently typed claim is false, for
//!   every operator, `!=` included; `=~` matches the whole claim.
//!
//! The `#[buswarden::api]` macro parses each `claims = "…"` literal with this
//! crate when the service is compiled and turns the tree into plain Rust
//! boolean code over the leaf tests, so a malformed expression fails the
//! build and nothing is interpreted per request.
#![forbid(unsafe_code)]

pub mod claims;
pub mod eval;
pub mod expr;
pub mod parse;

pub use claims::{Claims, ClaimsError, Value};

/// A compiled required-claims check: what an endpoint's `claims = "…"`
/// and `buswarden::claims_check!` compile to.
pub type Check = fn(&Claims) -> bool;
pub use eval::interpret;
pub use expr::{CmpOp, Expr, Operand};
pub use parse::{ParseError, compile_pattern, parse};
/// The regular-expression type `=~` patterns compile to.
pub use regex::Regex;
