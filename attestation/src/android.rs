//! Android Key Attestation: a hardware-backed key's certificate chain and its KeyDescription.
//!
//! Follows developer.android.com "Verify hardware-backed key pairs with key attestation" and
//! the KeyDescription schema of source.android.com (attestation versions 1 to 400; only the
//! fields below are read, the others are skipped whatever their tag).
//!
//! Supported leaf keys: EC P-256, EC P-384 and RSA (2048 bits or more); each is returned as
//! DER SubjectPublicKeyInfo and as a JWK.
//!
//! Not supported: chains that use an app-generated attestation key (Android 12 `ATTEST_KEY`,
//! where a certificate above the leaf also carries the KeyDescription) are refused with
//! [`Refusal::BadAttestationExtension`]. The revocation status list is not fetched here: the
//! caller loads it ([`RevocationList::from_json`]) and refreshes it.

use std::collections::HashSet;

use serde::Deserialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::Oid;

use crate::cert::{self, KeyAlgorithm, TrustAnchor};
use crate::der::{DerError, DerResult, Reader, explicit};
use crate::{ConfigError, Refusal};

/// Google Hardware Attestation Root (RSA 4096, the 2022 issue; Google re-issued this
/// certificate several times with the same key, and chains are matched by the key).
pub const GOOGLE_RSA_ROOT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIFHDCCAwSgAwIBAgIJAPHBcqaZ6vUdMA0GCSqGSIb3DQEBCwUAMBsxGTAXBgNV
BAUTEGY5MjAwOWU4NTNiNmIwNDUwHhcNMjIwMzIwMTgwNzQ4WhcNNDIwMzE1MTgw
NzQ4WjAbMRkwFwYDVQQFExBmOTIwMDllODUzYjZiMDQ1MIICIjANBgkqhkiG9w0B
AQEFAAOCAg8AMIICCgKCAgEAr7bHgiuxpwHsK7Qui8xUFmOr75gvMsd/dTEDDJdS
Sxtf6An7xyqpRR90PL2abxM1dEqlXnf2tqw1Ne4Xwl5jlRfdnJLmN0pTy/4lj4/7
tv0Sk3iiKkypnEUtR6WfMgH0QZfKHM1+di+y9TFRtv6y//0rb+T+W8a9nsNL/ggj
nar86461qO0rOs2cXjp3kOG1FEJ5MVmFmBGtnrKpa73XpXyTqRxB/M0n1n/W9nGq
C4FSYa04T6N5RIZGBN2z2MT5IKGbFlbC8UrW0DxW7AYImQQcHtGl/m00QLVWutHQ
oVJYnFPlXTcHYvASLu+RhhsbDmxMgJJ0mcDpvsC4PjvB+TxywElgS70vE0XmLD+O
JtvsBslHZvPBKCOdT0MS+tgSOIfga+z1Z1g7+DVagf7quvmag8jfPioyKvxnK/Eg
sTUVi2ghzq8wm27ud/mIM7AY2qEORR8Go3TVB4HzWQgpZrt3i5MIlCaY504LzSRi
igHCzAPlHws+W0rB5N+er5/2pJKnfBSDiCiFAVtCLOZ7gLiMm0jhO2B6tUXHI/+M
RPjy02i59lINMRRev56GKtcd9qO/0kUJWdZTdA2XoS82ixPvZtXQpUpuL12ab+9E
aDK8Z4RHJYYfCT3Q5vNAXaiWQ+8PTWm2QgBR/bkwSWc+NpUFgNPN9PvQi8WEg5Um
AGMCAwEAAaNjMGEwHQYDVR0OBBYEFDZh4QB8iAUJUYtEbEf/GkzJ6k8SMB8GA1Ud
IwQYMBaAFDZh4QB8iAUJUYtEbEf/GkzJ6k8SMA8GA1UdEwEB/wQFMAMBAf8wDgYD
VR0PAQH/BAQDAgIEMA0GCSqGSIb3DQEBCwUAA4ICAQB8cMqTllHc8U+qCrOlg3H7
174lmaCsbo/bJ0C17JEgMLb4kvrqsXZs01U3mB/qABg/1t5Pd5AORHARs1hhqGIC
W/nKMav574f9rZN4PC2ZlufGXb7sIdJpGiO9ctRhiLuYuly10JccUZGEHpHSYM2G
tkgYbZba6lsCPYAAP83cyDV+1aOkTf1RCp/lM0PKvmxYN10RYsK631jrleGdcdkx
oSK//mSQbgcWnmAEZrzHoF1/0gso1HZgIn0YLzVhLSA/iXCX4QT2h3J5z3znluKG
1nv8NQdxei2DIIhASWfu804CA96cQKTTlaae2fweqXjdN1/v2nqOhngNyz1361mF
mr4XmaKH/ItTwOe72NI9ZcwS1lVaCvsIkTDCEXdm9rCNPAY10iTunIHFXRh+7KPz
lHGewCq/8TOohBRn0/NNfh7uRslOSZ/xKbN9tMBtw37Z8d2vvnXq/YWdsm1+JLVw
n6yYD/yacNJBlwpddla8eaVMjsF6nBnIgQOf9zKSe06nSTqvgwUHosgOECZJZ1Eu
zbH4yswbt02tKtKEFhx+v+OTge/06V+jGsqTWLsfrOCNLuA8H++z+pUENmpqnnHo
vaI47gC+TNpkgYGkkBT6B/m/U01BuOBBTzhIlMEZq9qkDWuM2cA5kW5V3FJUcfHn
w1IdYIg2Wxg7yHcQZemFQg==
-----END CERTIFICATE-----
";

