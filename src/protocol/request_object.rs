//! Signed request objects (JAR, RFC 9101): the authorization request as a JWT, signed with a
//! key the client registered (`jwks`), passed by value (`request`) at `/authorize` or `/par`,
//! or by reference only through PAR (`request_uri`).
//!
//! Rules: the signature must verify with a registered key, by value or from `jwks_uri` (the
//! same key choice and algorithms as `private_key_jwt`, `client_keys::ClientKeys::key_for`); `iss` and the `client_id` claim are
//! the client named outside the object; `aud` is (or contains) this issuer; `exp` is required,
//! in the future and at most [`MAX_LIFETIME`] seconds away; the object holds neither `request`
//! nor `request_uri`. Only the object's parameters are used (§6.3): anything else in the URL
//! but `client_id` is ignored. `require_signed_request_object` refuses requests without one.

use serde_json::{Map, Value};

use super::Ctx;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::params::Params;
use crate::model::Client;

/// The longest a request object may live.
pub const MAX_LIFETIME: i64 = 3600;

/// Claims that describe the JWT itself, not the authorization request.
const JWT_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "iat", "nbf", "jti"];

fn invalid(d: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestObject, d)
}

/// The authorization request inside `jwt`, for `client`, as parameters.
pub async fn expand(ctx: &Ctx, client: &Client, jwt: &str, now: i64) -> OAuthResult<Params> {
    if !client.has_keys() {
        return Err(invalid(
            "this client has no registered keys to sign request objects with",
        ));
    }
    let issuer = ctx.config.issuer.as_str();
    let (key, alg) = ctx
        .client_keys
        .key_for(client, jwt)
        .await
        .map_err(|e| invalid("the request object signature is not valid").with_cause(e))?;
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.leeway = 30;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[&client.client_id]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key, &validation)
        .map_err(|e| invalid("the request object is not valid").with_cause(e))?
        .claims;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == issuer,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(issuer)),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid("the request object is for another audience"));
    }
    if claims.get("client_id").and_then(Value::as_str) != Some(client.client_id.as_str()) {
        return Err(invalid(
            "the request object's client_id must be the client's",
        ));
    }
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp > now + MAX_LIFETIME)
    {
        return Err(invalid("the request object lives too long"));
    }
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err(invalid(
            "a request object cannot hold request or request_uri",
        ));
    }
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &claims {
        if JWT_CLAIMS.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::String(s) => {
                form.append_pair(k, s);
            }
            Value::Number(n) => {
                form.append_pair(k, &n.to_string());
            }
            Value::Array(items) => {
                for i in items {
                    let Some(s) = i.as_str() else {
                        return Err(invalid("request object values must be strings"));
                    };
                    form.append_pair(k, s);
                }
            }
            _ => return Err(invalid("request object values must be strings")),
        }
    }
    Params::parse(form.finish().as_bytes())
}
