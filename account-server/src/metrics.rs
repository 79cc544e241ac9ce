//! Counters the server exposes on `GET /metrics` in the Prometheus text
//! format. Lock-free: the resolver's hot path only does an atomic add.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! metrics {
    ($($field:ident => $help:literal),* $(,)?) => {
        /// Every counter of the server.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $field: Counter,)*
        }

        impl Metrics {
            /// The Prometheus text exposition of every counter.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let name = concat!("buswarden_account_server_", stringify!($field), "_total");
                    // Writing to a String cannot fail.
                    let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} counter\n{name} {}", $help, self.$field.get());
                )*
                out
            }
        }
    };
}

metrics! {
    resolver_hits => "Account JWTs served by the resolver.",
    resolver_not_modified => "Resolver requests answered 304 Not Modified.",
    resolver_not_found => "Resolver requests for unknown accounts.",
    api_requests => "Authenticated API requests accepted.",
    auth_failures => "API requests refused by authentication or authorization.",
    bad_requests => "API requests refused as invalid.",
    deploys_opened => "Deploys opened.",
    users_signed => "User JWTs signed (including renewals).",
    revocations => "User keys revoked.",
    account_updates => "Account JWTs signed and committed.",
    push_confirmed => "Account JWT pushes confirmed by a nats-server.",
    push_failed => "Account JWT push attempts that failed (retried).",
    store_conflicts => "Changes refused because another replica committed first (re-read, re-applied, retried).",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.resolver_hits.add(3);
        let text = m.render();
        assert!(text.contains("# TYPE buswarden_account_server_resolver_hits_total counter\nbuswarden_account_server_resolver_hits_total 3\n"));
    }
}
