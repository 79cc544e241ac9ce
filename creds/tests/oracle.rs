//! Conformance against the official Go libraries (nats-io/jwt v2, nkeys):
//! every JWT we produce decodes, verifies and validates there, a tampered
//! one is rejected there, what the Go library produces decodes and verifies
//! here, and our bytes (JWTs, `.creds`) are the Go library's bytes.

mod common;

use buswarden_creds::claims::{AccountSigningKey, OperatorClaims, UserClaims, UserScope};
use buswarden_creds::jwt::{self, AnyClaims, JwtError};
use buswarden_creds::keys::{KeyKind, KeyPair, Seed};
use buswarden_creds::sign::{self, AccountRef, AccountSigner, DeployId, SignOptions};
use buswarden_creds::{creds, keyfile};
use common::{Chain, implicit, run_oracle, write_acl};

fn sign_one(chain: &Chain, signer: AccountSigner) -> (tempfile::TempDir, sign::SignReport) {
    let root = tempfile::tempdir().unwrap();
    let mut rules = implicit("calc_example");
    rules.push("PUB {{plane}}.danger.666.calc_example.access_token_core.*.POST.mint".into());
    rules.push("PUB {{plane}}.safe.443.calc_example.other_example.*.GET.items.*".into());
    // A hook: signed pinned to calc's queue group only.
    rules.push("SUB {{plane}}.safe.417.*.other_example.*.POST.on-change".into());
    let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
    write_acl(root.path(), "calc", "calc.example", &refs);
    let _ = chain;
    let mut opts = SignOptions::new();
    opts.deploy = DeployId::parse("conf-1").unwrap();
    let report = sign::sign_root(root.path(), &root.path().join("out"), &signer, &opts).unwrap();
    (root, report)
}

#[test]
fn everything_we_sign_verifies_in_go() {
    let chain = Chain::new();
    for token in [&chain.operator_jwt, &chain.system_jwt, &chain.account_jwt] {
        let v = run_oracle(&["decode", token]);
        assert!(v.ok, "{}", v.json);
    }
    let v = run_oracle(&["account", &chain.account_jwt, &chain.operator_jwt]);
    assert!(v.ok, "{}", v.json);
    assert_eq!(v.json["claims"]["nats"]["limits"]["conn"], -1);

    // Signed by the identity key, and by a signing key with the account JWT.
    let by_identity = AccountSigner::new(chain.account.clone(), None).unwrap();
    let by_signing_key = AccountSigner::new(
        chain.signing_key.clone(),
        Some(AccountRef::parse(&chain.account_jwt).unwrap()),
    )
    .unwrap();
    for signer in [by_identity, by_signing_key] {
        let issuer_account = signer.issuer_account().map(str::to_string);
        let (_root, report) = sign_one(&chain, signer);
        let path = &report.services[0].path;
        let v = run_oracle(&["creds", path.to_str().unwrap()]);
        assert!(v.ok, "{}", v.json);
        let token = v.json["extra"]["jwt"].as_str().unwrap().to_string();
        assert_eq!(v.json["extra"]["user"], report.services[0].user.as_str());
        let v = run_oracle(&["user", &token, &chain.account_jwt]);
        assert!(v.ok, "{}", v.json);
        let nats = &v.json["claims"]["nats"];
        assert_eq!(nats["subs"], -1);
        assert_eq!(nats["payload"], -1);
        assert_eq!(nats["data"], -1);
        assert_eq!(
            nats["issuer_account"].as_str().map(str::to_string),
            issuer_account
        );
        assert_eq!(v.json["claims"]["name"], "calc.example");
        assert_eq!(nats["tags"][0], "deploy:conf-1");
        assert!(
            nats["pub"]["allow"]
                .as_array()
                .unwrap()
                .contains(&"microbus.danger.666.calc_example.access_token_core.*.POST.mint".into())
        );
        // The queue-pinned SUB entries (`"<subject> <queue>"`) pass Go's
        // validation and read back as written.
        let subs = nats["sub"]["allow"].as_array().unwrap();
        for pinned in [
            "microbus.safe.*.*.calc_example.> calc_example",
            "microbus.safe.417.*.other_example.*.POST.on-change calc_example",
        ] {
            assert!(subs.contains(&pinned.into()), "{subs:?}");
        }
        assert!(
            !subs.contains(&"microbus.safe.417.*.other_example.*.POST.on-change".into()),
            "{subs:?}"
        );
    }
}

fn tamper(token: &str, segment: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let s = &mut parts[segment];
    // Change one character in the middle to another valid base64url one.
    let mid = s.len() / 2;
    let c = s.as_bytes()[mid];
    let repl = if c == b'A' { "B" } else { "A" };
    s.replace_range(mid..mid + 1, repl);
    parts.join(".")
}

