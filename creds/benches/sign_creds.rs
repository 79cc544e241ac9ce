//! `cargo bench -p buswarden-creds --bench sign_creds [-- SERVICES ROUNDS [FOLDER]]`:
//! signs `.creds` for 1,000 services (default) through the real pipeline and
//! prints creds per second and the ratio to bare ed25519 signing of
//! same-size payloads in the same run. Files go to a temporary folder under
//! FOLDER (default: the system's temporary folder). Figures:
//! docs/benchmarks-creds.md.

#![forbid(unsafe_code)]

#[path = "sign_creds_core.rs"]
mod core;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let services = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(9);
    let dir = match args.get(2) {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("temporary folder");
    println!("files under {}", dir.path().display());
    let figures = core::run(services, rounds, &dir.path().join("creds"));
    println!("{}", figures.render());
}
