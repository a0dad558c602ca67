//! The admin REST API under `/admin/v1/`: thin handlers (authenticate the bearer token, read
//! the JSON body, call `protocol::admin`, answer JSON with `Cache-Control: no-store`). The
//! `#[utoipa::path]` attributes here generate the OpenAPI document (`http::openapi`).

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::openapi::{
    AuditPage, ClientList, ClientMetadata, ErrorResponse, FactorsDoc, FactorsResetDoc,
    GrantsRevokedDoc, InitialAccessToken, InvitationDoc, KeyList, PasskeyRemovedDoc,
    RegistrationTokenList, RegistrationTokenView, RotatedKeys, SecretRotated, SignInsDoc,
    SignedOutDoc, UserList, UserView,
};
use super::{AppState, error, unix_now};
use crate::protocol::admin::{
    self, Admin, AuditParams, NewUserRequest, PasswordRequest, RegistrationTokenRequest,
    RotateKeysRequest,
};
use crate::protocol::error::{OAuthError, OAuthResult};
use crate::protocol::params::Params;
use crate::protocol::registration::ClientMetadataRequest;

pub const ADMIN_PREFIX: &str = "/admin/v1";

/// The bearer token from `Authorization: Bearer …` (RFC 6750 §2.1; never from the query).
pub(super) fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

pub(super) fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    super::client_ip::client_ip(req)
}

/// Reads an `application/json` body of at most [`MAX_BODY`](super::MAX_BODY) bytes; an empty body is `null`.
pub(super) async fn read_json(req: &HttpRequest, payload: web::Payload) -> OAuthResult<Value> {
    let body = super::read_limited(req, payload).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(OAuthError::invalid_request(
            "the body must be application/json",
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|_| OAuthError::invalid_request("the body is not valid JSON"))
}

pub(super) fn json_response(status: StatusCode, v: &Value) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    if status == StatusCode::NO_CONTENT {
        b.finish()
    } else {
        b.json(v)
    }
}

/// Authenticates the admin, then runs `f`; answers `ok` with its JSON, or the error.
async fn guarded<Fut>(
    req: &HttpRequest,
    state: &AppState,
    ok: StatusCode,
    f: impl FnOnce(Admin) -> Fut,
) -> HttpResponse
where
    Fut: Future<Output = OAuthResult<Value>>,
{
    let now = unix_now();
    let token = bearer(req);
    let admin = match admin::authenticate(&state.ctx, token.as_deref(), client_ip(req), now).await {
        Ok(a) => a,
        Err(e) => return error::respond(e),
    };
    match f(admin).await {
        Ok(v) => json_response(ok, &v),
        Err(e) => error::respond(e),
    }
}

type Path = web::Path<String>;
type State = web::Data<AppState>;

// ---- clients ---------------------------------------------------------------------------

/// Register a client. Confidential clients get their secret in this response only.
#[utoipa::path(post, path = "/admin/v1/clients", tag = "clients",
    request_body = ClientMetadataRequest,
    responses(
        (status = 201, description = "Created", body = ClientMetadata),
        (status = 400, description = "`invalid_client_metadata`, `invalid_redirect_uri` or `invalid_request`", body = ErrorResponse),
        (status = 401, description = "No, or an invalid, bearer token (`invalid_token`)", body = ErrorResponse),
        (status = 403, description = "The token lacks `latchkey:admin` (`insufficient_scope`)", body = ErrorResponse),
    ),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn create_client(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (ctx, r) = (&state.ctx, &req);
    guarded(&req, &state, StatusCode::CREATED, |a| async move {
        let v = read_json(r, body).await?;
        admin::create_client(ctx, &a, v, unix_now()).await
    })
    .await
}

/// List every client (never a secret).
#[utoipa::path(get, path = "/admin/v1/clients", tag = "clients",
    responses((status = 200, body = ClientList), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn list_clients(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| admin::list_clients(ctx)).await
}

/// One client's metadata.
#[utoipa::path(get, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = ClientMetadata), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, description = "`not_found`", body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn get_client(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| {
        admin::get_client(ctx, &id)
    })
    .await
}

/// Replace a client's metadata (RFC 7592 semantics: omitted members take their defaults).
/// A confidential client keeps its secret; a client made confidential gets one, shown once.
#[utoipa::path(put, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body = ClientMetadataRequest,
    responses((status = 200, body = ClientMetadata), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn update_client(
    req: HttpRequest,
    id: Path,
    body: web::Payload,
    state: State,
) -> HttpResponse {
    let (ctx, r) = (&state.ctx, &req);
    guarded(&req, &state, StatusCode::OK, |a| async move {
        let v = read_json(r, body).await?;
        admin::update_client(ctx, &a, &id, v, unix_now()).await
    })
    .await
}

/// Delete a client: its registration, consents and unused codes go; its refresh token
/// families are revoked.
#[utoipa::path(delete, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn delete_client(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::NO_CONTENT, |a| async move {
        admin::delete_client(ctx, &a, &id, unix_now()).await?;
        Ok(Value::Null)
    })
    .await
}

