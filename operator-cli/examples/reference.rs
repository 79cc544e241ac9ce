//! Prints the busop command reference (Markdown) generated from the clap
//! definitions; docs/busop.md embeds it between its REFERENCE markers:
//! `cargo run -p busop --example reference`.

fn main() {
    print!("{}", busop::reference::markdown());
}
