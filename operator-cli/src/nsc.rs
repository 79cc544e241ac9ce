//! `busop import-nsc STORE`: take over an nsc store without re-keying.
//!
//! nsc keeps JWTs in `<store>/<operator>/<operator>.jwt` and
//! `<store>/<operator>/accounts/<account>/<account>.jwt`, seeds under
//! `<keys>/keys/<Kind>/<2 chars>/<pub>.nk` (the two characters after the
//! kind prefix) and user creds under `<keys>/creds/<operator>/<account>/`.
//! busop copies the JWTs, the seeds it finds for the operator and accounts
//! (checking each seed is the key its name says), the system user's creds
//! (or mints a new system user when only the system account's key is
//! there), and writes its own setup: `busop.toml`, `nats-server.conf`,
//! `.gitignore`. Keys it cannot find are listed, never invented.

use crate::cli::ImportNscArgs;
use crate::error::{BusopError, Result};
use crate::init::GITIGNORE;
use crate::report::Report;
use crate::server_config;
use crate::setup::{
    NatsServerSettings, SETUP_FILE, SETUP_VERSION, Setup, SetupFile, key_path, write_file,
};
use buswarden_creds::creds::format_user_config;
use buswarden_creds::jwt;
use buswarden_creds::keyfile;
use buswarden_creds::{AccountClaims, KeyKind, KeyPair, OperatorClaims, UserClaims};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A key busop looked for.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// What the key is.
    pub role: String,
    /// Public key.
    pub key: String,
    /// Whether its seed was found and copied.
    pub imported: bool,
}

