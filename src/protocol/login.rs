//! Password login with brute-force throttling (per account and per client IP, token-bucket
//! backoff via `governor`) and no account enumeration: an unknown user costs one argon2id
//! verification, like a wrong password.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::Ctx;
use super::audit;
use crate::config::Config;
use crate::model::{Session, User};
use crate::secret;

pub struct Throttle {
    per_account: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// At most one `login.throttled` audit entry per account per minute: a flood of refused
    /// attempts costs the attacker nothing and must not become a flood of database writes.
    audit_throttled: DefaultKeyedRateLimiter<String>,
}

impl Throttle {
    pub fn new(config: &Config) -> Throttle {
        let every = Duration::from_secs(config.login_replenish_secs);
        let quota = |burst: u32| {
            Quota::with_period(every)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        Throttle {
            per_account: RateLimiter::keyed(quota(config.login_burst_per_account)),
            per_ip: RateLimiter::keyed(quota(config.login_burst_per_ip)),
            audit_throttled: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
        }
    }

    /// Counts one attempt; `Err(seconds)` when the account or address must wait.
    fn attempt(&self, username: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let clock = DefaultClock::default();
        let wait = |nu: governor::NotUntil<<DefaultClock as Clock>::Instant>| {
            nu.wait_time_from(clock.now()).as_secs().max(1)
        };
        if let Some(ip) = ip {
            self.per_ip.check_key(&ip).map_err(wait)?;
        }
        self.per_account
            .check_key(&username.to_lowercase())
            .map_err(wait)?;
        Ok(())
    }

    /// Drops idle keys so memory stays bounded.
    pub fn prune(&self) {
        self.per_account.retain_recent();
        self.per_ip.retain_recent();
        self.audit_throttled.retain_recent();
    }
}

#[derive(Debug)]
pub enum LoginError {
    Invalid,
    Throttled(u64),
    Unavailable,
}

/// Checks the password; on success creates a session and returns it with its cookie value.
pub async fn login(
    ctx: &Ctx,
    throttle: &Throttle,
    username: &str,
    password: &str,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<(User, Session, String), LoginError> {
    if let Err(wait) = throttle.attempt(username, ip) {
        ctx.metrics.login_failed("throttled");
        if throttle
            .audit_throttled
            .check_key(&username.to_lowercase())
            .is_ok()
        {
            audit::login_failure(ctx, username, ip, "throttled", now).await;
        }
        return Err(LoginError::Throttled(wait));
    }
    let typed = username;
    let (username, password) = (username.to_owned(), password.to_owned());
    // The row first, releasing the database connection before the ~30 ms hash.
    let user = ctx
        .store
        .blocking(move |s| s.user_by_username(&username))
        .await
        .map_err(|_| LoginError::Unavailable)?;
    let hash = user.as_ref().map_or_else(
        || secret::dummy_password_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    // At most one argon2id computation per CPU at a time: a login flood queues here instead
    // of taking every core and 19 MiB of memory per concurrent attempt.
    let _permit = hashing_permits()
        .acquire()
        .await
        .map_err(|_| LoginError::Unavailable)?;
    let ok = tokio::task::spawn_blocking(move || secret::verify_password(&password, &hash))
        .await
        .map_err(|_| LoginError::Unavailable)?;
    let Some(user) = user.filter(|u| ok && !u.disabled) else {
        ctx.metrics.login_failed("invalid");
        audit::login_failure(ctx, typed, ip, "invalid", now).await;
        return Err(LoginError::Invalid);
    };
    let cookie = secret::new_secret();
    let session = Session {
        session_hash: secret::hash_token(&cookie),
        sid: secret::random_token(16),
        user_id: user.user_id.clone(),
        auth_time: now,
        created_at: now,
        expires_at: now + ctx.config.session_ttl as i64,
    };
    let s2 = session.clone();
    ctx.store
        .write(move |s| s.insert_session(&s2))
        .await
        .map_err(|_| LoginError::Unavailable)?;
    Ok((user, session, cookie))
}

fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cpus)
    })
}

/// The live session behind a cookie value, with its user (who must still be enabled).
pub async fn current_session(
    ctx: &Ctx,
    cookie: Option<String>,
    now: i64,
) -> Result<Option<(Session, User)>, crate::store::StoreError> {
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    ctx.store
        .blocking(move |s| {
            let Some(session) = s.session(&secret::hash_token(&cookie), now)? else {
                return Ok(None);
            };
            let user = s.user(&session.user_id)?.filter(|u| !u.disabled);
            Ok(user.map(|u| (session, u)))
        })
        .await
}
