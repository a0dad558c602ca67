//! Apple App Attest: attestation objects and assertions.
//!
//! Follows Apple's "Validating apps that connect to your server". An attestation
//! ([`verify_attestation`]) is checked once, when the app registers its key; every later
//! request carries an assertion ([`verify_assertion`]) signed by that key.
//!
//! Not checked here: the `receipt` (a PKCS #7 blob for Apple's fraud-metric service); it is
//! returned as bytes for the caller to store or to send to Apple.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use ciborium::Value;
use x509_parser::oid_registry::Oid;

use crate::Refusal;
use crate::cert::{self, TrustAnchor};
use crate::der::{Reader, explicit};

/// Apple App Attestation Root CA (published at apple.com/certificateauthority,
/// `Apple_App_Attestation_Root_CA.pem`; SHA-256 of the DER
/// `1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932`; valid 2020-03-18 to
/// 2045-03-15; P-384).
pub const APPLE_APP_ATTESTATION_ROOT_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICITCCAaegAwIBAgIQC/O+DvHN0uD7jG5yH2IXmDAKBggqhkjOPQQDAzBSMSYw
JAYDVQQDDB1BcHBsZSBBcHAgQXR0ZXN0YXRpb24gUm9vdCBDQTETMBEGA1UECgwK
QXBwbGUgSW5jLjETMBEGA1UECAwKQ2FsaWZvcm5pYTAeFw0yMDAzMTgxODMyNTNa
Fw00NTAzMTUwMDAwMDBaMFIxJjAkBgNVBAMMHUFwcGxlIEFwcCBBdHRlc3RhdGlv
biBSb290IENBMRMwEQYDVQQKDApBcHBsZSBJbmMuMRMwEQYDVQQIDApDYWxpZm9y
bmlhMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAERTHhmLW07ATaFQIEVwTtT4dyctdh
NbJhFs/Ii2FdCgAHGbpphY3+d8qjuDngIN3WVhQUBHAoMeQ/cLiP1sOUtgjqK9au
Yen1mMEvRq9Sk3Jm5X8U62H+xTD3FE9TgS41o0IwQDAPBgNVHRMBAf8EBTADAQH/
MB0GA1UdDgQWBBSskRBTM72+aEH/pwyp5frq5eWKoTAOBgNVHQ8BAf8EBAMCAQYw
CgYIKoZIzj0EAwMDaAAwZQIwQgFGnByvsiVbpTKwSga0kP0e8EeDS4+sQmTvb7vn
53O5+FRXgeLhpJ06ysC5PrOyAjEAp5U4xDgEgllF7En3VcE3iexZZtKeYnpqtijV
oyFraWVIyd/dganmrduC1bmTBGwD
-----END CERTIFICATE-----
";

/// The OID of the App Attest nonce extension of the credential certificate.
pub const NONCE_EXTENSION_OID: &str = "1.2.840.113635.100.8.2";

/// The largest attestation object accepted (real ones are about 5.5 KiB, receipt included).
pub const MAX_ATTESTATION_LEN: usize = 64 * 1024;
/// The largest assertion accepted (real ones are about 120 bytes).
pub const MAX_ASSERTION_LEN: usize = 4 * 1024;

/// AAGUID of production attestations: `appattest` followed by seven zero bytes.
pub const AAGUID_PRODUCTION: [u8; 16] = *b"appattest\0\0\0\0\0\0\0";
/// AAGUID of development attestations (apps signed for development): `appattestdevelop`.
pub const AAGUID_DEVELOPMENT: [u8; 16] = *b"appattestdevelop";

/// The App Attest environment of an attestation, from its AAGUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// `appattest` + 7 zero bytes.
    Production,
    /// `appattestdevelop`.
    Development,
}

/// What an App Attest attestation must satisfy.
#[derive(Debug, Clone)]
pub struct ApplePolicy {
    /// Trusted roots; by default Apple's App Attestation Root CA.
    pub roots: Vec<TrustAnchor>,
    /// Allowed App IDs, `TEAMID.bundle.identifier`.
    pub app_ids: Vec<String>,
    /// Accept development attestations (AAGUID `appattestdevelop`). Off by default.
    pub allow_development: bool,
}

impl ApplePolicy {
    /// A policy for these App IDs with Apple's root, production attestations only.
    pub fn new<I, S>(app_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ApplePolicy {
            roots: apple_roots(),
            app_ids: app_ids.into_iter().map(Into::into).collect(),
            allow_development: false,
        }
    }
}

