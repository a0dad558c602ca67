//! OpenID Connect Discovery 1.0 / RFC 8414 metadata: advertises only what is implemented.

use serde_json::{Value, json};

use crate::config::Config;

pub const AUTHORIZE_PATH: &str = "/authorize";
pub const TOKEN_PATH: &str = "/token";
pub const JWKS_PATH: &str = "/jwks";
pub const USERINFO_PATH: &str = "/userinfo";
pub const REVOKE_PATH: &str = "/revoke";
pub const INTROSPECT_PATH: &str = "/introspect";
pub const END_SESSION_PATH: &str = "/end_session";

pub fn metadata(config: &Config) -> Value {
    let iss = &config.issuer;
    let mut id_token_algs = vec![config.id_token_alg.as_str()];
    if !id_token_algs.contains(&"RS256") {
        id_token_algs.push("RS256");
    }
    let mut client_auth = vec![
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    // RFC 8705 §2: only where a client certificate can reach the server (its own TLS, or a
    // trusted proxy's header); `tls_client_auth` also needs the CAs to check against.
    if config.client_certificates() {
        if config.tls_client_ca.is_some() {
            client_auth.push("tls_client_auth");
        }
        client_auth.push("self_signed_tls_client_auth");
    }
    let mut with_none = client_auth.clone();
    with_none.push("none");
    // draft-ietf-oauth-attestation-based-client-auth: at the token and PAR endpoints only.
    let mut token_auth = with_none.clone();
    token_auth.push(super::attestation::AUTH_METHOD);
    let mut doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{iss}{TOKEN_PATH}"),
        "jwks_uri": format!("{iss}{JWKS_PATH}"),
        "userinfo_endpoint": format!("{iss}{USERINFO_PATH}"),
        "revocation_endpoint": format!("{iss}{REVOKE_PATH}"),
        "introspection_endpoint": format!("{iss}{INTROSPECT_PATH}"),
        "end_session_endpoint": format!("{iss}{END_SESSION_PATH}"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "registration_endpoint": format!("{iss}{}", super::registration::REGISTRATION_PATH),
        // RFC 9126 §5.
        // RFC 8628 §4.
        "device_authorization_endpoint": format!("{iss}{}", super::device::DEVICE_AUTHORIZATION_PATH),
        "pushed_authorization_request_endpoint": format!("{iss}{}", super::par::PAR_PATH),
        "require_pushed_authorization_requests": config.require_pushed_authorization_requests,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": token_auth,
        // RFC 7523 client assertions (OIDC Discovery §3).
        "token_endpoint_auth_signing_alg_values_supported": super::client_assertion::ALGS,
        "revocation_endpoint_auth_methods_supported": with_none,
        "revocation_endpoint_auth_signing_alg_values_supported": super::client_assertion::ALGS,
        "introspection_endpoint_auth_signing_alg_values_supported": super::client_assertion::ALGS,
        "introspection_endpoint_auth_methods_supported": client_auth,
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "at_hash", "azp", "sid", "name", "preferred_username", "email", "email_verified", "updated_at"],
        "prompt_values_supported": ["none", "login", "consent"],
        // OIDC Core §3.1.2.1 `acr_values` (weakest first; `login::amr`), RFC 9470 step-up.
        "acr_values_supported": super::login::amr::ACR_VALUES,
        "authorization_response_iss_parameter_supported": true,
        // RFC 9101: signed request objects by value; by reference only through PAR.
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": super::client_assertion::ALGS,
        "require_signed_request_object": false,
        "request_uri_parameter_supported": false,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_algs,
        "access_token_signing_alg_values_supported": [config.access_token_alg.as_str()],
        // RFC 9449 §5.1.
        "dpop_signing_alg_values_supported": super::dpop::ALGS,
    });
    // draft-ietf-oauth-attestation-based-client-auth: the challenge endpoint and algorithms;
    // `attestation_endpoint` (Latchkey) verifies App Attest / Key Attestation statements and
    // issues the client attestation JWT (docs/attestation.md).
    let attestation = json!({
        "challenge_endpoint": format!("{iss}{}", super::attestation::CHALLENGE_PATH),
        "attestation_endpoint": format!("{iss}{}", super::attestation::ATTEST_PATH),
        "client_attestation_signing_alg_values_supported": [config.access_token_alg.as_str()],
        "client_attestation_pop_signing_alg_values_supported": ["ES256"],
        "client_attestation_pop_methods_supported": ["attestation_pop_jwt"],
    });
    if let (Some(doc), Value::Object(more)) = (doc.as_object_mut(), attestation) {
        doc.extend(more);
    }
    // RFC 8705 §3.3 and §5.
    if let Some(base) = config.mtls_base() {
        doc["tls_client_certificate_bound_access_tokens"] = json!(true);
        doc["mtls_endpoint_aliases"] = json!({
            "token_endpoint": format!("{base}{TOKEN_PATH}"),
            "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
            "introspection_endpoint": format!("{base}{INTROSPECT_PATH}"),
            "userinfo_endpoint": format!("{base}{USERINFO_PATH}"),
            "pushed_authorization_request_endpoint": format!("{base}{}", super::par::PAR_PATH),
            "device_authorization_endpoint": format!("{base}{}", super::device::DEVICE_AUTHORIZATION_PATH),
        });
    }
    doc
}
