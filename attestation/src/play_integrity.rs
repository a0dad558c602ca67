//! Play Integrity verdicts, decrypted and verified locally.
//!
//! Follows developer.android.com "Integrity verdicts" / "Decrypt and verify the integrity
//! verdict locally". The token is a compact JWE (`alg` A256KW, `enc` A256GCM; RFC 7516) under
//! the app's AES-256 decryption key; its plaintext is a compact JWS (ES256; RFC 7515) signed
//! by Google with the key whose public half is the app's verification key. Any other
//! algorithm, and the `zip` and `crit` headers, are refused.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrap};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{ConfigError, Refusal};

/// The longest token accepted (real ones are 1-3 KiB).
pub const MAX_TOKEN_LEN: usize = 32 * 1024;
/// How far in the future a verdict's `timestampMillis` may be (clock skew), in seconds.
pub const MAX_FUTURE_SKEW_SECS: i64 = 60;

/// The app's two Play Integrity keys, from the Play Console ("Manage my response encryption
/// keys"). `Debug` shows neither.
#[derive(Clone)]
pub struct PlayIntegrityKeys {
    decryption_key: [u8; 32],
    /// Uncompressed P-256 point of the verification key.
    verification_point: Vec<u8>,
}

impl std::fmt::Debug for PlayIntegrityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlayIntegrityKeys { .. }")
    }
}

impl PlayIntegrityKeys {
    /// From the Play Console's base64 strings: the AES-256 decryption key, and the
    /// verification key (DER SubjectPublicKeyInfo of an EC P-256 key).
    pub fn from_base64(decryption_key: &str, verification_key: &str) -> Result<Self, ConfigError> {
        let aes = STANDARD
            .decode(decryption_key.trim())
            .map_err(|_| ConfigError::BadKey("decryption key is not base64"))?;
        let spki = STANDARD
            .decode(verification_key.trim())
            .map_err(|_| ConfigError::BadKey("verification key is not base64"))?;
        PlayIntegrityKeys::new(&aes, &spki)
    }

    /// From raw bytes: the 32-byte AES key and the DER SubjectPublicKeyInfo.
    pub fn new(decryption_key: &[u8], verification_key_spki: &[u8]) -> Result<Self, ConfigError> {
        let decryption_key: [u8; 32] = decryption_key
            .try_into()
            .map_err(|_| ConfigError::BadKey("decryption key is not 32 bytes (AES-256)"))?;
        let (rest, spki) = SubjectPublicKeyInfo::from_der(verification_key_spki)
            .map_err(|_| ConfigError::BadKey("verification key is not a DER public key"))?;
        let is_p256 = spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
            && spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|c| c == OID_EC_P256);
        let point = spki.subject_public_key.data.to_vec();
        if !rest.is_empty() || !is_p256 || point.len() != 65 || point.first() != Some(&0x04) {
            return Err(ConfigError::BadKey(
                "verification key is not an EC P-256 key",
            ));
        }
        Ok(PlayIntegrityKeys {
            decryption_key,
            verification_point: point,
        })
    }
}

/// Device recognition levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceVerdict {
    /// `MEETS_BASIC_INTEGRITY`.
    Basic,
    /// `MEETS_DEVICE_INTEGRITY`.
    Device,
    /// `MEETS_STRONG_INTEGRITY`.
    Strong,
}

impl DeviceVerdict {
    fn from_label(label: &str) -> Option<Self> {
        match label {
            "MEETS_BASIC_INTEGRITY" => Some(DeviceVerdict::Basic),
            "MEETS_DEVICE_INTEGRITY" => Some(DeviceVerdict::Device),
            "MEETS_STRONG_INTEGRITY" => Some(DeviceVerdict::Strong),
            _ => None,
        }
    }
}

