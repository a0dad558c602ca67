//! `POST /par`: pushed authorization requests (RFC 9126). The rules are in `protocol::par`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::token::DPOP;
use super::{AppState, error, read_form_body, unix_now};
use crate::protocol::dpop;
use crate::protocol::par;
use crate::protocol::params::Params;

pub async fn push(
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
        par::push(&state.ctx, authorization, proof, params, now).await
    }
    .await;
    let nonce = dpop::current_nonce(&state.ctx, now);
    match result {
        Ok(pushed) => {
            let mut ok = HttpResponse::build(StatusCode::CREATED);
            ok.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
            if let Some(n) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                ok.insert_header((error::DPOP_NONCE, n));
            }
            ok.json(pushed)
        }
        Err(e) => error::respond_with_nonce(e, nonce),
    }
}
