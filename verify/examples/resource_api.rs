//! An example resource API protected by Latchkey access tokens.
//!
//! ```text
//! LATCHKEY_ISSUER=http://127.0.0.1:8080 RESOURCE_AUDIENCE=https://api.example.com \
//! RESOURCE_LISTEN=127.0.0.1:8081 cargo run -p latchkey-verify --example resource_api
//! ```
//!
//! - `LATCHKEY_ISSUER`: the issuer, exactly as in the tokens' `iss` (default
//!   `http://127.0.0.1:8080`, the server's default); the JWKS is found by discovery.
//! - `LATCHKEY_JWKS_URL` (optional): fetch the JWKS here instead of discovering it, for an API
//!   that reaches the issuer by an internal name (as in `docker-compose.yml`).
//! - `RESOURCE_AUDIENCE` (required): this API's audience; tokens must name it in `aud`.
//! - `RESOURCE_LISTEN`: `host:port` to listen on (default `127.0.0.1:8081`).
//! - `RESOURCE_ALLOW_INSECURE_HTTP=1`: accept a plain-http issuer on a non-loopback host (e.g.
//!   `http://latchkey:8080` inside a compose network). Loopback http is always accepted.
//! - `RESOURCE_PUBLIC_URL` (optional): the API's public base URL as clients address it (e.g.
//!   `https://api.example.com`), for checking DPoP proofs' `htu` behind a proxy; without it the
//!   request's `Host` header is used.
//!
//! `GET /me` needs scope `api:read` and answers `{"sub": ..., "scope": ...}`. Bearer tokens and
//! DPoP-bound tokens (`Authorization: DPoP` with a `DPoP` proof, RFC 9449) are accepted; a
//! DPoP-bound token presented as a bearer token is refused. A missing or bad token gets 401 with
//! `WWW-Authenticate: Bearer ...` (and `DPoP algs="..."`); a token without the scope gets 403
//! with `error="insufficient_scope"`. The issuer may start after this API: discovery is retried
//! for up to a minute.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use latchkey_verify::actix::{RequireScope, VerifiedToken};
use latchkey_verify::{SetupError, Verifier};

async fn me(token: VerifiedToken) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "sub": token.sub,
        "scope": token.scope,
    }))
}

async fn connect(
    issuer: &str,
    jwks_url: Option<&str>,
    audience: &str,
    insecure: bool,
    public_url: Option<&str>,
) -> Result<Verifier, SetupError> {
    let mut delay = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    loop {
        let mut builder = Verifier::builder(issuer, audience).allow_insecure_http(insecure);
        if let Some(url) = jwks_url {
            builder = builder.jwks_url(url);
        }
        if let Some(url) = public_url {
            builder = builder.public_base_url(url);
        }
        let result = builder.build().await;
        match result {
            // Only an unreachable issuer is worth waiting for; configuration errors are final.
            Err(SetupError::Fetch { url, reason }) if waited < Duration::from_secs(60) => {
                tracing::warn!(%url, %reason, "issuer not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let issuer =
        std::env::var("LATCHKEY_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let Ok(audience) = std::env::var("RESOURCE_AUDIENCE") else {
        eprintln!("RESOURCE_AUDIENCE must be set to this API's audience (as in the tokens' aud)");
        std::process::exit(2);
    };
    let listen = std::env::var("RESOURCE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8081".to_owned());
    let insecure = std::env::var("RESOURCE_ALLOW_INSECURE_HTTP").is_ok_and(|v| v == "1");

    let jwks_url = std::env::var("LATCHKEY_JWKS_URL").ok();
    let public_url = std::env::var("RESOURCE_PUBLIC_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let verifier = match connect(
        &issuer,
        jwks_url.as_deref(),
        &audience,
        insecure,
        public_url.as_deref(),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot verify tokens from {issuer}: {e}");
            std::process::exit(1);
        }
    };
    tracing::info!(%issuer, %audience, %listen, "resource API listening");

    HttpServer::new(move || {
        App::new().app_data(verifier.clone()).service(
            web::resource("/me")
                .wrap(RequireScope::new("api:read"))
                .route(web::get().to(me)),
        )
    })
    .bind(&listen)?
    .run()
    .await
}
