//! `POST /attest`: verifies a platform attestation that carries a challenge of this server and
//! issues a client attestation JWT bound to the device key it proved.
//!
//! | `type` | what the app sends | the bound key (`cnf.jwk`) |
//! |---|---|---|
//! | `apple_app_attest` | `key_id`, `attestation` (from `attestKey`), `jwk` | `jwk` |
//! | `apple_app_attest_assertion` | `key_id`, `assertion` (from `generateAssertion`), `jwk` | `jwk` |
//! | `android_key_attestation` | `certificate_chain` (leaf first), `jwk` optional | the attested key |
//!
//! On iOS the App Attest key cannot sign a JWT, so the app binds a second P-256 key (its
//! Secure Enclave DPoP key, say) by passing `SHA-256(challenge "." jkt)` as the client data hash,
//! `jkt` being that key's RFC 7638 thumbprint; the server recomputes it. On Android the attested
//! key is the key (the attestation challenge is the challenge's UTF-8 bytes).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use latchkey_attestation::android::SecurityLevel;
use latchkey_attestation::apple::{self, Environment};
use latchkey_attestation::{KeyAlgorithm, Refusal, android};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Att, Mode, Policy, challenge};
use crate::keys::TYP_CLIENT_ATTESTATION;
use crate::model::{Client, ClientType};
use crate::protocol::Ctx;
use crate::protocol::error::{ErrorCode, OAuthError, OAuthResult};
use crate::store::AttestedKey;

/// The request body (JSON).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    pub client_id: String,
    pub challenge: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub attestation: Option<String>,
    #[serde(default)]
    pub assertion: Option<String>,
    #[serde(default)]
    pub certificate_chain: Option<Vec<String>>,
    #[serde(default)]
    pub jwk: Option<Map<String, Value>>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct AttestResponse {
    /// The client attestation JWT, for `OAuth-Client-Attestation`.
    pub client_attestation: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// A challenge for the first PoP (also in `OAuth-Client-Attestation-Challenge`).
    pub attestation_challenge: String,
}

#[derive(Serialize)]
struct IssuedClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    cnf: Value,
    att: &'a Att,
    /// The App ID or package the statement was for (checked again at each use).
    app: &'a str,
}

fn refusal(r: Refusal) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidClientAttestation,
        format!("the attestation was refused: {}", r.as_str()),
    )
}

fn refused(reason: &'static str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidClientAttestation,
        format!("the attestation was refused: {reason}"),
    )
}

fn b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

fn field<'a>(v: &'a Option<String>, name: &'static str) -> OAuthResult<&'a str> {
    v.as_deref()
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required for this type")))
}

fn bytes(v: &Option<String>, name: &'static str) -> OAuthResult<Vec<u8>> {
    b64(field(v, name)?)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} must be base64")))
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = digest::Context::new(&digest::SHA256);
    for p in parts {
        h.update(p);
    }
    h.finish().as_ref().to_vec()
}

/// The key the app asks to bind, and its thumbprint.
fn bound_key(jwk: &Option<Map<String, Value>>) -> OAuthResult<(Map<String, Value>, String)> {
    let jwk = jwk
        .as_ref()
        .ok_or_else(|| OAuthError::invalid_request("jwk is required for this type"))?;
    let jkt = crate::protocol::dpop::thumbprint(jwk, "ES256")
        .ok_or_else(|| OAuthError::invalid_request("jwk must be a P-256 public key (ES256)"))?;
    // Only the public members travel on in cnf.jwk.
    let mut public = Map::new();
    for m in ["kty", "crv", "x", "y"] {
        if let Some(v) = jwk.get(m) {
            public.insert(m.to_owned(), v.clone());
        }
    }
    Ok((public, jkt))
}

/// The client, if it may attest: public, enabled, with a policy that is on. Otherwise the same
/// `invalid_client` for every reason (no oracle for client ids).
fn attesting(client: Option<Client>) -> OAuthResult<(Client, Policy)> {
    let no = || {
        OAuthError::new(
            ErrorCode::InvalidClient,
            "client attestation is not enabled for this client",
        )
    };
    let client = client.ok_or_else(no)?;
    if client.disabled || client.client_type != ClientType::Public {
        return Err(no());
    }
    match client.attestation.clone() {
        Some(p) if p.mode != Mode::Off => Ok((client, p)),
        _ => Err(no()),
    }
}

