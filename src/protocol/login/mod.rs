//! Password login: argon2id verification, sign-in throttling that charges failures and not
//! successes (`throttle.rs`), and no account enumeration: an unknown user costs one argon2id
//! verification, like a wrong password, and is throttled like a known one.

pub mod amr;
pub mod invite;
pub mod passkey;
pub mod second_factor;
pub mod throttle;
pub mod totp;

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::Ctx;
use super::audit;
use crate::config::Config;
use crate::model::{Session, User};
use crate::secret;

/// The sign-in throttle (`throttle::Throttle`) plus the limiter of its audit entries.
pub struct Throttle {
    buckets: throttle::Throttle,
    /// At most one `login.throttled` audit entry per account per minute: a flood of refused
    /// attempts costs the attacker nothing and must not become a flood of database writes.
    audit_throttled: DefaultKeyedRateLimiter<String>,
}

impl Throttle {
    /// A password check outside the login form (the account pages' password change): charged
    /// like a sign-in attempt until [`Throttle::succeeded`].
    pub fn begin(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<throttle::Attempt, u64> {
        self.buckets.begin(username, ip, now)
    }

    pub fn succeeded(&self, attempt: throttle::Attempt, now: i64) {
        self.buckets.succeeded(attempt, now)
    }

    pub fn new(config: &Config) -> Throttle {
        Throttle {
            buckets: throttle::Throttle::new(config),
            audit_throttled: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
        }
    }

    /// RFC 8628 §5.1: `Err(seconds)` when this address entered too many wrong user codes.
    pub fn device_code_check(&self, ip: Option<IpAddr>, now: i64) -> Result<(), u64> {
        self.buckets.device_code_check(ip, now)
    }

    /// Charges a wrong user code to this address.
    pub fn device_code_failed(&self, ip: Option<IpAddr>, now: i64) {
        self.buckets.device_code_failed(ip, now)
    }

    /// Drops idle keys so memory stays bounded.
    pub fn prune(&self, now: i64) {
        self.buckets.prune(now);
        self.audit_throttled.retain_recent();
    }
}

#[derive(Debug)]
pub enum LoginError {
    Invalid,
    Throttled(u64),
    Unavailable,
}

/// Checks the password; on success returns the user (the caller decides whether a second
/// factor follows before [`start_session`]).
pub async fn check_password(
    ctx: &Ctx,
    throttle: &Throttle,
    username: &str,
    password: &str,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<User, LoginError> {
    // A cheap answer first: a throttled attempt costs no database read and no hash.
    if let Err(wait) = throttle.buckets.check(username, ip, now) {
        return Err(throttled(ctx, throttle, username, ip, wait, now).await);
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
    // The attempt takes its tokens only now, just before the hash: concurrent guesses cannot
    // overshoot the budget by more than the hashes running at once.
    let attempt = match throttle.buckets.begin(typed, ip, now) {
        Ok(a) => a,
        Err(wait) => return Err(throttled(ctx, throttle, typed, ip, wait, now).await),
    };
    let ok = tokio::task::spawn_blocking(move || secret::verify_password(&password, &hash))
        .await
        .map_err(|_| LoginError::Unavailable)?;
    let Some(user) = user.filter(|u| ok && !u.disabled) else {
        // The failure keeps its charge (`attempt` is dropped).
        drop(attempt);
        ctx.metrics.login_failed("invalid");
        audit::login_failure(ctx, typed, ip, "invalid", now).await;
        return Err(LoginError::Invalid);
    };
    throttle.buckets.succeeded(attempt, now);
    Ok(user)
}

/// Starts a browser session for `user`, signed in `now` with the RFC 8176 methods `amr`;
/// returns it with its cookie value.
pub async fn start_session(
    ctx: &Ctx,
    user: &User,
    amr: &str,
    ip: Option<IpAddr>,
    user_agent: Option<&str>,
    now: i64,
) -> Result<(Session, String), LoginError> {
    let cookie = secret::new_secret();
    let session = Session {
        session_hash: secret::hash_token(&cookie),
        sid: secret::random_token(16),
        user_id: user.user_id.clone(),
        auth_time: now,
        created_at: now,
        expires_at: now + ctx.config.session_ttl as i64,
        seen: crate::model::Seen::new(ip, user_agent),
        amr: amr.to_owned(),
    };
    let s2 = session.clone();
    ctx.store
        .write(move |s| s.insert_session(&s2))
        .await
        .map_err(|_| LoginError::Unavailable)?;
    Ok((session, cookie))
}

/// Counts and (at most once a minute per account) audits a refused attempt.
async fn throttled(
    ctx: &Ctx,
    throttle: &Throttle,
    username: &str,
    ip: Option<IpAddr>,
    wait: u64,
    now: i64,
) -> LoginError {
    ctx.metrics.login_failed("throttled");
    if throttle
        .audit_throttled
        .check_key(&username.to_lowercase())
        .is_ok()
    {
        audit::login_failure(ctx, username, ip, "throttled", now).await;
    }
    LoginError::Throttled(wait)
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
