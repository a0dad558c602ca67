//! `GET|POST /authorize`, `POST /authorize/login`, `POST /authorize/consent` (`/end_session` is
//! in `logout.rs`).
//! Browser state (the session cookie and the CSRF token bound to it) is in `csrf.rs`.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

pub(super) use super::login::{SignedIn, passkey_context, sign_in};
use super::pages::{error_page, page};
use super::{AppState, read_form_body, unix_now};
use crate::model::{Session, User};
use crate::protocol::authorize::{self, AuthorizeError, AuthorizeRequest, Step};
use crate::protocol::error::ErrorCode;
use crate::protocol::login;
use crate::protocol::login::amr::Acr;
use crate::protocol::params::Params;

pub const LOGIN_PATH: &str = "/authorize/login";
pub const CONSENT_PATH: &str = "/authorize/consent";

pub(super) fn redirect(location: &str, cookies: Vec<Cookie<'static>>) -> HttpResponse {
    let mut b = HttpResponse::Found();
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    match HeaderValue::from_str(location) {
        Ok(v) => b.insert_header((header::LOCATION, v)),
        Err(_) => return HttpResponse::BadRequest().finish(),
    };
    for c in cookies {
        b.cookie(c);
    }
    b.finish()
}

fn authorize_error(state: &AppState, e: AuthorizeError) -> HttpResponse {
    match e {
        AuthorizeError::Page(err) => {
            let status = match err.code {
                ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            error_page(
                &state.templates,
                status,
                err.code.as_str(),
                &err.description,
            )
        }
        AuthorizeError::Redirect(r) => redirect(&r.location(&state.ctx.config.issuer), vec![]),
    }
}

pub async fn authorize_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let raw = req.query_string().to_owned();
    start(&req, &state, raw).await
}

pub async fn authorize_post(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match read_form_body(&req, body).await {
        Ok(b) => start(&req, &state, String::from_utf8_lossy(&b).into_owned()).await,
        Err(e) => error_page(
            &state.templates,
            StatusCode::BAD_REQUEST,
            e.code.as_str(),
            &e.description,
        ),
    }
}

async fn validate(
    state: &AppState,
    raw: &str,
    now: i64,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let params = Params::parse(raw.as_bytes()).map_err(AuthorizeError::Page)?;
    authorize::validate(&state.ctx, &params, now).await
}

async fn start(req: &HttpRequest, state: &AppState, raw: String) -> HttpResponse {
    let now = unix_now();
    let areq = match validate(state, &raw, now).await {
        Ok(r) => r,
        Err(e) => return authorize_error(state, e),
    };
    let session = match login::current_session(&state.ctx, state.browser.session(req), now).await {
        Ok(s) => s,
        Err(e) => return authorize_error(state, areq.error(e.into())),
    };
    proceed(req, state, &areq, &raw, session, None, vec![], now).await
}

#[allow(clippy::too_many_arguments)]
async fn proceed(
    req: &HttpRequest,
    state: &AppState,
    areq: &AuthorizeRequest,
    raw: &str,
    session: Option<(Session, User)>,
    fresh_session: Option<&str>,
    mut cookies: Vec<Cookie<'static>>,
    now: i64,
) -> HttpResponse {
    let fresh_login = fresh_session.is_some();
    let consented = match &session {
        Some((s, _)) => {
            let (u, c) = (s.user_id.clone(), areq.client.client_id.clone());
            match state.ctx.store.blocking(move |st| st.consent(&u, &c)).await {
                Ok(c) => c,
                Err(e) => return authorize_error(state, areq.error(e.into())),
            }
        }
        None => None,
    };
    let step = authorize::decide(
        areq,
        session.as_ref().map(|(s, _)| s),
        consented.as_ref().map(|(s, a)| (s.as_str(), a.as_str())),
        fresh_login,
        now,
    );
    match step {
        Err(e) => authorize_error(state, e),
        Ok(Step::Login) => login_page(
            req,
            state,
            areq,
            raw,
            None,
            StatusCode::OK,
            areq.login_hint.as_deref().unwrap_or(""),
        ),
        Ok(step @ (Step::Consent | Step::Confirm)) => {
            // Right after sign-in the token binds to the session cookie this response sets.
            let (csrf, set) = state.browser.csrf_token(req, fresh_session);
            cookies.extend(set);
            let username = session
                .as_ref()
                .map(|(_, u)| u.username.clone())
                .unwrap_or_default();
            let scopes: Vec<String> = areq.scope.iter().map(describe_scope).collect();
            let audiences = areq.audiences.clone();
            let template = if step == Step::Consent {
                "consent.html"
            } else {
                "continue.html"
            };
            page(
                &state.templates,
                StatusCode::OK,
                template,
                context! { client_name => areq.client.client_name.clone(), username, scopes, audiences, csrf, request => raw, action => CONSENT_PATH },
                cookies,
            )
        }
        Ok(Step::StrongerSignIn) => {
            let message = match areq.acr {
                Acr::Phr => {
                    "This app needs a passkey sign-in. Sign in with a passkey, or add one on your account page first."
                }
                _ => {
                    "This app needs more than a password. Add a passkey or an authenticator app on your account page (/account), then sign in again."
                }
            };
            login_page(
                req,
                state,
                areq,
                raw,
                Some(message.into()),
                StatusCode::FORBIDDEN,
                "",
            )
        }
        Ok(Step::Issue) => {
            let Some((s, _)) = &session else {
                return authorize_error(
                    state,
                    areq.error(crate::protocol::error::OAuthError::server_error(
                        "no session",
                    )),
                );
            };
            match authorize::issue_code(&state.ctx, areq, s, now).await {
                Ok(location) => redirect(&location, cookies),
                Err(e) => authorize_error(state, e),
            }
        }
    }
}

