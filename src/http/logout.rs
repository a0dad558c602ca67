//! `GET|POST /end_session` (OIDC RP-Initiated Logout 1.0).
//!
//! Who may sign a user out without asking (issue 18 finding 7): a relying party presenting an
//! `id_token_hint` that this server signed (expired is fine, a forged or unsigned one is not)
//! for the user signed in here; only then is the browser sent to a
//! `post_logout_redirect_uri` registered for the hint's client. Any other request (a
//! cross-site link, a forged hint, a hint for another user) gets a confirmation page whose
//! form carries the CSRF token, and ends on the signed-out page: no redirect.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use super::authorize::redirect;
use super::pages::{error_page, page};
use super::{AppState, read_form_body, unix_now};
use crate::keys::IdTokenHint;
use crate::protocol::discovery::END_SESSION_PATH;
use crate::protocol::login;
use crate::protocol::params::Params;
use crate::secret;

pub async fn end_session_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match Params::parse(req.query_string().as_bytes()) {
        Ok(p) => end_session(&req, &state, p).await,
        Err(e) => error_page(
            &state.templates,
            StatusCode::BAD_REQUEST,
            e.code.as_str(),
            &e.description,
        ),
    }
}

/// A relying party's form POST (same parameters as GET), or our own confirmation form.
pub async fn end_session_post(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form = match read_form_body(&req, body)
        .await
        .and_then(|b| Params::parse(&b))
    {
        Ok(f) => f,
        Err(e) => {
            return error_page(
                &state.templates,
                StatusCode::BAD_REQUEST,
                e.code.as_str(),
                &e.description,
            );
        }
    };
    if form.get("confirm").is_none() {
        return end_session(&req, &state, form).await;
    }
    if !state.browser.csrf_ok(&req, form.get("csrf")) {
        return error_page(
            &state.templates,
            StatusCode::FORBIDDEN,
            "invalid_request",
            "The form expired or was not sent by this site (CSRF check failed).",
        );
    }
    sign_out(&req, &state).await;
    signed_out(&state)
}

async fn end_session(req: &HttpRequest, state: &AppState, params: Params) -> HttpResponse {
    let ctx = &state.ctx;
    let hint: Option<IdTokenHint> = params
        .get("id_token_hint")
        .and_then(|t| ctx.keys.verify_id_token_hint(t, &ctx.config.issuer).ok())
        // §2: a client_id that is not the hint's audience makes the hint worthless.
        .filter(|h| {
            params
                .get("client_id")
                .is_none_or(|c| h.aud.iter().any(|a| a == c))
        });
    let client_id = hint
        .as_ref()
        .and_then(|h| h.aud.first().cloned())
        .or_else(|| params.get("client_id").map(str::to_owned));
    // An unregistered post_logout_redirect_uri is an error whoever asks (never an open redirect).
    let mut target = None;
    if let (Some(uri), Some(cid)) = (params.get("post_logout_redirect_uri"), &client_id) {
        let client = ctx.store.request_client(cid).await.ok().flatten();
        match client {
            Some(c) if !c.disabled && c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                target = url::Url::parse(uri).ok();
            }
            _ => {
                return error_page(
                    &state.templates,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "post_logout_redirect_uri is not registered for this client.",
                );
            }
        }
    }
    let now = unix_now();
    let current = match login::current_session(ctx, state.browser.session(req), now).await {
        Ok(s) => s,
        Err(_) => {
            return error_page(
                &state.templates,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Sign-out is unavailable right now; try again shortly.",
            );
        }
    };
    let hinted = hint
        .as_ref()
        .is_some_and(|h| current.as_ref().is_none_or(|(s, _)| s.user_id == h.sub));
    if hinted {
        sign_out(req, state).await;
        if let Some(mut u) = target {
            if let Some(st) = params.get("state") {
                u.query_pairs_mut().append_pair("state", st);
            }
            return redirect(u.as_str(), vec![removal(state)]);
        }
        return signed_out(state);
    }
    match current {
        // Nothing to end; and no redirect without a hint.
        None => signed_out(state),
        Some((_, user)) => {
            let (csrf, set) = state.browser.csrf_token(req, None);
            page(
                &state.templates,
                StatusCode::OK,
                "logout_confirm.html",
                context! { username => user.username, csrf, action => END_SESSION_PATH },
                set.into_iter().collect(),
            )
        }
    }
}

/// Deletes this browser's session (if any) from the store, and queues the back-channel
/// logout notices of the clients that signed in through it.
async fn sign_out(req: &HttpRequest, state: &AppState) {
    if let Some(v) = state.browser.session(req) {
        let h = secret::hash_token(&v);
        let now = unix_now();
        let ended = state
            .ctx
            .store
            .blocking(move |s| {
                let session = s.session(&h, now)?;
                s.delete_session(&h)?;
                Ok(session)
            })
            .await;
        if let Ok(Some(session)) = ended {
            let what = crate::store::SignedOut::Session {
                user_id: session.user_id,
                sid: session.sid,
            };
            crate::protocol::backchannel::signed_out(&state.ctx, what, now).await;
        }
    }
}

fn removal(state: &AppState) -> actix_web::cookie::Cookie<'static> {
    state.browser.session_removal()
}

fn signed_out(state: &AppState) -> HttpResponse {
    page(
        &state.templates,
        StatusCode::OK,
        "logged_out.html",
        context! {},
        vec![removal(state)],
    )
}
