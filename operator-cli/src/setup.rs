//! The operator's setup folder that `busop init` (or `import-nsc`) writes
//! and every other command reads:
//!
//! ```text
//! DIR/busop.toml            servers to push to, the account server (public data only)
//! DIR/operator.jwt          the operator JWT
//! DIR/accounts/<NAME>.jwt   one JWT per account
//! DIR/keys/<K>/<2>/<pub>.nk seeds, as nsc keeps them (0600 files, 0700 folders)
//! DIR/creds/sys.creds       the system user's credentials (0600)
//! DIR/jwt/                  the full resolver's store
//! DIR/nats-server.conf      the server configuration
//! DIR/.gitignore            keeps keys/, creds/ and jwt/ out of git
//! ```
//!
//! Key lists come from the JWTs themselves (the operator's and accounts'
//! signing keys); `busop.toml` holds only what the JWTs cannot say.

use crate::error::{BusopError, Result};
use buswarden_creds::jwt;
use buswarden_creds::keyfile;
use buswarden_creds::{AccountClaims, KeyKind, KeyPair, OperatorClaims};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The setup file's name.
pub const SETUP_FILE: &str = "busop.toml";
/// The setup file's format version.
pub const SETUP_VERSION: i64 = 1;

/// Where the account server is, and which key signs busop's requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountServerConfig {
    /// Base URL, e.g. `http://accounts.internal:9090`.
    pub url: String,
    /// Public user nkey (`U…`) busop signs requests with; its seed is under `keys/`.
    pub key: String,
    /// PEM file of the CA that signed the account server's certificate (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// How `nats-server.conf` is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsServerSettings {
    /// The `listen` address.
    pub listen: String,
    /// A URL resolver (the account server) instead of the full resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_resolver: Option<String>,
}

impl Default for NatsServerSettings {
    fn default() -> Self {
        NatsServerSettings {
            listen: "0.0.0.0:4222".into(),
            url_resolver: None,
        }
    }
}

/// `busop.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupFile {
    /// Format version, `1`.
    pub version: i64,
    /// The account that applications connect to (name as in `accounts/`).
    #[serde(default)]
    pub default_account: String,
    /// nats-server client URLs `busop push` reaches (each server of every cluster).
    #[serde(default)]
    pub servers: Vec<String>,
    /// When set, account changes go through the account server (one writer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_server: Option<AccountServerConfig>,
    /// How `nats-server.conf` is written.
    #[serde(default)]
    pub nats_server: NatsServerSettings,
}

/// An account of the setup.
#[derive(Debug, Clone)]
pub struct AccountEntry {
    /// The account's name (its file name without `.jwt`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The JWT.
    pub token: String,
    /// Its claims.
    pub claims: AccountClaims,
}

/// An opened setup folder.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The folder (absolute).
    pub dir: PathBuf,
    /// `busop.toml`.
    pub file: SetupFile,
}

/// The path of a key file in nsc's layout under `keys`.
pub fn key_path(keys: &Path, public: &str) -> PathBuf {
    let kind = public.get(..1).unwrap_or("_");
    let shard = public.get(1..3).unwrap_or("__");
    keys.join(kind).join(shard).join(format!("{public}.nk"))
}

/// Writes `bytes` to `path` atomically, 0600 (JWTs are not secret, but one
/// mode for every file busop writes keeps the folder simple to audit).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        keyfile::create_private_dir(dir)?;
    }
    keyfile::write_private_file(path, bytes, true)?;
    Ok(())
}

