//! Android Key Attestation against a real chain (KeyMint 200, TEE, RKP intermediates) from
//! google/android-key-attestation's test resources (see tests/fixtures/README.md).

use latchkey_attestation::android::{
    self, AndroidPolicy, RevocationList, SecurityLevel, VerifiedBootState,
};
use latchkey_attestation::{KeyAlgorithm, Refusal, TrustAnchor};

use crate::common::{fixture, flip, hex, pem_chain, unix};

const PACKAGE: &str = "com.google.attestationexample";
const DIGEST: &str = "68856d1d06f637d6255face5b224db43a9514ace538bb1548b844480fcd85c87";
const CHALLENGE: &[u8] = b"challenge";

pub fn chain() -> Vec<Vec<u8>> {
    let chain = pem_chain(&fixture("android/google-normal-cert-chain.crt"));
    assert_eq!(chain.len(), 5);
    chain
}

pub fn now() -> i64 {
    unix("2023-03-01T00:00:00Z")
}

pub fn policy() -> AndroidPolicy {
    AndroidPolicy::new([PACKAGE], vec![hex(DIGEST)])
}

fn verify(
    chain: &[Vec<u8>],
    challenge: &[u8],
    policy: &AndroidPolicy,
    now: i64,
) -> Result<android::AndroidKey, Refusal> {
    android::verify_key_attestation(chain, challenge, policy, now)
}

#[test]
fn real_chain_is_accepted() {
    let key = verify(&chain(), CHALLENGE, &policy(), now()).expect("accepted");
    assert_eq!(key.algorithm, KeyAlgorithm::EcP256);
    assert_eq!(key.attestation_version, 200);
    assert_eq!(
        key.attestation_security_level,
        SecurityLevel::TrustedEnvironment
    );
    assert_eq!(
        key.keymint_security_level,
        SecurityLevel::TrustedEnvironment
    );
    assert_eq!(key.verified_boot_state, Some(VerifiedBootState::Verified));
    assert_eq!(key.device_locked, Some(true));
    assert_eq!(key.package_name, PACKAGE);
    assert_eq!(key.public_key_jwk["kty"], "EC");
    assert_eq!(key.public_key_jwk["crv"], "P-256");
    let chain = chain();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).expect("leaf");
    assert_eq!(key.public_key_spki, leaf.public_key().raw);
}

#[test]
fn key_description_of_the_real_leaf() {
    let chain = chain();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).expect("leaf");
    let oid =
        x509_parser::oid_registry::Oid::from(&[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17]).expect("oid");
    let ext = leaf
        .get_extension_unique(&oid)
        .expect("unique")
        .expect("present");
    let d = android::parse_key_description(ext.value).expect("parses");
    assert_eq!(d.attestation_version, 200);
    assert_eq!(d.keymint_version, 200);
    assert_eq!(d.attestation_challenge, CHALLENGE);
    assert!(d.unique_id.is_empty());
    let app = d
        .software_enforced
        .attestation_application_id
        .expect("app id");
    assert_eq!(app.packages, vec![(PACKAGE.to_owned(), 1)]);
    assert_eq!(app.signature_digests, vec![hex(DIGEST)]);
    let rot = d.hardware_enforced.root_of_trust.expect("root of trust");
    assert!(rot.device_locked);
    assert_eq!(rot.verified_boot_state, VerifiedBootState::Verified);
    assert_eq!(
        rot.verified_boot_key,
        hex("26ac4c60beb1e378357cad0c3061347af8df6fbabbb0d8cea2445855ee01e368")
    );
    assert_eq!(
        rot.verified_boot_hash,
        Some(hex(
            "eaa453395774dfa111215c607b7d09f12557f76515d1fa971696c71dab167e41"
        ))
    );
    assert!(d.software_enforced.root_of_trust.is_none());
}

#[test]
fn the_embedded_google_roots_parse_and_the_rsa_one_has_the_chains_root_key() {
    let roots = android::google_roots();
    assert_eq!(roots.len(), 2);
    let (_, embedded) = x509_parser::parse_x509_certificate(roots[0].der()).expect("root");
    let chain = chain();
    let (_, in_chain) = x509_parser::parse_x509_certificate(&chain[4]).expect("root");
    // Different certificates (2022 and 2019 issues) of the same key.
    assert_ne!(roots[0].der(), chain[4].as_slice());
    assert_eq!(embedded.public_key().raw, in_chain.public_key().raw);
}

#[test]
fn a_chain_without_its_root_is_trusted_through_the_anchor() {
    let chain = chain();
    assert!(verify(&chain[..4], CHALLENGE, &policy(), now()).is_ok());
}

#[test]
fn another_challenge_is_refused() {
    assert_eq!(
        verify(&chain(), b"challengf", &policy(), now()),
        Err(Refusal::ChallengeMismatch)
    );
    assert_eq!(
        verify(&chain(), b"", &policy(), now()),
        Err(Refusal::ChallengeMismatch)
    );
}

#[test]
fn another_package_or_digest_is_refused() {
    let mut p = policy();
    p.package_names = vec!["com.google.attestationexample2".into()];
    assert_eq!(
        verify(&chain(), CHALLENGE, &p, now()),
        Err(Refusal::PackageNotAllowed)
    );
    let mut p = policy();
    p.signing_cert_digests = vec![flip(&hex(DIGEST), 31)];
    assert_eq!(
        verify(&chain(), CHALLENGE, &p, now()),
        Err(Refusal::SigningCertNotAllowed)
    );
}

