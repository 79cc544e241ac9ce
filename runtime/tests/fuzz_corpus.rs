//! Replays every committed seed of the `decode_message` fuzz target
//! (`fuzz/corpus/decode_message/*`) through the check the libFuzzer target
//! runs, so CI on stable covers them, crash reproducers included.

#[path = "../../fuzz/message_checks.rs"]
mod message_checks;

#[test]
fn every_decode_message_seed_passes_its_check() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_message");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(entries.len() >= 10, "only {} seeds", entries.len());
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| message_checks::decode_message(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
    }
}