/// Records a platform statement as used, once on any replica (its challenge is accepted for a
/// few minutes, the statement only once).
async fn use_once(ctx: &Ctx, statement: &[u8], now: i64) -> OAuthResult<()> {
    let key = URL_SAFE_NO_PAD.encode(sha256(&[b"attestation-statement\0", statement]));
    let expires = now + challenge::lifetime() + 120;
    if ctx
        .store
        .write(move |s| s.record_dpop_proof(&key, expires))
        .await?
    {
        Ok(())
    } else {
        Err(refused("statement_replayed"))
    }
}

pub async fn attest(ctx: &Ctx, req: AttestRequest, now: i64) -> OAuthResult<AttestResponse> {
    let client_id = req.client_id.clone();
    let stored = ctx.store.request_client(&client_id).await?;
    let (client, policy) = attesting(stored)?;
    if !challenge::is_current(ctx, &req.challenge, now)? {
        return Err(super::client_auth::use_challenge());
    }
    let (jwk, att, app) = match req.kind.as_str() {
        "apple_app_attest" => apple_attestation(ctx, &client, &policy, &req, now).await?,
        "apple_app_attest_assertion" => apple_assertion(ctx, &client, &policy, &req, now).await?,
        "android_key_attestation" => android_attestation(ctx, &policy, &req, now).await?,
        _ => {
            return Err(OAuthError::invalid_request(
                "type must be apple_app_attest, apple_app_attest_assertion or android_key_attestation",
            ));
        }
    };
    let lifetime = ctx.config.attestation_lifetime;
    let claims = IssuedClaims {
        iss: &ctx.config.issuer,
        sub: &client.client_id,
        iat: now,
        exp: now + lifetime as i64,
        jti: crate::protocol::tokens::new_jti(),
        cnf: json!({ "jwk": jwk }),
        att: &att,
        app: &app,
    };
    let jwt = ctx.keys.sign(
        ctx.config.access_token_alg,
        TYP_CLIENT_ATTESTATION,
        &claims,
        now,
    )?;
    tracing::info!(
        client_id = %client.client_id,
        platform = %att.platform,
        level = %att.level,
        "client attestation issued"
    );
    Ok(AttestResponse {
        client_attestation: jwt,
        expires_in: lifetime,
        attestation_challenge: challenge::new(ctx, now)?,
    })
}

type Outcome = (Map<String, Value>, Att, String);

fn apple_att(environment: &str) -> Att {
    Att {
        platform: "ios".into(),
        method: "app_attest".into(),
        level: environment.into(),
    }
}

fn environment_name(e: Environment) -> &'static str {
    match e {
        Environment::Production => "production",
        Environment::Development => "development",
    }
}

async fn apple_attestation(
    ctx: &Ctx,
    client: &Client,
    policy: &Policy,
    req: &AttestRequest,
    now: i64,
) -> OAuthResult<Outcome> {
    let apple_policy = policy
        .apple(&ctx.attestation)
        .ok_or_else(|| refused("platform_not_allowed"))?;
    let key_id = bytes(&req.key_id, "key_id")?;
    let object = bytes(&req.attestation, "attestation")?;
    let (jwk, jkt) = bound_key(&req.jwk)?;
    let client_data = format!("{}.{jkt}", req.challenge);
    let cdh = sha256(&[client_data.as_bytes()]);
    let key =
        apple::verify_attestation(&object, &cdh, &key_id, &apple_policy, now).map_err(refusal)?;
    use_once(ctx, &object, now).await?;
    let environment = environment_name(key.environment);
    let row = AttestedKey {
        client_id: client.client_id.clone(),
        key_id: URL_SAFE_NO_PAD.encode(&key.key_id),
        public_key: URL_SAFE_NO_PAD.encode(&key.public_key),
        app_id: key.app_id.clone(),
        environment: environment.to_owned(),
        counter: i64::from(key.counter),
        created_at: now,
        last_used_at: now,
    };
    ctx.store
        .write(move |s| s.insert_attested_key(&row))
        .await?;
    Ok((jwk, apple_att(environment), key.app_id))
}