/// What the verdict must be bound to: the `nonce` of a classic request, or the
/// `requestHash` of a standard request. Compared as exact strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBinding<'a> {
    /// Classic request: `requestDetails.nonce`.
    Nonce(&'a str),
    /// Standard request: `requestDetails.requestHash`.
    RequestHash(&'a str),
}

/// What a Play Integrity verdict must satisfy.
#[derive(Debug, Clone)]
pub struct PlayPolicy {
    /// The app's package name (`requestPackageName` and `appIntegrity.packageName`).
    pub package_name: String,
    /// Allowed SHA-256 digests of the app's signing certificate (32 bytes each).
    pub certificate_digests: Vec<Vec<u8>>,
    /// The minimum device verdict. Default: `MEETS_DEVICE_INTEGRITY`.
    pub min_device_verdict: DeviceVerdict,
    /// The oldest verdict accepted, in seconds. Default: 300.
    pub max_age_secs: i64,
    /// Accept `UNRECOGNIZED_VERSION` (a version of the app Play does not know). Off.
    pub allow_unrecognized_version: bool,
    /// Require `accountDetails.appLicensingVerdict` = `LICENSED`. Off.
    pub require_licensed: bool,
}

impl PlayPolicy {
    /// A policy with the defaults above.
    pub fn new(package_name: impl Into<String>, certificate_digests: Vec<Vec<u8>>) -> Self {
        PlayPolicy {
            package_name: package_name.into(),
            certificate_digests,
            min_device_verdict: DeviceVerdict::Device,
            max_age_secs: 300,
            allow_unrecognized_version: false,
            require_licensed: false,
        }
    }
}

/// The verdict payload (the JWS payload JSON), unverified against any policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityPayload {
    /// `requestDetails.requestPackageName`.
    pub request_package_name: String,
    /// `requestDetails.nonce` (classic requests).
    pub nonce: Option<String>,
    /// `requestDetails.requestHash` (standard requests).
    pub request_hash: Option<String>,
    /// `requestDetails.timestampMillis`.
    pub timestamp_millis: i64,
    /// `appIntegrity.appRecognitionVerdict`.
    pub app_recognition_verdict: String,
    /// `appIntegrity.packageName`.
    pub package_name: Option<String>,
    /// `appIntegrity.certificateSha256Digest` (base64url strings).
    pub certificate_sha256_digest: Vec<String>,
    /// `appIntegrity.versionCode`.
    pub version_code: Option<i64>,
    /// `deviceIntegrity.deviceRecognitionVerdict` labels.
    pub device_recognition_verdict: Vec<String>,
    /// `accountDetails.appLicensingVerdict`.
    pub app_licensing_verdict: Option<String>,
}

/// A verified verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayVerdict {
    /// The strongest known device label (`None`: no label, or only unknown ones).
    pub device_verdict: Option<DeviceVerdict>,
    /// Everything the payload said.
    pub payload: IntegrityPayload,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Text(String),
    Int(i64),
}