#[test]
fn strongbox_minimum_refuses_a_tee_key() {
    let mut p = policy();
    p.min_security_level = SecurityLevel::StrongBox;
    assert_eq!(
        verify(&chain(), CHALLENGE, &p, now()),
        Err(Refusal::SecurityLevelTooLow)
    );
}

#[test]
fn validity_of_every_certificate_is_checked_at_now() {
    // Droid CA3 starts 2023-02-19T18:28:36Z; the TEE cert ends 2023-03-24T01:33:52Z.
    assert!(verify(&chain(), CHALLENGE, &policy(), unix("2023-02-19T18:28:36Z")).is_ok());
    assert_eq!(
        verify(&chain(), CHALLENGE, &policy(), unix("2023-02-19T18:28:35Z")),
        Err(Refusal::CertificateNotYetValid)
    );
    assert!(verify(&chain(), CHALLENGE, &policy(), unix("2023-03-24T01:33:52Z")).is_ok());
    assert_eq!(
        verify(&chain(), CHALLENGE, &policy(), unix("2023-03-24T01:33:53Z")),
        Err(Refusal::CertificateExpired)
    );
}

#[test]
fn another_root_is_untrusted() {
    let mut p = policy();
    p.roots = latchkey_attestation::apple::apple_roots();
    assert_eq!(
        verify(&chain(), CHALLENGE, &p, now()),
        Err(Refusal::ChainUntrusted)
    );
    // Only the new EC root: the RSA-rooted chain is not trusted.
    p.roots = TrustAnchor::from_pem(android::GOOGLE_EC_ROOT_PEM).expect("pem");
    assert_eq!(
        verify(&chain(), CHALLENGE, &p, now()),
        Err(Refusal::ChainUntrusted)
    );
}

#[test]
fn a_tampered_certificate_is_refused() {
    let chain = chain();
    // The leaf: a byte of its signature, of its KeyDescription (challenge "challenge" is at
    // a fixed offset), of its public key. Then a byte of each CA's signature.
    let leaf_challenge_at = chain[0]
        .windows(9)
        .position(|w| w == CHALLENGE)
        .expect("challenge in leaf");
    for (cert, i) in [
        (0usize, chain[0].len() - 3),
        (0, leaf_challenge_at),
        (0, 150),
        (1, chain[1].len() - 3),
        (2, chain[2].len() - 3),
        (3, chain[3].len() - 3),
    ] {
        let mut tampered = chain.clone();
        tampered[cert] = flip(&chain[cert], i);
        let r = verify(&tampered, CHALLENGE, &policy(), now());
        assert!(
            r == Err(Refusal::BadSignature) || r == Err(Refusal::BadCertificate),
            "cert {cert} byte {i}: {r:?}"
        );
    }
}

#[test]
fn a_broken_chain_is_untrusted() {
    let chain = chain();
    let mut reversed = chain.clone();
    reversed.reverse();
    assert_eq!(
        verify(&reversed, CHALLENGE, &policy(), now()),
        Err(Refusal::ChainUntrusted)
    );
    let missing_ca3 = vec![
        chain[0].clone(),
        chain[2].clone(),
        chain[3].clone(),
        chain[4].clone(),
    ];
    assert_eq!(
        verify(&missing_ca3, CHALLENGE, &policy(), now()),
        Err(Refusal::ChainUntrusted)
    );
    let leaf_only = vec![chain[0].clone()];
    assert_eq!(
        verify(&leaf_only, CHALLENGE, &policy(), now()),
        Err(Refusal::ChainUntrusted)
    );
    let empty: Vec<Vec<u8>> = Vec::new();
    assert_eq!(
        verify(&empty, CHALLENGE, &policy(), now()),
        Err(Refusal::BadCertificate)
    );
}

#[test]
fn a_revoked_serial_refuses_the_chain() {
    for serial in [
        "d05facf443ed535548d994f6845e6d3c",
        "81A25B152F47389F1A0803CCB64811AC3D95C2",
        "00d50ff25ba3f2d6b3",
        "1",
    ] {
        let mut p = policy();
        p.revocations.insert(serial);
        assert_eq!(
            verify(&chain(), CHALLENGE, &p, now()),
            Err(Refusal::Revoked),
            "{serial}"
        );
    }
}

#[test]
fn googles_sample_status_list_parses_and_revokes_none_of_this_chain() {
    let list =
        RevocationList::from_json(&fixture("android/google-test-status.json")).expect("json");
    assert_eq!(list.len(), 5);
    assert!(
        list.contains("cc66e9a93713b6e643b26c15879786f7"),
        "SUSPENDED counts"
    );
    assert!(list.contains("6681152659205225093"));
    let mut p = policy();
    p.revocations = list;
    assert!(verify(&chain(), CHALLENGE, &p, now()).is_ok());
}

#[test]
fn revocation_list_json_errors_and_statuses() {
    assert!(RevocationList::from_json("{}").is_err());
    assert!(RevocationList::from_json("not json").is_err());
    assert!(RevocationList::from_json(r#"{"entries":{"zz":{"status":"REVOKED"}}}"#).is_err());
    let list = RevocationList::from_json(
        r#"{"entries":{"0ABC":{"status":"REVOKED"},"def":{"status":"OTHER"}}}"#,
    )
    .expect("ok");
    assert!(list.contains("abc"));
    assert!(!list.contains("def"));
}

#[test]
fn the_chains_copy_of_the_root_must_be_signed_by_the_root_key() {
    let chain = chain();
    let mut tampered = chain.clone();
    let n = tampered[4].len();
    tampered[4][n - 2] ^= 0x01;
    assert_eq!(
        verify(&tampered, CHALLENGE, &policy(), now()),
        Err(Refusal::BadSignature)
    );
}
