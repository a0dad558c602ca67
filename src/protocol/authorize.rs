//! The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2, RFC 7636, RFC 9207).
//!
//! Validation is split in two: until the client and redirect URI are known good, every error is
//! [`AuthorizeError::Page`] (shown to the user, never redirected). Only [`AuthorizeRequest`]
//! holds a [`ValidatedRedirect`], and only this module can build one, so a redirect to an
//! unvalidated URI cannot be expressed.

use super::Ctx;
use super::audience;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::login::amr::Acr;
use super::params::Params;
use super::pkce;
use super::redirect_uri;
use super::scope::Scope;
use crate::model::{AuthCode, Client, ClientType, GrantType, Session};
use crate::secret;

/// A redirect URI that matched the client's registration. Private constructor.
#[derive(Debug, Clone)]
pub struct ValidatedRedirect(String);

impl ValidatedRedirect {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI with `params` appended to its query (RFC 6749 §4.1.2), plus `iss` (RFC 9207).
    fn with(&self, iss: &str, params: &[(&str, &str)]) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                {
                    let mut q = u.query_pairs_mut();
                    for (k, v) in params {
                        q.append_pair(k, v);
                    }
                    q.append_pair("iss", iss);
                }
                u.to_string()
            }
            // Unreachable: the URI parsed at validation. Fall back to the bare URI.
            Err(_) => self.0.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client: Client,
    pub redirect: ValidatedRedirect,
    pub redirect_uri_explicit: bool,
    pub state: Option<String>,
    pub scope: Scope,
    pub audiences: Vec<String>,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The least sign-in level this request needs: the client's (or the server's)
    /// `require_mfa` and the request's `acr_values` (`login::second_factor::required`).
    pub acr: Acr,
    /// RFC 9449 §10: bind the code to this DPoP key thumbprint.
    pub dpop_jkt: Option<String>,
    /// RFC 9126: the hash of the `request_uri` this request came from; issuing the code uses
    /// it up.
    pub pushed: Option<String>,
}

#[derive(Debug)]
pub enum AuthorizeError {
    /// Client or redirect URI not valid: render an error page; never redirect.
    Page(OAuthError),
    /// Send the error back to the client's validated redirect URI.
    Redirect(ErrorRedirect),
}

#[derive(Debug)]
pub struct ErrorRedirect {
    redirect: ValidatedRedirect,
    state: Option<String>,
    pub error: OAuthError,
}

impl ErrorRedirect {
    pub fn location(&self, iss: &str) -> String {
        let mut p: Vec<(&str, &str)> = vec![
            ("error", self.error.code.as_str()),
            ("error_description", &self.error.description),
        ];
        if let Some(s) = &self.state {
            p.push(("state", s));
        }
        self.redirect.with(iss, &p)
    }
}

impl AuthorizeRequest {
    pub fn error(&self, error: OAuthError) -> AuthorizeError {
        AuthorizeError::Redirect(ErrorRedirect {
            redirect: self.redirect.clone(),
            state: self.state.clone(),
            error,
        })
    }
}

