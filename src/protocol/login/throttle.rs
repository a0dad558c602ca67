//! Sign-in throttling: failures are charged, successes are not.
//!
//! Three token buckets decide whether a password is checked at all (each allows `burst`
//! failures, then one more every `replenish` seconds):
//!
//! | bucket | key | default | what it stops |
//! |---|---|---|---|
//! | account + address | lower-cased username, client address | 10, then 1 per 60 s | guessing one account from one address |
//! | address | client address | 30, then 1 per 2 s | one address guessing across many accounts (spraying) |
//! | account | lower-cased username | 50, then 1 per 30 s | a guess campaign on one account from many addresses (the backstop) |
//!
//! Addresses are keyed as IPv4 addresses and IPv6 /64 prefixes (one subscriber's network;
//! IPv4-mapped IPv6 addresses count as IPv4). An attempt is refused, without checking the
//! password, when any of its buckets is empty. An attempt that goes ahead takes one token from
//! each bucket first (so concurrent guesses cannot overshoot the budget); if the password is
//! right the tokens are given back, the account + address bucket is forgotten (a successful
//! sign-in clears that account's failures from that address), and the first success of an
//! account from an address in [`CREDIT_WINDOW`] seconds credits that address one more token:
//! an address where many different people sign in (carrier-grade NAT, an office) earns room
//! for their typos, while one attacker with one account of their own earns one guess per
//! window.
//!
//! Because one address alone refills the account bucket more slowly (1 per 60 s) than it
//! drains (1 per 30 s), failures from one address never lock the owner out at another
//! address: only a campaign from several addresses reaches the account-wide backstop.
//!
//! Unknown usernames are throttled exactly like known ones, so throttling does not reveal
//! which accounts exist. Every function takes `now` (unix seconds); memory is bounded by
//! [`MAX_KEYS`] per table and by pruning buckets that are full again.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::config::Config;

/// Entries kept per table at most; past it, full buckets are pruned and then the fullest entry
/// is dropped (a flood of new keys cannot grow memory without bound).
pub const MAX_KEYS: usize = 100_000;
/// A success of one account from one address credits that address at most once per window.
pub const CREDIT_WINDOW: i64 = 600;

/// The address a bucket is keyed by: an IPv4 address, or the /64 an IPv6 address is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl AddressKey {
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&o[..8]);
                    AddressKey::V6Prefix(p)
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Limit {
    burst: f64,
    /// Seconds per token.
    replenish: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: i64,
}

impl Bucket {
    fn level(&self, limit: Limit, now: i64) -> f64 {
        let elapsed = (now - self.at).max(0) as f64;
        (self.tokens + elapsed / limit.replenish).min(limit.burst)
    }
}

