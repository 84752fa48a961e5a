//! Load limits: admission caps on requests that carry audio (503 with
//! `Retry-After` when full, rather than an unbounded queue) and an optional
//! per-client token bucket (429 with `Retry-After`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A counter of admitted requests with a cap; [`Gate::enter`] fails when full.
#[derive(Debug)]
pub struct Gate {
    inside: AtomicUsize,
    cap: usize,
}

/// One admitted request; leaving the scope frees its place.
#[derive(Debug)]
pub struct Pass<'a>(&'a Gate);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(cap: usize) -> Self {
        Self {
            inside: AtomicUsize::new(0),
            cap,
        }
    }

    /// Admits one more request, or `None` when `cap` are already inside.
    pub fn enter(&self) -> Option<Pass<'_>> {
        self.inside
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.cap).then_some(n + 1))
            .ok()
            .map(|_| Pass(self))
    }

    /// Requests inside now.
    pub fn inside(&self) -> usize {
        self.inside.load(Ordering::Acquire)
    }
}

/// A running mean of how long a worker needs per request, for `Retry-After`.
#[derive(Debug, Default)]
pub struct ServiceTime(AtomicU64);

impl ServiceTime {
    /// Folds one request's work time into the mean (weight 1/16).
    pub fn record(&self, d: Duration) {
        let s = d.as_secs_f64();
        let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
            let old = f64::from_bits(bits);
            let new = if bits == 0 { s } else { old + (s - old) / 16.0 };
            Some(new.to_bits())
        });
    }

    /// Seconds a client should wait before retrying when `queued` requests
    /// are ahead of it on `workers` workers: at least 1, at most 60.
    pub fn retry_after(&self, queued: usize, workers: usize) -> u64 {
        let mean = f64::from_bits(self.0.load(Ordering::Acquire));
        let wait = mean * queued as f64 / workers.max(1) as f64;
        (wait.ceil() as u64).clamp(1, 60)
    }
}

/// Per-client token buckets: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug)]
pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Clients remembered at most; beyond it, full (idle) buckets are forgotten.
const MAX_CLIENTS: usize = 100_000;

impl RateLimiter {
    pub fn new(per_minute: f64, burst: f64) -> Self {
        Self {
            per_s: per_minute / 60.0,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `client`'s bucket at `now`: `Ok` when allowed,
    /// `Err(seconds)` to wait before the next one is.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            let (per_s, burst) = (self.per_s, self.burst);
            buckets
                .retain(|_, (tokens, at)| *tokens + per_s * now.saturating_duration_since(*at).as_secs_f64() < burst);
        }
        let (tokens, at) = buckets.entry(client).or_insert((self.burst, now));
        *tokens = (*tokens + self.per_s * now.saturating_duration_since(*at).as_secs_f64()).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_s).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_admits_up_to_its_cap_and_frees_places() {
        let g = Gate::new(2);
        let a = g.enter().expect("first");
        let b = g.enter().expect("second");
        assert!(g.enter().is_none(), "a third must be refused");
        drop(a);
        let c = g.enter().expect("a freed place is reused");
        assert_eq!(g.inside(), 2);
        drop((b, c));
        assert_eq!(g.inside(), 0);
    }

    #[test]
    fn retry_after_follows_the_queue_and_stays_in_bounds() {
        let t = ServiceTime::default();
        assert_eq!(t.retry_after(100, 2), 1, "no measurement yet: 1 s");
        t.record(Duration::from_millis(400));
        assert_eq!(t.retry_after(10, 2), 2, "10 × 0.4 s over 2 workers");
        assert_eq!(t.retry_after(10_000, 1), 60);
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let r = RateLimiter::new(60.0, 3.0);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(r.check(ip, t0).is_ok());
        }
        assert_eq!(r.check(ip, t0), Err(1), "burst spent: one more per second");
        assert!(r.check(other, t0).is_ok(), "clients have their own buckets");
        assert!(r.check(ip, t0 + Duration::from_millis(1000)).is_ok());
        assert!(r.check(ip, t0 + Duration::from_millis(1100)).is_err());
    }
}
