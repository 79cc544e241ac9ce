//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`)
//! through the same checks the libFuzzer targets run, so CI on stable covers
//! them, crash reproducers included.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 10,
        "{target}: only {} seeds in {}",
        entries.len(),
        dir.display()
    );
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
    }
}

#[test]
fn decode_subject_corpus() {
    replay("decode_subject", checks::decode_subject);
}

#[test]
fn parse_acl_corpus() {
    replay("parse_acl", checks::parse_acl);
}

#[test]
fn parse_policy_corpus() {
    replay("parse_policy", checks::parse_policy);
}

#[test]
fn parse_route_corpus() {
    replay("parse_route", checks::parse_route);
}