/// Apple's App Attestation Root CA as a trust anchor list.
pub fn apple_roots() -> Vec<TrustAnchor> {
    // The embedded PEM is tested to parse; an empty list would only refuse everything.
    TrustAnchor::from_pem(APPLE_APP_ATTESTATION_ROOT_CA_PEM).unwrap_or_default()
}

/// An attested App Attest key, to store with its counter for later assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppleKey {
    /// The key identifier (SHA-256 of `public_key`), as the app sent it (base64-decoded).
    pub key_id: Vec<u8>,
    /// The public key as an uncompressed P-256 point (65 bytes: 0x04 ‖ X ‖ Y).
    pub public_key: Vec<u8>,
    /// The public key as a JWK: `{"kty":"EC","crv":"P-256","x":..,"y":..}`.
    pub public_key_jwk: serde_json::Value,
    /// The allowed App ID the attestation is for.
    pub app_id: String,
    /// Production or development.
    pub environment: Environment,
    /// The receipt (PKCS #7, not validated here), for Apple's fraud-metric service.
    pub receipt: Vec<u8>,
    /// The sign counter after attestation (always 0); store it as the previous counter.
    pub counter: u32,
}

/// The fields of an App Attest attestation object (CBOR), unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationObject {
    /// `fmt`, which must be `apple-appattest`.
    pub fmt: String,
    /// `attStmt.x5c`: the credential certificate first, then the intermediate.
    pub x5c: Vec<Vec<u8>>,
    /// `attStmt.receipt`.
    pub receipt: Vec<u8>,
    /// `authData`.
    pub auth_data: Vec<u8>,
}

/// Authenticator data (WebAuthn layout), unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorData {
    /// SHA-256 of the App ID.
    pub rp_id_hash: [u8; 32],
    /// The flags byte.
    pub flags: u8,
    /// The sign counter.
    pub counter: u32,
    /// Attested credential data, when present (attestations).
    pub attested: Option<AttestedCredential>,
}

/// The attested credential data of an attestation's authenticator data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential {
    /// The AAGUID (environment).
    pub aaguid: [u8; 16],
    /// The credential id (the key identifier).
    pub credential_id: Vec<u8>,
}

fn map_get<'a>(map: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    let mut found = None;
    for (k, v) in map {
        if k.as_text() == Some(key) {
            if found.is_some() {
                return None; // duplicate key
            }
            found = Some(v);
        }
    }
    found
}

fn decode_cbor(bytes: &[u8]) -> Result<Value, Refusal> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader(&mut reader).map_err(|_| Refusal::BadCbor)?;
    if !reader.is_empty() {
        return Err(Refusal::BadCbor);
    }
    Ok(value)
}

/// Parses an attestation object (CBOR map `fmt`, `attStmt {x5c, receipt}`, `authData`).
pub fn parse_attestation_object(bytes: &[u8]) -> Result<AttestationObject, Refusal> {
    if bytes.len() > MAX_ATTESTATION_LEN {
        return Err(Refusal::TooLarge);
    }
    let value = decode_cbor(bytes)?;
    let map = value.as_map().ok_or(Refusal::BadCbor)?;
    let fmt = map_get(map, "fmt")
        .and_then(Value::as_text)
        .ok_or(Refusal::BadCbor)?;
    let stmt = map_get(map, "attStmt")
        .and_then(Value::as_map)
        .ok_or(Refusal::BadCbor)?;
    let auth_data = map_get(map, "authData")
        .and_then(Value::as_bytes)
        .ok_or(Refusal::BadCbor)?;
    let x5c = map_get(stmt, "x5c")
        .and_then(Value::as_array)
        .ok_or(Refusal::BadCbor)?;
    let x5c = x5c
        .iter()
        .map(|c| c.as_bytes().cloned().ok_or(Refusal::BadCbor))
        .collect::<Result<Vec<_>, _>>()?;
    let receipt = map_get(stmt, "receipt")
        .and_then(Value::as_bytes)
        .ok_or(Refusal::BadCbor)?;
    Ok(AttestationObject {
        fmt: fmt.to_owned(),
        x5c,
        receipt: receipt.clone(),
        auth_data: auth_data.clone(),
    })
}

