//! Discovery, JWKS and health endpoints: prebuilt bytes, no per-request serialization.

use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::{HttpResponse, web};

use super::AppState;

pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
        .body(state.discovery.clone())
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .insert_header((header::CACHE_CONTROL, state.jwks_cache_control.clone()))
        .body(state.ctx.keys.jwks())
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(r#"{"status":"ok"}"#)
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.ctx.store.blocking(|s| s.ping()).await {
        Ok(()) => HttpResponse::Ok()
            .insert_header(ContentType::json())
            .body(r#"{"status":"ready"}"#),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .insert_header(ContentType::json())
                .insert_header(("retry-after", "5"))
                .body(r#"{"status":"unavailable","reason":"database unreachable"}"#)
        }
    }
}
