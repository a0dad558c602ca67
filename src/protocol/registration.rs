//! RFC 7591 dynamic client registration and RFC 7592 client configuration, plus the client
//! metadata request both they and the admin API accept. Every client is built by
//! [`clients::create`], so registration, the admin API and the CLI share one set of rules
//! (redirect URIs are checked by the same code `/authorize` uses).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::Ctx;
use super::audit::{self, Actor, event};
use super::clients::{self, ClientSpec, NewClient};
use super::error::{AuthScheme, ErrorCode, OAuthError, OAuthResult};
use super::scope::Scope;
use crate::model::{Client, ClientType, GrantType, RegistrationToken};
use crate::secret;
use crate::store::Registered;

/// Where the registration endpoint lives; a client's configuration endpoint
/// (`registration_client_uri`) is `{issuer}/register/{client_id}`.
pub const REGISTRATION_PATH: &str = "/register";

/// Default lifetime of an initial access token, in seconds (one day).
pub const DEFAULT_INITIAL_TOKEN_TTL: u64 = 24 * 3600;
/// Longest lifetime of an initial access token, in seconds (one year).
pub const MAX_INITIAL_TOKEN_TTL: u64 = 366 * 24 * 3600;

/// Client metadata (RFC 7591 §2 names), as sent to `POST /register`, to RFC 7592 `PUT`, and to
/// the admin API. Unknown members are ignored (RFC 7591 §2); omitted ones take their defaults
/// (RFC 7592 §2.2: an update replaces the whole registration).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct ClientMetadataRequest {
    /// Human-readable name shown on the consent page. Required by the admin API.
    pub client_name: Option<String>,
    /// Exact redirect URIs: `https://...`, `http://127.0.0.1/...` / `http://[::1]/...`
    /// (any port at authorization time) or a reverse-domain private-use scheme
    /// (`com.example.app:/cb`); never a fragment.
    pub redirect_uris: Option<Vec<String>>,
    /// Where RP-initiated logout may send the browser afterwards (same rules).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `authorization_code`, `refresh_token`, `client_credentials`. Default: the code flow with
    /// refresh tokens (or `client_credentials` for a confidential client without redirect URIs).
    pub grant_types: Option<Vec<String>>,
    /// `code`, or none; must agree with `grant_types`.
    pub response_types: Option<Vec<String>>,
    /// `none` (a public client: PKCE, no secret), `client_secret_basic` (the default),
    /// `client_secret_post`, `private_key_jwt` (with `jwks` or `jwks_uri`), or RFC 8705
    /// `tls_client_auth` (with one `tls_client_auth_*` name) or
    /// `self_signed_tls_client_auth` (certificates as `x5c` in `jwks` or `jwks_uri`).
    pub token_endpoint_auth_method: Option<String>,
    /// RFC 8705 §2.1.2: the RFC 4514 subject DN a `tls_client_auth` client's certificate has.
    pub tls_client_auth_subject_dn: Option<String>,
    /// RFC 8705 §2.1.2: or a DNS name in its subjectAltName.
    pub tls_client_auth_san_dns: Option<String>,
    /// RFC 8705 §2.1.2: or a URI in its subjectAltName.
    pub tls_client_auth_san_uri: Option<String>,
    /// RFC 8705 §2.1.2: or an IP address in its subjectAltName.
    pub tls_client_auth_san_ip: Option<String>,
    /// RFC 8705 §2.1.2: or an email address in its subjectAltName.
    pub tls_client_auth_san_email: Option<String>,
    /// RFC 8705 §3.4: access tokens bound to the client's certificate; default false.
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Latchkey: a password alone is not enough to sign in to this client.
    pub require_mfa: Option<bool>,
    /// Latchkey extension, admin API only (ignored at `/register`): app attestation (issue 23;
    /// docs/attestation.md). Omitted on an update: removed, like every other member.
    pub attestation: Option<super::attestation::Policy>,
    /// Space-separated scopes the client may request.
    pub scope: Option<String>,
    /// Latchkey extension: RFC 8707 resource indicators the client may obtain tokens for.
    pub audience: Option<Vec<String>>,
    /// Latchkey extension, admin API only: skip the consent page. Ignored at `/register`.
    pub first_party: Option<bool>,
    /// RFC 9449 §5.2: the client must send a DPoP proof with every token request.
    pub dpop_bound_access_tokens: Option<bool>,
    /// Latchkey extension for browser-based clients: origins (`https://app.example`) allowed
    /// CORS access to the token, JWKS, discovery, userinfo and revocation endpoints.
    pub allowed_origins: Option<Vec<String>>,
    /// RFC 9126 §6: authorization requests must be pushed (`request_uri` from the pushed
    /// authorization request endpoint); default false.
    pub require_pushed_authorization_requests: Option<bool>,
    /// RFC 7591 §2: the client's public keys (a JWK set), with
    /// `token_endpoint_auth_method: private_key_jwt` (RFC 7523).
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// RFC 9101 §10.5: authorization requests must be request objects signed with `jwks`.
    pub require_signed_request_object: Option<bool>,
    /// RFC 7591 §2: where the client publishes its keys (instead of `jwks`).
    pub jwks_uri: Option<String>,
    /// OpenID Connect Back-Channel Logout 1.0 §2.2: where to POST a `logout_token` when a user
    /// of this client signs out.
    pub backchannel_logout_uri: Option<String>,
    /// Back-Channel Logout 1.0 §2.2: the logout token must carry `sid`; default false.
    pub backchannel_logout_session_required: Option<bool>,
    /// Latchkey extension: admin clients are made only with `latchkey client add --admin`;
    /// `true` is refused on create, and an update cannot change it.
    pub admin: Option<bool>,
    /// RFC 7592 update: must equal the client's id.
    pub client_id: Option<String>,
    /// RFC 7592 update: if present, must equal the current secret (a client cannot choose
    /// its own secret).
    pub client_secret: Option<String>,
}

