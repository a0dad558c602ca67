//! Android Key Attestation on synthetic chains: rcgen certificates under a test root, with a
//! KeyDescription DER-encoded here, so that every branch of the policy is reached.

use latchkey_attestation::android::{self, AndroidPolicy, SecurityLevel, VerifiedBootState};
use latchkey_attestation::{KeyAlgorithm, Refusal, TrustAnchor};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType, IsCa, Issuer,
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256,
    RsaKeySize, SerialNumber, SignatureAlgorithm, date_time_ymd,
};

use crate::common::{
    boolean, ca, enumerated, explicit, int, leaf_params, octets, seq, set, synthetic_now,
};

const KEY_DESCRIPTION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17];
const PACKAGE: &str = "com.example.app";
const DIGEST: [u8; 32] = [0xab; 32];
const CHALLENGE: &[u8] = b"server challenge 1234";

fn root_of_trust(state: u8, locked: bool) -> Vec<u8> {
    explicit(
        704,
        &seq(&[
            octets(&[1u8; 32]),
            boolean(locked),
            enumerated(state),
            octets(&[2u8; 32]),
        ]),
    )
}

fn application_id(packages: &[(&str, i64)], digests: &[&[u8]]) -> Vec<u8> {
    let infos: Vec<Vec<u8>> = packages
        .iter()
        .map(|(n, v)| seq(&[octets(n.as_bytes()), int(*v)]))
        .collect();
    let digests: Vec<Vec<u8>> = digests.iter().map(|d| octets(d)).collect();
    explicit(709, &octets(&seq(&[set(&infos), set(&digests)])))
}

/// A KeyDescription; `Default` is a valid TEE one for PACKAGE / DIGEST / CHALLENGE.
#[derive(Clone)]
struct Desc {
    version: i64,
    attestation_level: u8,
    keymint_level: u8,
    challenge: Vec<u8>,
    software: Vec<Vec<u8>>,
    hardware: Vec<Vec<u8>>,
}

impl Default for Desc {
    fn default() -> Self {
        Desc {
            version: 300,
            attestation_level: 1,
            keymint_level: 1,
            challenge: CHALLENGE.to_vec(),
            // Some other tags too ([701] creationDateTime, [1] purpose), which are skipped.
            software: vec![
                explicit(701, &int(1_700_000_000_000)),
                application_id(&[(PACKAGE, 42)], &[&DIGEST]),
            ],
            hardware: vec![
                explicit(1, &set(&[int(2)])),
                explicit(2, &int(3)),
                root_of_trust(0, true),
            ],
        }
    }
}

impl Desc {
    fn der(&self) -> Vec<u8> {
        seq(&[
            int(self.version),
            enumerated(self.attestation_level),
            int(self.version),
            enumerated(self.keymint_level),
            octets(&self.challenge),
            octets(b""),
            seq(&self.software),
            seq(&self.hardware),
        ])
    }
}

fn extension(der: Vec<u8>) -> CustomExtension {
    CustomExtension::from_oid_content(KEY_DESCRIPTION_OID, der)
}

struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

fn pki() -> Pki {
    let root = ca(
        "Test Attestation Root",
        &PKCS_ECDSA_P256_SHA256,
        None,
        BasicConstraints::Unconstrained,
    );
    let intermediate = ca(
        "Test Attestation Intermediate",
        &PKCS_ECDSA_P256_SHA256,
        Some(&root),
        BasicConstraints::Unconstrained,
    );
    Pki { root, intermediate }
}

fn policy(pki: &Pki) -> AndroidPolicy {
    let mut p = AndroidPolicy::new([PACKAGE], vec![DIGEST.to_vec()]);
    p.roots = vec![TrustAnchor::from_der(pki.root.der()).expect("anchor")];
    p
}

fn leaf_with(
    params: CertificateParams,
    alg: &'static SignatureAlgorithm,
    issuer: &Issuer<'_, KeyPair>,
) -> Vec<u8> {
    let key = if alg == &PKCS_RSA_SHA256 {
        KeyPair::generate_rsa_for(alg, RsaKeySize::_2048).expect("rsa key")
    } else {
        KeyPair::generate_for(alg).expect("key")
    };
    params.signed_by(&key, issuer).expect("leaf").der().to_vec()
}

