//! JWKS parsing: every usable JWK becomes a ready-to-use [`VerificationKey`], once.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::SetupError;

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// A JWK turned into what the hot path needs: the key parsed once, and a jsonwebtoken
/// [`Validation`] that allows exactly the key's algorithm.
pub(crate) struct VerificationKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
    pub(crate) validation: Validation,
}

/// What a key's validation checks besides the algorithm.
pub(crate) struct ClaimRules<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) leeway_secs: u64,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    // Private-key members: a JWKS that publishes them is compromised.
    #[serde(default)]
    d: Option<serde_json::Value>,
    #[serde(default)]
    k: Option<serde_json::Value>,
}

/// Parses a JWKS document. Keys that cannot be used safely are skipped (and logged with their
/// `kid`, which comes from the trusted issuer); an empty result is [`SetupError::NoUsableKeys`].
pub(crate) fn parse_jwks(
    body: &[u8],
    rules: &ClaimRules<'_>,
) -> Result<HashMap<String, VerificationKey>, SetupError> {
    let raw: RawJwks =
        serde_json::from_slice(body).map_err(|e| SetupError::InvalidJwks(e.to_string()))?;
    let mut keys = HashMap::with_capacity(raw.keys.len());
    for value in raw.keys {
        let jwk: RawJwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::warn!(error = %e, "skipping unparsable JWK");
                continue;
            }
        };
        let kid = jwk.kid.clone().unwrap_or_default();
        match convert(&jwk, rules) {
            Ok(key) => match keys.entry(kid) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    tracing::warn!(kid = %e.key(), "skipping JWK with a duplicate kid");
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(key);
                }
            },
            Err(reason) => tracing::warn!(kid = %kid, reason, "skipping JWK"),
        }
    }
    if keys.is_empty() {
        return Err(SetupError::NoUsableKeys);
    }
    Ok(keys)
}

fn convert(jwk: &RawJwk, rules: &ClaimRules<'_>) -> Result<VerificationKey, &'static str> {
    if jwk.kid.as_deref().is_none_or(str::is_empty) {
        return Err("no kid");
    }
    if jwk.d.is_some() || jwk.k.is_some() {
        return Err("contains private or symmetric key material");
    }
    if let Some(u) = &jwk.use_
        && u != "sig"
    {
        return Err("use is not sig");
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|o| o == "verify")
    {
        return Err("key_ops lacks verify");
    }
    let declared: Option<Algorithm> = match jwk.alg.as_deref() {
        None => None,
        Some(a) => Some(a.parse().map_err(|_| "unsupported alg")?),
    };
    let crv = jwk.crv.as_deref();
    let (alg, key) = match jwk.kty.as_str() {
        "EC" => {
            let (alg, len) = match (crv, declared) {
                (Some("P-256"), None | Some(Algorithm::ES256)) => (Algorithm::ES256, 32),
                (Some("P-384"), None | Some(Algorithm::ES384)) => (Algorithm::ES384, 48),
                _ => return Err("EC curve unsupported or inconsistent with alg"),
            };
            let x = jwk.x.as_deref().ok_or("EC key without x")?;
            let y = jwk.y.as_deref().ok_or("EC key without y")?;
            if b64_len(x) != Some(len) || b64_len(y) != Some(len) {
                return Err("EC coordinates have the wrong length");
            }
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| "bad EC key")?;
            (alg, key)
        }
        "OKP" => {
            if crv != Some("Ed25519") || !matches!(declared, None | Some(Algorithm::EdDSA)) {
                return Err("OKP curve unsupported or inconsistent with alg");
            }
            let x = jwk.x.as_deref().ok_or("OKP key without x")?;
            if b64_len(x) != Some(32) {
                return Err("Ed25519 key has the wrong length");
            }
            let key = DecodingKey::from_ed_components(x).map_err(|_| "bad Ed25519 key")?;
            (Algorithm::EdDSA, key)
        }
        "RSA" => {
            let alg = match declared {
                Some(
                    a @ (Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512),
                ) => a,
                // RS256 and PS256 share key material: without `alg` the algorithm is ambiguous.
                None => return Err("RSA key without alg"),
                Some(_) => return Err("RSA key with a non-RSA alg"),
            };
            let n = jwk.n.as_deref().ok_or("RSA key without n")?;
            let e = jwk.e.as_deref().ok_or("RSA key without e")?;
            let n_bytes = URL_SAFE_NO_PAD.decode(n).map_err(|_| "bad RSA modulus")?;
            let significant = n_bytes.iter().skip_while(|b| **b == 0).count();
            if significant * 8 < MIN_RSA_BITS {
                return Err("RSA modulus shorter than 2048 bits");
            }
            if b64_len(e).is_none_or(|l| l == 0 || l > 8) {
                return Err("bad RSA exponent");
            }
            let key = DecodingKey::from_rsa_components(n, e).map_err(|_| "bad RSA key")?;
            (alg, key)
        }
        "oct" => return Err("symmetric keys are never used"),
        _ => return Err("unsupported kty"),
    };
    Ok(VerificationKey {
        alg,
        key,
        validation: validation_for(alg, rules),
    })
}

