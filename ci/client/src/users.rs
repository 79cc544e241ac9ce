//! The request side of a deploy: one fresh user key per service, the seed
//! kept on the CI machine (`KEYS/<hostname>.nk`, 0600 in a 0700 folder), and
//! the body of `POST /v1/deploys/<id>/users` naming only public keys and the
//! committed rules (`{{plane}}` left for the server to fill in).

use crate::CiError;
use buswarden_creds::keyfile;
use buswarden_creds::keys::KeyKind;
use buswarden_creds::sign::{self, ServiceAcl};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One user of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRequest {
    /// The service hostname.
    pub hostname: String,
    /// The fresh user's public key (`U…`).
    pub user_key: String,
    /// The committed rules, `PUB {{plane}}.…` / `SUB {{plane}}.…`.
    pub rules: Vec<String>,
}

/// The body of `POST /v1/deploys/<id>/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsersRequest {
    /// One entry per service, by hostname.
    pub users: Vec<UserRequest>,
    /// Lifetime of the users (`7d`); the server's default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// Where the seed of `hostname`'s user is kept.
pub fn seed_path(keys: &Path, hostname: &str) -> PathBuf {
    keys.join(format!("{hostname}.nk"))
}

/// Finds every committed `nats.acl` under `root`, makes a user key for each
/// (seed written to `keys`), and returns the request body.
pub fn prepare(root: &Path, keys: &Path, expires: Option<&str>) -> Result<UsersRequest, CiError> {
    if let Some(e) = expires
        && sign::parse_expires(e).ok().flatten().is_none()
    {
        return Err(CiError::Expires {
            value: e.to_string(),
        });
    }
    let services = sign::discover(root)?;
    keyfile::create_private_dir(keys)?;
    let users = services
        .iter()
        .map(|s| request_for(s, keys))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UsersRequest {
        users,
        expires: expires.map(str::to_string),
    })
}

fn request_for(service: &ServiceAcl, keys: &Path) -> Result<UserRequest, CiError> {
    let hostname = service.hostname.as_str();
    let key = keyfile::generate_key_file(KeyKind::User, &seed_path(keys, hostname))?;
    Ok(UserRequest {
        hostname: hostname.to_string(),
        user_key: key.public_key().to_string(),
        rules: service.rules.iter().map(ToString::to_string).collect(),
    })
}