/// A keyed set of token buckets behind one mutex: sign-in attempts are few (each costs an
/// argon2 computation), so the lock is never contended for long.
struct Buckets<K> {
    limit: Limit,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    fn new(burst: u32, replenish_secs: u64) -> Self {
        Buckets {
            limit: Limit {
                burst: f64::from(burst.max(1)),
                replenish: replenish_secs.max(1) as f64,
            },
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Bucket>> {
        // A panic while holding the lock cannot leave a bucket half-updated (plain stores).
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds until one token is available (0: available now).
    fn wait(&self, key: &K, now: i64) -> u64 {
        match self.lock().get(key) {
            None => 0,
            Some(b) => self.wait_for(b.level(self.limit, now)),
        }
    }

    fn wait_for(&self, level: f64) -> u64 {
        if level >= 1.0 {
            0
        } else {
            ((1.0 - level) * self.limit.replenish).ceil().max(1.0) as u64
        }
    }

    /// Takes one token if there is one; otherwise the seconds to wait.
    fn take(&self, key: &K, now: i64) -> Result<(), u64> {
        let mut map = self.lock();
        let level = map
            .get(key)
            .map_or(self.limit.burst, |b| b.level(self.limit, now));
        if level < 1.0 {
            return Err(self.wait_for(level));
        }
        if !map.contains_key(key) && map.len() >= MAX_KEYS {
            self.make_room(&mut map, now);
        }
        map.insert(
            key.clone(),
            Bucket {
                tokens: level - 1.0,
                at: now,
            },
        );
        Ok(())
    }

    /// Gives `n` tokens back (never above the burst).
    fn give(&self, key: &K, n: f64, now: i64) {
        let mut map = self.lock();
        if let Some(b) = map.get_mut(key) {
            let level = (b.level(self.limit, now) + n).min(self.limit.burst);
            *b = Bucket {
                tokens: level,
                at: now,
            };
        }
    }

    fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    fn make_room(&self, map: &mut HashMap<K, Bucket>, now: i64) {
        let limit = self.limit;
        map.retain(|_, b| b.level(limit, now) < limit.burst);
        if map.len() >= MAX_KEYS {
            let fullest = map
                .iter()
                .max_by(|a, b| a.1.level(limit, now).total_cmp(&b.1.level(limit, now)))
                .map(|(k, _)| k.clone());
            if let Some(k) = fullest {
                map.remove(&k);
            }
        }
    }

    fn prune(&self, now: i64) {
        let limit = self.limit;
        let mut map = self.lock();
        map.retain(|_, b| b.level(limit, now) < limit.burst);
        map.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The sign-in throttle of one server process (see the module documentation).
pub struct Throttle {
    account_address: Buckets<(String, Option<AddressKey>)>,
    address: Buckets<AddressKey>,
    account: Buckets<String>,
    /// When each (account, address) last credited its address.
    credited: Mutex<HashMap<(String, AddressKey), i64>>,
    /// Wrong device user codes (RFC 8628 §5.1) per address: a burst of
    /// [`DEVICE_CODE_BURST`], then one per [`DEVICE_CODE_REPLENISH_SECS`].
    device_codes: Buckets<AddressKey>,
}

/// Wrong user codes an address may enter at once at the device verification page.
pub const DEVICE_CODE_BURST: u32 = 10;
/// Seconds after which one more wrong user code is allowed.
pub const DEVICE_CODE_REPLENISH_SECS: u64 = 6;

/// Tokens taken for one attempt; hand it back with [`Throttle::succeeded`] if the password was
/// right. Dropping it (a failure) keeps the charge.
#[must_use]
pub struct Attempt {
    account: String,
    address: Option<AddressKey>,
}

impl Throttle {
    pub fn new(config: &Config) -> Throttle {
        Throttle {
            account_address: Buckets::new(
                config.login_burst_per_account_ip,
                config.login_replenish_secs,
            ),
            address: Buckets::new(config.login_burst_per_ip, config.login_ip_replenish_secs),
            account: Buckets::new(
                config.login_burst_per_account,
                config.login_account_replenish_secs,
            ),
            credited: Mutex::new(HashMap::new()),
            device_codes: Buckets::new(DEVICE_CODE_BURST, DEVICE_CODE_REPLENISH_SECS),
        }
    }

    /// `Err(seconds)` when this address has entered too many wrong user codes; takes nothing.
    pub fn device_code_check(&self, ip: Option<IpAddr>, now: i64) -> Result<(), u64> {
        match ip.map(AddressKey::of) {
            Some(a) => match self.device_codes.wait(&a, now) {
                0 => Ok(()),
                w => Err(w),
            },
            None => Ok(()),
        }
    }

    /// A wrong (unknown, expired or used) user code from this address.
    pub fn device_code_failed(&self, ip: Option<IpAddr>, now: i64) {
        if let Some(a) = ip.map(AddressKey::of) {
            let _ = self.device_codes.take(&a, now);
        }
    }

    fn keys(username: &str, ip: Option<IpAddr>) -> (String, Option<AddressKey>) {
        (username.to_lowercase(), ip.map(AddressKey::of))
    }

    /// `Err(seconds)` when an attempt for this account from this address must wait; takes
    /// nothing (a cheap early answer before any database read or hashing).
    pub fn check(&self, username: &str, ip: Option<IpAddr>, now: i64) -> Result<(), u64> {
        let (account, address) = Self::keys(username, ip);
        let mut wait = self
            .account_address
            .wait(&(account.clone(), address), now)
            .max(self.account.wait(&account, now));
        if let Some(a) = address {
            wait = wait.max(self.address.wait(&a, now));
        }
        if wait > 0 { Err(wait) } else { Ok(()) }
    }

    /// Takes one token from each bucket of this attempt, or none and `Err(seconds)` when one of
    /// them is empty.
    pub fn begin(&self, username: &str, ip: Option<IpAddr>, now: i64) -> Result<Attempt, u64> {
        let (account, address) = Self::keys(username, ip);
        let pair = (account.clone(), address);
        self.account_address.take(&pair, now)?;
        if let Err(w) = self.account.take(&account, now) {
            self.account_address.give(&pair, 1.0, now);
            return Err(w);
        }
        if let Some(a) = address
            && let Err(w) = self.address.take(&a, now)
        {
            self.account_address.give(&pair, 1.0, now);
            self.account.give(&account, 1.0, now);
            return Err(w);
        }
        Ok(Attempt { account, address })
    }

    /// The password was right: the attempt costs nothing, the account's failures from this
    /// address are forgotten, and the address may earn a credit.
    pub fn succeeded(&self, attempt: Attempt, now: i64) {
        let Attempt { account, address } = attempt;
        self.account.give(&account, 1.0, now);
        self.account_address.forget(&(account.clone(), address));
        let Some(a) = address else {
            return;
        };
        let credit = {
            let mut credited = self.credited.lock().unwrap_or_else(|p| p.into_inner());
            let key = (account, a);
            match credited.get(&key) {
                Some(&at) if now - at < CREDIT_WINDOW => false,
                _ => {
                    if credited.len() >= MAX_KEYS {
                        credited.retain(|_, at| now - *at < CREDIT_WINDOW);
                    }
                    if credited.len() < MAX_KEYS {
                        credited.insert(key, now);
                    }
                    true
                }
            }
        };
        self.address.give(&a, if credit { 2.0 } else { 1.0 }, now);
    }

    /// Drops buckets that are full again and expired credits, so memory follows the attack,
    /// not the history.
    pub fn prune(&self, now: i64) {
        self.account_address.prune(now);
        self.address.prune(now);
        self.account.prune(now);
        self.device_codes.prune(now);
        let mut credited = self.credited.lock().unwrap_or_else(|p| p.into_inner());
        credited.retain(|_, at| now - *at < CREDIT_WINDOW);
        credited.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(&Config::default())
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    /// One failed attempt: begin, and drop the attempt (the charge stays).
    fn fail(t: &Throttle, user: &str, addr: Option<IpAddr>, now: i64) -> Result<(), u64> {
        t.begin(user, addr, now).map(drop)
    }

    #[test]
    fn successes_are_never_charged() {
        let t = throttle();
        for i in 0..10_000 {
            let a = t
                .begin("alice", ip("198.51.100.7"), i / 100)
                .expect("allowed");
            t.succeeded(a, i / 100);
        }
    }

    #[test]
    fn failures_from_one_address_are_throttled_and_a_success_clears_them() {
        let t = throttle();
        let a = ip("198.51.100.7");
        for _ in 0..9 {
            fail(&t, "alice", a, 0).expect("within the burst");
        }
        let ok = t.begin("Alice", a, 0).expect("the tenth attempt");
        t.succeeded(ok, 0);
        for _ in 0..10 {
            fail(&t, "alice", a, 1).expect("cleared by the success");
        }
        let wait = fail(&t, "ALICE", a, 1).expect_err("throttled, case-insensitively");
        assert_eq!(wait, 60);
        assert_eq!(t.check("alice", a, 1), Err(60));
        // One more attempt after the replenish period.
        assert_eq!(t.check("alice", a, 61), Ok(()));
    }

    #[test]
    fn one_address_alone_never_locks_the_owner_out_elsewhere() {
        let t = throttle();
        let stranger = ip("203.0.113.9");
        // A stranger who tries every second for a day, from one address.
        for now in 0..86_400 {
            let _ = fail(&t, "alice", stranger, now);
        }
        let owner = t
            .begin("alice", ip("198.51.100.7"), 86_400)
            .expect("the owner at another address is not locked out");
        t.succeeded(owner, 86_400);
    }

    #[test]
    fn many_addresses_reach_the_account_backstop() {
        let t = throttle();
        for i in 0..60u8 {
            let addr = ip(&format!("203.0.113.{i}"));
            for _ in 0..10 {
                let _ = fail(&t, "alice", addr, 0);
            }
        }
        assert!(t.begin("alice", ip("198.51.100.7"), 0).is_err());
        assert!(t.begin("bob", ip("198.51.100.7"), 0).is_ok());
    }

    #[test]
    fn spraying_from_one_address_is_throttled_across_accounts() {
        let t = throttle();
        let a = ip("203.0.113.9");
        let refused = (0..50)
            .filter(|i| fail(&t, &format!("user{i}"), a, 0).is_err())
            .count();
        assert_eq!(refused, 20, "30 failures allowed, then the address waits");
        assert!(t.begin("user0", ip("203.0.113.10"), 0).is_ok());
    }

    #[test]
    fn many_people_behind_one_address_earn_room_for_their_typos() {
        let t = throttle();
        let nat = ip("100.64.0.1");
        // 500 people sign in within a minute; one in five mistypes first.
        for i in 0..500 {
            let user = format!("user{i}");
            let now = i as i64 / 9;
            if i % 5 == 0 {
                fail(&t, &user, nat, now).expect("a typo is allowed");
            }
            let a = t.begin(&user, nat, now).expect("the right password");
            t.succeeded(a, now);
        }
        // One account of one's own earns one credit per window, not one per sign-in.
        let t = throttle();
        for i in 0..29 {
            fail(&t, &format!("victim{i}"), nat, 0).expect("within the address burst");
        }
        for _ in 0..100 {
            let a = t.begin("mallory", nat, 0).expect("one token left");
            t.succeeded(a, 0);
        }
        assert!(fail(&t, "other1", nat, 0).is_ok(), "the token left");
        assert!(fail(&t, "other2", nat, 0).is_ok(), "one credit");
        assert!(fail(&t, "other3", nat, 0).is_err(), "only one");
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        assert_eq!(
            AddressKey::of("2001:db8:1:2::1".parse().expect("ip")),
            AddressKey::of("2001:db8:1:2:ffff::9".parse().expect("ip"))
        );
        assert_ne!(
            AddressKey::of("2001:db8:1:2::1".parse().expect("ip")),
            AddressKey::of("2001:db8:1:3::1".parse().expect("ip"))
        );
        assert_eq!(
            AddressKey::of("::ffff:192.0.2.1".parse().expect("ip")),
            AddressKey::of("192.0.2.1".parse().expect("ip"))
        );
    }

    #[test]
    fn memory_is_bounded_and_pruned() {
        let t = throttle();
        for i in 0..(MAX_KEYS + 5) {
            let _ = fail(&t, &format!("u{i}"), None, 0);
        }
        assert!(t.account.len() <= MAX_KEYS);
        t.prune(10_000);
        assert_eq!(t.account.len(), 0);
        assert_eq!(t.account_address.len(), 0);
    }
}
