//! The allocator settings the analyzer runs with, and the one way to apply
//! them without `unsafe`: re-running the current executable with them in
//! its environment (mimalloc reads its options once, at process start).
//!
//! The setting: `MIMALLOC_PURGE_DELAY=-1`, mimalloc never hands freed
//! pages back to the kernel during the run. A scan allocates and frees a
//! syn tree per file and keeps every file's lowered form; with the default
//! delay (10 ms) freed pages are returned and then faulted in (and zeroed)
//! again, which measured 11% of all cycles in a profile of the benchmark
//! (`clear_page_erms`) and moved the full scan from 1.68x to 1.04x of the
//! parse floor (docs/benchmarks-gencreds.md). The price is a higher peak
//! resident size (about 14% on the million-line benchmark); a scan is a
//! short-lived process, so the pages are released at exit.

use std::ffi::OsString;
use std::process::Command;

/// The environment variable and the value set.
pub const PURGE_DELAY: (&str, &str) = ("MIMALLOC_PURGE_DELAY", "-1");

/// When the settings are not yet in the environment, runs the current
/// executable again with them (same arguments, `argv[0]`, standard streams
/// and working folder) and returns its exit code; `None` when they are
/// already set (the caller goes on in this process) or when the executable
/// cannot be run again (the caller goes on with the default settings).
/// A child ended by a signal yields 2, a tool failure.
pub fn rerun_with_settings(args: &[OsString]) -> Option<i32> {
    if std::env::var_os(PURGE_DELAY.0).is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let mut cmd = Command::new(exe);
    cmd.args(args.iter().skip(1))
        .env(PURGE_DELAY.0, PURGE_DELAY.1);
    #[cfg(unix)]
    if let Some(argv0) = args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
    }
    let status = cmd.status().ok()?;
    Some(status.code().unwrap_or(2))
}
