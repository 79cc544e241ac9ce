//! The signing pipeline: discovery, refusals (nothing written), files and
//! folder modes, the report, signers, never-born-revoked re-issues.

mod common;

use buswarden_creds::claims::UserScope;
use buswarden_creds::creds;
use buswarden_creds::jwt::{self, JwtError};
use buswarden_creds::keyfile::{self, KeyFileError};
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::sign::{
    self, AccountRef, AccountSigner, DeployId, ServiceProblem, SignError, SignOptions,
};
use buswarden_rules::{Plane, Verb};
use common::{Chain, implicit, write_acl};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

fn rules(me: &str, extra: &[&str]) -> Vec<String> {
    let mut r = implicit(me);
    r.extend(extra.iter().map(|s| s.to_string()));
    r
}

fn acl(root: &Path, dir: &str, host: &str, rules: &[String]) {
    let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    write_acl(root, dir, host, &refs);
}

fn opts() -> SignOptions {
    let mut o = SignOptions::new();
    o.deploy = DeployId::parse("Deploy-7").unwrap();
    o.sync = false;
    o
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn signs_every_service_with_private_files_and_a_report() {
    let chain = Chain::new();
    let root = tempfile::tempdir().unwrap();
    acl(
        root.path(),
        "services/calc",
        "calc.example",
        &rules(
            "calc_example",
            &["PUB {{plane}}.danger.666.calc_example.access_token_core.*.POST.mint"],
        ),
    );
    acl(
        root.path(),
        "services/web",
        "web.example",
        &rules("web_example", &[]),
    );
    // Skipped: build output and hidden folders.
    acl(
        root.path(),
        "target/debug/x",
        "ghost.example",
        &rules("ghost_example", &[]),
    );
    acl(
        root.path(),
        ".git/x",
        "hidden.example",
        &rules("hidden_example", &[]),
    );
    let out = root.path().join("creds-out");
    let signer = AccountSigner::new(chain.account.clone(), None).unwrap();
    let mut o = opts();
    o.plane = Plane::parse("prod").unwrap();
    let report = sign::sign_root(root.path(), &out, &signer, &o).unwrap();
    assert_eq!(mode(&out), 0o700);
    assert_eq!(report.deploy, "deploy-7");
    assert_eq!(report.plane, "prod");
    assert_eq!(report.account, chain.account.public_key());
    let hosts: Vec<&str> = report
        .services
        .iter()
        .map(|s| s.hostname.as_str())
        .collect();
    assert_eq!(hosts, ["calc.example", "web.example"]);
    let calc = &report.services[0];
    assert_eq!(calc.path, out.join("calc.example_nats.creds"));
    assert_eq!(mode(&calc.path), 0o600);
    assert_eq!((calc.pub_rules, calc.sub_rules), (2, 3));
    assert_eq!(
        calc.danger_grants,
        ["PUB prod.danger.666.calc_example.access_token_core.*.POST.mint"]
    );
    assert_eq!(calc.expires - calc.issued_at, 7 * 24 * 3600);
    let text = std::fs::read(&calc.path).unwrap();
    let parsed = creds::parse_creds(&text).unwrap();
    assert_eq!(parsed.key.public_key(), calc.user);
    let claims = parsed.claims().unwrap();
    // Another user's seed with this JWT is refused.
    let mut mixed = parsed.clone();
    mixed.key = KeyPair::generate(KeyKind::User);
    assert!(matches!(
        mixed.claims(),
        Err(creds::CredsError::SeedDoesNotMatch { .. })
    ));
    jwt::verify_user(&claims, &chain.account_claims).unwrap();
    assert_eq!(claims.data.name, "calc.example");
    assert_eq!(claims.nats.generic.tags, ["deploy:deploy-7"]);
    assert!(claims.nats.issuer_account.is_empty());
    assert_eq!(claims.nats.limits.subs, -1);
    let grants = creds::parse_grants(std::str::from_utf8(&text).unwrap());
    // 2 PUB; 3 SUB rules: own requests plain and pinned to the queue group
    // `calc_example`, replies and broadcasts plain.
    assert_eq!(grants.len(), 6);
    assert!(grants.contains(&(
        Verb::Sub,
        "prod.safe.*.*.calc_example.> calc_example".to_string()
    )));
    assert_eq!(claims.nats.limits.subscribe.allow.len(), 4);
    assert!(grants.contains(&(Verb::Sub, "prod.safe.888.*.all.>".to_string())));
    assert_eq!(
        grants
            .iter()
            .map(|(v, s)| (*v, s.as_str()))
            .filter(|(_, s)| s.contains("reply"))
            .collect::<Vec<_>>(),
        [
            (Verb::Pub, "prod.reply._.calc_example.>"),
            (Verb::Sub, "prod.reply._.*.calc_example.*")
        ]
    );
    // The report never carries the seed; its JSON is stable.
    let seed = parsed.key.seed();
    assert!(!format!("{report:?}").contains(seed.expose()));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["services"][0]["hostname"], "calc.example");
    assert_eq!(json["services"][0]["pub_rules"], 2);
    assert!(!json.to_string().contains(seed.expose()));
}