impl Number {
    fn value(&self) -> Option<i64> {
        match self {
            Number::Text(s) => s.parse().ok(),
            Number::Int(i) => Some(*i),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPayload {
    request_details: RawRequestDetails,
    app_integrity: RawAppIntegrity,
    #[serde(default)]
    device_integrity: RawDeviceIntegrity,
    #[serde(default)]
    account_details: RawAccountDetails,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequestDetails {
    request_package_name: String,
    nonce: Option<String>,
    request_hash: Option<String>,
    timestamp_millis: Number,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAppIntegrity {
    app_recognition_verdict: String,
    package_name: Option<String>,
    #[serde(default)]
    certificate_sha256_digest: Vec<String>,
    version_code: Option<Number>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawDeviceIntegrity {
    #[serde(default)]
    device_recognition_verdict: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawAccountDetails {
    app_licensing_verdict: Option<String>,
}

/// Parses the verdict payload JSON.
pub fn parse_payload(json: &[u8]) -> Result<IntegrityPayload, Refusal> {
    let raw: RawPayload = serde_json::from_slice(json).map_err(|_| Refusal::BadPayload)?;
    let timestamp_millis = raw
        .request_details
        .timestamp_millis
        .value()
        .ok_or(Refusal::BadPayload)?;
    let version_code = match raw.app_integrity.version_code {
        Some(n) => Some(n.value().ok_or(Refusal::BadPayload)?),
        None => None,
    };
    Ok(IntegrityPayload {
        request_package_name: raw.request_details.request_package_name,
        nonce: raw.request_details.nonce,
        request_hash: raw.request_details.request_hash,
        timestamp_millis,
        app_recognition_verdict: raw.app_integrity.app_recognition_verdict,
        package_name: raw.app_integrity.package_name,
        certificate_sha256_digest: raw.app_integrity.certificate_sha256_digest,
        version_code,
        device_recognition_verdict: raw.device_integrity.device_recognition_verdict,
        app_licensing_verdict: raw.account_details.app_licensing_verdict,
    })
}

fn b64url(part: &str) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::MalformedToken)
}

/// A protected header: a JSON object with these `alg`/`enc` (where `enc` is `None`, absent),
/// and neither `zip` nor `crit`.
fn check_header(b64: &str, alg: &str, enc: Option<&str>) -> Result<(), Refusal> {
    let bytes = b64url(b64)?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| Refusal::MalformedToken)?;
    let object = header.as_object().ok_or(Refusal::MalformedToken)?;
    if object.contains_key("zip") || object.contains_key("crit") {
        return Err(Refusal::UnsupportedAlgorithm);
    }
    if object.get("alg").and_then(|v| v.as_str()) != Some(alg) {
        return Err(Refusal::UnsupportedAlgorithm);
    }
    if object.get("enc").and_then(|v| v.as_str()) != enc {
        return Err(Refusal::UnsupportedAlgorithm);
    }
    Ok(())
}

/// Decrypts the compact JWE; returns the plaintext (the compact JWS).
///
/// RFC 7516 5.2: CEK = AES-256 key unwrap (RFC 3394) of the encrypted key under the
/// decryption key; plaintext = AES-256-GCM open of ciphertext ‖ tag with the IV, and the
/// ASCII of the *encoded* protected header as additional authenticated data.
pub fn decrypt(token: &str, keys: &PlayIntegrityKeys) -> Result<Vec<u8>, Refusal> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Refusal::TooLarge);
    }
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, encrypted_key, iv, ciphertext, tag] = parts.as_slice() else {
        return Err(Refusal::MalformedToken);
    };
    check_header(header, "A256KW", Some("A256GCM"))?;
    let encrypted_key = b64url(encrypted_key)?;
    let iv = b64url(iv)?;
    let mut in_out = b64url(ciphertext)?;
    let tag = b64url(tag)?;
    if encrypted_key.len() != 40 || iv.len() != 12 || tag.len() != 16 {
        return Err(Refusal::MalformedToken);
    }
    let kek = KeyEncryptionKey::new(&AES_256, &keys.decryption_key)
        .map_err(|_| Refusal::DecryptionFailed)?;
    let mut cek = [0u8; 32];
    let cek = kek
        .unwrap(&encrypted_key, &mut cek)
        .map_err(|_| Refusal::DecryptionFailed)?;
    if cek.len() != 32 {
        return Err(Refusal::DecryptionFailed);
    }
    let key = UnboundKey::new(&AES_256_GCM, cek).map_err(|_| Refusal::DecryptionFailed)?;
    let key = LessSafeKey::new(key);
    let nonce = Nonce::try_assume_unique_for_key(&iv).map_err(|_| Refusal::MalformedToken)?;
    let plaintext = key
        .open_in_place_separate_tag(nonce, Aad::from(header.as_bytes()), &tag, &mut in_out)
        .map_err(|_| Refusal::DecryptionFailed)?;
    Ok(plaintext.to_vec())
}

