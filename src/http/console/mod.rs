//! `/console`: the admin console's pages (issue 21), server-rendered, CSRF-protected forms, no
//! inline script. Signs in through `/authorize` as the built-in client `latchkey-console`
//! (`first_party::CONSOLE`); every request re-checks the token, that the browser session it
//! came from is still live, that the admin was active within `console_idle_timeout`, and that
//! the user is an enabled admin (`User::is_admin`). Every action calls the same
//! `protocol::admin` function as `/admin/v1`, audited as
//! `admin:latchkey-console/user:<username>`.
//!
//! One file per page set: `overview` (the last hour's charts), `apps` (list, wizard, edit),
//! `users`, `keys` (signing keys and registration tokens), `audit`.

mod apps;
mod audit;
mod keys;
mod overview;
mod users;

use actix_web::cookie::Cookie;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use super::authorize::csrf_form;
use super::first_party::{CONSOLE, redirect};
use super::pages::{error_page, page};
use super::{AppState, unix_now};
use crate::model::User;
use crate::protocol::console;
use crate::protocol::error::OAuthError;
use crate::protocol::login;
use crate::protocol::params::Params;
use crate::secret;

type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(overview::overview))
        .route(console::CALLBACK_PATH, web::get().to(callback))
        .route("/console/signout", web::post().to(sign_out));
    apps::routes(cfg);
    users::routes(cfg);
    keys::routes(cfg);
    audit::routes(cfg);
}

/// What the activity cookie's MAC is for.
const IDLE_LABEL: &str = "console-active";

/// A console request by a signed-in admin, and the activity cookie its response renews.
struct Signed {
    user: User,
    cookies: Vec<Cookie<'static>>,
}

fn activity_name(state: &AppState) -> &'static str {
    if state.browser.secure() {
        "__Host-lk_console_active"
    } else {
        "lk_console_active"
    }
}

/// The activity cookie for `now`: `<now>.<MAC of the browser session and now>`, living
/// `console_idle_timeout`, so that it names this browser's sign-in and cannot be moved
/// forward by anyone but this server.
fn activity_cookie(state: &AppState, session: &str, now: i64) -> Cookie<'static> {
    let value = format!("{}|{now}", secret::hash_token(session));
    let tag = state.browser.stamp(IDLE_LABEL, &value);
    let ttl = state.ctx.config.console_idle_timeout as i64;
    state
        .browser
        .cookie(activity_name(state), format!("{now}.{tag}"), Some(ttl))
}

/// Whether this browser's admin made a console request within `console_idle_timeout`.
fn active(req: &HttpRequest, state: &AppState, now: i64) -> bool {
    let (Some(session), Some(c)) = (state.browser.session(req), req.cookie(activity_name(state)))
    else {
        return false;
    };
    let Some((at, tag)) = c.value().split_once('.') else {
        return false;
    };
    let Ok(at) = at.parse::<i64>() else {
        return false;
    };
    let value = format!("{}|{at}", secret::hash_token(&session));
    state.browser.stamp_ok(IDLE_LABEL, &value, tag)
        && within(at, now, state.ctx.config.console_idle_timeout)
}

/// Whether activity at `at` is recent enough at `now` (never in the future).
fn within(at: i64, now: i64, idle_timeout: u64) -> bool {
    at <= now && now - at <= idle_timeout as i64
}

/// The page to come back to after a sign-in: this one, for a GET.
fn this_page(req: &HttpRequest) -> Option<String> {
    (req.method() == Method::GET).then(|| match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{q}", req.path()),
    })
}