/// jsonwebtoken's defaults are unsafe for us (60 s leeway, nbf unchecked, iss optional): set
/// every field explicitly.
fn validation_for(alg: Algorithm, rules: &ClaimRules<'_>) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.leeway = rules.leeway_secs;
    v.reject_tokens_expiring_in_less_than = 0;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[rules.issuer]);
    v.set_audience(&[rules.audience]);
    v.sub = None;
    v
}

fn b64_len(s: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(s).ok().map(|v| v.len())
}

/// The freshness lifetime a `Cache-Control` header grants: `max-age=N` seconds, zero for
/// `no-cache` / `no-store`, `None` when it says nothing usable.
pub(crate) fn cache_lifetime(header: Option<&str>) -> Option<Duration> {
    let header = header?;
    let mut max_age = None;
    for directive in header.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Some(secs) = value.and_then(|v| v.parse::<u64>().ok())
        {
            max_age = Some(Duration::from_secs(secs));
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(
            cache_lifetime(Some("public, max-age=300")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            cache_lifetime(Some("Max-Age=\"5\"")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            cache_lifetime(Some("max-age=300, no-cache")),
            Some(Duration::ZERO)
        );
        assert_eq!(cache_lifetime(Some("no-store")), Some(Duration::ZERO));
        assert_eq!(cache_lifetime(Some("public")), None);
        assert_eq!(cache_lifetime(Some("max-age=-1")), None);
        assert_eq!(cache_lifetime(None), None);
    }

    #[test]
    fn skips_unusable_keys() {
        let rules = ClaimRules {
            issuer: "i",
            audience: "a",
            leeway_secs: 0,
        };
        let p256 = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let jwks = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "EC", "crv": "P-256", "x": p256, "y": p256, "alg": "HS256", "kid": "e1"},
            {"kty": "EC", "crv": "P-256", "x": p256, "y": p256, "alg": "ES384", "kid": "e2"},
            {"kty": "EC", "crv": "P-256", "x": p256, "y": p256, "kid": "e3", "use": "enc"},
            {"kty": "EC", "crv": "P-256", "x": p256, "y": p256},
            {"kty": "EC", "crv": "P-256", "x": p256, "y": p256, "kid": "e4", "d": p256},
            {"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB", "kid": "r1", "alg": "RS256"},
            {"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 256]), "e": "AQAB", "kid": "r2"},
            {"kty": "weird"},
            "not an object",
            {"kty": "EC", "crv": "P-256", "x": p256, "y": p256, "kid": "ok", "alg": "ES256"},
            {"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 256]), "e": "AQAB", "kid": "ok2", "alg": "PS256"},
            {"kty": "EC", "crv": "P-256", "x": p256, "y": p256, "kid": "ok", "alg": "ES256"},
        ]});
        let keys = parse_jwks(jwks.to_string().as_bytes(), &rules).unwrap_or_default();
        let mut kids: Vec<&String> = keys.keys().collect();
        kids.sort();
        assert_eq!(kids, ["ok", "ok2"]);
        assert!(matches!(
            parse_jwks(br#"{"keys":[]}"#, &rules),
            Err(SetupError::NoUsableKeys)
        ));
        assert!(matches!(
            parse_jwks(b"[]", &rules),
            Err(SetupError::InvalidJwks(_))
        ));
    }
}
