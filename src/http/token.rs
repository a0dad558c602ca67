//! `POST /token`, and what it shares with `POST /par` (`par.rs`): the client-authenticated form
//! with an optional DPoP proof, and the `no-store` answer carrying the next DPoP nonce.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, error, read_form_body, unix_now};
use crate::protocol::dpop;
use crate::protocol::error::{ErrorCode, OAuthError, OAuthResult};
use crate::protocol::params::Params;
use crate::protocol::token;

/// A client's POST to the token or PAR endpoint: the form, the `Authorization` header value and
/// client certificate, and the `DPoP` header(s).
pub(super) struct ClientPost<'r> {
    pub params: Params,
    pub credentials: super::client_cert::ClientCredentials<'r>,
    pub proof: dpop::Header<'r>,
}

pub(super) async fn client_post(
    req: &HttpRequest,
    body: web::Payload,
) -> OAuthResult<ClientPost<'_>> {
    let body = read_form_body(req, body).await?;
    Ok(ClientPost {
        params: Params::parse(&body)?,
        credentials: super::client_cert::ClientCredentials::of(req),
        proof: dpop::Header::from_values(req.headers().get_all(DPOP).map(HeaderValue::as_bytes)),
    })
}

/// The JSON answer (RFC 6749 §5.1: `no-store`) or error; RFC 9449 §8.2: with nonces required,
/// every answer carries the nonce to use next.
pub(super) fn answer<T: serde::Serialize>(
    state: &AppState,
    status: StatusCode,
    result: Result<T, OAuthError>,
    now: i64,
) -> HttpResponse {
    let nonce = dpop::current_nonce(&state.ctx, now);
    match result {
        Ok(body) => {
            let mut ok = HttpResponse::build(status);
            ok.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
            if let Some(n) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                ok.insert_header((error::DPOP_NONCE, n));
            }
            ok.json(body)
        }
        Err(e) => {
            let wants_challenge = e.code == ErrorCode::UseAttestationChallenge;
            let mut resp = error::respond_with_nonce(e, nonce);
            if wants_challenge {
                super::attest::attach_challenge(&state.ctx, &mut resp, now);
            }
            resp
        }
    }
}

pub async fn token(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let result = async {
        let p = client_post(&req, body).await?;
        let seen = super::client_ip::seen(&req);
        token::exchange(
            &state.ctx,
            p.credentials.get(),
            p.proof,
            p.params,
            &seen,
            now,
        )
        .await
    }
    .await;
    answer(&state, StatusCode::OK, result, now)
}

/// RFC 9449 §4.1: the request header carrying the proof.
pub const DPOP: header::HeaderName = header::HeaderName::from_static("dpop");
