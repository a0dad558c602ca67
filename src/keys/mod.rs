//! The key ring: generates signing keys, keeps them in the `signing_keys` table (schedule,
//! public JWK, and the private PKCS#8 sealed under the key-encryption key, see [`kek`]), signs
//! JWTs with keys parsed once, and serves the JWKS as prebuilt bytes rebuilt only when the
//! published set changes. Running servers call [`KeyRing::reload`] every few seconds, so a
//! rotation made by the CLI or another replica reaches every replica within seconds; one of
//! them also rotates on schedule ([`rotate_if_due`]), under a database lock.

mod generate;
pub mod kek;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::Serialize;

use crate::config::{Config, SigningAlg};
use crate::model::SigningKeyRecord;
use crate::store::Store;

pub use generate::{GeneratedKey, generate_key};
pub use kek::Kek;

/// Seconds a retired key stays published beyond the lifetime of the last token it signed,
/// covering verifiers' clock skew.
const RETIRE_MARGIN: i64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no active signing key for {0}")]
    NoActiveKey(&'static str),
    #[error("signing failed")]
    Sign,
    #[error("serializing JWT failed: {0}")]
    Serialize(String),
}

/// A private key parsed once, ready to sign.
pub(crate) enum Signer {
    Ec(aws_lc_rs::signature::EcdsaKeyPair),
    Rsa(aws_lc_rs::signature::RsaKeyPair),
    Ed(aws_lc_rs::signature::Ed25519KeyPair),
}

