//! Replays every committed fuzz corpus file (`claims/fuzz/corpus/parse_claims/*`)
//! through the check the libFuzzer target runs, so CI on stable covers it,
//! crash reproducers included.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn parse_claims_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse_claims");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(entries.len() >= 20, "only {} seeds", entries.len());
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| checks::parse_claims(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
    }
}
