//! `/account`: the user's own pages (profile, password, signed-in devices), a first-party
//! client of this server (`protocol::account`). `GET /account` without a valid account
//! cookie starts an authorization request (code + PKCE S256, `state`) for the built-in client;
//! `/account/callback` checks `state` against the flow cookie, redeems the code through the
//! same token exchange apps use, and keeps the access token in an HttpOnly cookie scoped to
//! `/account`. Every page checks that token like userinfo does; every form carries the
//! session-bound CSRF token.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use super::authorize::csrf_form;
use super::first_party::{ACCOUNT, PageToken};
use super::pages::{error_page, page};
use super::{AppState, client_ip::client_ip, unix_now};
use crate::model::User;
use crate::protocol::account::{self, CALLBACK_PATH, PasswordRefused};
use crate::protocol::params::Params;
use crate::protocol::signins;

type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/account", web::get().to(show))
        .route(CALLBACK_PATH, web::get().to(callback))
        .route("/account/profile", web::post().to(profile))
        .route("/account/password", web::post().to(password))
        .route("/account/signout", web::post().to(sign_out_one))
        .route(
            "/account/signout-everywhere",
            web::post().to(sign_out_everywhere),
        )
        .configure(super::account_factors::routes);
}

/// The signed-in user, from the account cookie's access token (checked like at userinfo).
pub(super) async fn signed_in(req: &HttpRequest, state: &AppState) -> Option<User> {
    signed_in_with_token(req, state).await.map(|(u, _)| u)
}

async fn signed_in_with_token(req: &HttpRequest, state: &AppState) -> Option<(User, PageToken)> {
    ACCOUNT.signed_in(req, state).await
}

async fn end_page(state: &AppState, token: PageToken) -> Vec<actix_web::cookie::Cookie<'static>> {
    ACCOUNT.end_page(state, token).await
}

/// Starts the account sign-in: an authorization request of the built-in client.
pub(super) fn start_sign_in(state: &AppState) -> HttpResponse {
    ACCOUNT.start_sign_in(state)
}

async fn show(req: HttpRequest, state: State) -> HttpResponse {
    match signed_in(&req, &state).await {
        Some(user) => render(&req, &state, &user, None, StatusCode::OK).await,
        None => start_sign_in(&state),
    }
}

/// The account page, with `notice` (a message after an action) if any.
pub(super) async fn render(
    req: &HttpRequest,
    state: &AppState,
    user: &User,
    notice: Option<(&str, &str)>,
    status: StatusCode,
) -> HttpResponse {
    let id = user.user_id.clone();
    let now = unix_now();
    let sign_ins = match state
        .ctx
        .store
        .blocking(move |s| s.user_sign_ins(&id, now))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "account page: cannot read sign-ins");
            return error_page(
                &state.templates,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Try again in a moment.",
            );
        }
    };
    let apps: Vec<minijinja::Value> = sign_ins
        .apps
        .iter()
        .map(|a| {
            context! {
                family_id => a.family_id.clone(),
                client_name => a.client_name.clone(),
                signed_in_at => a.signed_in_at,
                last_used_at => a.last_used_at,
                dpop_bound => a.dpop_bound,
                last_ip => a.last_ip.clone(),
                user_agent => a.user_agent.clone(),
            }
        })
        .collect();
    let sessions: Vec<minijinja::Value> = sign_ins
        .sessions
        .iter()
        .map(|s| {
            context! {
                sid => s.sid.clone(),
                signed_in_at => s.auth_time,
                ip => s.seen.ip.clone(),
                user_agent => s.seen.user_agent.clone(),
            }
        })
        .collect();
    let factors = super::account_factors::view(state, user, now).await;
    let (csrf, cookie) = state.browser.csrf_token(req, None);
    let (kind, message) = notice.unwrap_or(("", ""));
    page(
        &state.templates,
        status,
        "account.html",
        context! {
            username => user.username.clone(),
            name => user.name.clone().unwrap_or_default(),
            email => user.email.clone().unwrap_or_default(),
            apps,
            sessions,
            csrf,
            kind,
            message,
            now,
            ..factors
        },
        cookie.into_iter().collect(),
    )
}

async fn callback(req: HttpRequest, state: State) -> HttpResponse {
    ACCOUNT.callback(&req, &state).await
}

