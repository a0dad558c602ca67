//! The admin API's decisions: who may call it (a live access token of an admin client, with
//! scope `latchkey:admin`, audience = the issuer), and each operation, audited. HTTP shapes
//! live in `http::admin`; SQL in `store`.
//!
//! Admin tokens: `latchkey client add --admin` makes a confidential client_credentials client
//! holding `latchkey:admin`; its client_credentials token carries `aud` = the issuer (the
//! authorization server is the resource here; an admin client with other audiences must
//! register the issuer as one of them and request it with `resource`). A token for any other
//! audience is refused, so a resource server that receives an admin client's token cannot
//! replay it here.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::Ctx;
use super::audit::{self, Actor, event};
use super::clients::{self, ADMIN_SCOPE};
use super::error::{AuthScheme, ErrorCode, OAuthError, OAuthResult};
use super::registration::{self, ClientMetadataRequest, Registrar};
use crate::config::SigningAlg;
use crate::model::{Client, ClientType, User};
use crate::secret;
use crate::store::SignedOut;
use crate::store::{AuditQuery, StoreError};

/// The caller of an admin operation: an admin client, from an address.
#[derive(Debug, Clone)]
pub struct Admin {
    pub client_id: String,
    pub ip: Option<IpAddr>,
    /// The human admin acting through the console (`protocol::console`); `None` for an admin
    /// client's own token at `/admin/v1`.
    pub user: Option<String>,
}

impl Admin {
    fn actor(&self) -> Actor {
        match &self.user {
            Some(name) => Actor::Admin(format!("{}/user:{name}", self.client_id)),
            None => Actor::Admin(self.client_id.clone()),
        }
    }
}

fn bearer(code: ErrorCode, d: &'static str) -> OAuthError {
    OAuthError::new(code, d)
        .with_challenge(Some(AuthScheme::Bearer))
        .with_required_scope(ADMIN_SCOPE)
}

pub fn not_found(what: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::NotFound, what)
}

/// RFC 6750: no token → 401 with a bare challenge; a bad, expired, revoked or foreign token →
/// 401 `invalid_token`; a good token without `latchkey:admin` (or not an admin client's own
/// token) → 403 `insufficient_scope`, which is audited.
pub async fn authenticate(
    ctx: &Ctx,
    token: Option<&str>,
    ip: Option<IpAddr>,
    now: i64,
) -> OAuthResult<Admin> {
    let Some(token) = token else {
        return Err(OAuthError::new(
            ErrorCode::InvalidToken,
            "a bearer access token with scope latchkey:admin is required",
        )
        .with_challenge(Some(AuthScheme::BearerNoCredentials))
        .with_required_scope(ADMIN_SCOPE));
    };
    let invalid = || {
        bearer(
            ErrorCode::InvalidToken,
            "the access token is invalid, expired or revoked",
        )
    };
    let claims = ctx
        .keys
        .verify_access_token(token, &ctx.config.issuer, now)
        .map_err(|why| invalid().with_cause(why))?;
    if claims.exp <= now {
        return Err(invalid().with_cause("expired"));
    }
    let (jti, fam, cid) = (
        claims.jti.clone(),
        claims.family_id().map(str::to_owned),
        claims.client_id.clone(),
    );
    let (revoked, client) = ctx
        .store
        .read(move |s| {
            Ok((
                s.access_token_revoked(&jti, fam.as_deref())?,
                s.client(&cid)?,
            ))
        })
        .await?;
    if revoked {
        return Err(invalid().with_cause("revoked"));
    }
    let Some(client) = client.filter(|c| !c.disabled) else {
        return Err(invalid().with_cause("client unknown or disabled"));
    };
    // Only an admin client's own (client_credentials) token: not a user's token that happens
    // to carry the scope.
    if !claims.has_scope(ADMIN_SCOPE) || !client.is_admin || !claims.is_client_token() {
        audit::admin_denied(ctx, &client.client_id, ip, "insufficient_scope", now).await;
        return Err(bearer(
            ErrorCode::InsufficientScope,
            "the access token does not carry the latchkey:admin scope",
        ));
    }
    let for_us = match &claims.aud {
        Value::String(a) => *a == ctx.config.issuer,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(&ctx.config.issuer)),
        _ => false,
    };
    if !for_us {
        return Err(bearer(
            ErrorCode::InvalidToken,
            "the access token is not for this server: its audience must be the issuer",
        ));
    }
    Ok(Admin {
        client_id: client.client_id,
        ip,
        user: None,
    })
}

