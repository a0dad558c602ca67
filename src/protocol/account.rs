//! The account pages' rules (issue 20): `/account` is a first-party client of this very
//! server. It signs the user in through `/authorize` with code + PKCE like any app
//! ([`CLIENT_ID`], created at start-up), redeems the code at the same token exchange apps use,
//! and then presents its access token on every page, checked like at userinfo (signature,
//! expiry, revocation, the user enabled). So signing the account page's own device out, or
//! changing the password, ends the account page's access too.
//!
//! What a signed-in user may do here, to their own account only: edit their name and email,
//! change their password (the current one required, and throttled like sign-in; every session
//! and device is signed out), list where they are signed in, and sign one device out or
//! sign out everywhere. Each change is audited with the user as the actor.

use super::Ctx;
use super::error::{OAuthError, OAuthResult};
use crate::model::{Client, ClientType, GrantType, User};
use crate::store::StoreError;

/// The account pages' client id.
pub const CLIENT_ID: &str = "latchkey-account";
/// Where `/authorize` sends the account pages' codes.
pub const CALLBACK_PATH: &str = "/account/callback";

/// The built-in client, for `issuer`.
pub fn client(issuer: &str, now: i64) -> Client {
    Client {
        client_id: CLIENT_ID.into(),
        client_name: "Your account".into(),
        client_type: ClientType::Public,
        secret_hash: None,
        redirect_uris: vec![format!("{issuer}{CALLBACK_PATH}")],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "openid".into(),
        audiences: vec![],
        first_party: true,
        is_admin: false,
        disabled: false,
        created_at: now,
        updated_at: now,
        dpop_bound_access_tokens: false,
        allowed_origins: vec![],
        require_pushed_authorization_requests: false,
        jwks: None,
        jwks_uri: None,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        require_signed_request_object: false,
        tls_client_auth: None,
        tls_client_certificate_bound_access_tokens: false,
        require_mfa: false,
        attestation: None,
    }
}

/// Makes sure the built-in client exists with this issuer's callback (an operator who moves
/// the issuer gets it updated at the next start). An operator may disable it
/// (`latchkey client disable latchkey-account`): that turns the account pages off, and stays.
pub fn ensure_client(
    store: &crate::store::Store,
    issuer: &str,
    now: i64,
) -> Result<(), StoreError> {
    ensure(store, client(issuer, now))
}

/// Makes sure the built-in client `want` exists with its callback (kept disabled if an
/// operator disabled it). Shared by the account pages and the console.
pub fn ensure(store: &crate::store::Store, mut want: Client) -> Result<(), StoreError> {
    match store.client(&want.client_id)? {
        Some(c) if c.redirect_uris == want.redirect_uris => Ok(()),
        Some(c) => {
            want.disabled = c.disabled;
            want.created_at = c.created_at;
            store.replace_client(&want).map(|_| ())
        }
        None => match store.insert_client(&want) {
            // Another replica made it first.
            Err(StoreError::Conflict(_)) => Ok(()),
            other => other,
        },
    }
}

fn bad(d: &'static str) -> OAuthError {
    OAuthError::invalid_request(d)
}

/// A new name and email (either may be emptied).
pub async fn update_profile(
    ctx: &Ctx,
    user: &User,
    name: &str,
    email: &str,
    now: i64,
) -> OAuthResult<()> {
    let clean = |s: &str, max: usize| -> OAuthResult<Option<String>> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if !crate::text::printable(s, max) {
            return Err(bad(
                "names and emails must be at most 200 characters, with no control characters",
            ));
        }
        Ok(Some(s.to_owned()))
    };
    let name = clean(name, 200)?;
    let email = clean(email, 200)?;
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(bad("that does not look like an email address"));
    }
    let id = user.user_id.clone();
    let (n2, e2) = (name.clone(), email.clone());
    ctx.store
        .blocking(move |s| s.set_user_profile(&id, n2.as_deref(), e2.as_deref(), now))
        .await?;
    super::audit::user_action(
        ctx,
        user,
        super::audit::event::USER_PROFILE_UPDATED,
        serde_json::json!({ "name": name.is_some(), "email": email.is_some() }),
        now,
    )
    .await;
    Ok(())
}

/// Why a password change was refused (shown on the page).
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordRefused {
    /// The current password is wrong.
    Wrong,
    /// Too many wrong attempts: wait this many seconds.
    Throttled(u64),
    /// The new password is unusable.
    Weak(&'static str),
}

/// What a password change did.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordChanged {
    /// Every session and device was signed out (the default, and the page's too).
    SignedOutEverywhere,
    /// Only the password changed: the user chose to keep the other devices signed in.
    Kept,
}

/// Changes the password: the current one must be right (charged to the sign-in throttle when
/// it is not). Then, unless `keep_others`, every session and device of the user is signed
/// out, this one included.
#[allow(clippy::too_many_arguments)]
pub async fn change_password(
    ctx: &Ctx,
    throttle: &super::login::Throttle,
    user: &User,
    current: &str,
    new: &str,
    keep_others: bool,
    ip: Option<std::net::IpAddr>,
    now: i64,
) -> OAuthResult<Result<PasswordChanged, PasswordRefused>> {
    let n = new.chars().count();
    if !(8..=1024).contains(&n) {
        return Ok(Err(PasswordRefused::Weak(
            "the new password must be 8 to 1024 characters",
        )));
    }
    if new == current {
        return Ok(Err(PasswordRefused::Weak(
            "the new password must differ from the current one",
        )));
    }
    let attempt = match throttle.begin(&user.username, ip, now) {
        Ok(a) => a,
        Err(wait) => return Ok(Err(PasswordRefused::Throttled(wait))),
    };
    let (hash, cur, new_pw, cost) = (
        user.password_hash.clone(),
        current.to_owned(),
        new.to_owned(),
        ctx.config.password_cost(),
    );
    let id = user.user_id.clone();
    let changed = ctx
        .store
        .blocking(move |s| {
            if !crate::secret::verify_password(&cur, &hash) {
                return Ok(None);
            }
            let new_hash = crate::secret::hash_password_with(&new_pw, cost)
                .map_err(|e| StoreError::Other(e.to_string()))?;
            if keep_others {
                return Ok(s
                    .set_user_password(&id, &new_hash, now)?
                    .then(crate::store::GrantsRevoked::default));
            }
            s.change_user_password(&id, &new_hash, now)
        })
        .await?;
    let Some(ended) = changed else {
        // The attempt stays charged: a wrong current password is a failed sign-in.
        drop(attempt);
        super::audit::login_failure(ctx, &user.username, ip, "invalid", now).await;
        return Ok(Err(PasswordRefused::Wrong));
    };
    throttle.succeeded(attempt, now);
    if !keep_others {
        let what = crate::store::SignedOut::User {
            user_id: user.user_id.clone(),
        };
        super::backchannel::signed_out(ctx, what, now).await;
    }
    super::audit::user_action(
        ctx,
        user,
        super::audit::event::USER_PASSWORD_CHANGED,
        serde_json::json!({
            "signed_out_everywhere": !keep_others,
            "sessions_ended": ended.sessions,
            "token_families_revoked": ended.token_families,
        }),
        now,
    )
    .await;
    Ok(Ok(if keep_others {
        PasswordChanged::Kept
    } else {
        PasswordChanged::SignedOutEverywhere
    }))
}