async fn apple_assertion(
    ctx: &Ctx,
    client: &Client,
    policy: &Policy,
    req: &AttestRequest,
    now: i64,
) -> OAuthResult<Outcome> {
    if policy.apple_app_ids.is_empty() {
        return Err(refused("platform_not_allowed"));
    }
    let key_id = URL_SAFE_NO_PAD.encode(bytes(&req.key_id, "key_id")?);
    let assertion = bytes(&req.assertion, "assertion")?;
    let (jwk, jkt) = bound_key(&req.jwk)?;
    let (cid, kid) = (client.client_id.clone(), key_id.clone());
    let stored = ctx
        .store
        .read(move |s| s.attested_key(&cid, &kid))
        .await?
        .ok_or_else(|| refused("key_not_attested"))?;
    if !policy.still_allows(&stored.app_id, &stored.environment) {
        return Err(refused("app_not_allowed"));
    }
    let public_key = URL_SAFE_NO_PAD
        .decode(&stored.public_key)
        .map_err(|e| OAuthError::server_error(format!("corrupt attested key: {e}")))?;
    let previous = u32::try_from(stored.counter).unwrap_or(u32::MAX);
    let client_data = format!("{}.{jkt}", req.challenge);
    let counter = apple::verify_assertion(
        &assertion,
        client_data.as_bytes(),
        &public_key,
        &stored.app_id,
        previous,
    )
    .map_err(refusal)?;
    let (cid, kid) = (client.client_id.clone(), key_id);
    let advanced = ctx
        .store
        .write(move |s| s.advance_attested_counter(&cid, &kid, i64::from(counter), now))
        .await?;
    if !advanced {
        return Err(refusal(Refusal::CounterNotIncreasing));
    }
    Ok((jwk, apple_att(&stored.environment), stored.app_id))
}

fn level_name(l: SecurityLevel) -> &'static str {
    match l {
        SecurityLevel::Software => "software",
        SecurityLevel::TrustedEnvironment => "tee",
        SecurityLevel::StrongBox => "strongbox",
    }
}

/// Most certificates in a chain the app sends.
const MAX_CHAIN: usize = 8;

async fn android_attestation(
    ctx: &Ctx,
    policy: &Policy,
    req: &AttestRequest,
    now: i64,
) -> OAuthResult<Outcome> {
    let android_policy = policy
        .android(&ctx.attestation)
        .ok_or_else(|| refused("platform_not_allowed"))?;
    let chain = req.certificate_chain.as_ref().ok_or_else(|| {
        OAuthError::invalid_request("certificate_chain is required for this type")
    })?;
    if chain.is_empty() || chain.len() > MAX_CHAIN {
        return Err(OAuthError::invalid_request(format!(
            "certificate_chain must hold 1 to {MAX_CHAIN} certificates"
        )));
    }
    let der = chain
        .iter()
        .map(|c| b64(c))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| OAuthError::invalid_request("each certificate must be base64 DER"))?;
    let key = android::verify_key_attestation(&der, req.challenge.as_bytes(), &android_policy, now)
        .map_err(refusal)?;
    if key.algorithm != KeyAlgorithm::EcP256 {
        return Err(refusal(Refusal::UnsupportedKey));
    }
    let jwk = key
        .public_key_jwk
        .as_object()
        .cloned()
        .ok_or_else(|| refusal(Refusal::UnsupportedKey))?;
    if req.jwk.is_some() {
        let (_, asked) = bound_key(&req.jwk)?;
        if crate::protocol::dpop::thumbprint(&jwk, "ES256").as_deref() != Some(asked.as_str()) {
            return Err(OAuthError::invalid_request(
                "jwk differs from the attested key (on Android the attested key is the bound key)",
            ));
        }
    }
    if let Some(leaf) = der.first() {
        use_once(ctx, leaf, now).await?;
    }
    let level = key
        .attestation_security_level
        .min(key.keymint_security_level);
    Ok((
        jwk,
        Att {
            platform: "android".into(),
            method: "key_attestation".into(),
            level: level_name(level).into(),
        },
        key.package_name,
    ))
}