fn chain(pki: &Pki, desc: &Desc) -> Vec<Vec<u8>> {
    let leaf = leaf_with(
        leaf_params(vec![extension(desc.der())]),
        &PKCS_ECDSA_P256_SHA256,
        &pki.intermediate,
    );
    vec![
        leaf,
        pki.intermediate.der().to_vec(),
        pki.root.der().to_vec(),
    ]
}

fn verify(chain: &[Vec<u8>], policy: &AndroidPolicy) -> Result<android::AndroidKey, Refusal> {
    android::verify_key_attestation(chain, CHALLENGE, policy, synthetic_now())
}

#[test]
fn a_tee_attestation_is_accepted() {
    let pki = pki();
    let key = verify(&chain(&pki, &Desc::default()), &policy(&pki)).expect("accepted");
    assert_eq!(key.algorithm, KeyAlgorithm::EcP256);
    assert_eq!(key.attestation_version, 300);
    assert_eq!(key.package_name, PACKAGE);
    assert_eq!(key.verified_boot_state, Some(VerifiedBootState::Verified));
    assert_eq!(key.device_locked, Some(true));
    assert_eq!(
        key.attestation_security_level,
        SecurityLevel::TrustedEnvironment
    );
}

#[test]
fn the_challenge_must_match() {
    let pki = pki();
    let desc = Desc {
        challenge: b"another".to_vec(),
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &desc), &policy(&pki)),
        Err(Refusal::ChallengeMismatch)
    );
}

#[test]
fn security_levels_against_the_minimum() {
    let pki = pki();
    let p = policy(&pki);
    let software = Desc {
        attestation_level: 0,
        keymint_level: 0,
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &software), &p),
        Err(Refusal::SecurityLevelTooLow)
    );
    let software_keymint = Desc {
        keymint_level: 0,
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &software_keymint), &p),
        Err(Refusal::SecurityLevelTooLow)
    );
    let mut strongbox_only = policy(&pki);
    strongbox_only.min_security_level = SecurityLevel::StrongBox;
    assert_eq!(
        verify(&chain(&pki, &Desc::default()), &strongbox_only),
        Err(Refusal::SecurityLevelTooLow)
    );
    let strongbox = Desc {
        attestation_level: 2,
        keymint_level: 2,
        ..Desc::default()
    };
    let key = verify(&chain(&pki, &strongbox), &strongbox_only).expect("strongbox");
    assert_eq!(key.keymint_security_level, SecurityLevel::StrongBox);
    let mut anything = policy(&pki);
    anything.min_security_level = SecurityLevel::Software;
    assert!(verify(&chain(&pki, &software), &anything).is_ok());
    let unknown = Desc {
        attestation_level: 3,
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &unknown), &p),
        Err(Refusal::BadAttestationExtension)
    );
}

#[test]
fn boot_state_must_be_verified_unless_allowed() {
    let pki = pki();
    for state in [1u8, 2, 3] {
        let desc = Desc {
            hardware: vec![root_of_trust(state, true)],
            ..Desc::default()
        };
        assert_eq!(
            verify(&chain(&pki, &desc), &policy(&pki)),
            Err(Refusal::BootStateNotVerified),
            "state {state}"
        );
        let mut lax = policy(&pki);
        lax.allow_unverified_boot = true;
        assert!(
            verify(&chain(&pki, &desc), &lax).is_ok(),
            "state {state} allowed"
        );
    }
    let bad_state = Desc {
        hardware: vec![root_of_trust(4, true)],
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &bad_state), &policy(&pki)),
        Err(Refusal::BadAttestationExtension)
    );
}

#[test]
fn a_root_of_trust_only_in_the_software_list_does_not_count() {
    let pki = pki();
    let mut desc = Desc {
        hardware: vec![],
        ..Desc::default()
    };
    desc.software.push(root_of_trust(0, true));
    assert_eq!(
        verify(&chain(&pki, &desc), &policy(&pki)),
        Err(Refusal::BootStateNotVerified)
    );
}

#[test]
fn an_unlocked_bootloader_is_refused_unless_allowed() {
    let pki = pki();
    let desc = Desc {
        hardware: vec![root_of_trust(0, false)],
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &desc), &policy(&pki)),
        Err(Refusal::DeviceNotLocked)
    );
    let mut p = policy(&pki);
    p.require_device_locked = false;
    assert_eq!(
        verify(&chain(&pki, &desc), &p)
            .expect("allowed")
            .device_locked,
        Some(false)
    );
}

