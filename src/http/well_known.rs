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

/// No icon: browsers ask for one on every origin, and a 404 is noise in their consoles.
pub async fn favicon() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .finish()
}

/// The passkey script of the login, account and invitation pages (the pages carry no inline
/// script).
pub async fn passkey_js() -> HttpResponse {
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    b.body(include_str!("../../static/passkey.js"))
}

/// The console's script ("Copy" buttons).
pub async fn console_js() -> HttpResponse {
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    b.body(include_str!("../../static/console.js"))
}

/// `/.well-known/apple-app-site-association`: the iOS apps (`apple_app_ids`) that may use this
/// domain's passkeys (`webcredentials`); 404 when none is configured.
pub async fn apple_app_site_association(state: web::Data<AppState>) -> HttpResponse {
    let apps = &state.ctx.config.apple_app_ids;
    if apps.is_empty() {
        return HttpResponse::NotFound().finish();
    }
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(serde_json::json!({ "webcredentials": { "apps": apps } }).to_string())
}

/// `/.well-known/assetlinks.json` (Digital Asset Links): the Android apps (`android_apps`,
/// `package:SHA256_FINGERPRINT`) that may use this domain's passkeys and links; 404 when none.
pub async fn assetlinks(state: web::Data<AppState>) -> HttpResponse {
    let apps = &state.ctx.config.android_apps;
    if apps.is_empty() {
        return HttpResponse::NotFound().finish();
    }
    let statements: Vec<serde_json::Value> = apps
        .iter()
        .filter_map(|a| a.split_once(':'))
        .map(|(package, fingerprint)| {
            serde_json::json!({
                "relation": [
                    "delegate_permission/common.get_login_creds",
                    "delegate_permission/common.handle_all_urls"
                ],
                "target": {
                    "namespace": "android_app",
                    "package_name": package,
                    "sha256_cert_fingerprints": [fingerprint]
                }
            })
        })
        .collect();
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(serde_json::Value::Array(statements).to_string())
}