fn nsc_err(path: &Path, message: impl Into<String>) -> BusopError {
    BusopError::NscStore {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_jwt(path: &Path) -> Result<String> {
    Ok(crate::artifact::read_text(path)?.trim().to_string())
}

/// The operator folder in `store` (the store root or the folder itself).
fn operator_dir(store: &Path, name: Option<&str>) -> Result<PathBuf> {
    let own = store
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if store.join(format!("{own}.jwt")).is_file() && name.is_none_or(|n| n == own) {
        return Ok(store.to_path_buf());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(store).map_err(BusopError::io("listing", store))? {
        let entry = entry.map_err(BusopError::io("listing", store))?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if entry.path().join(format!("{n}.jwt")).is_file() && name.is_none_or(|w| w == n) {
            found.push(entry.path());
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(nsc_err(
            store,
            match name {
                Some(n) => format!("no operator {n} (expected {n}/{n}.jwt)"),
                None => "no operator found (expected <operator>/<operator>.jwt)".into(),
            },
        )),
        _ => Err(nsc_err(
            store,
            "several operators: pick one with --operator",
        )),
    }
}

/// nsc's keys folder: `NKEYS_PATH`, else `$XDG_DATA_HOME/nsc/keys`, else
/// `~/.local/share/nsc/keys` (as nsc's `store.GetKeysDir` computes it).
fn default_keys_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("NKEYS_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".local/share")
        });
    data.join("nsc/keys")
}

/// Runs `busop import-nsc`.
pub fn run(dir: &Path, args: &ImportNscArgs) -> Result<Report> {
    let op_dir = operator_dir(&args.store, args.operator.as_deref())?;
    let op_name = op_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let op_path = op_dir.join(format!("{op_name}.jwt"));
    let op_token = read_jwt(&op_path)?;
    let op: OperatorClaims = jwt::decode_operator(&op_token).map_err(|source| BusopError::Jwt {
        path: op_path.clone(),
        source,
    })?;
    let nkeys_root = args.keys.clone().unwrap_or_else(default_keys_dir);
    let keys_dir = if nkeys_root.join("keys").is_dir() {
        nkeys_root.join("keys")
    } else {
        nkeys_root.clone()
    };

    let mut accounts: Vec<(String, String, AccountClaims)> = Vec::new();
    let acc_root = op_dir.join("accounts");
    if acc_root.is_dir() {
        for entry in std::fs::read_dir(&acc_root).map_err(BusopError::io("listing", &acc_root))? {
            let entry = entry.map_err(BusopError::io("listing", &acc_root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path().join(format!("{name}.jwt"));
            if !path.is_file() {
                continue;
            }
            let token = read_jwt(&path)?;
            let claims = jwt::decode_account(&token).map_err(|source| BusopError::Jwt {
                path: path.clone(),
                source,
            })?;
            jwt::verify_account(&claims, &op).map_err(|source| BusopError::Jwt {
                path: path.clone(),
                source,
            })?;
            accounts.push((name, token, claims));
        }
    }
    accounts.sort_by(|a, b| a.0.cmp(&b.0));
    let sys = accounts
        .iter()
        .find(|a| a.2.data.sub == op.nats.system_account)
        .ok_or_else(|| {
            nsc_err(
                &acc_root,
                format!(
                    "the operator's system account {} is not in the store",
                    op.nats.system_account
                ),
            )
        })?
        .clone();
    let app_name = match &args.account {
        Some(a) => accounts
            .iter()
            .find(|x| &x.0 == a || &x.2.data.sub == a)
            .map(|x| x.0.clone())
            .ok_or_else(|| nsc_err(&acc_root, format!("no account {a}")))?,
        None => {
            let others: Vec<&String> = accounts
                .iter()
                .filter(|a| a.0 != sys.0)
                .map(|a| &a.0)
                .collect();
            match others.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(nsc_err(
                        &acc_root,
                        "no application account besides the system account",
                    ));
                }
                _ => {
                    return Err(nsc_err(
                        &acc_root,
                        "several accounts: pick the application account with --account",
                    ));
                }
            }
        }
    };

    let target = std::path::absolute(dir).map_err(BusopError::io("resolving", dir))?;
    if !args.force {
        for name in [SETUP_FILE, "operator.jwt", "keys", "accounts", "creds"] {
            if target.join(name).exists() {
                return Err(BusopError::Exists {
                    path: target.join(name),
                });
            }
        }
    }
    keyfile::create_private_dir(&target)?;
    let setup = Setup {
        dir: target.clone(),
        file: SetupFile {
            version: SETUP_VERSION,
            default_account: app_name.clone(),
            servers: args.servers.clone(),
            account_server: None,
            nats_server: NatsServerSettings {
                listen: args.listen.clone(),
                url_resolver: None,
            },
        },
    };

    let mut wanted: Vec<(String, String)> =
        vec![(format!("operator {op_name}"), op.data.sub.clone())];
    wanted.extend(
        op.nats
            .signing_keys
            .iter()
            .map(|k| ("operator signing key".to_string(), k.clone())),
    );
    for (name, _, c) in &accounts {
        wanted.push((format!("account {name}"), c.data.sub.clone()));
        wanted.extend(
            c.nats
                .signing_keys
                .0
                .keys()
                .map(|k| (format!("account {name} signing key"), k.clone())),
        );
    }
    let mut keys = Vec::new();
    for (role, key) in wanted {
        let path = key_path(&keys_dir, &key);
        let imported = if path.is_file() {
            let kp = keyfile::load_key_file(&path, None)?;
            if kp.public_key() != key {
                return Err(nsc_err(
                    &path,
                    format!("holds the seed of {}, not of {key}", kp.public_key()),
                ));
            }
            setup.store_key(&kp)?;
            true
        } else {
            false
        };
        keys.push(KeyStatus {
            role,
            key,
            imported,
        });
    }

    setup.write_operator(&op_token)?;
    for (name, token, _) in &accounts {
        setup.write_account(name, token)?;
    }
    let sys_user = import_or_mint_sys_user(&setup, &nkeys_root, &op_name, &sys.0, &sys.2)?;
    setup.save()?;
    server_config::write(&setup)?;
    write_file(&target.join(".gitignore"), GITIGNORE.as_bytes())?;

    let mut h = String::new();
    let _ = writeln!(
        h,
        "imported nsc operator {op_name} {} into {}",
        op.data.sub,
        target.display()
    );
    for (name, _, c) in &accounts {
        let _ = writeln!(
            h,
            "  account {name} {}{}",
            c.data.sub,
            if *name == app_name {
                " (application account)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(h, "  system user: {sys_user}");
    for k in &keys {
        let _ = writeln!(
            h,
            "  {} {} {}",
            if k.imported { "key     " } else { "MISSING " },
            k.role,
            k.key
        );
    }
    if !op.nats.strict_signing_key_usage {
        let _ = writeln!(
            h,
            "note: the operator does not require signing keys (strict_signing_key_usage off); `busop rotate operator-key` adds one"
        );
    }
    Ok(Report::new(
        h,
        serde_json::json!({
            "dir": target,
            "operator": op_name,
            "operator_key": op.data.sub,
            "accounts": accounts.iter().map(|a| serde_json::json!({"name": a.0, "key": a.2.data.sub})).collect::<Vec<_>>(),
            "application_account": app_name,
            "system_user": sys_user,
            "keys": keys,
        }),
    ))
}

/// Copies the system user's creds from nsc, or mints a new system user.
fn import_or_mint_sys_user(
    setup: &Setup,
    nkeys_root: &Path,
    op_name: &str,
    sys_name: &str,
    sys: &AccountClaims,
) -> Result<String> {
    let creds_dir = nkeys_root.join("creds").join(op_name).join(sys_name);
    if creds_dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&creds_dir)
            .map_err(BusopError::io("listing", &creds_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "creds"))
            .collect();
        files.sort();
        for f in files {
            let bytes =
                zeroize::Zeroizing::new(std::fs::read(&f).map_err(BusopError::io("reading", &f))?);
            let Ok(c) = buswarden_creds::parse_creds(&bytes) else {
                continue;
            };
            let Ok(u) = jwt::decode_user(&c.jwt) else {
                continue;
            };
            if jwt::verify_user(&u, sys).is_ok() && jwt::validate_time(&u.data, jwt::now()).is_ok()
            {
                keyfile::create_private_dir(&setup.dir.join("creds"))?;
                write_file(&setup.sys_creds_path(), &bytes)?;
                return Ok(format!("{} (from {})", u.data.sub, f.display()));
            }
        }
    }
    let signer = sys
        .nats
        .signing_keys
        .0
        .keys()
        .chain(std::iter::once(&sys.data.sub))
        .find(|k| setup.has_key(k))
        .ok_or_else(|| nsc_err(nkeys_root, format!("no system user creds under {} and no seed of system account {sys_name} to mint one", creds_dir.display())))?;
    let key = setup.key(signer, "system account key")?;
    let user = KeyPair::generate(KeyKind::User);
    let mut claims = UserClaims::new_user(user.public_key());
    claims.data.name = "sys".into();
    if *signer != sys.data.sub {
        claims.nats.issuer_account = sys.data.sub.clone();
    }
    claims.nats.limits.publish.allow = vec![">".into()];
    claims.nats.limits.subscribe.allow = vec![">".into()];
    let token =
        jwt::encode(&mut claims, &key, jwt::now()).map_err(|source| BusopError::Encode {
            what: "the system user JWT".into(),
            source,
        })?;
    keyfile::create_private_dir(&setup.dir.join("creds"))?;
    write_file(
        &setup.sys_creds_path(),
        &format_user_config(&token, &user.seed()),
    )?;
    Ok(format!("{} (minted)", user.public_key()))
}
