//! The `gencreds` binary: the command line over the library.

#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Never return freed pages to the kernel mid-scan (see the module).
    if let Some(code) = gencreds::allocator::rerun_with_settings(&args) {
        std::process::exit(code);
    }
    // Unlocked handles: worker threads may write to stderr too.
    let code = gencreds::cli::run(args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
