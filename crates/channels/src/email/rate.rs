//! Global and per-domain send rates. Each limit hands out evenly spaced start times (a token
//! bucket of one): a caller reserves the next free slot and sleeps until it, so N messages a
//! second never become N at once followed by a second of silence, and in any second at most N
//! (plus the one on the boundary) start. Time is tokio's, so tests run it paused.
//!
//! `governor` would do the same with more crates, and on its own clock that paused tokio time
//! does not move; the whole limiter is the two functions below.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

/// Domains remembered before the idle ones (whose next slot has passed) are forgotten.
const DOMAINS_KEPT: usize = 10_000;

pub(crate) struct RateLimiter {
    global: Option<Pace>,
    per_domain: Option<DomainPace>,
}

struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

struct DomainPace {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// Rates in messages a second; 0 is no limit.
    pub(crate) fn new(per_second: u32, per_domain_per_second: u32) -> Self {
        let now = Instant::now();
        Self {
            global: interval(per_second).map(|interval| Pace { interval, next: Mutex::new(now) }),
            per_domain: interval(per_domain_per_second).map(|interval| DomainPace { interval, next: Mutex::default() }),
        }
    }

    /// Returns when a message to `domain` may start under both limits. The domain slot is taken
    /// first: a message waiting for a busy domain does not hold a global slot meanwhile.
    pub(crate) async fn wait(&self, domain: &str) {
        if let Some(pace) = &self.per_domain {
            let at = {
                let now = Instant::now();
                let mut next = pace.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if next.len() >= DOMAINS_KEPT {
                    next.retain(|_, at| *at > now);
                }
                let key = domain.to_ascii_lowercase();
                let slot = next.entry(key).or_insert(now);
                reserve(slot, pace.interval, now)
            };
            sleep_if_later(at).await;
        }
        if let Some(pace) = &self.global {
            let at = {
                let now = Instant::now();
                let mut next = pace.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                reserve(&mut next, pace.interval, now)
            };
            sleep_if_later(at).await;
        }
    }
}

fn interval(per_second: u32) -> Option<Duration> {
    (per_second > 0).then(|| Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(per_second))))
}

/// The caller's start time: the next free slot, or now if that has passed (an idle limit saves
/// up no burst).
fn reserve(next: &mut Instant, interval: Duration, now: Instant) -> Instant {
    let at = (*next).max(now);
    *next = at + interval;
    at
}

async fn sleep_if_later(at: Instant) {
    if at > Instant::now() {
        sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Start times of `domains.len()` concurrent callers, relative to the start.
    async fn start_times(limiter: RateLimiter, domains: &[&str]) -> Vec<Duration> {
        let limiter = Arc::new(limiter);
        let start = Instant::now();
        let tasks: Vec<_> = domains
            .iter()
            .map(|domain| {
                let (limiter, domain) = (Arc::clone(&limiter), domain.to_string());
                tokio::spawn(async move {
                    limiter.wait(&domain).await;
                    start.elapsed()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times.sort();
        times
    }

    fn ms(times: &[Duration]) -> Vec<u128> {
        times.iter().map(Duration::as_millis).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn global_limit_spaces_messages_evenly() {
        let times = start_times(RateLimiter::new(10, 0), &["a.example"; 25]).await;
        assert_eq!(ms(&times), (0..25).map(|i| i * 100).collect::<Vec<_>>());
        // No one-second window holds more than 10 starts (plus the one on its closing edge).
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().filter(|u| **u < *t + Duration::from_secs(1)).count();
            assert!(in_window <= 10, "{in_window} starts within a second of {t:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_domain_limit_lets_other_domains_through() {
        let domains = ["a.example", "b.example", "A.EXAMPLE", "a.example", "b.example", "c.example"];
        let times = start_times(RateLimiter::new(0, 4), &domains).await;
        // a.example: 0, 250, 500 ms (case-insensitive); b.example: 0, 250; c.example: 0.
        assert_eq!(ms(&times), vec![0, 0, 0, 250, 250, 500]);
    }

    #[tokio::test(start_paused = true)]
    async fn both_limits_hold_together() {
        let domains = ["a.example", "a.example", "a.example", "b.example", "c.example", "d.example"];
        let times = start_times(RateLimiter::new(20, 2), &domains).await;
        // Global slots every 50 ms; a.example's second and third wait for their domain slots.
        assert_eq!(ms(&times), vec![0, 50, 100, 150, 500, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limit_saves_up_no_burst() {
        let limiter = RateLimiter::new(5, 0);
        limiter.wait("a.example").await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let times = start_times(limiter, &["a.example"; 3]).await;
        assert_eq!(ms(&times), vec![0, 200, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let times = start_times(RateLimiter::new(0, 0), &["a.example"; 100]).await;
        assert!(times.iter().all(Duration::is_zero));
    }
}
