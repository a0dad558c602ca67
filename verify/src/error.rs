//! Errors, and their RFC 6750 mapping.

use std::fmt;

/// Why a request or token was refused.
///
/// Every variant maps to an RFC 6750 error: [`VerifyError::error_code`],
/// [`VerifyError::status`] and [`VerifyError::www_authenticate`] give the values a resource
/// server must answer with. None of them echo anything taken from the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request carries no bearer token (no `Authorization` header, or another scheme).
    /// RFC 6750 §3.1: 401 with no error code.
    MissingToken,
    /// The request is malformed (e.g. `Authorization: Bearer` with no token, two
    /// `Authorization` headers, a token in the URL). 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// Not a compact JWS (wrong number of parts, bad base64, bad header JSON, too long).
    Malformed,
    /// The header `alg` is `none`, an HMAC algorithm, or not a known asymmetric algorithm.
    UnsupportedAlgorithm,
    /// The header has no `kid`.
    MissingKeyId,
    /// The header `kid` names no key of the issuer's JWKS (even after the permitted refetch).
    UnknownKeyId,
    /// The header `alg` differs from the algorithm of the key named by `kid`.
    AlgorithmMismatch,
    /// The header has a `crit` parameter; no critical extension is supported.
    CriticalHeader,
    /// The header `typ` is not `at+jwt` (RFC 9068 §4): e.g. an ID token.
    InvalidType,
    /// The signature does not verify with the key.
    InvalidSignature,
    /// A required claim is missing or has the wrong type.
    InvalidClaims,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// `iss` is not exactly the expected issuer.
    InvalidIssuer,
    /// `aud` does not contain the expected audience.
    InvalidAudience,
    /// The token is sender-constrained (`cnf`, e.g. DPoP-bound `cnf.jkt`) but was presented as
    /// a plain bearer token.
    SenderConstrained,
    /// RFC 9449: the DPoP proof is missing, malformed, for another request, too old, replayed,
    /// or its `ath` does not match the token. 401 `invalid_dpop_proof`.
    InvalidDpopProof(&'static str),
    /// RFC 9449 §7.1: the DPoP proof is valid but signed by another key than the one the token
    /// is bound to (`cnf.jkt`). 401 `invalid_token`.
    DpopKeyMismatch,
    /// A token presented with the `DPoP` scheme is not DPoP-bound (no `cnf.jkt`). 401
    /// `invalid_token`.
    NotDpopBound,
    /// RFC 8705 §3: [`Verifier::verify_mtls`](crate::Verifier::verify_mtls) was given a token
    /// that is not bound to a client certificate (no `cnf.x5t#S256`). 401 `invalid_token`.
    NotMtlsBound,
    /// RFC 8705 §3: the token is bound to another client certificate than the one this
    /// request's TLS connection presented. 401 `invalid_token`.
    CertificateMismatch,
    /// The DPoP replay cache has no room for this proof (more live proofs than it was sized
    /// for): refused rather than unchecked. 503, retry later.
    DpopReplayCacheFull,
    /// The token is valid but lacks scopes. 403 `insufficient_scope`.
    InsufficientScope {
        /// The scopes the resource requires (all of them).
        required: Vec<String>,
    },
    /// RFC 9470: the token is valid, but the user's sign-in was not strong enough (`acr`) or
    /// not recent enough (`auth_time`) for this resource. 401
    /// `insufficient_user_authentication`; the challenge carries `acr_values` / `max_age`, and
    /// the app asks the authorization server again with them (step-up).
    InsufficientUserAuthentication {
        /// The `acr` values this resource accepts, space-separated (empty: any).
        acr_values: String,
        /// The most seconds since the sign-in this resource accepts.
        max_age: Option<u64>,
    },
    /// The token is valid, but the app holding it did not prove itself by platform
    /// attestation (no `att` claim, or a development-level one) and this resource needs the
    /// genuine app. 403 `invalid_client_attestation` (the error code of
    /// draft-ietf-oauth-attestation-based-client-auth).
    NotAttested,
}

