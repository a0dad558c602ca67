//! Certificate chains: parsing, trust anchors, and the chain walk shared by the Apple and
//! Android verifiers. Signatures are checked by aws-lc-rs with the issuer's public key; this
//! module only decides *which* key checks *which* bytes.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{ConfigError, Refusal};

/// The most certificates a chain may have (leaf included).
pub const MAX_CHAIN_LEN: usize = 8;
/// The largest DER certificate accepted.
pub const MAX_CERT_LEN: usize = 16 * 1024;

/// A trusted root: a certificate whose public key ends a chain.
///
/// A chain is trusted when its last certificate either carries the public key of an anchor
/// and is signed by it (the root itself is in the chain, self-signed; Google re-issues its
/// root certificate with the same key, and says to trust the *key*), or is issued by an anchor (subject equals the issuer, and the
/// anchor's key verifies the signature; Apple's x5c stops below the root). In the second case
/// the anchor certificate must also be valid at `now`.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    der: Vec<u8>,
}

impl std::fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("der_len", &self.der.len())
            .finish()
    }
}

impl TrustAnchor {
    /// An anchor from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, ConfigError> {
        parse_one(der)
            .map_err(|_| ConfigError::BadCertificate("not a DER X.509 certificate".into()))?;
        Ok(TrustAnchor { der: der.to_vec() })
    }

    /// Every certificate of a PEM text (one or more `BEGIN CERTIFICATE` blocks).
    pub fn from_pem(pem_text: &str) -> Result<Vec<Self>, ConfigError> {
        let mut anchors = Vec::new();
        for pem in x509_parser::pem::Pem::iter_from_buffer(pem_text.as_bytes()) {
            let pem = pem.map_err(|e| ConfigError::BadCertificate(format!("bad PEM: {e}")))?;
            if pem.label != "CERTIFICATE" {
                continue;
            }
            anchors.push(TrustAnchor::from_der(&pem.contents)?);
        }
        if anchors.is_empty() {
            return Err(ConfigError::BadCertificate(
                "no certificate in PEM text".into(),
            ));
        }
        Ok(anchors)
    }

    /// The DER certificate.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// Parses one DER certificate; refuses trailing bytes and oversized input.
pub(crate) fn parse_one(der: &[u8]) -> Result<X509Certificate<'_>, Refusal> {
    if der.len() > MAX_CERT_LEN {
        return Err(Refusal::BadCertificate);
    }
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(Refusal::BadCertificate),
    }
}

/// Parses a chain, leaf first.
pub(crate) fn parse_chain<D: AsRef<[u8]>>(
    chain: &[D],
) -> Result<Vec<X509Certificate<'_>>, Refusal> {
    if chain.is_empty() || chain.len() > MAX_CHAIN_LEN {
        return Err(Refusal::BadCertificate);
    }
    chain.iter().map(|der| parse_one(der.as_ref())).collect()
}

fn check_validity(cert: &X509Certificate<'_>, now: i64) -> Result<(), Refusal> {
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(Refusal::CertificateNotYetValid);
    }
    if now > validity.not_after.timestamp() {
        return Err(Refusal::CertificateExpired);
    }
    Ok(())
}

/// `issuer` may sign certificates: basicConstraints CA (the path length, when present, allows
/// `below` CA certificates under it) and, when keyUsage is present, keyCertSign.
fn check_issuer(issuer: &X509Certificate<'_>, cas_below: usize) -> Result<(), Refusal> {
    match issuer.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {
            if let Some(max) = bc.value.path_len_constraint
                && cas_below > max as usize
            {
                return Err(Refusal::ChainUntrusted);
            }
        }
        _ => return Err(Refusal::ChainUntrusted),
    }
    match issuer.key_usage() {
        Ok(None) => Ok(()),
        Ok(Some(ku)) if ku.value.key_cert_sign() => Ok(()),
        _ => Err(Refusal::ChainUntrusted),
    }
}

/// The aws-lc-rs algorithm for a certificate signature algorithm and the signer's key.
fn verification_algorithm(
    sig_alg: &x509_parser::x509::AlgorithmIdentifier<'_>,
    signer: &SubjectPublicKeyInfo<'_>,
) -> Option<&'static dyn VerificationAlgorithm> {
    let oid = &sig_alg.algorithm;
    let key_alg = &signer.algorithm.algorithm;
    if *key_alg == OID_PKCS1_RSAENCRYPTION {
        if *oid == OID_PKCS1_SHA256WITHRSA {
            return Some(&signature::RSA_PKCS1_2048_8192_SHA256);
        }
        if *oid == OID_PKCS1_SHA384WITHRSA {
            return Some(&signature::RSA_PKCS1_2048_8192_SHA384);
        }
        if *oid == OID_PKCS1_SHA512WITHRSA {
            return Some(&signature::RSA_PKCS1_2048_8192_SHA512);
        }
        return None;
    }
    if *key_alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = signer.algorithm.parameters.as_ref()?.as_oid().ok()?;
        let p256 = curve == OID_EC_P256;
        let p384 = curve == OID_NIST_EC_P384;
        return match (p256, p384) {
            (true, _) if *oid == OID_SIG_ECDSA_WITH_SHA256 => {
                Some(&signature::ECDSA_P256_SHA256_ASN1)
            }
            (true, _) if *oid == OID_SIG_ECDSA_WITH_SHA384 => {
                Some(&signature::ECDSA_P256_SHA384_ASN1)
            }
            (_, true) if *oid == OID_SIG_ECDSA_WITH_SHA256 => {
                Some(&signature::ECDSA_P384_SHA256_ASN1)
            }
            (_, true) if *oid == OID_SIG_ECDSA_WITH_SHA384 => {
                Some(&signature::ECDSA_P384_SHA384_ASN1)
            }
            _ => None,
        };
    }
    None
}

