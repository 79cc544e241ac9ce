//! The `buswarden-ci` binary: the command line over the library.

#![forbid(unsafe_code)]

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = buswarden_ci::cli::Cli::parse();
    match buswarden_ci::cli::run(cli, &mut std::io::stdout()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("buswarden-ci: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
