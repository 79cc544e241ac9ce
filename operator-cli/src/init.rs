//! `busop init [DIR]`: a new deployment's trust chain and server config.
//!
//! - the operator's identity key (keep it offline after init) and an
//!   operator signing key, with `strict_signing_key_usage` on, so only the
//!   signing key signs accounts;
//! - the system account with its signing key, and a system user's creds;
//! - an application account with its signing key and default permissions
//!   that deny `>`: a user signed without permissions of its own gets nothing;
//! - `operator.jwt`, `accounts/*.jwt`, `nats-server.conf`, `busop.toml`,
//!   a `.gitignore` for the secrets; keys and creds 0600 in 0700 folders.
//!
//! It refuses to overwrite an existing setup unless `--force`.

use crate::error::{BusopError, Result};
use crate::report::Report;
use crate::server_config;
use crate::setup::{NatsServerSettings, SETUP_FILE, SETUP_VERSION, Setup, SetupFile, write_file};
use buswarden_creds::claims::{AccountClaims, OperatorClaims, UserClaims};
use buswarden_creds::creds::format_user_config;
use buswarden_creds::jwt;
use buswarden_creds::keyfile;
use buswarden_creds::{KeyKind, KeyPair};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The `.gitignore` init writes.
pub const GITIGNORE: &str = "# Written by busop init: seeds and credentials never go into git.\nkeys/\ncreds/\njwt/\nkeys.replaced-*/\ncreds.replaced-*/\n*.nk\n*.creds\n";

/// Options of `busop init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The folder.
    pub dir: PathBuf,
    /// Operator name.
    pub operator: String,
    /// Application account name.
    pub account: String,
    /// System account name.
    pub system_account: String,
    /// `listen` of the server config.
    pub listen: String,
    /// URL resolver instead of the full resolver.
    pub url_resolver: Option<String>,
    /// Servers `busop push` reaches.
    pub servers: Vec<String>,
    /// Replace an existing setup.
    pub force: bool,
}

/// What init made (public keys and paths only).
#[derive(Debug, Clone, Serialize)]
pub struct InitSummary {
    /// The folder.
    pub dir: PathBuf,
    /// Operator name.
    pub operator: String,
    /// Operator identity key.
    pub operator_key: String,
    /// Operator signing key.
    pub operator_signing_key: String,
    /// System account key.
    pub system_account: String,
    /// System account signing key.
    pub system_account_signing_key: String,
    /// The system user.
    pub system_user: String,
    /// Application account name.
    pub account: String,
    /// Application account key.
    pub account_key: String,
    /// Application account signing key.
    pub account_signing_key: String,
    /// Files written.
    pub files: Vec<PathBuf>,
}

fn encode<N: buswarden_creds::claims::Payload>(
    claims: &mut buswarden_creds::claims::Claims<N>,
    signer: &KeyPair,
    what: &str,
) -> Result<String> {
    jwt::encode(claims, signer, jwt::now()).map_err(|source| BusopError::Encode {
        what: what.to_string(),
        source,
    })
}

fn check_existing(dir: &Path) -> Result<()> {
    for name in [SETUP_FILE, "operator.jwt", "keys", "accounts", "creds"] {
        let p = dir.join(name);
        if p.exists() {
            return Err(BusopError::Exists { path: p });
        }
    }
    Ok(())
}

