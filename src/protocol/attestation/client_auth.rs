//! `attest_jwt_client_auth` (draft-ietf-oauth-attestation-based-client-auth §4-§5) at the token
//! and PAR endpoints: the client attestation JWT this server issued (`OAuth-Client-Attestation`)
//! and a proof of possession of its `cnf.jwk` (`OAuth-Client-Attestation-PoP`).
//!
//! Checks, in order: the client's mode (headers from a client without attestation, or none
//! from a client that requires it: `invalid_client`); the attestation JWT (`typ`, our key,
//! `iss`, `exp`, `sub` = the client, its app and level still allowed by the client's policy);
//! the PoP (`typ`, ES256 by `cnf.jwk`, `aud` = issuer, `iss` = the client if present, `jti`,
//! `iat` not in the future nor older than a challenge lives); its `challenge`
//! (`use_attestation_challenge` with a fresh one when missing or stale); then the `jti`,
//! recorded once on any replica (a replay is `invalid_client`).

use aws_lc_rs::{digest, signature};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Att, Mode, challenge};
use crate::model::Client;
use crate::protocol::Ctx;
use crate::protocol::error::{ErrorCode, OAuthError, OAuthResult};

/// Longest header value accepted (each).
const MAX_LEN: usize = 8 * 1024;
/// Longest PoP `jti`.
const MAX_JTI_LEN: usize = 256;
/// Seconds a PoP's `iat` may be ahead of the server's clock.
const FUTURE_LEEWAY: i64 = 5;
pub const POP_TYP: &str = "oauth-client-attestation-pop+jwt";

/// The attestation headers of a request.
#[derive(Debug, Clone, Copy, Default)]
pub enum Presented<'a> {
    #[default]
    Absent,
    Headers {
        attestation: &'a str,
        pop: Option<&'a str>,
    },
    /// A header repeated, not visible ASCII, too long, or a PoP without an attestation.
    Invalid,
}

impl<'a> Presented<'a> {
    /// From the raw values of every `OAuth-Client-Attestation` and `-PoP` header.
    pub fn from_values<A, P>(attestation: A, pop: P) -> Presented<'a>
    where
        A: IntoIterator<Item = &'a [u8]>,
        P: IntoIterator<Item = &'a [u8]>,
    {
        fn one<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> Result<Option<&'v str>, ()> {
            let mut it = values.into_iter();
            match (it.next(), it.next()) {
                (None, _) => Ok(None),
                (Some(v), None) if v.len() <= MAX_LEN => match std::str::from_utf8(v) {
                    Ok(s) if s.is_ascii() => Ok(Some(s.trim())),
                    _ => Err(()),
                },
                _ => Err(()),
            }
        }
        match (one(attestation), one(pop)) {
            (Ok(None), Ok(None)) => Presented::Absent,
            (Ok(Some(attestation)), Ok(pop)) => Presented::Headers { attestation, pop },
            _ => Presented::Invalid,
        }
    }
}

/// What a verified client attestation adds to a token request.
#[derive(Debug, Clone)]
pub struct Attested {
    pub att: Att,
    /// RFC 7638 thumbprint of the attested key.
    pub jkt: String,
}

fn refused(d: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, d)
}