async fn record(ctx: &Ctx, admin: &Admin, ev: &str, target: String, details: Value, now: i64) {
    let e = audit::entry(
        ev,
        &admin.actor(),
        admin.ip,
        Some(target),
        audit::SUCCESS,
        details,
        now,
    );
    audit::record(ctx, e).await;
}

fn parse<T: serde::de::DeserializeOwned>(body: Value) -> OAuthResult<T> {
    if !body.is_object() {
        return Err(OAuthError::invalid_request(
            "the body must be a JSON object",
        ));
    }
    serde_json::from_value(body).map_err(|e| {
        OAuthError::invalid_request(format!(
            "invalid request body: {}",
            registration::serde_message(&e)
        ))
    })
}

// ---- clients ---------------------------------------------------------------------------

/// The client's metadata with its secret, shown once.
fn with_secret(c: &Client, secret: Option<&str>) -> Value {
    let mut v = clients::metadata(c);
    if c.client_type == ClientType::Confidential {
        v["client_secret"] = json!(secret);
        v["client_secret_expires_at"] = json!(0);
    }
    v
}

async fn load_client(ctx: &Ctx, client_id: &str) -> OAuthResult<Client> {
    let id = client_id.to_owned();
    ctx.store
        .blocking(move |s| s.client(&id))
        .await?
        .ok_or_else(|| not_found("no such client"))
}

pub async fn create_client(ctx: &Ctx, admin: &Admin, body: Value, now: i64) -> OAuthResult<Value> {
    let req = ClientMetadataRequest::from_json(body)?;
    let new = req.create(Registrar::Admin, now)?;
    let c = new.client.clone();
    ctx.store.blocking(move |s| s.insert_client(&c)).await?;
    let c = &new.client;
    record(
        ctx,
        admin,
        event::CLIENT_CREATED,
        format!("client:{}", c.client_id),
        json!({ "client_name": c.client_name, "client_type": c.client_type.as_str(), "grant_types": clients::metadata(c)["grant_types"] }),
        now,
    )
    .await;
    Ok(with_secret(c, new.secret.as_deref()))
}

pub async fn list_clients(ctx: &Ctx) -> OAuthResult<Value> {
    let all = ctx.store.blocking(|s| s.clients()).await?;
    Ok(json!({ "clients": all.iter().map(clients::metadata).collect::<Vec<_>>() }))
}

pub async fn get_client(ctx: &Ctx, client_id: &str) -> OAuthResult<Value> {
    Ok(clients::metadata(&load_client(ctx, client_id).await?))
}

pub async fn update_client(
    ctx: &Ctx,
    admin: &Admin,
    client_id: &str,
    body: Value,
    now: i64,
) -> OAuthResult<Value> {
    let existing = load_client(ctx, client_id).await?;
    let req = ClientMetadataRequest::from_json(body)?;
    let new = req.update(&existing, Registrar::Admin, now)?;
    let c = new.client.clone();
    if !ctx.store.blocking(move |s| s.replace_client(&c)).await? {
        return Err(not_found("no such client"));
    }
    record(
        ctx,
        admin,
        event::CLIENT_UPDATED,
        format!("client:{client_id}"),
        json!({ "client_type": new.client.client_type.as_str() }),
        now,
    )
    .await;
    Ok(match new.secret {
        Some(s) => with_secret(&new.client, Some(&s)),
        None => clients::metadata(&new.client),
    })
}

