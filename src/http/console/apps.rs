//! The console's apps: list and search, the "new app" wizard per kind (iOS/Android app,
//! backend service, resource API, browser app), an app's page with its ready-to-paste
//! configuration, edit, disable/enable, rotate secret (shown once) and delete. Every change
//! goes through `protocol::admin`, like `/admin/v1/clients`.

use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde_json::Value;

use super::{Signed, State, admin_form, admin_user, failed, query, render, value};
use crate::http::client_ip::client_ip;
use crate::http::first_party::redirect;
use crate::http::{AppState, unix_now};
use crate::protocol::admin;
use crate::protocol::console::{self, Edit, NewApp};
use crate::protocol::error::OAuthError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/apps", web::get().to(list))
        .route("/console/apps", web::post().to(create))
        .route("/console/apps/new", web::get().to(new_app))
        .route("/console/apps/{client_id}", web::get().to(show))
        .route("/console/apps/{client_id}/edit", web::get().to(edit_form))
        .route("/console/apps/{client_id}/{action}", web::post().to(action));
}

async fn list(req: HttpRequest, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query(&req).get("q").unwrap_or("").trim().to_lowercase();
    let list = match admin::list_clients(&state.ctx).await {
        Ok(v) => v,
        Err(e) => return failed(&state, &e),
    };
    let apps: Vec<&Value> = list["clients"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let apps: Vec<&Value> = apps
        .into_iter()
        .filter(|c| {
            q.is_empty()
                || ["client_name", "client_id"].iter().any(|k| {
                    c[*k]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(&q))
                })
        })
        .collect();
    render(
        &req,
        &state,
        &signed,
        "console_apps.html",
        "apps",
        context! { apps => value(&apps), q },
    )
}

async fn new_app(req: HttpRequest, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let kind = match query(&req).get("kind") {
        Some(k @ ("service" | "api" | "spa")) => k.to_owned(),
        _ => "native".to_owned(),
    };
    render(
        &req,
        &state,
        &signed,
        "console_new.html",
        "new",
        context! { kind },
    )
}

/// What kind of app the wizard made a client as (by its metadata): which snippets fit.
fn kind_of(app: &Value) -> &'static str {
    let grants = app["grant_types"].as_array().cloned().unwrap_or_default();
    let public = app["token_endpoint_auth_method"] == "none";
    let has_origins = app["allowed_origins"]
        .as_array()
        .is_some_and(|o| !o.is_empty());
    if public && has_origins {
        "spa"
    } else if public {
        "native"
    } else if grants.iter().any(|g| g == "client_credentials")
        && app["scope"]
            .as_str()
            .is_some_and(|s| !s.is_empty() && !s.contains("openid"))
        && app["audience"].as_array().is_some_and(|a| a.len() == 1)
        && !grants.iter().any(|g| g == "authorization_code")
    {
        "api"
    } else {
        "service"
    }
}