/// Runs `busop init`.
pub fn run(opts: &InitOptions) -> Result<Report> {
    let dir = std::path::absolute(&opts.dir).map_err(BusopError::io("resolving", &opts.dir))?;
    if !opts.force {
        check_existing(&dir)?;
    } else {
        // Never lose a seed: the replaced setup's folders are kept aside.
        let stamp = jwt::now();
        for sub in ["keys", "accounts", "creds"] {
            let p = dir.join(sub);
            if p.exists() {
                let aside = dir.join(format!("{sub}.replaced-{stamp}"));
                std::fs::rename(&p, &aside).map_err(BusopError::io("moving aside", &p))?;
            }
        }
    }
    if opts.account == opts.system_account {
        return Err(BusopError::Usage(
            "the application account and the system account need different names".into(),
        ));
    }
    keyfile::create_private_dir(&dir)?;
    let setup = Setup {
        dir: dir.clone(),
        file: SetupFile {
            version: SETUP_VERSION,
            default_account: opts.account.clone(),
            servers: opts.servers.clone(),
            account_server: None,
            nats_server: NatsServerSettings {
                listen: opts.listen.clone(),
                url_resolver: opts.url_resolver.clone(),
            },
        },
    };
    let mut files = Vec::new();
    let mut keep = |kp: &KeyPair| -> Result<()> {
        files.push(setup.store_key(kp)?);
        Ok(())
    };
    let op = KeyPair::generate(KeyKind::Operator);
    let op_sk = KeyPair::generate(KeyKind::Operator);
    let sys = KeyPair::generate(KeyKind::Account);
    let sys_sk = KeyPair::generate(KeyKind::Account);
    let sys_user = KeyPair::generate(KeyKind::User);
    let app = KeyPair::generate(KeyKind::Account);
    let app_sk = KeyPair::generate(KeyKind::Account);
    for kp in [&op, &op_sk, &sys, &sys_sk, &app, &app_sk] {
        keep(kp)?;
    }

    let mut op_claims = OperatorClaims::new_operator(op.public_key());
    op_claims.data.name = opts.operator.clone();
    op_claims.nats.signing_keys = vec![op_sk.public_key().to_string()];
    op_claims.nats.system_account = sys.public_key().to_string();
    op_claims.nats.strict_signing_key_usage = true;
    if let Some(url) = &opts.url_resolver {
        op_claims.nats.account_server_url = url.clone();
    }
    let op_jwt = encode(&mut op_claims, &op, "the operator JWT")?;
    setup.write_operator(&op_jwt)?;

    let mut sys_claims = AccountClaims::new_account(sys.public_key());
    sys_claims.data.name = opts.system_account.clone();
    sys_claims.nats.signing_keys.add_plain(sys_sk.public_key());
    let sys_jwt = encode(&mut sys_claims, &op_sk, "the system account JWT")?;
    files.push(setup.write_account(&opts.system_account, &sys_jwt)?);

    let mut app_claims = AccountClaims::new_account(app.public_key());
    app_claims.data.name = opts.account.clone();
    app_claims.nats.signing_keys.add_plain(app_sk.public_key());
    let deny_all = vec![">".to_string()];
    app_claims.nats.default_permissions.publish.deny = deny_all.clone();
    app_claims.nats.default_permissions.subscribe.deny = deny_all;
    let app_jwt = encode(&mut app_claims, &op_sk, "the application account JWT")?;
    files.push(setup.write_account(&opts.account, &app_jwt)?);

    let mut user = UserClaims::new_user(sys_user.public_key());
    user.data.name = "sys".into();
    user.nats.issuer_account = sys.public_key().to_string();
    user.nats.limits.publish.allow = vec![">".into()];
    user.nats.limits.subscribe.allow = vec![">".into()];
    let user_jwt = encode(&mut user, &sys_sk, "the system user JWT")?;
    let creds = format_user_config(&user_jwt, &sys_user.seed());
    keyfile::create_private_dir(&dir.join("creds"))?;
    write_file(&setup.sys_creds_path(), &creds)?;
    files.push(setup.sys_creds_path());

    setup.save()?;
    files.push(dir.join(SETUP_FILE));
    files.insert(0, setup.operator_path());
    server_config::write(&setup)?;
    files.push(dir.join(server_config::CONFIG_FILE));
    write_file(&dir.join(".gitignore"), GITIGNORE.as_bytes())?;
    files.push(dir.join(".gitignore"));

    let summary = InitSummary {
        dir: dir.clone(),
        operator: opts.operator.clone(),
        operator_key: op.public_key().into(),
        operator_signing_key: op_sk.public_key().into(),
        system_account: sys.public_key().into(),
        system_account_signing_key: sys_sk.public_key().into(),
        system_user: sys_user.public_key().into(),
        account: opts.account.clone(),
        account_key: app.public_key().into(),
        account_signing_key: app_sk.public_key().into(),
        files,
    };
    let mut h = String::new();
    let _ = writeln!(h, "busop setup in {}", dir.display());
    let _ = writeln!(
        h,
        "  operator        {} {}",
        summary.operator, summary.operator_key
    );
    let _ = writeln!(
        h,
        "    signing key   {} (strict signing key usage on)",
        summary.operator_signing_key
    );
    let _ = writeln!(
        h,
        "  system account  {} {}",
        opts.system_account, summary.system_account
    );
    let _ = writeln!(
        h,
        "    system user   {} -> creds/sys.creds",
        summary.system_user
    );
    let _ = writeln!(
        h,
        "  account         {} {}",
        summary.account, summary.account_key
    );
    let _ = writeln!(
        h,
        "    signing key   {} (default permissions deny >)",
        summary.account_signing_key
    );
    let _ = writeln!(
        h,
        "  server config   {}",
        dir.join(server_config::CONFIG_FILE).display()
    );
    let _ = writeln!(
        h,
        "Keep {} (the operator identity seed) offline: only the signing key is needed day to day.",
        crate::setup::key_path(&setup.keys_dir(), op.public_key()).display()
    );
    Ok(Report::new(h, summary))
}