/// Google's newer root, `Key Attestation CA1` (ECDSA P-384, valid 2025-07-17 to 2035-07-15),
/// which signs attestation chains from February 2026.
pub const GOOGLE_EC_ROOT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICIjCCAaigAwIBAgIRAISp0Cl7DrWK5/8OgN52BgUwCgYIKoZIzj0EAwMwUjEc
MBoGA1UEAwwTS2V5IEF0dGVzdGF0aW9uIENBMTEQMA4GA1UECwwHQW5kcm9pZDET
MBEGA1UECgwKR29vZ2xlIExMQzELMAkGA1UEBhMCVVMwHhcNMjUwNzE3MjIzMjE4
WhcNMzUwNzE1MjIzMjE4WjBSMRwwGgYDVQQDDBNLZXkgQXR0ZXN0YXRpb24gQ0Ex
MRAwDgYDVQQLDAdBbmRyb2lkMRMwEQYDVQQKDApHb29nbGUgTExDMQswCQYDVQQG
EwJVUzB2MBAGByqGSM49AgEGBSuBBAAiA2IABCPaI3FO3z5bBQo8cuiEas4HjqCt
G/mLFfRT0MsIssPBEEU5Cfbt6sH5yOAxqEi5QagpU1yX4HwnGb7OtBYpDTB57uH5
Eczm34A5FNijV3s0/f0UPl7zbJcTx6xwqMIRq6NCMEAwDwYDVR0TAQH/BAUwAwEB
/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFFIyuyz7RkOb3NaBqQ5lZuA0QepA
MAoGCCqGSM49BAMDA2gAMGUCMETfjPO/HwqReR2CS7p0ZWoD/LHs6hDi422opifH
EUaYLxwGlT9SLdjkVpz0UUOR5wIxAIoGyxGKRHVTpqpGRFiJtQEOOTp/+s1GcxeY
uR2zh/80lQyu9vAFCj6E4AXc+osmRg==
-----END CERTIFICATE-----
";

/// The OID of the KeyDescription extension.
pub const KEY_DESCRIPTION_OID: &str = "1.3.6.1.4.1.11129.2.1.17";

/// Google's two hardware attestation roots (RSA and EC) as trust anchors.
pub fn google_roots() -> Vec<TrustAnchor> {
    // Both embedded PEMs are tested to parse; a failure would only refuse everything.
    let mut roots = TrustAnchor::from_pem(GOOGLE_RSA_ROOT_PEM).unwrap_or_default();
    roots.extend(TrustAnchor::from_pem(GOOGLE_EC_ROOT_PEM).unwrap_or_default());
    roots
}

