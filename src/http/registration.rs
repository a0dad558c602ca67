//! RFC 7591 `POST /register` and RFC 7592 `GET|PUT|DELETE /register/{client_id}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::admin::{bearer, client_ip, json_response, read_json};
use super::{AppState, error, unix_now};
use crate::protocol::error::{ErrorCode, OAuthError, OAuthResult};
use crate::protocol::registration;

/// RFC 7591 §3.2.2: an unparseable body is `invalid_client_metadata` too.
async fn metadata_body(req: &HttpRequest, body: web::Payload) -> OAuthResult<serde_json::Value> {
    read_json(req, body)
        .await
        .map_err(|e| OAuthError::new(ErrorCode::InvalidClientMetadata, e.description))
}

pub async fn register(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let token = bearer(&req);
    let v = metadata_body(&req, body).await;
    let r = registration::register(&state.ctx, token.as_deref(), v, client_ip(&req), now).await;
    match r {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(e) => error::respond(e),
    }
}

pub async fn read(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match registration::read(&state.ctx, &id, bearer(&req).as_deref()).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error::respond(e),
    }
}

pub async fn update(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let token = bearer(&req);
    let v = metadata_body(&req, body).await;
    let r = registration::update(&state.ctx, &id, token.as_deref(), v, client_ip(&req), now).await;
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error::respond(e),
    }
}

pub async fn delete(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    match registration::delete(
        &state.ctx,
        &id,
        bearer(&req).as_deref(),
        client_ip(&req),
        now,
    )
    .await
    {
        Ok(()) => json_response(StatusCode::NO_CONTENT, &serde_json::Value::Null),
        Err(e) => error::respond(e),
    }
}
