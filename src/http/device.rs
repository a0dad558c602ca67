//! The device authorization grant's HTTP side (RFC 8628): `POST /device_authorization` (JSON,
//! for the device) and the verification pages for the person (`GET|POST /device`,
//! `POST /device/login`, `POST /device/confirm`). Rules are in `protocol::device`.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use super::authorize::{csrf_form, describe_scope, sign_in};
use super::pages::{error_page, page};
use super::{AppState, error, read_form_body, unix_now};
use crate::model::{Client, DeviceGrant, Session, User};
use crate::protocol::device;
use crate::protocol::login;
use crate::protocol::params::Params;

pub const LOGIN_PATH: &str = "/device/login";
pub const CONFIRM_PATH: &str = "/device/confirm";

/// `POST /device_authorization` (RFC 8628 §3.1–3.2).
pub async fn device_authorization(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let result = async {
        let body = read_form_body(&req, body).await?;
        let params = Params::parse(&body)?;
        let credentials = super::client_cert::ClientCredentials::of(&req);
        device::authorize(&state.ctx, credentials.get(), &params, now).await
    }
    .await;
    match result {
        Ok(d) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .json(d),
        Err(e) => error::respond(e),
    }
}

fn code_page(
    req: &HttpRequest,
    state: &AppState,
    user_code: &str,
    error: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let (csrf, set) = state.browser.csrf_token(req, None);
    page(
        &state.templates,
        status,
        "device.html",
        context! { csrf, user_code, error, action => device::VERIFICATION_PATH },
        set.into_iter().collect(),
    )
}

/// `GET /device[?user_code=...]` (the `verification_uri_complete` fills the code in).
pub async fn verification_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let typed = q.get("user_code").unwrap_or("");
    let shown = device::normalize(typed)
        .map(|c| device::display(&c))
        .unwrap_or_default();
    code_page(&req, &state, &shown, None, StatusCode::OK)
}

