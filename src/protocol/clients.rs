//! Client registration rules, shared by the CLI, the admin API and RFC 7591 registration.

use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::redirect_uri;
use super::scope::Scope;
use crate::model::{Client, ClientType, GrantType, TlsClientAuth};
use crate::secret;

/// The scope only `--admin` clients may hold.
pub const ADMIN_SCOPE: &str = "latchkey:admin";

#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    pub client_name: String,
    pub client_type: Option<ClientType>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scope: Option<String>,
    pub audiences: Vec<String>,
    pub first_party: bool,
    pub is_admin: bool,
    /// RFC 9449 §5.2 `dpop_bound_access_tokens`: refuse token requests without a DPoP proof.
    pub dpop_bound_access_tokens: bool,
    /// Origins allowed CORS access to the token, JWKS, discovery, userinfo and revocation
    /// endpoints (browser-based clients).
    pub allowed_origins: Vec<String>,
    /// RFC 9126 §6 `require_pushed_authorization_requests`.
    pub require_pushed_authorization_requests: bool,
    /// RFC 7591 `jwks`: authenticate with `private_key_jwt` (RFC 7523) instead of a secret.
    pub jwks: Option<serde_json::Value>,
    /// RFC 7591 `jwks_uri`: the same keys, published by the client at an https URL.
    pub jwks_uri: Option<String>,
    /// OpenID Connect Back-Channel Logout 1.0 `backchannel_logout_uri`.
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// RFC 9101 §10.5 `require_signed_request_object` (needs `jwks` or `jwks_uri`).
    pub require_signed_request_object: bool,
    /// RFC 8705 §2: authenticate with a TLS client certificate (`tls_client_auth` with the
    /// name it must carry, or `self_signed_tls_client_auth` with certificates in `jwks`).
    pub tls_client_auth: Option<TlsClientAuth>,
    /// RFC 8705 §3.4 `tls_client_certificate_bound_access_tokens`.
    pub tls_client_certificate_bound_access_tokens: bool,
    /// A password alone is not enough to sign in to this client (`Client::require_mfa`).
    pub require_mfa: bool,
    /// App attestation (`Client::attestation`); administrators only.
    pub attestation: Option<super::attestation::Policy>,
}

/// A new client and, for a confidential one, its secret (shown once, stored only as a hash).
pub struct NewClient {
    pub client: Client,
    pub secret: Option<String>,
}

