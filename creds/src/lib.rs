//! `buswarden-creds`: what buswarden signs and how it is checked.
//!
//! - [`keys`]: nkeys (operator, account, user), seeds that never print and
//!   are wiped on drop;
//! - [`claims`]: the NATS JWT v2 claim model, byte-compatible with the Go
//!   library's JSON;
//! - [`jwt`]: encode, decode, verify (signature, issuer kinds, user against
//!   account, account against operator, revocations) and validate (time);
//! - [`creds`]: `.creds` files (the Go bytes plus a readable grants block)
//!   and a tolerant parser;
//! - [`keyfile`]: secrets on disk (0600 files, 0700 folders, atomic writes);
//! - [`connect`]: the CONNECT-line budget of nats-server's `max_control_line`;
//! - [`sign`]: the pipeline from each service's `nats.acl` to its
//!   `<hostname>_nats.creds`.

#![forbid(unsafe_code)]

// Enables ed25519-dalek's "fast" and "zeroize" features for nkeys (see Cargo.toml).
use ed25519_dalek as _;

pub mod claims;
pub mod connect;
pub mod creds;
pub mod gojson;
pub mod jwt;
pub mod keyfile;
pub mod keys;
pub mod request_auth;
pub mod sign;

pub use claims::{
    Account, AccountClaims, AccountLimits, AccountSigningKey, ClaimKind, Claims, ClaimsData,
    Operator, OperatorClaims, Permission, Permissions, SigningKeys, User, UserClaims,
    UserPermissionLimits, UserScope,
};
pub use creds::{CredsError, GrantsBlock, UserCredentials, format_creds, parse_creds};
pub use jwt::{AnyClaims, EncodeError, JwtError, decode, encode};
pub use keyfile::KeyFileError;
pub use keys::{KeyError, KeyKind, KeyPair, Seed};
pub use sign::{
    AccountRef, AccountSigner, DeployId, ServiceAcl, ServiceProblem, ServiceReport, SignError,
    SignOptions, SignReport,
};