/// The pending authorization behind the typed code, or the page to show instead. Wrong codes
/// are charged to the address; an address with too many waits (RFC 8628 §5.1).
async fn find(
    req: &HttpRequest,
    state: &AppState,
    typed: &str,
    now: i64,
) -> Result<(DeviceGrant, Client), HttpResponse> {
    let ip = super::client_ip::client_ip(req);
    if let Err(secs) = state.throttle.device_code_check(ip, now) {
        let mut resp = code_page(
            req,
            state,
            "",
            Some(format!(
                "Too many wrong codes. Wait {secs} seconds and try again."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Err(resp);
    }
    match device::lookup(&state.ctx, typed, now).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => {
            state.throttle.device_code_failed(ip, now);
            Err(code_page(
                req,
                state,
                "",
                Some(
                    "That code is not valid or has expired. Check the code on your device.".into(),
                ),
                StatusCode::BAD_REQUEST,
            ))
        }
        Err(e) => Err(error_page(
            &state.templates,
            StatusCode::SERVICE_UNAVAILABLE,
            e.code.as_str(),
            &e.description,
        )),
    }
}

fn confirm_page(
    req: &HttpRequest,
    state: &AppState,
    grant: &DeviceGrant,
    client: &Client,
    user: &User,
    fresh_session: Option<&str>,
    mut cookies: Vec<Cookie<'static>>,
) -> HttpResponse {
    let (csrf, set) = state.browser.csrf_token(req, fresh_session);
    cookies.extend(set);
    let scopes: Vec<String> = grant
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(describe_scope)
        .collect();
    page(
        &state.templates,
        StatusCode::OK,
        "device_confirm.html",
        context! {
            client_name => client.client_name.clone(),
            username => user.username.clone(),
            user_code => device::display(&grant.user_code),
            scopes,
            audiences => grant.audiences.clone(),
            csrf,
            action => CONFIRM_PATH,
        },
        cookies,
    )
}

fn login_page(
    req: &HttpRequest,
    state: &AppState,
    grant: &DeviceGrant,
    client: &Client,
    error: Option<String>,
    status: StatusCode,
    username: &str,
) -> HttpResponse {
    let (csrf, set) = state.browser.csrf_token(req, None);
    page(
        &state.templates,
        status,
        "login.html",
        context! { client_name => client.client_name.clone(), csrf, request => device::display(&grant.user_code), action => LOGIN_PATH, error, username, ..super::login::passkey_context(state, super::unix_now()) },
        set.into_iter().collect(),
    )
}

async fn session(state: &AppState, req: &HttpRequest, now: i64) -> Option<(Session, User)> {
    login::current_session(&state.ctx, state.browser.session(req), now)
        .await
        .ok()
        .flatten()
}

/// `POST /device`: the typed code; then sign in, or straight to the confirmation.
pub async fn verification_post(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let form = match csrf_form(&req, body, &state).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let (grant, client) = match find(&req, &state, form.get("user_code").unwrap_or(""), now).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    match session(&state, &req, now).await {
        Some((_, user)) => confirm_page(&req, &state, &grant, &client, &user, None, vec![]),
        None => login_page(&req, &state, &grant, &client, None, StatusCode::OK, ""),
    }
}

/// `POST /device/login`: the password, then the confirmation.
pub async fn login_post(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let form = match csrf_form(&req, body, &state).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let (grant, client) = match find(&req, &state, form.get("request").unwrap_or(""), now).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let login_form = |error, status, username: &str| {
        login_page(&req, &state, &grant, &client, error, status, username)
    };
    match sign_in(&req, &state, &form, &client.client_id, now, login_form).await {
        Ok(s) => confirm_page(
            &req,
            &state,
            &grant,
            &client,
            &s.user,
            Some(&s.value),
            s.cookies,
        ),
        Err(resp) => resp,
    }
}

fn done(state: &AppState, status: StatusCode, heading: &str, message: &str) -> HttpResponse {
    page(
        &state.templates,
        status,
        "device_done.html",
        context! { heading, message },
        vec![],
    )
}

/// `POST /device/confirm`: Allow or Deny, by the signed-in user.
pub async fn confirm_post(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let form = match csrf_form(&req, body, &state).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let (grant, client) = match find(&req, &state, form.get("user_code").unwrap_or(""), now).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let Some((session, _)) = session(&state, &req, now).await else {
        return login_page(
            &req,
            &state,
            &grant,
            &client,
            Some("Your session ended. Sign in again.".into()),
            StatusCode::OK,
            "",
        );
    };
    // The client's (or the server's) `require_mfa` holds for devices too.
    let needed = crate::protocol::login::second_factor::required(&state.ctx.config, &client, None);
    if form.get("decision") == Some("allow")
        && crate::protocol::login::amr::Acr::of(&session.amr) < needed
    {
        return login_page(
            &req,
            &state,
            &grant,
            &client,
            Some("This app needs more than a password. Add a passkey or an authenticator app on your account page (/account), then sign in again.".into()),
            StatusCode::FORBIDDEN,
            "",
        );
    }
    let decided = match form.get("decision") {
        Some("allow") => device::approve(&state.ctx, &grant, &session, now)
            .await
            .map(|ok| (ok, true)),
        Some("deny") => device::deny(&state.ctx, &grant, now)
            .await
            .map(|ok| (ok, false)),
        _ => {
            return error_page(
                &state.templates,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Choose Allow or Deny.",
            );
        }
    };
    match decided {
        Ok((true, true)) => done(
            &state,
            StatusCode::OK,
            "Device connected",
            "You can close this page and go back to your device.",
        ),
        Ok((true, false)) => done(
            &state,
            StatusCode::OK,
            "Request denied",
            "The device was not signed in. You can close this page.",
        ),
        Ok((false, _)) => done(
            &state,
            StatusCode::CONFLICT,
            "Already decided",
            "This code was already used or has expired. Start again on your device.",
        ),
        Err(e) => error_page(
            &state.templates,
            StatusCode::SERVICE_UNAVAILABLE,
            e.code.as_str(),
            &e.description,
        ),
    }
}
