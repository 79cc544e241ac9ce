//! The ingress's counters, served as Prometheus text on the metrics
//! listener (`/metrics`), next to `/healthz`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the ingress answered.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    by_class: [AtomicU64; 5],
    refused: AtomicU64,
    unauthorized: AtomicU64,
    rate_limited: AtomicU64,
    too_large: AtomicU64,
    bus_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn request(&self) {
        bump(&self.requests);
    }
    pub(crate) fn response(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        bump(&self.by_class[class]);
    }
    pub(crate) fn refused(&self) {
        bump(&self.refused);
    }
    pub(crate) fn unauthorized(&self) {
        bump(&self.unauthorized);
    }
    pub(crate) fn rate_limited(&self) {
        bump(&self.rate_limited);
    }
    pub(crate) fn too_large(&self) {
        bump(&self.too_large);
    }
    pub(crate) fn bus_error(&self) {
        bump(&self.bus_errors);
    }

    /// Requests refused by the firewall, the blocked paths or CORS.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus's text format; `mints` is the number of
    /// `Mint` calls made by the exchange.
    pub fn render(&self, mints: u64) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            "ingress_requests_total",
            "Requests received.",
            get(&self.requests),
        );
        counter(
            "ingress_refused_total",
            "Requests refused before the bus (firewall, blocked path, CORS).",
            get(&self.refused),
        );
        counter(
            "ingress_unauthorized_total",
            "Requests with a bearer token that did not verify or exchange (401).",
            get(&self.unauthorized),
        );
        counter(
            "ingress_rate_limited_total",
            "Requests over the rate limit (429).",
            get(&self.rate_limited),
        );
        counter(
            "ingress_body_too_large_total",
            "Requests over the body limit (413).",
            get(&self.too_large),
        );
        counter(
            "ingress_bus_errors_total",
            "Bus calls that failed.",
            get(&self.bus_errors),
        );
        counter(
            "ingress_token_mints_total",
            "Calls to access.token.core's Mint.",
            mints,
        );
        let _ = writeln!(
            out,
            "# HELP ingress_responses_total Responses by status class.\n# TYPE ingress_responses_total counter"
        );
        for (i, c) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "ingress_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                get(c)
            );
        }
        out
    }
}
