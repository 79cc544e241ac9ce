//! The command line, as clap derive structs. Shell completions, the man
//! page and docs/busop.md are generated from these definitions, so the
//! three cannot drift from what the binary accepts.

use crate::report::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// busop: the buswarden operator tool.
///
/// Stands up a NATS deployment in operator mode, shows who may call what
/// (trust-root grants first), reviews grant changes, and revokes, rotates
/// and pushes account JWTs. Scriptable: `--format json` on every command,
/// no prompts. Exit status: 0 fine, 1 findings, 2 error.
#[derive(Debug, Parser)]
#[command(name = "busop", version, max_term_width = 100)]
pub struct Cli {
    /// The busop setup folder (written by `busop init`).
    #[arg(long, global = true, env = "BUSOP_DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Output format: human text, JSON (stable, documented), or Markdown (diff).
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// busop's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an operator, system and application accounts, keys, and a nats-server config.
    Init(InitArgs),
    /// Decode .creds files and JWTs: claims, chain, expiry, revocation, grants by verb.
    Inspect(InspectArgs),
    /// Every service's creds or nats.acl in one view; exit 1 when a grant violates the policy.
    Audit(AuditArgs),
    /// Grant changes per service between two files, folders or git revisions (`git:REV:path`).
    Diff(DiffArgs),
    /// Why was this denied? The service and deploy behind a permissions violation, the nearest rule, and whether its code calls it.
    Why(WhyArgs),
    /// Revoke user keys, every user of a deploy, or a signing key with all its users.
    Revoke(RevokeArgs),
    /// Rotate the account signing key or the operator signing key.
    Rotate(RotateArgs),
    /// Push account JWTs to every nats-server over $SYS and confirm what each applied.
    Push(PushArgs),
    /// Drop revocations whose revoked JWTs have all expired.
    Prune(PruneArgs),
    /// Take over an nsc store: operator, accounts and keys.
    ImportNsc(ImportNscArgs),
    /// Make account changes through an account server (one writer).
    AccountServer(AccountServerArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

/// `busop init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create the setup in (default: --dir).
    pub path: Option<PathBuf>,
    /// Operator name.
    #[arg(long, default_value = "buswarden")]
    pub operator: String,
    /// Application account name.
    #[arg(long, default_value = "APP")]
    pub account: String,
    /// System account name.
    #[arg(long, default_value = "SYS")]
    pub system_account: String,
    /// `listen` address of the generated nats-server config.
    #[arg(long, default_value = "0.0.0.0:4222")]
    pub listen: String,
    /// Use the account server as URL resolver (e.g. http://accounts:9090/jwt/v1/accounts/) instead of the full resolver.
    #[arg(long, value_name = "URL")]
    pub url_resolver: Option<String>,
    /// nats-server client URL `busop push` reaches (repeat for every server).
    #[arg(long = "server", value_name = "URL")]
    pub servers: Vec<String>,
    /// Replace an existing setup (its keys/, accounts/ and creds/ are moved aside to *.replaced-<time>).
    #[arg(long)]
    pub force: bool,
}

/// `busop inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// .creds files and JWT files (operator, account, user); the issuers among them or in the setup (--dir) verify the chain.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Warn about credentials expiring within this time.
    #[arg(long, default_value = "3d", value_parser = humantime::parse_duration)]
    pub soon: std::time::Duration,
    /// Do not verify against the setup's operator and account JWTs (--dir).
    #[arg(long)]
    pub no_setup: bool,
}

/// `busop audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Folder with *.creds or nats.acl files (searched recursively), or one file.
    pub path: PathBuf,
    /// The policy file (default: PATH/buswarden.toml when present).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Report credentials expiring within this time.
    #[arg(long, default_value = "3d", value_parser = humantime::parse_duration)]
    pub soon: std::time::Duration,
}

/// `busop diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Old grants: a nats.acl or .creds file, a folder, or `git:REV:path`.
    pub old: String,
    /// New grants: same forms.
    pub new: String,
    /// Exit 1 when anything changed (like `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
    /// The old side's reachability model (`gencreds graph --format json`; a file or `git:REV:path`).
    #[arg(long, requires = "new_model")]
    pub old_model: Option<String>,
    /// The new side's reachability model (same forms).
    #[arg(long, requires = "old_model")]
    pub new_model: Option<String>,
}

