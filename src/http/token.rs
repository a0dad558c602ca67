//! `POST /token`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, error, read_form_body, unix_now};
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
        token::exchange(&state.ctx, authorization, params, now).await
    }
    .await;
    match result {
        Ok(resp) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
            .json(resp),
        Err(e) => error::respond(e),
    }
}
