//! actix-web integration (feature `actix`): the [`VerifiedToken`] extractor and the
//! [`RequireScope`] guard.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use latchkey_verify::Verifier;
//! use latchkey_verify::actix::{RequireScope, VerifiedToken};
//!
//! async fn me(token: VerifiedToken) -> String {
//!     token.sub.clone()
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let verifier = Verifier::from_issuer("https://login.example.com", "https://api.example.com")
//!     .await
//!     .map_err(std::io::Error::other)?;
//! HttpServer::new(move || {
//!     App::new().app_data(verifier.clone()).service(
//!         web::resource("/me")
//!             .wrap(RequireScope::new("api:read"))
//!             .route(web::get().to(me)),
//!     )
//! })
//! .bind("127.0.0.1:8081")?
//! .run()
//! .await
//! # }
//! ```
//!
//! Both schemes are accepted: `Authorization: Bearer <token>` (RFC 6750; a DPoP-bound token is
//! refused there) and `Authorization: DPoP <token>` with a `DPoP` proof header (RFC 9449 §7.1),
//! checked against this request's method and URL — set
//! [`VerifierBuilder::public_base_url`](crate::VerifierBuilder::public_base_url) behind a proxy.
//!
//! Refusals are answered as RFC 6750 and RFC 9449 say: 401 with two challenges, `Bearer` and
//! `DPoP algs="..."`, for a request without a token; for a bad token, 401 with the error
//! (`invalid_token`, `invalid_dpop_proof`) in the challenge of the scheme the client used; 400
//! with `error="invalid_request"` for a malformed request; 403 with
//! `error="insufficient_scope"` (and `scope="..."`) for a missing scope; the body is the same
//! error as JSON.

use std::future::{Future, Ready, ready};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::bearer::{Scheme, access_token};
use crate::claims::Claims;
use crate::dpop::DpopRequest;
use crate::error::VerifyError;
use crate::verifier::Verifier;

/// The verified claims of the request's bearer token.
///
/// Needs a [`Verifier`] in the app data (`App::app_data(verifier.clone())`, or
/// `web::Data<Verifier>`); without one the request fails with 500. Dereferences to [`Claims`].
/// Behind [`RequireScope`], the token verified by the guard is reused, not verified again.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    claims: Arc<Claims>,
    scheme: Scheme,
    /// The accepted DPoP proof algorithms, for challenges.
    algs: Arc<str>,
}

impl VerifiedToken {
    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The claims, owned.
    pub fn into_claims(self) -> Claims {
        Arc::unwrap_or_clone(self.claims)
    }

    /// How the token was presented: [`Scheme::Dpop`] means it was DPoP-bound and its proof,
    /// for this very request, checked.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

impl Deref for VerifiedToken {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

/// A refusal, answered in the challenge of the scheme the client used (RFC 9449 §7.2).
#[derive(Debug)]
struct Refusal {
    error: VerifyError,
    /// `None`: no usable credentials (both schemes are offered); else the scheme tried.
    scheme: Option<Scheme>,
    algs: Arc<str>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.error.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.error == VerifyError::DpopReplayCacheFull {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        let dpop_bare = format!("DPoP algs=\"{}\"", self.algs);
        match self.scheme {
            Some(Scheme::Dpop) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    self.error.www_authenticate_dpop(&self.algs),
                ));
            }
            Some(Scheme::Bearer) | None => {
                response.insert_header((header::WWW_AUTHENTICATE, self.error.www_authenticate()));
                if self.error.status() == 401 {
                    // RFC 9449 §7.2: DPoP is accepted too (the error stays with Bearer).
                    response.append_header((header::WWW_AUTHENTICATE, dpop_bare));
                }
            }
        }
        match self.error.error_code() {
            Some(code) => response.json(serde_json::json!({
                "error": code,
                "error_description": self.error.description(),
            })),
            None => response.finish(),
        }
    }
}

