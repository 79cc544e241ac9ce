//! The `gencreds` binary: the command line over the library.

#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = gencreds::cli::run(std::env::args_os(), &mut stdout.lock(), &mut stderr.lock());
    std::process::exit(code);
}