#[test]
fn tampered_tokens_are_rejected_there_and_here() {
    let chain = Chain::new();
    let signer = AccountSigner::new(chain.account.clone(), None).unwrap();
    let (_root, report) = sign_one(&chain, signer);
    let text = std::fs::read(&report.services[0].path).unwrap();
    let user_jwt = creds::parse_creds(&text).unwrap().jwt;
    for token in [&user_jwt, &chain.account_jwt, &chain.operator_jwt] {
        for segment in [1, 2] {
            let bad = tamper(token, segment);
            let v = run_oracle(&["decode", &bad]);
            assert!(!v.ok, "Go accepted a tampered token (segment {segment})");
            assert!(jwt::decode(&bad).is_err(), "we accepted a tampered token");
        }
    }
    // A payload re-signed by a key that is not the issuer.
    let mut claims = jwt::decode_user(&user_jwt).unwrap();
    let stranger = KeyPair::generate(KeyKind::Account);
    let iat = claims.data.iat;
    let forged = jwt::encode(&mut claims, &stranger, iat).unwrap();
    assert!(
        run_oracle(&["decode", &forged]).ok,
        "well-formed, self-consistent"
    );
    let v = run_oracle(&["user", &forged, &chain.account_jwt]);
    assert!(!v.ok);
    let forged_claims = jwt::decode_user(&forged).unwrap();
    assert!(matches!(
        jwt::verify_user(&forged_claims, &chain.account_claims),
        Err(JwtError::NotSignedByAccount { .. })
    ));
}

#[test]
fn expired_and_revoked_are_rejected_there_and_here() {
    let chain = Chain::new();
    let user = KeyPair::generate(KeyKind::User);
    let now = jwt::now();
    let mut claims = UserClaims::new_user(user.public_key());
    claims.nats.limits.publish.allow = vec!["a.b".into()];
    claims.data.exp = now - 10;
    let expired = jwt::encode(&mut claims, &chain.account, now - 100).unwrap();
    assert!(!run_oracle(&["decode", &expired]).ok);
    let decoded = jwt::decode(&expired).unwrap();
    assert!(matches!(
        jwt::validate(&decoded, now),
        Err(JwtError::Expired { .. })
    ));

    // Revoked at `now`: a user issued in the same second is revoked (rev >= iat).
    let revoking = Chain::with(|a| {
        a.nats
            .revocations
            .insert(user.public_key().to_string(), now);
    });
    let mut claims = UserClaims::new_user(user.public_key());
    claims.nats.limits.publish.allow = vec!["a.b".into()];
    let same_second = jwt::encode(&mut claims, &revoking.account, now).unwrap();
    assert!(!run_oracle(&["user", &same_second, &revoking.account_jwt]).ok);
    let c = jwt::decode_user(&same_second).unwrap();
    assert!(matches!(
        jwt::verify_user(&c, &revoking.account_claims),
        Err(JwtError::Revoked { .. })
    ));
    // Re-issued with issue_time: never born revoked.
    let iat = jwt::issue_time(now, Some(&revoking.account_claims), user.public_key());
    assert_eq!(iat, now + 1);
    let reissued = jwt::encode(&mut claims, &revoking.account, iat).unwrap();
    let v = run_oracle(&["user", &reissued, &revoking.account_jwt]);
    assert!(v.ok, "{}", v.json);
    let c = jwt::decode_user(&reissued).unwrap();
    jwt::verify_user(&c, &revoking.account_claims).unwrap();
}

