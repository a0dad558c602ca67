//! The account page's sign-in factors: passkeys (add, name, list, remove), the authenticator
//! app (enrol with a QR code and one code, remove) and recovery codes (shown once, renewed);
//! and the invitation pages (`/invite/{token}`) where a user without a password creates a
//! first passkey. The rules are in `protocol::login::{passkey, totp, invite}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use super::account::{action, render, signed_in, start_sign_in};
use super::authorize::csrf_form;
use super::pages::{error_page, page};
use super::{AppState, client_ip::client_ip, unix_now};
use crate::model::User;
use crate::protocol::audit::{self, event};
use crate::protocol::login::invite;
use crate::protocol::login::passkey::{self, PasskeyError};
use crate::protocol::login::totp::{self, TotpRefused};

type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/account/passkeys", web::post().to(add_passkey))
        .route("/account/passkeys/remove", web::post().to(remove_passkey))
        .route("/account/totp", web::get().to(totp_page))
        .route("/account/totp", web::post().to(totp_confirm))
        .route("/account/totp/remove", web::post().to(totp_remove))
        .route("/account/recovery-codes", web::post().to(recovery_codes))
        .route("/invite/{token}", web::get().to(invite_page))
        .route("/invite/{token}", web::post().to(invite_post));
}

/// What the account page shows about factors, and the passkey registration challenge.
pub(super) async fn view(state: &AppState, user: &User, now: i64) -> minijinja::Value {
    let id = user.user_id.clone();
    let factors = match state.ctx.store.blocking(move |s| s.factors(&id)).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "account page: cannot read factors");
            return context! {};
        }
    };
    let passkeys: Vec<minijinja::Value> = factors
        .passkeys
        .iter()
        .map(|p| {
            context! {
                credential_id => p.credential_id.clone(),
                name => p.name.clone(),
                created_at => p.created_at,
                last_used_at => p.last_used_at,
            }
        })
        .collect();
    let register = if state.ctx.passkeys.enabled() {
        passkey::start_registration(&state.ctx, user, now)
            .await
            .ok()
    } else {
        None
    };
    context! {
        passkeys,
        passkeys_enabled => state.ctx.passkeys.enabled(),
        register_options => register.as_ref().map(|c| c.options.to_string()),
        register_ceremony => register.map(|c| c.ceremony),
        totp_enrolled => factors.totp.is_some(),
        recovery_codes_left => factors.recovery_codes_left,
    }
}

fn unavailable(state: &AppState) -> HttpResponse {
    error_page(
        &state.templates,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "Try again in a moment.",
    )
}

fn passkey_message(e: &PasskeyError) -> &'static str {
    match e {
        PasskeyError::Off => "Passkeys are not available on this server.",
        PasskeyError::Refused(why) => why,
        PasskeyError::Unavailable => "The passkey could not be saved. Try again.",
    }
}