/// Verifies the compact JWS (ES256, 64-byte r ‖ s signature over `header.payload`) with the
/// verification key; returns the payload bytes.
pub fn verify_jws(jws: &[u8], keys: &PlayIntegrityKeys) -> Result<Vec<u8>, Refusal> {
    let jws = std::str::from_utf8(jws).map_err(|_| Refusal::MalformedToken)?;
    let parts: Vec<&str> = jws.trim().split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(Refusal::MalformedToken);
    };
    check_header(header, "ES256", None)?;
    let signature = b64url(signature)?;
    let payload = b64url(payload)?;
    let signing_input_len = header.len() + 1 + parts[1].len();
    let signing_input = jws
        .trim()
        .get(..signing_input_len)
        .ok_or(Refusal::MalformedToken)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &keys.verification_point)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| Refusal::BadSignature)?;
    Ok(payload)
}

fn decode_digest(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// Decrypts and verifies an integrity token and checks its verdict against `policy`, the
/// request it must be bound to, and `now` (unix seconds).
///
/// Checks, in order: JWE (A256KW/A256GCM) decrypts; JWS (ES256) verifies; the payload
/// parses; `requestPackageName` is the policy's; the nonce / request hash matches; the
/// timestamp is at most `max_age_secs` old and at most [`MAX_FUTURE_SKEW_SECS`] ahead;
/// `appRecognitionVerdict` is `PLAY_RECOGNIZED` (or `UNRECOGNIZED_VERSION` if allowed);
/// `appIntegrity.packageName` is the policy's; a certificate digest is allowed; the device
/// verdict reaches the minimum; the app is licensed (if required).
pub fn verify(
    token: &str,
    keys: &PlayIntegrityKeys,
    policy: &PlayPolicy,
    binding: RequestBinding<'_>,
    now: i64,
) -> Result<PlayVerdict, Refusal> {
    let jws = decrypt(token, keys)?;
    let payload = verify_jws(&jws, keys)?;
    let payload = parse_payload(&payload)?;

    if payload.request_package_name != policy.package_name {
        return Err(Refusal::PackageNotAllowed);
    }
    let bound = match binding {
        RequestBinding::Nonce(n) => payload.nonce.as_deref() == Some(n),
        RequestBinding::RequestHash(h) => payload.request_hash.as_deref() == Some(h),
    };
    if !bound {
        return Err(Refusal::RequestMismatch);
    }
    let now_ms = now.saturating_mul(1000);
    if payload.timestamp_millis > now_ms.saturating_add(MAX_FUTURE_SKEW_SECS.saturating_mul(1000)) {
        return Err(Refusal::VerdictFromFuture);
    }
    if now_ms.saturating_sub(payload.timestamp_millis) > policy.max_age_secs.saturating_mul(1000) {
        return Err(Refusal::VerdictTooOld);
    }
    match payload.app_recognition_verdict.as_str() {
        "PLAY_RECOGNIZED" => {}
        "UNRECOGNIZED_VERSION" if policy.allow_unrecognized_version => {}
        _ => return Err(Refusal::AppNotRecognized),
    }
    if payload.package_name.as_deref() != Some(policy.package_name.as_str()) {
        return Err(Refusal::PackageNotAllowed);
    }
    let digest_allowed = payload
        .certificate_sha256_digest
        .iter()
        .filter_map(|d| decode_digest(d))
        .any(|d| policy.certificate_digests.contains(&d));
    if !digest_allowed {
        return Err(Refusal::SigningCertNotAllowed);
    }
    let device_verdict = payload
        .device_recognition_verdict
        .iter()
        .filter_map(|l| DeviceVerdict::from_label(l))
        .max();
    if device_verdict.is_none_or(|v| v < policy.min_device_verdict) {
        return Err(Refusal::DeviceIntegrityTooLow);
    }
    if policy.require_licensed && payload.app_licensing_verdict.as_deref() != Some("LICENSED") {
        return Err(Refusal::NotLicensed);
    }
    Ok(PlayVerdict {
        device_verdict,
        payload,
    })
}
