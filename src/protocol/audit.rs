//! The audit log: every admin action and every security event, with who, what, when and from
//! where. Entries name identifiers only (client ids, user ids, usernames, key ids, addresses),
//! never a secret, password, code or token. Writing an entry never fails the request that
//! caused it: a failed write is logged and counted (`latchkey_audit_write_failures_total`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::{Value, json};

use super::Ctx;
use crate::model::AuditEntry;
use crate::store::Store;

/// Event names (`<subject>.<what happened>`); `latchkey audit --event client` selects every
/// `client.*` event.
pub mod event {
    pub const CLIENT_CREATED: &str = "client.created";
    pub const CLIENT_UPDATED: &str = "client.updated";
    pub const CLIENT_DISABLED: &str = "client.disabled";
    pub const CLIENT_ENABLED: &str = "client.enabled";
    pub const CLIENT_SECRET_ROTATED: &str = "client.secret_rotated";
    pub const CLIENT_DELETED: &str = "client.deleted";
    /// RFC 7591 dynamic registration.
    pub const CLIENT_REGISTERED: &str = "client.registered";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_DISABLED: &str = "user.disabled";
    pub const USER_ENABLED: &str = "user.enabled";
    pub const USER_PASSWORD_RESET: &str = "user.password_reset";
    pub const GRANTS_REVOKED: &str = "grants.revoked";
    /// A user signed out of one device (a refresh family) or everywhere.
    pub const USER_SIGNED_OUT: &str = "user.signed_out";
    /// On the account pages, by the user.
    pub const USER_PROFILE_UPDATED: &str = "user.profile_updated";
    pub const USER_PASSWORD_CHANGED: &str = "user.password_changed";
    pub const KEY_ROTATED: &str = "key.rotated";
    pub const REGISTRATION_TOKEN_CREATED: &str = "registration_token.created";
    pub const REGISTRATION_TOKEN_REVOKED: &str = "registration_token.revoked";
    pub const LOGIN_FAILED: &str = "login.failed";
    /// A passkey, authenticator code or recovery code used at sign-in, or refused
    /// (`outcome`; `details.factor`, `details.reason`).
    pub const LOGIN_FACTOR: &str = "login.factor";
    pub const PASSKEY_ADDED: &str = "passkey.added";
    pub const PASSKEY_REMOVED: &str = "passkey.removed";
    pub const TOTP_ENROLLED: &str = "totp.enrolled";
    pub const TOTP_REMOVED: &str = "totp.removed";
    pub const RECOVERY_CODES_RENEWED: &str = "recovery_codes.renewed";
    /// An admin removed every passkey, the authenticator and the recovery codes of a user.
    pub const USER_FACTORS_RESET: &str = "user.factors_reset";
    /// An enrolment link was made (`latchkey user invite`).
    pub const USER_INVITED: &str = "user.invited";
    pub const USER_ADMIN_GRANTED: &str = "user.admin_granted";
    pub const USER_ADMIN_REVOKED: &str = "user.admin_revoked";
    pub const LOGIN_THROTTLED: &str = "login.throttled";
    pub const REFRESH_TOKEN_REUSE: &str = "refresh_token.reuse_detected";
    pub const CODE_REPLAY: &str = "authorization_code.replay_detected";
    pub const ADMIN_ACCESS_DENIED: &str = "admin.access_denied";
}

pub const SUCCESS: &str = "success";
pub const FAILURE: &str = "failure";
pub const DETECTED: &str = "detected";

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A client holding a `latchkey:admin` token, through the admin API.
    Admin(String),
    /// An operator at the command line (the OS user, when known).
    Cli,
    /// The server itself (scheduled work).
    System,
    /// An OAuth client at a protocol endpoint.
    Client(String),
    /// Someone typing this username at the login form (not necessarily its owner).
    User(String),
    /// A dynamically registered client using its registration access token (RFC 7592).
    Registration(String),
    Anonymous,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Admin(id) => format!("admin:{id}"),
            Actor::Cli => match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
                Ok(u) if !u.is_empty() && u.len() <= 64 => format!("cli:{u}"),
                _ => "cli".to_owned(),
            },
            Actor::System => "system".to_owned(),
            Actor::Client(id) => format!("client:{id}"),
            Actor::User(name) => format!("user:{}", truncate(name, 200)),
            Actor::Registration(id) => format!("registration:{id}"),
            Actor::Anonymous => "anonymous".to_owned(),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Builds an entry; `details` must hold no secret.
