//! The scan benchmark: generates a synthetic workspace (1,000 services,
//! about a million lines by default), then measures in the same process,
//! with the same threads:
//!
//! - the floor: reading every analysed file and `syn::parse_file`-ing it;
//! - a full `gencreds` analysis (parse, lower, resolve, derive);
//! - a rescan of the unchanged tree with the file cache;
//!
//! and prints medians, ratios to the floor and peak memory (VmHWM).
//!
//!     cargo bench -p gencreds --bench scan -- [--services N] [--threads N] [--runs N] [--dir PATH] [--toy]

#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gencreds::analysis::{Options, analyze};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    services: usize,
    threads: usize,
    runs: usize,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        services: 1000,
        threads: 2,
        runs: 3,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let num = |it: &mut dyn Iterator<Item = String>| it.next().and_then(|v| v.parse().ok());
        match x.as_str() {
            "--services" => a.services = num(&mut it).unwrap_or(a.services),
            "--threads" => a.threads = num(&mut it).unwrap_or(a.threads),
            "--runs" => a.runs = num(&mut it).unwrap_or(a.runs),
            "--dir" => a.dir = it.next().map(PathBuf::from),
            "--toy" => {
                a.services = 20;
                a.runs = 1;
            }
            _ => {}
        }
    }
    a
}

fn min(v: &[Duration]) -> Duration {
    v.iter().copied().min().unwrap_or_default()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "n/a".into())
}

fn floor(paths: &[PathBuf], pool: &rayon::ThreadPool) -> Duration {
    let t = Instant::now();
    let items: usize = pool.install(|| {
        paths
            .par_iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let n = syn::parse_file(&text).map(|f| f.items.len()).unwrap_or(0);
                proc_macro2::extra::invalidate_current_thread_spans();
                n
            })
            .sum()
    });
    std::hint::black_box(items);
    t.elapsed()
}

/// The floor plus lowering to the analyzer's IR, dropped at once: separates
/// the cost of lowering from the cost of keeping the IR.
fn parse_lower(paths: &[PathBuf], pool: &rayon::ThreadPool) -> Duration {
    let t = Instant::now();
    let items: usize = pool.install(|| {
        paths
            .par_iter()
            .map(|p| {
                let f = gencreds::source::parse_one(p, gencreds::source::Limits::default());
                f.ir.items.len()
            })
            .sum()
    });
    std::hint::black_box(items);
    t.elapsed()
}

fn main() {
    let a = args();
    let tmp;
    let root: PathBuf = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_path_buf()
        }
    };
    let t = Instant::now();
    let stats = if root.join("Cargo.toml").exists() && a.dir.is_some() {
        None
    } else {
        Some(gencreds::synth::generate(&root, a.services).expect("generate"))
    };
    if let Some(s) = stats {
        println!(
            "generated {} crates, {} files, {} lines, {:.1} MB in {:.2?}",
            s.crates,
            s.files,
            s.lines,
            s.bytes as f64 / 1e6,
            t.elapsed()
        );
    }
    let ws = gencreds::workspace::discover(&root).expect("discover");
    let paths: Vec<PathBuf> = ws
        .crates
        .iter()
        .flat_map(|c| c.files.iter().cloned())
        .collect();
    let pool = gencreds::source::pool(a.threads).expect("thread pool");
    let opts = Options {
        threads: a.threads,
        ..Options::default()
    };
    let cache = root.join("target/gencreds-bench-cache.bin");
    let _ = std::fs::remove_file(&cache);
    let (mut floors, mut scans, mut rescans, mut lowers) = (vec![], vec![], vec![], vec![]);
    let mut rules = 0;
    for _ in 0..a.runs {
        floors.push(floor(&paths, &pool));
        lowers.push(parse_lower(&paths, &pool));
        let t = Instant::now();
        let an = analyze(&root, opts).expect("analyze");
        scans.push(t.elapsed());
        rules = an.services.iter().map(|s| s.rules.len()).sum::<usize>();
        assert!(
            !an.has_errors(),
            "synthetic tree must be clean: {:?}",
            an.diags.first()
        );
        let t = Instant::now();
        let an2 = gencreds::analysis::analyze_cached(&root, opts, &cache).expect("rescan");
        rescans.push(t.elapsed());
        assert_eq!(an2.services.len(), an.services.len());
    }
    // The first cached run fills the cache; report the warm ones.
    let warm: Vec<Duration> = if rescans.len() > 1 {
        rescans[1..].to_vec()
    } else {
        rescans.clone()
    };
    println!(
        "files {}  services {}  rules {}  threads {}  runs {}  (median; min in brackets: the machine is shared)",
        paths.len(),
        a.services,
        rules,
        a.threads,
        a.runs
    );
    let (f, fmin) = (median(floors.clone()), min(&floors));
    let row = |name: &str, v: &[Duration]| {
        let (m, lo) = (median(v.to_vec()), min(v));
        println!(
            "{name} : {:>7.3} s [{:>6.3}]  ratio {:.2}x [{:.2}x] floor",
            m.as_secs_f64(),
            lo.as_secs_f64(),
            m.as_secs_f64() / f.as_secs_f64(),
            lo.as_secs_f64() / fmin.as_secs_f64()
        );
    };
    println!(
        "floor  read + syn::parse_file : {:>7.3} s [{:>6.3}]",
        f.as_secs_f64(),
        fmin.as_secs_f64()
    );
    row("lower  floor + IR, IR dropped ", &lowers);
    row("scan   gencreds full analysis ", &scans);
    row("rescan unchanged, file cache  ", &warm);
    println!("peak memory (VmHWM)           : {}", vm_hwm());
}