/// Where a key lives (KeyDescription `SecurityLevel`), ordered weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityLevel {
    /// Software (no hardware protection).
    Software,
    /// A trusted execution environment (TEE).
    TrustedEnvironment,
    /// A StrongBox secure element.
    StrongBox,
}

impl SecurityLevel {
    fn from_der(value: u32) -> DerResult<Self> {
        match value {
            0 => Ok(SecurityLevel::Software),
            1 => Ok(SecurityLevel::TrustedEnvironment),
            2 => Ok(SecurityLevel::StrongBox),
            _ => Err(DerError),
        }
    }
}

/// The device's verified boot state (RootOfTrust `verifiedBootState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifiedBootState {
    /// Full chain of trust to the device's own key.
    Verified,
    /// Booted with a user-installed key.
    SelfSigned,
    /// No verification (unlocked bootloader).
    Unverified,
    /// Verification failed.
    Failed,
}

/// RootOfTrust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootOfTrust {
    /// `verifiedBootKey`: digest of the key that verifies the system image.
    pub verified_boot_key: Vec<u8>,
    /// `deviceLocked`: the bootloader is locked.
    pub device_locked: bool,
    /// `verifiedBootState`.
    pub verified_boot_state: VerifiedBootState,
    /// `verifiedBootHash` (attestation version 3 and later).
    pub verified_boot_hash: Option<Vec<u8>>,
}

/// AttestationApplicationId: the package(s) of the app that owns the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationApplicationId {
    /// `(package name, version code)` for every package of the app's UID.
    pub packages: Vec<(String, i64)>,
    /// SHA-256 digests of the app's signing certificates.
    pub signature_digests: Vec<Vec<u8>>,
}

/// The fields of an AuthorizationList this crate reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationList {
    /// `[704] rootOfTrust`.
    pub root_of_trust: Option<RootOfTrust>,
    /// `[709] attestationApplicationId`.
    pub attestation_application_id: Option<AttestationApplicationId>,
}

/// KeyDescription, the attestation extension's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescription {
    /// `attestationVersion` (1, 2, 3, 4, 100, 200, 300, 400, ...).
    pub attestation_version: i64,
    /// `attestationSecurityLevel`.
    pub attestation_security_level: SecurityLevel,
    /// `keyMintVersion` (`keymasterVersion` before KeyMint).
    pub keymint_version: i64,
    /// `keyMintSecurityLevel`.
    pub keymint_security_level: SecurityLevel,
    /// `attestationChallenge`.
    pub attestation_challenge: Vec<u8>,
    /// `uniqueId`.
    pub unique_id: Vec<u8>,
    /// `softwareEnforced`.
    pub software_enforced: AuthorizationList,
    /// `hardwareEnforced` (`teeEnforced`).
    pub hardware_enforced: AuthorizationList,
}

const TAG_ROOT_OF_TRUST: u32 = 704;
const TAG_ATTESTATION_APPLICATION_ID: u32 = 709;

fn parse_root_of_trust(mut r: Reader<'_>) -> DerResult<RootOfTrust> {
    let mut seq = r.sequence()?;
    r.finish()?;
    let verified_boot_key = seq.octet_string()?.to_vec();
    let device_locked = seq.boolean()?;
    let verified_boot_state = match seq.enumerated()? {
        0 => VerifiedBootState::Verified,
        1 => VerifiedBootState::SelfSigned,
        2 => VerifiedBootState::Unverified,
        3 => VerifiedBootState::Failed,
        _ => return Err(DerError),
    };
    let verified_boot_hash = if seq.is_empty() {
        None
    } else {
        Some(seq.octet_string()?.to_vec())
    };
    seq.finish()?;
    Ok(RootOfTrust {
        verified_boot_key,
        device_locked,
        verified_boot_state,
        verified_boot_hash,
    })
}

