//! CORS (the Fetch standard) for browser-based clients, on the endpoints a single-page app
//! calls itself: token, revocation, userinfo, JWKS and discovery. Only an origin registered
//! in an enabled client's `allowed_origins` gets `Access-Control-Allow-Origin` (none is by
//! default); credentials (cookies) are never allowed, since none of these endpoints reads a
//! cookie. Every other route (authorization, login pages, introspection, admin API) sends no
//! CORS headers at all.
//!
//! The merged set of allowed origins is read from the store at most every [`TTL`] (single
//! flight), and only for requests that carry an `Origin` header on those routes: native apps
//! and servers, which send none, never pay for it.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::AppState;
use crate::protocol::discovery::{JWKS_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH};
use crate::store::Store;

/// The routes that answer cross-origin requests from registered origins.
pub const CORS_PATHS: &[&str] = &[
    TOKEN_PATH,
    REVOKE_PATH,
    USERINFO_PATH,
    JWKS_PATH,
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
];

/// How long a read of the allowed origins is used: a newly registered origin works, and a
/// removed or disabled client's origin stops working, within this time on every replica.
pub const TTL: Duration = Duration::from_secs(5);

/// Preflight answers may be cached by the browser this long (seconds).
const MAX_AGE: &str = "600";

type Origins = Arc<HashSet<String>>;

/// The allowed origins, cached for [`TTL`].
#[derive(Default)]
pub struct AllowedOrigins {
    cached: RwLock<Option<(Instant, Origins)>>,
    refresh: tokio::sync::Mutex<()>,
}

impl AllowedOrigins {
    fn fresh(&self) -> Option<Origins> {
        let guard = self.cached.read().unwrap_or_else(|e| e.into_inner());
        match &*guard {
            Some((at, set)) if at.elapsed() < TTL => Some(set.clone()),
            _ => None,
        }
    }

    /// Whether `origin` is some enabled client's allowed origin. A store failure allows
    /// nothing (fails closed) and is logged.
    pub async fn allows(&self, store: &Store, origin: &str) -> bool {
        if let Some(set) = self.fresh() {
            return set.contains(origin);
        }
        let _one_reader = self.refresh.lock().await;
        if let Some(set) = self.fresh() {
            return set.contains(origin);
        }
        match store.blocking(|s| s.allowed_origins()).await {
            Ok(list) => {
                let set: Origins = Arc::new(list.into_iter().collect());
                let allowed = set.contains(origin);
                *self.cached.write().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), set));
                allowed
            }
            Err(e) => {
                tracing::warn!(error = %e, "CORS: cannot read the allowed origins");
                false
            }
        }
    }
}

/// `OPTIONS` on a CORS route: the preflight. [`headers`] adds the `Access-Control-*` headers
/// when the origin is allowed; without them the browser refuses the actual request.
pub async fn preflight() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// Middleware (`App::wrap_fn`): `Vary: Origin` on every CORS route's response, and for an
/// allowed `Origin` the `Access-Control-*` headers.
pub fn headers<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let cors = CORS_PATHS.contains(&req.path());
    let origin = cors
        .then(|| req.headers().get(header::ORIGIN).cloned())
        .flatten();
    let state = origin
        .as_ref()
        .and_then(|_| req.app_data::<web::Data<AppState>>().cloned());
    let preflight = req.method() == Method::OPTIONS;
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        if !cors {
            return Ok(res);
        }
        res.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
        let (Some(origin), Some(state)) = (origin, state) else {
            return Ok(res);
        };
        let allowed = match origin.to_str() {
            Ok(o) => state.cors.allows(&state.ctx.store, o).await,
            Err(_) => false,
        };
        if allowed {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if preflight {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("Authorization, Content-Type, DPoP"),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(MAX_AGE),
                );
            } else {
                h.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static("DPoP-Nonce, WWW-Authenticate"),
                );
            }
        }
        Ok(res)
    }
}
