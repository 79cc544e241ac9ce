//! The `.creds` signing benchmark, shared by the bench command
//! (`cargo bench -p buswarden-creds --bench sign_creds`) and a toy-size test.
//!
//! Signs `.creds` for N services through the real pipeline
//! (`sign::sign_services`: validate, mint a user key, encode and sign the
//! JWT, format the file, write it 0600 atomically) and, in the same run, the
//! baseline: bare ed25519 signatures (nkeys `KeyPair::sign`) over payloads
//! of the same sizes as the JWTs' signing inputs. Medians over rounds.

use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::sign::{self, AccountSigner, DeployId, ServiceAcl, SignOptions};
use buswarden_rules::{Hostname, Rule, RuleSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Services signed per round.
    pub services: usize,
    /// Rounds measured.
    pub rounds: usize,
    /// Median time of the whole pipeline into a fresh folder, no fsync.
    pub pipeline: Duration,
    /// Median time of the whole pipeline replacing the files of a previous run.
    pub pipeline_overwrite: Duration,
    /// Median time of the whole pipeline with each file's data synced.
    pub pipeline_synced: Duration,
    /// Median time of minting in memory only (no files).
    pub mint_only: Duration,
    /// Median time of the bare ed25519 baseline (one thread).
    pub bare_sign: Duration,
    /// Mean JWT signing-input length.
    pub mean_payload: usize,
}

impl Figures {
    /// `.creds` per second through the pipeline.
    pub fn creds_per_sec(&self) -> f64 {
        self.services as f64 / self.pipeline.as_secs_f64()
    }

    /// Pipeline time over bare signing time.
    pub fn ratio(&self) -> f64 {
        self.pipeline.as_secs_f64() / self.bare_sign.as_secs_f64()
    }

    /// A human report.
    pub fn render(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        format!(
            "sign_creds: {} services, median of {} rounds, {} hardware threads\n\
             \x20 pipeline (validate, mint, sign, format, write 0600 to a fresh folder, no fsync): {:8.2} ms  {:9.0} creds/s\n\
             \x20 pipeline, replacing the previous run's files:                                   {:8.2} ms  {:9.0} creds/s\n\
             \x20 pipeline, fresh folder, each file synced:                                       {:8.2} ms  {:9.0} creds/s\n\
             \x20 mint in memory only, 1 thread (no files):                      {:8.2} ms  {:9.0} creds/s\n\
             \x20 baseline: bare ed25519 sign, same-size payloads ({} B mean), 1 thread: {:8.2} ms  {:9.0} sig/s\n\
             \x20 ratio pipeline / bare signing: {:.2}x\n\
             \x20 target 1,000 services under 100 ms: {}",
            self.services,
            self.rounds,
            threads,
            ms(self.pipeline),
            self.creds_per_sec(),
            ms(self.pipeline_overwrite),
            self.services as f64 / self.pipeline_overwrite.as_secs_f64(),
            ms(self.pipeline_synced),
            self.services as f64 / self.pipeline_synced.as_secs_f64(),
            ms(self.mint_only),
            self.services as f64 / self.mint_only.as_secs_f64(),
            self.mean_payload,
            ms(self.bare_sign),
            self.services as f64 / self.bare_sign.as_secs_f64(),
            self.ratio(),
            if self.services < 1000 {
                "n/a (toy size)".to_string()
            } else if self.pipeline < Duration::from_millis(100) {
                "met".to_string()
            } else {
                "NOT met".to_string()
            }
        )
    }
}

/// `n` services with realistic rule sets: the implicit rules, a dozen
/// calls, an event hook, and a trust-root call for one in ten.
pub fn services(n: usize) -> Vec<ServiceAcl> {
    (0..n)
        .map(|i| {
            let host = format!("svc{i:04}.bench.example");
            let me = host.replace('.', "_");
            let mut rules = vec![
                format!("PUB {{{{plane}}}}.reply._.{me}.>"),
                format!("SUB {{{{plane}}}}.safe.*.*.{me}.>"),
                format!("SUB {{{{plane}}}}.reply._.*.{me}.*"),
                "SUB {{plane}}.safe.888.*.all.>".to_string(),
                format!("SUB {{{{plane}}}}.safe.417.*.svc{:04}_bench_example.*.POST.on-change", (i + 1) % n),
            ];
            for c in 0..12 {
                rules.push(format!(
                    "PUB {{{{plane}}}}.safe.443.{me}.svc{:04}_bench_example.*.GET.api.v1.items.*.call-{c}",
                    (i + c + 1) % n
                ));
            }
            if i % 10 == 0 {
                rules.push(format!(
                    "PUB {{{{plane}}}}.danger.666.{me}.access_token_core.*.POST.mint"
                ));
            }
            ServiceAcl {
                path: format!("svc{i:04}/nats.acl").into(),
                hostname: Hostname::parse(&host).expect("valid hostname"),
                rules: rules
                    .iter()
                    .map(|r| Rule::parse(r).expect("valid rule"))
                    .collect::<RuleSet>(),
            }
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs the benchmark: `n` services, `rounds` rounds, files under `out`
/// (a fresh folder per round; the common deploy case).
pub fn run(n: usize, rounds: usize, out: &Path) -> Figures {
    let services = services(n);
    let account = KeyPair::generate(KeyKind::Account);
    let signer = AccountSigner::new(account.clone(), None).expect("account key");
    let mut opts = SignOptions::new();
    opts.deploy = DeployId::parse("bench").expect("deploy id");
    opts.sync = false;

    // Warm-up, and the payload sizes for the baseline.
    let fresh = |round: &str| out.join(round);
    let report = sign::sign_services(&services, &fresh("warm-up"), &signer, &opts).expect("sign");
    let sizes: Vec<usize> = report
        .services
        .iter()
        .map(|s| s.jwt_len - buswarden_creds::jwt::SIGNATURE_B64_LEN - 1)
        .collect();
    let mean_payload = sizes.iter().sum::<usize>() / sizes.len().max(1);
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect())
        .collect();

    let (mut pipeline, mut overwrite, mut synced, mut mint_only, mut bare) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let t = Instant::now();
        sign::sign_services(&services, &fresh(&format!("r{round}")), &signer, &opts).expect("sign");
        pipeline.push(t.elapsed());

        let t = Instant::now();
        sign::sign_services(&services, &fresh("warm-up"), &signer, &opts).expect("sign");
        overwrite.push(t.elapsed());

        let t = Instant::now();
        let minted: Vec<_> = services
            .iter()
            .map(|s| sign::mint(s, &signer, &opts).expect("mint"))
            .collect();
        mint_only.push(t.elapsed());
        drop(minted);

        let t = Instant::now();
        let mut sink = 0u8;
        for p in &payloads {
            sink ^= account.sign(p).expect("sign")[0];
        }
        bare.push(t.elapsed());
        std::hint::black_box(sink);
    }
    let mut synced_opts = opts.clone();
    synced_opts.sync = true;
    for round in 0..rounds.clamp(1, 3) {
        let t = Instant::now();
        sign::sign_services(
            &services,
            &fresh(&format!("s{round}")),
            &signer,
            &synced_opts,
        )
        .expect("sign");
        synced.push(t.elapsed());
    }
    Figures {
        services: n,
        rounds,
        pipeline: median(pipeline),
        pipeline_overwrite: median(overwrite),
        pipeline_synced: median(synced),
        mint_only: median(mint_only),
        bare_sign: median(bare),
        mean_payload,
    }
}