/// Parses the DER of an AttestationApplicationId (the contents of the `[709]` OCTET STRING).
pub fn parse_attestation_application_id(der: &[u8]) -> Result<AttestationApplicationId, Refusal> {
    parse_application_id(der).map_err(|_| Refusal::BadAttestationExtension)
}

fn parse_application_id(der: &[u8]) -> DerResult<AttestationApplicationId> {
    let mut outer = Reader::new(der);
    let mut seq = outer.sequence()?;
    outer.finish()?;
    let mut infos = seq.set()?;
    let mut digests = seq.set()?;
    seq.finish()?;
    let mut packages = Vec::new();
    while !infos.is_empty() {
        let mut info = infos.sequence()?;
        let name = std::str::from_utf8(info.octet_string()?).map_err(|_| DerError)?;
        let version = info.integer()?;
        info.finish()?;
        packages.push((name.to_owned(), version));
    }
    let mut signature_digests = Vec::new();
    while !digests.is_empty() {
        signature_digests.push(digests.octet_string()?.to_vec());
    }
    Ok(AttestationApplicationId {
        packages,
        signature_digests,
    })
}

fn parse_authorization_list(r: &mut Reader<'_>) -> DerResult<AuthorizationList> {
    let mut seq = r.sequence()?;
    let mut list = AuthorizationList::default();
    while !seq.is_empty() {
        let any = seq.any()?;
        if let Some(inner) = explicit(&any, TAG_ROOT_OF_TRUST) {
            if list.root_of_trust.is_some() {
                return Err(DerError);
            }
            list.root_of_trust = Some(parse_root_of_trust(inner)?);
        } else if let Some(mut inner) = explicit(&any, TAG_ATTESTATION_APPLICATION_ID) {
            if list.attestation_application_id.is_some() {
                return Err(DerError);
            }
            let der = inner.octet_string()?;
            inner.finish()?;
            list.attestation_application_id = Some(parse_application_id(der)?);
        } else if any.class() != x509_parser::asn1_rs::Class::ContextSpecific {
            // Every AuthorizationList field is an explicitly tagged context-specific one.
            return Err(DerError);
        }
    }
    Ok(list)
}

/// Parses a KeyDescription (the value of extension 1.3.6.1.4.1.11129.2.1.17).
pub fn parse_key_description(der: &[u8]) -> Result<KeyDescription, Refusal> {
    parse_key_description_der(der).map_err(|_| Refusal::BadAttestationExtension)
}

fn parse_key_description_der(der: &[u8]) -> DerResult<KeyDescription> {
    let mut outer = Reader::new(der);
    let mut seq = outer.sequence()?;
    outer.finish()?;
    let attestation_version = seq.integer()?;
    let attestation_security_level = SecurityLevel::from_der(seq.enumerated()?)?;
    let keymint_version = seq.integer()?;
    let keymint_security_level = SecurityLevel::from_der(seq.enumerated()?)?;
    let attestation_challenge = seq.octet_string()?.to_vec();
    let unique_id = seq.octet_string()?.to_vec();
    let software_enforced = parse_authorization_list(&mut seq)?;
    let hardware_enforced = parse_authorization_list(&mut seq)?;
    seq.finish()?;
    Ok(KeyDescription {
        attestation_version,
        attestation_security_level,
        keymint_version,
        keymint_security_level,
        attestation_challenge,
        unique_id,
        software_enforced,
        hardware_enforced,
    })
}

/// Google's attestation certificate status list (revoked and suspended serial numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    serials: HashSet<String>,
}

#[derive(Deserialize)]
struct StatusList {
    entries: std::collections::HashMap<String, StatusEntry>,
}

#[derive(Deserialize)]
struct StatusEntry {
    status: String,
}

