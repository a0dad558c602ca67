//! `/console`: the admin console's pages (issue 21), server-rendered, CSRF-protected forms, no
//! inline script. Signs in through `/authorize` as the built-in client `latchkey-console`
//! (`first_party::CONSOLE`); every request re-checks the token and that the user is an enabled
//! admin (`User::is_admin`), and every action calls the same `protocol::admin` function as
//! `/admin/v1`, audited as `admin:latchkey-console/user:<username>`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde_json::Value;

use super::authorize::csrf_form;
use super::first_party::{CONSOLE, redirect};
use super::pages::{error_page, page};
use super::{AppState, client_ip::client_ip, unix_now};
use crate::model::User;
use crate::protocol::admin;
use crate::protocol::console::{self, NewApp};
use crate::protocol::error::OAuthError;
use crate::protocol::params::Params;

type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(apps))
        .route(console::CALLBACK_PATH, web::get().to(callback))
        .route("/console/apps/new", web::get().to(new_app))
        .route("/console/apps", web::post().to(create_app))
        .route("/console/apps/{client_id}", web::get().to(app))
        .route(
            "/console/apps/{client_id}/{action}",
            web::post().to(app_action),
        )
        .route("/console/signout", web::post().to(sign_out));
}

/// The signed-in admin, or the response: a sign-in (no console session), or 403 (not an
/// admin: the role is read from the database on every request).
async fn admin_user(req: &HttpRequest, state: &AppState) -> Result<User, HttpResponse> {
    match CONSOLE.signed_in(req, state).await {
        Some((user, _)) if user.is_admin => Ok(user),
        Some(_) => Err(error_page(
            &state.templates,
            StatusCode::FORBIDDEN,
            "access_denied",
            "Your account is not an administrator of this server. Ask an admin to run `latchkey user grant-admin` for you.",
        )),
        None => Err(CONSOLE.start_sign_in(state)),
    }
}

/// A console form POST: the CSRF token checked, then the admin.
async fn admin_form(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<(User, Params), HttpResponse> {
    let form = csrf_form(req, body, state).await?;
    let user = admin_user(req, state).await?;
    Ok((user, form))
}

fn failed(state: &AppState, e: &OAuthError) -> HttpResponse {
    let status = match e.code.as_str() {
        "not_found" => StatusCode::NOT_FOUND,
        "temporarily_unavailable" | "server_error" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    error_page(&state.templates, status, e.code.as_str(), &e.description)
}

async fn callback(req: HttpRequest, state: State) -> HttpResponse {
    CONSOLE.callback(&req, &state).await
}

async fn apps(req: HttpRequest, state: State) -> HttpResponse {
    let user = match admin_user(&req, &state).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let query = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let q = query.get("q").unwrap_or("").trim().to_lowercase();
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
    let (csrf, cookie) = state.browser.csrf_token(&req, None);
    page(
        &state.templates,
        StatusCode::OK,
        "console_apps.html",
        context! { admin => user.username, apps => minijinja::Value::from(minijinja::value::Serde(&apps)), q, csrf },
        cookie.into_iter().collect(),
    )
}

async fn new_app(req: HttpRequest, state: State) -> HttpResponse {
    let user = match admin_user(&req, &state).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let query = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let (csrf, cookie) = state.browser.csrf_token(&req, None);
    page(
        &state.templates,
        StatusCode::OK,
        "console_new.html",
        context! { admin => user.username, csrf, kind => query.get("kind").unwrap_or("native") },
        cookie.into_iter().collect(),
    )
}

/// The app's page: its settings, and the configuration to paste into the app.
fn app_page(
    req: &HttpRequest,
    state: &AppState,
    user: &User,
    app: &Value,
    notice: Option<&str>,
    secret: Option<&str>,
) -> HttpResponse {
    let (csrf, cookie) = state.browser.csrf_token(req, None);
    let issuer = &state.ctx.config.issuer;
    let redirect = app["redirect_uris"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let scheme = redirect.split(':').next().unwrap_or("").to_owned();
    page(
        &state.templates,
        StatusCode::OK,
        "console_app.html",
        context! {
            admin => user.username.clone(),
            app => minijinja::Value::from(minijinja::value::Serde(app)),
            issuer,
            redirect,
            scheme,
            public => app["token_endpoint_auth_method"] == "none",
            notice,
            secret,
            csrf,
        },
        cookie.into_iter().collect(),
    )
}

async fn app(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    let user = match admin_user(&req, &state).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match admin::get_client(&state.ctx, &path.into_inner()).await {
        Ok(app) => app_page(&req, &state, &user, &app, None, None),
        Err(e) => failed(&state, &e),
    }
}

async fn create_app(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, form) = match admin_form(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = form.get("name").unwrap_or("").trim();
    let spec = match form.get("kind") {
        Some("native") => NewApp::Native {
            name,
            bundle_id: form.get("bundle_id").unwrap_or("").trim(),
            https_redirect: form.get("https_redirect").map(str::trim),
        },
        Some("service") => NewApp::Service {
            name,
            audiences: form
                .get("audience")
                .unwrap_or("")
                .split_whitespace()
                .collect(),
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
            let a = console::admin(&user, client_ip(&req));
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
                &user,
                &app,
                Some("App created."),
                secret.as_deref(),
            )
        }
        Err(e) => failed(&state, &e),
    }
}

async fn app_action(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
    state: State,
) -> HttpResponse {
    let (user, _) = match admin_form(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (client_id, action) = path.into_inner();
    if client_id == console::CLIENT_ID && action == "disable" {
        return failed(
            &state,
            &OAuthError::invalid_request(
                "the console cannot disable itself here; use `latchkey client disable latchkey-console`",
            ),
        );
    }
    let (ctx, now) = (&state.ctx, unix_now());
    let a = console::admin(&user, client_ip(&req));
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
        Ok(app) => app_page(&req, &state, &user, &app, Some(notice), secret.as_deref()),
        Err(e) => failed(&state, &e),
    }
}

async fn sign_out(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let form = csrf_form(&req, body, &state).await;
    if let Err(r) = form {
        return r;
    }
    let Some((_, token)) = CONSOLE.signed_in(&req, &state).await else {
        return redirect("/console", vec![]);
    };
    let cookies = CONSOLE.end_page(&state, token).await;
    page(
        &state.templates,
        StatusCode::OK,
        "logged_out.html",
        context! { message => "You left the console." },
        cookies,
    )
}