/// A serde error without the offending value (which could be anything the caller sent,
/// including a secret typed into the wrong member): `wrong type: got string, expected ...`.
pub fn serde_message(e: &serde_json::Error) -> String {
    let m = e.to_string();
    let Some(rest) = m
        .strip_prefix("invalid type: ")
        .or_else(|| m.strip_prefix("invalid value: "))
    else {
        return m;
    };
    let kind = rest.split([' ', ',']).next().unwrap_or("value");
    let expected = m
        .split_once(", expected ")
        .map(|(_, x)| x)
        .unwrap_or("another type");
    format!("wrong type: got {kind}, expected {expected}")
}

/// Who is registering: the admin API may set the Latchkey extensions a dynamically registered
/// client may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registrar {
    Admin,
    Dynamic,
}

fn metadata_error(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

/// The scopes every registered client may ask for: signing users in, nothing more.
pub const SIGN_IN_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// What a client registered with an initial access token may get. RFC 7591 §5: client metadata
/// is self-asserted, so the registrar, not the client, decides which APIs (audiences), scopes
/// and grants a registered client holds. The default (an initial access token made with no
/// policy) is what a self-service app needs to sign users in: the [`SIGN_IN_SCOPES`],
/// `authorization_code` + `refresh_token`, no audiences, public or confidential.
/// Anything beyond the policy is refused (`invalid_client_metadata`), at registration and at
/// every RFC 7592 update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Policy {
    /// Scopes beyond the sign-in scopes a client may register.
    pub scope: Vec<String>,
    /// RFC 8707 resource indicators (audiences) a client may register.
    pub audiences: Vec<String>,
    /// Grant types a client may register; empty: `authorization_code` and `refresh_token`.
    pub grant_types: Vec<String>,
    /// `public` or `confidential`; none: either.
    pub client_type: Option<String>,
}

