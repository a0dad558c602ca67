//! The console's users: paged search by username or email, create (with a password, or with
//! an invitation link to create a passkey), and a user's page: disable/enable, reset the
//! password, signed-in apps and browsers (sign one out, or everywhere), revoke grants, their
//! sign-in factors (remove a passkey, reset all), a new invitation. Every change goes through
//! `protocol::admin`, like `/admin/v1/users`.

use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde_json::{Value, json};

use super::{Signed, State, admin_form, admin_user, failed, query, render, value};
use crate::http::client_ip::client_ip;
use crate::http::{AppState, unix_now};
use crate::protocol::admin;
use crate::protocol::console;
use crate::protocol::error::OAuthError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/users", web::get().to(list))
        .route("/console/users", web::post().to(create))
        .route("/console/users/new", web::get().to(new_user))
        .route("/console/users/{user_id}", web::get().to(show))
        .route("/console/users/{user_id}/{action}", web::post().to(action));
}

const PAGE: i64 = 50;

async fn list(req: HttpRequest, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query(&req);
    let (text, after) = (q.get("q").unwrap_or("").trim(), q.get("after"));
    let search = admin::UserSearch {
        q: Some(text.to_owned()),
        after: after.map(str::to_owned),
        limit: Some(PAGE),
    };
    let page = match admin::search_users(&state.ctx, search).await {
        Ok(p) => p,
        Err(e) => return failed(&state, &e),
    };
    render(
        &req,
        &state,
        &signed,
        "console_users.html",
        "users",
        context! {
            users => value(&page["users"]),
            next_after => page["next_after"].as_str(),
            q => text,
            paged => after.is_some(),
        },
    )
}

async fn new_user(req: HttpRequest, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    render(
        &req,
        &state,
        &signed,
        "console_user_new.html",
        "users",
        context! { passkeys => state.ctx.passkeys.enabled() },
    )
}

/// A user's page: profile, factors, where they are signed in.
async fn user_page(
    req: &HttpRequest,
    state: &AppState,
    signed: &Signed,
    user_id: &str,
    notice: Option<&str>,
    invitation: Option<&Value>,
) -> HttpResponse {
    let (ctx, now) = (&state.ctx, unix_now());
    let loaded = async {
        let user = admin::get_user(ctx, user_id).await?;
        let factors = admin::user_factors(ctx, user_id).await?;
        let signins = admin::user_sessions(ctx, user_id, now).await?;
        Ok::<_, OAuthError>((user, factors, signins))
    };
    let (user, factors, signins) = match loaded.await {
        Ok(x) => x,
        Err(e) => return failed(state, &e),
    };
    render(
        req,
        state,
        signed,
        "console_user.html",
        "users",
        context! {
            user => value(&user),
            factors => value(&factors),
            signins => value(&signins),
            notice,
            invitation => invitation.map(value),
            is_self => user_id == signed.user.user_id,
            now,
        },
    )
}

async fn show(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    user_page(&req, &state, &signed, &path.into_inner(), None, None).await
}

async fn create(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (signed, form) = match admin_form(&req, body, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let opt = |k: &str| {
        form.get(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let invite = form.get("with") != Some("password");
    // Checked before the user is made (admin::invite_user checks it again), so that a refused
    // invitation leaves no user without a way in.
    if invite && !state.ctx.passkeys.enabled() {
        return failed(
            &state,
            &OAuthError::invalid_request(crate::protocol::login::invite::PASSKEYS_OFF),
        );
    }
    let mut body = json!({
        "username": form.get("username").unwrap_or("").trim(),
        "email": opt("email"),
        "name": opt("name"),
    });
    if !invite {
        // As typed: a password's spaces are part of it.
        body["password"] = json!(form.get("password").unwrap_or(""));
    }
    let (ctx, now) = (&state.ctx, unix_now());
    let a = console::admin(&signed.user, client_ip(&req));
    let user = match admin::create_user(ctx, &a, body, now).await {
        Ok(u) => u,
        Err(e) => return failed(&state, &e),
    };
    let id = user["sub"].as_str().unwrap_or("").to_owned();
    if !invite {
        return user_page(&req, &state, &signed, &id, Some("User created."), None).await;
    }
    match admin::invite_user(ctx, &a, &id, now).await {
        Ok(inv) => {
            user_page(
                &req,
                &state,
                &signed,
                &id,
                Some("User created, with no password: send them the link to create a passkey."),
                Some(&inv),
            )
            .await
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
    let (user_id, action) = path.into_inner();
    let (ctx, now) = (&state.ctx, unix_now());
    let a = console::admin(&signed.user, client_ip(&req));
    let is_self = user_id == signed.user.user_id;
    if is_self
        && matches!(
            action.as_str(),
            "disable" | "signout-everywhere" | "reset-factors"
        )
    {
        return failed(
            &state,
            &OAuthError::invalid_request(
                "not on your own account here: another admin can, or use the command line",
            ),
        );
    }
    let done = match action.as_str() {
        "disable" => admin::set_user_disabled(ctx, &a, &user_id, true, now)
            .await
            .map(|_| "User disabled: their sign-ins and refresh tokens stop working."),
        "enable" => admin::set_user_disabled(ctx, &a, &user_id, false, now)
            .await
            .map(|_| "User enabled."),
        "password" => {
            let body = json!({ "password": form.get("password").unwrap_or("") });
            admin::reset_password(ctx, &a, &user_id, body, now)
                .await
                .map(|()| "Password changed. Tell the user through a channel you trust.")
        }
        "revoke-grants" => admin::revoke_user_grants(ctx, &a, &user_id, now)
            .await
            .map(|_| "Every refresh token and code of this user was revoked."),
        "signout" => {
            let body = match form.get("family_id") {
                Some(f) => json!({ "family_id": f }),
                None => return failed(&state, &OAuthError::invalid_request("name the app")),
            };
            admin::sign_out_user(ctx, &a, &user_id, body, now)
                .await
                .map(|_| "Signed out of that app on that device.")
        }
        "signout-everywhere" => admin::sign_out_user(ctx, &a, &user_id, Value::Null, now)
            .await
            .map(|_| "Signed out everywhere: every app and browser signs in again."),
        "remove-passkey" => {
            let Some(id) = form.get("credential_id") else {
                return failed(&state, &OAuthError::invalid_request("name the passkey"));
            };
            admin::remove_passkey(ctx, &a, &user_id, id, now)
                .await
                .map(|_| "Passkey removed.")
        }
        "reset-factors" => admin::reset_factors(ctx, &a, &user_id, now)
            .await
            .map(|_| "Passkeys, authenticator app and recovery codes removed."),
        "invite" => match admin::invite_user(ctx, &a, &user_id, now).await {
            Ok(inv) => {
                return user_page(
                    &req,
                    &state,
                    &signed,
                    &user_id,
                    Some("A new link: it works once."),
                    Some(&inv),
                )
                .await;
            }
            Err(e) => Err(e),
        },
        _ => Err(admin::not_found("no such action")),
    };
    match done {
        Ok(notice) => user_page(&req, &state, &signed, &user_id, Some(notice), None).await,
        Err(e) => failed(&state, &e),
    }
}
