//! The `busop` binary: parse, run, print, exit. Everything else is in the library.

#![forbid(unsafe_code)]

use std::io::Write as _;

fn main() -> std::process::ExitCode {
    let outcome = busop::run(std::env::args_os());
    // A closed pipe (busop … | head) is not an error worth a panic.
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    std::process::ExitCode::from(outcome.code)
}
