//! The key ring: generates signing keys, keeps their schedule in the `signing_keys` table and
//! their private halves in `keys_dir/<kid>.pem` (PKCS#8, mode 0600), signs JWTs with keys
//! parsed once, and serves the JWKS as prebuilt bytes rebuilt only when the published set
//! changes. Running servers call [`KeyRing::reload`] every few seconds, so a rotation made by
//! the CLI (or another replica) is picked up without a restart.

mod generate;

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
}

pub struct KeyRing {
    current: ArcSwap<KeySet>,
    keys_dir: PathBuf,
}

/// The `typ` header values Latchkey signs.
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";
pub const TYP_JWT: &str = "JWT";

#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

impl KeyRing {
    /// Makes sure every configured algorithm has a usable key (generating it on first start),
    /// then loads the published set. Blocking.
    pub fn open(store: &Store, config: &Config, now: i64) -> anyhow::Result<KeyRing> {
        ensure_keys_dir(&config.keys_dir)?;
        let records = store.signing_keys()?;
        for alg in config.signing_algs() {
            let usable = records.iter().any(|r| {
                r.alg == alg.as_str()
                    && r.activates_at <= now
                    && r.expires_at.is_none_or(|e| e > now)
                    && private_key_path(&config.keys_dir, &r.kid).exists()
            });
            if !usable {
                let key = generate_key(alg)?;
                write_private_key(&config.keys_dir, &key.record.kid, &key.pem)?;
                let record = SigningKeyRecord {
                    created_at: now,
                    activates_at: now,
                    ..key.record
                };
                store.insert_signing_key(&record, None)?;
                tracing::info!(kid = %record.kid, alg = alg.as_str(), "generated signing key");
            }
        }
        let ring = KeyRing {
            current: ArcSwap::from_pointee(KeySet {
                keys: vec![],
                jwks: Bytes::new(),
                fingerprint: vec![],
            }),
            keys_dir: config.keys_dir.clone(),
        };
        ring.reload_from(store.signing_keys()?, now)?;
        Ok(ring)
    }

    /// Re-reads the schedule; swaps in a new key set if anything published changed. Blocking.
    pub fn reload(&self, store: &Store, now: i64) -> anyhow::Result<bool> {
        self.reload_from(store.signing_keys()?, now)
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
            let signer = match std::fs::read(private_key_path(&self.keys_dir, &r.kid)) {
                Ok(pem) => Some(
                    generate::parse_private_key(alg, &pem)
                        .map_err(|e| anyhow::anyhow!("signing key {}: {e}", r.kid))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(kid = %r.kid, dir = %self.keys_dir.display(), "private key file missing: key is published but cannot sign");
                    None
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "signing key {}: cannot read private key: {e}",
                        r.kid
                    ));
                }
            };
            let headers = [TYP_ACCESS_TOKEN, TYP_JWT]
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
    pub fn verify_access_token(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<VerifiedAccessToken, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        if header.typ.as_deref() != Some(TYP_ACCESS_TOKEN) {
            return Err("not an access token");
        }
        let kid = header.kid.as_deref().ok_or("no kid")?;
        let set = self.current.load();
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
}

impl VerifiedAccessToken {
    /// The refresh family a user token descends from (encoded in its `jti` as `family.random`).
    pub fn family_id(&self) -> Option<&str> {
        self.jti.split_once('.').map(|(f, _)| f)
    }

    pub fn has_scope(&self, s: &str) -> bool {
        self.scope.split(' ').any(|t| t == s)
    }
}

/// Generates a new key for `alg`, published now and signing after `config.key_publish_ahead`;
/// every older key of that algorithm stops being published once the tokens it can still sign
/// have expired. Also deletes keys whose publication has ended. Blocking.
pub fn rotate(
    store: &Store,
    config: &Config,
    alg: SigningAlg,
    now: i64,
) -> anyhow::Result<SigningKeyRecord> {
    ensure_keys_dir(&config.keys_dir)?;
    let key = generate_key(alg)?;
    write_private_key(&config.keys_dir, &key.record.kid, &key.pem)?;
    // A new key always activates strictly after every existing key of its algorithm, so the
    // signing key at any instant is unambiguous (two rotations in one second included).
    let latest = store
        .signing_keys()?
        .iter()
        .filter(|r| r.alg == alg.as_str())
        .map(|r| r.activates_at)
        .max();
    let activates_at =
        (now + config.key_publish_ahead as i64).max(latest.map_or(i64::MIN, |l| l + 1));
    let record = SigningKeyRecord {
        created_at: now,
        activates_at,
        ..key.record
    };
    let retire_at = activates_at + config.max_token_ttl() as i64 + RETIRE_MARGIN;
    store.insert_signing_key(&record, Some(retire_at))?;
    for kid in store.delete_expired_signing_keys(now)? {
        let _ = std::fs::remove_file(private_key_path(&config.keys_dir, &kid));
    }
    Ok(record)
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

fn write_private_key(dir: &Path, kid: &str, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let path = private_key_path(dir, kid);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .map_err(|e| anyhow::anyhow!("keys_dir: cannot create {}: {e}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
