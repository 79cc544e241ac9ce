//! `buswarden-ci`: the CI machine's side of a deploy through the account
//! server. The account server signs; the CI machine makes the user keys (their
//! seeds never leave it), sends only public keys and rule sets, and writes
//! each service's `<hostname>_nats.creds` from the JWT it gets back. The
//! transport is left to `curl` in `ci/templates/deploy.sh` (TLS, proxies and
//! CA files as the pipeline already has them); this crate makes the request
//! bodies, signs them, and writes the files.
//!
//! - [`users`]: one fresh user key per committed `nats.acl`, and the body of
//!   `POST /v1/deploys/<id>/users`;
//! - [`answer`]: the server's answer checked against the keys we made, and
//!   the `.creds` files written with their readable grants block;
//! - [`cli`]: the command line.

#![forbid(unsafe_code)]

pub mod answer;
pub mod cli;
pub mod users;

use std::path::PathBuf;

/// Why a CI step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CiError {
    /// Finding or parsing the committed `nats.acl` files failed.
    #[error(transparent)]
    Discover(#[from] buswarden_creds::sign::SignError),
    /// A key file could not be read or written.
    #[error(transparent)]
    KeyFile(#[from] buswarden_creds::keyfile::KeyFileError),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The account server's answer is not the JSON we expect.
    #[error("the account server's answer ({path}) does not parse: {message}")]
    Answer {
        /// The file holding the answer.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The answer names a user key we did not make, or a JWT that is not for it.
    #[error("the account server's answer does not match the keys in {keys}: {message}")]
    Mismatch {
        /// The keys folder.
        keys: PathBuf,
        /// What does not match.
        message: String,
    },
    /// Signing the request failed.
    #[error(transparent)]
    Auth(#[from] buswarden_creds::request_auth::RequestAuthError),
    /// A bad `--expires`.
    #[error("bad --expires {value:?}: use a duration such as 7d or 12h")]
    Expires {
        /// What was given.
        value: String,
    },
}