/// The app's page: its settings, and the configuration to paste into the app.
fn app_page(
    req: &HttpRequest,
    state: &AppState,
    signed: &Signed,
    app: &Value,
    notice: Option<&str>,
    secret: Option<&str>,
) -> HttpResponse {
    let issuer = &state.ctx.config.issuer;
    let redirects: Vec<&str> = app["redirect_uris"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let redirect = redirects.first().copied().unwrap_or("").to_owned();
    let scheme = redirect.split(':').next().unwrap_or("").to_owned();
    let client_id = app["client_id"].as_str().unwrap_or("");
    render(
        req,
        state,
        signed,
        "console_app.html",
        "apps",
        context! {
            app => value(app),
            issuer,
            redirect,
            scheme,
            kind => kind_of(app),
            first_scope => app["scope"].as_str().and_then(|s| s.split_whitespace().next()).unwrap_or(""),
            audience => app["audience"].as_array().and_then(|a| a.first()).and_then(Value::as_str).unwrap_or(""),
            public => app["token_endpoint_auth_method"] == "none",
            built_in => console::built_in(client_id),
            notice,
            secret,
        },
    )
}

async fn show(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match admin::get_client(&state.ctx, &path.into_inner()).await {
        Ok(app) => app_page(&req, &state, &signed, &app, None, None),
        Err(e) => failed(&state, &e),
    }
}

async fn edit_form(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = path.into_inner();
    if console::built_in(&id) {
        return failed(&state, &built_in_refusal());
    }
    match admin::get_client(&state.ctx, &id).await {
        Ok(app) => render(
            &req,
            &state,
            &signed,
            "console_app_edit.html",
            "apps",
            context! { app => value(&app) },
        ),
        Err(e) => failed(&state, &e),
    }
}

fn built_in_refusal() -> OAuthError {
    OAuthError::invalid_request(
        "this is one of the server's own clients: the server sets it up at start-up",
    )
}

async fn create(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (signed, form) = match admin_form(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let field = |k: &str| form.get(k).unwrap_or("").trim();
    let words = |k: &str| {
        form.get(k)
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let name = field("name");
    let spec = match form.get("kind") {
        Some("native") => NewApp::Native {
            name,
            bundle_id: field("bundle_id"),
            https_redirect: form.get("https_redirect").map(str::trim),
            desktop: form.get("desktop") == Some("on"),
        },
        Some("service") => NewApp::Service {
            name,
            audiences: words("audience"),
        },
        Some("api") => NewApp::ResourceApi {
            name,
            audience: field("audience"),
            scopes: words("scopes"),
        },
        Some("spa") => NewApp::Spa {
            name,
            redirect_uri: field("redirect_uri"),
            origins: words("origins"),
        },
        _ => {
            return failed(
                &state,
                &OAuthError::invalid_request("choose the kind of app"),
            );
        }
    };
    let created = match console::metadata(&spec) {
        Ok(body) => {
            let a = console::admin(&signed.user, client_ip(&req));
            admin::create_client(&state.ctx, &a, body, unix_now()).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(app) => {
            let secret = app["client_secret"].as_str().map(str::to_owned);
            app_page(
                &req,
                &state,
                &signed,
                &app,
                Some("App created."),
                secret.as_deref(),
            )
        }
        Err(e) => failed(&state, &e),
    }
}

async fn action(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
    state: State,
) -> HttpResponse {
    let (signed, form) = match admin_form(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (client_id, action) = path.into_inner();
    let (ctx, now) = (&state.ctx, unix_now());
    const ACTIONS: [&str; 6] = [
        "disable",
        "enable",
        "rotate-secret",
        "revoke-grants",
        "edit",
        "delete",
    ];
    if !ACTIONS.contains(&action.as_str()) {
        return failed(&state, &admin::not_found("no such action"));
    }
    if console::built_in(&client_id) {
        return failed(&state, &built_in_refusal());
    }
    let a = console::admin(&signed.user, client_ip(&req));
    let (result, notice) = match action.as_str() {
        "disable" => (
            admin::set_client_disabled(ctx, &a, &client_id, true, now).await,
            "App disabled: its credentials and tokens stop working for new requests.",
        ),
        "enable" => (
            admin::set_client_disabled(ctx, &a, &client_id, false, now).await,
            "App enabled.",
        ),
        "rotate-secret" => (
            admin::rotate_client_secret(ctx, &a, &client_id, now).await,
            "New secret made; the old one stopped working.",
        ),
        "revoke-grants" => (
            admin::revoke_client_grants(ctx, &a, &client_id, now).await,
            "Every refresh token and code of this app was revoked: its users sign in again.",
        ),
        "edit" => {
            let current = match admin::get_client(ctx, &client_id).await {
                Ok(c) => c,
                Err(e) => return failed(&state, &e),
            };
            let e = Edit {
                name: form.get("name").unwrap_or(""),
                redirect_uris: form.get("redirect_uris").unwrap_or(""),
                scope: form.get("scope").unwrap_or(""),
                audiences: form.get("audience").unwrap_or(""),
                allowed_origins: form.get("allowed_origins").unwrap_or(""),
                dpop: form.get("dpop") == Some("on"),
                require_mfa: form.get("require_mfa") == Some("on"),
            };
            let body = console::edited(&current, &e);
            (
                admin::update_client(ctx, &a, &client_id, body, now).await,
                "Saved.",
            )
        }
        "delete" => {
            if form.get("confirm") != Some(client_id.as_str()) {
                return failed(
                    &state,
                    &OAuthError::invalid_request("type the client id to confirm the deletion"),
                );
            }
            return match admin::delete_client(ctx, &a, &client_id, now).await {
                Ok(()) => redirect("/console/apps", signed.cookies),
                Err(e) => failed(&state, &e),
            };
        }
        _ => return failed(&state, &admin::not_found("no such action")),
    };
    let secret = match &result {
        Ok(v) => v["client_secret"].as_str().map(str::to_owned),
        Err(_) => None,
    };
    if let Err(e) = result {
        return failed(&state, &e);
    }
    match admin::get_client(ctx, &client_id).await {
        Ok(app) => app_page(&req, &state, &signed, &app, Some(notice), secret.as_deref()),
        Err(e) => failed(&state, &e),
    }
}