fn metadata_error(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

pub fn create(spec: ClientSpec, now: i64) -> OAuthResult<NewClient> {
    let name = spec.client_name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(metadata_error("client_name must be 1 to 200 characters"));
    }
    if !crate::text::printable(name, 200) {
        // It is shown on the consent page and in the CLI: no control characters (forged
        // lines, terminal sequences) and no bidi overrides (a name that reads backwards).
        return Err(metadata_error(
            "client_name must not contain control or bidi formatting characters",
        ));
    }
    let client_type = spec
        .client_type
        .ok_or_else(|| metadata_error("client type is required"))?;
    for uri in spec
        .redirect_uris
        .iter()
        .chain(&spec.post_logout_redirect_uris)
    {
        redirect_uri::validate_for_registration(uri)?;
    }
    let mut grants: Vec<GrantType> = Vec::new();
    for g in &spec.grant_types {
        // `device_code` is short for the RFC 8628 URN (the CLI's `--grant device_code`).
        let g = GrantType::parse(g)
            .or_else(|| (g == "device_code").then_some(GrantType::DeviceCode))
            .ok_or_else(|| metadata_error(format!("unsupported grant type {g:?}")))?;
        if !grants.contains(&g) {
            grants.push(g);
        }
    }
    if grants.is_empty() {
        grants = match client_type {
            ClientType::Public => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            ClientType::Confidential if spec.redirect_uris.is_empty() => {
                vec![GrantType::ClientCredentials]
            }
            ClientType::Confidential => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        };
    }
    if client_type == ClientType::Public && grants.contains(&GrantType::ClientCredentials) {
        return Err(metadata_error(
            "a public client cannot use client_credentials: it cannot keep a secret",
        ));
    }
    if grants.contains(&GrantType::AuthorizationCode) && spec.redirect_uris.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "the authorization_code grant needs at least one redirect URI",
        ));
    }
    if grants.contains(&GrantType::RefreshToken)
        && !grants.contains(&GrantType::AuthorizationCode)
        && !grants.contains(&GrantType::DeviceCode)
    {
        return Err(metadata_error(
            "refresh_token is only issued with authorization_code or the device_code grant",
        ));
    }
    let mut scope = Scope::parse(spec.scope.as_deref().unwrap_or(""))
        .map_err(|_| metadata_error("scope contains invalid characters"))?;
    if scope.contains(ADMIN_SCOPE) && !spec.is_admin {
        return Err(metadata_error(
            "the latchkey:admin scope is granted only with --admin",
        ));
    }
    if spec.is_admin {
        if client_type != ClientType::Confidential
            || !grants.contains(&GrantType::ClientCredentials)
        {
            return Err(metadata_error(
                "an admin client must be confidential and use client_credentials",
            ));
        }
        if !scope.contains(ADMIN_SCOPE) {
            scope = Scope::parse(&format!("{scope} {ADMIN_SCOPE}"))
                .map_err(|_| metadata_error("scope"))?;
        }
    }
    let mut audiences: Vec<String> = Vec::new();
    for a in &spec.audiences {
        let u = url::Url::parse(a)
            .map_err(|_| metadata_error(format!("audience {a:?} must be an absolute URI")))?;
        if u.fragment().is_some() {
            return Err(metadata_error(format!(
                "audience {a:?} must not contain a fragment"
            )));
        }
        if !audiences.contains(a) {
            audiences.push(a.clone());
        }
    }
    let mut allowed_origins: Vec<String> = Vec::new();
    for o in &spec.allowed_origins {
        check_origin(o)?;
        if !allowed_origins.contains(o) {
            allowed_origins.push(o.clone());
        }
    }
    let jwks = match &spec.jwks {
        Some(_) if client_type != ClientType::Confidential => {
            return Err(metadata_error(
                "jwks is for confidential clients (private_key_jwt); a public client has no keys to prove",
            ));
        }
        Some(j) => Some(super::client_assertion::check_jwks(j).map_err(metadata_error)?),
        None => None,
    };
    let jwks_uri = match &spec.jwks_uri {
        Some(_) if jwks.is_some() => {
            return Err(metadata_error("send jwks or jwks_uri, not both"));
        }
        Some(_) if client_type != ClientType::Confidential => {
            return Err(metadata_error(
                "jwks_uri is for confidential clients (private_key_jwt); a public client has no keys to prove",
            ));
        }
        Some(u) => Some(check_jwks_uri(u)?),
        None => None,
    };
    let has_keys = jwks.is_some() || jwks_uri.is_some();
    let backchannel_logout_uri = match &spec.backchannel_logout_uri {
        Some(u) => Some(check_backchannel_logout_uri(u)?),
        None => None,
    };
    if spec.require_signed_request_object && !has_keys {
        return Err(metadata_error(
            "require_signed_request_object needs jwks or jwks_uri (the keys request objects are signed with)",
        ));
    }
    check_tls_client_auth(&spec, client_type, has_keys)?;
    let attestation = match spec.attestation {
        Some(p) => Some(check_attestation(p, client_type)?),
        None => None,
    };
    // A client with keys or a certificate proves itself with them: no secret to leak.
    let secret =
        (client_type == ClientType::Confidential && !has_keys && spec.tls_client_auth.is_none())
            .then(secret::new_secret);
    let client = Client {
        client_id: secret::random_id(),
        client_name: name.to_owned(),
        client_type,
        secret_hash: secret.as_deref().map(secret::hash_token),
        redirect_uris: spec.redirect_uris,
        post_logout_redirect_uris: spec.post_logout_redirect_uris,
        grant_types: grants,
        scope: scope.to_string(),
        audiences,
        first_party: spec.first_party,
        is_admin: spec.is_admin,
        disabled: false,
        created_at: now,
        updated_at: now,
        dpop_bound_access_tokens: spec.dpop_bound_access_tokens,
        allowed_origins,
        require_pushed_authorization_requests: spec.require_pushed_authorization_requests,
        jwks,
        jwks_uri,
        backchannel_logout_uri,
        backchannel_logout_session_required: spec.backchannel_logout_session_required,
        require_signed_request_object: spec.require_signed_request_object,
        tls_client_auth: spec.tls_client_auth,
        tls_client_certificate_bound_access_tokens: spec.tls_client_certificate_bound_access_tokens,
        require_mfa: spec.require_mfa,
        attestation,
    };
    Ok(NewClient { client, secret })
}

