//! The sign-in forms shared by `/authorize/login` and `/device/login`. One POST, three ways in:
//!
//! - `username` + `password`: `login::check_password`; a user with an authenticator app then
//!   gets the one-time-code page (`otp.html`) carrying a sealed ticket, and no session yet;
//! - `ticket` + `code`: the second step (`login::totp::verify`, throttled like a password);
//! - `ceremony` + `credential`: a passkey (`login::passkey::finish_sign_in`), no username.
//!
//! Each ends in `login::start_session` with the RFC 8176 methods used (`login::amr`).

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use minijinja::context;

use super::AppState;
use super::pages::{error_page, page};
use crate::model::{Session, User};
use crate::protocol::audit;
use crate::protocol::login::passkey::{self, PasskeyError};
use crate::protocol::login::totp::{self, TotpRefused};
use crate::protocol::login::{self, LoginError, amr, second_factor};
use crate::protocol::params::Params;

/// A sign-in that worked: the user, their new session and its cookie value, and the cookies
/// that start it.
pub(super) struct SignedIn {
    pub user: User,
    pub session: Session,
    pub value: String,
    pub cookies: Vec<Cookie<'static>>,
}

/// What the login page needs for "Sign in with a passkey": the WebAuthn request options
/// (JSON) and the sealed ceremony, or nothing when passkeys are off.
pub(super) fn passkey_context(state: &AppState, now: i64) -> minijinja::Value {
    if !state.ctx.passkeys.enabled() {
        return context! {};
    }
    match passkey::start_sign_in(&state.ctx, now) {
        Ok(c) => context! {
            passkey_options => c.options.to_string(),
            passkey_ceremony => c.ceremony,
        },
        Err(e) => {
            tracing::warn!(error = ?e, "login page without passkey sign-in");
            context! {}
        }
    }
}

fn unavailable(state: &AppState) -> HttpResponse {
    error_page(
        &state.templates,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "The service is temporarily unavailable. Try again shortly.",
    )
}