pub async fn set_client_disabled(
    ctx: &Ctx,
    admin: &Admin,
    client_id: &str,
    disabled: bool,
    now: i64,
) -> OAuthResult<Value> {
    let id = client_id.to_owned();
    if !ctx
        .store
        .blocking(move |s| s.set_client_disabled(&id, disabled, now))
        .await?
    {
        return Err(not_found("no such client"));
    }
    let ev = if disabled {
        event::CLIENT_DISABLED
    } else {
        event::CLIENT_ENABLED
    };
    record(
        ctx,
        admin,
        ev,
        format!("client:{client_id}"),
        json!({}),
        now,
    )
    .await;
    get_client(ctx, client_id).await
}

pub async fn rotate_client_secret(
    ctx: &Ctx,
    admin: &Admin,
    client_id: &str,
    now: i64,
) -> OAuthResult<Value> {
    let c = load_client(ctx, client_id).await?;
    if c.client_type != ClientType::Confidential {
        return Err(OAuthError::invalid_request(
            "the client is public: it has no secret",
        ));
    }
    if c.has_keys() {
        return Err(OAuthError::invalid_request(
            "the client authenticates with its keys (private_key_jwt): it has no secret",
        ));
    }
    let new_secret = secret::new_secret();
    let (id, hash) = (client_id.to_owned(), secret::hash_token(&new_secret));
    if !ctx
        .store
        .blocking(move |s| s.set_client_secret_hash(&id, &hash, now))
        .await?
    {
        return Err(not_found("no such client"));
    }
    record(
        ctx,
        admin,
        event::CLIENT_SECRET_ROTATED,
        format!("client:{client_id}"),
        json!({}),
        now,
    )
    .await;
    Ok(
        json!({ "client_id": client_id, "client_secret": new_secret, "client_secret_expires_at": 0 }),
    )
}

pub async fn delete_client(ctx: &Ctx, admin: &Admin, client_id: &str, now: i64) -> OAuthResult<()> {
    if client_id == admin.client_id {
        return Err(OAuthError::invalid_request(
            "an admin client cannot delete itself",
        ));
    }
    let id = client_id.to_owned();
    if !ctx
        .store
        .blocking(move |s| s.delete_client(&id, now))
        .await?
    {
        return Err(not_found("no such client"));
    }
    record(
        ctx,
        admin,
        event::CLIENT_DELETED,
        format!("client:{client_id}"),
        json!({}),
        now,
    )
    .await;
    Ok(())
}

pub async fn revoke_client_grants(
    ctx: &Ctx,
    admin: &Admin,
    client_id: &str,
    now: i64,
) -> OAuthResult<Value> {
    load_client(ctx, client_id).await?;
    let id = client_id.to_owned();
    let r = ctx
        .store
        .blocking(move |s| s.revoke_client_grants(&id, now))
        .await?;
    let v = serde_json::to_value(r).map_err(OAuthError::server_error)?;
    record(
        ctx,
        admin,
        event::GRANTS_REVOKED,
        format!("client:{client_id}"),
        v.clone(),
        now,
    )
    .await;
    Ok(v)
}

// ---- users -----------------------------------------------------------------------------

/// `POST /admin/v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    /// 1 to 200 printable characters, unique.
    pub username: String,
    /// At least 8 characters; stored as an argon2id hash, never returned. Omitted: a user with
    /// no password (a passkey-only account: send them `POST .../invitation`'s link).
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /admin/v1/users/{user_id}/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The new password, at least 8 characters.
    pub password: String,
}

fn check_password(p: &str) -> OAuthResult<()> {
    let n = p.chars().count();
    if !(8..=1024).contains(&n) {
        return Err(OAuthError::invalid_request(
            "password must be 8 to 1024 characters",
        ));
    }
    Ok(())
}

use crate::text::printable;