impl VerifyError {
    /// The RFC 6750 error code: `invalid_request`, `invalid_token`, `insufficient_scope`, or
    /// `None` when the request carried no token at all.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            VerifyError::MissingToken => None,
            VerifyError::InvalidRequest(_) => Some("invalid_request"),
            VerifyError::InsufficientScope { .. } => Some("insufficient_scope"),
            VerifyError::InsufficientUserAuthentication { .. } => {
                Some("insufficient_user_authentication")
            }
            VerifyError::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
            VerifyError::NotAttested => Some("invalid_client_attestation"),
            VerifyError::DpopReplayCacheFull => None,
            _ => Some("invalid_token"),
        }
    }

    /// The HTTP status to answer with: 400, 401, 403 (or 503 for
    /// [`VerifyError::DpopReplayCacheFull`]).
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::InvalidRequest(_) => 400,
            VerifyError::InsufficientScope { .. } | VerifyError::NotAttested => 403,
            VerifyError::DpopReplayCacheFull => 503,
            _ => 401,
        }
    }

    /// Whether this is an `invalid_token` error (the token itself was refused).
    pub fn is_invalid_token(&self) -> bool {
        self.error_code() == Some("invalid_token")
    }

    /// A short human-readable description, safe to send to the client (it never contains
    /// anything taken from the request).
    pub fn description(&self) -> &'static str {
        match self {
            VerifyError::MissingToken => "no bearer token in the request",
            VerifyError::InvalidRequest(d) => d,
            VerifyError::Malformed => "the access token is malformed",
            VerifyError::UnsupportedAlgorithm => "the access token algorithm is not accepted",
            VerifyError::MissingKeyId => "the access token has no key id",
            VerifyError::UnknownKeyId => "the access token signing key is unknown",
            VerifyError::AlgorithmMismatch => {
                "the access token algorithm does not match its signing key"
            }
            VerifyError::CriticalHeader => "the access token has an unsupported critical header",
            VerifyError::InvalidType => "the token is not an access token (typ must be at+jwt)",
            VerifyError::InvalidSignature => "the access token signature is invalid",
            VerifyError::InvalidClaims => "the access token claims are missing or malformed",
            VerifyError::Expired => "the access token expired",
            VerifyError::NotYetValid => "the access token is not yet valid",
            VerifyError::IssuedInFuture => "the access token was issued in the future",
            VerifyError::InvalidIssuer => "the access token issuer is not trusted",
            VerifyError::InvalidAudience => "the access token is not intended for this resource",
            VerifyError::SenderConstrained => {
                "the access token is sender-constrained and cannot be used as a bearer token"
            }
            VerifyError::InsufficientScope { .. } => "the access token lacks the required scope",
            VerifyError::InsufficientUserAuthentication { .. } => {
                "a stronger or more recent sign-in is required"
            }
            VerifyError::InvalidDpopProof(d) => d,
            VerifyError::DpopKeyMismatch => {
                "invalid DPoP key binding: the proof is signed by another key than the token's"
            }
            VerifyError::NotDpopBound => {
                "the access token is not DPoP-bound: present it as a bearer token"
            }
            VerifyError::DpopReplayCacheFull => {
                "too many DPoP proofs to check for replay right now; retry shortly"
            }
            VerifyError::NotMtlsBound => "the access token is not bound to a client certificate",
            VerifyError::CertificateMismatch => {
                "the access token is bound to another client certificate"
            }
            VerifyError::NotAttested => {
                "this call needs the genuine app: the token carries no production attestation"
            }
        }
    }

    /// The `WWW-Authenticate` response header value (RFC 6750 §3), e.g.
    /// `Bearer error="invalid_token", error_description="the access token expired"`.
    ///
    /// A request without a token gets a bare `Bearer` challenge, as RFC 6750 §3.1 asks.
    pub fn www_authenticate(&self) -> String {
        self.www_authenticate_with_realm(None)
    }

    /// The `WWW-Authenticate` value for a request that used the `DPoP` scheme (RFC 9449 §7.1),
    /// e.g. `DPoP error="invalid_dpop_proof", error_description="...", algs="ES256 PS256"`.
    /// `algs` lists the accepted proof algorithms, space-separated.
    pub fn www_authenticate_dpop(&self, algs: &str) -> String {
        let mut params = self.params(None);
        params.push(format!("algs=\"{}\"", quoted_safe(algs)));
        format!("DPoP {}", params.join(", "))
    }

    fn params(&self, realm: Option<&str>) -> Vec<String> {
        let mut params: Vec<String> = Vec::with_capacity(4);
        if let Some(realm) = realm {
            params.push(format!("realm=\"{}\"", quoted_safe(realm)));
        }
        if let Some(code) = self.error_code() {
            params.push(format!("error=\"{code}\""));
            params.push(format!(
                "error_description=\"{}\"",
                quoted_safe(self.description())
            ));
        }
        if let VerifyError::InsufficientScope { required } = self {
            let scope: Vec<String> = required.iter().map(|s| quoted_safe(s)).collect();
            params.push(format!("scope=\"{}\"", scope.join(" ")));
        }
        if let VerifyError::InsufficientUserAuthentication {
            acr_values,
            max_age,
        } = self
        {
            if !acr_values.is_empty() {
                params.push(format!("acr_values=\"{}\"", quoted_safe(acr_values)));
            }
            if let Some(m) = max_age {
                params.push(format!("max_age={m}"));
            }
        }
        params
    }

    /// Like [`VerifyError::www_authenticate`], with a `realm` parameter first.
    pub fn www_authenticate_with_realm(&self, realm: Option<&str>) -> String {
        let params = self.params(realm);
        if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        }
    }
}

