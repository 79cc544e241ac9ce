//! `busop`, the buswarden operator tool, as a library: the binary is a thin
//! `main` over [`run`], and tests call the same functions.
//!
//! Modules, one idea each:
//! - [`cli`]: the clap definitions (also the source of completions, man page, docs);
//! - [`setup`]: the operator's setup folder; [`server_config`]: `nats-server.conf`;
//! - [`artifact`]: reading `.creds`, JWT and `nats.acl` files; [`grants`]: a service's grants, classified;
//! - [`init`], [`inspect`], [`audit`], [`diff`] (with [`source`] for files, folders and git revisions);
//! - [`account_jwt`]: the one way an account JWT is re-signed (live read, revocations merged, later `iat`);
//! - [`sys`]: `$SYS` requests to every nats-server; [`push`], [`revoke`], [`rotate`], [`prune`];
//! - [`account_server`]: the account server's HTTP API, signed with `buswarden_creds::request_auth`;
//! - [`why`]: "why was this denied?", a permissions violation explained;
//! - [`nsc`]: `import-nsc`; [`reference`]: completions, man page, Markdown reference.

#![forbid(unsafe_code)]

pub mod account_jwt;
pub mod account_server;
pub mod artifact;
pub mod audit;
pub mod cli;
pub mod diff;
pub mod error;
pub mod grants;
pub mod init;
pub mod inspect;
pub mod nsc;
pub mod prune;
pub mod push;
pub mod reference;
pub mod report;
pub mod revoke;
pub mod rotate;
pub mod server_config;
pub mod setup;
pub mod source;
pub mod sys;
pub mod why;

pub use error::{BusopError, Result};
pub use report::{Format, Report};

use cli::{Cli, Command};

/// Runs a parsed command.
pub fn execute(cli: &Cli) -> Result<Report> {
    match &cli.command {
        Command::Init(a) => init::run(&init::InitOptions {
            dir: a.path.clone().unwrap_or_else(|| cli.dir.clone()),
            operator: a.operator.clone(),
            account: a.account.clone(),
            system_account: a.system_account.clone(),
            listen: a.listen.clone(),
            url_resolver: a.url_resolver.clone(),
            servers: a.servers.clone(),
            force: a.force,
        }),
        Command::Inspect(a) => {
            let issuers = if a.no_setup {
                Vec::new()
            } else {
                inspect::setup_issuers(&cli.dir)
            };
            inspect::run(&a.files, &issuers, a.soon)
        }
        Command::Audit(a) => audit::run(&a.path, a.policy.as_deref(), a.soon),
        Command::Diff(a) => diff::run(
            &a.old,
            &a.new,
            a.old_model.as_deref().zip(a.new_model.as_deref()),
            a.exit_code,
        ),
        Command::Why(a) => why::run(&why::WhyInput {
            line: a.line.as_deref(),
            subject: a.subject.as_deref(),
            user: a.user.as_deref(),
            service: a.service.as_deref(),
            subscribe: a.subscribe,
            grants: &a.grants,
            model: a.model.as_deref(),
            account_server: a.account_server.then_some(cli.dir.as_path()),
        }),
        Command::Revoke(a) => revoke::run(&cli.dir, a),
        Command::Rotate(a) => rotate::run(&cli.dir, a),
        Command::Push(a) => push::run(&cli.dir, &a.accounts, &a.live),
        Command::Prune(a) => prune::run(&cli.dir, a),
        Command::ImportNsc(a) => nsc::run(&cli.dir, a),
        Command::AccountServer(a) => account_server::configure(&cli.dir, &a.url, a.ca.as_deref()),
        Command::Completions(a) => Ok(reference::completions(a.shell)),
        Command::Man => reference::man(),
    }
}

/// What a run printed and its exit status.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status.
    pub code: u8,
}

/// Parses `args` (the first is the program name) and runs the command; the
/// binary prints what this returns.
pub fn run<I, T>(args: I) -> Outcome
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser as _;
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                report::EXIT_ERROR
            } else {
                0
            };
            let text = e.render().to_string();
            return if e.use_stderr() {
                Outcome {
                    stdout: String::new(),
                    stderr: text,
                    code,
                }
            } else {
                Outcome {
                    stdout: text,
                    stderr: String::new(),
                    code,
                }
            };
        }
    };
    let outcome = match execute(&cli) {
        Ok(report) => Outcome {
            stdout: report.render(cli.format),
            stderr: report.stderr.clone(),
            code: report.exit,
        },
        Err(e) => {
            let message = format!("busop: {e}\n");
            let stdout = if cli.format == Format::Json {
                format!("{}\n", serde_json::json!({ "error": e.to_string() }))
            } else {
                String::new()
            };
            Outcome {
                stdout,
                stderr: message,
                code: report::EXIT_ERROR,
            }
        }
    };
    Outcome {
        stdout: report::redact_seeds(&outcome.stdout).into_owned(),
        stderr: report::redact_seeds(&outcome.stderr).into_owned(),
        code: outcome.code,
    }
}