pub fn user_view(u: &User) -> Value {
    json!({
        "sub": u.user_id, "username": u.username, "email": u.email, "name": u.name, "admin": u.is_admin,
        "disabled": u.disabled, "created_at": u.created_at, "updated_at": u.updated_at,
    })
}

async fn load_user(ctx: &Ctx, user_id: &str) -> OAuthResult<User> {
    let id = user_id.to_owned();
    ctx.store
        .blocking(move |s| s.user(&id))
        .await?
        .ok_or_else(|| not_found("no such user"))
}

pub async fn create_user(ctx: &Ctx, admin: &Admin, body: Value, now: i64) -> OAuthResult<Value> {
    let req: NewUserRequest = parse(body)?;
    let username = req.username.trim().to_owned();
    if !printable(&username, 200) {
        return Err(OAuthError::invalid_request(
            "username must be 1 to 200 printable characters",
        ));
    }
    if let Some(p) = &req.password {
        check_password(p)?;
    }
    if req
        .email
        .as_deref()
        .is_some_and(|e| !printable(e, 320) || !e.contains('@'))
    {
        return Err(OAuthError::invalid_request("email is not an email address"));
    }
    if req.name.as_deref().is_some_and(|n| !printable(n, 200)) {
        return Err(OAuthError::invalid_request(
            "name must be 1 to 200 printable characters",
        ));
    }
    let password = req.password;
    let user = User {
        user_id: secret::random_id(),
        username,
        email: req.email,
        name: req.name,
        password_hash: String::new(),
        disabled: false,
        created_at: now,
        updated_at: now,
        is_admin: false,
    };
    let mut u = user.clone();
    let cost = ctx.config.password_cost();
    let result = ctx
        .store
        .blocking(move |s| {
            // No password: an empty hash never verifies.
            if let Some(password) = &password {
                u.password_hash = secret::hash_password_with(password, cost)
                    .map_err(|e| StoreError::Other(e.to_string()))?;
            }
            s.insert_user(&u)
        })
        .await;
    match result {
        Err(StoreError::Conflict(_)) => {
            return Err(OAuthError::new(
                ErrorCode::Conflict,
                "a user with this username already exists",
            ));
        }
        r => r?,
    }
    record(
        ctx,
        admin,
        event::USER_CREATED,
        format!("user:{}", user.user_id),
        json!({ "username": user.username }),
        now,
    )
    .await;
    Ok(user_view(&user))
}

pub async fn list_users(ctx: &Ctx) -> OAuthResult<Value> {
    let all = ctx.store.blocking(|s| s.users()).await?;
    Ok(json!({ "users": all.iter().map(user_view).collect::<Vec<_>>() }))
}

/// `GET /admin/v1/users?q=&after=&limit=` and the console's list: one page of the users whose
/// username or email contains `q`, by username; `next_after` names the page after it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Part of a username or email (any case).
    pub q: Option<String>,
    /// The last username of the previous page.
    pub after: Option<String>,
    /// At most this many users (1 to 1000, default 50).
    pub limit: Option<i64>,
}

pub async fn search_users(ctx: &Ctx, p: UserSearch) -> OAuthResult<Value> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(OAuthError::invalid_request("limit must be 1 to 1000"));
    }
    if p.q.as_deref().is_some_and(|q| q.len() > 200)
        || p.after.as_deref().is_some_and(|a| a.len() > 200)
    {
        return Err(OAuthError::invalid_request(
            "q and after are at most 200 bytes",
        ));
    }
    let page = ctx
        .store
        .blocking(move |s| s.search_users(p.q.as_deref().unwrap_or(""), p.after.as_deref(), limit))
        .await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|u| u.username.clone()))
        .flatten();
    Ok(json!({ "users": page.iter().map(user_view).collect::<Vec<_>>(), "next_after": next }))
}

pub async fn get_user(ctx: &Ctx, user_id: &str) -> OAuthResult<Value> {
    Ok(user_view(&load_user(ctx, user_id).await?))
}

