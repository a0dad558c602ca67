//! RFC 7662 introspection, RFC 7009 revocation and OIDC userinfo: everything that reads back a
//! token this server issued.

use serde_json::{Value, json};

use super::Ctx;
use super::client_auth;
use super::dpop;
use super::error::{AuthScheme, ErrorCode, OAuthError, OAuthResult};
use super::params::Params;
use crate::keys::VerifiedAccessToken;
use crate::model::ClientType;
use crate::model::User;
use crate::secret;

/// An access token this server issued with a valid signature, issuer and expiry (no I/O).
fn verified_access_token(ctx: &Ctx, token: &str, now: i64) -> Option<VerifiedAccessToken> {
    let claims = ctx
        .keys
        .verify_access_token(token, &ctx.config.issuer, now)
        .ok()?;
    (claims.exp > now).then_some(claims)
}

/// A live access token: signature, issuer and expiry valid, and not revoked (by jti or family);
/// with its user (when `want_user` says so for its claims) read in the same statement.
async fn live_access_token(
    ctx: &Ctx,
    token: &str,
    now: i64,
    want_user: fn(&VerifiedAccessToken) -> bool,
) -> OAuthResult<Option<(VerifiedAccessToken, Option<User>)>> {
    let Some(claims) = verified_access_token(ctx, token, now) else {
        return Ok(None);
    };
    Ok(ctx
        .store
        .read(move |s| {
            let user_id = want_user(&claims).then_some(claims.sub.as_str());
            // Usable now: not revoked, and the client it was issued to still enabled (the
            // user's state comes with the user, for the caller to check).
            let live = s.live_token_user(&claims.jti, claims.family_id(), user_id)?;
            if live.is_none() || !s.token_holders_enabled(&claims.client_id, None)? {
                return Ok(None);
            }
            Ok(live.map(|user| (claims, user)))
        })
        .await?)
}

/// RFC 7662: only authenticated confidential clients may introspect.
pub async fn introspect(
    ctx: &Ctx,
    credentials: client_auth::Credentials<'_>,
    params: Params,
    now: i64,
) -> OAuthResult<Value> {
    let presented = client_auth::presented(credentials.authorization, &params)?;
    // The signature is checked first (no I/O), so that the client and the token's revocation
    // state are read in one round trip; the answer waits for client authentication.
    // `token_type_hint` is only a hint (RFC 7662 §2.1): a token not found as the hinted type
    // is looked up as the other types, so the hint does not change the answer.
    let verified = params
        .get("token")
        .and_then(|t| verified_access_token(ctx, t, now));
    let id = presented.client_id().to_owned();
    // PostgreSQL servers keep clients and "not revoked" answers in memory: with both there,
    // no round trip at all.
    let cached = ctx.store.cached_client(&id);
    let token_cached = verified
        .as_ref()
        .map(|c| ctx.store.cached_token_live(&c.jti, c.family_id()));
    let (stored, live) = match (cached, token_cached) {
        (Ok(client), Some(Ok(()))) => (Some(client), verified),
        (cached, token_cached) => {
            let known_live = matches!(token_cached, Some(Ok(())));
            let token_ticket = match token_cached {
                Some(Err(ticket)) => ticket,
                _ => None,
            };
            ctx.store
                .read(move |s| {
                    let client = match cached {
                        Ok(c) => Some(c),
                        Err(ticket) => {
                            let read = s.client(&id)?;
                            if let Some(c) = &read {
                                s.remember_client(ticket, c);
                            }
                            read
                        }
                    };
                    // RFC 7662 §2.2: active means usable now — not revoked, and its client
                    // and user still enabled. The remembered answer covers all three (the
                    // cache drops it when any of them changes).
                    let live = match verified {
                        Some(c)
                            if known_live
                                || (!s.access_token_revoked(&c.jti, c.family_id())?
                                    && s.token_holders_enabled(&c.client_id, c.user_id())?) =>
                        {
                            s.remember_live_token(token_ticket, &c.jti, c.family_id());
                            Some(c)
                        }
                        _ => None,
                    };
                    Ok((client, live))
                })
                .await?
        }
    };
    let client = client_auth::check(ctx, &presented, credentials.certificate, stored, now).await?;
    if client.client_type != ClientType::Confidential {
        return Err(OAuthError::new(
            ErrorCode::InvalidClient,
            "introspection requires a confidential client",
        )
        .with_challenge(credentials.authorization.map(|_| AuthScheme::Basic)));
    }
    let token = params.require("token")?;
    if let Some(c) = live {
        let mut v = serde_json::to_value(&c).map_err(OAuthError::server_error)?;
        v["active"] = json!(true);
        v["token_type"] = json!(if c.dpop_jkt().is_some() {
            "DPoP"
        } else {
            "Bearer"
        });
        return Ok(v);
    }
    // Refresh tokens are introspectable by the client they were issued to.
    let h = secret::hash_token(token);
    let found = ctx
        .store
        .read(move |s| {
            let Some((t, fam)) = s.refresh_token(&h)? else {
                return Ok(None);
            };
            let enabled = s.token_holders_enabled(&fam.client_id, Some(&fam.user_id))?;
            Ok(Some((t, fam, enabled)))
        })
        .await?;
    if let Some((t, fam, true)) = found
        && fam.client_id == client.client_id
        && fam.revoked_at.is_none()
        && t.rotated_at.is_none()
        && t.expires_at > now
        && fam.expires_at > now
    {
        return Ok(json!({
            "active": true, "token_type": "refresh_token", "client_id": fam.client_id, "sub": fam.user_id,
            "scope": t.scope, "exp": t.expires_at, "iat": t.created_at, "iss": ctx.config.issuer,
        }));
    }
    Ok(json!({ "active": false }))
}