impl Signer {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Signer::Ec(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Signer::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

struct LoadedKey {
    kid: String,
    alg: SigningAlg,
    activates_at: i64,
    /// `None` when the private half is not on this machine: the key is then only published.
    signer: Option<Signer>,
    /// The public key, for verifying tokens this server issued (introspection, userinfo).
    decoding: Option<jsonwebtoken::DecodingKey>,
    /// Precomputed `base64url(header)` for each `typ` this key signs, with the trailing '.'.
    headers: HashMap<&'static str, String>,
}

/// What the key ring publishes at one moment.
struct KeySet {
    keys: Vec<Arc<LoadedKey>>,
    jwks: Bytes,
    /// (kid, activates_at) of every published key, sorted: detects changes cheaply.
    fingerprint: Vec<(String, i64)>,
    /// Access tokens (the exact compact serialization) whose header, signature, issuer and
    /// time claims were checked against this key set, with their claims. Part of the key set,
    /// so a key change (rotation, a key withdrawn) empties it. See [`KeyRing::verify_access_token`].
    verified: VerifiedCache,
}

/// How many verified access tokens are remembered (~1 KiB each): enough for the tokens a
/// busy set of resource servers introspects, bounded whatever is presented.
const VERIFIED_CACHE_CAPACITY: usize = 4096;

type VerifiedCache = quick_cache::sync::Cache<Box<str>, Arc<VerifiedAccessToken>>;

fn verified_cache() -> VerifiedCache {
    VerifiedCache::new(VERIFIED_CACHE_CAPACITY)
}

pub struct KeyRing {
    current: ArcSwap<KeySet>,
    kek: Kek,
}

/// The `typ` header values Latchkey signs.
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";
pub const TYP_JWT: &str = "JWT";
/// OpenID Connect Back-Channel Logout 1.0 §2.4 (explicit typing, RFC 8725 §3.11).
pub const TYP_LOGOUT_TOKEN: &str = "logout+jwt";
/// draft-ietf-oauth-attestation-based-client-auth: the client attestation JWT `/attest` issues.
pub const TYP_CLIENT_ATTESTATION: &str = "oauth-client-attestation+jwt";

#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

impl KeyRing {
    /// Makes sure every configured algorithm has a usable key (generating it on first start,
    /// importing private keys left in `keys_dir` by earlier versions), then loads the
    /// published set. Fails when a stored key cannot be decrypted with this KEK. Blocking.
    pub fn open(store: &Store, config: &Config, now: i64) -> anyhow::Result<KeyRing> {
        ensure_keys_dir(&config.keys_dir)?;
        let kek = Kek::load(&config.keys_dir)?;
        import_legacy_files(store, &kek, &config.keys_dir)?;
        for r in store.signing_keys()? {
            if let Some(sealed) = &r.sealed_private_key
                && r.expires_at.is_none_or(|e| e > now)
            {
                kek.open(&r.kid, sealed)?;
            }
        }
        for alg in config.signing_algs() {
            let usable = |records: &[SigningKeyRecord]| {
                records.iter().any(|r| {
                    r.alg == alg.as_str()
                        && r.activates_at <= now
                        && r.expires_at.is_none_or(|e| e > now)
                        && r.sealed_private_key.is_some()
                })
            };
            if usable(&store.signing_keys()?) {
                continue;
            }
            let key = generate_key(alg)?;
            let record = SigningKeyRecord {
                created_at: now,
                activates_at: now,
                sealed_private_key: Some(kek.seal(&key.record.kid, key.pem.as_bytes())?),
                ..key.record
            };
            // Under the rotation lock, so replicas starting together on an empty database
            // agree on one first key.
            let retire_at = now + config.max_token_ttl() as i64 + RETIRE_MARGIN;
            let inserted = store.rotate_signing_key(alg.as_str(), &holder(), now, |existing| {
                (!usable(existing)).then_some((record, retire_at))
            })?;
            if let Some(r) = inserted {
                tracing::info!(kid = %r.kid, alg = alg.as_str(), "generated signing key");
            }
        }
        let ring = KeyRing {
            current: ArcSwap::from_pointee(KeySet {
                keys: vec![],
                jwks: Bytes::new(),
                fingerprint: vec![],
                verified: verified_cache(),
            }),
            kek,
        };
        ring.reload_from(store.signing_keys()?, now)?;
        Ok(ring)
    }

    /// Re-reads the schedule; swaps in a new key set if anything published changed. Blocking.
    pub fn reload(&self, store: &Store, now: i64) -> anyhow::Result<bool> {
        self.reload_from(store.signing_keys()?, now)
    }

    pub fn kek(&self) -> &Kek {
        &self.kek
    }

    fn reload_from(&self, records: Vec<SigningKeyRecord>, now: i64) -> anyhow::Result<bool> {
        let mut published: Vec<SigningKeyRecord> = records
            .into_iter()
            .filter(|r| r.created_at <= now && r.expires_at.is_none_or(|e| e > now))
            .filter(|r| SigningAlg::parse(&r.alg).is_some())
            .collect();
        published.sort_by(|a, b| {
            (a.alg.as_str(), a.activates_at, &a.kid).cmp(&(b.alg.as_str(), b.activates_at, &b.kid))
        });
        let fingerprint: Vec<(String, i64)> = published
            .iter()
            .map(|r| (r.kid.clone(), r.activates_at))
            .collect();
        let old = self.current.load();
        if old.fingerprint == fingerprint {
            return Ok(false);
        }
        let mut keys = Vec::with_capacity(published.len());
        let mut jwks = Vec::with_capacity(published.len());
        for r in &published {
            let jwk: serde_json::Value = serde_json::from_str(&r.public_jwk).map_err(|e| {
                anyhow::anyhow!("signing key {}: stored JWK is not JSON: {e}", r.kid)
            })?;
            let decoding = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone())
                .ok()
                .and_then(|j| jsonwebtoken::DecodingKey::from_jwk(&j).ok());
            jwks.push(jwk);
            if let Some(k) = old
                .keys
                .iter()
                .find(|k| k.kid == r.kid && k.activates_at == r.activates_at)
            {
                keys.push(k.clone());
                continue;
            }
            let Some(alg) = SigningAlg::parse(&r.alg) else {
                continue;
            };
            // A key this replica cannot open stays published (others may sign with it) but
            // is never chosen for signing here.
            let signer = match &r.sealed_private_key {
                None => {
                    tracing::warn!(kid = %r.kid, "no private key stored: key is published but cannot sign");
                    None
                }
                Some(sealed) => match self
                    .kek
                    .open(&r.kid, sealed)
                    .and_then(|pem| generate::parse_private_key(alg, &pem))
                {
                    Ok(signer) => Some(signer),
                    Err(e) => {
                        tracing::error!(kid = %r.kid, error = %e, "cannot use the private key: key is published but cannot sign here");
                        None
                    }
                },
            };
            let headers = [
                TYP_ACCESS_TOKEN,
                TYP_JWT,
                TYP_LOGOUT_TOKEN,
                TYP_CLIENT_ATTESTATION,
            ]
            .into_iter()
            .map(|typ| {
                let h = serde_json::to_vec(&JwsHeader {
                    alg: alg.as_str(),
                    typ,
                    kid: &r.kid,
                })
                .unwrap_or_default();
                (typ, format!("{}.", URL_SAFE_NO_PAD.encode(h)))
            })
            .collect();
            keys.push(Arc::new(LoadedKey {
                kid: r.kid.clone(),
                alg,
                activates_at: r.activates_at,
                signer,
                decoding,
                headers,
            }));
        }
        let jwks = Bytes::from(serde_json::to_vec(&serde_json::json!({ "keys": jwks }))?);
        self.current.store(Arc::new(KeySet {
            keys,
            jwks,
            fingerprint,
            verified: verified_cache(),
        }));
        tracing::info!(published = published.len(), "key ring updated");
        Ok(true)
    }

    /// The JWKS document (RFC 7517), serialized once per key change.
    pub fn jwks(&self) -> Bytes {
        self.current.load().jwks.clone()
    }

    /// Signs `claims` as a compact JWS with the newest key of `alg` whose activation time has
    /// come. Hot path: no I/O, no key parsing.
    pub fn sign<T: Serialize>(
        &self,
        alg: SigningAlg,
        typ: &'static str,
        claims: &T,
        now: i64,
    ) -> Result<String, KeyError> {
        let set = self.current.load();
        let key = set
            .keys
            .iter()
            .filter(|k| k.alg == alg && k.activates_at <= now && k.signer.is_some())
            .max_by_key(|k| k.activates_at)
            .ok_or(KeyError::NoActiveKey(alg.as_str()))?;
        let signer = key
            .signer
            .as_ref()
            .ok_or(KeyError::NoActiveKey(alg.as_str()))?;
        let header = key
            .headers
            .get(typ)
            .ok_or(KeyError::Serialize("unknown typ".into()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Serialize(e.to_string()))?;
        let mut jws = String::with_capacity(header.len() + payload.len() * 4 / 3 + 100);
        jws.push_str(header);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jws);
        let sig = signer.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut jws);
        Ok(jws)
    }