#[test]
fn refuses_bad_rule_sets_and_writes_nothing() {
    let chain = Chain::new();
    let root = tempfile::tempdir().unwrap();
    // A hand-edited wildcard, a rule in another service's name, another plane.
    acl(
        root.path(),
        "a",
        "a.example",
        &rules(
            "a_example",
            &[
                "PUB {{plane}}.>",
                "PUB {{plane}}.safe.443.b_example.c_example.*.GET.x",
                "PUB staging.safe.443.a_example.c_example.*.GET.y",
            ],
        ),
    );
    // No SUB rule at all.
    acl(
        root.path(),
        "b",
        "b.example",
        &["PUB {{plane}}.reply._.b_example.>".to_string()],
    );
    acl(root.path(), "c", "c.example", &rules("c_example", &[]));
    let out = root.path().join("out");
    let signer = AccountSigner::new(chain.account.clone(), None).unwrap();
    let err = sign::sign_root(root.path(), &out, &signer, &opts()).unwrap_err();
    assert!(!out.exists(), "nothing may be written when refusing");
    let SignError::Refused(problems) = &err else {
        panic!("{err}")
    };
    assert!(matches!(&problems[0], ServiceProblem::Invalid { errors, .. } if errors.len() == 2));
    assert!(matches!(&problems[1], ServiceProblem::ForeignPlane { .. }));
    assert!(matches!(
        &problems[2],
        ServiceProblem::EmptyAllowList {
            verb: Verb::Sub,
            ..
        }
    ));
    assert_eq!(problems.len(), 3);
    let text = err.to_string();
    assert!(text.contains("publishes as \"b_example\""), "{text}");
    assert!(text.contains("default permissions"), "{text}");
}

#[test]
fn discovery_errors() {
    let root = tempfile::tempdir().unwrap();
    assert!(matches!(
        sign::discover(root.path()),
        Err(SignError::NoServices { .. })
    ));
    acl(
        root.path(),
        "x",
        "same.example",
        &rules("same_example", &[]),
    );
    acl(
        root.path(),
        "y",
        "same.example",
        &rules("same_example", &[]),
    );
    assert!(matches!(
        sign::discover(root.path()),
        Err(SignError::DuplicateHostname { .. })
    ));
    std::fs::write(root.path().join("y/nats.acl"), "PUB x\n").unwrap();
    assert!(matches!(
        sign::discover(root.path()),
        Err(SignError::Acl { .. })
    ));
}

