//! The only module that knows HTTP: routes, body limits, security headers, and the mapping
//! of protocol errors to responses (`error.rs`). Handlers are thin: parse, call `protocol`,
//! render.

mod account;
mod account_factors;
pub mod admin;
mod attest;
mod authorize;
pub mod client_cert;
pub mod client_ip;
mod console;
pub mod cors;
mod csrf;
mod device;
pub mod error;
mod first_party;
mod login;
mod logout;
pub mod metrics;
pub mod openapi;
mod pages;
mod par;
mod registration;
mod resource;
mod token;
mod well_known;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::protocol::Ctx;
use crate::protocol::discovery::{
    AUTHORIZE_PATH, END_SESSION_PATH, INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH,
    USERINFO_PATH,
};
use crate::protocol::error::{OAuthError, OAuthResult};
use crate::protocol::registration::REGISTRATION_PATH;

/// Largest request body accepted by protocol endpoints.
pub const MAX_BODY: usize = 16 * 1024;

/// The whole body must arrive within this time of the handler starting to read it: a client
/// that trickles a byte at a time (slowloris) cannot hold a connection and a worker's buffer
/// (the request head has its own limit, `app::REQUEST_HEAD_TIMEOUT`).
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct AppState {
    pub ctx: Ctx,
    pub discovery: Bytes,
    pub jwks_cache_control: HeaderValue,
    pub templates: minijinja::Environment<'static>,
    pub throttle: crate::protocol::login::Throttle,
    /// `trusted_proxies`: whose forwarding headers name the client (`client_ip.rs`).
    pub trusted_proxies: client_ip::TrustedProxies,
    /// Cookies get `Secure` (and `__Host-` names) when the issuer is https.
    pub secure_cookies: bool,
    /// The session cookie and the CSRF tokens bound to it (`csrf.rs`).
    pub browser: csrf::BrowserState,
    /// Clients' CORS `allowed_origins`, merged and cached (`cors.rs`).
    pub cors: cors::AllowedOrigins,
}

impl AppState {
    pub fn new(ctx: Ctx) -> anyhow::Result<AppState> {
        let config = ctx.config.clone();
        Ok(AppState {
            discovery: Bytes::from(serde_json::to_vec(&crate::protocol::discovery::metadata(
                &config,
            ))?),
            jwks_cache_control: HeaderValue::from_str(&format!(
                "public, max-age={}",
                config.jwks_cache_max_age()
            ))?,
            templates: pages::templates(),
            throttle: crate::protocol::login::Throttle::new(&config),
            trusted_proxies: client_ip::TrustedProxies::parse(&config.trusted_proxies)
                .map_err(|e| anyhow::anyhow!("invalid configuration: trusted_proxies: {e}"))?,
            secure_cookies: config.issuer.starts_with("https://"),
            browser: csrf::BrowserState::new(
                ctx.keys.kek(),
                config.issuer.starts_with("https://"),
            )?,
            cors: cors::AllowedOrigins::default(),
            ctx,
        })
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(well_known::discovery),
    )
    .route(
        "/.well-known/oauth-authorization-server",
        web::get().to(well_known::discovery),
    )
    .route(JWKS_PATH, web::get().to(well_known::jwks))
    .route(TOKEN_PATH, web::post().to(token::token))
    .route(crate::protocol::par::PAR_PATH, web::post().to(par::push))
    .route(
        crate::protocol::attestation::CHALLENGE_PATH,
        web::post().to(attest::challenge_endpoint),
    )
    .route(
        crate::protocol::attestation::ATTEST_PATH,
        web::post().to(attest::attest_endpoint),
    )
    .route(
        crate::protocol::device::DEVICE_AUTHORIZATION_PATH,
        web::post().to(device::device_authorization),
    )
    .route(
        crate::protocol::device::VERIFICATION_PATH,
        web::get().to(device::verification_page),
    )
    .route(
        crate::protocol::device::VERIFICATION_PATH,
        web::post().to(device::verification_post),
    )
    .route(device::LOGIN_PATH, web::post().to(device::login_post))
    .route(device::CONFIRM_PATH, web::post().to(device::confirm_post))
    .route(AUTHORIZE_PATH, web::get().to(authorize::authorize_get))
    .route(AUTHORIZE_PATH, web::post().to(authorize::authorize_post))
    .route(authorize::LOGIN_PATH, web::post().to(authorize::login_post))
    .route(
        authorize::CONSENT_PATH,
        web::post().to(authorize::consent_post),
    )
    .route(END_SESSION_PATH, web::get().to(logout::end_session_get))
    .route(END_SESSION_PATH, web::post().to(logout::end_session_post))
    .route(USERINFO_PATH, web::get().to(resource::userinfo))
    .route(USERINFO_PATH, web::post().to(resource::userinfo))
    .route(INTROSPECT_PATH, web::post().to(resource::introspect))
    .route(REVOKE_PATH, web::post().to(resource::revoke))
    .route("/healthz", web::get().to(well_known::healthz))
    .route("/assets/passkey.js", web::get().to(well_known::passkey_js))
    .route("/assets/console.js", web::get().to(well_known::console_js))
    .route("/favicon.ico", web::get().to(well_known::favicon))
    .route(
        "/.well-known/apple-app-site-association",
        web::get().to(well_known::apple_app_site_association),
    )
    .route(
        "/.well-known/assetlinks.json",
        web::get().to(well_known::assetlinks),
    )
    .route("/readyz", web::get().to(well_known::readyz))
    .route("/metrics", web::get().to(metrics::metrics))
    .route(REGISTRATION_PATH, web::post().to(registration::register))
    .route(
        &format!("{REGISTRATION_PATH}/{{client_id}}"),
        web::get().to(registration::read),
    )
    .route(
        &format!("{REGISTRATION_PATH}/{{client_id}}"),
        web::put().to(registration::update),
    )
    .route(
        &format!("{REGISTRATION_PATH}/{{client_id}}"),
        web::delete().to(registration::delete),
    )
    .configure(admin::routes)
    .configure(account::routes)
    .configure(console::routes);
    for path in cors::CORS_PATHS {
        cfg.route(
            path,
            web::method(actix_web::http::Method::OPTIONS).to(cors::preflight),
        );
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_BODY`] bytes.
pub async fn read_form_body(req: &HttpRequest, payload: web::Payload) -> OAuthResult<Bytes> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    read_limited(req, payload).await.map(BytesMut::freeze)
}

/// The whole request body, refused with `invalid_request` beyond [`MAX_BODY`] bytes (by
/// `Content-Length` up front, or while reading a chunked body).
pub(crate) async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> OAuthResult<BytesMut> {
    let too_large =
        || OAuthError::invalid_request(format!("the request body exceeds {MAX_BODY} bytes"));
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > MAX_BODY
    {
        return Err(too_large());
    }
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                OAuthError::invalid_request("the request body could not be read").with_cause(e)
            })?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    actix_web::rt::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(OAuthError::invalid_request(
                "the request body did not arrive in time",
            ))
        })
}
