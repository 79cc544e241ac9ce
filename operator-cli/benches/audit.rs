//! `cargo bench -p busop`: `busop audit` over a folder of real `.creds`
//! files (2,000; `--toy` or `BUSWARDEN_BENCH_TOY=1`: 20), median of 5 runs,
//! against a baseline measured in the same process: reading each file,
//! parsing it and decoding and verifying its JWT with the creds crate, the
//! least any audit has to do. The ratio is what busop's classification,
//! policy evaluation and report cost on top.
#![forbid(unsafe_code)]

use buswarden_creds::jwt;
use buswarden_creds::sign::{AccountSigner, ServiceAcl, SignOptions, mint};
use buswarden_creds::{KeyKind, KeyPair};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn acl(i: usize) -> String {
    format!(
        "# nats.acl for svc{i}.example
PUB {{{{plane}}}}.danger.666.svc{i}_example.access_token_core.*.POST.mint
PUB {{{{plane}}}}.reply._.svc{i}_example.>
PUB {{{{plane}}}}.safe.443.svc{i}_example.*.*.GET.items.*
PUB {{{{plane}}}}.safe.443.svc{i}_example.store_example.*.GET.items.*
PUB {{{{plane}}}}.safe.443.svc{i}_example.store_example.*.PUT.items.*

SUB {{{{plane}}}}.reply._.*.svc{i}_example.*
SUB {{{{plane}}}}.safe.*.*.svc{i}_example.>
SUB {{{{plane}}}}.safe.888.*.all.>
"
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let toy = std::env::args().any(|a| a == "--toy")
        || std::env::var_os("BUSWARDEN_BENCH_TOY").is_some_and(|v| v != "0");
    let n = if toy { 20 } else { 2000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let key = KeyPair::generate(KeyKind::Account);
    let signer = AccountSigner::new(key, None).expect("signer");
    let opts = SignOptions::new();
    let mut files = Vec::new();
    for i in 0..n {
        let parsed = buswarden_rules::acl::parse(&acl(i)).expect("acl");
        let service = ServiceAcl {
            path: dir.path().join("nats.acl"),
            hostname: parsed.hostname.clone(),
            rules: parsed.rules,
        };
        let minted = mint(&service, &signer, &opts).expect("mint");
        let path = dir.path().join(format!("svc{i}.example_nats.creds"));
        std::fs::write(&path, &*minted.creds).expect("write");
        files.push(path);
    }
    let runs = 5;
    let mut base = Vec::new();
    let mut audit = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for f in &files {
            let bytes = std::fs::read(f).expect("read");
            let c = buswarden_creds::parse_creds(&bytes).expect("creds");
            black_box(jwt::decode_user(&c.jwt).expect("jwt"));
        }
        base.push(t.elapsed());
        let t = Instant::now();
        let r = busop::audit::run(dir.path(), None, Duration::from_secs(3 * 86400)).expect("audit");
        black_box(&r.json);
        audit.push(t.elapsed());
        assert_eq!(r.json["summary"]["services"], n);
    }
    let (b, a) = (median(base), median(audit));
    println!("busop audit over {n} .creds files, median of {runs} runs");
    println!(
        "  baseline (read + parse + decode/verify): {:>10.2?} ({:.1} µs/file)",
        b,
        b.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "  busop audit (all of the above + classify, policy, report): {:>10.2?} ({:.1} µs/file)",
        a,
        a.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "  ratio audit/baseline: {:.2}",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