impl Policy {
    /// A policy from an administrator's lists (scopes may be space-separated), checked.
    pub fn new(
        scope: &[String],
        audiences: &[String],
        grant_types: &[String],
        client_type: Option<&str>,
    ) -> Result<Policy, String> {
        let mut scopes: Vec<String> = Vec::new();
        for s in scope
            .iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
        {
            if Scope::parse(s).is_err() {
                return Err(format!("scope {s:?} contains invalid characters"));
            }
            if s == clients::ADMIN_SCOPE {
                return Err(format!(
                    "{} is never granted to a registered client",
                    clients::ADMIN_SCOPE
                ));
            }
            if !scopes.iter().any(|x| x == s) && !SIGN_IN_SCOPES.contains(&s) {
                scopes.push(s.to_owned());
            }
        }
        for a in audiences {
            let ok = url::Url::parse(a).is_ok_and(|u| u.fragment().is_none());
            if !ok {
                return Err(format!(
                    "audience {a:?} must be an absolute URI without a fragment"
                ));
            }
        }
        for g in grant_types {
            if GrantType::parse(g).is_none() {
                return Err(format!(
                    "grant type {g:?} is not one of authorization_code, refresh_token, client_credentials"
                ));
            }
        }
        if let Some(t) = client_type
            && ClientType::parse(t).is_none()
        {
            return Err(format!("client type {t:?} must be public or confidential"));
        }
        let mut audiences = audiences.to_vec();
        audiences.dedup();
        let mut grant_types = grant_types.to_vec();
        grant_types.dedup();
        Ok(Policy {
            scope: scopes,
            audiences,
            grant_types,
            client_type: client_type.map(str::to_owned),
        })
    }