/// Parses authenticator data. With `with_credential`, the attested credential data (AAGUID,
/// credential id) must be present and is parsed; the COSE key after it is not read (the
/// credential id binds the data to the certificate's key). Without, only the first 37 bytes
/// are read (Apple's assertions set the AT flag but carry no credential data).
pub fn parse_authenticator_data(
    bytes: &[u8],
    with_credential: bool,
) -> Result<AuthenticatorData, Refusal> {
    let bad = Refusal::BadAuthenticatorData;
    let rp_id_hash: [u8; 32] = bytes.get(..32).and_then(|s| s.try_into().ok()).ok_or(bad)?;
    let flags = *bytes.get(32).ok_or(bad)?;
    let counter_bytes: [u8; 4] = bytes
        .get(33..37)
        .and_then(|s| s.try_into().ok())
        .ok_or(bad)?;
    let counter = u32::from_be_bytes(counter_bytes);
    let attested = if with_credential {
        // AT flag (bit 6): attested credential data included.
        if flags & 0x40 == 0 {
            return Err(bad);
        }
        let aaguid: [u8; 16] = bytes
            .get(37..53)
            .and_then(|s| s.try_into().ok())
            .ok_or(bad)?;
        let len_bytes: [u8; 2] = bytes
            .get(53..55)
            .and_then(|s| s.try_into().ok())
            .ok_or(bad)?;
        let len = usize::from(u16::from_be_bytes(len_bytes));
        let credential_id = bytes.get(55..55 + len).ok_or(bad)?.to_vec();
        Some(AttestedCredential {
            aaguid,
            credential_id,
        })
    } else {
        None
    };
    Ok(AuthenticatorData {
        rp_id_hash,
        flags,
        counter,
        attested,
    })
}

