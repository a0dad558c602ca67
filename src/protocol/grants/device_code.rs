//! RFC 8628 §3.4–3.5: the device polls with its `device_code`. Until the user decides:
//! `authorization_pending`, or `slow_down` (and a longer interval) when it polls too often;
//! then `access_denied`, or the tokens (the approval's authorization code is redeemed exactly
//! as in the code flow, so a second redemption revokes what the first issued); after
//! `device_code_ttl`, `expired_token`.

use super::user_tokens::Pending;
use crate::model::{Client, DeviceStatus, GrantType};
use crate::protocol::Ctx;
use crate::protocol::dpop;
use crate::protocol::error::{ErrorCode, OAuthError, OAuthResult};
use crate::protocol::params::Params;
use crate::protocol::tokens::TokenResponse;
use crate::secret;
use crate::store::Redeemed;

/// RFC 8628 §3.5: what `slow_down` adds to the interval.
const SLOW_DOWN_SECS: i64 = 5;

pub async fn grant(
    ctx: &Ctx,
    client: &Client,
    params: &Params,
    dpop_jkt: Option<&str>,
    proofs: crate::protocol::tokens::Proofs<'_>,
    seen: &crate::model::Seen,
    now: i64,
) -> OAuthResult<TokenResponse> {
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        ));
    }
    let device_hash = secret::hash_token(params.require("device_code")?);
    let client_id = client.client_id.clone();
    let polled = ctx
        .store
        .write(move |s| {
            s.poll_device_grant(&device_hash, now, SLOW_DOWN_SECS, |g| {
                g.status == DeviceStatus::Pending
                    && g.client_id == client_id
                    && g.last_poll_at.is_some_and(|at| now - at < g.interval)
            })
        })
        .await?;
    let Some(polled) = polled else {
        return Err(OAuthError::invalid_grant("the device_code is invalid"));
    };
    let g = polled.grant;
    if g.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the device_code is invalid"));
    }
    if polled.raced {
        // Two polls at once (from two replicas): only one of them counts.
        return Err(OAuthError::new(
            ErrorCode::SlowDown,
            "polling too often: wait longer",
        ));
    }
    if g.expires_at <= now {
        return Err(OAuthError::new(
            ErrorCode::ExpiredToken,
            "the device_code has expired: start again on the device",
        ));
    }
    let code_hash = match (g.status, g.code_hash) {
        (DeviceStatus::Denied, _) => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "the user denied the request",
            ));
        }
        (DeviceStatus::Pending, _) | (DeviceStatus::Approved, None) => {
            return Err(if g.last_poll_at.is_some_and(|at| now - at < g.interval) {
                OAuthError::new(ErrorCode::SlowDown, "polling too often: wait longer")
            } else {
                OAuthError::new(
                    ErrorCode::AuthorizationPending,
                    "the user has not decided yet",
                )
            });
        }
        (DeviceStatus::Approved, Some(h)) => h,
    };
    let pending = Pending::new();
    let recorded = pending.clone();
    let cfg = ctx.config.clone();
    let client2 = client.clone();
    let seen2 = seen.clone();
    let family_jkt = dpop::refresh_binding(client, dpop_jkt);
    let outcome = ctx
        .store
        .write(move |s| {
            s.redeem_code_for_user(&code_hash, now, |c, user| {
                if user.is_none_or(|u| u.disabled) {
                    return Err(OAuthError::invalid_grant("the user is disabled"));
                }
                Ok(recorded.issuance(&client2, c, family_jkt.clone(), &seen2, &cfg, now))
            })
        })
        .await?;
    let code = match outcome {
        Redeemed::Issued(c) => c,
        Redeemed::NotFound => return Err(OAuthError::invalid_grant("the device_code is invalid")),
        Redeemed::Replayed => {
            crate::protocol::audit::code_replay(ctx, &client.client_id, now).await;
            tracing::warn!(client_id = %client.client_id, "device code redeemed twice: tokens it issued are revoked");
            return Err(OAuthError::invalid_grant(
                "the device_code has already been used",
            ));
        }
        Redeemed::Rejected(e) => return Err(e),
    };
    pending.mint(ctx, client, &code, dpop_jkt, proofs, now)
}