/// `cert`'s signature verifies with `signer`'s key. SHA-1 and unknown algorithms are refused.
fn check_signature(
    cert: &X509Certificate<'_>,
    signer: &SubjectPublicKeyInfo<'_>,
) -> Result<(), Refusal> {
    // The outer and the signed (TBS) algorithm identifiers must agree (RFC 5280 4.1.1.2).
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(Refusal::BadCertificate);
    }
    let alg =
        verification_algorithm(&cert.signature_algorithm, signer).ok_or(Refusal::ChainUntrusted)?;
    UnparsedPublicKey::new(alg, &signer.subject_public_key.data)
        .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
        .map_err(|_| Refusal::BadSignature)
}

/// Verifies `chain` (leaf first) at `now` against `anchors`; see [`TrustAnchor`].
///
/// Checks, for every certificate: validity at `now`; for every link: the issuer name equals
/// the next certificate's subject (DER bytes), the next certificate is a CA allowed to sign
/// (basicConstraints, path length, keyUsage), and its key verifies the signature.
pub(crate) fn verify_chain(
    chain: &[X509Certificate<'_>],
    anchors: &[TrustAnchor],
    now: i64,
) -> Result<(), Refusal> {
    let Some(last) = chain.last() else {
        return Err(Refusal::BadCertificate);
    };
    for cert in chain {
        check_validity(cert, now)?;
    }
    for (i, pair) in chain.windows(2).enumerate() {
        let (child, issuer) = (&pair[0], &pair[1]);
        if child.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(Refusal::ChainUntrusted);
        }
        // CA certificates strictly between the leaf and this issuer.
        check_issuer(issuer, i)?;
        check_signature(child, issuer.public_key())?;
    }
    // The key of the last certificate is itself a trusted root key.
    let mut parsed_anchors = Vec::with_capacity(anchors.len());
    for anchor in anchors {
        let Ok(root) = parse_one(&anchor.der) else {
            continue;
        };
        if root.public_key().raw == last.public_key().raw {
            // The chain's own copy of the root: its contents (validity, constraints, already
            // checked above) count only if the trusted key signed them.
            return check_signature(last, last.public_key());
        }
        parsed_anchors.push(root);
    }
    // The last certificate is issued by a root.
    let cas_below = chain.len().saturating_sub(1);
    let mut refusal = Refusal::ChainUntrusted;
    for root in &parsed_anchors {
        if root.subject().as_raw() != last.issuer().as_raw() {
            continue;
        }
        let verdict = check_validity(root, now)
            .and_then(|()| check_issuer(root, cas_below))
            .and_then(|()| check_signature(last, root.public_key()));
        match verdict {
            Ok(()) => return Ok(()),
            // Keep the most specific reason, but go on: another root may have the same name.
            Err(r) => refusal = r,
        }
    }
    Err(refusal)
}

/// The type of an attested public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 (ES256).
    EcP256,
    /// ECDSA on P-384 (ES384).
    EcP384,
    /// RSA.
    Rsa,
}

/// A certificate's public key: DER SubjectPublicKeyInfo, and as a JWK (RFC 7517).
pub(crate) struct ExtractedKey {
    pub(crate) algorithm: KeyAlgorithm,
    pub(crate) spki_der: Vec<u8>,
    pub(crate) jwk: serde_json::Value,
    /// EC keys: the uncompressed point (0x04 ‖ X ‖ Y). Empty for RSA.
    pub(crate) ec_point: Vec<u8>,
}

pub(crate) fn ec_jwk(crv: &str, point: &[u8], coord_len: usize) -> Option<serde_json::Value> {
    if point.len() != 1 + 2 * coord_len || point.first() != Some(&0x04) {
        return None;
    }
    let (x, y) = point.get(1..)?.split_at(coord_len);
    Some(serde_json::json!({
        "kty": "EC",
        "crv": crv,
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
    }))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// Extracts the public key of `cert`: EC P-256, EC P-384 or RSA (at least 2048 bits).
pub(crate) fn extract_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<ExtractedKey, Refusal> {
    let spki_der = spki.raw.to_vec();
    let algorithm_oid = &spki.algorithm.algorithm;
    if *algorithm_oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or(Refusal::UnsupportedKey)?;
        let point = spki.subject_public_key.data.to_vec();
        let (algorithm, jwk) = if curve == OID_EC_P256 {
            (KeyAlgorithm::EcP256, ec_jwk("P-256", &point, 32))
        } else if curve == OID_NIST_EC_P384 {
            (KeyAlgorithm::EcP384, ec_jwk("P-384", &point, 48))
        } else {
            return Err(Refusal::UnsupportedKey);
        };
        let jwk = jwk.ok_or(Refusal::UnsupportedKey)?;
        return Ok(ExtractedKey {
            algorithm,
            spki_der,
            jwk,
            ec_point: point,
        });
    }
    if *algorithm_oid == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(Refusal::UnsupportedKey);
        };
        let n = strip_leading_zeros(rsa.modulus);
        let e = strip_leading_zeros(rsa.exponent);
        if n.len() < 256 || e.is_empty() {
            return Err(Refusal::UnsupportedKey);
        }
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(n),
            "e": URL_SAFE_NO_PAD.encode(e),
        });
        return Ok(ExtractedKey {
            algorithm: KeyAlgorithm::Rsa,
            spki_der,
            jwk,
            ec_point: Vec::new(),
        });
    }
    Err(Refusal::UnsupportedKey)
}