    /// Verifies a JWT access token this server issued: `typ: at+jwt`, a published `kid`, the
    /// header `alg` equal to that key's, signature, `iss`, and `exp` (no leeway: we issued it).
    ///
    /// A token seen before is not verified again: the exact same bytes, checked against the
    /// same key set, give the same answer, so its claims come from a bounded cache that the
    /// next key change empties; `iss` and `exp` (against `now`) are checked anew on every hit.
    /// (The ECDSA verification is ~80 % of an introspection's instructions; resource servers
    /// present the same token many times.) Revocation is never cached: callers check it in
    /// the store every time.
    pub fn verify_access_token(
        &self,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Result<VerifiedAccessToken, &'static str> {
        let set = self.current.load();
        if let Some(claims) = set.verified.get(token) {
            // As jsonwebtoken's own checks (no leeway) would on a fresh verification.
            if claims.iss != issuer || claims.exp < now {
                return Err("invalid token");
            }
            return Ok((*claims).clone());
        }
        let claims = Self::verify_uncached(&set, token, issuer)?;
        set.verified.insert(token.into(), Arc::new(claims.clone()));
        Ok(claims)
    }

    /// [`verify_access_token`](Self::verify_access_token) without the cache (benchmarks).
    #[doc(hidden)]
    pub fn verify_access_token_uncached(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<VerifiedAccessToken, &'static str> {
        Self::verify_uncached(&self.current.load(), token, issuer)
    }