/// Disable a client: its credentials stop working at once.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/disable", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = ClientMetadata), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn disable_client(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::set_client_disabled(ctx, &a, &id, true, unix_now()).await
    })
    .await
}

/// Enable a disabled client again.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/enable", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = ClientMetadata), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn enable_client(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::set_client_disabled(ctx, &a, &id, false, unix_now()).await
    })
    .await
}

/// Issue a new secret for a confidential client (shown once); the old one stops working.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/rotate-secret", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = SecretRotated), (status = 400, description = "The client is public", body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn rotate_secret(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::rotate_client_secret(ctx, &a, &id, unix_now()).await
    })
    .await
}

/// Revoke every grant made to a client: refresh token families (and the access tokens
/// descending from them, as introspection and userinfo see them), unused codes, consents.
#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/revoke-grants", tag = "grants",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = GrantsRevokedDoc), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn revoke_client_grants(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::revoke_client_grants(ctx, &a, &id, unix_now()).await
    })
    .await
}

// ---- users -----------------------------------------------------------------------------

/// Create a user.
#[utoipa::path(post, path = "/admin/v1/users", tag = "users",
    request_body = NewUserRequest,
    responses((status = 201, body = UserView), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 409, description = "`conflict`: the username is taken", body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn create_user(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (ctx, r) = (&state.ctx, &req);
    guarded(&req, &state, StatusCode::CREATED, |a| async move {
        let v = read_json(r, body).await?;
        admin::create_user(ctx, &a, v, unix_now()).await
    })
    .await
}

/// List users (never password hashes): all of them, or with `q`, `after` or `limit` one page
/// of a search by username or email (then `next_after` names the next page).
#[utoipa::path(get, path = "/admin/v1/users", tag = "users",
    params(admin::UserSearch),
    responses((status = 200, body = UserList), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn list_users(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| async {
        let q = Params::parse(req.query_string().as_bytes())?;
        if ["q", "after", "limit"].iter().all(|k| q.get(k).is_none()) {
            return admin::list_users(ctx).await;
        }
        let limit = q
            .get("limit")
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| OAuthError::invalid_request("limit must be an integer"))
            })
            .transpose()?;
        let p = admin::UserSearch {
            q: q.get("q").map(str::to_owned),
            after: q.get("after").map(str::to_owned),
            limit,
        };
        admin::search_users(ctx, p).await
    })
    .await
}

/// One user, by `sub`.
#[utoipa::path(get, path = "/admin/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    responses((status = 200, body = UserView), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn get_user(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| admin::get_user(ctx, &id)).await
}

/// Disable a user: no new logins or refreshes.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/disable", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    responses((status = 200, body = UserView), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn disable_user(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::set_user_disabled(ctx, &a, &id, true, unix_now()).await
    })
    .await
}

/// Enable a disabled user again.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/enable", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    responses((status = 200, body = UserView), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn enable_user(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::set_user_disabled(ctx, &a, &id, false, unix_now()).await
    })
    .await
}

/// Set a new password for a user. This also ends every browser session of the user and revokes
/// their refresh token families and unused codes (what the old password may have opened).
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/password", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    request_body = PasswordRequest,
    responses((status = 204, description = "Changed"), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn reset_password(
    req: HttpRequest,
    id: Path,
    body: web::Payload,
    state: State,
) -> HttpResponse {
    let (ctx, r) = (&state.ctx, &req);
    guarded(&req, &state, StatusCode::NO_CONTENT, |a| async move {
        let v = read_json(r, body).await?;
        admin::reset_password(ctx, &a, &id, v, unix_now()).await?;
        Ok(Value::Null)
    })
    .await
}

/// Revoke every grant of a user: refresh token families, unused codes, consents, and browser
/// sessions (the user must sign in again everywhere).
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/revoke-grants", tag = "grants",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    responses((status = 200, body = GrantsRevokedDoc), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn revoke_user_grants(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::revoke_user_grants(ctx, &a, &id, unix_now()).await
    })
    .await
}

/// Where a user is signed in: one entry per app on a device (a live refresh-token family:
/// the app's name, first sign-in, last use, DPoP-bound or not) and per browser session.
#[utoipa::path(get, path = "/admin/v1/users/{user_id}/sessions", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    responses((status = 200, body = SignInsDoc), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn user_sessions(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| async move {
        admin::user_sessions(ctx, &id, unix_now()).await
    })
    .await
}