pub(super) fn describe_scope(s: &str) -> String {
    match s {
        "openid" => "Sign you in".into(),
        "profile" => "See your name and username".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Stay signed in (keep access while you are away)".into(),
        other => format!("Access: {other}"),
    }
}

fn login_page(
    req: &HttpRequest,
    state: &AppState,
    areq: &AuthorizeRequest,
    raw: &str,
    error: Option<String>,
    status: StatusCode,
    username: &str,
) -> HttpResponse {
    let (csrf, set) = state.browser.csrf_token(req, None);
    let requirement = match areq.acr {
        Acr::Pwd => None,
        Acr::Mfa => Some(
            "This app asks for two-step sign-in: a passkey, or your password and a code from your authenticator app.",
        ),
        Acr::Phr => Some("This app asks you to sign in with a passkey."),
    };
    page(
        &state.templates,
        status,
        "login.html",
        context! { client_name => areq.client.client_name.clone(), csrf, request => raw, action => LOGIN_PATH, error, username, requirement, ..passkey_context(state, unix_now()) },
        set.into_iter().collect(),
    )
}

/// A page form's body, parsed, once its CSRF token checks out (the login, consent and device
/// forms); else the error page to answer with.
pub(super) async fn csrf_form(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<Params, HttpResponse> {
    let form = read_form_body(req, body)
        .await
        .and_then(|b| Params::parse(&b))
        .map_err(|e| {
            error_page(
                &state.templates,
                StatusCode::BAD_REQUEST,
                e.code.as_str(),
                &e.description,
            )
        })?;
    if !state.browser.csrf_ok(req, form.get("csrf")) {
        return Err(error_page(
            &state.templates,
            StatusCode::FORBIDDEN,
            "invalid_request",
            "The form expired or was not sent by this site (CSRF check failed). Go back to the app or device and start again.",
        ));
    }
    Ok(form)
}

/// The shared start of the login and consent form POSTs: parse the body, check the CSRF
/// token, and re-validate the authorization request the form carries.
async fn authorize_form(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<(Params, String, AuthorizeRequest), HttpResponse> {
    let form = csrf_form(req, body, state).await?;
    let raw = form.get("request").unwrap_or("").to_owned();
    let areq = validate(state, &raw, unix_now())
        .await
        .map_err(|e| authorize_error(state, e))?;
    Ok((form, raw, areq))
}

pub async fn login_post(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let (form, raw, areq) = match authorize_form(&req, body, &state).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let login_form = |error, status, username: &str| {
        login_page(&req, &state, &areq, &raw, error, status, username)
    };
    match sign_in(&req, &state, &form, &areq.client.client_id, now, login_form).await {
        Ok(SignedIn {
            user,
            session,
            value,
            cookies,
        }) => {
            proceed(
                &req,
                &state,
                &areq,
                &raw,
                Some((session, user)),
                Some(&value),
                cookies,
                now,
            )
            .await
        }
        Err(resp) => resp,
    }
}

pub async fn consent_post(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let (form, raw, areq) = match authorize_form(&req, body, &state).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let session = match login::current_session(&state.ctx, state.browser.session(&req), now).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return login_page(
                &req,
                &state,
                &areq,
                &raw,
                Some("Your session ended. Sign in again.".into()),
                StatusCode::OK,
                "",
            );
        }
        Err(e) => return authorize_error(&state, areq.error(e.into())),
    };
    match form.get("decision") {
        Some("allow") => {
            let (u, c, sc, aud) = (
                session.0.user_id.clone(),
                areq.client.client_id.clone(),
                areq.scope.to_string(),
                areq.audiences.clone(),
            );
            if let Err(e) = state
                .ctx
                .store
                .blocking(move |s| {
                    let before = s.consent(&u, &c)?;
                    let scope =
                        authorize::remembered(before.as_ref().map(|b| b.0.as_str()), sc.split(' '));
                    let aud = authorize::remembered(
                        before.as_ref().map(|b| b.1.as_str()),
                        aud.iter().map(String::as_str),
                    );
                    s.save_consent(&u, &c, &scope, &aud, now)
                })
                .await
            {
                return authorize_error(&state, areq.error(e.into()));
            }
            match authorize::issue_code(&state.ctx, &areq, &session.0, now).await {
                Ok(location) => redirect(&location, vec![]),
                Err(e) => authorize_error(&state, e),
            }
        }
        Some("deny") => authorize_error(&state, authorize::denied(&areq)),
        // "Use another account" on the confirmation page: sign in again, here.
        Some("switch") => login_page(&req, &state, &areq, &raw, None, StatusCode::OK, ""),
        _ => error_page(
            &state.templates,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Choose Allow, Continue or Deny.",
        ),
    }
}