/// Applies the client's attestation mode to what the request presented.
pub async fn authenticate(
    ctx: &Ctx,
    client: &Client,
    presented: Presented<'_>,
    now: i64,
) -> OAuthResult<Option<Attested>> {
    let mode = super::mode(client);
    let (attestation, pop) = match (presented, mode) {
        (Presented::Invalid, _) => {
            return Err(refused(
                "send one OAuth-Client-Attestation header and one OAuth-Client-Attestation-PoP header",
            ));
        }
        (Presented::Absent, Mode::Required) => {
            return Err(refused(
                "this client must authenticate with a client attestation (attest_jwt_client_auth)",
            ));
        }
        (Presented::Absent, _) => return Ok(None),
        (Presented::Headers { .. }, Mode::Off) => {
            return Err(refused("client attestation is not enabled for this client"));
        }
        (Presented::Headers { attestation, pop }, _) => (attestation, pop),
    };
    let pop = pop.ok_or_else(|| refused("the OAuth-Client-Attestation-PoP header is missing"))?;
    let policy = client
        .attestation
        .as_ref()
        .ok_or_else(|| refused("client attestation is not enabled for this client"))?;
    let claims = ctx
        .keys
        .verify_client_attestation(attestation, &ctx.config.issuer)
        .map_err(|e| refused("the client attestation is invalid or expired").with_cause(e))?;
    let issued = Issued::deserialize(&claims)
        .map_err(|e| refused("the client attestation is invalid or expired").with_cause(e))?;
    if issued.sub != client.client_id {
        return Err(refused("the client attestation is for another client"));
    }
    if !policy.still_allows(&issued.app, &issued.att.level) {
        return Err(refused(
            "the client attestation no longer satisfies this client's policy",
        ));
    }
    let jwk = issued
        .cnf
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or_else(|| refused("the client attestation has no cnf.jwk"))?;
    let proof = check_pop(pop, jwk, &client.client_id, &ctx.config.issuer, now)?;
    if !challenge::is_current(ctx, &proof.challenge, now)? {
        return Err(use_challenge());
    }
    let fresh = ctx
        .store
        .write(move |s| s.record_dpop_proof(&proof.replay_key, proof.expires_at))
        .await?;
    if !fresh {
        return Err(refused("the client attestation PoP was already used"));
    }
    let jkt = crate::protocol::dpop::thumbprint(jwk, "ES256")
        .ok_or_else(|| refused("the client attestation cnf.jwk is not a P-256 key"))?;
    Ok(Some(Attested {
        att: issued.att,
        jkt,
    }))
}

/// `use_attestation_challenge`: the HTTP layer attaches a fresh challenge.
pub fn use_challenge() -> OAuthError {
    OAuthError::new(
        ErrorCode::UseAttestationChallenge,
        "a fresh attestation challenge is required in the client attestation PoP",
    )
}

/// The claims of a client attestation JWT that `attest.rs` issued.
#[derive(Deserialize)]
struct Issued {
    sub: String,
    cnf: Map<String, Value>,
    att: Att,
    app: String,
}

