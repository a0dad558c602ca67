//! The token endpoint (RFC 6749 §3.2): authenticate the client, then dispatch on `grant_type`.

use super::Ctx;
use super::client_auth;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::grants;
use super::params::Params;
use super::tokens::TokenResponse;
use crate::model::GrantType;

pub async fn exchange(
    ctx: &Ctx,
    authorization: Option<&[u8]>,
    params: Params,
    now: i64,
) -> OAuthResult<TokenResponse> {
    let grant_type = params.require("grant_type")?;
    let Some(grant) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        ));
    };
    let client = client_auth::authenticate_request(ctx, authorization, &params).await?;
    let issued = match grant {
        GrantType::ClientCredentials => {
            grants::client_credentials::grant(ctx, &client, &params, now)
        }
        GrantType::AuthorizationCode => {
            grants::authorization_code::grant(ctx, &client, &params, now).await
        }
        GrantType::RefreshToken => grants::refresh_token::grant(ctx, &client, &params, now).await,
    };
    if issued.is_ok() {
        ctx.metrics.token_issued(grant.as_str());
    }
    issued
}
