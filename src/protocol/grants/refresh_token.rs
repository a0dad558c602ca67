//! RFC 6749 §6 refresh with rotation on every use and reuse detection (RFC 9700 §4.14.2).
//! A rotated token presented again within `refresh_reuse_grace` seconds, while its successor is
//! unused, counts as a retry after a lost response; otherwise the family is revoked.

use super::user_tokens::{self, UserGrant};
use crate::model::{Client, GrantType};
use crate::protocol::Ctx;
use crate::protocol::dpop;
use crate::protocol::error::{ErrorCode, OAuthError, OAuthResult};
use crate::protocol::params::Params;
use crate::protocol::scope::Scope;
use crate::protocol::tokens::TokenResponse;
use crate::secret;
use crate::store::Rotated;

pub async fn grant(
    ctx: &Ctx,
    client: &Client,
    params: &Params,
    dpop_jkt: Option<&str>,
    proofs: crate::protocol::tokens::Proofs<'_>,
    seen: &crate::model::Seen,
    now: i64,
) -> OAuthResult<TokenResponse> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use the refresh_token grant",
        ));
    }
    let presented = params.require("refresh_token")?;
    let hash = secret::hash_token(presented);
    let requested_scope = params.get("scope").map(str::to_owned);
    let next_secret = secret::new_secret();
    let next_hash = secret::hash_token(&next_secret);
    let client_id = client.client_id.clone();
    let proof_jkt = dpop_jkt.map(str::to_owned);
    let cfg = ctx.config.clone();
    let seen2 = seen.clone();
    let grace = cfg.refresh_reuse_grace as i64;
    // The checks that must neither consume the token nor revoke the family (`precheck`),
    // then the reuse decision and the rotation, atomically (batched with concurrent requests
    // on PostgreSQL).
    let outcome = ctx
        .store
        .rotate_refresh_async(
            hash,
            now,
            grace,
            move |cur, fam, user| {
                // RFC 9449 §5: checked before anything else, so that a thief without the key
                // can neither use the token nor, by presenting a rotated one, revoke the
                // family.
                dpop::check_refresh_binding(fam, proof_jkt.as_deref())?;
                // Scope may narrow for the new access token, never widen (RFC 6749 §6).
                let granted = Scope::parse(&cur.scope).unwrap_or_default();
                Scope::narrow(requested_scope.as_deref(), granted.iter())?;
                // The user must still be enabled.
                if user.is_none_or(|u| u.disabled) {
                    return Err(OAuthError::invalid_grant("the user is disabled"));
                }
                Ok(())
            },
            move |old, fam| {
                if fam.client_id != client_id {
                    return Err(OAuthError::invalid_grant(
                        "the refresh token was issued to another client",
                    ));
                }
                if old.expires_at <= now || fam.expires_at <= now {
                    return Err(OAuthError::invalid_grant("the refresh token has expired"));
                }
                Ok(old.successor(
                    next_hash.clone(),
                    now,
                    (now + cfg.refresh_token_ttl as i64).min(fam.expires_at),
                    seen2.clone(),
                ))
            },
        )
        .await?;
    let (old, family) = match outcome {
        Rotated::NotFound => return Err(OAuthError::invalid_grant("the refresh token is invalid")),
        Rotated::Revoked => {
            return Err(OAuthError::invalid_grant(
                "the refresh token has been revoked",
            ));
        }
        Rotated::Reused { family } => {
            crate::protocol::audit::refresh_reuse(ctx, &client.client_id, &family, now).await;
            let what = crate::store::SignedOut::Family {
                user_id: family.user_id.clone(),
                client_id: family.client_id.clone(),
                family_id: family.family_id.clone(),
            };
            crate::protocol::backchannel::signed_out(ctx, what, now).await;
            tracing::warn!(client_id = %client.client_id, "refresh token reuse detected: family revoked");
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; the grant has been revoked",
            ));
        }
        Rotated::Rejected(e) => return Err(e),
        Rotated::Rotated { old, family, retry } => {
            if retry {
                tracing::info!(client_id = %client.client_id, "refresh retried within the grace window");
            }
            (old, family)
        }
    };
    // Accepted by the precheck above: narrowing again cannot fail.
    let scope = Scope::narrow(
        params.get("scope"),
        Scope::parse(&old.scope).unwrap_or_default().iter(),
    )?;
    user_tokens::mint(
        ctx,
        UserGrant {
            client_id: &client.client_id,
            user_id: &family.user_id,
            scope: scope.to_string(),
            audiences: old.audiences.clone(),
            auth_time: old.auth_time,
            amr: &family.amr,
            sid: &old.sid,
            nonce: None,
            jti: format!("{}.{}", family.family_id, secret::random_token(12)),
            refresh_token: Some(next_secret),
            dpop_jkt,
            proofs,
        },
        now,
    )
}