pub async fn set_user_disabled(
    ctx: &Ctx,
    admin: &Admin,
    user_id: &str,
    disabled: bool,
    now: i64,
) -> OAuthResult<Value> {
    let u = load_user(ctx, user_id).await?;
    let name = u.username.clone();
    ctx.store
        .blocking(move |s| s.set_user_disabled(&name, disabled, now))
        .await?;
    let ev = if disabled {
        event::USER_DISABLED
    } else {
        event::USER_ENABLED
    };
    record(
        ctx,
        admin,
        ev,
        format!("user:{user_id}"),
        json!({ "username": u.username }),
        now,
    )
    .await;
    get_user(ctx, user_id).await
}

pub async fn reset_password(
    ctx: &Ctx,
    admin: &Admin,
    user_id: &str,
    body: Value,
    now: i64,
) -> OAuthResult<()> {
    let req: PasswordRequest = parse(body)?;
    check_password(&req.password)?;
    let u = load_user(ctx, user_id).await?;
    let id = u.user_id.clone();
    let password = req.password;
    let cost = ctx.config.password_cost();
    let ended = ctx
        .store
        .blocking(move |s| {
            let hash = secret::hash_password_with(&password, cost)
                .map_err(|e| StoreError::Other(e.to_string()))?;
            s.change_user_password(&id, &hash, now)
        })
        .await?
        .ok_or_else(|| not_found("no such user"))?;
    let what = SignedOut::User {
        user_id: u.user_id.clone(),
    };
    super::backchannel::signed_out(ctx, what, now).await;
    record(
        ctx,
        admin,
        event::USER_PASSWORD_RESET,
        format!("user:{user_id}"),
        json!({
            "username": u.username,
            "sessions_ended": ended.sessions,
            "token_families_revoked": ended.token_families,
        }),
        now,
    )
    .await;
    Ok(())
}

pub async fn revoke_user_grants(
    ctx: &Ctx,
    admin: &Admin,
    user_id: &str,
    now: i64,
) -> OAuthResult<Value> {
    load_user(ctx, user_id).await?;
    let id = user_id.to_owned();
    let r = ctx
        .store
        .blocking(move |s| s.revoke_user_grants(&id, now))
        .await?;
    let what = SignedOut::User {
        user_id: user_id.to_owned(),
    };
    super::backchannel::signed_out(ctx, what, now).await;
    let v = serde_json::to_value(r).map_err(OAuthError::server_error)?;
    record(
        ctx,
        admin,
        event::GRANTS_REVOKED,
        format!("user:{user_id}"),
        v.clone(),
        now,
    )
    .await;
    Ok(v)
}

/// `GET /admin/v1/users/{id}/sessions`: the apps (refresh families) and browser sessions the
/// user is signed in to.
pub async fn user_sessions(ctx: &Ctx, user_id: &str, now: i64) -> OAuthResult<Value> {
    load_user(ctx, user_id).await?;
    let id = user_id.to_owned();
    let s = ctx
        .store
        .blocking(move |s| s.user_sign_ins(&id, now))
        .await?;
    Ok(super::signins::view(&s))
}

/// `POST /admin/v1/users/{id}/signout`: `{"family_id": ...}` signs one app on one device out;
/// an empty body signs the user out everywhere (families, codes, sessions; consents stay).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignOutRequest {
    #[serde(default)]
    pub family_id: Option<String>,
}

pub async fn sign_out_user(
    ctx: &Ctx,
    admin: &Admin,
    user_id: &str,
    body: Value,
    now: i64,
) -> OAuthResult<Value> {
    let req: SignOutRequest = if body.is_null() {
        SignOutRequest::default()
    } else {
        parse(body)?
    };
    load_user(ctx, user_id).await?;
    let which = match req.family_id.clone() {
        Some(f) => super::signins::Which::Family(f),
        None => super::signins::Which::Everywhere,
    };
    let r = super::signins::sign_out(ctx, user_id, which, now)
        .await?
        .ok_or_else(|| not_found("no such signed-in device for this user"))?;
    let v = super::signins::signed_out(req.family_id.as_deref(), r);
    record(
        ctx,
        admin,
        event::USER_SIGNED_OUT,
        format!("user:{user_id}"),
        v.clone(),
        now,
    )
    .await;
    Ok(v)
}

