//! The reachability benchmark: on the scan benchmark's synthetic workspace
//! (1,000 services by default), the baseline is `gencreds scan`'s work
//! alone (the full analysis); against it, the same analysis followed by
//! the model and every output (JSON, DOT, HTML, the surface report), run
//! back to back, pair after pair. Prints medians, the median of the
//! per-pair ratios (goal: <= 1.1x), the outputs' sizes (HTML goal: < 5 MB)
//! and, when Debian's `chromium` is installed, how long headless Chromium
//! takes to load the HTML page, run its script and dump the DOM (goal: < 3 s).
//!
//!     cargo bench -p gencreds --bench graph -- [--services N] [--threads N] [--runs N] [--dir PATH] [--toy]

#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gencreds::analysis::{Options, analyze};
use std::path::{Path, PathBuf};
use std::process::Command;
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
        runs: 5,
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn chromium() -> Option<PathBuf> {
    std::env::var_os("BUSWARDEN_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")))
        .filter(|p| p.exists())
}

fn render(chromium: &Path, page: &Path) -> Option<Duration> {
    let profile = tempfile::tempdir().ok()?;
    let t = Instant::now();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .ok()?;
    let took = t.elapsed();
    (out.status.success() && !out.stdout.is_empty()).then_some(took)
}

fn main() {
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
    if !(root.join("Cargo.toml").exists() && a.dir.is_some()) {
        let t = Instant::now();
        let s = gencreds::synth::generate(&root, a.services).expect("generate");
        println!(
            "generated {} crates, {} files, {} lines in {:.2?}",
            s.crates,
            s.files,
            s.lines,
            t.elapsed()
        );
    }
    let opts = Options {
        threads: a.threads,
        ..Options::default()
    };
    let (mut scans, mut fulls, mut outputs, mut ratios) = (vec![], vec![], vec![], vec![]);
    let mut sizes = (0, 0, 0, 0);
    let mut counts = (0, 0, 0);
    let mut html = String::new();
    for _ in 0..a.runs {
        let t = Instant::now();
        let an = analyze(&root, opts).expect("analyze");
        let scan = t.elapsed();
        assert!(!an.has_errors(), "the synthetic tree must be clean");
        drop(an);

        let t = Instant::now();
        let an = analyze(&root, opts).expect("analyze");
        let t_out = Instant::now();
        let model = gencreds::reach::model(&[&an]);
        let json = serde_json::to_string_pretty(&model).expect("json");
        let dot = gencreds::graph::dot(&model);
        html = gencreds::graph::html(&model);
        let surface = model.surface_text();
        let out = t_out.elapsed();
        let full = t.elapsed();
        sizes = (json.len(), dot.len(), html.len(), surface.lines().count());
        counts = (
            model.services.len(),
            model.endpoints.len(),
            model.edges.len(),
        );
        drop(an);

        scans.push(scan);
        fulls.push(full);
        outputs.push(out);
        ratios.push(full.as_secs_f64() / scan.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let mb = |b: usize| b as f64 / 1_048_576.0;
    println!(
        "model: {} services, {} endpoints, {} edges",
        counts.0, counts.1, counts.2
    );
    println!(
        "scan alone (baseline)        median {:.3} s",
        median(scans).as_secs_f64()
    );
    println!(
        "scan + model + all outputs   median {:.3} s (model and outputs alone {:.3} s)",
        median(fulls).as_secs_f64(),
        median(outputs).as_secs_f64()
    );
    println!(
        "ratio (median of {} pairs)    {:.3}x (goal <= 1.1x)",
        a.runs,
        ratios[ratios.len() / 2]
    );
    println!(
        "sizes: json {:.2} MB, dot {:.2} MB, html {:.2} MB (goal < 5 MB), surface {} lines",
        mb(sizes.0),
        mb(sizes.1),
        mb(sizes.2),
        sizes.3
    );
    match chromium() {
        Some(c) => {
            let page = root.join("reachability.html");
            std::fs::write(&page, &html).expect("write the page");
            let mut times: Vec<Duration> = (0..3).filter_map(|_| render(&c, &page)).collect();
            if times.is_empty() {
                println!("chromium render: chromium did not render the page");
            } else {
                times.sort();
                println!(
                    "chromium render (load, script, DOM dump; median of {}): {:.2} s (goal < 3 s)",
                    times.len(),
                    times[times.len() / 2].as_secs_f64()
                );
            }
        }
        None => println!("chromium render: no chromium (source ci/deps.sh installs it)"),
    }
}
