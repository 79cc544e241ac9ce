//! Replays the fuzz corpora (creds/fuzz/corpus) as ordinary tests: `ok-*`
//! inputs decode, `bad-*` inputs give a typed error, none panics. Then
//! random mutations of fresh, valid tokens and `.creds` files (made here:
//! the corpus holds no usable seed).

use buswarden_creds::claims::UserClaims;
use buswarden_creds::creds::{self, GrantsBlock};
use buswarden_creds::jwt;
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_rules::Verb;
use proptest::prelude::*;
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus {target} is missing");
    files
}

#[test]
fn jwt_corpus() {
    for (name, bytes) in corpus("jwt_decode") {
        let text = String::from_utf8_lossy(&bytes);
        let got = jwt::decode(&text);
        if name.starts_with("ok-") {
            assert!(got.is_ok(), "{name}: {:?}", got.err());
        } else {
            assert!(got.is_err(), "{name} decoded");
        }
    }
}

#[test]
fn creds_corpus() {
    for (name, bytes) in corpus("creds_parse") {
        let got = creds::parse_creds(&bytes);
        assert_eq!(name.starts_with("ok-"), got.is_ok(), "{name}: {got:?}");
        let _ = creds::parse_grants(&String::from_utf8_lossy(&bytes));
    }
}

/// One valid token and `.creds` file, made once per test run.
fn fresh() -> (String, Vec<u8>) {
    static FRESH: std::sync::OnceLock<(String, Vec<u8>)> = std::sync::OnceLock::new();
    FRESH.get_or_init(make).clone()
}

fn make() -> (String, Vec<u8>) {
    let account = KeyPair::generate(KeyKind::Account);
    let user = KeyPair::generate(KeyKind::User);
    let mut c = UserClaims::new_user(user.public_key());
    c.nats.limits.publish.allow = vec!["microbus.reply._.a_example.>".into()];
    c.nats.limits.subscribe.allow = vec!["microbus.reply._.*.a_example.*".into()];
    let token = jwt::encode(&mut c, &account, jwt::now()).unwrap();
    let block = GrantsBlock {
        hostname: "a.example".into(),
        plane: "microbus".into(),
        deploy: "1".into(),
        expires: 0,
        grants: vec![(Verb::Pub, "microbus.safe.443.a_example.b.*.GET.x---".into())],
    };
    let file = creds::format_creds(&token, &user.seed(), &block).to_vec();
    (token, file)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mutated_tokens_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let (token, _) = fresh();
        prop_assert!(jwt::decode(&token).is_ok());
        let mut bytes = token.into_bytes();
        let i = at.index(bytes.len());
        let changed = bytes[i] != byte;
        bytes[i] = byte;
        let text = String::from_utf8_lossy(&bytes);
        let got = jwt::decode(&text);
        // Any change is caught, except in the unused low bits of the
        // signature's last base64 character (Go reads those leniently too).
        if changed && i != bytes.len() - 1 {
            prop_assert!(got.is_err(), "a changed byte at {} went unnoticed", i);
        }
    }

    #[test]
    fn mutated_creds_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let (_, mut file) = fresh();
        prop_assert!(creds::parse_creds(&file).is_ok());
        let i = at.index(file.len());
        file[i] = byte;
        let _ = creds::parse_creds(&file);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = jwt::decode(&text);
        let _ = creds::parse_creds(text.as_bytes());
    }
}
