//! `gencreds sign`: per-deploy user credentials for every service, but only
//! from a tree whose committed `nats.acl` files are true to code.
//!
//! The command runs the same comparison as `check` first and refuses on any
//! error finding (drift, a missing file, an unresolved call, a policy
//! violation); only then does it hand each service's rule set to the creds
//! crate's signing pipeline, which validates every rule for its hostname,
//! checks the CONNECT budget and writes `<hostname>_nats.creds` files (0600,
//! in a 0700 folder).

use crate::analysis::Analysis;
use crate::cli::{EXIT_FINDINGS, EXIT_OK, compare};
use crate::report::{self, Format};
use buswarden_creds::sign::{
    self, AccountRef, AccountSigner, DeployId, ServiceAcl, SignError, SignOptions,
};
use buswarden_rules::Plane;
use clap::Args;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

/// `sign` options.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The tree to analyse and sign.
    #[arg(default_value = ".")]
    pub root: PathBuf,
    /// The account's key file (its identity key or one of its signing keys),
    /// readable by its owner only (a file group or others may read is
    /// refused: chmod 600). Without it, the seed is read from the environment
    /// variable BUSWARDEN_SIGNING_KEY.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Where to write `<hostname>_nats.creds` (created 0700).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The account, as its public key (`A…`) or its JWT, required when the
    /// key is one of the account's signing keys.
    #[arg(long, value_name = "A")]
    pub account: Option<String>,
    /// The plane filled in for `{{plane}}`.
    #[arg(long, default_value = "microbus")]
    pub plane: String,
    /// How long the credentials live (`7d`, `12h`, `90m`, or `never`).
    #[arg(long, default_value = "7d")]
    pub expires: String,
    /// The deploy id, carried as the tag `deploy:<id>` (default: from the time).
    #[arg(long, value_name = "ID")]
    pub deploy: Option<String>,
    /// The servers' `max_control_line`, in bytes.
    #[arg(long, default_value_t = 4096)]
    pub max_control_line: usize,
    /// Output format (human or json).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

fn options(a: &SignArgs) -> anyhow::Result<SignOptions> {
    let mut opts = SignOptions::new();
    opts.plane = Plane::parse(&a.plane)?;
    opts.expires = sign::parse_expires(&a.expires)?;
    if let Some(id) = &a.deploy {
        opts.deploy = DeployId::parse(id)?;
    }
    opts.max_control_line = a.max_control_line;
    Ok(opts)
}

/// Runs `gencreds sign` over an analysis already loaded from `a.root`.
pub fn run(
    a: &SignArgs,
    an: &Analysis,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<i32> {
    // Arguments first: a typo should not wait for the analysis verdict.
    let opts = options(a)?;
    let key = sign::load_signing_key(a.signing_key.as_deref())?;
    let account = a.account.as_deref().map(AccountRef::parse).transpose()?;
    let signer = AccountSigner::new(key, account)?;

    let comparison = compare(an);
    if comparison.has_errors() {
        out.write_all(comparison.diffs.as_bytes())?;
        err.write_all(report::human_all(&comparison.diags).as_bytes())?;
        writeln!(
            err,
            "gencreds sign: refused: the tree must pass `gencreds check` first; nothing was signed"
        )?;
        return Ok(EXIT_FINDINGS);
    }
    if an.services.is_empty() {
        anyhow::bail!("no service crate found under {}", a.root.display());
    }
    let services: Vec<ServiceAcl> = an
        .services
        .iter()
        .map(|s| ServiceAcl {
            path: s.acl_abs.clone(),
            hostname: s.model.hostname.clone(),
            rules: s.rules.clone(),
        })
        .collect();
    let report = match sign::sign_services(&services, &a.out, &signer, &opts) {
        Ok(r) => r,
        Err(SignError::Refused(problems)) => {
            for p in &problems {
                writeln!(err, "gencreds sign: {p}")?;
            }
            writeln!(err, "gencreds sign: refused; nothing was written")?;
            return Ok(EXIT_FINDINGS);
        }
        Err(e) => return Err(e.into()),
    };
    // Warnings (trust-root grants without a policy file) still show.
    err.write_all(report::human_all(&comparison.diags).as_bytes())?;
    match a.format {
        Format::Json | Format::Sarif => {
            out.write_all(report::to_text(&serde_json::to_value(&report)?).as_bytes())?
        }
        Format::Human => {
            let mut text = String::new();
            for s in &report.services {
                let _ = writeln!(
                    text,
                    "{} -> {} (user {}, {} PUB / {} SUB, expires {})",
                    s.hostname,
                    s.path.display(),
                    s.user,
                    s.pub_rules,
                    s.sub_rules,
                    if s.expires == 0 {
                        "never".to_string()
                    } else {
                        format!("at unix {}", s.expires)
                    },
                );
                for d in &s.danger_grants {
                    let _ = writeln!(text, "    danger: {d}");
                }
            }
            let _ = writeln!(
                text,
                "gencreds sign: {} service(s), deploy {}, plane {}, account {}",
                report.services.len(),
                report.deploy,
                report.plane,
                report.account
            );
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(EXIT_OK)
}