/// The signed-in admin, or the response: a sign-in (no console token, the browser session
/// it came from has ended, or the admin was idle too long: then the password is asked for
/// again), or 403 (not an admin: the role is read from the database on every request).
async fn admin_user(req: &HttpRequest, state: &AppState) -> Result<Signed, HttpResponse> {
    let now = unix_now();
    let back = this_page(req);
    let is_active = active(req, state, now);
    let Some((user, token)) = CONSOLE.signed_in(req, state).await else {
        // The token ran out (or never was): an active admin gets a new one silently through
        // the browser session; an idle one signs in again.
        return Err(CONSOLE.start_sign_in_to(state, back.as_deref(), !is_active));
    };
    let session = state.browser.session(req);
    let live = match login::current_session(&state.ctx, session.clone(), now).await {
        Ok(s) => s.is_some_and(|(s, u)| u.user_id == user.user_id && s.user_id == user.user_id),
        Err(e) => {
            tracing::error!(error = %e, "console: cannot read the browser session");
            return Err(error_page(
                &state.templates,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The server cannot reach its database. Try again shortly.",
            ));
        }
    };
    if !live || !is_active {
        let gone = CONSOLE.forget(state, token).await;
        let mut r = CONSOLE.start_sign_in_to(state, back.as_deref(), true);
        if let Err(e) = r.add_cookie(&gone) {
            tracing::error!(error = %e, "console: cannot remove the token cookie");
        }
        return Err(r);
    }
    if !user.is_admin {
        return Err(error_page(
            &state.templates,
            StatusCode::FORBIDDEN,
            "access_denied",
            "Your account is not an administrator of this server. Ask an admin to run `latchkey user grant-admin` for you.",
        ));
    }
    let cookies = session
        .map(|s| vec![activity_cookie(state, &s, now)])
        .unwrap_or_default();
    Ok(Signed { user, cookies })
}

/// A console form POST: the CSRF token checked, then the admin.
async fn admin_form(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<(Signed, Params), HttpResponse> {
    let form = csrf_form(req, body, state).await?;
    let signed = admin_user(req, state).await?;
    Ok((signed, form))
}

/// A refused action's page (never a 500: a refusal is the admin's input, not our fault).
fn failed(state: &AppState, e: &OAuthError) -> HttpResponse {
    let status = match e.code.as_str() {
        "not_found" => StatusCode::NOT_FOUND,
        "temporarily_unavailable" | "server_error" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    error_page(&state.templates, status, e.code.as_str(), &e.description)
}

/// A console page: `ctx` with the admin's name, the form token and the section, and the
/// renewed activity cookie.
fn render(
    req: &HttpRequest,
    state: &AppState,
    signed: &Signed,
    name: &str,
    section: &str,
    ctx: minijinja::Value,
) -> HttpResponse {
    let (csrf, cookie) = state.browser.csrf_token(req, None);
    let mut cookies = signed.cookies.clone();
    cookies.extend(cookie);
    page(
        &state.templates,
        StatusCode::OK,
        name,
        context! { admin => signed.user.username.clone(), csrf, section, ..ctx },
        cookies,
    )
}

/// The query string's parameters (a malformed one reads as none).
fn query(req: &HttpRequest) -> Params {
    Params::parse(req.query_string().as_bytes()).unwrap_or_default()
}

/// Serde data for a template.
fn value<T: serde::Serialize>(v: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

async fn callback(req: HttpRequest, state: State) -> HttpResponse {
    let mut r = CONSOLE.callback(&req, &state).await;
    if r.status() == StatusCode::SEE_OTHER
        && let Some(session) = state.browser.session(&req)
        && let Err(e) = r.add_cookie(&activity_cookie(&state, &session, unix_now()))
    {
        tracing::error!(error = %e, "console: cannot set the activity cookie");
    }
    r
}

async fn sign_out(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let form = csrf_form(&req, body, &state).await;
    if let Err(r) = form {
        return r;
    }
    let Some((_, token)) = CONSOLE.signed_in(&req, &state).await else {
        return redirect("/console", vec![]);
    };
    let mut cookies = CONSOLE.end_page(&state, token).await;
    let mut idle = state
        .browser
        .cookie(activity_name(&state), String::new(), Some(0));
    idle.make_removal();
    cookies.push(idle);
    page(
        &state.templates,
        StatusCode::OK,
        "logged_out.html",
        context! { message => "You left the console." },
        cookies,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn idle_means_longer_ago_than_the_timeout() {
        assert!(super::within(1000, 1000, 900));
        assert!(super::within(100, 1000, 900));
        assert!(!super::within(99, 1000, 900));
        assert!(
            !super::within(1001, 1000, 900),
            "a time from the future is not activity"
        );
    }
}