impl FromRequest for VerifiedToken {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// The request's target URI for a DPoP proof's `htu`: the verifier's public base URL plus the
/// request path, or else `http(s)://{Host header}{path}`.
pub fn request_url(req: &HttpRequest, verifier: &Verifier) -> String {
    let path = req.uri().path();
    match verifier.public_base_url() {
        Some(base) => format!("{base}{path}"),
        None => {
            let scheme = if req.app_config().secure() {
                "https"
            } else {
                "http"
            };
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_else(|| req.app_config().host());
            format!("{scheme}://{host}{path}")
        }
    }
}

/// Verifies the request's access token — a bearer token, or a DPoP-bound token with its proof —
/// (or returns the one already verified for this request). What [`VerifiedToken`] and
/// [`RequireScope`] use; errors render as RFC 6750 / RFC 9449 responses.
pub async fn authenticate(req: &HttpRequest) -> Result<VerifiedToken, actix_web::Error> {
    if let Some(token) = req.extensions().get::<VerifiedToken>() {
        return Ok(token.clone());
    }
    let Some(verifier) = find_verifier(req) else {
        tracing::error!(
            "latchkey_verify::Verifier missing from the actix-web app data; add App::app_data(verifier)"
        );
        return Err(actix_web::error::ErrorInternalServerError(
            "authentication is not configured",
        ));
    };
    let algs: Arc<str> = Arc::from(verifier.dpop_algorithms());
    let mut scheme = None;
    let result = async {
        if has_access_token_param(req.query_string()) {
            return Err(VerifyError::InvalidRequest(
                "access tokens are not accepted in the URL",
            ));
        }
        let (presented, token) = access_token(
            req.headers()
                .get_all(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )?;
        scheme = Some(presented);
        match presented {
            Scheme::Bearer => verifier.verify(token).await,
            Scheme::Dpop => {
                let mut proofs = req.headers().get_all("dpop");
                let proof = match (proofs.next(), proofs.next()) {
                    (Some(p), None) => p.to_str().map_err(|_| {
                        VerifyError::InvalidDpopProof("the DPoP header is not ASCII")
                    })?,
                    (None, _) => {
                        return Err(VerifyError::InvalidDpopProof(
                            "a DPoP proof is required with the DPoP scheme",
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(VerifyError::InvalidDpopProof("more than one DPoP header"));
                    }
                };
                let url = request_url(req, &verifier);
                let request = DpopRequest {
                    proof,
                    method: req.method().as_str(),
                    url: &url,
                };
                verifier.verify_dpop(token, &request).await
            }
        }
    }
    .await;
    match result {
        Ok(claims) => {
            let token = VerifiedToken {
                claims: Arc::new(claims),
                scheme: scheme.unwrap_or(Scheme::Bearer),
                algs,
            };
            req.extensions_mut().insert(token.clone());
            Ok(token)
        }
        Err(error) => {
            tracing::debug!(error = ?error, "access token refused");
            // A request without credentials (another scheme, or none) gets both challenges.
            let scheme = if error == VerifyError::MissingToken {
                None
            } else {
                scheme
            };
            Err(Refusal {
                error,
                scheme,
                algs,
            }
            .into())
        }
    }
}

fn find_verifier(req: &HttpRequest) -> Option<Verifier> {
    req.app_data::<Verifier>().cloned().or_else(|| {
        req.app_data::<web::Data<Verifier>>()
            .map(|d| d.get_ref().clone())
    })
}

fn has_access_token_param(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
}

impl ResponseError for VerifyError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((header::WWW_AUTHENTICATE, self.www_authenticate()))
            .insert_header((header::CACHE_CONTROL, "no-store"));
        match self.error_code() {
            Some(code) => response.json(serde_json::json!({
                "error": code,
                "error_description": self.description(),
            })),
            None => response.finish(),
        }
    }
}

/// Guard middleware: refuses requests whose bearer token is invalid (401) or lacks any of the
/// scopes (403 `insufficient_scope`), before the handler runs. The verified token is then
/// available to the handler as a [`VerifiedToken`] argument at no extra cost.
///
/// `web::resource("/me").wrap(RequireScope::new("api:read"))`, or on a `web::scope`.
#[derive(Debug, Clone)]
pub struct RequireScope {
    scopes: Arc<[String]>,
}

impl RequireScope {
    /// Requires one scope.
    pub fn new(scope: impl Into<String>) -> Self {
        Self::all([scope])
    }

    /// Requires every one of these scopes. With none, only a valid token is required.
    pub fn all<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequireScope
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireScopeMiddleware {
            service: Rc::new(service),
            scopes: Arc::clone(&self.scopes),
        }))
    }
}

/// The service [`RequireScope`] wraps around a resource.
pub struct RequireScopeMiddleware<S> {
    service: Rc<S>,
    scopes: Arc<[String]>,
}

impl<S, B> Service<ServiceRequest> for RequireScopeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, actix_web::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let scopes = Arc::clone(&self.scopes);
        Box::pin(async move {
            // Refusals are answered here, as responses (not errors), so that outer middleware
            // sees an ordinary 401/403.
            let refusal = match authenticate(req.request()).await {
                Ok(token) => token.require_scopes(&scopes).err().map(|e| {
                    tracing::debug!(error = ?e, "access token refused");
                    actix_web::Error::from(Refusal {
                        error: e,
                        scheme: Some(token.scheme),
                        algs: token.algs.clone(),
                    })
                }),
                Err(e) => Some(e),
            };
            match refusal {
                Some(e) => Ok(req.error_response(e).map_into_right_body()),
                None => Ok(service.call(req).await?.map_into_left_body()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_token_detection() {
        assert!(has_access_token_param("a=1&access_token=x"));
        assert!(has_access_token_param("access_token"));
        assert!(!has_access_token_param("my_access_token=x"));
        assert!(!has_access_token_param(""));
    }
}
