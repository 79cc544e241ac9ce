//! The one error type of busop's library: every distinct failure is its own
//! variant, each names the file, server or revision it is about, and none
//! ever carries seed text (seeds are only read through `buswarden-creds`,
//! whose errors never show them).

use buswarden_creds::jwt::JwtError;
use buswarden_creds::{CredsError, EncodeError, KeyFileError};
use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusopError {
    /// Reading or writing a file or folder failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// What busop was doing.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not UTF-8 text.
    #[error("{path}: not a text file (not UTF-8)")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// A file is larger than busop reads.
    #[error("{path}: {len} bytes is too large for a credentials, JWT or ACL file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A file holds no JWT, credentials or ACL busop knows.
    #[error("{path}: {what}")]
    Unrecognized {
        /// The file.
        path: PathBuf,
        /// What it looks like instead.
        what: String,
    },
    /// A JWT in a file is malformed, tampered with or of the wrong kind.
    #[error("{path}: {source}")]
    Jwt {
        /// The file.
        path: PathBuf,
        /// Why the token was refused.
        source: JwtError,
    },
    /// A `.creds` file is malformed.
    #[error("{path}: {source}")]
    Creds {
        /// The file.
        path: PathBuf,
        /// Why.
        source: CredsError,
    },
    /// A `.creds` file whose seed is not the key its JWT was issued to.
    #[error(
        "{path}: the seed in this .creds file belongs to {seed_key}, but its JWT was issued to {jwt_subject}"
    )]
    SeedMismatch {
        /// The file.
        path: PathBuf,
        /// Public key of the seed.
        seed_key: String,
        /// The JWT's subject.
        jwt_subject: String,
    },
    /// A `nats.acl` file is malformed.
    #[error("{path}: {source}")]
    Acl {
        /// The file.
        path: PathBuf,
        /// Why.
        source: buswarden_rules::acl::AclError,
    },
    /// `buswarden.toml` is malformed.
    #[error("{path}: {source}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// Why (boxed: the policy error carries its location and text).
        source: Box<buswarden_rules::policy::PolicyError>,
    },
    /// A key file could not be read or written.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// Signing a JWT failed.
    #[error("signing {what}: {source}")]
    Encode {
        /// What was being signed.
        what: String,
        /// Why.
        source: EncodeError,
    },
    /// `busop init` found an existing setup.
    #[error(
        "{path} already exists: refusing to overwrite an existing setup (use --force to replace it)"
    )]
    Exists {
        /// The file found.
        path: PathBuf,
    },
    /// No busop setup in the folder.
    #[error("{dir}: no busop setup here (no busop.toml); run `busop init` or pass --dir")]
    NoSetup {
        /// The folder.
        dir: PathBuf,
    },
    /// `busop.toml` is malformed.
    #[error("{path}: {message}")]
    SetupFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An account name or key the setup does not know.
    #[error("no account {name:?} in this setup (known: {known})")]
    UnknownAccount {
        /// Name or key asked for.
        name: String,
        /// The accounts known.
        known: String,
    },
    /// No key file for a public key the command needs to sign with.
    #[error("no seed for {role} {key} under {dir} (is this the machine that holds it?)")]
    MissingKey {
        /// What the key is.
        role: String,
        /// Its public key.
        key: String,
        /// The keys folder searched.
        dir: PathBuf,
    },
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
    /// No NATS server to talk to.
    #[error("no nats-server URL: pass --server URL or list servers in busop.toml")]
    NoServers,
    /// Talking to a nats-server failed.
    #[error("nats-server {server}: {message}")]
    Nats {
        /// The server URL.
        server: String,
        /// What failed.
        message: String,
    },
    /// A server refused or did not confirm an account update.
    #[error("account update not confirmed: {0}")]
    NotConfirmed(String),
    /// A git command failed.
    #[error("git {args}: {message}")]
    Git {
        /// The arguments.
        args: String,
        /// git's message.
        message: String,
    },
    /// The account server answered with an error.
    #[error("account server {url}: HTTP {status}: {message}")]
    AccountServer {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's plain message.
        message: String,
    },
    /// The account server could not be reached.
    #[error("account server {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// An nsc store is incomplete or malformed.
    #[error("nsc store {path}: {message}")]
    NscStore {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl BusopError {
    /// An I/O error about `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BusopError {
        let path = path.into();
        move |source| BusopError::Io {
            action,
            path,
            source,
        }
    }
}

/// busop's result type.
pub type Result<T> = std::result::Result<T, BusopError>;
