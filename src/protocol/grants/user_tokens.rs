//! Access and ID tokens for a user grant (shared by authorization_code and refresh_token).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::keys::{TYP_ACCESS_TOKEN, TYP_JWT};
use crate::protocol::Ctx;
use crate::protocol::error::OAuthResult;
use crate::protocol::tokens::{
    AccessTokenClaims, Audience, Confirmation, TokenResponse, token_type,
};

pub struct UserGrant<'a> {
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub scope: String,
    pub audiences: Vec<String>,
    pub auth_time: i64,
    pub sid: &'a str,
    pub nonce: Option<&'a str>,
    /// Pre-generated so the store can record it with the grant.
    pub jti: String,
    pub refresh_token: Option<String>,
    /// RFC 9449: the access token is bound to this DPoP key thumbprint (`cnf.jkt`).
    pub dpop_jkt: Option<&'a str>,
}

/// OIDC Core §2 ID token claims.
#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
    azp: &'a str,
    sid: &'a str,
}

/// OIDC Core §3.1.3.6: base64url of the left half of SHA-256 of the access token (for the
/// SHA-256-based algorithms Latchkey signs ID tokens with).
fn at_hash(access_token: &str) -> String {
    let d = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

pub fn mint(ctx: &Ctx, g: UserGrant<'_>, now: i64) -> OAuthResult<TokenResponse> {
    let cfg = &ctx.config;
    let aud = Audience(g.audiences);
    let claims = AccessTokenClaims {
        iss: &cfg.issuer,
        sub: g.user_id,
        aud: &aud,
        exp: now + cfg.access_token_ttl as i64,
        iat: now,
        jti: g.jti,
        client_id: g.client_id,
        scope: g.scope,
        auth_time: Some(g.auth_time),
        cnf: Confirmation::dpop(g.dpop_jkt),
        gty: None,
    };
    let access_token = ctx
        .keys
        .sign(cfg.access_token_alg, TYP_ACCESS_TOKEN, &claims, now)?;
    let id_token = if claims.scope.split(' ').any(|s| s == "openid") {
        let id = IdTokenClaims {
            iss: &cfg.issuer,
            sub: g.user_id,
            aud: g.client_id,
            exp: now + cfg.id_token_ttl as i64,
            iat: now,
            auth_time: g.auth_time,
            nonce: g.nonce,
            at_hash: at_hash(&access_token),
            azp: g.client_id,
            sid: g.sid,
        };
        Some(ctx.keys.sign(cfg.id_token_alg, TYP_JWT, &id, now)?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: token_type(g.dpop_jkt),
        expires_in: cfg.access_token_ttl,
        scope: claims.scope,
        refresh_token: g.refresh_token,
        id_token,
    })
}

/// Whether a grant with this scope gets a refresh token: the client must hold the
/// refresh_token grant, and an OpenID request must include `offline_access` (OIDC Core §11).
pub fn wants_refresh(client: &crate::model::Client, scope: &crate::protocol::scope::Scope) -> bool {
    client.allows_grant(crate::model::GrantType::RefreshToken)
        && (scope.contains("offline_access") || !scope.contains("openid"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_hash_matches_oidc_example_shape() {
        // 16 bytes → 22 base64url characters.
        assert_eq!(super::at_hash("token").len(), 22);
    }
}
