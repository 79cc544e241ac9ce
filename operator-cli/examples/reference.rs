//! Prints the busop command reference (Markdown) generated from the clap
//! definitions, or with `--write FILE` replaces the part of FILE between its
//! `<!-- REFERENCE START -->` and `<!-- REFERENCE END -->` markers:
//! `cargo run -p busop --example reference -- --write docs/busop.md`.

const START: &str = "<!-- REFERENCE START -->\n";
const END: &str = "<!-- REFERENCE END -->";

fn main() -> std::process::ExitCode {
    let reference = busop::reference::markdown();
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1))
    else {
        print!("{reference}");
        return std::process::ExitCode::SUCCESS;
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{file}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (Some(a), Some(b)) = (text.find(START), text.find(END)) else {
        eprintln!("{file}: no {START:?} ... {END:?} markers");
        return std::process::ExitCode::FAILURE;
    };
    let new = format!("{}{START}{reference}{}", &text[..a], &text[b..]);
    if let Err(e) = std::fs::write(file, new) {
        eprintln!("{file}: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