/// An attestation policy in its stored form; one that is on is for public clients only.
pub fn check_attestation(
    policy: super::attestation::Policy,
    client_type: ClientType,
) -> OAuthResult<super::attestation::Policy> {
    let p = policy
        .checked()
        .map_err(|e| metadata_error(format!("attestation: {e}")))?;
    if p.mode != super::attestation::Mode::Off && client_type != ClientType::Public {
        return Err(metadata_error(
            "attestation is for public clients (mobile apps): a confidential client proves itself with its credentials",
        ));
    }
    Ok(p)
}

/// RFC 8705 §2 rules: certificate authentication is for confidential clients; a PKI client
/// names one non-empty subject DN or SAN; a self-signed one registers its certificates (`x5c`)
/// in `jwks` or `jwks_uri`. Bound tokens are for confidential clients here: a public client's
/// refresh tokens would have to be bound too (§4), and DPoP does that already.
fn check_tls_client_auth(
    spec: &ClientSpec,
    client_type: ClientType,
    has_keys: bool,
) -> OAuthResult<()> {
    if spec.tls_client_certificate_bound_access_tokens && client_type != ClientType::Confidential {
        return Err(metadata_error(
            "tls_client_certificate_bound_access_tokens is for confidential clients; a public client binds its tokens with DPoP",
        ));
    }
    let Some(auth) = &spec.tls_client_auth else {
        return Ok(());
    };
    if client_type != ClientType::Confidential {
        return Err(metadata_error(
            "tls_client_auth and self_signed_tls_client_auth are for confidential clients",
        ));
    }
    match auth {
        TlsClientAuth::Pki(name) => {
            let v = name.value();
            if v.trim().is_empty() || v.len() > 500 || !crate::text::printable(v, 500) {
                return Err(metadata_error(format!(
                    "{} must be 1 to 500 printable characters",
                    name.metadata_name()
                )));
            }
            if let crate::model::CertName::SanIp(ip) = name
                && ip.parse::<std::net::IpAddr>().is_err()
            {
                return Err(metadata_error(
                    "tls_client_auth_san_ip must be an IPv4 or IPv6 address",
                ));
            }
            if let crate::model::CertName::SubjectDn(dn) = name
                && !super::mtls::valid_dn(dn)
            {
                return Err(metadata_error(
                    "tls_client_auth_subject_dn must be an RFC 4514 distinguished name, like CN=payments,O=Example",
                ));
            }
        }
        TlsClientAuth::SelfSigned => {
            let registered = match &spec.jwks {
                Some(j) => super::mtls::has_registered_certificates(j),
                None => has_keys,
            };
            if !registered {
                return Err(metadata_error(
                    "self_signed_tls_client_auth needs the client's certificates: jwks with x5c, or jwks_uri",
                ));
            }
        }
    }
    Ok(())
}

/// A CORS origin as a browser sends it (RFC 6454 §6.2 serialization): `https://host[:port]`,
/// or `http://` on a loopback host for development; lower case, no path, no trailing slash,
/// never `*` or `null`. Compared byte for byte with the `Origin` header.
fn check_origin(o: &str) -> OAuthResult<()> {
    let bad = || {
        metadata_error(
            "allowed_origins: each must be an origin like https://app.example (scheme, host and optional port only)",
        )
    };
    let url = url::Url::parse(o).map_err(|_| bad())?;
    let secure = match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain("localhost"))) => true,
        _ => false,
    };
    if !secure || o.len() > 300 || url.origin().ascii_serialization() != o {
        return Err(bad());
    }
    Ok(())
}

/// A `jwks_uri`: https, or plain http on a loopback host for development (fetched only when
/// `outbound_allow_private_addresses` is on). Where it may point is checked on every fetch,
/// against the addresses its host resolves to then (`crate::outbound`).
fn check_jwks_uri(u: &str) -> OAuthResult<String> {
    check_outbound_uri(u).map_err(|why| metadata_error(format!("jwks_uri {why}")))
}

/// A URL the server will call: https, or http on a loopback host; no credentials, no
/// fragment, no private IP literal.
fn check_outbound_uri(u: &str) -> Result<String, String> {
    let bad = |why: &str| why.to_owned();
    let url = crate::outbound::Fetcher::check_url(u, true).map_err(|e| bad(&e.to_string()))?;
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    let loopback = ip.map_or(url.host_str() == Some("localhost"), |ip| ip.is_loopback());
    if url.scheme() != "https" && !loopback {
        return Err(bad("must be https"));
    }
    if ip.is_some_and(|ip| !ip.is_loopback() && !crate::outbound::is_public(ip)) {
        return Err(bad("names a private, link-local or reserved address"));
    }
    Ok(u.to_owned())
}