// ---- keys ------------------------------------------------------------------------------

/// `POST /admin/v1/keys/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeysRequest {
    /// `ES256`, `RS256` or `EdDSA`; default: every configured algorithm.
    #[serde(default)]
    pub alg: Option<String>,
}

pub fn key_view(
    k: &crate::model::SigningKeyRecord,
    all: &[crate::model::SigningKeyRecord],
    now: i64,
) -> Value {
    json!({
        "kid": k.kid, "alg": k.alg, "state": crate::keys::key_state(k, all, now),
        "published_at": k.created_at, "activates_at": k.activates_at, "expires_at": k.expires_at,
    })
}

pub async fn list_keys(ctx: &Ctx, now: i64) -> OAuthResult<Value> {
    let all = ctx.store.blocking(|s| s.signing_keys()).await?;
    Ok(json!({ "keys": all.iter().map(|k| key_view(k, &all, now)).collect::<Vec<_>>() }))
}

pub async fn rotate_keys(ctx: &Ctx, admin: &Admin, body: Value, now: i64) -> OAuthResult<Value> {
    let req: RotateKeysRequest = if body.is_null() {
        RotateKeysRequest::default()
    } else {
        parse(body)?
    };
    let algs = match req.alg.as_deref() {
        Some(a) => vec![
            SigningAlg::parse(a)
                .ok_or_else(|| OAuthError::invalid_request("alg must be ES256, RS256 or EdDSA"))?,
        ],
        None => ctx.config.signing_algs(),
    };
    let (keys, config) = (ctx.keys.clone(), ctx.config.clone());
    let rotated = ctx
        .store
        .blocking(move |s| {
            let mut out = Vec::new();
            for alg in algs {
                let r = crate::keys::rotate(s, keys.kek(), &config, alg, now, false)
                    .map_err(|e| StoreError::Other(format!("key rotation failed: {e}")))?;
                out.extend(r);
            }
            // Publish the new keys from this replica at once.
            keys.reload(s, now)
                .map_err(|e| StoreError::Other(e.to_string()))?;
            Ok(out)
        })
        .await?;
    for r in &rotated {
        audit::record(ctx, audit::key_rotated(&admin.actor(), admin.ip, r, now)).await;
    }
    Ok(json!({ "rotated": rotated.iter().map(|k| json!({
        "kid": k.kid, "alg": k.alg, "published_at": k.created_at, "activates_at": k.activates_at,
    })).collect::<Vec<_>>() }))
}

// ---- registration tokens ---------------------------------------------------------------

/// `POST /admin/v1/registration-tokens`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationTokenRequest {
    /// Seconds until the token expires (default 86400, at most 31622400).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// How many clients it may register (default: any number until it expires).
    #[serde(default)]
    pub max_uses: Option<u64>,
    /// Scopes beyond the sign-in scopes (`openid profile email offline_access`) a client
    /// registered with this token may hold (space-separated). Default: none.
    #[serde(default)]
    pub scope: Option<String>,
    /// Audiences (RFC 8707 resource indicators) such a client may hold. Default: none.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Grant types such a client may hold. Default: `authorization_code`, `refresh_token`.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// `public` or `confidential`. Default: either.
    #[serde(default)]
    pub client_type: Option<String>,
}