#[test]
fn go_made_tokens_decode_and_verify_here() {
    let v = run_oracle(&["generate"]);
    let x = &v.json["extra"];
    let s = |k: &str| x[k].as_str().unwrap().to_string();
    let op = jwt::decode_operator(&s("operator")).unwrap();
    let acc = jwt::decode_account(&s("account")).unwrap();
    let sys = jwt::decode_account(&s("system_account")).unwrap();
    let now = jwt::now();
    for c in [
        AnyClaims::Operator(op.clone()),
        AnyClaims::Account(acc.clone()),
        AnyClaims::Account(sys.clone()),
    ] {
        jwt::validate(&c, now).unwrap();
    }
    assert_eq!(op.nats.signing_keys, vec![s("operator_sk")]);
    assert_eq!(op.nats.system_account, sys.data.sub);
    assert_eq!(op.nats.generic.tags, vec!["env:test".to_string()]);
    jwt::verify_account(&acc, &op).unwrap();
    jwt::verify_account(&sys, &op).unwrap();
    assert_eq!(acc.nats.limits.conn, -1);
    assert!(acc.nats.limits.wildcards);
    assert_eq!(acc.nats.description, "made by the Go library <&>");
    assert_eq!(acc.nats.exports[0].subject, "svc.>");
    assert_eq!(acc.nats.imports[0].kind, "stream");
    assert_eq!(
        acc.nats.signing_keys.get(&s("signing_key")),
        Some(&AccountSigningKey::Plain)
    );
    match acc.nats.signing_keys.get(&s("scoped_key")) {
        Some(AccountSigningKey::Scoped(scope)) => {
            assert_eq!(scope.role, "svc");
            assert_eq!(scope.template.publish.allow, vec!["svc.>".to_string()]);
            assert_eq!(scope.template.subs, -1);
        }
        other => panic!("scoped key not read: {other:?}"),
    }
    let users: Vec<UserClaims> = x["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| jwt::decode_user(t.as_str().unwrap()).unwrap())
        .collect();
    for u in &users {
        jwt::validate(&AnyClaims::User(u.clone()), now).unwrap();
        jwt::verify_user(u, &acc).unwrap();
    }
    let u1 = &users[0].nats.limits;
    assert_eq!(
        u1.resp.as_ref().map(|r| (r.max, r.ttl)),
        Some((1, 1_000_000_000))
    );
    assert_eq!(u1.src, vec!["127.0.0.0/8", "10.0.0.0/8"]);
    assert_eq!(u1.times[0].end, "23:59:59");
    assert_eq!(u1.times_location, "UTC");
    assert_eq!(u1.subscribe.allow[1], "q.* grp");
    assert_eq!(u1.publish.deny, vec!["x.z".to_string()]);
    assert_eq!(users[1].nats.issuer_account, acc.data.sub);
    assert!(
        users[2].nats.limits.is_empty(),
        "scoped user has no permissions"
    );
    let revoked = jwt::decode_user(&s("revoked_user")).unwrap();
    assert!(matches!(
        jwt::verify_user(&revoked, &acc),
        Err(JwtError::Revoked { .. })
    ));
    // A scoped user given permissions is refused here as it is there.
    let mut bad = users[2].clone();
    bad.nats.limits.publish.allow = vec![">".into()];
    let scoped = KeyPair::from_seed(&Seed::new(&s("scoped_key_seed"))).unwrap();
    let bad_token = jwt::encode(&mut bad, &scoped, now).unwrap();
    assert!(!run_oracle(&["user", &bad_token, &s("account")]).ok);
    assert!(matches!(
        jwt::verify_user(&jwt::decode_user(&bad_token).unwrap(), &acc),
        Err(JwtError::ScopedUserHasPermissions { .. })
    ));
    // Go's .creds parses here.
    let c = creds::parse_creds(s("creds").as_bytes()).unwrap();
    assert_eq!(c.jwt, x["users"][0].as_str().unwrap());
    assert_eq!(c.key.public_key(), users[0].data.sub);
}

/// Re-encoding the Go library's claims with the same key and `iat` gives the
/// Go library's token, byte for byte (ed25519 is deterministic).
#[test]
fn re_encoding_go_tokens_gives_the_same_bytes() {
    let v = run_oracle(&["generate"]);
    let x = &v.json["extra"];
    let s = |k: &str| x[k].as_str().unwrap().to_string();
    let key = |k: &str| KeyPair::from_seed(&Seed::new(&s(k))).unwrap();

    let go_op = s("operator");
    let mut op = jwt::decode_operator(&go_op).unwrap();
    let iat = op.data.iat;
    assert_eq!(
        jwt::encode(&mut op, &key("operator_seed"), iat).unwrap(),
        go_op
    );

    for (i, signer) in [
        (0, "account_seed"),
        (1, "signing_key_seed"),
        (2, "scoped_key_seed"),
    ] {
        let go_user = x["users"][i].as_str().unwrap().to_string();
        let mut u = jwt::decode_user(&go_user).unwrap();
        let iat = u.data.iat;
        assert_eq!(
            jwt::encode(&mut u, &key(signer), iat).unwrap(),
            go_user,
            "user {i}"
        );
    }

    // The account lists two signing keys, which Go writes in map order:
    // compare the payloads as JSON with that list sorted.
    let go_acc = s("account");
    let mut acc = jwt::decode_account(&go_acc).unwrap();
    let iat = acc.data.iat;
    let ours = jwt::encode(&mut acc, &key("operator_sk_seed"), iat).unwrap();
    let payload = |t: &str| -> serde_json::Value {
        use base64::Engine as _;
        let p = t.split('.').nth(1).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap();
        if let Some(list) = v["nats"]["signing_keys"].as_array_mut() {
            list.sort_by_key(|k| k.to_string());
        }
        v
    };
    assert_eq!(payload(&ours), payload(&go_acc));
}

/// Claims we build, encoded by the Go library, equal our own encoding.
#[test]
fn go_encodes_our_claims_to_our_bytes() {
    let chain = Chain::new();
    let user = KeyPair::generate(KeyKind::User);
    let mut u = UserClaims::new_user(user.public_key());
    u.data.name = "calc.example".into();
    u.data.exp = jwt::now() + 3600;
    u.nats.limits.publish.allow = vec![
        "microbus.reply._.calc_example.>".into(),
        "microbus.danger.666.calc_example.a_b.*.POST.mint".into(),
    ];
    u.nats.limits.subscribe.allow = vec!["microbus.safe.*.*.calc_example.>".into()];
    u.nats.issuer_account = chain.account.public_key().into();
    u.nats.generic.tags = vec!["deploy:x".into()];
    let json = serde_json::to_string(&u).unwrap();
    let seed = chain.signing_key.seed();
    let v = run_oracle(&["encode", "user", seed.expose(), &json]);
    assert!(v.ok, "{}", v.json);
    let go = v.json["extra"]["jwt"].as_str().unwrap();
    let iat = jwt::decode_user(go).unwrap().data.iat;
    assert_eq!(jwt::encode(&mut u, &chain.signing_key, iat).unwrap(), go);

    let mut a = chain.account_claims.clone();
    a.nats.revocations.insert("*".into(), 1000);
    let mut scope = UserScope::new(chain.signing_key.public_key(), "r");
    scope.template.publish.allow = vec!["svc.>".into()];
    a.nats.signing_keys.add_scoped(scope);
    let json = serde_json::to_string(&a).unwrap();
    let seed = chain.operator.seed();
    let v = run_oracle(&["encode", "account", seed.expose(), &json]);
    assert!(v.ok, "{}", v.json);
    let go = v.json["extra"]["jwt"].as_str().unwrap();
    let iat = jwt::decode_account(go).unwrap().data.iat;
    assert_eq!(jwt::encode(&mut a, &chain.operator, iat).unwrap(), go);

    let mut o: OperatorClaims = jwt::decode_operator(&chain.operator_jwt).unwrap();
    o.nats.signing_keys = vec![KeyPair::generate(KeyKind::Operator).public_key().into()];
    o.nats.strict_signing_key_usage = true;
    let json = serde_json::to_string(&o).unwrap();
    let v = run_oracle(&["encode", "operator", chain.operator.seed().expose(), &json]);
    assert!(v.ok, "{}", v.json);
    let go = v.json["extra"]["jwt"].as_str().unwrap();
    let iat = jwt::decode_operator(go).unwrap().data.iat;
    assert_eq!(jwt::encode(&mut o, &chain.operator, iat).unwrap(), go);
}

#[test]
fn creds_bytes_are_the_go_bytes_then_the_grants() {
    let chain = Chain::new();
    let signer = AccountSigner::new(chain.account.clone(), None).unwrap();
    let (_root, report) = sign_one(&chain, signer);
    let text = std::fs::read(&report.services[0].path).unwrap();
    let parsed = creds::parse_creds(&text).unwrap();
    let seed = parsed.key.seed();
    let out = std::process::Command::new(common::oracle())
        .args(["format-creds", &parsed.jwt, seed.expose()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(*creds::format_user_config(&parsed.jwt, &seed), out.stdout);
    assert!(text.starts_with(&out.stdout));
    let rest = String::from_utf8(text[out.stdout.len()..].to_vec()).unwrap();
    assert!(
        rest.lines().all(|l| l.is_empty() || l.starts_with("# ")),
        "{rest}"
    );
    // grep danger lists exactly the trust-root grants.
    let text = String::from_utf8(text).unwrap();
    let danger: Vec<&str> = text.lines().filter(|l| l.contains("danger")).collect();
    assert_eq!(
        danger,
        ["# PUB microbus.danger.666.calc_example.access_token_core.*.POST.mint"]
    );
    assert_eq!(
        report.services[0].danger_grants,
        ["PUB microbus.danger.666.calc_example.access_token_core.*.POST.mint"]
    );
    // A key file round trip through the oracle's parser too.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("u.nk");
    keyfile::write_key_file(&parsed.key, &p).unwrap();
    assert_eq!(
        keyfile::load_key_file(&p, Some(KeyKind::User))
            .unwrap()
            .public_key(),
        parsed.key.public_key()
    );
}
