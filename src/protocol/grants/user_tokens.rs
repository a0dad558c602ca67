//! Access and ID tokens for a user grant (shared by authorization_code, device_code and
//! refresh_token), and what a redeemed code records: [`Pending`].

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::keys::{TYP_ACCESS_TOKEN, TYP_JWT};
use crate::model::{AuthCode, Client, Issuance, RefreshToken, TokenFamily};
use crate::protocol::Ctx;
use crate::protocol::error::OAuthResult;
use crate::protocol::login::amr::{self, Acr};
use crate::protocol::scope::Scope;
use crate::protocol::tokens::{
    AccessTokenClaims, Audience, Confirmation, TokenResponse, token_type,
};

pub struct UserGrant<'a> {
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub scope: String,
    pub audiences: Vec<String>,
    pub auth_time: i64,
    /// The sign-in's RFC 8176 methods, space-separated (`amr` and `acr` claims).
    pub amr: &'a str,
    pub sid: &'a str,
    pub nonce: Option<&'a str>,
    /// Pre-generated so the store can record it with the grant.
    pub jti: String,
    pub refresh_token: Option<String>,
    /// RFC 9449: the access token is bound to this DPoP key thumbprint (`cnf.jkt`).
    pub dpop_jkt: Option<&'a str>,
    /// RFC 8705 §3: and to this client certificate thumbprint (`cnf.x5t#S256`); and the
    /// client's attestation (`att`).
    pub proofs: crate::protocol::tokens::Proofs<'a>,
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
    /// OIDC Core §2: the level reached (`login::amr::Acr`) and RFC 8176 methods used.
    acr: &'static str,
    amr: Vec<&'a str>,
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
        acr: Some(Acr::of(g.amr).as_str()),
        amr: Some(amr::claim(g.amr)),
        cnf: Confirmation::new(g.dpop_jkt, g.proofs.cert_x5t),
        gty: None,
        att: g.proofs.att,
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
            acr: Acr::of(g.amr).as_str(),
            amr: amr::claim(g.amr),
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

/// The identifiers of a code's tokens, generated before the store transaction so that the
/// code's redemption and the recording of its refresh family are one transaction.
#[derive(Clone)]
pub struct Pending {
    family_id: String,
    jti: String,
    /// Without a refresh family the access token's jti names none: a `family.random` jti whose
    /// family was never created reads as revoked (`Store::access_token_revoked` fails closed).
    plain_jti: String,
    refresh: String,
}

impl Pending {
    pub fn new() -> Pending {
        let family_id = crate::secret::random_token(16);
        Pending {
            jti: format!("{family_id}.{}", crate::secret::random_token(12)),
            family_id,
            plain_jti: crate::secret::random_token(16),
            refresh: crate::secret::new_secret(),
        }
    }

    /// What the store records with the redeemed code: the refresh family (if the scope asks
    /// for one, bound to `family_jkt`) and the access token's jti.
    pub fn issuance(
        &self,
        client: &Client,
        code: &AuthCode,
        family_jkt: Option<String>,
        seen: &crate::model::Seen,
        cfg: &crate::config::Config,
        now: i64,
    ) -> Issuance {
        let scope = Scope::parse(&code.scope).unwrap_or_default();
        let family = wants_refresh(client, &scope).then(|| {
            let fam = TokenFamily {
                family_id: self.family_id.clone(),
                client_id: client.client_id.clone(),
                user_id: code.user_id.clone(),
                created_at: now,
                expires_at: now + cfg.refresh_token_absolute_ttl as i64,
                revoked_at: None,
                dpop_jkt: family_jkt,
                amr: code.amr.clone(),
            };
            let first = RefreshToken {
                token_hash: crate::secret::hash_token(&self.refresh),
                family_id: self.family_id.clone(),
                scope: code.scope.clone(),
                audiences: code.audiences.clone(),
                auth_time: code.auth_time,
                sid: code.sid.clone(),
                created_at: now,
                expires_at: (now + cfg.refresh_token_ttl as i64).min(fam.expires_at),
                rotated_at: None,
                successor_hash: None,
                seen: seen.clone(),
            };
            (fam, first)
        });
        Issuance {
            access_jti: if family.is_some() {
                self.jti.clone()
            } else {
                self.plain_jti.clone()
            },
            access_expires_at: now + cfg.access_token_ttl as i64,
            family,
        }
    }

    /// Signs the tokens of a redeemed code.
    pub fn mint(
        self,
        ctx: &Ctx,
        client: &Client,
        code: &AuthCode,
        dpop_jkt: Option<&str>,
        proofs: crate::protocol::tokens::Proofs<'_>,
        now: i64,
    ) -> OAuthResult<TokenResponse> {
        let refresh = wants_refresh(client, &Scope::parse(&code.scope).unwrap_or_default());
        mint(
            ctx,
            UserGrant {
                client_id: &client.client_id,
                user_id: &code.user_id,
                scope: code.scope.clone(),
                audiences: code.audiences.clone(),
                auth_time: code.auth_time,
                amr: &code.amr,
                sid: &code.sid,
                nonce: code.nonce.as_deref(),
                jti: if refresh { self.jti } else { self.plain_jti },
                refresh_token: refresh.then_some(self.refresh),
                dpop_jkt,
                proofs,
            },
            now,
        )
    }
}

impl Default for Pending {
    fn default() -> Self {
        Pending::new()
    }
}

/// Whether a grant with this scope gets a refresh token: the client must hold the
/// refresh_token grant, and an OpenID request must include `offline_access` (OIDC Core §11).
pub fn wants_refresh(client: &Client, scope: &Scope) -> bool {
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
