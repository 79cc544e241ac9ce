//! Shared test helpers: running busop in-process, a setup, and real creds
//! minted with the creds crate from a nats.acl.
#![allow(dead_code)]

use buswarden_creds::sign::{AccountRef, AccountSigner, ServiceAcl, SignOptions, mint};
use std::path::Path;

pub fn busop(dir: &Path, args: &[&str]) -> busop::Outcome {
    let mut all = vec!["busop", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    busop::run(all)
}

pub fn init(dir: &Path) {
    let out = busop(dir, &["init", "--listen", "127.0.0.1:-1"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

pub const DANGER_ZONE_ACL: &str = "# nats.acl for danger-zone.example
PUB {{plane}}.danger.666.danger-zone_example.access_token_core.*.POST.mint
PUB {{plane}}.reply._.danger-zone_example.>
PUB {{plane}}.safe.443.danger-zone_example.calc_example.*.GET.dangerous

SUB {{plane}}.reply._.*.danger-zone_example.*
SUB {{plane}}.safe.*.*.danger-zone_example.>
SUB {{plane}}.safe.888.*.all.>
";

pub const CALC_ACL: &str = "# nats.acl for calc.example
PUB {{plane}}.danger.666.calc_example.shell_core.*.POST.execute
PUB {{plane}}.reply._.calc_example.>
PUB {{plane}}.safe.443.calc_example.*.*.GET.items.*

SUB {{plane}}.reply._.*.calc_example.*
SUB {{plane}}.safe.*.*.calc_example.>
SUB {{plane}}.safe.888.*.all.>
";

/// A runtime for the async client side of a test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The setup's application account and the key pair of its signing key.
pub fn app_signer(setup_dir: &Path) -> (busop::setup::AccountEntry, buswarden_creds::KeyPair) {
    let setup = busop::setup::Setup::open(setup_dir).unwrap();
    let app = setup.account(None).unwrap();
    let sk = app
        .claims
        .nats
        .signing_keys
        .0
        .keys()
        .next()
        .unwrap()
        .clone();
    let key = setup.key(&sk, "test").unwrap();
    (app, key)
}

/// Mints `<hostname>_nats.creds` for `acl` into `out`, signed by the
/// setup's application account signing key; returns (path, user key).
pub fn mint_creds(
    setup_dir: &Path,
    acl: &str,
    out: &Path,
    expires_secs: Option<u64>,
    now: i64,
) -> (std::path::PathBuf, String) {
    let (app, key) = app_signer(setup_dir);
    let signer =
        AccountSigner::new(key, Some(AccountRef::Jwt(Box::new(app.claims.clone())))).unwrap();
    let parsed = buswarden_rules::acl::parse(acl).unwrap();
    let service = ServiceAcl {
        path: out.join("nats.acl"),
        hostname: parsed.hostname.clone(),
        rules: parsed.rules,
    };
    let mut opts = SignOptions::new();
    opts.expires = expires_secs.map(std::time::Duration::from_secs);
    opts.now = now;
    opts.deploy = buswarden_creds::DeployId::parse("d1").unwrap();
    let minted = mint(&service, &signer, &opts).unwrap();
    std::fs::create_dir_all(out).unwrap();
    let path = out.join(format!("{}_nats.creds", parsed.hostname));
    std::fs::write(&path, &*minted.creds).unwrap();
    (path, minted.report.user)
}