#[test]
fn package_and_signing_digest_must_be_allowed() {
    let pki = pki();
    let other_package = Desc {
        software: vec![application_id(&[("com.example.evil", 1)], &[&DIGEST])],
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &other_package), &policy(&pki)),
        Err(Refusal::PackageNotAllowed)
    );
    let other_digest = Desc {
        software: vec![application_id(&[(PACKAGE, 1)], &[&[0xcd; 32]])],
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &other_digest), &policy(&pki)),
        Err(Refusal::SigningCertNotAllowed)
    );
    let no_app_id = Desc {
        software: vec![],
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &no_app_id), &policy(&pki)),
        Err(Refusal::PackageNotAllowed)
    );
    // A shared UID: several packages, one allowed; several digests (key rotation), one allowed.
    let shared = Desc {
        software: vec![application_id(
            &[("com.example.helper", 3), (PACKAGE, 42)],
            &[&[0xcd; 32], &DIGEST],
        )],
        ..Desc::default()
    };
    assert_eq!(
        verify(&chain(&pki, &shared), &policy(&pki))
            .expect("shared")
            .package_name,
        PACKAGE
    );
    // The application id in the hardware list is used when the software list has none.
    let hardware = Desc {
        software: vec![],
        hardware: vec![
            root_of_trust(0, true),
            application_id(&[(PACKAGE, 42)], &[&DIGEST]),
        ],
        ..Desc::default()
    };
    assert!(verify(&chain(&pki, &hardware), &policy(&pki)).is_ok());
}

#[test]
fn the_extension_must_be_on_the_leaf_only_and_well_formed() {
    let pki = pki();
    let no_extension = leaf_with(
        leaf_params(vec![]),
        &PKCS_ECDSA_P256_SHA256,
        &pki.intermediate,
    );
    let c = vec![
        no_extension,
        pki.intermediate.der().to_vec(),
        pki.root.der().to_vec(),
    ];
    assert_eq!(
        verify(&c, &policy(&pki)),
        Err(Refusal::MissingAttestationExtension)
    );

    for bad in [
        vec![],
        octets(b"x"),
        seq(&[int(3)]),
        Desc::default().der()[..20].to_vec(),
    ] {
        let leaf = leaf_with(
            leaf_params(vec![extension(bad)]),
            &PKCS_ECDSA_P256_SHA256,
            &pki.intermediate,
        );
        let c = vec![
            leaf,
            pki.intermediate.der().to_vec(),
            pki.root.der().to_vec(),
        ];
        assert_eq!(
            verify(&c, &policy(&pki)),
            Err(Refusal::BadAttestationExtension)
        );
    }
    let mut trailing = Desc::default().der();
    trailing.push(0);
    let leaf = leaf_with(
        leaf_params(vec![extension(trailing)]),
        &PKCS_ECDSA_P256_SHA256,
        &pki.intermediate,
    );
    let c = vec![
        leaf,
        pki.intermediate.der().to_vec(),
        pki.root.der().to_vec(),
    ];
    assert_eq!(
        verify(&c, &policy(&pki)),
        Err(Refusal::BadAttestationExtension)
    );

    // An intermediate with a KeyDescription (an attestation key chain): refused.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "attest key");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.custom_extensions = vec![extension(Desc::default().der())];
    let attest_key = CertifiedIssuer::signed_by(params, key, &pki.intermediate).expect("cert");
    let leaf = leaf_with(
        leaf_params(vec![extension(Desc::default().der())]),
        &PKCS_ECDSA_P256_SHA256,
        &attest_key,
    );
    let c = vec![
        leaf,
        attest_key.der().to_vec(),
        pki.intermediate.der().to_vec(),
        pki.root.der().to_vec(),
    ];
    assert_eq!(
        verify(&c, &policy(&pki)),
        Err(Refusal::BadAttestationExtension)
    );
}

#[test]
fn revoked_serials_refuse_the_chain() {
    let pki = pki();
    let mut params = leaf_params(vec![extension(Desc::default().der())]);
    params.serial_number = Some(SerialNumber::from(0x00c0_ffee_u64));
    let leaf = leaf_with(params, &PKCS_ECDSA_P256_SHA256, &pki.intermediate);
    let c = vec![
        leaf,
        pki.intermediate.der().to_vec(),
        pki.root.der().to_vec(),
    ];
    assert!(verify(&c, &policy(&pki)).is_ok());
    let mut p = policy(&pki);
    p.revocations.insert("C0FFEE");
    assert_eq!(verify(&c, &p), Err(Refusal::Revoked));
    // The intermediate's serial (rcgen picks a random one).
    let (_, inter) = x509_parser::parse_x509_certificate(pki.intermediate.der()).expect("cert");
    let mut p = policy(&pki);
    p.revocations
        .insert(&inter.tbs_certificate.serial.to_str_radix(16));
    assert_eq!(verify(&c, &p), Err(Refusal::Revoked));
}