#[test]
fn signers() {
    let chain = Chain::new();
    // A user key cannot sign users.
    let user = KeyPair::generate(KeyKind::User);
    assert!(matches!(
        AccountSigner::new(user, None),
        Err(SignError::SigningKeyKind {
            found: KeyKind::User
        })
    ));
    // A signing key with the account's public key: issuer_account set.
    let s = AccountSigner::new(
        chain.signing_key.clone(),
        Some(AccountRef::parse(chain.account.public_key()).unwrap()),
    )
    .unwrap();
    assert_eq!(s.issuer_account(), Some(chain.account.public_key()));
    // A key the account JWT does not list.
    let stranger = KeyPair::generate(KeyKind::Account);
    assert!(matches!(
        AccountSigner::new(
            stranger,
            Some(AccountRef::parse(&chain.account_jwt).unwrap())
        ),
        Err(SignError::KeyNotOfAccount { .. })
    ));
    // A scoped key cannot give users their own permissions.
    let scoped = KeyPair::generate(KeyKind::Account);
    let pk = scoped.public_key().to_string();
    let with_scope = Chain::with(|a| a.nats.signing_keys.add_scoped(UserScope::new(pk, "r")));
    assert!(matches!(
        AccountSigner::new(
            scoped,
            Some(AccountRef::parse(&with_scope.account_jwt).unwrap())
        ),
        Err(SignError::ScopedSigningKey { .. })
    ));
    assert!(matches!(
        AccountRef::parse("not-a-key"),
        Err(SignError::BadAccount { .. })
    ));
    assert!(matches!(
        AccountRef::parse("a.b.c"),
        Err(SignError::AccountJwt(JwtError::Base64 { .. }))
    ));
    assert!(matches!(
        AccountRef::parse(&chain.operator_jwt),
        Err(SignError::AccountJwt(JwtError::WrongType { .. }))
    ));
    assert_eq!(
        sign::parse_expires("12h").unwrap(),
        Some(Duration::from_secs(12 * 3600))
    );
    assert_eq!(
        sign::parse_expires("7d").unwrap(),
        Some(sign::DEFAULT_EXPIRY)
    );
    assert_eq!(sign::parse_expires("never").unwrap(), None);
    for bad in ["", "0s", "soon", "-1h"] {
        assert!(matches!(
            sign::parse_expires(bad),
            Err(SignError::BadExpiry { .. })
        ));
    }
    assert!(DeployId::parse("bad id").is_err());
    assert!(
        DeployId::parse("Danger-Zone").is_err(),
        "would show in grep danger"
    );
    assert!(DeployId::parse(&"x".repeat(65)).is_err());
    assert!(
        DeployId::parse(".hidden").is_err(),
        "starts with a letter or digit"
    );
    assert!(DeployId::parse("-flag").is_err());
    assert_eq!(DeployId::at(0).as_str(), "19700101t000000z");
}

#[test]
fn signing_key_from_file_or_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/account.nk");
    let kp = keyfile::generate_key_file(KeyKind::Account, &path).unwrap();
    assert_eq!(
        sign::load_signing_key(Some(&path)).unwrap().public_key(),
        kp.public_key()
    );
    // Issue 15, Low: a key file others may read is refused, not used.
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        let err = sign::load_signing_key(Some(&path)).err().unwrap();
        assert!(
            matches!(err, SignError::Write(KeyFileError::Permissions { .. })),
            "{mode:o}: {err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    sign::load_signing_key(Some(&path)).unwrap();
    let user_path = dir.path().join("user.nk");
    keyfile::generate_key_file(KeyKind::User, &user_path).unwrap();
    assert!(matches!(
        sign::load_signing_key(Some(&user_path)),
        Err(SignError::SigningKeyKind { .. })
    ));
    // The variable is not set in the test environment.
    assert_eq!(std::env::var_os(sign::SIGNING_KEY_ENV), None);
    assert!(matches!(
        sign::load_signing_key(None),
        Err(SignError::Write(KeyFileError::EnvMissing { .. }))
    ));
    // What the variable would hold parses like a key file.
    let seed = kp.seed();
    let from_text = keyfile::key_from_text(seed.expose(), Some(KeyKind::Account), "env").unwrap();
    assert_eq!(from_text.public_key(), kp.public_key());
}

#[test]
fn reissued_users_are_never_born_revoked() {
    let now = jwt::now();
    // Every user revoked up to a second from now.
    let chain = Chain::with(|a| {
        a.nats.revocations.insert("*".into(), now + 1);
    });
    let root = tempfile::tempdir().unwrap();
    acl(root.path(), "a", "a.example", &rules("a_example", &[]));
    let signer = AccountSigner::new(
        chain.signing_key.clone(),
        Some(AccountRef::parse(&chain.account_jwt).unwrap()),
    )
    .unwrap();
    let mut o = opts();
    o.now = now;
    o.expires = Some(Duration::from_secs(3600));
    let report = sign::sign_root(root.path(), &root.path().join("o"), &signer, &o).unwrap();
    let s = &report.services[0];
    assert_eq!(s.issued_at, now + 2);
    let parsed = creds::parse_creds(&std::fs::read(&s.path).unwrap()).unwrap();
    let claims = jwt::decode_user(&parsed.jwt).unwrap();
    jwt::verify_user(&claims, &chain.account_claims).unwrap();
    assert_eq!(claims.nats.issuer_account, chain.account.public_key());
    // Never-expiring when asked.
    o.expires = None;
    let report = sign::sign_root(root.path(), &root.path().join("o"), &signer, &o).unwrap();
    assert_eq!(report.services[0].expires, 0);
}