pub fn entry(
    event: &str,
    actor: &Actor,
    ip: Option<IpAddr>,
    target: Option<String>,
    outcome: &str,
    details: Value,
    now: i64,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at: now,
        event: event.to_owned(),
        actor: actor.label(),
        ip: ip.map(|i| i.to_string()),
        target,
        outcome: outcome.to_owned(),
        details: if details.is_null() {
            json!({})
        } else {
            details
        },
    }
}

/// Entries per caller of a kind anyone holding any token can cause at will
/// (`admin.access_denied`): a burst of [`DENIED_BURST`], then one every 10 s. What is not
/// written is counted (`latchkey_audit_suppressed_total`) and the caller's next entry says
/// how many of its entries were skipped (`details.suppressed`), so a flood stays visible
/// without becoming a flood of database writes (issue 18 finding 6).
pub struct Limits {
    denied: DefaultKeyedRateLimiter<String>,
    /// Skipped entries per caller since its last written one.
    skipped: Mutex<HashMap<String, u64>>,
}

pub const DENIED_BURST: u32 = 6;

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

impl Limits {
    pub fn new() -> Limits {
        let burst = NonZeroU32::new(DENIED_BURST).unwrap_or(NonZeroU32::MIN);
        Limits {
            denied: RateLimiter::keyed(Quota::per_minute(burst)),
            skipped: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(skipped so far)` when `caller` may write a denial entry now; `None` when it is
    /// suppressed (and counted).
    fn admit_denied(&self, caller: &str) -> Option<u64> {
        let mut skipped = self.skipped.lock().unwrap_or_else(|e| e.into_inner());
        if self.denied.check_key(&caller.to_owned()).is_ok() {
            Some(skipped.remove(caller).unwrap_or(0))
        } else {
            *skipped.entry(caller.to_owned()).or_insert(0) += 1;
            None
        }
    }

    /// Drops idle callers so memory stays bounded.
    pub fn prune(&self) {
        self.denied.retain_recent();
        self.denied.shrink_to_fit();
    }
}

/// An `admin.access_denied` entry, unless `caller` wrote too many lately (see [`Limits`]).
pub async fn admin_denied(ctx: &Ctx, caller: &str, ip: Option<IpAddr>, reason: &str, now: i64) {
    let Some(skipped) = ctx.audit_limits.admit_denied(caller) else {
        ctx.metrics.audit_suppressed();
        return;
    };
    let mut details = json!({ "reason": reason });
    if skipped > 0 {
        details["suppressed"] = json!(skipped);
    }
    let e = entry(
        event::ADMIN_ACCESS_DENIED,
        &Actor::Client(caller.to_owned()),
        ip,
        None,
        FAILURE,
        details,
        now,
    );
    record(ctx, e).await;
}

/// Writes an entry from async code (on the blocking pool); never fails the caller.
pub async fn record(ctx: &Ctx, e: AuditEntry) {
    tracing::info!(
        audit = %e.event,
        actor = %e.actor,
        target = e.target.as_deref().unwrap_or(""),
        outcome = %e.outcome,
        "audit"
    );
    let event = e.event.clone();
    if let Err(err) = ctx.store.blocking(move |s| s.insert_audit(&e)).await {
        ctx.metrics.audit_write_failed();
        tracing::error!(audit = %event, error = %err, "could not write the audit log");
    }
}

/// Writes an entry from blocking code (the CLI, scheduled work); never fails the caller.
pub fn record_blocking(store: &Store, e: AuditEntry) {
    if let Err(err) = store.insert_audit(&e) {
        tracing::error!(audit = %e.event, error = %err, "could not write the audit log");
    }
}

/// A security event at the token endpoint (one line at the detection site): counted in the
/// metrics and written to the audit log.
pub async fn security_event(
    ctx: &Ctx,
    event: &'static str,
    client_id: &str,
    details: Value,
    now: i64,
) {
    match event {
        event::REFRESH_TOKEN_REUSE => ctx.metrics.refresh_reuse_detected(),
        event::CODE_REPLAY => ctx.metrics.code_replay_detected(),
        _ => {}
    }
    record(
        ctx,
        entry(
            event,
            &Actor::Client(client_id.to_owned()),
            None,
            Some(format!("client:{client_id}")),
            DETECTED,
            details,
            now,
        ),
    )
    .await;
}

/// Hook for `grants::refresh_token`: a rotated refresh token was presented again.
pub async fn refresh_reuse(
    ctx: &Ctx,
    client_id: &str,
    family: &crate::model::TokenFamily,
    now: i64,
) {
    let details = json!({ "family_id": family.family_id, "user_id": family.user_id });
    security_event(ctx, event::REFRESH_TOKEN_REUSE, client_id, details, now).await;
}

/// Hook for `grants::authorization_code`: a used code was presented again.
pub async fn code_replay(ctx: &Ctx, client_id: &str, now: i64) {
    security_event(ctx, event::CODE_REPLAY, client_id, json!({}), now).await;
}

/// Hook for `login`: a wrong username or password (`invalid`), or too many attempts
/// (`throttled`); the caller counts the metric. The username is recorded as typed (it is not a secret); the password never.
pub async fn login_failure(
    ctx: &Ctx,
    username: &str,
    ip: Option<IpAddr>,
    reason: &'static str,
    now: i64,
) {
    let ev = if reason == "throttled" {
        event::LOGIN_THROTTLED
    } else {
        event::LOGIN_FAILED
    };
    let e = entry(
        ev,
        &Actor::User(username.to_owned()),
        ip,
        None,
        FAILURE,
        json!({ "reason": reason }),
        now,
    );
    record(ctx, e).await;
}

/// Hook for the sign-in pages: a second factor (or a passkey) used or refused. `who`: the
/// account's username when known (a refused passkey may name no account).
#[allow(clippy::too_many_arguments)]
pub async fn login_factor(
    ctx: &Ctx,
    who: Option<&crate::model::User>,
    factor: &'static str,
    ok: bool,
    reason: &'static str,
    ip: Option<IpAddr>,
    now: i64,
) {
    let actor = match who {
        Some(u) => Actor::User(u.username.clone()),
        None => Actor::Anonymous,
    };
    let e = entry(
        event::LOGIN_FACTOR,
        &actor,
        ip,
        who.map(|u| format!("user:{}", u.user_id)),
        if ok { SUCCESS } else { FAILURE },
        json!({ "factor": factor, "reason": reason }),
        now,
    );
    record(ctx, e).await;
}

/// Something a signed-in user did to their own account (the account pages).
pub async fn user_action(ctx: &Ctx, user: &crate::model::User, ev: &str, details: Value, now: i64) {
    let e = entry(
        ev,
        &Actor::User(user.username.clone()),
        None,
        Some(format!("user:{}", user.user_id)),
        SUCCESS,
        details,
        now,
    );
    record(ctx, e).await;
}

/// The entry for a signing key rotation, by whoever did it.
pub fn key_rotated(
    actor: &Actor,
    ip: Option<IpAddr>,
    key: &crate::model::SigningKeyRecord,
    now: i64,
) -> AuditEntry {
    entry(
        event::KEY_ROTATED,
        actor,
        ip,
        Some(format!("key:{}", key.kid)),
        SUCCESS,
        json!({ "alg": key.alg, "activates_at": key.activates_at }),
        now,
    )
}