/// `busop why`.
#[derive(Debug, Args)]
pub struct WhyArgs {
    /// A nats-server log line (`… Publish Violation - Subject "…"`), or `-` to answer every violation line on standard input.
    pub line: Option<String>,
    /// The refused subject (instead of a log line).
    #[arg(long)]
    pub subject: Option<String>,
    /// The user's public key (`U…`), with --subject or to override the line's.
    #[arg(long)]
    pub user: Option<String>,
    /// With --subject: the refused operation was a subscription.
    #[arg(long)]
    pub subscribe: bool,
    /// The deploy's `.creds` and `nats.acl` files or folders (searched recursively; repeat).
    #[arg(
        long = "grants",
        value_name = "PATH",
        required_unless_present = "account_server"
    )]
    pub grants: Vec<PathBuf>,
    /// Also ask the setup's account server (busop account-server URL) which user it signed, from its audit log.
    #[arg(long)]
    pub account_server: bool,
    /// The reachability model (`gencreds graph --format json`): call sites.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// The service, when the user is in no `.creds` file.
    #[arg(long)]
    pub service: Option<String>,
}

/// Where account changes go, shared by revoke, rotate, push and prune.
#[derive(Debug, Args, Clone, Default)]
pub struct LiveArgs {
    /// nats-server client URL (repeat); default: the servers in busop.toml.
    #[arg(long = "server", value_name = "URL")]
    pub servers: Vec<String>,
    /// How long to wait for the servers' replies.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Change the local account JWT only; push later with `busop push`.
    #[arg(long)]
    pub no_push: bool,
}

/// `busop revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// User public keys (U…) to revoke.
    #[arg(long = "user", value_name = "U…")]
    pub users: Vec<String>,
    /// Revoke every user of this deploy (the `deploy:<ID>` tag).
    #[arg(long, value_name = "ID")]
    pub deploy: Option<String>,
    /// Remove these account signing keys (A…): every user they signed is cut off
    /// (per-deploy signing keys make this "revoke the whole deploy").
    #[arg(long = "signing-key", value_name = "A…")]
    pub signing_keys: Vec<String>,
    /// Where to find the deploy's users (.creds or JWT files, searched recursively).
    #[arg(long, value_name = "DIR")]
    pub creds: Option<PathBuf>,
    /// The account (name or key; default: the setup's application account).
    #[arg(long)]
    pub account: Option<String>,
    /// How to reach the servers.
    #[command(flatten)]
    pub live: LiveArgs,
}

/// `busop rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// What to rotate.
    #[command(subcommand)]
    pub what: RotateWhat,
}

/// What `busop rotate` rotates.
#[derive(Debug, Subcommand)]
pub enum RotateWhat {
    /// A new account signing key; users signed by a removed key are cut off.
    AccountKey {
        /// The account (name or key; default: the setup's application account).
        #[arg(long)]
        account: Option<String>,
        /// Remove the previous signing keys now (their users' connections close).
        #[arg(long)]
        remove_old: bool,
        /// How to reach the servers.
        #[command(flatten)]
        live: LiveArgs,
    },
    /// A new operator signing key; every account re-signed. Prints the ordered steps.
    OperatorKey {
        /// Where to read the live account JWTs from (their revocations are merged first).
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Check each server against the ordered steps of an operator key rotation.
    Check {
        /// How to reach the servers.
        #[command(flatten)]
        live: LiveArgs,
    },
}

/// `busop push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Accounts to push (names or keys; default: every account).
    #[arg(long = "account")]
    pub accounts: Vec<String>,
    /// How to reach the servers.
    #[command(flatten)]
    pub live: LiveArgs,
}

/// `busop prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The account (name or key; default: the setup's application account).
    #[arg(long)]
    pub account: Option<String>,
    /// Also prune revocations busop has no expiry record for, once older than this
    /// (only safe when every user JWT expires within it).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_lifetime: Option<std::time::Duration>,
    /// How to reach the servers.
    #[command(flatten)]
    pub live: LiveArgs,
}

/// `busop import-nsc`.
#[derive(Debug, Args)]
pub struct ImportNscArgs {
    /// The nsc store folder (holding <operator>/<operator>.jwt and <operator>/accounts/; nsc's default is ~/.local/share/nats/nsc/stores), or one operator's folder.
    pub store: PathBuf,
    /// The nsc keys folder (holding keys/<Kind>/<2 chars>/<pub>.nk and creds/); default: NKEYS_PATH, else $XDG_DATA_HOME/nsc/keys, else ~/.local/share/nsc/keys.
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Operator name in the store (default: the only one).
    #[arg(long)]
    pub operator: Option<String>,
    /// The application account (default: the only non-system account).
    #[arg(long)]
    pub account: Option<String>,
    /// `listen` address of the generated nats-server config.
    #[arg(long, default_value = "0.0.0.0:4222")]
    pub listen: String,
    /// nats-server client URL `busop push` reaches (repeat).
    #[arg(long = "server", value_name = "URL")]
    pub servers: Vec<String>,
    /// Replace an existing setup.
    #[arg(long)]
    pub force: bool,
}

/// `busop account-server`.
#[derive(Debug, Args)]
pub struct AccountServerArgs {
    /// The account server's base URL (http://host:port or https://host:port); `none` to stop using one.
    pub url: String,
    /// PEM file of the CA that signed the account server's TLS certificate (needed for https).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// `busop completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}