/// RFC 7009: revoke a refresh token (its whole family) or an access token (by jti). Unknown,
/// invalid or foreign tokens get the same 200 answer.
pub async fn revoke(
    ctx: &Ctx,
    credentials: client_auth::Credentials<'_>,
    params: Params,
    now: i64,
) -> OAuthResult<()> {
    let client = client_auth::authenticate_request(ctx, credentials, &params, now).await?;
    let token = params.require("token")?;
    match params.get("token_type_hint") {
        None | Some("access_token") | Some("refresh_token") => {}
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedTokenType,
                "unsupported token_type_hint",
            ));
        }
    }
    let h = secret::hash_token(token);
    if let Some((_, fam)) = ctx.store.read(move |s| s.refresh_token(&h)).await? {
        if fam.client_id == client.client_id {
            let f = fam.family_id.clone();
            ctx.store
                .blocking(move |s| s.revoke_family(&f, "revoked by client", now))
                .await?;
        }
        return Ok(());
    }
    if let Ok(c) = ctx.keys.verify_access_token(token, &ctx.config.issuer, now)
        && c.client_id == client.client_id
    {
        ctx.store
            .blocking(move |s| s.revoke_access_token(&c.jti, c.exp))
            .await?;
    }
    Ok(())
}

fn bearer_error(code: ErrorCode, d: &'static str) -> OAuthError {
    OAuthError::new(code, d).with_challenge(Some(AuthScheme::Bearer))
}

/// How the access token reached a protected resource (RFC 6750 §2.1, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    Bearer(&'a str),
    /// `Authorization: DPoP <token>` with the request's `DPoP` header(s), method and URL.
    Dpop {
        token: &'a str,
        proof: dpop::Header<'a>,
        method: &'a str,
        htu: &'a str,
        /// The endpoint's RFC 8705 §5 mTLS alias, also accepted as `htu`.
        htu_alias: Option<&'a str>,
    },
}

fn dpop_error(code: ErrorCode, d: &'static str) -> OAuthError {
    OAuthError::new(code, d).with_challenge(Some(AuthScheme::Dpop))
}

/// The live access token presented to a protected resource of this server, with its DPoP
/// binding checked: a bound token only with the `DPoP` scheme and a proof by its key carrying
/// `ath` (RFC 9449 §7); an unbound one only as a bearer token.
/// The token's user is read with the revocation check (one statement) when `want_user` says
/// so for its claims (`None` also when no such user exists).
/// A token bound to a client certificate (RFC 8705 §3) also needs that certificate on the
/// request's connection.
pub async fn authenticate_resource(
    ctx: &Ctx,
    presented: Presented<'_>,
    certificate: Option<&super::mtls::ClientCertificate>,
    now: i64,
    want_user: fn(&VerifiedAccessToken) -> bool,
) -> OAuthResult<(VerifiedAccessToken, Option<User>)> {
    let scheme = match presented {
        Presented::Bearer(_) => AuthScheme::Bearer,
        Presented::Dpop { .. } => AuthScheme::Dpop,
    };
    let (claims, user) = authenticate_sender(ctx, presented, now, want_user).await?;
    if let Some(bound) = claims.cert_x5t() {
        let same = certificate.is_some_and(|c| {
            subtle::ConstantTimeEq::ct_eq(c.thumbprint().as_bytes(), bound.as_bytes()).into()
        });
        if !same {
            return Err(OAuthError::new(
                ErrorCode::InvalidToken,
                "the access token is bound to a client certificate: present it over a connection with that certificate",
            )
            .with_challenge(Some(scheme)));
        }
    }
    Ok((claims, user))
}

