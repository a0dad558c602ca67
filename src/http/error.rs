//! The one place protocol errors become HTTP responses (RFC 6749 §5.2, RFC 6750 §3).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use serde::Serialize;

use crate::protocol::error::{AuthScheme, ErrorCode, OAuthError};

/// RFC 9449 §8: the header carrying a server-provided nonce.
pub const DPOP_NONCE: header::HeaderName = header::HeaderName::from_static("dpop-nonce");

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        // 400 at the token endpoint (RFC 9449 §5, §8); a protected resource answers 401 with
        // a DPoP challenge instead (see `respond`).
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        // (`access_denied` is a redirect at /authorize and 400 at the token endpoint, RFC 8628
        // §3.5, like every token error.)
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// JSON error response with `Cache-Control: no-store`; a 401 names the scheme the client tried.
pub fn respond(err: OAuthError) -> HttpResponse {
    respond_with_nonce(err, None)
}

/// [`respond`], plus RFC 9449 §8/§9: `DPoP-Nonce`, the nonce for the client's next proof (at
/// most one such header), when the server requires nonces.
pub fn respond_with_nonce(err: OAuthError, dpop_nonce: Option<String>) -> HttpResponse {
    let mut status = status_of(err.code);
    if err.challenge == Some(AuthScheme::Dpop)
        && matches!(
            err.code,
            ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce
        )
    {
        // RFC 9449 §7.1, §9: a protected resource refuses a proof with 401.
        status = StatusCode::UNAUTHORIZED;
    }
    if status.is_server_error() {
        tracing::error!(
            error = err.code.as_str(),
            cause = err.cause.as_deref().unwrap_or(""),
            "request failed"
        );
    } else {
        tracing::debug!(
            error = err.code.as_str(),
            cause = err.cause.as_deref().unwrap_or(""),
            "request refused"
        );
    }
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // RFC 9110 §10.2.3: tell clients (and load balancers) when to try again.
        resp.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
    }
    if let Some(nonce) = dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        resp.insert_header((DPOP_NONCE, nonce));
    }
    let description = client_safe(&err.description);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let algs = crate::protocol::dpop::ALGS.join(" ");
        let scope = err
            .required_scope
            .map(|s| format!(r#", scope="{}""#, client_safe(s)))
            .unwrap_or_default();
        let challenge = match err.challenge {
            Some(AuthScheme::Basic) => Some(r#"Basic realm="latchkey""#.to_owned()),
            Some(AuthScheme::Bearer) => Some(format!(
                r#"Bearer realm="latchkey", error="{}", error_description="{}"{scope}"#,
                err.code.as_str(),
                description
            )),
            Some(AuthScheme::Dpop) => Some(format!(
                r#"DPoP realm="latchkey", error="{}", error_description="{}", algs="{algs}""#,
                err.code.as_str(),
                description
            )),
            Some(AuthScheme::BearerNoCredentials) => {
                Some(format!(r#"Bearer realm="latchkey"{scope}"#))
            }
            // RFC 9110 §15.5.2: every 401 names a scheme; client authentication is Basic.
            None if status == StatusCode::UNAUTHORIZED => {
                Some(r#"Basic realm="latchkey""#.to_owned())
            }
            None => None,
        };
        if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.insert_header((header::WWW_AUTHENTICATE, c));
        }
        if matches!(
            err.challenge,
            Some(AuthScheme::Bearer | AuthScheme::BearerNoCredentials)
        ) && status == StatusCode::UNAUTHORIZED
            && let Ok(c) =
                HeaderValue::from_str(&format!(r#"DPoP realm="latchkey", algs="{algs}""#))
        {
            // RFC 9449 §7.2: the resource also accepts DPoP; the error stays with the scheme
            // the client tried.
            resp.append_header((header::WWW_AUTHENTICATE, c));
        }
    }
    resp.json(ErrorBody {
        error: err.code.as_str(),
        error_description: &description,
    })
}

/// RFC 6749 §5.2 allows only %x20-21 / %x23-5B / %x5D-7E in `error_description` (and the same
/// keeps a `WWW-Authenticate` quoted string valid): quotes become `'`, a backslash `/`, and
/// anything else outside that set `?`.
fn client_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}