/// Keeps only the characters RFC 6750 allows inside these quoted values
/// (%x20-21 / %x23-5B / %x5D-7E: printable ASCII without `"` and `\`).
fn quoted_safe(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(*c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error_code() {
            Some(code) => write!(f, "{code}: {}", self.description()),
            None => f.write_str(self.description()),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Why a [`crate::Verifier`] could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// A URL (issuer, discovery or JWKS) could not be parsed.
    InvalidUrl(String),
    /// A URL uses plain `http` on a host that is not loopback, and
    /// [`crate::VerifierBuilder::allow_insecure_http`] was not set.
    InsecureUrl(String),
    /// An `https` URL was given but the crate was built without its `tls` feature.
    TlsDisabled(String),
    /// The HTTP client could not be built.
    HttpClient(String),
    /// Fetching a document failed (connection error, timeout, non-200 status, too large).
    Fetch {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The discovery document is not valid JSON or lacks `issuer` / `jwks_uri`.
    InvalidDiscovery(String),
    /// The discovery document's `issuer` is not exactly the configured issuer
    /// (OpenID Connect Discovery §4.3).
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// The JWKS is not valid JSON.
    InvalidJwks(String),
    /// The JWKS holds no key this crate can use (asymmetric, with `kid` and a known algorithm).
    NoUsableKeys,
    /// The configuration is contradictory (e.g. an empty issuer or audience).
    InvalidConfig(&'static str),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::InvalidUrl(u) => write!(f, "invalid URL: {u}"),
            SetupError::InsecureUrl(u) => write!(
                f,
                "refusing plain http URL on a non-loopback host: {u} (use https, or allow_insecure_http)"
            ),
            SetupError::TlsDisabled(u) => write!(
                f,
                "https URL {u} needs the `tls` feature of latchkey-verify"
            ),
            SetupError::HttpClient(e) => write!(f, "cannot build the HTTP client: {e}"),
            SetupError::Fetch { url, reason } => write!(f, "fetching {url} failed: {reason}"),
            SetupError::InvalidDiscovery(e) => write!(f, "invalid discovery document: {e}"),
            SetupError::IssuerMismatch { expected, found } => write!(
                f,
                "the discovery document names issuer {found:?}, expected exactly {expected:?}"
            ),
            SetupError::InvalidJwks(e) => write!(f, "invalid JWKS: {e}"),
            SetupError::NoUsableKeys => f.write_str("the JWKS holds no usable signing key"),
            SetupError::InvalidConfig(e) => write!(f, "invalid configuration: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert_eq!(VerifyError::MissingToken.www_authenticate(), "Bearer");
        assert_eq!(
            VerifyError::Expired.www_authenticate(),
            "Bearer error=\"invalid_token\", error_description=\"the access token expired\""
        );
        assert_eq!(
            VerifyError::InsufficientScope {
                required: vec!["api:read".into(), "a\"b".into()]
            }
            .www_authenticate_with_realm(Some("api")),
            "Bearer realm=\"api\", error=\"insufficient_scope\", \
             error_description=\"the access token lacks the required scope\", scope=\"api:read ab\""
        );
        assert_eq!(VerifyError::InvalidRequest("x").status(), 400);
        assert_eq!(VerifyError::Malformed.status(), 401);
    }
}
