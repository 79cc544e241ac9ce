//! The signing benchmark at toy size: it runs, writes every file, and its
//! figures are consistent.

#[path = "../benches/sign_creds_core.rs"]
mod core;

#[test]
fn benchmark_runs_at_toy_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    let f = core::run(12, 1, &out);
    // One fresh folder per round, plus the warm-up's and the synced run's.
    assert_eq!(std::fs::read_dir(out.join("r0")).unwrap().count(), 12);
    assert_eq!(std::fs::read_dir(out.join("s0")).unwrap().count(), 12);
    assert!(f.pipeline > std::time::Duration::ZERO && f.bare_sign > std::time::Duration::ZERO);
    assert!(f.mean_payload > 500, "realistic JWTs: {}", f.mean_payload);
    let text = f.render();
    assert!(text.contains("creds/s") && text.contains("ratio"), "{text}");
    assert!(text.contains("n/a (toy size)"));
}