/// The signed-in user and the CSRF-checked form of an account action, or the response.
pub(super) async fn action(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<(User, PageToken, Params), HttpResponse> {
    let form = csrf_form(req, body, state).await?;
    let Some((user, token)) = signed_in_with_token(req, state).await else {
        return Err(error_page(
            &state.templates,
            StatusCode::UNAUTHORIZED,
            "login_required",
            "Your account session ended. Open your account page again to sign in.",
        ));
    };
    Ok((user, token, form))
}

async fn profile(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, _, form) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    let name = form.get("name").unwrap_or("");
    let email = form.get("email").unwrap_or("");
    match account::update_profile(&state.ctx, &user, name, email, now).await {
        Ok(()) => {
            let id = user.user_id.clone();
            let fresh = state.ctx.store.blocking(move |s| s.user(&id)).await;
            let user = fresh.ok().flatten().unwrap_or(user);
            render(&req, &state, &user, Some(("ok", "Saved.")), StatusCode::OK).await
        }
        Err(e) => {
            render(
                &req,
                &state,
                &user,
                Some(("error", &e.description)),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    }
}

async fn password(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, token, form) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (current, new) = (
        form.get("current_password").unwrap_or(""),
        form.get("new_password").unwrap_or(""),
    );
    if form.get("confirm_password") != Some(new) {
        return render(
            &req,
            &state,
            &user,
            Some(("error", "The new passwords do not match.")),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let result = account::change_password(
        &state.ctx,
        &state.throttle,
        &user,
        current,
        new,
        // Only an explicit choice keeps the other devices: the safe answer is the default.
        form.get("others") == Some("keep"),
        client_ip(&req),
        unix_now(),
    )
    .await;
    let refused = |m: String| (m, StatusCode::BAD_REQUEST);
    let (message, status) = match result {
        Ok(Ok(account::PasswordChanged::Kept)) => {
            return render(
                &req,
                &state,
                &user,
                Some(("ok", "Password changed. Your other devices stay signed in.")),
                StatusCode::OK,
            )
            .await;
        }
        Ok(Ok(account::PasswordChanged::SignedOutEverywhere)) => {
            // Every session and device is signed out, this page's included.
            return page(
                &state.templates,
                StatusCode::OK,
                "logged_out.html",
                context! { message => "Your password was changed. You were signed out everywhere: sign in again with the new password." },
                end_page(&state, token).await,
            );
        }
        Ok(Err(PasswordRefused::Wrong)) => refused("The current password is not right.".into()),
        Ok(Err(PasswordRefused::Throttled(wait))) => (
            format!("Too many wrong passwords. Try again in {wait} seconds."),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Ok(Err(PasswordRefused::Weak(why))) => refused(format!("{}.", capitalize(why))),
        Err(e) => {
            tracing::error!(error = %e.code.as_str(), "account: password change failed");
            (
                "The password could not be changed. Try again.".into(),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    };
    render(&req, &state, &user, Some(("error", &message)), status).await
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

async fn sign_out_one(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, _, form) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    let family = form.get("family_id").map(str::to_owned);
    let which = match (&family, form.get("sid")) {
        (Some(f), _) => Some(signins::Which::Family(f.clone())),
        (None, Some(sid)) => Some(signins::Which::Session(sid.to_owned())),
        (None, None) => None,
    };
    let done = match which {
        Some(w) => signins::sign_out(&state.ctx, &user.user_id, w, now).await,
        None => Ok(None),
    };
    let notice = match done {
        Ok(Some(r)) => {
            crate::protocol::audit::user_action(
                &state.ctx,
                &user,
                crate::protocol::audit::event::USER_SIGNED_OUT,
                signins::signed_out(family.as_deref(), r),
                now,
            )
            .await;
            ("ok", "Signed out of that device.")
        }
        Ok(None) => ("error", "That device is not signed in any more."),
        Err(e) => {
            tracing::error!(error = %e.code.as_str(), "account: sign-out failed");
            ("error", "Could not sign that device out. Try again.")
        }
    };
    // This page may have been that device's browser session.
    match signed_in(&req, &state).await {
        Some(user) => render(&req, &state, &user, Some(notice), StatusCode::OK).await,
        None => start_sign_in(&state),
    }
}

async fn sign_out_everywhere(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, token, _) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    match signins::sign_out(&state.ctx, &user.user_id, signins::Which::Everywhere, now).await {
        Ok(r) => {
            let r = r.unwrap_or_default();
            crate::protocol::audit::user_action(
                &state.ctx,
                &user,
                crate::protocol::audit::event::USER_SIGNED_OUT,
                signins::signed_out(None, r),
                now,
            )
            .await;
            page(
                &state.templates,
                StatusCode::OK,
                "logged_out.html",
                context! { message => "You were signed out everywhere." },
                end_page(&state, token).await,
            )
        }
        Err(e) => {
            tracing::error!(error = %e.code.as_str(), "account: sign out everywhere failed");
            error_page(
                &state.templates,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Could not sign you out. Try again.",
            )
        }
    }
}