    /// The policy stored with a token or registration; an unreadable one is the default (the
    /// narrowest).
    pub fn from_stored(json: Option<&str>) -> Policy {
        json.and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    /// The ceiling of a client registered before policies existed: what it has now.
    pub fn of_client(c: &Client) -> Policy {
        Policy {
            scope: c.allowed_scopes().map(str::to_owned).collect(),
            audiences: c.audiences.clone(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            client_type: Some(c.client_type.as_str().to_owned()),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    fn allows_grant(&self, g: GrantType) -> bool {
        if self.grant_types.is_empty() {
            matches!(g, GrantType::AuthorizationCode | GrantType::RefreshToken)
        } else {
            self.grant_types.iter().any(|x| x == g.as_str())
        }
    }

    /// Refuses a client that holds anything beyond this policy. The descriptions name the
    /// member, never the value the client sent.
    pub fn check(&self, c: &Client) -> OAuthResult<()> {
        if let Some(t) = &self.client_type
            && t != c.client_type.as_str()
        {
            return Err(metadata_error(
                "token_endpoint_auth_method: this client type is not allowed by the initial access token",
            ));
        }
        if c.grant_types.iter().any(|g| !self.allows_grant(*g)) {
            return Err(metadata_error(
                "grant_types: a grant type is not allowed by the initial access token",
            ));
        }
        let scope_ok = c
            .allowed_scopes()
            .all(|s| SIGN_IN_SCOPES.contains(&s) || self.scope.iter().any(|x| x == s));
        if !scope_ok {
            return Err(metadata_error(
                "scope: a scope is not allowed by the initial access token",
            ));
        }
        if c.audiences.iter().any(|a| !self.audiences.contains(a)) {
            return Err(metadata_error(
                "audience: an audience is not allowed by the initial access token",
            ));
        }
        Ok(())
    }
}

impl ClientMetadataRequest {
    /// From a JSON body (already parsed as JSON): must be an object of the right member types.
    pub fn from_json(v: Value) -> OAuthResult<ClientMetadataRequest> {
        let Value::Object(members) = v else {
            return Err(metadata_error("the client metadata must be a JSON object"));
        };
        match serde_json::from_value(Value::Object(members.clone())) {
            Ok(req) => Ok(req),
            Err(e) => {
                // Name the member at fault: every member is optional, so a one-member object
                // fails exactly when that member is wrong.
                let culprit = members.iter().find(|(k, v)| {
                    let one = serde_json::Map::from_iter([((*k).clone(), (*v).clone())]);
                    serde_json::from_value::<ClientMetadataRequest>(Value::Object(one)).is_err()
                });
                Err(metadata_error(match culprit {
                    Some((k, _)) if k.len() <= 64 => {
                        format!("invalid client metadata: {k}: {}", serde_message(&e))
                    }
                    _ => format!("invalid client metadata: {}", serde_message(&e)),
                }))
            }
        }
    }

    /// The [`ClientSpec`] this request asks for; `existing` is the client being updated.
    pub fn to_spec(&self, by: Registrar, existing: Option<&Client>) -> OAuthResult<ClientSpec> {
        if self.jwks.is_some() && self.jwks_uri.is_some() {
            // RFC 7591 §2: "MUST NOT both be present".
            return Err(metadata_error("send jwks or jwks_uri, not both"));
        }
        let keys = self.jwks.is_some() || self.jwks_uri.is_some();
        let names: Vec<crate::model::CertName> = [
            ("subject_dn", &self.tls_client_auth_subject_dn),
            ("san_dns", &self.tls_client_auth_san_dns),
            ("san_uri", &self.tls_client_auth_san_uri),
            ("san_ip", &self.tls_client_auth_san_ip),
            ("san_email", &self.tls_client_auth_san_email),
        ]
        .into_iter()
        .filter_map(|(kind, v)| crate::model::CertName::from_kind(kind, v.clone()?))
        .collect();
        let method = self.token_endpoint_auth_method.as_deref();
        let tls_client_auth = match (method, names.as_slice()) {
            (Some("tls_client_auth"), [one]) => Some(crate::model::TlsClientAuth::Pki(one.clone())),
            (Some("tls_client_auth"), _) => {
                return Err(metadata_error(
                    "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email",
                ));
            }
            (_, [_, ..]) => {
                return Err(metadata_error(
                    "tls_client_auth_* names are used only with token_endpoint_auth_method tls_client_auth",
                ));
            }
            (Some("self_signed_tls_client_auth"), _) => {
                Some(crate::model::TlsClientAuth::SelfSigned)
            }
            _ => None,
        };
        let client_type = match (method, keys) {
            (Some("tls_client_auth" | "self_signed_tls_client_auth"), _) => {
                ClientType::Confidential
            }
            (Some("private_key_jwt"), true) => ClientType::Confidential,
            (Some("private_key_jwt"), false) => {
                return Err(metadata_error("private_key_jwt needs jwks or jwks_uri"));
            }
            (_, true) => {
                return Err(metadata_error(
                    "jwks and jwks_uri are used only with token_endpoint_auth_method private_key_jwt",
                ));
            }
            (None | Some("client_secret_basic") | Some("client_secret_post"), false) => {
                ClientType::Confidential
            }
            (Some("none" | super::attestation::AUTH_METHOD), false) => ClientType::Public,
            (Some(_), false) => {
                return Err(metadata_error(
                    "token_endpoint_auth_method must be none, client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, self_signed_tls_client_auth or attest_jwt_client_auth",
                ));
            }
        };
        // App attestation is the administrator's: a dynamically registered client keeps what
        // an administrator set (RFC 7592 updates included) and cannot set its own trust roots.
        let attestation = match by {
            Registrar::Admin => self.attestation.clone(),
            Registrar::Dynamic => existing.and_then(|c| c.attestation.clone()),
        };
        if method == Some(super::attestation::AUTH_METHOD)
            && attestation.as_ref().map(|p| p.mode) != Some(super::attestation::Mode::Required)
        {
            return Err(metadata_error(
                "attest_jwt_client_auth needs an attestation policy with mode required",
            ));
        }
        let is_admin = existing.is_some_and(|c| c.is_admin);
        match (self.admin, existing) {
            (Some(true), None) if by == Registrar::Admin => {
                return Err(metadata_error(
                    "admin clients are created only with `latchkey client add --admin`",
                ));
            }
            (Some(a), Some(c)) if a != c.is_admin && by == Registrar::Admin => {
                return Err(metadata_error(
                    "whether a client is an admin client cannot be changed here",
                ));
            }
            _ => {}
        }
        let client_name = match (&self.client_name, by) {
            (Some(n), _) => n.clone(),
            (None, Registrar::Dynamic) => "Dynamically registered client".to_owned(),
            (None, Registrar::Admin) => {
                return Err(metadata_error("client_name is required"));
            }
        };
        // `..Default::default()`: fields added to ClientSpec later take their defaults here
        // until this request type learns their RFC 7591 names.
        #[allow(clippy::needless_update)]
        Ok(ClientSpec {
            client_name,
            client_type: Some(client_type),
            redirect_uris: self.redirect_uris.clone().unwrap_or_default(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone().unwrap_or_default(),
            grant_types: self.grant_types.clone().unwrap_or_default(),
            scope: self.scope.clone(),
            audiences: self.audience.clone().unwrap_or_default(),
            first_party: by == Registrar::Admin && self.first_party.unwrap_or(false),
            is_admin,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens.unwrap_or(false),
            allowed_origins: self.allowed_origins.clone().unwrap_or_default(),
            require_pushed_authorization_requests: self
                .require_pushed_authorization_requests
                .unwrap_or(false),
            jwks: self.jwks.clone(),
            jwks_uri: self.jwks_uri.clone(),
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: self
                .backchannel_logout_session_required
                .unwrap_or(false),
            require_signed_request_object: self.require_signed_request_object.unwrap_or(false),
            tls_client_auth,
            tls_client_certificate_bound_access_tokens: self
                .tls_client_certificate_bound_access_tokens
                .unwrap_or(false),
            require_mfa: self.require_mfa.unwrap_or(false),
            attestation,
            ..Default::default()
        })
    }

    /// RFC 7591 §2.1: `response_types` must agree with the grant types the client got.
    fn check_response_types(&self, c: &Client) -> OAuthResult<()> {
        let Some(rts) = &self.response_types else {
            return Ok(());
        };
        if let Some(bad) = rts.iter().find(|r| r.as_str() != "code") {
            return Err(metadata_error(format!(
                "response_type {bad:?} is not supported (only code)"
            )));
        }
        if rts.iter().any(|r| r == "code") != c.allows_grant(GrantType::AuthorizationCode) {
            return Err(metadata_error(
                "response_types and grant_types disagree: code goes with authorization_code",
            ));
        }
        Ok(())
    }

    /// A new client from this request (through [`clients::create`]).
    pub fn create(&self, by: Registrar, now: i64) -> OAuthResult<NewClient> {
        let new = clients::create(self.to_spec(by, None)?, now)?;
        self.check_response_types(&new.client)?;
        Ok(new)
    }

    /// `existing` with its registration replaced by this request: same `client_id`, creation
    /// time and enabled state; a confidential client keeps its secret (a client that becomes
    /// confidential gets a new one, shown once).
    pub fn update(&self, existing: &Client, by: Registrar, now: i64) -> OAuthResult<NewClient> {
        if let Some(id) = &self.client_id
            && *id != existing.client_id
        {
            return Err(OAuthError::invalid_request(
                "client_id does not match the client being updated",
            ));
        }
        if let Some(s) = &self.client_secret {
            let matches = existing
                .secret_hash
                .as_deref()
                .is_some_and(|h| secret::verify_token_hash(s, h));
            if !matches {
                return Err(OAuthError::invalid_request(
                    "client_secret does not match the current secret; it cannot be chosen by the client",
                ));
            }
        }
        let mut new = clients::create(self.to_spec(by, Some(existing))?, now)?;
        self.check_response_types(&new.client)?;
        new.client.client_id = existing.client_id.clone();
        new.client.created_at = existing.created_at;
        new.client.disabled = existing.disabled;
        if existing.client_type == ClientType::Confidential
            && new.client.client_type == ClientType::Confidential
        {
            new.client.secret_hash = existing.secret_hash.clone();
            new.secret = None;
        }
        Ok(new)
    }
}

/// A 401 that names the Bearer scheme (RFC 6750 §3): no token at all gets a bare challenge.
fn bearer_401(token_present: bool, d: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, d).with_challenge(Some(if token_present {
        AuthScheme::Bearer
    } else {
        AuthScheme::BearerNoCredentials
    }))
}

/// A short, non-secret identifier for an initial access token (a prefix of its hash), so audit
/// entries can say which token registered a client.
pub fn initial_token_id(token_hash: &str) -> &str {
    token_hash
        .get(..crate::model::REGISTRATION_TOKEN_ID_LEN)
        .unwrap_or(token_hash)
}

/// A new initial access token: the token (shown once) and its stored record.
pub fn new_initial_access_token(
    expires_in: Option<u64>,
    max_uses: Option<u64>,
    policy: &Policy,
    created_by: &Actor,
    now: i64,
) -> Result<(String, RegistrationToken), &'static str> {
    let ttl = expires_in.unwrap_or(DEFAULT_INITIAL_TOKEN_TTL);
    if ttl == 0 || ttl > MAX_INITIAL_TOKEN_TTL {
        return Err("expires_in must be between 1 and 31622400 seconds");
    }
    if max_uses == Some(0) || max_uses.is_some_and(|m| m > i64::MAX as u64) {
        return Err("max_uses must be at least 1");
    }
    let token = secret::new_secret();
    let record = RegistrationToken {
        token_hash: secret::hash_token(&token),
        created_at: now,
        expires_at: now + ttl as i64,
        max_uses: max_uses.map(|m| m as i64),
        uses: 0,
        created_by: created_by.label(),
        revoked_at: None,
        policy: Some(policy.to_json()),
    };
    Ok((token, record))
}

/// The JSON an initial access token is shown with (once).
pub fn initial_access_token_view(token: &str, r: &RegistrationToken) -> Value {
    json!({
        "initial_access_token": token,
        "expires_at": r.expires_at,
        "max_uses": r.max_uses,
        "id": initial_token_id(&r.token_hash),
        "policy": Policy::from_stored(r.policy.as_deref()),
    })
}

/// An initial access token as the admin API and the CLI list it: never the token or its
/// hash, only its id, limits, use count and state (`active`, `expired`, `used_up`, `revoked`).
pub fn registration_token_view(r: &RegistrationToken, now: i64) -> Value {
    json!({
        "id": initial_token_id(&r.token_hash),
        "created_at": r.created_at,
        "created_by": r.created_by,
        "expires_at": r.expires_at,
        "max_uses": r.max_uses,
        "uses": r.uses,
        "revoked_at": r.revoked_at,
        "status": r.status(now).as_str(),
        "policy": Policy::from_stored(r.policy.as_deref()),
    })
}

fn registration_client_uri(ctx: &Ctx, client_id: &str) -> String {
    format!("{}{REGISTRATION_PATH}/{client_id}", ctx.config.issuer)
}

/// RFC 7591 §3.2.1 / RFC 7592 §3 response: the metadata, the configuration endpoint and its
/// token, and a new secret when one was issued.
fn registration_response(
    ctx: &Ctx,
    c: &Client,
    secret: Option<&str>,
    registration_access_token: &str,
) -> Value {
    let mut v = clients::metadata(c);
    if let Some(s) = secret {
        v["client_secret"] = json!(s);
        v["client_secret_expires_at"] = json!(0);
    }
    v["registration_access_token"] = json!(registration_access_token);
    v["registration_client_uri"] = json!(registration_client_uri(ctx, &c.client_id));
    v
}

/// `POST /register` (RFC 7591 §3): needs an initial access token; answers 201 with the client.
/// The token is checked before the body (401 before 400).
pub async fn register(
    ctx: &Ctx,
    initial_access_token: Option<&str>,
    body: OAuthResult<Value>,
    ip: Option<IpAddr>,
    now: i64,
) -> OAuthResult<Value> {
    let Some(token) = initial_access_token else {
        return Err(bearer_401(
            false,
            "an initial access token is required to register a client",
        ));
    };
    let token_hash = secret::hash_token(token);
    let h = token_hash.clone();
    let stored = ctx
        .store
        .blocking(move |s| s.registration_token(&h))
        .await?;
    let (creator, policy) = match &stored {
        None => return Err(bearer_401(true, "the initial access token is invalid")),
        Some(t) => match t.refusal(now) {
            Some(why) => return Err(bearer_401(true, why)),
            None => (
                t.created_by.clone(),
                Policy::from_stored(t.policy.as_deref()),
            ),
        },
    };
    let req = ClientMetadataRequest::from_json(body?)?;
    let new = req.create(Registrar::Dynamic, now)?;
    policy.check(&new.client)?;
    let rat = secret::new_secret();
    let (client, rat_hash, th, pj) = (
        new.client.clone(),
        secret::hash_token(&rat),
        token_hash.clone(),
        policy.to_json(),
    );
    let outcome = ctx
        .store
        .blocking(move |s| s.register_client(&th, &client, &rat_hash, &pj, now))
        .await?;
    if let Registered::Refused(why) = outcome {
        return Err(bearer_401(true, why));
    }
    let c = &new.client;
    audit::record(
        ctx,
        audit::entry(
            event::CLIENT_REGISTERED,
            &Actor::Anonymous,
            ip,
            Some(format!("client:{}", c.client_id)),
            audit::SUCCESS,
            json!({
                "initial_access_token": initial_token_id(&token_hash),
                "initial_access_token_created_by": creator,
                "client_name": c.client_name,
                "client_type": c.client_type.as_str(),
            }),
            now,
        ),
    )
    .await;
    Ok(registration_response(ctx, c, new.secret.as_deref(), &rat))
}

/// RFC 7592 §2: the client whose registration access token was presented. Every failure is
/// the same 401, so the endpoint does not reveal which client ids exist.
async fn configured_client(
    ctx: &Ctx,
    client_id: &str,
    token: Option<&str>,
) -> OAuthResult<(Client, Policy)> {
    let Some(token) = token else {
        return Err(bearer_401(
            false,
            "the registration access token is required",
        ));
    };
    let invalid = || bearer_401(true, "the registration access token is invalid");
    let id = client_id.to_owned();
    let (hash, client) = ctx
        .store
        .blocking(move |s| Ok((s.registration_access_token_hash(&id)?, s.client(&id)?)))
        .await?;
    match (hash, client) {
        (Some((h, policy)), Some(c)) if secret::verify_token_hash(token, &h) => {
            let policy = match policy {
                Some(p) => Policy::from_stored(Some(&p)),
                None => Policy::of_client(&c),
            };
            Ok((c, policy))
        }
        _ => Err(invalid()),
    }
}

/// RFC 7592 §2.1 read. The response repeats the registration access token the client
/// presented (it is stored only as a hash; it is not rotated).
pub async fn read(ctx: &Ctx, client_id: &str, token: Option<&str>) -> OAuthResult<Value> {
    let (c, _) = configured_client(ctx, client_id, token).await?;
    Ok(registration_response(
        ctx,
        &c,
        None,
        token.unwrap_or_default(),
    ))
}

/// RFC 7592 §2.2 update: replaces the registration with the request's metadata.
pub async fn update(
    ctx: &Ctx,
    client_id: &str,
    token: Option<&str>,
    body: OAuthResult<Value>,
    ip: Option<IpAddr>,
    now: i64,
) -> OAuthResult<Value> {
    let (existing, policy) = configured_client(ctx, client_id, token).await?;
    let req = ClientMetadataRequest::from_json(body?)?;
    if req.client_id.is_none() {
        return Err(OAuthError::invalid_request(
            "client_id is required in an update (RFC 7592 section 2.2)",
        ));
    }
    let new = req.update(&existing, Registrar::Dynamic, now)?;
    // A registered client cannot widen itself past what it was registered under.
    policy.check(&new.client)?;
    let c = new.client.clone();
    if !ctx.store.blocking(move |s| s.replace_client(&c)).await? {
        return Err(bearer_401(true, "the registration access token is invalid"));
    }
    audit::record(
        ctx,
        audit::entry(
            event::CLIENT_UPDATED,
            &Actor::Registration(client_id.to_owned()),
            ip,
            Some(format!("client:{client_id}")),
            audit::SUCCESS,
            json!({ "via": "registration" }),
            now,
        ),
    )
    .await;
    Ok(registration_response(
        ctx,
        &new.client,
        new.secret.as_deref(),
        token.unwrap_or_default(),
    ))
}

/// RFC 7592 §2.3 delete: the client, its registration and its grants are gone.
pub async fn delete(
    ctx: &Ctx,
    client_id: &str,
    token: Option<&str>,
    ip: Option<IpAddr>,
    now: i64,
) -> OAuthResult<()> {
    configured_client(ctx, client_id, token).await?;
    let id = client_id.to_owned();
    ctx.store
        .blocking(move |s| s.delete_client(&id, now))
        .await?;
    audit::record(
        ctx,
        audit::entry(
            event::CLIENT_DELETED,
            &Actor::Registration(client_id.to_owned()),
            ip,
            Some(format!("client:{client_id}")),
            audit::SUCCESS,
            json!({ "via": "registration" }),
            now,
        ),
    )
    .await;
    Ok(())
}
