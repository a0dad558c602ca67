//! Request metrics middleware and `GET /metrics` (OpenMetrics text, every series prefixed
//! `latchkey_`).

use std::borrow::Cow;
use std::future::Future;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::HeaderValue;
use actix_web::{HttpResponse, web};

use super::AppState;
use crate::metrics::HttpLabels;
use crate::protocol::discovery::{
    AUTHORIZE_PATH, END_SESSION_PATH, INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH,
    USERINFO_PATH,
};
use crate::protocol::registration::REGISTRATION_PATH;

/// The label for a path that is one of the fixed routes, without allocating: the hot
/// endpoints (token, JWKS, discovery) never build a string per request.
fn static_endpoint(path: &str) -> Option<&'static str> {
    const FIXED: &[&str] = &[
        TOKEN_PATH,
        crate::protocol::par::PAR_PATH,
        crate::protocol::device::DEVICE_AUTHORIZATION_PATH,
        crate::protocol::device::VERIFICATION_PATH,
        JWKS_PATH,
        AUTHORIZE_PATH,
        super::authorize::LOGIN_PATH,
        super::authorize::CONSENT_PATH,
        USERINFO_PATH,
        INTROSPECT_PATH,
        REVOKE_PATH,
        END_SESSION_PATH,
        REGISTRATION_PATH,
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    FIXED.iter().find(|p| **p == path).copied()
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware (`App::wrap_fn`): counts and times every request by route pattern (never the
/// raw path: `/admin/v1/clients/{client_id}`, and `unmatched` for anything unrouted), method
/// and status.
pub fn track<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let start = Instant::now();
    let fixed = static_endpoint(req.path());
    let method = method_label(req.method());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.ctx.metrics.clone());
    let fut = srv.call(req);
    async move {
        let res = fut.await?;
        if let Some(m) = metrics {
            let endpoint = match fixed {
                Some(p) => Cow::Borrowed(p),
                None => res
                    .request()
                    .match_pattern()
                    .map(Cow::Owned)
                    .unwrap_or(Cow::Borrowed("unmatched")),
            };
            let labels = HttpLabels {
                endpoint,
                method,
                status: res.status().as_u16(),
            };
            m.observe_request(&labels, start.elapsed().as_secs_f64());
        }
        Ok(res)
    }
}

/// `GET /metrics`: refreshes the key-age gauges from the key schedule, then encodes.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let ctx = &state.ctx;
    let now = super::unix_now();
    match ctx.store.blocking(|s| s.signing_keys()).await {
        Ok(all) => ctx.metrics.set_key_ages(
            all.iter()
                .filter(|k| k.expires_at.is_none_or(|e| e > now))
                .map(|k| {
                    (
                        k.kid.clone(),
                        k.alg.clone(),
                        crate::keys::key_state(k, &all, now),
                        now - k.created_at,
                    )
                })
                .collect::<Vec<_>>(),
        ),
        // The database being down must not hide the other series; key ages keep their last values.
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the key schedule"),
    }
    ctx.metrics.set_store_writes(ctx.store.write_stats());
    ctx.metrics.set_rotations(ctx.store.rotation_stats());
    match ctx.metrics.encode() {
        Ok(body) => HttpResponse::Ok()
            .insert_header((
                actix_web::http::header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            ))
            .insert_header((
                actix_web::http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .body(body),
        Err(e) => super::error::respond(crate::protocol::error::OAuthError::server_error(e)),
    }
}
