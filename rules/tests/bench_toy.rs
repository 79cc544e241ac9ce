//! Runs the benchmark workloads at toy size, so the bench cannot rot.

#[path = "../benches/workload.rs"]
mod workload;

#[test]
fn bench_runs_at_toy_size() {
    let report = workload::run(workload::Size::Toy);
    for figure in [
        report.encode_ns,
        report.encode_baseline_ns,
        report.derive_us,
        report.derive_baseline_us,
    ] {
        assert!(figure.is_finite() && figure > 0.0, "{report:?}");
    }
    // Every call, event and hook of the toy service is granted, minus the
    // calls a greedy route subsumes, plus the implicit rules.
    let model = workload::service(workload::Size::Toy.calls());
    assert!(report.rules > model.calls.len() / 2, "{report:?}");
    assert!(report.to_string().contains("ratio"), "{report}");
    // The full run is the 200-call service.
    assert_eq!(workload::Size::Full.calls(), 200);
}
