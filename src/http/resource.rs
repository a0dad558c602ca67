//! `GET|POST /userinfo`, `POST /introspect`, `POST /revoke`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, error, read_form_body, unix_now};
use crate::protocol::introspect;
use crate::protocol::params::Params;

fn no_store(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    b
}

fn authorization(req: &HttpRequest) -> Option<&[u8]> {
    req.headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
}

pub async fn introspect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let r = async {
        let params = Params::parse(&read_form_body(&req, body).await?)?;
        introspect::introspect(&state.ctx, authorization(&req), params, now).await
    }
    .await;
    match r {
        Ok(v) => no_store(HttpResponse::Ok()).json(v),
        Err(e) => error::respond(e),
    }
}

pub async fn revoke(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let r = async {
        let params = Params::parse(&read_form_body(&req, body).await?)?;
        introspect::revoke(&state.ctx, authorization(&req), params, now).await
    }
    .await;
    match r {
        Ok(()) => no_store(HttpResponse::Ok()).finish(),
        Err(e) => error::respond(e),
    }
}

/// The bearer token from `Authorization: Bearer …` (RFC 6750 §2.1); the query form is not accepted.
fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let now = unix_now();
    let token = bearer(&req);
    if token.is_none() {
        // RFC 6750 §3.1: no credentials → 401 with a bare challenge.
        return no_store(HttpResponse::Unauthorized())
            .insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="latchkey""#),
            ))
            .finish();
    }
    match introspect::userinfo(&state.ctx, token.as_deref(), now).await {
        Ok(v) => no_store(HttpResponse::Ok()).json(v),
        Err(e) => error::respond(e),
    }
}