    fn verify_uncached(
        set: &KeySet,
        token: &str,
        issuer: &str,
    ) -> Result<VerifiedAccessToken, &'static str> {
        let (dk, alg) = Self::key_for(set, token, TYP_ACCESS_TOKEN)?;
        let mut v = jsonwebtoken::Validation::new(alg);
        v.leeway = 0;
        v.validate_aud = false;
        v.validate_nbf = true;
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        jsonwebtoken::decode::<VerifiedAccessToken>(token, dk, &v)
            .map(|d| d.claims)
            .map_err(|_| "invalid token")
    }

    /// The published key a JWT of `typ` names (`kid`), if its header `alg` is that key's.
    fn key_for<'s>(
        set: &'s KeySet,
        token: &str,
        typ: &str,
    ) -> Result<(&'s jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm), &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        if header.typ.as_deref() != Some(typ) {
            return Err("unexpected typ");
        }
        let kid = header.kid.as_deref().ok_or("no kid")?;
        let key = set
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or("unknown key")?;
        let alg = match key.alg {
            SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlg::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        };
        if header.alg != alg {
            return Err("algorithm does not match the key");
        }
        let dk = key.decoding.as_ref().ok_or("unusable key")?;
        Ok((dk, alg))
    }

    /// Verifies a client attestation JWT this server issued (`typ:
    /// oauth-client-attestation+jwt`): a published `kid`, the header `alg` equal to that key's,
    /// the signature, `iss`, and `exp` (no leeway). Claims are returned as JSON for the caller's
    /// own checks (`protocol::attestation::client_auth`).
    pub fn verify_client_attestation(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<serde_json::Value, &'static str> {
        let set = self.current.load();
        let (dk, alg) = Self::key_for(&set, token, TYP_CLIENT_ATTESTATION)?;
        let mut v = jsonwebtoken::Validation::new(alg);
        v.leeway = 0;
        v.validate_aud = false;
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        jsonwebtoken::decode::<serde_json::Value>(token, dk, &v)
            .map(|d| d.claims)
            .map_err(|_| "invalid client attestation")
    }

    /// Verifies an ID token this server issued, presented back as an `id_token_hint` (OIDC
    /// RP-Initiated Logout 1.0 §2): `typ: JWT`, a published `kid`, the header `alg` equal to
    /// that key's, the signature and `iss`. Expiry is not checked: a hint is typically an
    /// expired ID token, and it proves only that the relying party once received it.
    pub fn verify_id_token_hint(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<IdTokenHint, &'static str> {
        let set = self.current.load();
        let (dk, alg) = Self::key_for(&set, token, TYP_JWT)?;
        let mut v = jsonwebtoken::Validation::new(alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.validate_nbf = false;
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["iss", "sub", "aud"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, dk, &v)
            .map_err(|_| "invalid token")?
            .claims;
        let sub = claims["sub"].as_str().ok_or("no sub")?.to_owned();
        let aud = match &claims["aud"] {
            serde_json::Value::String(a) => vec![a.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if aud.is_empty() {
            return Err("no aud");
        }
        Ok(IdTokenHint { sub, aud })
    }

    /// The kid that [`sign`](Self::sign) would use now (for tests and `keys list`).
    pub fn active_kid(&self, alg: SigningAlg, now: i64) -> Option<String> {
        self.current
            .load()
            .keys
            .iter()
            .filter(|k| k.alg == alg && k.activates_at <= now && k.signer.is_some())
            .max_by_key(|k| k.activates_at)
            .map(|k| k.kid.clone())
    }
}

/// What a verified `id_token_hint` says: whose ID token it was, and for which clients.
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    pub sub: String,
    pub aud: Vec<String>,
}

/// Claims of an access token this server issued, as read back by introspection and userinfo.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
pub struct VerifiedAccessToken {
    pub iss: String,
    pub sub: String,
    pub aud: serde_json::Value,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
    /// `client_credentials` on a client's own token (`protocol::tokens::CLIENT_TOKEN_GTY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gty: Option<String>,
    /// How the client was attested when it got the token (`protocol::attestation::Att`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub att: Option<serde_json::Value>,
}

impl VerifiedAccessToken {
    /// The user a token acts for: user tokens carry `auth_time` (the sign-in), a client's own
    /// token does not (also tokens issued before the `gty` marker existed).
    pub fn user_id(&self) -> Option<&str> {
        self.auth_time.map(|_| self.sub.as_str())
    }

    /// A token a client obtained for itself (client_credentials): `sub` is a client_id.
    pub fn is_client_token(&self) -> bool {
        self.gty.as_deref() == Some(crate::protocol::tokens::CLIENT_TOKEN_GTY)
            && self.sub == self.client_id
    }

    /// The refresh family a user token descends from (encoded in its `jti` as `family.random`).
    pub fn family_id(&self) -> Option<&str> {
        self.jti.split_once('.').map(|(f, _)| f)
    }

    pub fn has_scope(&self, s: &str) -> bool {
        self.scope.split(' ').any(|t| t == s)
    }

    /// RFC 9449 `cnf.jkt`: the DPoP key the token is bound to.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.cnf.as_ref()?.get("jkt")?.as_str()
    }

    /// RFC 8705 `cnf.x5t#S256`: the client certificate the token is bound to.
    pub fn cert_x5t(&self) -> Option<&str> {
        self.cnf.as_ref()?.get("x5t#S256")?.as_str()
    }
}

