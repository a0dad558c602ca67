//! RFC 9449 DPoP: checking the proof a client sends in the `DPoP` header (§4.3), server-provided
//! nonces (§8), and the RFC 7638 thumbprint (`jkt`) tokens are bound to (§6.1).
//!
//! Every proof is accepted at most once, on any replica: its `jti` (hashed with the proof key's
//! thumbprint) is inserted into the `dpop_proofs` table, whose primary key turns a second
//! insertion into a replay; rows expire when the proof would be refused by age anyway and the
//! housekeeping task deletes them, so the table holds at most one window of proofs.
//!
//! Nonces are stateless: `base64url(window ‖ HMAC-SHA256(key, window))` where `window` is the
//! current [`NONCE_WINDOW`]-second slot and the key is derived with HKDF from the KEK that all
//! replicas share; a nonce is accepted during its slot and the next one.

use aws_lc_rs::{digest, hmac, signature};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Ctx;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use crate::model::{Client, ClientType, TokenFamily};

/// Proof algorithms accepted (asymmetric only), advertised as
/// `dpop_signing_alg_values_supported` and in `DPoP` challenges.
pub const ALGS: [&str; 5] = ["ES256", "ES384", "EdDSA", "RS256", "PS256"];
/// Longest `DPoP` header accepted.
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` accepted (RFC 9449 §11.1: reject unnecessarily large values).
const MAX_JTI_LEN: usize = 256;
/// Seconds a proof's `iat` may be ahead of the server's clock.
pub const FUTURE_LEEWAY: i64 = 5;
/// Nonce slot length: a nonce is accepted during its slot and the next, 60 to 120 s.
pub const NONCE_WINDOW: i64 = 60;
/// HKDF purpose of the nonce MAC key.
const NONCE_KEY_PURPOSE: &[u8] = b"latchkey dpop-nonce v1";

/// What the request carried in its `DPoP` header(s).
#[derive(Debug, Clone, Copy)]
pub enum Header<'a> {
    Absent,
    One(&'a str),
    /// More than one `DPoP` header, or a value that is not visible ASCII: refused (§4.3 1-2).
    Invalid,
}

impl<'a> Header<'a> {
    /// From the raw values of every `DPoP` header of a request.
    pub fn from_values<I: IntoIterator<Item = &'a [u8]>>(values: I) -> Header<'a> {
        let mut it = values.into_iter();
        match (it.next(), it.next()) {
            (None, _) => Header::Absent,
            (Some(v), None) => match std::str::from_utf8(v) {
                Ok(s) if s.is_ascii() => Header::One(s.trim()),
                _ => Header::Invalid,
            },
            (Some(_), Some(_)) => Header::Invalid,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Header::Absent)
    }
}

/// The request the proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// HTTP method, exactly (`POST`, `GET`).
    pub method: &'a str,
    /// The target URI without query and fragment (the issuer's endpoint URL).
    pub htu: &'a str,
    /// The same endpoint's RFC 8705 §5 mTLS alias (`mtls_endpoint_base`), also accepted.
    pub htu_alias: Option<&'a str>,
    /// The access token presented with the proof at a protected resource: the proof's `ath`
    /// must be its hash (§4.3 12).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof key: what tokens are bound to (`cnf.jkt`).
    pub jkt: String,
    /// base64url(SHA-256(jkt ‖ 0 ‖ jti)): the replay-detection key.
    pub replay_key: String,
    /// When the proof stops being acceptable anyway; its replay record may go after that.
    pub expires_at: i64,
}

/// Checks a `DPoP` header and records the proof so it is never accepted again (on any
/// replica). `Ok(None)` when the request has no `DPoP` header. Refusals are
/// `invalid_dpop_proof`, or `use_dpop_nonce` with a fresh nonce when `dpop_require_nonce` is set
/// and the proof's nonce is missing or stale.
pub async fn verify(
    ctx: &Ctx,
    header: Header<'_>,
    expect: Expect<'_>,
    now: i64,
) -> OAuthResult<Option<Proof>> {
    let proof = match header {
        Header::Absent => return Ok(None),
        Header::Invalid => {
            return Err(OAuthError::invalid_dpop_proof(
                "exactly one DPoP header with one proof JWT is required",
            ));
        }
        Header::One(p) => p,
    };
    let nonces = if ctx.config.dpop_require_nonce {
        Some(
            ctx.keys
                .kek()
                .mac_key(NONCE_KEY_PURPOSE)
                .ok_or_else(|| OAuthError::server_error("cannot derive the DPoP nonce key"))?,
        )
    } else {
        None
    };
    let checked = check(
        proof,
        &expect,
        ctx.config.dpop_proof_max_age as i64,
        nonces.as_ref(),
        now,
    )?;
    let (key, exp) = (checked.replay_key.clone(), checked.expires_at);
    let fresh = ctx
        .store
        .write(move |s| s.record_dpop_proof(&key, exp))
        .await?;
    if !fresh {
        return Err(OAuthError::invalid_dpop_proof(
            "the DPoP proof was already used",
        ));
    }
    Ok(Some(checked))
}

/// RFC 9449 §5: the key a new refresh family is bound to — the proof's, for a public client
/// (a confidential client's refresh tokens are already bound to its credentials).
pub fn refresh_binding(client: &Client, dpop_jkt: Option<&str>) -> Option<String> {
    (client.client_type == ClientType::Public)
        .then(|| dpop_jkt.map(str::to_owned))
        .flatten()
}

/// Whether a refresh with this proof may use a token of this family: a bound family needs a
/// proof by its key. A missing proof is `invalid_dpop_proof`; a proof by another key is
/// `invalid_grant` (the proof is fine, the refresh token is not the client's to use).
pub fn check_refresh_binding(family: &TokenFamily, dpop_jkt: Option<&str>) -> OAuthResult<()> {
    match (family.dpop_jkt.as_deref(), dpop_jkt) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(OAuthError::invalid_dpop_proof(
            "the refresh token is bound to a DPoP key: a DPoP proof is required",
        )),
        (Some(bound), Some(presented)) if bound == presented => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant(
            "the refresh token is bound to another DPoP key",
        )),
    }
}

/// RFC 9449 §10: a code from an authorization request with `dpop_jkt` is redeemed only with a
/// proof by that key (a missing proof: `invalid_dpop_proof`; another key: `invalid_grant`).
pub fn check_code_binding(code_jkt: Option<&str>, dpop_jkt: Option<&str>) -> OAuthResult<()> {
    match (code_jkt, dpop_jkt) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(OAuthError::invalid_dpop_proof(
            "the code is bound to a DPoP key (dpop_jkt): a DPoP proof is required",
        )),
        (Some(bound), Some(presented)) if bound == presented => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant(
            "the code is bound to another DPoP key (dpop_jkt)",
        )),
    }
}

/// Whether `s` looks like an RFC 7638 SHA-256 thumbprint: 43 base64url characters (32 bytes).
pub fn is_thumbprint(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32)
}

/// A fresh nonce to hand out (`DPoP-Nonce`), when nonces are required.
pub fn current_nonce(ctx: &Ctx, now: i64) -> Option<String> {
    if !ctx.config.dpop_require_nonce {
        return None;
    }
    let key = ctx.keys.kek().mac_key(NONCE_KEY_PURPOSE)?;
    Some(make_nonce(&key, now))
}

/// `base64url(slot as 8 bytes big-endian ‖ HMAC-SHA256(key, "dpop-nonce" ‖ slot))`.
pub fn make_nonce(key: &hmac::Key, now: i64) -> String {
    super::slot_token::make(key, b"dpop-nonce", now.div_euclid(NONCE_WINDOW))
}

/// The slot of a nonce this server made, if it is authentic and current (this slot or the
/// previous one).
fn nonce_slot(key: &hmac::Key, nonce: &str, now: i64) -> Option<i64> {
    super::slot_token::slot_of(key, b"dpop-nonce", nonce, now, NONCE_WINDOW, 2)
}

#[derive(Deserialize)]
struct ProofHeader {
    #[serde(default)]
    typ: Option<String>,
    alg: String,
    #[serde(default)]
    jwk: Option<Map<String, Value>>,
    #[serde(default)]
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct ProofClaims {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    htm: Option<String>,
    #[serde(default)]
    htu: Option<String>,
    #[serde(default)]
    iat: Option<serde_json::Number>,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

fn invalid(d: &'static str) -> OAuthError {
    OAuthError::invalid_dpop_proof(d)
}

/// The checks of RFC 9449 §4.3 that need no storage: syntax, `typ`, `alg`, the public `jwk`,
/// signature, `htm`, `htu`, `iat` (or the nonce's time), `ath`, and the nonce when `nonce_key` is
/// given. Pure: `now` comes from the caller.
pub fn check(
    proof: &str,
    expect: &Expect<'_>,
    max_age: i64,
    nonce_key: Option<&hmac::Key>,
    now: i64,
) -> OAuthResult<Proof> {
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(invalid("the DPoP proof is empty or too long"));
    }
    let mut parts = proof.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("the DPoP proof is not a compact JWS"));
    };
    let header: ProofHeader = URL_SAFE_NO_PAD
        .decode(h64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("the DPoP proof header is malformed"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(invalid("the DPoP proof typ must be dpop+jwt"));
    }
    if header.crit.is_some() {
        return Err(invalid("the DPoP proof has an unsupported crit header"));
    }
    let alg = ALGS
        .iter()
        .copied()
        .find(|a| *a == header.alg)
        .ok_or_else(|| invalid("the DPoP proof algorithm is not accepted"))?;
    let jwk = header
        .jwk
        .ok_or_else(|| invalid("the DPoP proof header has no jwk"))?;
    let key = PublicKey::from_jwk(&jwk, alg)?;
    let sig = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| invalid("the DPoP proof signature is malformed"))?;
    let signing_input = &proof[..h64.len() + 1 + p64.len()];
    if !key.verify(signing_input.as_bytes(), &sig) {
        return Err(invalid("the DPoP proof signature is invalid"));
    }
    let claims: ProofClaims = URL_SAFE_NO_PAD
        .decode(p64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("the DPoP proof claims are malformed"))?;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| invalid("the DPoP proof has no jti"))?;
    if jti.len() > MAX_JTI_LEN {
        return Err(invalid("the DPoP proof jti is too long"));
    }
    if claims.htm.as_deref() != Some(expect.method) {
        return Err(invalid("the DPoP proof is for another HTTP method"));
    }
    let htu = claims
        .htu
        .ok_or_else(|| invalid("the DPoP proof has no htu"))?;
    let matches = |want: &str| normalize_htu(&htu).is_some_and(|h| Some(h) == normalize_htu(want));
    if !matches(expect.htu) && !expect.htu_alias.is_some_and(matches) {
        return Err(invalid("the DPoP proof is for another URL"));
    }
    let iat = claims
        .iat
        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f.floor() as i64)))
        .ok_or_else(|| invalid("the DPoP proof has no valid iat"))?;
    if let Some(token) = expect.access_token {
        let want = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()));
        if claims.ath.as_deref() != Some(want.as_str()) {
            return Err(invalid(
                "the DPoP proof ath does not match the access token",
            ));
        }
    }
    let expires_at = match nonce_key {
        // §4.3 11: with server nonces, the creation time is the nonce's: the client's clock
        // does not matter.
        Some(key) => {
            let stale = || {
                // The HTTP layer attaches the current nonce (`current_nonce`) to the answer.
                OAuthError::new(
                    ErrorCode::UseDpopNonce,
                    "a fresh server-provided nonce is required in the DPoP proof",
                )
            };
            let nonce = claims.nonce.as_deref().ok_or_else(stale)?;
            let slot = nonce_slot(key, nonce, now).ok_or_else(stale)?;
            (slot + 2) * NONCE_WINDOW
        }
        None => {
            if iat > now.saturating_add(FUTURE_LEEWAY) {
                return Err(invalid("the DPoP proof was issued in the future"));
            }
            if iat < now.saturating_sub(max_age) {
                return Err(invalid("the DPoP proof is too old"));
            }
            iat.saturating_add(max_age).saturating_add(1)
        }
    };
    let jkt = key.thumbprint;
    let mut h = digest::Context::new(&digest::SHA256);
    h.update(jkt.as_bytes());
    h.update(&[0]);
    h.update(jti.as_bytes());
    let replay_key = URL_SAFE_NO_PAD.encode(h.finish());
    Ok(Proof {
        jkt,
        replay_key,
        expires_at,
    })
}

/// The proof's public key, checked against `alg`, and its RFC 7638 thumbprint.
struct PublicKey {
    alg: &'static str,
    /// EC point (0x04 ‖ x ‖ y) or Ed25519 key; for RSA the modulus.
    bytes: Vec<u8>,
    /// RSA public exponent.
    e: Vec<u8>,
    thumbprint: String,
}

/// JWK members that carry private or symmetric key material (RFC 7518 §6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl PublicKey {
    fn from_jwk(jwk: &Map<String, Value>, alg: &'static str) -> OAuthResult<PublicKey> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(invalid("the DPoP proof jwk must not contain a private key"));
        }
        let member = |name: &str| -> OAuthResult<&str> {
            jwk.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("the DPoP proof jwk lacks a member its key type needs"))
        };
        let bytes_of = |name: &str| -> OAuthResult<Vec<u8>> {
            URL_SAFE_NO_PAD
                .decode(member(name)?)
                .map_err(|_| invalid("the DPoP proof jwk has a malformed member"))
        };
        if let Some(a) = jwk.get("alg")
            && a.as_str() != Some(alg)
        {
            return Err(invalid(
                "the DPoP proof jwk alg differs from the header alg",
            ));
        }
        let kty = member("kty")?;
        let canonical = |members: &[(&str, &str)]| -> String {
            // RFC 7638 §3: required members only, lexicographic order, no whitespace.
            let fields: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(*k), Value::from(*v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        let (bytes, e, canonical) = match (alg, kty) {
            ("ES256" | "ES384", "EC") => {
                let (crv, len) = if alg == "ES256" {
                    ("P-256", 32)
                } else {
                    ("P-384", 48)
                };
                if member("crv")? != crv {
                    return Err(invalid("the DPoP proof jwk curve does not match alg"));
                }
                let (x, y) = (bytes_of("x")?, bytes_of("y")?);
                if x.len() != len || y.len() != len {
                    return Err(invalid("the DPoP proof jwk has the wrong key size"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let c = canonical(&[
                    ("crv", crv),
                    ("kty", "EC"),
                    ("x", member("x")?),
                    ("y", member("y")?),
                ]);
                (point, vec![], c)
            }
            ("EdDSA", "OKP") => {
                if member("crv")? != "Ed25519" {
                    return Err(invalid("the DPoP proof jwk curve is not Ed25519"));
                }
                let x = bytes_of("x")?;
                if x.len() != 32 {
                    return Err(invalid("the DPoP proof jwk has the wrong key size"));
                }
                let c = canonical(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", member("x")?)]);
                (x, vec![], c)
            }
            ("RS256" | "PS256", "RSA") => {
                let n = bytes_of("n")?;
                let e = bytes_of("e")?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) || e.is_empty() || e.len() > 8 {
                    return Err(invalid("the DPoP proof RSA key size is not accepted"));
                }
                let c = canonical(&[("e", member("e")?), ("kty", "RSA"), ("n", member("n")?)]);
                (n, e, c)
            }
            _ => return Err(invalid("the DPoP proof jwk key type does not match alg")),
        };
        let thumbprint =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        Ok(PublicKey {
            alg,
            bytes,
            e,
            thumbprint,
        })
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let unparsed = |a: &'static dyn signature::VerificationAlgorithm| {
            signature::UnparsedPublicKey::new(a, &self.bytes)
                .verify(msg, sig)
                .is_ok()
        };
        let rsa = |p: &'static signature::RsaParameters| {
            signature::RsaPublicKeyComponents {
                n: &self.bytes,
                e: &self.e,
            }
            .verify(p, msg, sig)
            .is_ok()
        };
        match self.alg {
            "ES256" => unparsed(&signature::ECDSA_P256_SHA256_FIXED),
            "ES384" => unparsed(&signature::ECDSA_P384_SHA384_FIXED),
            "EdDSA" => unparsed(&signature::ED25519),
            "RS256" => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            "PS256" => rsa(&signature::RSA_PSS_2048_8192_SHA256),
            _ => false,
        }
    }
}

/// `htu` comparison form (RFC 9449 §4.3, RFC 3986 §6.2.2-6.2.3): parsed as a URL (scheme and
/// host lower-cased, default port dropped, dot-segments removed, empty path = `/`), query,
/// fragment and user info dropped, percent-encodings upper-cased and unreserved characters
/// decoded. `None` for anything but an absolute http(s) URL.
pub fn normalize_htu(s: &str) -> Option<String> {
    let once = normalize_once(s)?;
    // The url crate's serialization does not always parse back to the same URL: fuzzing found
    // inputs (a `@` in the path, percent-encodings across it) whose normal form changes on a
    // second pass. Such a URL is no one's endpoint: it is refused, never compared.
    (normalize_once(&once)? == once).then_some(once)
}

fn normalize_once(s: &str) -> Option<String> {
    let mut url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    let path = normalize_percent_encoding(url.path());
    url.set_path(&path);
    Some(url.to_string())
}

fn normalize_percent_encoding(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            let v = hex(b[i + 1]) * 16 + hex(b[i + 2]);
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(b[i + 1].to_ascii_uppercase() as char);
                out.push(b[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// RFC 7638 thumbprint of a JSON JWK (for tests and tools): the same value [`check`] binds to.
pub fn thumbprint(jwk: &Map<String, Value>, alg: &'static str) -> Option<String> {
    PublicKey::from_jwk(jwk, alg).ok().map(|k| k.thumbprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    const NOW: i64 = 1_900_000_000;
    const HTU: &str = "https://id.example.com/token";

    struct Key(EcdsaKeyPair);

    impl Key {
        fn new() -> Key {
            Key(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
        }
        fn jwk(&self) -> Value {
            let p = self.0.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256",
                   "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..])})
        }
        fn sign(&self, header: Value, claims: Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self.0.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
        fn proof(&self, claims: Value) -> String {
            self.sign(
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()}),
                claims,
            )
        }
    }

    fn claims() -> Value {
        json!({"jti": "j-1", "htm": "POST", "htu": HTU, "iat": NOW})
    }

    fn expect() -> Expect<'static> {
        Expect {
            method: "POST",
            htu: HTU,
            htu_alias: None,
            access_token: None,
        }
    }

    fn err(r: OAuthResult<Proof>) -> (ErrorCode, String) {
        let e = r.unwrap_err();
        (e.code, e.description.into_owned())
    }

    #[test]
    fn a_good_proof_binds_to_the_rfc7638_thumbprint() {
        let k = Key::new();
        let p = check(&k.proof(claims()), &expect(), 60, None, NOW).unwrap();
        let jwk = k.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        let want = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        assert_eq!(p.jkt, want);
        assert_eq!(p.expires_at, NOW + 61);
    }

    #[test]
    fn request_mismatches_and_time_are_refused() {
        let k = Key::new();
        let with = |change: Value| {
            let mut c = claims();
            for (name, v) in change.as_object().unwrap() {
                c[name] = v.clone();
            }
            check(&k.proof(c), &expect(), 60, None, NOW)
        };
        for bad in [
            json!({"htm": "GET"}),
            json!({"htu": "https://id.example.com/userinfo"}),
            json!({"htu": "https://other.example.com/token"}),
            json!({"iat": NOW - 61}),
            json!({"iat": NOW + 6}),
            json!({"jti": ""}),
            json!({"jti": "x".repeat(300)}),
            json!({"iat": "now"}),
        ] {
            assert_eq!(
                err(with(bad.clone())).0,
                ErrorCode::InvalidDpopProof,
                "{bad}"
            );
        }
        // Query, fragment, case and default port are not part of the comparison.
        for ok in [
            "https://ID.example.com:443/token?x=1#f",
            "https://id.example.com/%74oken",
        ] {
            assert!(with(json!({"htu": ok})).is_ok(), "{ok}");
        }
    }

    /// RFC 8705 §5: a proof for the endpoint's mTLS alias is accepted only when that alias is
    /// configured, and names that endpoint, not another.
    #[test]
    fn the_mtls_alias_url_is_accepted_only_when_configured() {
        let k = Key::new();
        let alias = "https://mtls.example.com/token";
        let mut c = claims();
        c["htu"] = json!(alias);
        let proof = k.proof(c);
        assert_eq!(
            err(check(&proof, &expect(), 60, None, NOW)).0,
            ErrorCode::InvalidDpopProof
        );
        let with_alias = Expect {
            htu_alias: Some(alias),
            ..expect()
        };
        assert!(check(&proof, &with_alias, 60, None, NOW).is_ok());
        assert!(check(&k.proof(claims()), &with_alias, 60, None, NOW).is_ok());
        for other in [
            "https://mtls.example.com/userinfo",
            "https://mtls.example.org/token",
        ] {
            let mut c = claims();
            c["htu"] = json!(other);
            assert_eq!(
                err(check(&k.proof(c), &with_alias, 60, None, NOW)).0,
                ErrorCode::InvalidDpopProof,
                "{other}"
            );
        }
    }

    #[test]
    fn header_rules() {
        let k = Key::new();
        let mut private = k.jwk();
        private["d"] = json!(URL_SAFE_NO_PAD.encode([1u8; 32]));
        for header in [
            json!({"typ": "JWT", "alg": "ES256", "jwk": k.jwk()}),
            json!({"alg": "ES256", "jwk": k.jwk()}),
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": k.jwk()}),
            json!({"typ": "dpop+jwt", "alg": "none", "jwk": k.jwk()}),
            json!({"typ": "dpop+jwt", "alg": "ES256"}),
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
            json!({"typ": "dpop+jwt", "alg": "ES384", "jwk": k.jwk()}),
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk(), "crit": ["x"]}),
        ] {
            let p = k.sign(header.clone(), claims());
            assert_eq!(
                err(check(&p, &expect(), 60, None, NOW)).0,
                ErrorCode::InvalidDpopProof,
                "{header}"
            );
        }
        // Another key's signature.
        let other = Key::new();
        let forged = other.sign(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk()}),
            claims(),
        );
        assert_eq!(
            err(check(&forged, &expect(), 60, None, NOW)).1,
            "the DPoP proof signature is invalid"
        );
        for junk in ["", "a.b", "a.b.c", "a.b.c.d", "%%%.e30.AA"] {
            assert!(check(junk, &expect(), 60, None, NOW).is_err());
        }
    }

    #[test]
    fn ath_binds_the_access_token() {
        let k = Key::new();
        let ath = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, b"the.token.value"));
        let mut c = claims();
        c["ath"] = json!(ath);
        let exp = Expect {
            access_token: Some("the.token.value"),
            ..expect()
        };
        assert!(check(&k.proof(c.clone()), &exp, 60, None, NOW).is_ok());
        let other = Expect {
            access_token: Some("another.token"),
            ..expect()
        };
        assert!(check(&k.proof(c), &other, 60, None, NOW).is_err());
        assert!(check(&k.proof(claims()), &exp, 60, None, NOW).is_err());
    }

    #[test]
    fn nonces() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"other");
        let n = make_nonce(&key, NOW);
        assert!(nonce_slot(&key, &n, NOW).is_some());
        assert!(nonce_slot(&key, &n, NOW + NONCE_WINDOW).is_some());
        assert!(nonce_slot(&key, &n, NOW + 2 * NONCE_WINDOW + 1).is_none());
        assert!(nonce_slot(&other, &n, NOW).is_none());
        assert!(nonce_slot(&key, "garbage", NOW).is_none());
        let k = Key::new();
        // Without a nonce, or with a stale one: use_dpop_nonce.
        let e = check(&k.proof(claims()), &expect(), 60, Some(&key), NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::UseDpopNonce);
        let mut c = claims();
        c["nonce"] = json!(make_nonce(&key, NOW - 3 * NONCE_WINDOW));
        assert_eq!(
            err(check(&k.proof(c), &expect(), 60, Some(&key), NOW)).0,
            ErrorCode::UseDpopNonce
        );
        // With a current nonce the client's iat does not matter (§11.1: skewed clocks).
        let mut c = claims();
        c["nonce"] = json!(n);
        c["iat"] = json!(NOW - 3600);
        let p = check(&k.proof(c), &expect(), 60, Some(&key), NOW).unwrap();
        assert!(p.expires_at > NOW && p.expires_at <= NOW + 2 * NONCE_WINDOW);
    }

    #[test]
    fn htu_normalization() {
        assert_eq!(
            normalize_htu("HTTPS://Example.COM:443/a/./b/%7e%2f?q#f").as_deref(),
            Some("https://example.com/a/b/~%2F")
        );
        assert_eq!(
            normalize_htu("http://example.com").as_deref(),
            Some("http://example.com/")
        );
        assert!(normalize_htu("urn:x").is_none());
        assert!(normalize_htu("/token").is_none());
    }

    /// latchkey-verify normalizes `htu` with its own copy of this code (it depends on no
    /// server code, and the server does not build its HTTP client): the two must agree, or a
    /// proof the token endpoint accepts would be refused at a resource server, or the reverse.
    /// The `dpop_proof` fuzz target checks the same on every input.
    #[test]
    fn htu_normalization_is_idempotent_or_refuses_and_agrees_with_latchkey_verify() {
        // Found by fuzz/fuzz_targets/dpop_proof.rs: the first normal form of this URL
        // normalized differently a second time.
        let found = "https:44444e://\n*\u{2}\neehttps:'./Jw%./@%4%4444:44444444%44https:'./Jw%./@%4444448888888888*";
        if let Some(n) = normalize_htu(found) {
            assert_eq!(normalize_htu(&n).as_deref(), Some(n.as_str()));
        }
        let ok = "https://ID.example.com:443/a/%7euser/../token?x=1#f";
        let n = normalize_htu(ok).expect("a normal URL normalizes");
        assert_eq!(n, "https://id.example.com/a/token");
        assert_eq!(normalize_htu(&n).as_deref(), Some(n.as_str()));
        for s in [
            found,
            ok,
            "HTTPS://Example.COM:443/a/./b/%7e%2f?q#f",
            "http://example.com",
            "http://h:8080/x",
            "https://h/%",
            "https://h/%zz%4",
            "https://user:pw@h/a@b",
            "urn:x",
            "/token",
            "ftp://h/me",
        ] {
            assert_eq!(normalize_htu(s), latchkey_verify::normalize_htu(s), "{s:?}");
        }
    }
}
