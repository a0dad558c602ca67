//! Getting the token out of an HTTP request (RFC 6750 §2.1, RFC 9449 §7.1),
//! framework-independent.

use crate::error::VerifyError;

/// The authorization scheme an access token was presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer <token>` (RFC 6750): verify with [`crate::Verifier::verify`].
    Bearer,
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1): verify with the request's `DPoP` proof,
    /// [`crate::Verifier::verify_dpop`].
    Dpop,
}

/// The scheme and token from the values of a request's `Authorization` headers: `Bearer` or
/// `DPoP` (case-insensitive), with the same rules as [`bearer_token`] (another scheme is
/// [`VerifyError::MissingToken`]).
pub fn access_token<'a, I>(authorization_values: I) -> Result<(Scheme, &'a str), VerifyError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = authorization_values.into_iter();
    let Some(value) = values.next() else {
        return Err(VerifyError::MissingToken);
    };
    if values.next().is_some() {
        return Err(VerifyError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.is_ascii())
        .ok_or(VerifyError::InvalidRequest(
            "the Authorization header is not ASCII",
        ))?;
    let trimmed = value.trim_matches([' ', '\t']);
    let scheme = trimmed.split(' ').next().unwrap_or("");
    if scheme.eq_ignore_ascii_case("dpop") {
        let token = trimmed[scheme.len()..].trim_start_matches(' ');
        if token.is_empty() {
            return Err(VerifyError::InvalidRequest("the access token is missing"));
        }
        if !is_b64token(token) {
            return Err(VerifyError::InvalidRequest("the access token is malformed"));
        }
        return Ok((Scheme::Dpop, token));
    }
    token_from_authorization(value).map(|t| (Scheme::Bearer, t))
}

/// The token from the values of a request's `Authorization` headers.
///
/// - no header, or a scheme other than `Bearer` → [`VerifyError::MissingToken`] (RFC 6750
///   §3.1: a request without bearer credentials gets a challenge with no error code);
/// - more than one header, non-ASCII bytes, `Bearer` without a token, or a token outside the
///   RFC 6750 `b64token` syntax → [`VerifyError::InvalidRequest`].
///
/// Tokens in the URL query (`access_token=`) are never looked at (OAuth 2.1 forbids them);
/// the actix-web extractor answers `invalid_request` to such requests.
pub fn bearer_token<'a, I>(authorization_values: I) -> Result<&'a str, VerifyError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = authorization_values.into_iter();
    let Some(value) = values.next() else {
        return Err(VerifyError::MissingToken);
    };
    if values.next().is_some() {
        return Err(VerifyError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.is_ascii())
        .ok_or(VerifyError::InvalidRequest(
            "the Authorization header is not ASCII",
        ))?;
    token_from_authorization(value)
}

/// The token from one `Authorization` header value: `Bearer <b64token>`, the scheme
/// case-insensitive. See [`bearer_token`] for the errors.
pub fn token_from_authorization(value: &str) -> Result<&str, VerifyError> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(VerifyError::MissingToken);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(VerifyError::InvalidRequest("the bearer token is missing"));
    }
    if !is_b64token(token) {
        return Err(VerifyError::InvalidRequest("the bearer token is malformed"));
    }
    Ok(token)
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(token_from_authorization("Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(token_from_authorization("bearer   a.b.c "), Ok("a.b.c"));
        assert_eq!(token_from_authorization("BEARER abc=="), Ok("abc=="));
        assert_eq!(
            token_from_authorization("Basic dXNlcjpwdw=="),
            Err(VerifyError::MissingToken)
        );
        assert_eq!(
            token_from_authorization("DPoP a.b.c"),
            Err(VerifyError::MissingToken)
        );
        assert_eq!(
            token_from_authorization("Bearer"),
            Err(VerifyError::InvalidRequest("the bearer token is missing"))
        );
        assert_eq!(
            token_from_authorization("Bearer a b"),
            Err(VerifyError::InvalidRequest("the bearer token is malformed"))
        );
        assert_eq!(
            token_from_authorization("Bearer =="),
            Err(VerifyError::InvalidRequest("the bearer token is malformed"))
        );
        assert_eq!(bearer_token([]), Err(VerifyError::MissingToken));
        assert_eq!(
            bearer_token([&b"Bearer a"[..], &b"Bearer b"[..]]),
            Err(VerifyError::InvalidRequest(
                "more than one Authorization header"
            ))
        );
        assert_eq!(
            bearer_token([&b"Bearer \xff"[..]]),
            Err(VerifyError::InvalidRequest(
                "the Authorization header is not ASCII"
            ))
        );
        assert_eq!(bearer_token([&b"Bearer x.y.z"[..]]), Ok("x.y.z"));
        assert_eq!(
            access_token([&b"DPoP x.y.z"[..]]),
            Ok((Scheme::Dpop, "x.y.z"))
        );
        assert_eq!(
            access_token([&b"dpop  x.y.z "[..]]),
            Ok((Scheme::Dpop, "x.y.z"))
        );
        assert_eq!(
            access_token([&b"Bearer x.y.z"[..]]),
            Ok((Scheme::Bearer, "x.y.z"))
        );
        assert_eq!(
            access_token([&b"DPoP"[..]]),
            Err(VerifyError::InvalidRequest("the access token is missing"))
        );
        assert_eq!(
            access_token([&b"DPoPx a.b.c"[..]]),
            Err(VerifyError::MissingToken)
        );
        assert_eq!(access_token([]), Err(VerifyError::MissingToken));
    }
}
