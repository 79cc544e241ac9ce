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
//!     cargo bench -p gencreds --bench scan -- [--services N] [--threads N] [--runs N] [--dir PATH] [--toy] [--scan-only]
//!
//! `--scan-only` runs just the full analysis, `--runs` times, and prints
//! each time: a clean process to profile (`perf record`) the scan alone.

#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gencreds::analysis::{Options, analyze, cpu_time};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    services: usize,
    threads: usize,
    runs: usize,
    dir: Option<PathBuf>,
    scan_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        services: 1000,
        threads: 2,
        runs: 5,
        dir: None,
        scan_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let num = |it: &mut dyn Iterator<Item = String>| it.next().and_then(|v| v.parse().ok());
        match x.as_str() {
            "--services" => a.services = num(&mut it).unwrap_or(a.services),
            "--threads" => a.threads = num(&mut it).unwrap_or(a.threads),
            "--runs" => a.runs = num(&mut it).unwrap_or(a.runs),
            "--dir" => a.dir = it.next().map(PathBuf::from),
            "--scan-only" => a.scan_only = true,
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
    status_field("VmHWM")
}

/// One field of `/proc/self/status` (for example `VmHWM`, the peak resident size).
fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
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
    // The analyzer's binary runs with these allocator settings; floor and
    // scan both run under them here (same process).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = gencreds::allocator::rerun_with_settings(&argv) {
        std::process::exit(code);
    }
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
    if a.scan_only {
        for _ in 0..a.runs {
            let t = Instant::now();
            let an = analyze(&root, opts).expect("analyze");
            println!(
                "scan {:.3} s  VmRSS {}  VmHWM {}",
                t.elapsed().as_secs_f64(),
                status_field("VmRSS"),
                status_field("VmHWM")
            );
            drop(an);
        }
        return;
    }
    let cache = root.join("target/gencreds-bench-cache.bin");
    let _ = std::fs::remove_file(&cache);
    let (mut floors, mut scans, mut rescans, mut lowers) = (vec![], vec![], vec![], vec![]);
    let mut rules = 0;
    // Floor and scan run back to back, pair after pair, so both see the
    // same machine load; the ratio reported is the median of the per-pair
    // ratios. The lowering and rescan probes run after each pair.
    let (mut floor_cpu, mut scan_cpu) = (vec![], vec![]);
    for _ in 0..a.runs {
        let c = cpu_time();
        floors.push(floor(&paths, &pool));
        floor_cpu.push(cpu_time() - c);
        let (t, c) = (Instant::now(), cpu_time());
        let an = analyze(&root, opts).expect("analyze");
        scans.push(t.elapsed());
        scan_cpu.push(cpu_time() - c);
        rules = an.services.iter().map(|s| s.rules.len()).sum::<usize>();
        assert!(
            !an.has_errors(),
            "synthetic tree must be clean: {:?}",
            an.diags.first()
        );
        drop(an);
        lowers.push(parse_lower(&paths, &pool));
        let t = Instant::now();
        let an2 = gencreds::analysis::analyze_cached(&root, opts, &cache).expect("rescan");
        rescans.push(t.elapsed());
        std::hint::black_box(an2.services.len());
    }
    // The first cached run fills the cache; report the warm ones.
    let warm: Vec<Duration> = if rescans.len() > 1 {
        rescans[1..].to_vec()
    } else {
        rescans.clone()
    };
    // A lowering or rescan probe is paired with the floor of its own round
    // (a warm rescan of round i with the floor of round i).
    let warm_floors: Vec<Duration> = if floors.len() > 1 {
        floors[1..].to_vec()
    } else {
        floors.clone()
    };
    println!(
        "files {}  services {}  rules {}  threads {}  runs {}",
        paths.len(),
        a.services,
        rules,
        a.threads,
        a.runs
    );
    println!(
        "(times: median [min]; ratio: median of the per-round ratios to that round's floor [range])"
    );
    let (f, fmin) = (median(floors.clone()), min(&floors));
    println!(
        "floor  read + syn::parse_file : {:>7.3} s [{:>6.3}]",
        f.as_secs_f64(),
        fmin.as_secs_f64()
    );
    let row = |name: &str, v: &[Duration], fl: &[Duration]| {
        let (m, lo) = (median(v.to_vec()), min(v));
        let mut r: Vec<f64> = v
            .iter()
            .zip(fl)
            .map(|(x, f)| x.as_secs_f64() / f.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        println!(
            "{name} : {:>7.3} s [{:>6.3}]  ratio {:.2}x [{:.2}x-{:.2}x] floor",
            m.as_secs_f64(),
            lo.as_secs_f64(),
            r[r.len() / 2],
            r[0],
            r[r.len() - 1]
        );
    };
    row("scan   gencreds full analysis ", &scans, &floors);
    row("lower  floor + IR, IR dropped ", &lowers, &floors);
    // CPU time moves less with load than wall time (but counts a
    // sequential phase once where wall time counts it for both cores).
    let mut cr: Vec<f64> = scan_cpu
        .iter()
        .zip(&floor_cpu)
        .map(|(s, f)| s.as_secs_f64() / f.as_secs_f64().max(0.01))
        .collect();
    cr.sort_by(f64::total_cmp);
    println!(
        "scan CPU time / floor CPU time : median {:.2}x [{:.2}x-{:.2}x]  (floor {:.2} s CPU)",
        cr[cr.len() / 2],
        cr[0],
        cr[cr.len() - 1],
        median(floor_cpu.clone()).as_secs_f64()
    );
    row("rescan unchanged, file cache  ", &warm, &warm_floors);
    println!("peak memory (VmHWM)           : {}", vm_hwm());
}
