//! Pushed authorization requests (RFC 9126). The client POSTs its authorization request to
//! [`PAR_PATH`] (authenticated like at the token endpoint: a public client names itself, a
//! confidential one proves who it is) and gets a `request_uri` that stands for it at the
//! authorization endpoint: the parameters never travel through the browser, so they cannot be
//! read or changed there, and they are checked before the user sees anything.
//!
//! Rules:
//! - the request is validated exactly as `/authorize` would (`authorize::validate_pushed`);
//!   errors are JSON answers to the client, never redirects (§2.3);
//! - a `DPoP` proof (RFC 9449 §10.1) binds the code to the proof's key (`dpop_jkt`); both a
//!   proof and a `dpop_jkt` that differ are refused;
//! - the `request_uri` is random, stored only as its SHA-256, lives `par_ttl` seconds, belongs
//!   to the client that pushed it, and is used up when its code is issued (§4: one use; a
//!   reload of the login page before that still works);
//! - `require_pushed_authorization_requests` (global or per client, §5/§6) refuses plain
//!   authorization requests.

use serde::Serialize;

use super::Ctx;
use super::authorize::{self, AuthorizeError};
use super::client_auth;
use super::dpop;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::params::Params;
use crate::secret;

pub const PAR_PATH: &str = "/par";

/// RFC 9126 §2.2: the `request_uri` scheme.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Client credentials that may be in the pushed body and are never stored with the request.
const CREDENTIALS: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// RFC 9126 §2.2 success response (201).
#[derive(Debug, Serialize)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: u64,
}

/// `POST /par`: authenticate the client, check the DPoP proof if any, validate the request and
/// store it.
pub async fn push(
    ctx: &Ctx,
    credentials: client_auth::Credentials<'_>,
    dpop_header: dpop::Header<'_>,
    params: Params,
    now: i64,
) -> OAuthResult<Pushed> {
    if params.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request("request_uri cannot be pushed"));
    }
    let (client, _attested) =
        client_auth::authenticate_attested(ctx, credentials, &params, now).await?;
    let htu = format!("{}{PAR_PATH}", ctx.config.issuer);
    let alias = ctx.config.mtls_base().map(|b| format!("{b}{PAR_PATH}"));
    let proof = dpop::verify(
        ctx,
        dpop_header,
        dpop::Expect {
            method: "POST",
            htu: &htu,
            htu_alias: alias.as_deref(),
            access_token: None,
        },
        now,
    )
    .await?;
    let proof_jkt = proof.map(|p| p.jkt);
    // RFC 9101 §6.3: with a request object, only its parameters count; it is verified now
    // and stored expanded, marked as signed.
    let signed = match params.get("request") {
        Some(jwt) => Some(super::request_object::expand(ctx, &client, jwt, now).await?),
        None => None,
    };
    let params = signed.as_ref().unwrap_or(&params);
    if let (Some(jkt), Some(asked)) = (&proof_jkt, params.get("dpop_jkt"))
        && jkt != asked
    {
        return Err(OAuthError::invalid_dpop_proof(
            "dpop_jkt does not match the key of the DPoP proof",
        ));
    }
    // What `/authorize` will see: the pushed parameters without credentials, with the
    // authenticated client's id (a Basic-authenticated client need not repeat it) and the
    // proof's key as `dpop_jkt`.
    let mut stored = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter() {
        if !CREDENTIALS.contains(&k) && k != authorize::SIGNED {
            stored.append_pair(k, v);
        }
    }
    if signed.is_some() {
        stored.append_pair(authorize::SIGNED, "1");
    }
    if params.get("client_id").is_none() {
        stored.append_pair("client_id", &client.client_id);
    }
    if let (Some(jkt), None) = (&proof_jkt, params.get("dpop_jkt")) {
        stored.append_pair("dpop_jkt", jkt);
    }
    let stored = stored.finish();
    let checked = Params::parse(stored.as_bytes())?;
    authorize::validate_pushed(ctx, &checked)
        .await
        .map_err(|e| match e {
            AuthorizeError::Page(e) => e,
            AuthorizeError::Redirect(r) => r.error,
        })?;
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", secret::new_secret());
    let hash = secret::hash_token(&request_uri);
    let ttl = ctx.config.par_ttl;
    let client_id = client.client_id.clone();
    ctx.store
        .write(move |s| s.insert_pushed_request(&hash, &client_id, &stored, now, now + ttl as i64))
        .await?;
    Ok(Pushed {
        request_uri,
        expires_in: ttl,
    })
}

/// A pushed request found by its `request_uri`: its parameters, and the hash that uses it up.
pub struct Resolved {
    pub request_hash: String,
    pub params: Params,
}

/// RFC 9126 §4: the parameters behind `request_uri`, for the client named at `/authorize`.
/// Unknown, expired, used, or another client's: `invalid_request_uri`, all alike.
pub async fn resolve(
    ctx: &Ctx,
    client_id: &str,
    request_uri: &str,
    now: i64,
) -> OAuthResult<Resolved> {
    let invalid = || {
        OAuthError::new(
            ErrorCode::InvalidRequestUri,
            "request_uri is unknown, expired or used already; start again from the app",
        )
    };
    if !request_uri.starts_with(REQUEST_URI_PREFIX) || request_uri.len() > 200 {
        return Err(invalid());
    }
    let hash = secret::hash_token(request_uri);
    let h = hash.clone();
    let found = ctx
        .store
        .read(move |s| s.pushed_request(&h, now))
        .await?
        .ok_or_else(invalid)?;
    let (owner, stored) = found;
    if owner != client_id {
        return Err(invalid().with_cause("request_uri of another client"));
    }
    Ok(Resolved {
        request_hash: hash,
        params: Params::parse(stored.as_bytes())?,
    })
}
