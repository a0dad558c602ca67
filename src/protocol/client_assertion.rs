//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9, with the
//! audience rule of draft-ietf-oauth-rfc7523bis): the client signs a short-lived JWT with a key
//! whose public half it registered (`jwks`), and sends it as `client_assertion`.
//!
//! Rules: `client_assertion_type` must be `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`;
//! the signature must verify with a registered key (by `kid`, else the only key of the right
//! type; registered as `jwks` or fetched from `jwks_uri`, see `client_keys.rs`) with an
//! asymmetric algorithm from [`ALGS`] equal to the key's own; `iss` and `sub`
//! are the client id; `aud` is exactly the issuer identifier, as a single string (an assertion
//! meant for another server, or for "any endpoint", is refused); `exp` is in the future and at
//! most [`MAX_LIFETIME`] seconds away; `jti` is present, and each (client, `jti`) is accepted
//! once, on every replica (the replay record goes with the DPoP ones, see
//! [`replay_key`]).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::error::{OAuthError, OAuthResult};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Algorithms accepted for client assertions (`token_endpoint_auth_signing_alg_values_supported`).
pub const ALGS: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// The longest an assertion may live (its replay record is kept that long). An hour: what
/// common client libraries sign by default (authlib: `exp = iat + 3600`); each assertion is
/// accepted once whatever its lifetime, so a longer one is no replay window, only a longer
/// record.
pub const MAX_LIFETIME: i64 = 3600;

/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY: u64 = 30;

/// Most keys a client may register.
const MAX_KEYS: usize = 10;

pub fn refused(cause: &str) -> OAuthError {
    OAuthError::new(
        super::error::ErrorCode::InvalidClient,
        "client authentication failed",
    )
    .with_cause(cause)
}

/// The client id an assertion names (`sub`, else `iss`), read before any verification, to find
/// the client.
pub fn claimed_client_id(jwt: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Names {
        sub: Option<String>,
        iss: Option<String>,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let n: Names = serde_json::from_slice(&bytes).ok()?;
    n.sub.or(n.iss).filter(|s| !s.is_empty() && s.len() <= 200)
}

/// Checks registered `jwks` metadata: a JWK set of at most [`MAX_KEYS`] public, asymmetric
/// keys that can verify one of [`ALGS`].
pub fn check_jwks(jwks: &serde_json::Value) -> Result<String, &'static str> {
    let text = jwks.to_string();
    if text.len() > 16 * 1024 {
        return Err("jwks is too large");
    }
    let keys = jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("jwks must be a JWK set: {\"keys\": [...]}")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err("jwks must hold 1 to 10 keys");
    }
    for k in keys {
        let private = ["d", "p", "q", "dp", "dq", "qi", "k"];
        if private.iter().any(|m| k.get(m).is_some()) {
            return Err("jwks must hold public keys only");
        }
        let jwk: Jwk = serde_json::from_value(k.clone())
            .map_err(|_| "jwks holds a key that is not a valid JWK")?;
        if !matches!(
            jwk.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_)
                | jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
                | jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_)
        ) {
            return Err("jwks keys must be EC, RSA or OKP public keys");
        }
        DecodingKey::from_jwk(&jwk).map_err(|_| "jwks holds a key that cannot be used")?;
    }
    Ok(text)
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: serde_json::Value,
    exp: i64,
    jti: String,
}

/// A verified assertion: what its replay record needs.
pub struct Verified {
    pub replay_key: String,
    pub expires_at: i64,
}

/// The registered key that must have signed `jwt`, and its algorithm: one of [`ALGS`], fitting
/// the key's type (and its `alg`, if registered), chosen by `kid` or as the only candidate.
/// Shared by client assertions and signed request objects (RFC 9101).
pub fn client_key(jwt: &str, jwks: &str) -> Result<(DecodingKey, Algorithm), &'static str> {
    let set: JwkSet = serde_json::from_str(jwks).map_err(|_| "stored jwks unreadable")?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| "malformed JWT")?;
    let alg = header.alg;
    let alg_name = format!("{alg:?}");
    if !ALGS.contains(&alg_name.as_str()) {
        return Err("algorithm not accepted");
    }
    use jsonwebtoken::jwk::AlgorithmParameters as Kty;
    let family = |j: &Jwk| {
        matches!(
            (&j.algorithm, alg),
            (Kty::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
                | (Kty::RSA(_), Algorithm::RS256 | Algorithm::PS256)
                | (Kty::OctetKeyPair(_), Algorithm::EdDSA)
        )
    };
    let candidates: Vec<&Jwk> = set
        .keys
        .iter()
        .filter(|j| family(j))
        .filter(|j| header.kid.is_none() || j.common.key_id == header.kid)
        .filter(|j| {
            j.common
                .key_algorithm
                .is_none_or(|ka| format!("{ka:?}") == alg_name)
        })
        .collect();
    let [key] = candidates.as_slice() else {
        return Err("no single registered key matches the JWT");
    };
    let decoding = DecodingKey::from_jwk(key).map_err(|_| "registered key unusable")?;
    Ok((decoding, alg))
}

/// Verifies `jwt` as an assertion of `client_id`, signed with `key` (the registered key
/// [`client_key`] chose, through `client_keys::ClientKeys::key_for`).
pub fn verify(
    jwt: &str,
    client_id: &str,
    key: (DecodingKey, Algorithm),
    issuer: &str,
    now: i64,
) -> OAuthResult<Verified> {
    let (decoding, alg) = key;
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[client_id]);
    let data = jsonwebtoken::decode::<Claims>(jwt, &decoding, &validation)
        .map_err(|e| refused(&format!("assertion refused: {e}")))?;
    let c = data.claims;
    if c.sub != client_id || c.iss != client_id {
        return Err(refused("iss and sub must be the client id"));
    }
    // draft-ietf-oauth-rfc7523bis §4: the issuer identifier, as a single string.
    if c.aud != serde_json::Value::String(issuer.to_owned()) {
        return Err(refused("aud must be the issuer identifier"));
    }
    if c.exp > now + MAX_LIFETIME {
        return Err(refused("assertion lives too long"));
    }
    if c.jti.is_empty() || c.jti.len() > 256 {
        return Err(refused("jti is missing or too long"));
    }
    Ok(Verified {
        replay_key: replay_key(client_id, &c.jti),
        expires_at: c.exp + LEEWAY as i64,
    })
}

/// The replay record of an assertion: kept in the table of DPoP proof records, under a key no
/// proof can have (a proof's key is the base64url SHA-256 of the proof key and `jti`; this one
/// is prefixed).
pub fn replay_key(client_id: &str, jti: &str) -> String {
    let mut input = Vec::with_capacity(client_id.len() + jti.len() + 1);
    input.extend_from_slice(client_id.as_bytes());
    input.push(0);
    input.extend_from_slice(jti.as_bytes());
    format!(
        "jwt:{}",
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &input))
    )
}
