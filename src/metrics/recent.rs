//! The last hour, minute by minute, of this replica's traffic: the admin console's overview
//! (`/console`). Prometheus counters only grow and say nothing about "the last hour", and this
//! server keeps no time series; so the hooks that count for `/metrics` also add to one of 60
//! per-minute slots (relaxed atomics, no lock: the hot paths pay a clock read and a few
//! adds). A slot is cleared when its minute comes round again; an increment racing that
//! clearing may land in the wrong minute, which a chart can afford.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::model::GrantType;

pub const MINUTES: usize = 60;
/// Latency buckets (seconds), the same as `/metrics`; one more slot counts the slower rest.
pub const BUCKETS: [f64; 14] = super::LATENCY_BUCKETS;

#[derive(Default)]
struct Slot {
    minute: AtomicI64,
    tokens: [AtomicU64; GrantType::ALL.len()],
    login_failures: AtomicU64,
    refresh_reuse: AtomicU64,
    requests: AtomicU64,
    latency: [AtomicU64; BUCKETS.len() + 1],
}

impl Slot {
    fn clear(&self) {
        for c in self.tokens.iter().chain(self.latency.iter()).chain([
            &self.login_failures,
            &self.refresh_reuse,
            &self.requests,
        ]) {
            c.store(0, Relaxed);
        }
    }
}

pub struct Recent {
    slots: [Slot; MINUTES],
}

/// One minute, as the overview shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Minute {
    /// Unix time of the minute's start.
    pub at: i64,
    /// Tokens issued, by grant (`GrantType::ALL` order).
    pub tokens: [u64; GrantType::ALL.len()],
    pub login_failures: u64,
    pub refresh_reuse: u64,
    pub requests: u64,
    pub latency: [u64; BUCKETS.len() + 1],
}

impl Minute {
    pub fn tokens_total(&self) -> u64 {
        self.tokens.iter().sum()
    }
}

/// The latency under which `q` (0..1) of the requests counted in `buckets` finished: the upper
/// bound of the bucket holding that rank (`None` with no request, `f64::INFINITY` past the
/// last bound).
pub fn quantile(buckets: &[u64; BUCKETS.len() + 1], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
        }
    }
    Some(f64::INFINITY)
}

fn now_minute() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    secs / 60
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

impl Recent {
    fn slot(&self, minute: i64) -> &Slot {
        let s = &self.slots[minute.rem_euclid(MINUTES as i64) as usize];
        let seen = s.minute.load(Relaxed);
        if seen != minute
            && s.minute
                .compare_exchange(seen, minute, Relaxed, Relaxed)
                .is_ok()
        {
            s.clear();
        }
        s
    }

    pub fn token_issued(&self, grant: GrantType) {
        self.token_issued_at(grant, now_minute());
    }

    fn token_issued_at(&self, grant: GrantType, minute: i64) {
        let i = GrantType::ALL.iter().position(|g| *g == grant).unwrap_or(0);
        self.slot(minute).tokens[i].fetch_add(1, Relaxed);
    }

    pub fn login_failed(&self) {
        self.slot(now_minute()).login_failures.fetch_add(1, Relaxed);
    }

    pub fn refresh_reuse_detected(&self) {
        self.slot(now_minute()).refresh_reuse.fetch_add(1, Relaxed);
    }

    pub fn request(&self, seconds: f64) {
        self.request_at(seconds, now_minute());
    }

    fn request_at(&self, seconds: f64, minute: i64) {
        let s = self.slot(minute);
        s.requests.fetch_add(1, Relaxed);
        let b = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        s.latency[b].fetch_add(1, Relaxed);
    }

    /// The last [`MINUTES`] minutes up to the current one, oldest first; a minute nothing
    /// happened in (or whose slot already holds a newer minute) is zeros.
    pub fn last_hour(&self) -> Vec<Minute> {
        self.last_hour_at(now_minute())
    }

    fn last_hour_at(&self, current: i64) -> Vec<Minute> {
        (current - MINUTES as i64 + 1..=current)
            .map(|m| {
                let s = &self.slots[m.rem_euclid(MINUTES as i64) as usize];
                let mut out = Minute {
                    at: m * 60,
                    ..Minute::default()
                };
                if s.minute.load(Relaxed) == m {
                    for (o, c) in out.tokens.iter_mut().zip(&s.tokens) {
                        *o = c.load(Relaxed);
                    }
                    for (o, c) in out.latency.iter_mut().zip(&s.latency) {
                        *o = c.load(Relaxed);
                    }
                    out.login_failures = s.login_failures.load(Relaxed);
                    out.refresh_reuse = s.refresh_reuse.load(Relaxed);
                    out.requests = s.requests.load(Relaxed);
                }
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_kept_for_an_hour_then_reused() {
        let r = Recent::default();
        let m0 = 29_000_000;
        r.token_issued_at(GrantType::RefreshToken, m0);
        r.token_issued_at(GrantType::RefreshToken, m0);
        r.token_issued_at(GrantType::ClientCredentials, m0 + 1);
        r.request_at(0.003, m0);
        r.request_at(20.0, m0);
        let hour = r.last_hour_at(m0 + 1);
        assert_eq!(hour.len(), MINUTES);
        let (prev, last) = (&hour[MINUTES - 2], &hour[MINUTES - 1]);
        assert_eq!(prev.at, m0 * 60);
        assert_eq!(prev.tokens[1], 2, "refresh_token is GrantType::ALL[1]");
        assert_eq!(last.tokens[2], 1);
        assert_eq!(prev.requests, 2);
        assert_eq!(quantile(&prev.latency, 0.5), Some(0.005));
        assert_eq!(quantile(&prev.latency, 0.99), Some(f64::INFINITY));
        assert_eq!(quantile(&last.latency, 0.99), None);
        // An hour later the same slot holds the new minute, and the old counts are gone.
        r.token_issued_at(GrantType::AuthorizationCode, m0 + 60);
        let hour = r.last_hour_at(m0 + 60);
        assert_eq!(hour[MINUTES - 1].tokens, [1, 0, 0, 0]);
        assert!(
            hour.iter().all(|m| m.tokens[1] == 0),
            "m0 fell out of the hour"
        );
        assert_eq!(hour[0].at, (m0 + 1) * 60, "the hour starts at m0 + 1");
        assert_eq!(hour[0].tokens[2], 1, "m0 + 1 is still in it");
    }
}