#[test]
fn chain_rules() {
    let pki = pki();
    let good = chain(&pki, &Desc::default());
    // The root may be left out; the chain ends at a certificate issued by the anchor.
    assert!(verify(&good[..2], &policy(&pki)).is_ok());
    // A different root.
    let other = ca(
        "Other Root",
        &PKCS_ECDSA_P256_SHA256,
        None,
        BasicConstraints::Unconstrained,
    );
    let mut p = policy(&pki);
    p.roots = vec![TrustAnchor::from_der(other.der()).expect("anchor")];
    assert_eq!(verify(&good, &p), Err(Refusal::ChainUntrusted));
    // The default (Google) roots do not trust a test root.
    let mut p = policy(&pki);
    p.roots = android::google_roots();
    assert_eq!(verify(&good, &p), Err(Refusal::ChainUntrusted));
    // Too long.
    let long: Vec<Vec<u8>> =
        std::iter::repeat_n(good[0].clone(), latchkey_attestation::MAX_CHAIN_LEN + 1).collect();
    assert_eq!(verify(&long, &policy(&pki)), Err(Refusal::BadCertificate));
    // Trailing bytes after a certificate.
    let mut trailing = good.clone();
    trailing[1].push(0);
    assert_eq!(
        verify(&trailing, &policy(&pki)),
        Err(Refusal::BadCertificate)
    );
}

#[test]
fn an_intermediate_that_is_not_a_ca_or_is_expired_is_refused() {
    let root = ca(
        "root",
        &PKCS_ECDSA_P256_SHA256,
        None,
        BasicConstraints::Unconstrained,
    );
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "no ca");
    params.is_ca = IsCa::NoCa;
    let intermediate = CertifiedIssuer::signed_by(params, key, &root).expect("cert");
    let pki = Pki { root, intermediate };
    assert_eq!(
        verify(&chain(&pki, &Desc::default()), &policy(&pki)),
        Err(Refusal::ChainUntrusted)
    );

    let root = ca(
        "root",
        &PKCS_ECDSA_P256_SHA256,
        None,
        BasicConstraints::Unconstrained,
    );
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "expired");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2024, 12, 31);
    let intermediate = CertifiedIssuer::signed_by(params, key, &root).expect("cert");
    let pki = Pki { root, intermediate };
    assert_eq!(
        verify(&chain(&pki, &Desc::default()), &policy(&pki)),
        Err(Refusal::CertificateExpired)
    );
}

#[test]
fn leaf_key_types() {
    let pki = pki();
    let params = || leaf_params(vec![extension(Desc::default().der())]);
    let with = |alg| {
        let leaf = leaf_with(params(), alg, &pki.intermediate);
        verify(&[leaf, pki.intermediate.der().to_vec()], &policy(&pki))
    };
    let p384 = with(&PKCS_ECDSA_P384_SHA384).expect("p384");
    assert_eq!(p384.algorithm, KeyAlgorithm::EcP384);
    assert_eq!(p384.public_key_jwk["crv"], "P-384");
    let rsa = with(&PKCS_RSA_SHA256).expect("rsa");
    assert_eq!(rsa.algorithm, KeyAlgorithm::Rsa);
    assert_eq!(rsa.public_key_jwk["kty"], "RSA");
    assert_eq!(rsa.public_key_jwk["e"], "AQAB");
    assert_eq!(with(&PKCS_ED25519), Err(Refusal::UnsupportedKey));
}

#[test]
fn an_rsa_rooted_chain_verifies() {
    // Google's classic root is RSA: the chain walk checks RSA PKCS #1 SHA-256 signatures.
    let root = ca(
        "RSA root",
        &PKCS_RSA_SHA256,
        None,
        BasicConstraints::Unconstrained,
    );
    let intermediate = ca(
        "EC intermediate",
        &PKCS_ECDSA_P256_SHA256,
        Some(&root),
        BasicConstraints::Unconstrained,
    );
    let pki = Pki { root, intermediate };
    assert!(verify(&chain(&pki, &Desc::default()), &policy(&pki)).is_ok());
}
