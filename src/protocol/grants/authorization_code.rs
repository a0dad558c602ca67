//! RFC 6749 §4.1.3 authorization code grant with RFC 7636 PKCE.

use super::user_tokens::Pending;
use crate::model::{Client, GrantType};
use crate::protocol::Ctx;
use crate::protocol::dpop;
use crate::protocol::error::{ErrorCode, OAuthError, OAuthResult};
use crate::protocol::params::Params;
use crate::protocol::pkce;
use crate::protocol::tokens::TokenResponse;
use crate::secret;
use crate::store::Redeemed;

pub async fn grant(
    ctx: &Ctx,
    client: &Client,
    params: &Params,
    dpop_jkt: Option<&str>,
    proofs: crate::protocol::tokens::Proofs<'_>,
    seen: &crate::model::Seen,
    now: i64,
) -> OAuthResult<TokenResponse> {
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use the authorization_code grant",
        ));
    }
    let code = params.require("code")?.to_owned();
    let redirect_uri = params.get("redirect_uri").map(str::to_owned);
    let verifier = params.get("code_verifier").map(str::to_owned);

    // Everything the grant will record is generated up front, so redemption and recording are
    // one transaction.
    let pending = Pending::new();
    let recorded = pending.clone();
    let cfg = ctx.config.clone();
    let client_id = client.client_id.clone();
    let client2 = client.clone();
    let seen2 = seen.clone();
    let family_jkt = dpop::refresh_binding(client, dpop_jkt);
    let proof_jkt = dpop_jkt.map(str::to_owned);
    let outcome = ctx
        .store
        .write(move |s| {
            s.redeem_code_for_user(&secret::hash_token(&code), now, |c, user| {
                if c.client_id != client_id {
                    return Err(OAuthError::invalid_grant(
                        "the code was issued to another client",
                    ));
                }
                if c.expires_at <= now {
                    return Err(OAuthError::invalid_grant("the code has expired"));
                }
                match &redirect_uri {
                    Some(r) if *r != c.redirect_uri => {
                        return Err(OAuthError::invalid_grant(
                            "redirect_uri does not match the authorization request",
                        ));
                    }
                    None if c.redirect_uri_explicit => {
                        return Err(OAuthError::invalid_grant(
                            "redirect_uri is required: it was in the authorization request",
                        ));
                    }
                    _ => {}
                }
                dpop::check_code_binding(c.dpop_jkt.as_deref(), proof_jkt.as_deref())?;
                let Some(v) = &verifier else {
                    return Err(OAuthError::invalid_grant(
                        "code_verifier is required (PKCE)",
                    ));
                };
                if !pkce::verify(v, &c.code_challenge) {
                    return Err(OAuthError::invalid_grant("PKCE verification failed"));
                }
                // Read in the same transaction: a user disabled since the login gets nothing
                // (the code is burnt, no family is created).
                if user.is_none_or(|u| u.disabled) {
                    return Err(OAuthError::invalid_grant("the user is disabled"));
                }
                Ok(recorded.issuance(&client2, c, family_jkt.clone(), &seen2, &cfg, now))
            })
        })
        .await?;
    let code = match outcome {
        Redeemed::NotFound => return Err(OAuthError::invalid_grant("the code is invalid")),
        Redeemed::Replayed => {
            crate::protocol::audit::code_replay(ctx, &client.client_id, now).await;
            tracing::warn!(client_id = %client.client_id, "authorization code replayed: tokens it issued are revoked");
            return Err(OAuthError::invalid_grant("the code has already been used"));
        }
        Redeemed::Rejected(e) => return Err(e),
        Redeemed::Issued(c) => c,
    };
    pending.mint(ctx, client, &code, dpop_jkt, proofs, now)
}