#[derive(Deserialize)]
struct PopHeader {
    typ: Option<String>,
    alg: String,
    #[serde(default)]
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct PopClaims {
    #[serde(default)]
    iss: Option<String>,
    aud: Option<Value>,
    jti: Option<String>,
    iat: Option<serde_json::Number>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    challenge: Option<String>,
}

pub struct CheckedPop {
    pub challenge: String,
    pub replay_key: String,
    pub expires_at: i64,
}

/// The PoP checks that need no storage. Pure: `now` from the caller. `jwk` is the attested
/// key from a JWT this server signed (an EC P-256 public key).
pub fn check_pop(
    pop: &str,
    jwk: &Map<String, Value>,
    client_id: &str,
    issuer: &str,
    now: i64,
) -> OAuthResult<CheckedPop> {
    let bad = |d: &'static str| refused(d);
    let mut parts = pop.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the client attestation PoP is not a compact JWS"));
    };
    let header: PopHeader = URL_SAFE_NO_PAD
        .decode(h64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the client attestation PoP header is malformed"))?;
    if header.typ.as_deref() != Some(POP_TYP) {
        return Err(bad(
            "the client attestation PoP typ must be oauth-client-attestation-pop+jwt",
        ));
    }
    if header.crit.is_some() {
        return Err(bad(
            "the client attestation PoP has an unsupported crit header",
        ));
    }
    if header.alg != "ES256" {
        return Err(bad("the client attestation PoP must be signed with ES256"));
    }
    let point =
        ec_point(jwk).ok_or_else(|| bad("the client attestation cnf.jwk is not a P-256 key"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| bad("the client attestation PoP signature is malformed"))?;
    let signing_input = &pop[..h64.len() + 1 + p64.len()];
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signing_input.as_bytes(), &sig)
        .map_err(|_| bad("the client attestation PoP is not signed by the attested key"))?;
    let claims: PopClaims = URL_SAFE_NO_PAD
        .decode(p64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the client attestation PoP claims are malformed"))?;
    if claims.iss.as_deref().is_some_and(|i| i != client_id) {
        return Err(bad("the client attestation PoP iss is not the client"));
    }
    match &claims.aud {
        Some(Value::String(a)) if a == issuer => {}
        _ => {
            return Err(bad(
                "the client attestation PoP audience is not this server",
            ));
        }
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or_else(|| bad("the client attestation PoP needs a jti of 1 to 256 characters"))?;
    let seconds =
        |n: &serde_json::Number| n.as_i64().or_else(|| n.as_f64().map(|f| f.floor() as i64));
    let iat = claims
        .iat
        .as_ref()
        .and_then(seconds)
        .ok_or_else(|| bad("the client attestation PoP has no valid iat"))?;
    let max_age = challenge::lifetime() + 60;
    if iat > now.saturating_add(FUTURE_LEEWAY) {
        return Err(bad("the client attestation PoP was issued in the future"));
    }
    if iat < now.saturating_sub(max_age) {
        return Err(bad("the client attestation PoP is too old"));
    }
    if claims
        .exp
        .as_ref()
        .and_then(seconds)
        .is_some_and(|e| e < now)
    {
        return Err(bad("the client attestation PoP has expired"));
    }
    let challenge = claims.challenge.ok_or_else(use_challenge)?;
    let mut h = digest::Context::new(&digest::SHA256);
    h.update(b"attestation-pop\0");
    h.update(client_id.as_bytes());
    h.update(&[0]);
    h.update(jti.as_bytes());
    Ok(CheckedPop {
        challenge,
        replay_key: URL_SAFE_NO_PAD.encode(h.finish()),
        expires_at: iat.saturating_add(max_age).saturating_add(1),
    })
}

/// `0x04 ‖ x ‖ y` of a P-256 JWK.
fn ec_point(jwk: &Map<String, Value>) -> Option<Vec<u8>> {
    if jwk.get("kty")?.as_str()? != "EC" || jwk.get("crv")?.as_str()? != "P-256" {
        return None;
    }
    let x = URL_SAFE_NO_PAD.decode(jwk.get("x")?.as_str()?).ok()?;
    let y = URL_SAFE_NO_PAD.decode(jwk.get("y")?.as_str()?).ok()?;
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let mut point = Vec::with_capacity(65);
    point.push(4);
    point.extend(x);
    point.extend(y);
    Some(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_once_each() {
        let a: &[u8] = b"jwt";
        let p: &[u8] = b"pop";
        assert!(matches!(Presented::from_values([], []), Presented::Absent));
        assert!(matches!(
            Presented::from_values([a], [p]),
            Presented::Headers {
                attestation: "jwt",
                pop: Some("pop")
            }
        ));
        assert!(matches!(
            Presented::from_values([a], []),
            Presented::Headers { pop: None, .. }
        ));
        assert!(matches!(
            Presented::from_values([a, a], [p]),
            Presented::Invalid
        ));
        assert!(matches!(
            Presented::from_values([], [p]),
            Presented::Invalid
        ));
        let bad: &[u8] = &[0xff, 0xfe];
        assert!(matches!(
            Presented::from_values([bad], [p]),
            Presented::Invalid
        ));
    }

    #[test]
    fn a_pop_that_is_not_a_jws_is_refused_without_panic() {
        let jwk = Map::new();
        for pop in ["", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.AA"] {
            let e = check_pop(pop, &jwk, "app", "https://issuer", 1000)
                .err()
                .expect("refused");
            assert_eq!(e.code, ErrorCode::InvalidClient, "{pop}");
        }
    }
}