pub async fn create_registration_token(
    ctx: &Ctx,
    admin: &Admin,
    body: Value,
    now: i64,
) -> OAuthResult<Value> {
    let req: RegistrationTokenRequest = if body.is_null() {
        RegistrationTokenRequest::default()
    } else {
        parse(body)?
    };
    let policy = registration::Policy::new(
        &req.scope.into_iter().collect::<Vec<_>>(),
        &req.audience,
        &req.grant_types,
        req.client_type.as_deref(),
    )
    .map_err(|e| OAuthError::invalid_request(format!("registration token policy: {e}")))?;
    let (token, record_) = registration::new_initial_access_token(
        req.expires_in,
        req.max_uses,
        &policy,
        &admin.actor(),
        now,
    )
    .map_err(OAuthError::invalid_request)?;
    let r = record_.clone();
    ctx.store
        .blocking(move |s| s.insert_registration_token(&r))
        .await?;
    record(
        ctx,
        admin,
        event::REGISTRATION_TOKEN_CREATED,
        format!(
            "registration_token:{}",
            registration::initial_token_id(&record_.token_hash)
        ),
        json!({ "expires_at": record_.expires_at, "max_uses": record_.max_uses }),
        now,
    )
    .await;
    Ok(registration::initial_access_token_view(&token, &record_))
}

pub async fn list_registration_tokens(ctx: &Ctx, now: i64) -> OAuthResult<Value> {
    let all = ctx.store.blocking(|s| s.registration_tokens()).await?;
    Ok(json!({
        "registration_tokens": all
            .iter()
            .map(|t| registration::registration_token_view(t, now))
            .collect::<Vec<_>>()
    }))
}

/// Revokes an initial access token by its id: `POST /register` refuses it from then on;
/// clients it already registered are not affected.
pub async fn revoke_registration_token(
    ctx: &Ctx,
    admin: &Admin,
    id: &str,
    now: i64,
) -> OAuthResult<Value> {
    let owned = id.to_owned();
    let revoked = ctx
        .store
        .blocking(move |s| s.revoke_registration_token(&owned, now))
        .await?
        .ok_or_else(|| not_found("no such registration token"))?;
    record(
        ctx,
        admin,
        event::REGISTRATION_TOKEN_REVOKED,
        format!("registration_token:{id}"),
        json!({}),
        now,
    )
    .await;
    Ok(registration::registration_token_view(&revoked, now))
}

// ---- audit log -------------------------------------------------------------------------

/// `GET /admin/v1/audit` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries with an id greater than this (page forwards with the previous `next_after`).
    pub after: Option<i64>,
    /// An event name (`client.created`) or a prefix (`client`).
    pub event: Option<String>,
    /// At most this many entries (1 to 1000, default 100). Without `after`: the newest.
    pub limit: Option<i64>,
    /// Only entries with an id lower than this (page backwards with the previous `next_before`).
    pub before: Option<i64>,
    /// Only entries whose actor starts with this (`admin:latchkey-console/user:root`).
    pub actor: Option<String>,
    /// Only entries by or about this client id.
    pub client: Option<String>,
    /// Only entries at or after this unix time.
    pub since: Option<i64>,
    /// Only entries before this unix time.
    pub until: Option<i64>,
}

pub async fn read_audit(ctx: &Ctx, p: AuditParams) -> OAuthResult<Value> {
    if p.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(OAuthError::invalid_request("limit must be 1 to 1000"));
    }
    for (name, v) in [
        ("event", &p.event),
        ("actor", &p.actor),
        ("client", &p.client),
    ] {
        if v.as_deref().is_some_and(|e| e.len() > 200) {
            return Err(OAuthError::invalid_request(format!("{name} is too long")));
        }
    }
    let q = AuditQuery {
        after: p.after,
        event: p.event,
        limit: p.limit.unwrap_or(100),
        before: p.before,
        actor: p.actor,
        client: p.client,
        since: p.since,
        until: p.until,
    };
    let entries = ctx.store.blocking(move |s| s.audit(&q)).await?;
    let next = entries.last().map(|e| e.id);
    let before = entries.first().map(|e| e.id);
    Ok(json!({ "events": entries, "next_after": next, "next_before": before }))
}

