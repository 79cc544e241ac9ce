//! The answer side of a deploy: each JWT the account server signed is
//! checked against the user key we made for that hostname (subject, name,
//! deploy tag), then written with its seed as `<hostname>_nats.creds`
//! (0600, folder 0700), with the grants block read from the signed JWT
//! itself, so `grep '\.danger\.'` on the file lists what the broker enforces.

use crate::CiError;
use crate::users::seed_path;
use buswarden_creds::creds::{self, GrantsBlock};
use buswarden_creds::keyfile;
use buswarden_creds::keys::KeyKind;
use buswarden_creds::{jwt, sign};
use buswarden_rules::{Hostname, Verb};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One signed user in the server's answer.
#[derive(Debug, Clone, Deserialize)]
struct SignedUser {
    hostname: String,
    user_key: String,
    jwt: String,
}

/// The server's answer to `POST /v1/deploys/<id>/users`.
#[derive(Debug, Clone, Deserialize)]
struct SignedUsers {
    users: Vec<SignedUser>,
}

/// What was written for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenCreds {
    /// The service hostname.
    pub hostname: String,
    /// The user's public key.
    pub user: String,
    /// The `.creds` file.
    pub path: PathBuf,
    /// Expiry, unix seconds (0: never).
    pub expires: i64,
    /// Its trust-root grants (`PUB <subject>` with `danger`).
    pub danger_grants: Vec<String>,
}

/// Reads the answer in `response`, checks each JWT against the key in
/// `keys`, and writes every `.creds` file into `out`. Nothing is written
/// unless every user checks out.
pub fn write_creds(
    response: &Path,
    keys: &Path,
    out: &Path,
    plane: &str,
) -> Result<Vec<WrittenCreds>, CiError> {
    let text = std::fs::read_to_string(response).map_err(|source| CiError::Read {
        path: response.to_path_buf(),
        source,
    })?;
    let answer: SignedUsers = serde_json::from_str(&text).map_err(|e| CiError::Answer {
        path: response.to_path_buf(),
        message: e.to_string(),
    })?;
    let mismatch = |message: String| CiError::Mismatch {
        keys: keys.to_path_buf(),
        message,
    };
    let mut ready = Vec::with_capacity(answer.users.len());
    for user in &answer.users {
        // The hostname becomes part of two file names: only a valid one.
        if Hostname::parse_exact(&user.hostname).is_err() {
            return Err(mismatch(format!("not a hostname: {:?}", user.hostname)));
        }
        let seed_file = seed_path(keys, &user.hostname);
        if !seed_file.is_file() {
            return Err(mismatch(format!("no key was made for {}", user.hostname)));
        }
        let key = keyfile::load_key_file(&seed_file, Some(KeyKind::User))?;
        let claims = jwt::decode_user(&user.jwt)
            .map_err(|e| mismatch(format!("the JWT for {}: {e}", user.hostname)))?;
        if key.public_key() != user.user_key || claims.data.sub != user.user_key {
            return Err(mismatch(format!(
                "the JWT for {} is not for the key made for it",
                user.hostname
            )));
        }
        let deploy = claims
            .nats
            .generic
            .tags
            .iter()
            .find_map(|t| t.strip_prefix("deploy:"))
            .unwrap_or_default()
            .to_string();
        let mut pubs = claims.nats.limits.publish.allow.clone();
        let mut subs = claims.nats.limits.subscribe.allow.clone();
        pubs.sort();
        subs.sort();
        let grants: Vec<(Verb, String)> = pubs
            .into_iter()
            .map(|s| (Verb::Pub, s))
            .chain(subs.into_iter().map(|s| (Verb::Sub, s)))
            .collect();
        let danger_grants = grants
            .iter()
            .filter(|(_, s)| s.split('.').nth(1) == Some("danger"))
            .map(|(v, s)| format!("{v} {s}"))
            .collect();
        let block = GrantsBlock {
            hostname: user.hostname.clone(),
            plane: plane.to_string(),
            deploy,
            expires: claims.data.exp,
            grants,
        };
        let bytes = creds::format_creds(&user.jwt, &key.seed(), &block);
        let written = WrittenCreds {
            hostname: user.hostname.clone(),
            user: user.user_key.clone(),
            path: out.join(format!("{}{}", user.hostname, sign::CREDS_SUFFIX)),
            expires: claims.data.exp,
            danger_grants,
        };
        ready.push((written, bytes));
    }
    keyfile::create_private_dir(out)?;
    let mut report = Vec::with_capacity(ready.len());
    for (written, bytes) in ready {
        keyfile::write_private_file(&written.path, &bytes, true)?;
        report.push(written);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use buswarden_creds::claims::UserClaims;
    use buswarden_creds::keys::KeyPair;

    fn answer(dir: &Path, hostname: &str, user_key: &str, jwt: &str) -> PathBuf {
        let path = dir.join("answer.json");
        let body = serde_json::json!({"users": [{"hostname": hostname, "user_key": user_key, "jwt": jwt, "expires_at": 0}]});
        std::fs::write(&path, body.to_string()).unwrap();
        path
    }

    fn signed_for(user: &str) -> String {
        let account = KeyPair::generate(KeyKind::Account);
        let mut claims = UserClaims::new_user(user);
        claims.nats.limits.publish.allow =
            vec!["microbus.danger.666.a_example.b_example.*.POST.mint".into()];
        claims.nats.limits.subscribe.allow = vec!["microbus.reply._.*.a_example.*".into()];
        claims.nats.generic.tags = vec!["deploy:d1".into()];
        jwt::encode(&mut claims, &account, 1_800_000_000).unwrap()
    }

    #[test]
    fn writes_the_creds_with_the_grants_of_the_signed_jwt() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        keyfile::create_private_dir(&keys).unwrap();
        let user =
            keyfile::generate_key_file(KeyKind::User, &seed_path(&keys, "a.example")).unwrap();
        let response = answer(
            dir.path(),
            "a.example",
            user.public_key(),
            &signed_for(user.public_key()),
        );
        let out = dir.path().join("out");
        let written = write_creds(&response, &keys, &out, "microbus").unwrap();
        assert_eq!(
            written[0].danger_grants,
            ["PUB microbus.danger.666.a_example.b_example.*.POST.mint"]
        );
        let text = std::fs::read_to_string(out.join("a.example_nats.creds")).unwrap();
        assert!(text.contains("# buswarden grants of a.example: plane microbus, deploy d1"));
        assert!(text.contains("\n# PUB microbus.danger.666.a_example.b_example.*.POST.mint\n"));
        let parsed = creds::parse_creds(text.as_bytes()).unwrap();
        assert_eq!(parsed.claims().unwrap().data.sub, user.public_key());
    }

    #[test]
    fn refuses_an_answer_for_another_key_or_a_path_as_hostname() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        keyfile::create_private_dir(&keys).unwrap();
        let user =
            keyfile::generate_key_file(KeyKind::User, &seed_path(&keys, "a.example")).unwrap();
        let other = KeyPair::generate(KeyKind::User);
        let out = dir.path().join("out");
        for (host, key, jwt_for) in [
            ("a.example", user.public_key(), other.public_key()),
            ("a.example", other.public_key(), other.public_key()),
            ("../a.example", user.public_key(), user.public_key()),
            ("b.example", user.public_key(), user.public_key()),
        ] {
            let response = answer(dir.path(), host, key, &signed_for(jwt_for));
            let err = write_creds(&response, &keys, &out, "microbus").unwrap_err();
            assert!(matches!(err, CiError::Mismatch { .. }), "{host}: {err}");
        }
        assert!(!out.exists(), "nothing is written on a refusal");
    }
}