/// Back-Channel Logout 1.0 §2.2: an absolute https URL (or http on a loopback host, for
/// development; delivered only with `outbound_allow_private_addresses`), no fragment; a query
/// is kept. Where it may point is checked on every delivery (`crate::outbound`).
fn check_backchannel_logout_uri(u: &str) -> OAuthResult<String> {
    check_outbound_uri(u).map_err(|why| metadata_error(format!("backchannel_logout_uri {why}")))
}

/// RFC 7591 §2 `token_endpoint_auth_method` of a client.
pub fn auth_method(c: &Client) -> &'static str {
    if let Some(t) = &c.tls_client_auth {
        return t.method();
    }
    match (c.client_type, c.has_keys()) {
        (ClientType::Public, _)
            if super::attestation::mode(c) == super::attestation::Mode::Required =>
        {
            super::attestation::AUTH_METHOD
        }
        (ClientType::Public, _) => "none",
        (ClientType::Confidential, true) => "private_key_jwt",
        (ClientType::Confidential, false) => "client_secret_basic",
    }
}

/// RFC 7591 §2 metadata view of a client (never the secret hash).
pub fn metadata(c: &Client) -> serde_json::Value {
    let mut m = serde_json::json!({
        "client_id": c.client_id,
        "client_name": c.client_name,
        "client_type": c.client_type.as_str(),
        "token_endpoint_auth_method": auth_method(c),
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": if c.allows_grant(GrantType::AuthorizationCode) { vec!["code"] } else { vec![] },
        "scope": c.scope,
        "audience": c.audiences,
        "first_party": c.first_party,
        "admin": c.is_admin,
        "disabled": c.disabled,
        "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
        "allowed_origins": c.allowed_origins,
        "require_pushed_authorization_requests": c.require_pushed_authorization_requests,
        "require_signed_request_object": c.require_signed_request_object,
        "jwks": c.jwks.as_deref().and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()),
        "jwks_uri": c.jwks_uri,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "backchannel_logout_session_required": c.backchannel_logout_session_required,
        "client_id_issued_at": c.created_at,
        "tls_client_certificate_bound_access_tokens": c.tls_client_certificate_bound_access_tokens,
        "require_mfa": c.require_mfa,
        "attestation": c.attestation,
    });
    if let Some(TlsClientAuth::Pki(name)) = &c.tls_client_auth {
        m[name.metadata_name()] = serde_json::json!(name.value());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(t: ClientType) -> ClientSpec {
        ClientSpec {
            client_name: "app".into(),
            client_type: Some(t),
            ..Default::default()
        }
    }

    #[test]
    fn public_client_cannot_use_client_credentials() {
        let s = ClientSpec {
            grant_types: vec!["client_credentials".into()],
            ..spec(ClientType::Public)
        };
        assert_eq!(
            create(s, 0).err().map(|e| e.code),
            Some(ErrorCode::InvalidClientMetadata)
        );
    }

    #[test]
    fn code_flow_needs_a_valid_redirect_uri() {
        let s = spec(ClientType::Public);
        assert_eq!(
            create(s, 0).err().map(|e| e.code),
            Some(ErrorCode::InvalidRedirectUri)
        );
        let s = ClientSpec {
            redirect_uris: vec!["http://evil.example/cb".into()],
            ..spec(ClientType::Public)
        };
        assert_eq!(
            create(s, 0).err().map(|e| e.code),
            Some(ErrorCode::InvalidRedirectUri)
        );
    }

    #[test]
    fn admin_scope_only_with_admin_flag() {
        let s = ClientSpec {
            scope: Some("latchkey:admin".into()),
            ..spec(ClientType::Confidential)
        };
        assert_eq!(
            create(s, 0).err().map(|e| e.code),
            Some(ErrorCode::InvalidClientMetadata)
        );
        let s = ClientSpec {
            is_admin: true,
            ..spec(ClientType::Confidential)
        };
        let c = create(s, 0).ok().unwrap();
        assert!(c.client.scope.contains("latchkey:admin"));
        assert!(c.secret.is_some());
    }

    #[test]
    fn secret_is_stored_only_as_hash() {
        let c = create(spec(ClientType::Confidential), 0).ok().unwrap();
        let secret = c.secret.unwrap();
        assert_ne!(c.client.secret_hash.as_deref(), Some(secret.as_str()));
        assert!(secret::verify_token_hash(
            &secret,
            c.client.secret_hash.as_deref().unwrap()
        ));
    }
}