/// Validates an authorization request as it reached `/authorize`: either a `request_uri` from
/// the pushed authorization request endpoint (RFC 9126 §4: its stored parameters are the
/// request, whatever else the URL says), or the parameters themselves, when the client and
/// the server do not require pushing.
pub async fn validate(
    ctx: &Ctx,
    params: &Params,
    now: i64,
) -> Result<AuthorizeRequest, AuthorizeError> {
    if let Some(request_uri) = params.get("request_uri") {
        let client_id = params.get("client_id").ok_or_else(|| {
            AuthorizeError::Page(OAuthError::invalid_request("client_id is missing"))
        })?;
        let resolved = super::par::resolve(ctx, client_id, request_uri, now)
            .await
            .map_err(AuthorizeError::Page)?;
        let mut req = validate_pushed(ctx, &resolved.params).await?;
        req.pushed = Some(resolved.request_hash);
        return Ok(req);
    }
    let req = match params.get("request") {
        Some(jwt) => {
            let client_id = params.get("client_id").ok_or_else(|| {
                AuthorizeError::Page(OAuthError::invalid_request("client_id is missing"))
            })?;
            let client = ctx
                .store
                .request_client(client_id)
                .await
                .map_err(|e| AuthorizeError::Page(e.into()))?
                .filter(|c| !c.disabled)
                .ok_or_else(|| {
                    AuthorizeError::Page(OAuthError::new(
                        ErrorCode::InvalidClient,
                        "unknown client",
                    ))
                })?;
            // RFC 9101 §6.3: only the object's parameters count.
            let inner = super::request_object::expand(ctx, &client, jwt, now)
                .await
                .map_err(AuthorizeError::Page)?;
            check(ctx, &inner).await?
        }
        None => {
            let req = check(ctx, params).await?;
            if req.client.require_signed_request_object {
                return Err(req.error(unsigned()));
            }
            req
        }
    };
    if req.client.require_pushed_authorization_requests
        || ctx.config.require_pushed_authorization_requests
    {
        return Err(req.error(OAuthError::invalid_request(
            "authorization requests must be pushed (RFC 9126): use the pushed authorization request endpoint",
        )));
    }
    Ok(req)
}

/// Validates a pushed request's stored parameters (RFC 9126 §2.1): the same rules as at
/// `/authorize`. A request object was verified and expanded when it was pushed, which
/// [`SIGNED`] records (only the server writes stored parameters).
pub async fn validate_pushed(
    ctx: &Ctx,
    params: &Params,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let req = check(ctx, params).await?;
    if req.client.require_signed_request_object && params.get(SIGNED).is_none() {
        return Err(req.error(unsigned()));
    }
    Ok(req)
}

/// In a pushed request's stored parameters: it came as a verified request object.
pub const SIGNED: &str = "latchkey_signed_request_object";

fn unsigned() -> OAuthError {
    OAuthError::invalid_request(
        "this client's authorization requests must be signed request objects (RFC 9101)",
    )
}

/// The checks every authorization request passes, pushed or not.
async fn check(ctx: &Ctx, params: &Params) -> Result<AuthorizeRequest, AuthorizeError> {
    let page = |code: ErrorCode, d: &'static str| AuthorizeError::Page(OAuthError::new(code, d));
    let client_id = params
        .get("client_id")
        .ok_or_else(|| page(ErrorCode::InvalidRequest, "client_id is missing"))?;
    let client = ctx
        .store
        .request_client(client_id)
        .await
        .map_err(|e| AuthorizeError::Page(e.into()))?
        .filter(|c| !c.disabled)
        .ok_or_else(|| page(ErrorCode::InvalidClient, "unknown client"))?;
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(page(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code flow",
        ));
    }
    let (redirect, explicit) = match params.get("redirect_uri") {
        Some(r) if redirect_uri::matches(&client.redirect_uris, r) => {
            (ValidatedRedirect(r.to_owned()), true)
        }
        Some(_) => {
            return Err(page(
                ErrorCode::InvalidRequest,
                "redirect_uri is not registered for this client",
            ));
        }
        None => match client.redirect_uris.as_slice() {
            [only] => (ValidatedRedirect(only.clone()), false),
            _ => return Err(page(ErrorCode::InvalidRequest, "redirect_uri is missing")),
        },
    };
    let state = params.get("state").map(str::to_owned);
    let fail = |e: OAuthError| {
        AuthorizeError::Redirect(ErrorRedirect {
            redirect: redirect.clone(),
            state: state.clone(),
            error: e,
        })
    };
    let result = (|| -> OAuthResult<AuthorizeRequest> {
        if params.get("request").is_some() {
            // Only from a request object's own claims, which never hold one.
            return Err(OAuthError::invalid_request("request cannot be nested"));
        }
        if params.get("request_uri").is_some() {
            // Only from a pushed request's parameters, which never hold one.
            return Err(OAuthError::invalid_request("request_uri cannot be nested"));
        }
        match params.get("response_type") {
            Some("code") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
            None => return Err(OAuthError::invalid_request("response_type is missing")),
        }
        if params.get("response_mode").is_some_and(|m| m != "query") {
            return Err(OAuthError::invalid_request(
                "only response_mode=query is supported",
            ));
        }
        let code_challenge = pkce::validate_challenge(
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        )?;
        let scope = Scope::narrow(params.get("scope"), client.allowed_scopes())?;
        let audiences = audience::select(
            &client,
            params.get_all("resource").collect(),
            Some(&ctx.config.issuer),
        )?;
        let mut prompt = Prompt::default();
        for p in params
            .get("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
        {
            match p {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => return Err(OAuthError::invalid_request("unsupported prompt value")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
        let dpop_jkt = match params.get("dpop_jkt") {
            Some(j) if super::dpop::is_thumbprint(j) => Some(j.to_owned()),
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
                ));
            }
            None => None,
        };
        let max_age = match params.get("max_age") {
            Some(m) => Some(m.parse::<u32>().map_err(|_| {
                OAuthError::invalid_request("max_age must be a non-negative integer")
            })? as i64),
            None => None,
        };
        Ok(AuthorizeRequest {
            client: client.clone(),
            redirect: redirect.clone(),
            redirect_uri_explicit: explicit,
            state: state.clone(),
            scope,
            audiences,
            code_challenge,
            nonce: params.get("nonce").map(str::to_owned),
            prompt,
            max_age,
            login_hint: params.get("login_hint").map(str::to_owned),
            acr: super::login::second_factor::required(
                &ctx.config,
                &client,
                params.get("acr_values"),
            ),
            dpop_jkt,
            pushed: None,
        })
    })();
    result.map_err(fail)
}

