//! `cargo bench -p buswarden-rules`: the cost of encoding a request subject
//! and of deriving a 200-call service's rule set, each as a median with a
//! ratio to a baseline measured in the same process. `--toy` (or
//! `BUSWARDEN_BENCH_TOY=1`) runs a tiny version in milliseconds.
#![forbid(unsafe_code)]

mod workload;

fn main() {
    let toy = std::env::args().any(|a| a == "--toy")
        || std::env::var_os("BUSWARDEN_BENCH_TOY").is_some_and(|v| v != "0");
    let size = if toy {
        workload::Size::Toy
    } else {
        workload::Size::Full
    };
    println!("{}", workload::run(size));
}
