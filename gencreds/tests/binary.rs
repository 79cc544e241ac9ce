//! The `gencreds` binary re-runs itself with the allocator settings
//! (`gencreds::allocator`): the re-run must be invisible, with the same
//! output, exit code and program name as a run that already had them.

use std::process::Command;

fn run(preset: bool, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gencreds"));
    cmd.args(args)
        .env_remove(gencreds::allocator::PURGE_DELAY.0);
    if preset {
        cmd.env(
            gencreds::allocator::PURGE_DELAY.0,
            gencreds::allocator::PURGE_DELAY.1,
        );
    }
    cmd.output().unwrap()
}

#[test]
fn rerun_with_allocator_settings_is_invisible() {
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/app");
    for args in [
        vec!["scan", "--stdout", app],
        vec!["scan", "--stdout", "/nonexistent/gencreds/tree"],
        vec!["--help"],
    ] {
        let rerun = run(false, &args);
        let direct = run(true, &args);
        assert_eq!(rerun.status.code(), direct.status.code(), "{args:?}");
        assert_eq!(rerun.stdout, direct.stdout, "{args:?}");
        assert_eq!(rerun.stderr, direct.stderr, "{args:?}");
    }
    let help = run(false, &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: gencreds"), "{text}");
    let scan = run(false, &["scan", "--stdout", app]);
    assert!(
        String::from_utf8_lossy(&scan.stdout).contains("PUB "),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
}
