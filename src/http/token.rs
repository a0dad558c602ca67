//! `POST /token`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, error, read_form_body, unix_now};
use crate::protocol::dpop;
use crate::protocol::params::Params;
use crate::protocol::token;

pub async fn token(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let result = async {
        let body = read_form_body(&req, body).await?;
        let params = Params::parse(&body)?;
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let proof =
            dpop::Header::from_values(req.headers().get_all(DPOP).map(HeaderValue::as_bytes));
        token::exchange(&state.ctx, authorization, proof, params, now).await
    }
    .await;
    // RFC 9449 §8.2: with nonces required, every answer carries the nonce to use next.
    let nonce = dpop::current_nonce(&state.ctx, now);
    match result {
        Ok(resp) => {
            let mut ok = HttpResponse::Ok();
            ok.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
            if let Some(n) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                ok.insert_header((error::DPOP_NONCE, n));
            }
            ok.json(resp)
        }
        Err(e) => error::respond_with_nonce(e, nonce),
    }
}

/// RFC 9449 §4.1: the request header carrying the proof.
pub const DPOP: header::HeaderName = header::HeaderName::from_static("dpop");
