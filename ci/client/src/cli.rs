//! The command line: `keygen`, `users-request`, `auth` and `write-creds`,
//! the four steps `ci/templates/deploy.sh` strings together around `curl`.
//! Exit status: 0 done, 2 error (one line on stderr). No command prints a
//! seed.

use crate::{CiError, answer, users};
use buswarden_creds::keyfile;
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::request_auth;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// The environment variable that may hold the CI request key's seed.
pub const CI_KEY_ENV: &str = "BUSWARDEN_CI_KEY";

/// The environment variable that may hold the account server's URL.
pub const SERVER_ENV: &str = "BUSWARDEN_ACCOUNT_SERVER";

/// buswarden-ci: the CI side of a deploy through the account server.
///
/// User keys are made here and never leave this machine; the account server
/// gets public keys and the committed rule sets, and signs. Pair it with
/// curl: see ci/templates/deploy.sh.
#[derive(Debug, Parser)]
#[command(name = "buswarden-ci", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a request key (a user nkey, 0600 file) and print its public key, to list in the account server's config.
    Keygen {
        /// Where to write the seed.
        file: PathBuf,
    },
    /// Make a user key per committed nats.acl under ROOT and print the body of POST /v1/deploys/<id>/users.
    UsersRequest {
        /// The tree holding the services' nats.acl files.
        #[arg(default_value = ".")]
        root: PathBuf,
        /// Folder for the users' seeds (0700; one <hostname>.nk each). Keep it on this machine.
        #[arg(long)]
        keys: PathBuf,
        /// Lifetime of the users (7d, 12h); default: the account server's.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Print the Authorization header value for one request to the account server.
    Auth {
        /// The HTTP method.
        method: String,
        /// The path and query, e.g. /v1/deploys.
        path: String,
        /// The request body (a file); none for an empty body.
        #[arg(long)]
        body: Option<PathBuf>,
        /// The request key's seed file; default: $BUSWARDEN_CI_KEY.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The account server's URL the request goes to (its host:port is signed, so the request is valid there only); default: $BUSWARDEN_ACCOUNT_SERVER.
        #[arg(long)]
        server: Option<String>,
    },
    /// Check the account server's answer against the keys made by users-request and write <hostname>_nats.creds files.
    WriteCreds {
        /// The answer of POST /v1/deploys/<id>/users (a file).
        #[arg(long)]
        response: PathBuf,
        /// The folder users-request wrote the seeds to.
        #[arg(long)]
        keys: PathBuf,
        /// Where to write the .creds files (0700).
        #[arg(long)]
        out: PathBuf,
        /// The plane the account server fills in (for the grants block).
        #[arg(long, default_value = "microbus")]
        plane: String,
    },
}

fn request_key(file: Option<&PathBuf>) -> Result<KeyPair, CiError> {
    Ok(match file {
        Some(f) => keyfile::load_key_file(f, Some(KeyKind::User))?,
        None => keyfile::load_key_env(CI_KEY_ENV, Some(KeyKind::User))?,
    })
}

fn read(path: &PathBuf) -> Result<Vec<u8>, CiError> {
    std::fs::read(path).map_err(|source| CiError::Read {
        path: path.clone(),
        source,
    })
}

/// Runs one command; what it prints goes to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen { file } => {
            let key = keyfile::generate_key_file(KeyKind::User, &file)?;
            writeln!(out, "{}", key.public_key())?;
        }
        Command::UsersRequest {
            root,
            keys,
            expires,
        } => {
            let body = users::prepare(&root, &keys, expires.as_deref())?;
            writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
        }
        Command::Auth {
            method,
            path,
            body,
            key,
            server,
        } => {
            let server = match server {
                Some(s) => s,
                None => std::env::var(SERVER_ENV).map_err(|_| {
                    anyhow::anyhow!("the account server's URL: pass --server or set {SERVER_ENV}")
                })?,
            };
            let aud = request_auth::audience(&server)?;
            let key = request_key(key.as_ref())?;
            let body = body.as_ref().map(read).transpose()?.unwrap_or_default();
            let header = request_auth::sign_now(&key, &aud, &method, &path, &body)?;
            writeln!(out, "{header}")?;
        }
        Command::WriteCreds {
            response,
            keys,
            out: dir,
            plane,
        } => {
            let written = answer::write_creds(&response, &keys, &dir, &plane)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&written)?)?;
        }
    }
    Ok(())
}