/// What the endpoint does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Login,
    Consent,
    /// Consent is already given (or not needed), but the server cannot tell which app is
    /// behind the redirect: the user confirms with one press ("Continue as alice").
    Confirm,
    Issue,
    /// The user has just signed in, but not as strongly as this request needs (`req.acr`):
    /// a password where a second factor is required, or no passkey where `phr` is asked.
    StrongerSignIn,
}

/// Decides between login, consent and issuing a code. `fresh_login`: the user has just entered
/// their password in this request, which satisfies `prompt=login` and `max_age`.
pub fn decide(
    req: &AuthorizeRequest,
    session: Option<&Session>,
    consented: Option<(&str, &str)>,
    fresh_login: bool,
    now: i64,
) -> Result<Step, AuthorizeError> {
    let need_login = match session {
        None => true,
        Some(s) => {
            !fresh_login
                && (req.prompt.login
                    || req.max_age.is_some_and(|m| m == 0 || now - s.auth_time > m)
                    // OIDC Core §3.1.2.1 `acr_values`, RFC 9470 step-up, `require_mfa`.
                    || Acr::of(&s.amr) < req.acr)
        }
    };
    if let Some(s) = session
        && fresh_login
        && Acr::of(&s.amr) < req.acr
    {
        return Ok(Step::StrongerSignIn);
    }
    if need_login {
        return if req.prompt.none {
            Err(req.error(OAuthError::new(
                ErrorCode::LoginRequired,
                "the user is not logged in",
            )))
        } else {
            Ok(Step::Login)
        };
    }
    if needs_consent(req, consented) {
        return if req.prompt.none {
            Err(req.error(OAuthError::new(
                ErrorCode::ConsentRequired,
                "the user has not consented",
            )))
        } else {
            Ok(Step::Consent)
        };
    }
    if !fresh_login && needs_confirmation(req) {
        return if req.prompt.none {
            Err(req.error(OAuthError::new(
                ErrorCode::InteractionRequired,
                "this app needs the user to confirm the sign-in",
            )))
        } else {
            Ok(Step::Confirm)
        };
    }
    Ok(Step::Issue)
}

