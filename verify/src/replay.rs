//! A bounded, lock-free replay cache for DPoP proofs (RFC 9449 §11.1).
//!
//! A fixed table of `AtomicU64` slots, allocated once (8 bytes per slot), in buckets of 8 (one
//! cache line). A proof is identified by SHA-256(salt ‖ jkt ‖ 0 ‖ jti), with a random per-cache
//! salt so that nobody can aim proofs at one bucket: the hash picks the bucket and gives a
//! 32-bit tag; a slot holds `tag << 32 | expiry` (unix seconds), 0 when empty. A slot whose
//! expiry has passed is free again: no sweeping, no allocation, no lock.
//!
//! Inserting scans the bucket for a live slot with the same tag (a replay), then claims a free
//! slot with one compare-and-swap, then scans again: if another thread claimed a different
//! slot for the same proof meanwhile, at least one of the two sees the other's slot (all
//! operations are sequentially consistent) and reports a replay. So of any number of concurrent
//! presentations of one proof at most one is fresh. A bucket whose 8 slots are all live refuses
//! new proofs ([`Seen::Full`]): failing closed rather than forgetting a proof that could still
//! be replayed. Size the cache for ~10× the proofs live at once (see the README).

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::digest;

const BUCKET: usize = 8;
/// Compare-and-swap attempts before a heavily contended bucket is reported full.
const MAX_ATTEMPTS: usize = 16;

/// What [`ReplayCache::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First presentation: now recorded until its expiry.
    Fresh,
    /// Already recorded and not expired.
    Replay,
    /// No free slot in the proof's bucket.
    Full,
}

pub(crate) struct ReplayCache {
    slots: Box<[AtomicU64]>,
    buckets: usize,
    salt: [u8; 16],
}

impl ReplayCache {
    /// A cache of at least `capacity` slots (rounded up to a power-of-two number of buckets).
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        let buckets = capacity.div_ceil(BUCKET).max(1).next_power_of_two();
        let slots = (0..buckets * BUCKET).map(|_| AtomicU64::new(0)).collect();
        let mut salt = [0u8; 16];
        // Without the OS RNG the salt stays zero: buckets become predictable, nothing else.
        let _ = aws_lc_rs::rand::fill(&mut salt);
        ReplayCache {
            slots,
            buckets,
            salt,
        }
    }

    /// Number of slots.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Records the proof (`jkt`, `jti`) until `expires_at` unless it is already recorded.
    pub(crate) fn insert(&self, jkt: &str, jti: &str, expires_at: u64, now: u64) -> Seen {
        let mut h = digest::Context::new(&digest::SHA256);
        h.update(&self.salt);
        h.update(jkt.as_bytes());
        h.update(&[0]);
        h.update(jti.as_bytes());
        let d = h.finish();
        let d = d.as_ref();
        let index = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let tag = u32::from_le_bytes([d[8], d[9], d[10], d[11]]).max(1);
        let bucket = (index as usize) & (self.buckets - 1);
        let slots = &self.slots[bucket * BUCKET..(bucket + 1) * BUCKET];
        let now32 = clamp32(now);
        let value = (u64::from(tag) << 32) | u64::from(clamp32(expires_at).max(now32 + 1));
        let live = |v: u64| v != 0 && (v as u32) > now32;
        let mine = |v: u64| live(v) && (v >> 32) as u32 == tag;
        for _ in 0..MAX_ATTEMPTS {
            let mut free = None;
            for (i, slot) in slots.iter().enumerate() {
                let v = slot.load(Ordering::SeqCst);
                if mine(v) {
                    return Seen::Replay;
                }
                if free.is_none() && !live(v) {
                    free = Some((i, v));
                }
            }
            let Some((i, old)) = free else {
                return Seen::Full;
            };
            if slots[i]
                .compare_exchange(old, value, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            let raced = slots
                .iter()
                .enumerate()
                .any(|(j, s)| j != i && mine(s.load(Ordering::SeqCst)));
            return if raced { Seen::Replay } else { Seen::Fresh };
        }
        Seen::Full
    }
}

fn clamp32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    const NOW: u64 = 1_900_000_000;

    #[test]
    fn once_until_expiry() {
        let c = ReplayCache::new(64);
        assert_eq!(c.insert("k", "j1", NOW + 60, NOW), Seen::Fresh);
        assert_eq!(c.insert("k", "j1", NOW + 60, NOW + 59), Seen::Replay);
        assert_eq!(c.insert("other-key", "j1", NOW + 60, NOW), Seen::Fresh);
        assert_eq!(c.insert("k", "j2", NOW + 60, NOW), Seen::Fresh);
        // Expired: the slot is free again (the proof is refused by age before it gets here).
        assert_eq!(c.insert("k", "j1", NOW + 200, NOW + 60), Seen::Fresh);
    }

    #[test]
    fn memory_is_bounded_and_a_full_bucket_fails_closed() {
        let c = ReplayCache::new(8); // one bucket
        assert_eq!(c.capacity(), 8);
        for i in 0..8 {
            assert_eq!(c.insert("k", &format!("j{i}"), NOW + 60, NOW), Seen::Fresh);
        }
        assert_eq!(c.insert("k", "j8", NOW + 60, NOW), Seen::Full);
        for i in 0..8 {
            assert_eq!(c.insert("k", &format!("j{i}"), NOW + 60, NOW), Seen::Replay);
        }
        // Once they expire, room again.
        assert_eq!(c.insert("k", "j8", NOW + 200, NOW + 61), Seen::Fresh);
    }

    #[test]
    fn concurrent_presentations_of_one_proof_have_at_most_one_winner() {
        let c = Arc::new(ReplayCache::new(1 << 10));
        for round in 0..200 {
            let n = 8;
            let barrier = Arc::new(Barrier::new(n));
            let jti = format!("jti-{round}");
            let fresh: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..n)
                    .map(|_| {
                        let (c, b, jti) = (c.clone(), barrier.clone(), jti.clone());
                        s.spawn(move || {
                            b.wait();
                            usize::from(c.insert("k", &jti, NOW + 60, NOW) == Seen::Fresh)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
            });
            assert!(fresh <= 1, "round {round}: {fresh} winners");
            assert_eq!(c.insert("k", &jti, NOW + 60, NOW), Seen::Replay);
        }
    }
}