/// The nonce of the credential certificate's extension 1.2.840.113635.100.8.2:
/// `SEQUENCE { [1] EXPLICIT OCTET STRING }`.
fn certificate_nonce(
    leaf: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<Vec<u8>, Refusal> {
    let oid = Oid::from(&[1, 2, 840, 113635, 100, 8, 2])
        .map_err(|_| Refusal::MissingAttestationExtension)?;
    let ext = leaf
        .tbs_certificate
        .get_extension_unique(&oid)
        .map_err(|_| Refusal::BadAttestationExtension)?
        .ok_or(Refusal::MissingAttestationExtension)?;
    let bad = |_| Refusal::BadAttestationExtension;
    let mut outer = Reader::new(ext.value);
    let mut seq = outer.sequence().map_err(bad)?;
    outer.finish().map_err(bad)?;
    let tagged = seq.any().map_err(bad)?;
    seq.finish().map_err(bad)?;
    let mut inner = explicit(&tagged, 1).ok_or(Refusal::BadAttestationExtension)?;
    let nonce = inner.octet_string().map_err(bad)?;
    inner.finish().map_err(bad)?;
    Ok(nonce.to_vec())
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Verifies an App Attest attestation object.
///
/// `client_data_hash` is the SHA-256 the app passed to `attestKey` (of data that includes the
/// server's one-time challenge; checking that challenge is the caller's job). `key_id` is the
/// key identifier from `generateKey`, base64-decoded. `now` is unix seconds.
///
/// Checks, in order: CBOR shape and `fmt`; the x5c chain to a policy root, valid at `now`;
/// SHA-256(authData ‖ clientDataHash) equals the certificate's nonce extension; SHA-256 of the
/// certificate's public key equals `key_id`; the RP ID hash is SHA-256 of an allowed App ID;
/// the counter is 0; the AAGUID is production (or development, if allowed); the credential id
/// equals `key_id`.
pub fn verify_attestation(
    attestation_object: &[u8],
    client_data_hash: &[u8],
    key_id: &[u8],
    policy: &ApplePolicy,
    now: i64,
) -> Result<AppleKey, Refusal> {
    let object = parse_attestation_object(attestation_object)?;
    if object.fmt != "apple-appattest" {
        return Err(Refusal::UnsupportedFormat);
    }
    let chain = cert::parse_chain(&object.x5c)?;
    cert::verify_chain(&chain, &policy.roots, now)?;
    let leaf = chain.first().ok_or(Refusal::BadCertificate)?;

    let nonce = sha256(&[&object.auth_data, client_data_hash]);
    if certificate_nonce(leaf)? != nonce {
        return Err(Refusal::NonceMismatch);
    }

    let key = cert::extract_key(leaf.public_key())?;
    if key.algorithm != cert::KeyAlgorithm::EcP256 {
        return Err(Refusal::UnsupportedKey);
    }
    if digest(&SHA256, &key.ec_point).as_ref() != key_id {
        return Err(Refusal::KeyIdMismatch);
    }

    let auth = parse_authenticator_data(&object.auth_data, true)?;
    let app_id = policy
        .app_ids
        .iter()
        .find(|id| sha256(&[id.as_bytes()]) == auth.rp_id_hash)
        .ok_or(Refusal::RpIdMismatch)?;
    if auth.counter != 0 {
        return Err(Refusal::CounterNotZero);
    }
    let credential = auth.attested.ok_or(Refusal::BadAuthenticatorData)?;
    let environment = match credential.aaguid {
        AAGUID_PRODUCTION => Environment::Production,
        AAGUID_DEVELOPMENT if policy.allow_development => Environment::Development,
        AAGUID_DEVELOPMENT => return Err(Refusal::DevelopmentNotAllowed),
        _ => return Err(Refusal::BadAaguid),
    };
    if credential.credential_id != key_id {
        return Err(Refusal::CredentialIdMismatch);
    }
    Ok(AppleKey {
        key_id: key_id.to_vec(),
        public_key: key.ec_point,
        public_key_jwk: key.jwk,
        app_id: app_id.clone(),
        environment,
        receipt: object.receipt,
        counter: 0,
    })
}

/// The fields of an App Attest assertion (CBOR map `signature`, `authenticatorData`),
/// unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// DER ECDSA signature.
    pub signature: Vec<u8>,
    /// Authenticator data (37 bytes).
    pub authenticator_data: Vec<u8>,
}

/// Parses an assertion.
pub fn parse_assertion(bytes: &[u8]) -> Result<Assertion, Refusal> {
    if bytes.len() > MAX_ASSERTION_LEN {
        return Err(Refusal::TooLarge);
    }
    let value = decode_cbor(bytes)?;
    let map = value.as_map().ok_or(Refusal::BadCbor)?;
    let signature = map_get(map, "signature")
        .and_then(Value::as_bytes)
        .ok_or(Refusal::BadCbor)?;
    let authenticator_data = map_get(map, "authenticatorData")
        .and_then(Value::as_bytes)
        .ok_or(Refusal::BadCbor)?;
    Ok(Assertion {
        signature: signature.clone(),
        authenticator_data: authenticator_data.clone(),
    })
}

/// The uncompressed P-256 point of a stored key, from its 65-byte form.
fn check_point(public_key: &[u8]) -> Result<(), Refusal> {
    if public_key.len() == 65 && public_key.first() == Some(&0x04) {
        Ok(())
    } else {
        Err(Refusal::UnsupportedKey)
    }
}

/// Verifies an App Attest assertion and returns its (new) counter, to store.
///
/// `client_data` is the request data the app signed (the caller checks that it carries the
/// server's challenge). `public_key` is the stored uncompressed P-256 point
/// ([`AppleKey::public_key`]); `previous_counter` the stored counter (0 after attestation).
///
/// The signature: nonce = SHA-256(authenticatorData ‖ SHA-256(clientData)); the ECDSA P-256
/// signature (DER) is over the *message* `nonce` with SHA-256, i.e. over SHA-256(nonce), as
/// CryptoKit's `signature(for: nonce)` makes it on the device.
///
/// Checks, in order: CBOR shape; the signature; the RP ID hash is SHA-256(`app_id`); the
/// counter is greater than `previous_counter`.
pub fn verify_assertion(
    assertion: &[u8],
    client_data: &[u8],
    public_key: &[u8],
    app_id: &str,
    previous_counter: u32,
) -> Result<u32, Refusal> {
    let assertion = parse_assertion(assertion)?;
    check_point(public_key)?;
    let auth = parse_authenticator_data(&assertion.authenticator_data, false)?;
    let client_data_hash = sha256(&[client_data]);
    let nonce = sha256(&[&assertion.authenticator_data, &client_data_hash]);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&nonce, &assertion.signature)
        .map_err(|_| Refusal::BadSignature)?;
    if auth.rp_id_hash != sha256(&[app_id.as_bytes()]) {
        return Err(Refusal::RpIdMismatch);
    }
    if auth.counter <= previous_counter {
        return Err(Refusal::CounterNotIncreasing);
    }
    Ok(auth.counter)
}