impl Setup {
    /// Opens the setup in `dir`.
    pub fn open(dir: &Path) -> Result<Setup> {
        let dir = std::path::absolute(dir).map_err(BusopError::io("resolving", dir))?;
        let path = dir.join(SETUP_FILE);
        if !path.exists() {
            return Err(BusopError::NoSetup { dir });
        }
        let text = crate::artifact::read_text(&path)?;
        let file: SetupFile = toml::from_str(&text).map_err(|e| BusopError::SetupFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if file.version != SETUP_VERSION {
            return Err(BusopError::SetupFile {
                path,
                message: format!(
                    "version {} is not supported (expected {SETUP_VERSION})",
                    file.version
                ),
            });
        }
        Ok(Setup { dir, file })
    }

    /// Writes `busop.toml`.
    pub fn save(&self) -> Result<()> {
        let text = toml::to_string_pretty(&self.file).map_err(|e| BusopError::SetupFile {
            path: self.dir.join(SETUP_FILE),
            message: e.to_string(),
        })?;
        let text = format!(
            "# busop setup: public data only; seeds live under keys/ (0600), never here.\n{text}"
        );
        write_file(&self.dir.join(SETUP_FILE), text.as_bytes())
    }

    /// `keys/`.
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    /// `accounts/`.
    pub fn accounts_dir(&self) -> PathBuf {
        self.dir.join("accounts")
    }

    /// `operator.jwt`.
    pub fn operator_path(&self) -> PathBuf {
        self.dir.join("operator.jwt")
    }

    /// `creds/sys.creds`.
    pub fn sys_creds_path(&self) -> PathBuf {
        self.dir.join("creds").join("sys.creds")
    }

    /// The operator JWT and claims.
    pub fn operator(&self) -> Result<(String, OperatorClaims)> {
        let path = self.operator_path();
        let token = crate::artifact::read_text(&path)?.trim().to_string();
        let claims =
            jwt::decode_operator(&token).map_err(|source| BusopError::Jwt { path, source })?;
        Ok((token, claims))
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Result<Vec<AccountEntry>> {
        let dir = self.accounts_dir();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(BusopError::io("listing", &dir))? {
            let entry = entry.map_err(BusopError::io("listing", &dir))?;
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jwt"))
                .map(str::to_string)
            else {
                continue;
            };
            let token = crate::artifact::read_text(&path)?.trim().to_string();
            let claims = jwt::decode_account(&token).map_err(|source| BusopError::Jwt {
                path: path.clone(),
                source,
            })?;
            out.push(AccountEntry {
                name,
                path,
                token,
                claims,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The account named `name` (or with public key `name`); the default
    /// account when `None`.
    pub fn account(&self, name: Option<&str>) -> Result<AccountEntry> {
        let wanted = name.unwrap_or(&self.file.default_account).to_string();
        let all = self.accounts()?;
        let known = all
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        all.into_iter()
            .find(|a| a.name == wanted || a.claims.data.sub == wanted)
            .ok_or(BusopError::UnknownAccount {
                name: wanted,
                known,
            })
    }

    /// The system account.
    pub fn system_account(&self) -> Result<AccountEntry> {
        let (_, op) = self.operator()?;
        self.account(Some(&op.nats.system_account))
    }

    /// Whether the seed of `public` is here.
    pub fn has_key(&self, public: &str) -> bool {
        key_path(&self.keys_dir(), public).is_file()
    }

    /// Loads the key pair of `public`.
    pub fn key(&self, public: &str, role: &str) -> Result<KeyPair> {
        let path = key_path(&self.keys_dir(), public);
        if !path.is_file() {
            return Err(BusopError::MissingKey {
                role: role.to_string(),
                key: public.to_string(),
                dir: self.keys_dir(),
            });
        }
        let kp = keyfile::load_key_file(&path, None)?;
        if kp.public_key() != public {
            return Err(BusopError::SetupFile {
                path,
                message: format!("holds the seed of {}, not of {public}", kp.public_key()),
            });
        }
        Ok(kp)
    }

    /// Stores a key pair's seed.
    pub fn store_key(&self, kp: &KeyPair) -> Result<PathBuf> {
        let path = key_path(&self.keys_dir(), kp.public_key());
        keyfile::create_private_dir(&self.keys_dir())?;
        if let Some(parent) = path.parent() {
            keyfile::create_private_dir(parent)?;
            if let Some(kind_dir) = parent.parent() {
                keyfile::create_private_dir(kind_dir)?;
            }
        }
        keyfile::write_key_file(kp, &path)?;
        Ok(path)
    }

    /// The operator key that signs accounts: the newest operator signing key
    /// (rotation appends) whose seed is here (the identity key only when the
    /// operator does not require signing keys).
    pub fn operator_signer(&self) -> Result<KeyPair> {
        let (_, op) = self.operator()?;
        if let Some(k) = op.nats.signing_keys.iter().rev().find(|k| self.has_key(k)) {
            return self.key(k, "operator signing key");
        }
        if !op.nats.strict_signing_key_usage && self.has_key(&op.data.sub) {
            return self.key(&op.data.sub, "operator key");
        }
        Err(BusopError::MissingKey {
            role: "operator signing key".into(),
            key: op.nats.signing_keys.first().cloned().unwrap_or(op.data.sub),
            dir: self.keys_dir(),
        })
    }

    /// Writes an account JWT to `accounts/<name>.jwt`.
    pub fn write_account(&self, name: &str, token: &str) -> Result<PathBuf> {
        let path = self.accounts_dir().join(format!("{name}.jwt"));
        write_file(&path, format!("{token}\n").as_bytes())?;
        Ok(path)
    }

    /// Writes `operator.jwt`.
    pub fn write_operator(&self, token: &str) -> Result<()> {
        write_file(&self.operator_path(), format!("{token}\n").as_bytes())
    }
}

/// The kind of key a public key is, from its prefix.
pub fn kind_of(public: &str) -> Option<KeyKind> {
    match public.chars().next() {
        Some('O') => Some(KeyKind::Operator),
        Some('A') => Some(KeyKind::Account),
        Some('U') => Some(KeyKind::User),
        _ => None,
    }
}