/// Generates a new key for `alg`, published now and signing after `config.key_publish_ahead`
/// (and strictly after every existing key of that algorithm); every older key stops being
/// published once the tokens it can still sign have expired. With `only_if_due`, the key is
/// created only if the newest key of `alg` is at least `key_rotation_interval` old — checked
/// again under the rotation lock, so among replicas exactly one rotates. Also deletes keys
/// whose publication has ended. Blocking.
pub fn rotate(
    store: &Store,
    kek: &Kek,
    config: &Config,
    alg: SigningAlg,
    now: i64,
    only_if_due: bool,
) -> anyhow::Result<Option<SigningKeyRecord>> {
    let interval = config.key_rotation_interval as i64;
    let due = |existing: &[SigningKeyRecord]| {
        !only_if_due
            || (interval > 0
                && existing
                    .iter()
                    .map(|r| r.created_at)
                    .max()
                    .is_none_or(|newest| newest + interval <= now))
    };
    if only_if_due {
        let existing: Vec<SigningKeyRecord> = store
            .signing_keys()?
            .into_iter()
            .filter(|r| r.alg == alg.as_str())
            .collect();
        if !due(&existing) {
            return Ok(None);
        }
    }
    let key = generate_key(alg)?;
    let sealed = kek.seal(&key.record.kid, key.pem.as_bytes())?;
    let inserted = store.rotate_signing_key(alg.as_str(), &holder(), now, |existing| {
        if !due(existing) {
            return None;
        }
        let latest = existing.iter().map(|r| r.activates_at).max();
        let activates_at =
            (now + config.key_publish_ahead as i64).max(latest.map_or(i64::MIN, |l| l + 1));
        let retire_at = activates_at + config.max_token_ttl() as i64 + RETIRE_MARGIN;
        let record = SigningKeyRecord {
            created_at: now,
            activates_at,
            sealed_private_key: Some(sealed),
            ..key.record
        };
        Some((record, retire_at))
    })?;
    for kid in store.delete_expired_signing_keys(now)? {
        let _ = std::fs::remove_file(private_key_path(&config.keys_dir, &kid));
    }
    if let Some(r) = &inserted {
        tracing::info!(kid = %r.kid, alg = %r.alg, activates_at = r.activates_at, "rotated signing key");
    }
    Ok(inserted)
}