/// RFC 8252 §8.6: for a public client whose redirect is a loopback address or a private-use
/// scheme, any app on the device could have sent the request and would receive the code, so
/// an earlier approval (or being first-party) is not enough: the user must act in this
/// request. A claimed `https` redirect is bound to the app by the platform (universal links,
/// app links), so single sign-on stays silent there, as it does for confidential clients,
/// which prove who they are at the token endpoint.
pub fn needs_confirmation(req: &AuthorizeRequest) -> bool {
    req.client.client_type == ClientType::Public && !req.redirect.as_str().starts_with("https://")
}

/// First-party clients never ask; others ask when `prompt=consent` or the remembered consent
/// `(scope, audience)` does not cover every requested scope *and* every audience the token
/// would be for: consent to reach one API is not consent to reach another.
pub fn needs_consent(req: &AuthorizeRequest, consented: Option<(&str, &str)>) -> bool {
    if req.client.first_party {
        return false;
    }
    if req.prompt.consent {
        return true;
    }
    let (scope, audience) = consented.unwrap_or(("", ""));
    let granted: Vec<&str> = scope.split(' ').collect();
    let reached: Vec<&str> = audience.split(' ').collect();
    !req.scope.iter().all(|s| granted.contains(&s))
        || !req.audiences.iter().all(|a| reached.contains(&a.as_str()))
}

/// What to remember after "Allow": the words (scopes or audiences) consented before and these.
/// Consent accumulates, so approving a narrower request never forgets an earlier approval.
pub fn remembered<'a>(before: Option<&'a str>, now: impl IntoIterator<Item = &'a str>) -> String {
    let mut all: Vec<&str> = before
        .unwrap_or("")
        .split(' ')
        .filter(|a| !a.is_empty())
        .collect();
    for a in now {
        if !a.is_empty() && !all.contains(&a) {
            all.push(a);
        }
    }
    all.join(" ")
}

/// Mints a code for the logged-in user and returns the redirect location (`code`, `state`, `iss`).
pub async fn issue_code(
    ctx: &Ctx,
    req: &AuthorizeRequest,
    session: &Session,
    now: i64,
) -> Result<String, AuthorizeError> {
    let code = secret::new_secret();
    let record = AuthCode {
        code_hash: secret::hash_token(&code),
        client_id: req.client.client_id.clone(),
        user_id: session.user_id.clone(),
        redirect_uri: req.redirect.as_str().to_owned(),
        redirect_uri_explicit: req.redirect_uri_explicit,
        code_challenge: req.code_challenge.clone(),
        scope: req.scope.to_string(),
        audiences: req.audiences.clone(),
        nonce: req.nonce.clone(),
        auth_time: session.auth_time,
        sid: session.sid.clone(),
        created_at: now,
        expires_at: now + ctx.config.code_ttl as i64,
        dpop_jkt: req.dpop_jkt.clone(),
        amr: session.amr.clone(),
    };
    let pushed = req.pushed.clone();
    let issued = ctx
        .store
        .write(move |s| {
            // RFC 9126 §4: one code per pushed request, decided with the code's insertion.
            if let Some(h) = &pushed
                && !s.take_pushed_request(h, now)?
            {
                return Ok(false);
            }
            s.insert_code(&record)?;
            Ok(true)
        })
        .await
        .map_err(|e| req.error(e.into()))?;
    if !issued {
        return Err(req.error(OAuthError::new(
            ErrorCode::InvalidRequestUri,
            "request_uri is expired or used already; start again from the app",
        )));
    }
    let mut p: Vec<(&str, &str)> = vec![("code", &code)];
    if let Some(s) = &req.state {
        p.push(("state", s));
    }
    Ok(req.redirect.with(&ctx.config.issuer, &p))
}

/// `access_denied` after the user pressed "Deny".
pub fn denied(req: &AuthorizeRequest) -> AuthorizeError {
    req.error(OAuthError::new(
        ErrorCode::AccessDenied,
        "the user denied the request",
    ))
}
