//! The fixture application (`fixtures/app`, built by the runtime work): its
//! committed `nats.acl` files must be exactly what its code says, with no
//! error standing. This is `gencreds check fixtures/app` in CI.
//!
//! Until the application lands in this tree the test says so and checks
//! nothing else; once it is there, a missing or stale `nats.acl` fails it
//! (run `gencreds scan fixtures/app`, review, commit).

use std::path::Path;

#[test]
fn fixture_app_nats_acl_files_are_true_to_code() {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/app");
    if !app.join("README.md").exists() {
        eprintln!("fixtures/app is not in this tree yet; nothing to check");
        return;
    }
    let root = app.to_string_lossy().into_owned();
    let mut out = vec![];
    let mut err = vec![];
    let code = gencreds::cli::run(["gencreds", "check", &root], &mut out, &mut err);
    assert_eq!(
        code,
        0,
        "gencreds check fixtures/app failed:\n{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
}

/// The framework's own services (`core/`: access.token.core,
/// bearer.token.core) are checked like any user service.
#[test]
fn core_services_nats_acl_files_are_true_to_code() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core");
    let root = core.to_string_lossy().into_owned();
    let mut out = vec![];
    let mut err = vec![];
    let code = gencreds::cli::run(["gencreds", "check", &root], &mut out, &mut err);
    assert_eq!(
        code,
        0,
        "gencreds check core failed:\n{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    assert!(text.contains("2 service(s)"), "{text}");
}
