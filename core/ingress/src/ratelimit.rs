//! Rate limits at the edge: a token bucket per key, the key being the
//! verified actor's `sub` when the request carries a valid bearer token,
//! else the client's address (the socket peer, or the address a trusted
//! proxy reports). A client-sent `X-Forwarded-For` never changes the key of
//! a direct peer, so rotating it does not escape the limit.

use crate::config::RateLimit;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; beyond it, full buckets are forgotten first.
const MAX_KEYS: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by caller.
pub struct Limiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// A limiter for `limit`.
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `key`: `Ok` when it may go on, else how long
    /// until it could.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let burst = f64::from(self.limit.burst);
        let rate = self.limit.per_second;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_KEYS {
                buckets.clear();
            }
        }
        let b = match buckets.get_mut(key) {
            Some(b) => b,
            None => buckets.entry(key.to_string()).or_insert(Bucket {
                tokens: burst,
                at: now,
            }),
        };
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_rate_waits_while_another_is_served() {
        let l = Limiter::new(RateLimit {
            per_second: 10.0,
            burst: 2,
        });
        assert!(l.check("ann").is_ok());
        assert!(l.check("ann").is_ok());
        let wait = l.check("ann").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert!(l.check("bob").is_ok());
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.check("ann").is_ok());
    }
}
