//! The console's signing keys (the key ring with each key's state, whether this server's JWKS
//! publishes it and which key signs now, rotate now, the next scheduled rotation) and RFC 7591
//! registration tokens (create with a policy, list, revoke). Through `protocol::admin`, like
//! `/admin/v1/keys` and `/admin/v1/registration-tokens`.

use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde_json::{Value, json};

use super::{Signed, State, admin_form, admin_user, failed, render, value};
use crate::config::SigningAlg;
use crate::http::client_ip::client_ip;
use crate::http::{AppState, unix_now};
use crate::protocol::admin;
use crate::protocol::console;
use crate::protocol::error::OAuthError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/keys", web::get().to(keys))
        .route("/console/keys/rotate", web::post().to(rotate))
        .route("/console/registration-tokens", web::get().to(tokens))
        .route("/console/registration-tokens", web::post().to(create_token))
        .route(
            "/console/registration-tokens/{id}/revoke",
            web::post().to(revoke_token),
        );
}

/// The kids in the JWKS this replica serves now.
fn published_kids(state: &AppState) -> Vec<String> {
    let jwks: Value = serde_json::from_slice(&state.ctx.keys.jwks()).unwrap_or(Value::Null);
    jwks["keys"]
        .as_array()
        .map(|k| {
            k.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn keys_page(
    req: &HttpRequest,
    state: &AppState,
    signed: &Signed,
    notice: Option<&str>,
) -> HttpResponse {
    let (ctx, now) = (&state.ctx, unix_now());
    let list = match admin::list_keys(ctx, now).await {
        Ok(l) => l,
        Err(e) => return failed(state, &e),
    };
    let published = published_kids(state);
    let signing: Vec<String> = ctx
        .config
        .signing_algs()
        .into_iter()
        .filter_map(|alg| ctx.keys.active_kid(alg, now))
        .collect();
    let mut keys: Vec<Value> = list["keys"].as_array().cloned().unwrap_or_default();
    keys.sort_by_key(|k| std::cmp::Reverse(k["published_at"].as_i64().unwrap_or(0)));
    for k in &mut keys {
        let kid = k["kid"].as_str().unwrap_or("").to_owned();
        k["in_jwks"] = json!(published.contains(&kid));
        k["signing"] = json!(signing.contains(&kid));
    }
    // The scheduler rotates an algorithm when its newest key is `key_rotation_interval` old.
    let interval = ctx.config.key_rotation_interval as i64;
    let next: Vec<Value> = ctx
        .config
        .signing_algs()
        .into_iter()
        .map(|alg: SigningAlg| {
            let newest = keys
                .iter()
                .filter(|k| k["alg"] == alg.as_str())
                .filter_map(|k| k["published_at"].as_i64())
                .max();
            json!({ "alg": alg.as_str(), "at": newest.filter(|_| interval > 0).map(|n| n + interval) })
        })
        .collect();
    render(
        req,
        state,
        signed,
        "console_keys.html",
        "keys",
        context! { keys => value(&keys), next => value(&next), notice, now, publish_ahead => ctx.config.key_publish_ahead },
    )
}

async fn keys(req: HttpRequest, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    keys_page(&req, &state, &signed, None).await
}

async fn rotate(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (signed, form) = match admin_form(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let a = console::admin(&signed.user, client_ip(&req));
    let body = match form.get("alg").filter(|a| !a.is_empty()) {
        Some(alg) => json!({ "alg": alg }),
        None => Value::Null,
    };
    match admin::rotate_keys(&state.ctx, &a, body, unix_now()).await {
        Ok(_) => {
            keys_page(
                &req,
                &state,
                &signed,
                Some("New key published: it signs once the publication lead time has passed."),
            )
            .await
        }
        Err(e) => failed(&state, &e),
    }
}

async fn tokens_page(
    req: &HttpRequest,
    state: &AppState,
    signed: &Signed,
    notice: Option<&str>,
    created: Option<&Value>,
) -> HttpResponse {
    let now = unix_now();
    let list = match admin::list_registration_tokens(&state.ctx, now).await {
        Ok(l) => l,
        Err(e) => return failed(state, &e),
    };
    render(
        req,
        state,
        signed,
        "console_registration_tokens.html",
        "tokens",
        context! {
            tokens => value(&list["registration_tokens"]),
            notice,
            created => created.map(value),
            register => format!("{}{}", state.ctx.config.issuer, crate::protocol::registration::REGISTRATION_PATH),
        },
    )
}

async fn tokens(req: HttpRequest, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    tokens_page(&req, &state, &signed, None, None).await
}

async fn create_token(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (signed, form) = match admin_form(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let number = |k: &str| -> Result<Option<u64>, OAuthError> {
        match form.get(k).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| OAuthError::invalid_request(format!("{k} must be a whole number"))),
        }
    };
    let (hours, max_uses) = match (number("expires_in_hours"), number("max_uses")) {
        (Ok(h), Ok(m)) => (h, m),
        (Err(e), _) | (_, Err(e)) => return failed(&state, &e),
    };
    let words = |k: &str| {
        form.get(k)
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let scope = words("scope");
    let body = json!({
        "expires_in": hours.map(|h| h.saturating_mul(3600)),
        "max_uses": max_uses,
        "scope": (!scope.is_empty()).then(|| scope.join(" ")),
        "audience": words("audience"),
        "grant_types": words("grant_types"),
        "client_type": form.get("client_type").filter(|t| !t.is_empty()),
    });
    let a = console::admin(&signed.user, client_ip(&req));
    match admin::create_registration_token(&state.ctx, &a, body, unix_now()).await {
        Ok(t) => {
            tokens_page(
                &req,
                &state,
                &signed,
                Some("Token created: it is shown only now."),
                Some(&t),
            )
            .await
        }
        Err(e) => failed(&state, &e),
    }
}

async fn revoke_token(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    state: State,
) -> HttpResponse {
    let (signed, _) = match admin_form(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let a = console::admin(&signed.user, client_ip(&req));
    match admin::revoke_registration_token(&state.ctx, &a, &path.into_inner(), unix_now()).await {
        Ok(_) => tokens_page(&req, &state, &signed, Some("Token revoked."), None).await,
        Err(e) => failed(&state, &e),
    }
}
