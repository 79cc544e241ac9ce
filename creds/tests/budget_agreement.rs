//! `rules::budget` (the estimate `gencreds check` can run before signing)
//! and the signing pipeline agree to the byte: with the model set the way
//! `sign` signs (Go's JSON escaping, the runtime's connection name, the
//! deploy tag, `issuer_account` when a signing key signs), the estimate is
//! the signed JWT's length and its CONNECT line's.

mod common;

use buswarden_creds::connect::{ConnectName as SignName, INSTANCE_ID_LEN};
use buswarden_creds::sign::{self, AccountRef, AccountSigner, DeployId, ServiceAcl, SignOptions};
use buswarden_rules::budget::{self, ConnectModel, ConnectName, JsonFlavor};
use buswarden_rules::{Hostname, Rule, RuleSet};
use common::{Chain, implicit};

#[test]
fn rules_budget_estimate_matches_the_signed_jwt() {
    let chain = Chain::new();
    let mut rules: RuleSet = implicit("calc_example")
        .iter()
        .map(|r| Rule::parse(r).unwrap())
        .collect();
    rules.insert(
        Rule::parse("PUB {{plane}}.safe.443.calc_example.x_example.*.GET.items.*").unwrap(),
    );
    rules.insert(Rule::parse("SUB {{plane}}.safe.417.*.x_example.*.POST.on-x.*").unwrap());
    let svc = ServiceAcl {
        path: "x".into(),
        hostname: Hostname::parse("calc.example").unwrap(),
        rules: rules.clone(),
    };
    for signer in [
        AccountSigner::new(chain.account.clone(), None).unwrap(),
        AccountSigner::new(
            chain.signing_key.clone(),
            Some(AccountRef::parse(&chain.account_jwt).unwrap()),
        )
        .unwrap(),
    ] {
        let mut opts = SignOptions::new();
        opts.deploy = DeployId::parse("d-42").unwrap();
        let m = sign::mint(&svc, &signer, &opts).unwrap();
        let claims = buswarden_creds::jwt::decode_user(&m.jwt).unwrap();
        assert_eq!(
            claims.nats.limits.subscribe.deny,
            [
                "microbus.reply._.*.calc_example.*.>",
                "microbus.safe.417.*.x_example.*.POST.on-x.*.>"
            ]
        );
        let name = SignName::Runtime.for_host("calc.example").unwrap();
        assert_eq!(name.len(), "calc.example".len() + 1 + INSTANCE_ID_LEN);
        let model = ConnectModel {
            json: JsonFlavor::GoEncodingJson,
            issuer_account: signer.issuer_account().is_some(),
            name: ConnectName::Bytes(name.len()),
            extra_claims: r#","tags":["deploy:d-42"]"#.len(),
            ..ConnectModel::default()
        };
        let e = budget::estimate(&svc.hostname, &rules, &model);
        assert_eq!(e.jwt, m.jwt.len(), "jwt");
        assert_eq!(e.connect, m.report.connect_len, "connect");
    }
}