// ---- sign-in factors (issue 19) -------------------------------------------------------------

/// A user's factors as the CLI and the admin API show them: passkeys (id, name, when added and
/// last used), the authenticator app, the recovery codes left. Never a secret.
pub fn factors_view(f: &crate::store::Factors) -> Value {
    serde_json::json!({
        "passkeys": f.passkeys.iter().map(|p| serde_json::json!({
            "credential_id": p.credential_id, "name": p.name,
            "created_at": p.created_at, "last_used_at": p.last_used_at,
        })).collect::<Vec<_>>(),
        "totp": f.totp.as_ref().map(|t| serde_json::json!({ "enrolled_at": t.created_at })),
        "recovery_codes_left": f.recovery_codes_left,
    })
}

/// `GET /admin/v1/users/{id}/factors`.
pub async fn user_factors(ctx: &Ctx, user_id: &str) -> OAuthResult<Value> {
    load_user(ctx, user_id).await?;
    let id = user_id.to_owned();
    let f = ctx.store.blocking(move |s| s.factors(&id)).await?;
    Ok(factors_view(&f))
}

/// `DELETE /admin/v1/users/{id}/passkeys/{credential_id}`. Audited.
pub async fn remove_passkey(
    ctx: &Ctx,
    admin: &Admin,
    user_id: &str,
    credential_id: &str,
    now: i64,
) -> OAuthResult<Value> {
    load_user(ctx, user_id).await?;
    let (id, cred) = (user_id.to_owned(), credential_id.to_owned());
    if !ctx
        .store
        .write(move |s| s.delete_passkey(&id, &cred))
        .await?
    {
        return Err(not_found("the user has no such passkey"));
    }
    let details = serde_json::json!({ "credential_id": credential_id });
    record(
        ctx,
        admin,
        event::PASSKEY_REMOVED,
        format!("user:{user_id}"),
        details,
        now,
    )
    .await;
    Ok(serde_json::json!({ "removed": true }))
}

/// `POST /admin/v1/users/{id}/factors/reset`: every passkey, the authenticator app and the
/// recovery codes removed (a lost phone). Audited.
pub async fn reset_factors(
    ctx: &Ctx,
    admin: &Admin,
    user_id: &str,
    now: i64,
) -> OAuthResult<Value> {
    load_user(ctx, user_id).await?;
    let id = user_id.to_owned();
    let n = ctx.store.write(move |s| s.reset_factors(&id)).await?;
    let details = serde_json::json!({ "removed": n });
    record(
        ctx,
        admin,
        event::USER_FACTORS_RESET,
        format!("user:{user_id}"),
        details.clone(),
        now,
    )
    .await;
    Ok(details)
}

/// `POST /admin/v1/users/{id}/invitation`: a single-use passkey enrolment link. Audited
/// (never the link itself).
pub async fn invite_user(ctx: &Ctx, admin: &Admin, user_id: &str, now: i64) -> OAuthResult<Value> {
    let user = load_user(ctx, user_id).await?;
    if user.disabled {
        return Err(OAuthError::invalid_request("the user is disabled"));
    }
    if !ctx.passkeys.enabled() {
        return Err(OAuthError::invalid_request(
            super::login::invite::PASSKEYS_OFF,
        ));
    }
    let (issuer, id, ttl) = (
        ctx.config.issuer.clone(),
        user_id.to_owned(),
        ctx.config.invitation_ttl,
    );
    let url = ctx
        .store
        .blocking(move |s| super::login::invite::create(s, &issuer, &id, ttl, now))
        .await?;
    let expires_at = now + ttl as i64;
    let details = serde_json::json!({ "expires_at": expires_at });
    record(
        ctx,
        admin,
        event::USER_INVITED,
        format!("user:{user_id}"),
        details,
        now,
    )
    .await;
    Ok(serde_json::json!({ "url": url, "expires_at": expires_at }))
}