/// A serial number as the status list writes it: lowercase hex, no leading zeros.
fn normalize_serial(hex: &str) -> String {
    let lower = hex.trim().to_ascii_lowercase();
    let trimmed = lower.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

impl RevocationList {
    /// An empty list: nothing revoked.
    pub fn new() -> Self {
        RevocationList::default()
    }

    /// Parses the status list JSON, `{"entries": {"<hex serial>": {"status": "REVOKED", ...}}}`.
    /// Entries whose status is `REVOKED` or `SUSPENDED` refuse a chain; other statuses are
    /// ignored. Fetching (and refreshing) the list is the caller's job.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let list: StatusList = serde_json::from_str(text)
            .map_err(|e| ConfigError::BadRevocationList(e.to_string()))?;
        let mut serials = HashSet::new();
        for (serial, entry) in list.entries {
            if !serial.chars().all(|c| c.is_ascii_hexdigit()) || serial.is_empty() {
                return Err(ConfigError::BadRevocationList(format!(
                    "bad serial {serial:?}"
                )));
            }
            if entry.status == "REVOKED" || entry.status == "SUSPENDED" {
                serials.insert(normalize_serial(&serial));
            }
        }
        Ok(RevocationList { serials })
    }

    /// Adds a serial number (hex).
    pub fn insert(&mut self, serial_hex: &str) {
        self.serials.insert(normalize_serial(serial_hex));
    }

    /// How many serial numbers are listed.
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    /// Nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }

    /// This serial number (hex) is revoked or suspended.
    pub fn contains(&self, serial_hex: &str) -> bool {
        self.serials.contains(&normalize_serial(serial_hex))
    }

    fn contains_cert(&self, cert: &X509Certificate<'_>) -> bool {
        self.serials.contains(&normalize_serial(
            &cert.tbs_certificate.serial.to_str_radix(16),
        ))
    }
}

/// What an Android key attestation must satisfy.
#[derive(Debug, Clone)]
pub struct AndroidPolicy {
    /// Trusted roots; by default Google's hardware attestation roots.
    pub roots: Vec<TrustAnchor>,
    /// Allowed package names.
    pub package_names: Vec<String>,
    /// Allowed SHA-256 digests of the app's signing certificate (32 bytes each).
    pub signing_cert_digests: Vec<Vec<u8>>,
    /// Minimum of both the attestation and the KeyMint security level. Default: TEE.
    pub min_security_level: SecurityLevel,
    /// Accept boot states other than `Verified` (and a missing hardware root of trust).
    /// Off by default.
    pub allow_unverified_boot: bool,
    /// Require `deviceLocked`. On by default (ignored when `allow_unverified_boot`).
    pub require_device_locked: bool,
    /// Revoked certificate serial numbers.
    pub revocations: RevocationList,
}

impl AndroidPolicy {
    /// A policy for these packages and signing-certificate digests with Google's roots,
    /// TEE or StrongBox keys, verified boot and a locked bootloader, nothing revoked.
    pub fn new<P, S>(package_names: P, signing_cert_digests: Vec<Vec<u8>>) -> Self
    where
        P: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AndroidPolicy {
            roots: google_roots(),
            package_names: package_names.into_iter().map(Into::into).collect(),
            signing_cert_digests,
            min_security_level: SecurityLevel::TrustedEnvironment,
            allow_unverified_boot: false,
            require_device_locked: true,
            revocations: RevocationList::new(),
        }
    }
}

/// An attested Android key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidKey {
    /// The key type.
    pub algorithm: KeyAlgorithm,
    /// The leaf's public key, DER SubjectPublicKeyInfo.
    pub public_key_spki: Vec<u8>,
    /// The leaf's public key as a JWK (EC: kty, crv, x, y; RSA: kty, n, e).
    pub public_key_jwk: serde_json::Value,
    /// `attestationVersion`.
    pub attestation_version: i64,
    /// `attestationSecurityLevel`.
    pub attestation_security_level: SecurityLevel,
    /// `keyMintSecurityLevel`.
    pub keymint_security_level: SecurityLevel,
    /// The hardware-enforced verified boot state, when present.
    pub verified_boot_state: Option<VerifiedBootState>,
    /// The hardware-enforced `deviceLocked`, when present.
    pub device_locked: Option<bool>,
    /// The allowed package name found in the attestation application id.
    pub package_name: String,
}

