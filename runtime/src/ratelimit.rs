//! The optional per-caller rate limit of a connector's endpoints, keyed on
//! the certified caller: the source segment of the request's subject, which
//! the broker pins to the publisher's own hostname. A service cannot escape
//! it by rotating headers (no header is read), and one caller over its
//! limit does not slow the others. A request over the limit is answered
//! 429 with Microbus's error JSON before its handler runs
//! ([`crate::Connector::with_caller_rate_limit`]).

use compact_str::CompactString;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Callers remembered at most; beyond it, the idle ones are forgotten.
const MAX_CALLERS: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per caller.
pub(crate) struct CallerLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<CompactString, Bucket>>,
}

impl CallerLimiter {
    pub(crate) fn new(per_second: f64, burst: u32) -> CallerLimiter {
        CallerLimiter {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request of `caller` (a flattened hostname): `Err` with how
    /// long until it could pass when it is over its limit.
    pub(crate) fn check(&self, caller: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(caller) {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_CALLERS {
                buckets.clear();
            }
        }
        let b = buckets
            .entry(CompactString::from(caller))
            .or_insert(Bucket {
                tokens: self.burst,
                at: now,
            });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }
}
