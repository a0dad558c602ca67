//! `/account`: the user's own pages (profile, password, signed-in devices), a first-party
//! client of this server (`protocol::account`). `GET /account` without a valid account
//! cookie starts an authorization request (code + PKCE S256, `state`) for the built-in client;
//! `/account/callback` checks `state` against the flow cookie, redeems the code through the
//! same token exchange apps use, and keeps the access token in an HttpOnly cookie scoped to
//! `/account`. Every page checks that token like userinfo does; every form carries the
//! session-bound CSRF token.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::context;
use subtle::ConstantTimeEq;

use super::authorize::csrf_form;
use super::pages::{error_page, page};
use super::{AppState, client_ip::client_ip, unix_now};
use crate::model::User;
use crate::protocol::account::{self, CALLBACK_PATH, CLIENT_ID, PasswordRefused};
use crate::protocol::params::Params;
use crate::protocol::{dpop, introspect, signins};
use crate::secret;

type State = web::Data<AppState>;

/// How long an account sign-in may take (the flow cookie's life).
const FLOW_TTL: i64 = 600;

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

pub(super) fn redirect(to: &str, cookies: Vec<actix_web::cookie::Cookie<'static>>) -> HttpResponse {
    let mut b = HttpResponse::SeeOther();
    super::pages::secure_headers(&mut b);
    b.insert_header((header::LOCATION, to.to_owned()));
    for c in cookies {
        b.cookie(c);
    }
    b.finish()
}

/// The account page's own access token: revoked when the user signs out everywhere or
/// changes the password (it belongs to no refresh family those revoke).
pub(super) struct PageToken {
    jti: String,
    exp: i64,
}

/// The signed-in user, from the account cookie's access token (checked like at userinfo).
pub(super) async fn signed_in(req: &HttpRequest, state: &AppState) -> Option<User> {
    signed_in_with_token(req, state).await.map(|(u, _)| u)
}

async fn signed_in_with_token(req: &HttpRequest, state: &AppState) -> Option<(User, PageToken)> {
    let (name, _) = state.browser.account_names();
    let token = req.cookie(name)?.value().to_owned();
    let (claims, user) = introspect::authenticate_resource(
        &state.ctx,
        introspect::Presented::Bearer(&token),
        None,
        unix_now(),
        |_| true,
    )
    .await
    .ok()?;
    if claims.client_id != CLIENT_ID {
        return None;
    }
    let user = user.filter(|u| !u.disabled && u.user_id == claims.sub)?;
    Some((
        user,
        PageToken {
            jti: claims.jti,
            exp: claims.exp,
        },
    ))
}

/// Ends the account page's own access: its token revoked, its cookie and the browser session
/// cookie removed.
async fn end_page(state: &AppState, token: PageToken) -> Vec<actix_web::cookie::Cookie<'static>> {
    let revoked = state
        .ctx
        .store
        .blocking(move |s| s.revoke_access_token(&token.jti, token.exp))
        .await;
    if let Err(e) = revoked {
        tracing::error!(error = %e, "account: cannot revoke the page's access token");
    }
    let (name, _) = state.browser.account_names();
    let mut gone = state.browser.cookie(name, String::new(), Some(0));
    gone.set_path("/account");
    gone.make_removal();
    vec![gone, state.browser.session_removal()]
}

/// Starts the account sign-in: an authorization request of the built-in client.
pub(super) fn start_sign_in(state: &AppState) -> HttpResponse {
    let issuer = &state.ctx.config.issuer;
    let flow_state = secret::random_token(16);
    let verifier = secret::new_secret();
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", &format!("{issuer}{CALLBACK_PATH}"))
        .append_pair("scope", "openid")
        .append_pair("state", &flow_state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let (_, flow) = state.browser.account_names();
    let mut cookie = state
        .browser
        .cookie(flow, format!("{flow_state}.{verifier}"), Some(FLOW_TTL));
    cookie.set_path("/account");
    redirect(&format!("/authorize?{}", q.finish()), vec![cookie])
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
    let query = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let (account_name, flow_name) = state.browser.account_names();
    let flow = req.cookie(flow_name).map(|c| c.value().to_owned());
    let refused = |d: &str| {
        error_page(
            &state.templates,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            d,
        )
    };
    let Some((flow_state, verifier)) = flow.as_deref().and_then(|f| f.split_once('.')) else {
        return refused(
            "This sign-in was not started here, or took too long. Open your account page again.",
        );
    };
    let state_ok = query
        .get("state")
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(flow_state.as_bytes())));
    if !state_ok {
        return refused("This sign-in was not started here. Open your account page again.");
    }
    if query.get("error").is_some() {
        return refused("Sign-in was cancelled.");
    }
    let Some(code) = query.get("code") else {
        return refused("The sign-in did not finish. Open your account page again.");
    };
    let issuer = &state.ctx.config.issuer;
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &format!("{issuer}{CALLBACK_PATH}"))
        .append_pair("client_id", CLIENT_ID)
        .append_pair("code_verifier", verifier);
    let params = match Params::parse(form.finish().as_bytes()) {
        Ok(p) => p,
        Err(_) => return refused("The sign-in did not finish. Open your account page again."),
    };
    let seen = super::client_ip::seen(&req);
    let tokens = match crate::protocol::token::exchange(
        &state.ctx,
        Default::default(),
        dpop::Header::Absent,
        params,
        &seen,
        unix_now(),
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(error = %e.code.as_str(), "account sign-in: code refused");
            return refused("The sign-in did not finish. Open your account page again.");
        }
    };
    let mut keep = state.browser.cookie(
        account_name,
        tokens.access_token,
        Some(tokens.expires_in as i64),
    );
    keep.set_path("/account");
    let mut gone = state.browser.cookie(flow_name, String::new(), Some(0));
    gone.set_path("/account");
    gone.make_removal();
    redirect("/account", vec![keep, gone])
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
