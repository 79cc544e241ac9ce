//! Shared by the creds integration tests: the Go oracle, a trust chain
//! (operator, system account, account with a signing key), service trees.
#![allow(dead_code)]

use buswarden_creds::claims::{AccountClaims, OperatorClaims};
use buswarden_creds::jwt;
use buswarden_creds::keys::{KeyKind, KeyPair};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oracle binary; a missing one fails the test with the fix.
pub fn oracle() -> PathBuf {
    match std::env::var_os("BUSWARDEN_JWT_ORACLE") {
        Some(p) if Path::new(&p).exists() => PathBuf::from(p),
        _ => panic!(
            "BUSWARDEN_JWT_ORACLE is not set or does not exist: run `source ci/deps.sh` \
             (installs the Go jwt/nkeys libraries from Debian and builds creds/oracle into target/oracle/jwtcheck)"
        ),
    }
}

/// What the oracle said.
pub struct Verdict {
    pub ok: bool,
    pub json: serde_json::Value,
}

/// Runs the oracle with `args`.
pub fn run_oracle(args: &[&str]) -> Verdict {
    let out = Command::new(oracle())
        .args(args)
        .output()
        .expect("run the oracle");
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "oracle {:?} failed: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "oracle output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(json["ok"].as_bool(), Some(code == Some(0)));
    Verdict {
        ok: code == Some(0),
        json,
    }
}

/// An operator, its system account and an application account with a plain
/// signing key, all JWTs signed by us.
pub struct Chain {
    pub operator: KeyPair,
    pub operator_jwt: String,
    pub system: KeyPair,
    pub system_jwt: String,
    pub account: KeyPair,
    pub account_claims: AccountClaims,
    pub account_jwt: String,
    pub signing_key: KeyPair,
}

impl Chain {
    pub fn new() -> Chain {
        Chain::with(|_| {})
    }

    /// A chain whose account claims `edit` adjusts before signing.
    pub fn with(edit: impl FnOnce(&mut AccountClaims)) -> Chain {
        let now = jwt::now();
        let operator = KeyPair::generate(KeyKind::Operator);
        let system = KeyPair::generate(KeyKind::Account);
        let account = KeyPair::generate(KeyKind::Account);
        let signing_key = KeyPair::generate(KeyKind::Account);
        let mut op = OperatorClaims::new_operator(operator.public_key());
        op.data.name = "test-operator".into();
        op.nats.system_account = system.public_key().into();
        let operator_jwt = jwt::encode(&mut op, &operator, now).unwrap();
        let mut sys = AccountClaims::new_account(system.public_key());
        sys.data.name = "SYS".into();
        let system_jwt = jwt::encode(&mut sys, &operator, now).unwrap();
        let mut acc = AccountClaims::new_account(account.public_key());
        acc.data.name = "app".into();
        acc.nats.signing_keys.add_plain(signing_key.public_key());
        acc.nats.default_permissions.publish.deny = vec![">".into()];
        acc.nats.default_permissions.subscribe.deny = vec![">".into()];
        edit(&mut acc);
        let account_jwt = jwt::encode(&mut acc, &operator, now).unwrap();
        Chain {
            operator,
            operator_jwt,
            system,
            system_jwt,
            account,
            account_claims: acc,
            account_jwt,
            signing_key,
        }
    }

    /// nats-server operator-mode config trusting this chain.
    pub fn server_config(&self) -> String {
        format!(
            "operator: {}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {}\n  {}: {}\n}}\n",
            self.operator_jwt,
            self.system.public_key(),
            self.system.public_key(),
            self.system_jwt,
            self.account.public_key(),
            self.account_jwt
        )
    }
}

/// Writes `<root>/<dir>/nats.acl` for `hostname` with `rules`.
pub fn write_acl(root: &Path, dir: &str, hostname: &str, rules: &[&str]) -> PathBuf {
    let d = root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    let mut text = format!("# nats.acl for {hostname}\n");
    for r in rules {
        text.push_str(r);
        text.push('\n');
    }
    let p = d.join("nats.acl");
    std::fs::write(&p, text).unwrap();
    p
}

/// The implicit rules of a service with flattened hostname `me`.
pub fn implicit(me: &str) -> Vec<String> {
    vec![
        format!("PUB {{{{plane}}}}.reply._.{me}.>"),
        format!("SUB {{{{plane}}}}.safe.*.*.{me}.>"),
        format!("SUB {{{{plane}}}}.reply._.*.{me}.*"),
        "SUB {{plane}}.safe.888.*.all.>".to_string(),
    ]
}
