//! The device authorization grant (RFC 8628) for TVs, consoles and CLIs: the device asks
//! [`DEVICE_AUTHORIZATION_PATH`] for a `device_code` and a short `user_code`, shows the code and
//! [`VERIFICATION_PATH`], and polls the token endpoint (`grants::device_code`) while the user,
//! on a phone or computer, signs in there, checks the code and the app, and allows or denies.
//!
//! Rules:
//! - only clients with the `urn:ietf:params:oauth:grant-type:device_code` grant; confidential
//!   ones authenticate as at the token endpoint; scope and `resource` are checked now (§3.1);
//! - the user code is 8 letters from a 20-consonant alphabet (no vowels, so no words; no
//!   look-alikes such as 0/O or 1/I), ≈34.6 bits; typed with or without the dash, in any case;
//!   wrong codes are throttled per address (`Throttle::device_code_*`, §5.1);
//! - the user always sees the app's name, the code and the scopes and presses Allow (§5.4: the
//!   code may have been sent by an attacker; remembered consent does not skip this);
//! - the `device_code` is 256 random bits stored only as SHA-256, and lives `device_code_ttl`.

use serde::Serialize;

use super::Ctx;
use super::audience;
use super::client_auth;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::params::Params;
use super::scope::Scope;
use crate::model::{AuthCode, Client, DeviceGrant, DeviceStatus, GrantType, Session};
use crate::secret;

pub const DEVICE_AUTHORIZATION_PATH: &str = "/device_authorization";
pub const VERIFICATION_PATH: &str = "/device";

/// RFC 8628 §6.1: consonants only, no look-alikes.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// RFC 8628 §3.2 response.
#[derive(Debug, Serialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// A fresh user code, normalized (no dash).
fn new_user_code() -> String {
    let mut out = String::with_capacity(USER_CODE_LEN);
    while out.len() < USER_CODE_LEN {
        for b in secret::random_bytes(16) {
            // Rejection sampling: 240 = 12 × 20, so every letter is equally likely.
            if b < 240 && out.len() < USER_CODE_LEN {
                out.push(ALPHABET[(b % 20) as usize] as char);
            }
        }
    }
    out
}

/// As shown to people: `BCDF-GHJK`.
pub fn display(user_code: &str) -> String {
    if user_code.len() == USER_CODE_LEN {
        format!("{}-{}", &user_code[..4], &user_code[4..])
    } else {
        user_code.to_owned()
    }
}

/// What a person typed, normalized: case and dashes/spaces ignored. `None`: cannot be a code.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// `POST /device_authorization` (RFC 8628 §3.1).
pub async fn authorize(
    ctx: &Ctx,
    credentials: client_auth::Credentials<'_>,
    params: &Params,
    now: i64,
) -> OAuthResult<DeviceAuthorization> {
    let client = client_auth::authenticate_request(ctx, credentials, params, now).await?;
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        ));
    }
    let scope = Scope::narrow(params.get("scope"), client.allowed_scopes())?;
    let audiences = audience::select(
        &client,
        params.get_all("resource").collect(),
        Some(&ctx.config.issuer),
    )?;
    let device_code = secret::new_secret();
    let ttl = ctx.config.device_code_ttl;
    let interval = ctx.config.device_poll_interval;
    for _ in 0..4 {
        let grant = DeviceGrant {
            device_hash: secret::hash_token(&device_code),
            user_code: new_user_code(),
            client_id: client.client_id.clone(),
            scope: scope.to_string(),
            audiences: audiences.clone(),
            created_at: now,
            expires_at: now + ttl as i64,
            interval: interval as i64,
            last_poll_at: None,
            status: DeviceStatus::Pending,
            code_hash: None,
        };
        let user_code = grant.user_code.clone();
        if ctx
            .store
            .write(move |s| s.insert_device_grant(&grant))
            .await?
        {
            let verification_uri = format!("{}{VERIFICATION_PATH}", ctx.config.issuer);
            let shown = display(&user_code);
            return Ok(DeviceAuthorization {
                device_code,
                verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                verification_uri,
                user_code: shown,
                expires_in: ttl,
                interval,
            });
        }
    }
    Err(OAuthError::server_error("could not draw a free user code"))
}

/// The pending authorization behind a typed user code, and its (enabled) client.
pub async fn lookup(
    ctx: &Ctx,
    typed: &str,
    now: i64,
) -> OAuthResult<Option<(DeviceGrant, Client)>> {
    let Some(code) = normalize(typed) else {
        return Ok(None);
    };
    let Some(grant) = ctx
        .store
        .read(move |s| s.pending_device_grant(&code, now))
        .await?
    else {
        return Ok(None);
    };
    let client = ctx
        .store
        .request_client(&grant.client_id)
        .await?
        .filter(|c| !c.disabled);
    Ok(client.map(|c| (grant, c)))
}

/// The user pressed Allow: an authorization code for them, redeemed by the device's next poll.
/// `false` if the authorization was decided or expired meanwhile.
pub async fn approve(
    ctx: &Ctx,
    grant: &DeviceGrant,
    session: &Session,
    now: i64,
) -> OAuthResult<bool> {
    let code = AuthCode {
        code_hash: secret::hash_token(&secret::new_secret()),
        client_id: grant.client_id.clone(),
        user_id: session.user_id.clone(),
        redirect_uri: String::new(),
        redirect_uri_explicit: false,
        code_challenge: String::new(),
        scope: grant.scope.clone(),
        audiences: grant.audiences.clone(),
        nonce: None,
        auth_time: session.auth_time,
        sid: session.sid.clone(),
        created_at: now,
        expires_at: grant.expires_at,
        dpop_jkt: None,
        amr: session.amr.clone(),
    };
    let user_code = grant.user_code.clone();
    Ok(ctx
        .store
        .write(move |s| s.approve_device_grant(&user_code, &code, now))
        .await?)
}

/// The user pressed Deny: the device's next poll gets `access_denied`.
pub async fn deny(ctx: &Ctx, grant: &DeviceGrant, now: i64) -> OAuthResult<bool> {
    let user_code = grant.user_code.clone();
    Ok(ctx
        .store
        .write(move |s| s.deny_device_grant(&user_code, now))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_alphabet_and_normalize_from_what_people_type() {
        for _ in 0..200 {
            let c = new_user_code();
            assert_eq!(c.len(), 8);
            assert_eq!(normalize(&c).as_deref(), Some(c.as_str()));
            assert_eq!(
                normalize(&display(&c).to_lowercase()).as_deref(),
                Some(c.as_str())
            );
        }
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "BCDF-GHJA",
            "BCDF-GHJ0",
            "BCDF_GHJK",
            "ÄCDF-GHJK",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