/// The bearer / DPoP half of [`authenticate_resource`].
async fn authenticate_sender(
    ctx: &Ctx,
    presented: Presented<'_>,
    now: i64,
    want_user: fn(&VerifiedAccessToken) -> bool,
) -> OAuthResult<(VerifiedAccessToken, Option<User>)> {
    let invalid = "the access token is invalid, expired or revoked";
    match presented {
        Presented::Bearer(token) => {
            let (claims, extra) = live_access_token(ctx, token, now, want_user)
                .await?
                .ok_or_else(|| bearer_error(ErrorCode::InvalidToken, invalid))?;
            if claims.dpop_jkt().is_some() {
                // RFC 9449 §7.2: a DPoP-bound token is never accepted as a bearer token.
                return Err(bearer_error(
                    ErrorCode::InvalidToken,
                    "the access token is DPoP-bound: present it with the DPoP scheme and a proof",
                ));
            }
            Ok((claims, extra))
        }
        Presented::Dpop {
            token,
            proof,
            method,
            htu,
            htu_alias,
        } => {
            let (claims, extra) = live_access_token(ctx, token, now, want_user)
                .await?
                .ok_or_else(|| dpop_error(ErrorCode::InvalidToken, invalid))?;
            let Some(bound) = claims.dpop_jkt().map(str::to_owned) else {
                return Err(dpop_error(
                    ErrorCode::InvalidToken,
                    "the access token is not DPoP-bound: present it as a bearer token",
                ));
            };
            if proof.is_absent() {
                return Err(dpop_error(
                    ErrorCode::InvalidDpopProof,
                    "a DPoP proof is required with the DPoP scheme",
                ));
            }
            let checked = dpop::verify(
                ctx,
                proof,
                dpop::Expect {
                    method,
                    htu,
                    htu_alias,
                    access_token: Some(token),
                },
                now,
            )
            .await
            .map_err(|e| e.with_challenge(Some(AuthScheme::Dpop)))?;
            if checked.map(|p| p.jkt).as_deref() != Some(bound.as_str()) {
                return Err(dpop_error(
                    ErrorCode::InvalidToken,
                    "invalid DPoP key binding: the proof is signed by another key",
                ));
            }
            Ok((claims, extra))
        }
    }
}

/// OIDC Core §5.3 userinfo: standard claims by scope.
pub async fn userinfo(
    ctx: &Ctx,
    presented: Presented<'_>,
    certificate: Option<&super::mtls::ClientCertificate>,
    now: i64,
) -> OAuthResult<Value> {
    let dpop_scheme = matches!(presented, Presented::Dpop { .. });
    // The user is read with the revocation check (one statement) when the scope asks for it.
    let (claims, user) =
        authenticate_resource(ctx, presented, certificate, now, |c| c.has_scope("openid")).await?;
    let bearer_error = |code, d| {
        if dpop_scheme {
            dpop_error(code, d)
        } else {
            bearer_error(code, d)
        }
    };
    if !claims.has_scope("openid") {
        return Err(bearer_error(
            ErrorCode::InsufficientScope,
            "the openid scope is required",
        ));
    }
    let user = user
        .filter(|u| !u.disabled)
        .ok_or_else(|| bearer_error(ErrorCode::InvalidToken, "the user no longer exists"))?;
    let mut out = json!({ "sub": user.user_id });
    if claims.has_scope("profile") {
        out["preferred_username"] = json!(user.username);
        if let Some(n) = &user.name {
            out["name"] = json!(n);
        }
        out["updated_at"] = json!(user.updated_at);
    }
    if claims.has_scope("email")
        && let Some(e) = &user.email
    {
        out["email"] = json!(e);
        out["email_verified"] = json!(false);
    }
    Ok(out)
}
