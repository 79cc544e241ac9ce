//! The benchmark workloads, shared by the `rules` bench binary (full size)
//! and the `bench_toy` test (toy size): encoding a request subject against a
//! plain `format!` of the same, already escaped tokens, and deriving a
//! 200-call service's rule set against formatting and sorting its rules
//! without subsumption.

use buswarden_rules::derive::{Call, Dest, EventOut, Hook, ServiceModel, derive};
use buswarden_rules::hostname::Hostname;
use buswarden_rules::route::{Method, Route};
use buswarden_rules::subject::{Plane, Position, request};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Instant;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Seconds: the figures for docs/benchmarks.md.
    Full,
    /// Milliseconds: proves the bench runs (used by the tests).
    Toy,
}

impl Size {
    fn encode_iters(self) -> u32 {
        match self {
            Size::Full => 200_000,
            Size::Toy => 2_000,
        }
    }
    fn runs(self) -> usize {
        match self {
            Size::Full => 31,
            Size::Toy => 3,
        }
    }
    /// Calls in the derived service.
    pub fn calls(self) -> usize {
        match self {
            Size::Full => 200,
            Size::Toy => 20,
        }
    }
}

/// The measured figures (medians).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The size measured.
    pub size: Size,
    /// Runs per figure.
    pub runs: usize,
    /// `subject::request`, ns per subject.
    pub encode_ns: f64,
    /// `format!` of the same tokens, ns per subject.
    pub encode_baseline_ns: f64,
    /// `derive` of the service, µs.
    pub derive_us: f64,
    /// Formatting and sorting the same calls' rules without subsumption, µs.
    pub derive_baseline_us: f64,
    /// Calls in the service.
    pub calls: usize,
    /// Rules derived.
    pub rules: usize,
}

impl Report {
    /// Encoding cost over its baseline.
    pub fn encode_ratio(&self) -> f64 {
        self.encode_ns / self.encode_baseline_ns
    }
    /// Derivation cost over its baseline.
    pub fn derive_ratio(&self) -> f64 {
        self.derive_us / self.derive_baseline_us
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "encode request subject: {:.1} ns/op; baseline format! of the escaped tokens: {:.1} ns/op; ratio {:.2}x (median of {} runs x {} subjects)",
            self.encode_ns,
            self.encode_baseline_ns,
            self.encode_ratio(),
            self.runs,
            self.size.encode_iters()
        )?;
        write!(
            f,
            "derive {}-call service rule set: {:.1} us ({} rules); baseline format + sort without subsumption: {:.1} us; ratio {:.2}x (median of {} runs)",
            self.calls,
            self.derive_us,
            self.rules,
            self.derive_baseline_us,
            self.derive_ratio(),
            self.runs
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn h(s: &str) -> Hostname {
    Hostname::parse(s).expect("bench hostnames are valid")
}

fn m(s: &str) -> Method {
    Method::parse(s).expect("bench methods are valid")
}

fn r(s: &str) -> Route {
    Route::parse(s).expect("bench routes are valid")
}

/// A service with `calls` outbound calls to 20 hosts, a mix of plain, path
/// argument, greedy and trust-root routes (some covered by others), plus
/// a few events and hooks.
pub fn service(calls: usize) -> ServiceModel {
    let mut model = ServiceModel::new(h("orders.shop.example"));
    for i in 0..calls {
        let dest = Dest::Host(h(&format!("svc{}.shop.example", i % 20)));
        let (method, route) = match i % 10 {
            0 => ("GET", format!("/items/{{id}}/detail-{i}")),
            1 => ("POST", format!(":444/internal/op-{i}")),
            2 => ("GET", format!("/files-{}/{{path...}}", i % 7)),
            3 => ("GET", format!("/files-{}/sub/file-{i}.txt", i % 7)),
            4 => ("POST", format!(":666/privileged-{i}")),
            5 => ("DELETE", format!("/carts/{{cart}}/lines-{i}/{{line}}")),
            _ => ("GET", format!("/endpoint-{i}/a_b.c")),
        };
        model.calls.push(Call {
            dest,
            method: m(method),
            route: r(&route),
        });
    }
    for i in 0..calls / 20 {
        model.events_out.push(EventOut {
            method: m("POST"),
            route: r(&format!(":417/on-order-{i}")),
        });
        model.hooks.push(Hook {
            source: h(&format!("svc{i}.shop.example")),
            method: m("POST"),
            route: r(&format!(":417/on-change-{i}")),
        });
    }
    model
}

/// The rules of `model` formatted and sorted, with no subsumption: what any
/// derivation has to do at the least.
fn baseline_rules(model: &ServiceModel) -> BTreeSet<String> {
    let me = model.hostname.flatten();
    let mut out = BTreeSet::new();
    for c in &model.calls {
        let Dest::Host(d) = &c.dest else { continue };
        out.insert(format!(
            "PUB {{{{plane}}}}.safe.{}.{me}.{}.*.{}.{}",
            c.route.port,
            d.flatten(),
            c.method,
            c.route.path().replace('/', ".")
        ));
    }
    for e in &model.events_out {
        out.insert(format!(
            "PUB {{{{plane}}}}.safe.417.{me}.{me}.*.{}.{}",
            e.method,
            e.route.path().replace('/', ".")
        ));
    }
    out
}

/// Runs every workload at `size`.
pub fn run(size: Size) -> Report {
    let plane = Plane::default();
    let pos = Position::Any;
    let get = m("GET");
    let path = "/items/1234/details.json";
    let n = size.encode_iters();
    let (mut enc, mut base) = (Vec::new(), Vec::new());
    for _ in 0..size.runs() {
        let t = Instant::now();
        for _ in 0..n {
            black_box(request(
                black_box(&plane),
                black_box(443),
                black_box("calculator.example"),
                black_box("other.example"),
                black_box(&pos),
                black_box(&get),
                black_box(path),
            ));
        }
        enc.push(t.elapsed().as_nanos() as f64 / f64::from(n));
        let t = Instant::now();
        for _ in 0..n {
            black_box(format!(
                "{}.{}.{}.{}.{}.{}.{}.{}",
                black_box(plane.as_str()),
                black_box("safe"),
                black_box(443u16),
                black_box("calculator_example"),
                black_box("other_example"),
                black_box("_"),
                black_box(get.as_str()),
                black_box("items.1234.details%2ejson"),
            ));
        }
        base.push(t.elapsed().as_nanos() as f64 / f64::from(n));
    }

    let model = service(size.calls());
    let rules = derive(&model).len();
    let (mut der, mut dbase) = (Vec::new(), Vec::new());
    for _ in 0..size.runs() {
        let t = Instant::now();
        black_box(derive(black_box(&model)));
        der.push(t.elapsed().as_nanos() as f64 / 1000.0);
        let t = Instant::now();
        black_box(baseline_rules(black_box(&model)));
        dbase.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    Report {
        size,
        runs: size.runs(),
        encode_ns: median(enc),
        encode_baseline_ns: median(base),
        derive_us: median(der),
        derive_baseline_us: median(dbase),
        calls: size.calls(),
        rules,
    }
}