fn throttled(resp: HttpResponse, secs: u64) -> HttpResponse {
    let mut resp = resp;
    // RFC 9110 §10.2.3 (delay-seconds), for scripts and clients that back off.
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// The one-time-code page: the second step of a password sign-in.
fn otp_page(
    req: &HttpRequest,
    state: &AppState,
    form: &Params,
    ticket: &str,
    error: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let (csrf, set) = state.browser.csrf_token(req, None);
    page(
        &state.templates,
        status,
        "otp.html",
        context! {
            csrf,
            ticket,
            request => form.get("request").unwrap_or(""),
            action => req.path(),
            error,
        },
        set.into_iter().collect(),
    )
}

/// The form posted to a login page, checked and throttled. A refusal is the form again,
/// drawn by `login_form(error, status, username)` (with `Retry-After` when throttled), or the
/// one-time-code page.
pub(super) async fn sign_in(
    req: &HttpRequest,
    state: &AppState,
    form: &Params,
    client_id: &str,
    now: i64,
    login_form: impl Fn(Option<String>, StatusCode, &str) -> HttpResponse,
) -> Result<SignedIn, HttpResponse> {
    let ip = super::client_ip::client_ip(req);
    let (user, methods) = if let Some(credential) = form.get("credential") {
        with_passkey(state, form, credential, ip, now, &login_form).await?
    } else if let Some(ticket) = form.get("ticket") {
        with_code(req, state, form, ticket, ip, now, &login_form).await?
    } else {
        let user = with_password(state, form, client_id, ip, now, &login_form).await?;
        let id = user.user_id.clone();
        let has_totp = state
            .ctx
            .store
            .blocking(move |s| s.totp(&id))
            .await
            .map_err(|_| unavailable(state))?
            .is_some();
        if has_totp {
            let Some(t) = second_factor::ticket(&state.ctx, &user.user_id, now) else {
                return Err(unavailable(state));
            };
            return Err(otp_page(req, state, form, &t, None, StatusCode::OK));
        }
        (user, amr::PASSWORD)
    };
    let (session, value) = login::start_session(
        &state.ctx,
        &user,
        methods,
        ip,
        super::client_ip::user_agent(req),
        now,
    )
    .await
    .map_err(|_| unavailable(state))?;
    let c = state
        .browser
        .session_cookie(value.clone(), state.ctx.config.session_ttl as i64);
    // Signing in rotates the CSRF binding: forms from now on carry a token bound to the new
    // session, and the pre-session cookie is replaced too.
    let pre = state.browser.fresh_pre_session();
    Ok(SignedIn {
        user,
        session,
        value,
        cookies: vec![c, pre],
    })
}

async fn with_password(
    state: &AppState,
    form: &Params,
    client_id: &str,
    ip: Option<std::net::IpAddr>,
    now: i64,
    login_form: &impl Fn(Option<String>, StatusCode, &str) -> HttpResponse,
) -> Result<User, HttpResponse> {
    let username = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    if username.is_empty() || password.is_empty() || username.len() > 200 || password.len() > 1024 {
        return Err(login_form(
            Some("Enter your username and password.".into()),
            StatusCode::BAD_REQUEST,
            username,
        ));
    }
    match login::check_password(&state.ctx, &state.throttle, username, password, ip, now).await {
        Ok(user) => Ok(user),
        Err(LoginError::Invalid) => {
            tracing::info!(client_id = %client_id, "login failed");
            Err(login_form(
                Some("Invalid username or password.".into()),
                StatusCode::UNAUTHORIZED,
                username,
            ))
        }
        Err(LoginError::Throttled(secs)) => {
            tracing::warn!(client_id = %client_id, "login throttled");
            Err(throttled(
                login_form(
                    Some(format!(
                        "Too many sign-in attempts. Wait {secs} seconds and try again."
                    )),
                    StatusCode::TOO_MANY_REQUESTS,
                    username,
                ),
                secs,
            ))
        }
        Err(LoginError::Unavailable) => Err(unavailable(state)),
    }
}

async fn with_code(
    req: &HttpRequest,
    state: &AppState,
    form: &Params,
    ticket: &str,
    ip: Option<std::net::IpAddr>,
    now: i64,
    login_form: &impl Fn(Option<String>, StatusCode, &str) -> HttpResponse,
) -> Result<(User, &'static str), HttpResponse> {
    let again = || {
        login_form(
            Some("That took too long. Sign in again.".into()),
            StatusCode::UNAUTHORIZED,
            "",
        )
    };
    let Some(user_id) = second_factor::open_ticket(&state.ctx, ticket, now) else {
        return Err(again());
    };
    let user = state
        .ctx
        .store
        .blocking(move |s| s.user(&user_id))
        .await
        .map_err(|_| unavailable(state))?
        .filter(|u| !u.disabled);
    let Some(user) = user else {
        return Err(again());
    };
    let code = form.get("code").unwrap_or("");
    let retry = |msg: &str, status| otp_page(req, state, form, ticket, Some(msg.into()), status);
    match totp::verify(&state.ctx, &state.throttle, &user, code, ip, now).await {
        Ok(used) => {
            let factor = match used {
                totp::Used::Code => "totp",
                totp::Used::RecoveryCode => "recovery_code",
            };
            audit::login_factor(&state.ctx, Some(&user), factor, true, "ok", ip, now).await;
            Ok((user, amr::PASSWORD_OTP))
        }
        Err(refused) => {
            let reason = match &refused {
                TotpRefused::Wrong => "wrong",
                TotpRefused::Replayed => "replayed",
                TotpRefused::Throttled(_) => "throttled",
                TotpRefused::NotEnrolled | TotpRefused::Expired => "expired",
                TotpRefused::Unavailable => "unavailable",
            };
            if !matches!(refused, TotpRefused::Unavailable) {
                state.ctx.metrics.login_failed("invalid");
                audit::login_factor(&state.ctx, Some(&user), "totp", false, reason, ip, now).await;
            }
            Err(match refused {
                TotpRefused::Wrong => retry(
                    "That code is not right. Enter the code your app shows now.",
                    StatusCode::UNAUTHORIZED,
                ),
                TotpRefused::Replayed => retry(
                    "That code was used already. Wait for the next one.",
                    StatusCode::UNAUTHORIZED,
                ),
                TotpRefused::Throttled(secs) => throttled(
                    retry(
                        &format!("Too many attempts. Wait {secs} seconds and try again."),
                        StatusCode::TOO_MANY_REQUESTS,
                    ),
                    secs,
                ),
                TotpRefused::NotEnrolled | TotpRefused::Expired => again(),
                TotpRefused::Unavailable => unavailable(state),
            })
        }
    }
}

async fn with_passkey(
    state: &AppState,
    form: &Params,
    credential: &str,
    ip: Option<std::net::IpAddr>,
    now: i64,
    login_form: &impl Fn(Option<String>, StatusCode, &str) -> HttpResponse,
) -> Result<(User, &'static str), HttpResponse> {
    let ceremony = form.get("ceremony").unwrap_or("");
    match passkey::finish_sign_in(&state.ctx, ceremony, credential, now).await {
        Ok(done) => {
            audit::login_factor(&state.ctx, Some(&done.user), "passkey", true, "ok", ip, now).await;
            Ok((done.user, done.amr))
        }
        Err(PasskeyError::Refused(why)) => {
            state.ctx.metrics.login_failed("invalid");
            audit::login_factor(&state.ctx, None, "passkey", false, "refused", ip, now).await;
            Err(login_form(Some(why.into()), StatusCode::UNAUTHORIZED, ""))
        }
        Err(PasskeyError::Off) => Err(login_form(
            Some("Passkeys are not available here. Sign in with your password.".into()),
            StatusCode::BAD_REQUEST,
            "",
        )),
        Err(PasskeyError::Unavailable) => Err(unavailable(state)),
    }
}