/// Scheduled rotation: for every configured algorithm, [`rotate`] if its newest key is older
/// than `key_rotation_interval` (0 disables). Blocking.
pub fn rotate_if_due(
    store: &Store,
    kek: &Kek,
    config: &Config,
    now: i64,
) -> anyhow::Result<Vec<SigningKeyRecord>> {
    if config.key_rotation_interval == 0 {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for alg in config.signing_algs() {
        if let Some(r) = rotate(store, kek, config, alg, now, true)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Who holds the rotation lock, for operators reading the `locks` table.
fn holder() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("{host} pid {}", std::process::id())
}

/// Seals private keys that earlier versions left as `keys_dir/<kid>.pem` files into the
/// database. The files stay until their key is deleted.
fn import_legacy_files(store: &Store, kek: &Kek, dir: &Path) -> anyhow::Result<()> {
    for r in store.signing_keys()? {
        if r.sealed_private_key.is_some() {
            continue;
        }
        let path = private_key_path(dir, &r.kid);
        match std::fs::read(&path) {
            Ok(pem) => {
                let sealed = kek.seal(&r.kid, &pem)?;
                store.set_sealed_private_key(&r.kid, &sealed)?;
                tracing::info!(kid = %r.kid, "imported private key file into the database");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("signing key {}: cannot read {}: {e}", r.kid, path.display()),
        }
    }
    Ok(())
}

/// `active` (signing now), `pending` (published, signs later), `retiring` (published for
/// tokens it signed, no longer signing), or `expired`.
pub fn key_state(record: &SigningKeyRecord, all: &[SigningKeyRecord], now: i64) -> &'static str {
    if record.expires_at.is_some_and(|e| e <= now) {
        return "expired";
    }
    if record.activates_at > now {
        return "pending";
    }
    let newer_active = all.iter().any(|o| {
        o.alg == record.alg && o.activates_at <= now && o.activates_at > record.activates_at
    });
    if newer_active { "retiring" } else { "active" }
}

fn private_key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

fn ensure_keys_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("keys_dir: cannot create {}: {e}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                anyhow::anyhow!("keys_dir: cannot set permissions on {}: {e}", dir.display())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (tempfile::TempDir, Store, KeyRing, Config) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            database_url: format!("sqlite://{}/k.db", dir.path().display()),
            keys_dir: dir.path().join("keys"),
            ..Config::default()
        };
        let store = Store::open(&config.database_url, 2).expect("store");
        let ring = KeyRing::open(&store, &config, now()).expect("ring");
        (dir, store, ring, config)
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
    }

    fn token(ring: &KeyRing, config: &Config, exp: i64) -> String {
        let t = now();
        let claims = serde_json::json!({
            "iss": config.issuer, "sub": "u1", "aud": "https://api.example.test", "exp": exp,
            "iat": t, "jti": "fam.1", "client_id": "c1", "scope": "openid",
        });
        ring.sign(SigningAlg::ES256, TYP_ACCESS_TOKEN, &claims, t)
            .expect("sign")
    }

    #[test]
    fn a_token_seen_before_is_answered_from_the_cache_but_a_tampered_copy_is_not() {
        let (_d, _s, ring, config) = ring();
        let t = token(&ring, &config, now() + 600);
        let first = ring
            .verify_access_token(&t, &config.issuer, now())
            .expect("fresh");
        let again = ring
            .verify_access_token(&t, &config.issuer, now())
            .expect("cached");
        assert_eq!(first.jti, again.jti);
        // Same signature, one payload character changed: a different key in the cache, so a
        // full verification, which fails.
        let (head, rest) = t.split_once('.').expect("jws");
        let mut payload: Vec<u8> = rest.as_bytes().to_vec();
        payload[5] = if payload[5] == b'A' { b'B' } else { b'A' };
        let forged = format!("{head}.{}", String::from_utf8(payload).expect("ascii"));
        assert!(
            ring.verify_access_token(&forged, &config.issuer, now())
                .is_err()
        );
        // Another issuer's expectation is not served from the cache either.
        assert!(
            ring.verify_access_token_uncached(&t, "https://other.example")
                .is_err()
        );
        assert!(
            ring.verify_access_token(&t, "https://other.example", now())
                .is_err()
        );
    }

    #[test]
    fn a_cached_token_is_refused_once_its_key_leaves_the_key_set() {
        let (_d, _s, ring, config) = ring();
        let t = token(&ring, &config, now() + 600);
        ring.verify_access_token(&t, &config.issuer, now())
            .expect("fresh");
        // Every key withdrawn (as after a compromised key is deleted): the cache goes with
        // the old key set.
        ring.reload_from(vec![], now()).expect("reload");
        assert_eq!(
            ring.verify_access_token(&t, &config.issuer, now()).err(),
            Some("unknown key")
        );
    }

    #[test]
    fn a_cached_token_is_refused_once_it_expires() {
        let (_d, _s, ring, config) = ring();
        let t = token(&ring, &config, now() + 1);
        ring.verify_access_token(&t, &config.issuer, now())
            .expect("fresh");
        // The cached entry is checked against the caller's clock: one second past `exp`.
        assert!(
            ring.verify_access_token(&t, &config.issuer, now() + 2)
                .is_err()
        );
    }
}
