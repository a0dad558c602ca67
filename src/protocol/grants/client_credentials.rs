//! RFC 6749 §4.4 client credentials grant.

use crate::keys::TYP_ACCESS_TOKEN;
use crate::model::{Client, ClientType, GrantType};
use crate::protocol::Ctx;
use crate::protocol::audience;
use crate::protocol::error::{ErrorCode, OAuthError, OAuthResult};
use crate::protocol::params::Params;
use crate::protocol::scope::Scope;
use crate::protocol::tokens::{
    AccessTokenClaims, Audience, Confirmation, TokenResponse, new_jti, token_type,
};

/// `dpop_jkt`: the thumbprint of a checked DPoP proof's key (RFC 9449); `cert_x5t`: of the
/// client certificate (RFC 8705 §3): the token is bound to them.
pub fn grant(
    ctx: &Ctx,
    client: &Client,
    params: &Params,
    dpop_jkt: Option<&str>,
    proofs: crate::protocol::tokens::Proofs<'_>,
    now: i64,
) -> OAuthResult<TokenResponse> {
    if client.client_type != ClientType::Confidential
        || !client.allows_grant(GrantType::ClientCredentials)
    {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client is not allowed to use the client_credentials grant",
        ));
    }
    let scope = Scope::narrow(params.get("scope"), client.allowed_scopes())?;
    if scope.contains("openid") || scope.contains("offline_access") {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "openid and offline_access need a user: not available with client_credentials",
        ));
    }
    let aud = Audience(audience::select(
        client,
        params.get_all("resource").collect(),
        // An admin client with no registered audience gets tokens for the admin API, whose
        // audience is the issuer (see protocol::admin).
        client.is_admin.then_some(ctx.config.issuer.as_str()),
    )?);
    let ttl = ctx.config.access_token_ttl;
    let claims = AccessTokenClaims {
        iss: &ctx.config.issuer,
        sub: &client.client_id,
        aud: &aud,
        exp: now + ttl as i64,
        iat: now,
        jti: new_jti(),
        client_id: &client.client_id,
        scope: scope.to_string(),
        auth_time: None,
        acr: None,
        amr: None,
        cnf: Confirmation::new(dpop_jkt, proofs.cert_x5t),
        gty: Some(crate::protocol::tokens::CLIENT_TOKEN_GTY),
        att: proofs.att,
    };
    let access_token =
        ctx.keys
            .sign(ctx.config.access_token_alg, TYP_ACCESS_TOKEN, &claims, now)?;
    Ok(TokenResponse {
        access_token,
        token_type: token_type(dpop_jkt),
        expires_in: ttl,
        scope: claims.scope,
        refresh_token: None,
        id_token: None,
    })
}