fn key_description_oid() -> Result<Oid<'static>, Refusal> {
    Oid::from(&[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17])
        .map_err(|_| Refusal::MissingAttestationExtension)
}

/// Verifies an Android key attestation certificate chain (leaf first, as
/// `KeyStore.getCertificateChain` returns it) at `now` (unix seconds).
///
/// Checks, in order: every certificate parses; the chain verifies to a policy root and every
/// certificate is valid at `now`; no serial number is revoked; the leaf, and only the leaf,
/// carries a KeyDescription, which parses; the challenge equals `challenge`; both security
/// levels are at least the policy minimum; the hardware root of trust says `Verified` and
/// locked (unless allowed); a package name and a signing-certificate digest of the
/// attestation application id are allowed; the leaf key is a supported type.
pub fn verify_key_attestation<D: AsRef<[u8]>>(
    chain_der: &[D],
    challenge: &[u8],
    policy: &AndroidPolicy,
    now: i64,
) -> Result<AndroidKey, Refusal> {
    let chain = cert::parse_chain(chain_der)?;
    cert::verify_chain(&chain, &policy.roots, now)?;
    if chain.iter().any(|c| policy.revocations.contains_cert(c)) {
        return Err(Refusal::Revoked);
    }
    let oid = key_description_oid()?;
    let (leaf, above) = chain.split_first().ok_or(Refusal::BadCertificate)?;
    for cert in above {
        if cert.iter_extensions().any(|e| e.oid == oid) {
            return Err(Refusal::BadAttestationExtension);
        }
    }
    let ext = leaf
        .tbs_certificate
        .get_extension_unique(&oid)
        .map_err(|_| Refusal::BadAttestationExtension)?
        .ok_or(Refusal::MissingAttestationExtension)?;
    let description = parse_key_description(ext.value)?;
    let (package_name, rot) = check_description(&description, challenge, policy)?;
    let key = cert::extract_key(leaf.public_key())?;
    Ok(AndroidKey {
        algorithm: key.algorithm,
        public_key_spki: key.spki_der,
        public_key_jwk: key.jwk,
        attestation_version: description.attestation_version,
        attestation_security_level: description.attestation_security_level,
        keymint_security_level: description.keymint_security_level,
        verified_boot_state: rot.as_ref().map(|r| r.verified_boot_state),
        device_locked: rot.as_ref().map(|r| r.device_locked),
        package_name,
    })
}

/// The policy checks on a parsed KeyDescription; returns the allowed package name and the
/// hardware root of trust.
fn check_description(
    d: &KeyDescription,
    challenge: &[u8],
    policy: &AndroidPolicy,
) -> Result<(String, Option<RootOfTrust>), Refusal> {
    if d.attestation_challenge != challenge {
        return Err(Refusal::ChallengeMismatch);
    }
    if d.attestation_security_level.min(d.keymint_security_level) < policy.min_security_level {
        return Err(Refusal::SecurityLevelTooLow);
    }
    let rot = d.hardware_enforced.root_of_trust.clone();
    if !policy.allow_unverified_boot {
        match &rot {
            Some(r) if r.verified_boot_state == VerifiedBootState::Verified => {
                if policy.require_device_locked && !r.device_locked {
                    return Err(Refusal::DeviceNotLocked);
                }
            }
            _ => return Err(Refusal::BootStateNotVerified),
        }
    }
    let app = d
        .software_enforced
        .attestation_application_id
        .as_ref()
        .or(d.hardware_enforced.attestation_application_id.as_ref())
        .ok_or(Refusal::PackageNotAllowed)?;
    let package_name = app
        .packages
        .iter()
        .map(|(name, _)| name)
        .find(|name| policy.package_names.iter().any(|p| p == *name))
        .ok_or(Refusal::PackageNotAllowed)?;
    if !app
        .signature_digests
        .iter()
        .any(|d| policy.signing_cert_digests.iter().any(|p| p == d))
    {
        return Err(Refusal::SigningCertNotAllowed);
    }
    Ok((package_name.clone(), rot))
}
