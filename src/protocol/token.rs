//! The token endpoint (RFC 6749 §3.2): authenticate the client, check the DPoP proof if any
//! (RFC 9449 §5), then dispatch on `grant_type`.

use super::Ctx;
use super::client_auth;
use super::discovery::TOKEN_PATH;
use super::dpop;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::grants;
use super::params::Params;
use super::tokens::TokenResponse;
use crate::model::GrantType;

pub async fn exchange(
    ctx: &Ctx,
    authorization: Option<&[u8]>,
    dpop_header: dpop::Header<'_>,
    params: Params,
    seen: &crate::model::Seen,
    now: i64,
) -> OAuthResult<TokenResponse> {
    let grant_type = params.require("grant_type")?;
    let Some(grant) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        ));
    };
    let client = client_auth::authenticate_request(ctx, authorization, &params, now).await?;
    if client.dpop_bound_access_tokens && dpop_header.is_absent() {
        // RFC 9449 §5.2: such a client gets sender-constrained tokens or none.
        return Err(OAuthError::invalid_dpop_proof(
            "this client must send a DPoP proof with every token request",
        ));
    }
    let htu = format!("{}{TOKEN_PATH}", ctx.config.issuer);
    let proof = dpop::verify(
        ctx,
        dpop_header,
        dpop::Expect {
            method: "POST",
            htu: &htu,
            access_token: None,
        },
        now,
    )
    .await?;
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let issued = match grant {
        GrantType::ClientCredentials => {
            grants::client_credentials::grant(ctx, &client, &params, jkt, now)
        }
        GrantType::AuthorizationCode => {
            grants::authorization_code::grant(ctx, &client, &params, jkt, seen, now).await
        }
        GrantType::RefreshToken => {
            grants::refresh_token::grant(ctx, &client, &params, jkt, seen, now).await
        }
        GrantType::DeviceCode => {
            grants::device_code::grant(ctx, &client, &params, jkt, seen, now).await
        }
    };
    if issued.is_ok() {
        ctx.metrics.token_issued(grant.as_str());
    }
    issued
}