/// A user's sign-in factors: passkeys (ids, names, added, last used), the authenticator app,
/// recovery codes left. Never a secret.
#[utoipa::path(get, path = "/admin/v1/users/{user_id}/factors", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    responses((status = 200, body = FactorsDoc), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn user_factors(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| async move {
        admin::user_factors(ctx, &id).await
    })
    .await
}

/// Remove every passkey, the authenticator app and the recovery codes of a user (a lost
/// phone). Audited.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/factors/reset", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    responses((status = 200, body = FactorsResetDoc), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn reset_factors(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::reset_factors(ctx, &a, &id, unix_now()).await
    })
    .await
}

/// Remove one passkey of a user. Audited.
#[utoipa::path(delete, path = "/admin/v1/users/{user_id}/passkeys/{credential_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`"),
           ("credential_id" = String, Path, description = "From the user's factors")),
    responses((status = 200, body = PasskeyRemovedDoc), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn remove_passkey(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> HttpResponse {
    let ctx = &state.ctx;
    let (id, cred) = path.into_inner();
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::remove_passkey(ctx, &a, &id, &cred, unix_now()).await
    })
    .await
}

/// A single-use link (valid `invitation_ttl`) where the user creates a passkey: a new user
/// with no password, or after a reset. Audited (not the link).
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/invitation", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    responses((status = 201, body = InvitationDoc), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn invite_user(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::CREATED, |a| async move {
        admin::invite_user(ctx, &a, &id, unix_now()).await
    })
    .await
}

/// Sign a user out: `{"family_id": "..."}` signs one app on one device out (its refresh token,
/// and its access tokens at introspection and userinfo); no body signs the user out
/// everywhere (every family, unused code and browser session; consents stay). Audited.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/signout", tag = "users",
    params(("user_id" = String, Path, description = "The user's `sub`")),
    request_body(content = Option<admin::SignOutRequest>, content_type = "application/json"),
    responses((status = 200, body = SignedOutDoc), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn sign_out_user(
    req: HttpRequest,
    id: Path,
    body: web::Payload,
    state: State,
) -> HttpResponse {
    let (ctx, r) = (&state.ctx, &req);
    guarded(&req, &state, StatusCode::OK, |a| async move {
        let v = read_json(r, body).await?;
        admin::sign_out_user(ctx, &a, &id, v, unix_now()).await
    })
    .await
}

// ---- keys ------------------------------------------------------------------------------

/// Signing keys with their state (`active`, `pending`, `retiring`, `expired`); public data only.
#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn list_keys(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| {
        admin::list_keys(ctx, unix_now())
    })
    .await
}

/// Rotate signing keys: the new key is published at once and signs after `key_publish_ahead`.
#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = "keys",
    request_body(content = RotateKeysRequest, description = "Optional; empty rotates every configured algorithm"),
    responses((status = 200, body = RotatedKeys), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn rotate_keys(req: HttpRequest, body: web::Payload, state: State) -> HttpResponse {
    let (ctx, r) = (&state.ctx, &req);
    guarded(&req, &state, StatusCode::OK, |a| async move {
        let v = read_json(r, body).await?;
        admin::rotate_keys(ctx, &a, v, unix_now()).await
    })
    .await
}

// ---- registration tokens ---------------------------------------------------------------

/// Create an RFC 7591 initial access token (shown once) for `POST /register`.
#[utoipa::path(post, path = "/admin/v1/registration-tokens", tag = "registration",
    request_body(content = RegistrationTokenRequest, description = "Optional"),
    responses((status = 201, body = InitialAccessToken), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn create_registration_token(
    req: HttpRequest,
    body: web::Payload,
    state: State,
) -> HttpResponse {
    let (ctx, r) = (&state.ctx, &req);
    guarded(&req, &state, StatusCode::CREATED, |a| async move {
        let v = read_json(r, body).await?;
        admin::create_registration_token(ctx, &a, v, unix_now()).await
    })
    .await
}

/// Initial access tokens with their state (`active`, `expired`, `used_up`, `revoked`) and use
/// count; never the tokens themselves.
#[utoipa::path(get, path = "/admin/v1/registration-tokens", tag = "registration",
    responses((status = 200, body = RegistrationTokenList), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn list_registration_tokens(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| {
        admin::list_registration_tokens(ctx, unix_now())
    })
    .await
}

/// Revoke an initial access token: `POST /register` refuses it from now on (clients it
/// already registered stay).
#[utoipa::path(post, path = "/admin/v1/registration-tokens/{id}/revoke", tag = "registration",
    params(("id" = String, Path, description = "The token's id, as created or listed")),
    responses((status = 200, body = RegistrationTokenView), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn revoke_registration_token(req: HttpRequest, id: Path, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |a| async move {
        admin::revoke_registration_token(ctx, &a, &id, unix_now()).await
    })
    .await
}

// ---- audit -----------------------------------------------------------------------------

/// Read the audit log, oldest first within the page.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit",
    params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)),
    security(("bearer" = ["latchkey:admin"])))]
