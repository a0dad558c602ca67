//! Audience selection from RFC 8707 `resource` parameters.

use super::error::{ErrorCode, OAuthError, OAuthResult};
use crate::model::Client;

/// Each requested resource must be registered for the client; with none requested, the
/// client's only registered audience is used. Returns the `aud` values, in request order.
/// `fallback` is used when the client has no registered audience (user logins default to the
/// issuer itself, RFC 9068 §3); without one that case is `invalid_target`.
pub fn select(
    client: &Client,
    requested: Vec<&str>,
    fallback: Option<&str>,
) -> OAuthResult<Vec<String>> {
    if requested.is_empty() {
        return match client.audiences.as_slice() {
            [one] => Ok(vec![one.clone()]),
            [] if fallback.is_some() => Ok(fallback.into_iter().map(str::to_owned).collect()),
            [] => Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "the client has no registered audience",
            )),
            _ => Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "the client has several audiences: name one with the 'resource' parameter",
            )),
        };
    }
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    for r in requested {
        // RFC 8707 §2: an absolute URI without a fragment.
        let parsed = url::Url::parse(r).map_err(|_| {
            OAuthError::new(ErrorCode::InvalidTarget, "resource must be an absolute URI")
        })?;
        if parsed.fragment().is_some() {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource must not contain a fragment",
            ));
        }
        if !client.audiences.iter().any(|a| a == r) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "the requested resource is not allowed for this client",
            ));
        }
        if !out.iter().any(|a| a == r) {
            out.push(r.to_owned());
        }
    }
    Ok(out)
}