async fn add_passkey(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, _, form) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    let result = passkey::finish_registration(
        &state.ctx,
        &user,
        form.get("ceremony").unwrap_or(""),
        form.get("credential").unwrap_or(""),
        form.get("name").unwrap_or(""),
        now,
    )
    .await;
    match result {
        Ok(row) => {
            audit::user_action(
                &state.ctx,
                &user,
                event::PASSKEY_ADDED,
                serde_json::json!({ "credential_id": row.credential_id, "name": row.name }),
                now,
            )
            .await;
            render(
                &req,
                &state,
                &user,
                Some(("ok", "Passkey added.")),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            let status = match e {
                PasskeyError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            render(
                &req,
                &state,
                &user,
                Some(("error", passkey_message(&e))),
                status,
            )
            .await
        }
    }
}

async fn remove_passkey(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, _, form) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    let (id, cred) = (
        user.user_id.clone(),
        form.get("credential_id").unwrap_or("").to_owned(),
    );
    let c2 = cred.clone();
    match state
        .ctx
        .store
        .write(move |s| s.delete_passkey(&id, &c2))
        .await
    {
        Ok(true) => {
            audit::user_action(
                &state.ctx,
                &user,
                event::PASSKEY_REMOVED,
                serde_json::json!({ "credential_id": cred }),
                now,
            )
            .await;
            render(
                &req,
                &state,
                &user,
                Some(("ok", "Passkey removed.")),
                StatusCode::OK,
            )
            .await
        }
        Ok(false) => {
            render(
                &req,
                &state,
                &user,
                Some(("error", "You have no such passkey.")),
                StatusCode::NOT_FOUND,
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "account: passkey removal failed");
            render(
                &req,
                &state,
                &user,
                Some(("error", "The passkey could not be removed. Try again.")),
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .await
        }
    }
}

fn enrol_page(
    req: &HttpRequest,
    state: &AppState,
    user: &User,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let e = match totp::start_enrolment(&state.ctx, user, unix_now()) {
        Ok(e) => e,
        Err(_) => {
            return unavailable(state);
        }
    };
    let (csrf, cookie) = state.browser.csrf_token(req, None);
    page(
        &state.templates,
        status,
        "totp_enrol.html",
        context! {
            csrf,
            qr_svg => minijinja::Value::from_safe_string(e.qr_svg),
            secret => e.secret_base32,
            otpauth_url => e.otpauth_url,
            sealed => e.sealed,
            error,
        },
        cookie.into_iter().collect(),
    )
}

async fn totp_page(req: HttpRequest, state: State) -> HttpResponse {
    match signed_in(&req, &state).await {
        Some(user) => enrol_page(&req, &state, &user, None, StatusCode::OK),
        None => start_sign_in(&state),
    }
}

fn codes_page(state: &AppState, heading: &str, codes: Vec<String>) -> HttpResponse {
    page(
        &state.templates,
        StatusCode::OK,
        "totp_enrol.html",
        context! { heading, codes },
        vec![],
    )
}

async fn totp_confirm(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, _, form) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    let result = totp::confirm_enrolment(
        &state.ctx,
        &state.throttle,
        &user,
        form.get("sealed").unwrap_or(""),
        form.get("code").unwrap_or(""),
        client_ip(&req),
        now,
    )
    .await;
    match result {
        Ok(codes) => {
            audit::user_action(
                &state.ctx,
                &user,
                event::TOTP_ENROLLED,
                serde_json::json!({}),
                now,
            )
            .await;
            codes_page(&state, "Two-step sign-in is on", codes)
        }
        Err(TotpRefused::Wrong | TotpRefused::Replayed) => enrol_page(
            &req,
            &state,
            &user,
            Some("That code is not right. Scan the new QR code and enter the code it shows."),
            StatusCode::BAD_REQUEST,
        ),
        Err(TotpRefused::Throttled(secs)) => enrol_page(
            &req,
            &state,
            &user,
            Some(&format!("Too many attempts. Wait {secs} seconds.")),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(TotpRefused::Expired | TotpRefused::NotEnrolled) => enrol_page(
            &req,
            &state,
            &user,
            Some("The page expired. Scan the new QR code."),
            StatusCode::BAD_REQUEST,
        ),
        Err(TotpRefused::Unavailable) => unavailable(&state),
    }
}

async fn totp_remove(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, _, _) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    let id = user.user_id.clone();
    match state.ctx.store.write(move |s| s.delete_totp(&id)).await {
        Ok(removed) => {
            if removed {
                audit::user_action(
                    &state.ctx,
                    &user,
                    event::TOTP_REMOVED,
                    serde_json::json!({}),
                    now,
                )
                .await;
            }
            render(
                &req,
                &state,
                &user,
                Some(("ok", "Two-step sign-in with an authenticator app is off.")),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "account: totp removal failed");
            render(
                &req,
                &state,
                &user,
                Some(("error", "Could not turn it off. Try again.")),
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .await
        }
    }
}

async fn recovery_codes(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (user, _, _) = match action(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    let id = user.user_id.clone();
    let enrolled = state.ctx.store.blocking(move |s| s.totp(&id)).await;
    if !matches!(enrolled, Ok(Some(_))) {
        return render(
            &req,
            &state,
            &user,
            Some((
                "error",
                "Recovery codes come with an authenticator app: set one up first.",
            )),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    match totp::regenerate_recovery_codes(&state.ctx, &user, now).await {
        Ok(codes) => {
            audit::user_action(
                &state.ctx,
                &user,
                event::RECOVERY_CODES_RENEWED,
                serde_json::json!({}),
                now,
            )
            .await;
            codes_page(&state, "New recovery codes", codes)
        }
        Err(_) => unavailable(&state),
    }
}

// ---- invitations ---------------------------------------------------------------------------

fn invitation_gone(state: &AppState) -> HttpResponse {
    error_page(
        &state.templates,
        StatusCode::NOT_FOUND,
        "invalid_request",
        "This invitation link was used already, expired, or is not right. Ask for a new one.",
    )
}

async fn invite_page_for(
    req: &HttpRequest,
    state: &AppState,
    user: &User,
    token: &str,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let challenge = match passkey::start_registration(&state.ctx, user, unix_now()).await {
        Ok(c) => c,
        Err(e) => {
            return error_page(
                &state.templates,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                passkey_message(&e),
            );
        }
    };
    let (csrf, cookie) = state.browser.csrf_token(req, None);
    page(
        &state.templates,
        status,
        "invite.html",
        context! {
            csrf,
            username => user.username.clone(),
            action => format!("{}/{token}", invite::PATH),
            register_options => challenge.options.to_string(),
            register_ceremony => challenge.ceremony,
            error,
        },
        cookie.into_iter().collect(),
    )
}

async fn invite_page(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    let token = path.into_inner();
    match invite::find(&state.ctx, &token, unix_now()).await {
        Ok(Some(user)) => invite_page_for(&req, &state, &user, &token, None, StatusCode::OK).await,
        Ok(None) => invitation_gone(&state),
        Err(_) => unavailable(&state),
    }
}

async fn invite_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    state: State,
) -> HttpResponse {
    let token = path.into_inner();
    let form = match csrf_form(&req, body, &state).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let now = unix_now();
    let user = match invite::find(&state.ctx, &token, now).await {
        Ok(Some(u)) => u,
        Ok(None) => return invitation_gone(&state),
        Err(_) => {
            return unavailable(&state);
        }
    };
    let row = match passkey::finish_registration(
        &state.ctx,
        &user,
        form.get("ceremony").unwrap_or(""),
        form.get("credential").unwrap_or(""),
        form.get("name").unwrap_or(""),
        now,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            return invite_page_for(
                &req,
                &state,
                &user,
                &token,
                Some(passkey_message(&e)),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    // Single use: a second registration through the same link (a race) is undone.
    match invite::take(&state.ctx, &token, &user.user_id, now).await {
        Ok(true) => {}
        other => {
            let (id, cred) = (user.user_id.clone(), row.credential_id.clone());
            let _ = state
                .ctx
                .store
                .write(move |s| s.delete_passkey(&id, &cred))
                .await;
            return match other {
                Ok(_) => invitation_gone(&state),
                Err(_) => unavailable(&state),
            };
        }
    }
    audit::user_action(
        &state.ctx,
        &user,
        event::PASSKEY_ADDED,
        serde_json::json!({ "credential_id": row.credential_id, "name": row.name, "via": "invitation" }),
        now,
    )
    .await;
    page(
        &state.templates,
        StatusCode::OK,
        "device_done.html",
        context! { heading => "Your passkey is ready", message => format!("{}, you can now sign in to your apps with this passkey: choose \"Sign in with a passkey\".", user.username) },
        vec![],
    )
}