pub async fn audit(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = &state.ctx;
    guarded(&req, &state, StatusCode::OK, |_| async {
        let q = Params::parse(req.query_string().as_bytes())?;
        let int = |name: &str| -> OAuthResult<Option<i64>> {
            q.get(name)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        OAuthError::invalid_request(format!("{name} must be an integer"))
                    })
                })
                .transpose()
        };
        let p = AuditParams {
            after: int("after")?,
            limit: int("limit")?,
            event: q.get("event").map(str::to_owned),
            before: int("before")?,
            actor: q.get("actor").map(str::to_owned),
            client: q.get("client").map(str::to_owned),
            since: int("since")?,
            until: int("until")?,
        };
        admin::read_audit(ctx, p).await
    })
    .await
}

/// Anything else under `/admin/v1/`: 401/403 first (no probing without a token), then 404.
pub async fn not_found(req: HttpRequest, state: State) -> HttpResponse {
    guarded(&req, &state, StatusCode::OK, |_| async {
        Err(admin::not_found("no such admin API endpoint or method"))
    })
    .await
}

/// `GET /admin/v1/openapi.json`: the OpenAPI 3 document, generated from this module.
pub async fn openapi() -> HttpResponse {
    match super::openapi::document() {
        Ok(bytes) => HttpResponse::Ok()
            .insert_header(header::ContentType::json())
            .insert_header((
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ))
            .body(bytes),
        Err(e) => error::respond(OAuthError::server_error(e)),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Each resource answers a method it does not have like an unknown path (401 first, then a
    // JSON 404), not with actix's empty 405.
    fn r(path: &str) -> actix_web::Resource {
        web::resource(path).default_service(web::to(not_found))
    }
    cfg.service(
        web::scope(ADMIN_PREFIX)
            .route("/openapi.json", web::get().to(openapi))
            .service(
                r("/clients")
                    .route(web::get().to(list_clients))
                    .route(web::post().to(create_client)),
            )
            .service(
                r("/clients/{client_id}")
                    .route(web::get().to(get_client))
                    .route(web::put().to(update_client))
                    .route(web::delete().to(delete_client)),
            )
            .service(r("/clients/{client_id}/disable").route(web::post().to(disable_client)))
            .service(r("/clients/{client_id}/enable").route(web::post().to(enable_client)))
            .service(r("/clients/{client_id}/rotate-secret").route(web::post().to(rotate_secret)))
            .service(
                r("/clients/{client_id}/revoke-grants").route(web::post().to(revoke_client_grants)),
            )
            .service(
                r("/users")
                    .route(web::get().to(list_users))
                    .route(web::post().to(create_user)),
            )
            .service(r("/users/{user_id}").route(web::get().to(get_user)))
            .service(r("/users/{user_id}/disable").route(web::post().to(disable_user)))
            .service(r("/users/{user_id}/enable").route(web::post().to(enable_user)))
            .service(r("/users/{user_id}/password").route(web::post().to(reset_password)))
            .service(r("/users/{user_id}/revoke-grants").route(web::post().to(revoke_user_grants)))
            .service(r("/users/{user_id}/sessions").route(web::get().to(user_sessions)))
            .service(r("/users/{user_id}/signout").route(web::post().to(sign_out_user)))
            .service(r("/users/{user_id}/factors").route(web::get().to(user_factors)))
            .service(r("/users/{user_id}/factors/reset").route(web::post().to(reset_factors)))
            .service(
                r("/users/{user_id}/passkeys/{credential_id}")
                    .route(web::delete().to(remove_passkey)),
            )
            .service(r("/users/{user_id}/invitation").route(web::post().to(invite_user)))
            .service(r("/keys").route(web::get().to(list_keys)))
            .service(r("/keys/rotate").route(web::post().to(rotate_keys)))
            .service(
                r("/registration-tokens")
                    .route(web::get().to(list_registration_tokens))
                    .route(web::post().to(create_registration_token)),
            )
            .service(
                r("/registration-tokens/{id}/revoke")
                    .route(web::post().to(revoke_registration_token)),
            )
            .service(r("/audit").route(web::get().to(audit)))
            .default_service(web::to(not_found)),
    );
}
