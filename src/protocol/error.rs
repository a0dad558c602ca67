//! The closed set of protocol errors. Each carries a client-safe description and, optionally,
//! a private cause that is logged and never sent. Only `http::error` turns these into responses.

use std::borrow::Cow;

/// RFC 6749 §5.2 / §4.1.2.1, RFC 6750 §3.1, RFC 7009, RFC 8707, RFC 7591 and RFC 9449 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidToken,
    InsufficientScope,
    InvalidRedirectUri,
    InvalidClientMetadata,
    LoginRequired,
    ConsentRequired,
    /// OIDC Core §3.1.2.6: the user must act (confirm the sign-in) before a code is issued.
    InteractionRequired,
    /// RFC 8628 §3.5: the user has not decided yet; poll again after the interval.
    AuthorizationPending,
    /// RFC 8628 §3.5: polling too often; the interval grows by 5 s.
    SlowDown,
    /// RFC 8628 §3.5: the device_code expired.
    ExpiredToken,
    /// RFC 9101 §7 / OIDC Core §3.1.2.6: the `request_uri` is unknown, expired or used.
    InvalidRequestUri,
    /// RFC 9101 §6.3: the request object is not valid (signature, claims).
    InvalidRequestObject,
    ServerError,
    TemporarilyUnavailable,
    /// RFC 9449 §5, §7.1: the DPoP proof is missing, malformed or does not match the request.
    InvalidDpopProof,
    /// RFC 9449 §8, §9: a (fresh) server-provided nonce is required in the DPoP proof.
    UseDpopNonce,
    /// draft-ietf-oauth-attestation-based-client-auth §8: the client attestation PoP must carry
    /// a (fresh) server-provided challenge.
    UseAttestationChallenge,
    /// draft-ietf-oauth-attestation-based-client-auth §8 / `POST /attest`: the attestation was
    /// refused (the description names the reason).
    InvalidClientAttestation,
    /// Admin API (not an RFC code): the named resource does not exist (404).
    NotFound,
    /// Admin API (not an RFC code): the resource already exists (409).
    Conflict,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            InvalidScope => "invalid_scope",
            InvalidTarget => "invalid_target",
            AccessDenied => "access_denied",
            UnsupportedResponseType => "unsupported_response_type",
            UnsupportedTokenType => "unsupported_token_type",
            InvalidToken => "invalid_token",
            InsufficientScope => "insufficient_scope",
            InvalidRedirectUri => "invalid_redirect_uri",
            InvalidClientMetadata => "invalid_client_metadata",
            LoginRequired => "login_required",
            ConsentRequired => "consent_required",
            InteractionRequired => "interaction_required",
            AuthorizationPending => "authorization_pending",
            SlowDown => "slow_down",
            ExpiredToken => "expired_token",
            InvalidRequestUri => "invalid_request_uri",
            InvalidRequestObject => "invalid_request_object",
            ServerError => "server_error",
            TemporarilyUnavailable => "temporarily_unavailable",
            InvalidDpopProof => "invalid_dpop_proof",
            UseDpopNonce => "use_dpop_nonce",
            UseAttestationChallenge => "use_attestation_challenge",
            InvalidClientAttestation => "invalid_client_attestation",
            NotFound => "not_found",
            Conflict => "conflict",
        }
    }
}

/// Which HTTP authentication scheme the client tried, so a 401 can name it (RFC 6749 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    Basic,
    Bearer,
    /// RFC 9449 §7.1: the `DPoP` scheme of a protected resource (userinfo). Its refusals are
    /// 401 with a `DPoP` challenge naming the accepted proof algorithms.
    Dpop,
    /// RFC 6750 §3.1: the request carried no credentials at all, so the Bearer challenge
    /// names no error.
    BearerNoCredentials,
}

#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// Logged, never sent.
    pub cause: Option<String>,
    /// The scheme to name in `WWW-Authenticate` on a 401.
    pub challenge: Option<AuthScheme>,
    /// The scope a Bearer challenge names (RFC 6750 §3 `scope` attribute).
    pub required_scope: Option<&'static str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            cause: None,
            challenge: None,
            required_scope: None,
        }
    }

    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn with_challenge(mut self, scheme: Option<AuthScheme>) -> Self {
        self.challenge = scheme;
        self
    }

    pub fn invalid_dpop_proof(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidDpopProof, d)
    }

    pub fn with_required_scope(mut self, scope: &'static str) -> Self {
        self.required_scope = Some(scope);
        self
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }

    pub fn server_error(cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
        .with_cause(cause)
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(_) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the service is temporarily unavailable, retry later",
            )
            .with_cause(e),
            _ => OAuthError::server_error(e),
        }
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(e: crate::keys::KeyError) -> Self {
        OAuthError::server_error(e)
    }
}

pub type OAuthResult<T> = Result<T, OAuthError>;
