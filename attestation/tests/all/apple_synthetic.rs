//! Apple App Attest on synthetic objects: an rcgen chain under a test root, hand-built
//! authenticator data and CBOR, so that every check can be reached on its own.

use ciborium::Value;
use latchkey_attestation::apple::{
    self, AAGUID_DEVELOPMENT, AAGUID_PRODUCTION, ApplePolicy, Environment,
};
use latchkey_attestation::{Refusal, TrustAnchor};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData, SigningKey, date_time_ymd,
};

use crate::common::{ca, explicit, leaf_params, octets, seq, sha256, synthetic_now};

const APP_ID: &str = "ABCDE12345.com.example.app";
const CDH: &[u8] = &[7u8; 32];
const NONCE_OID: &[u64] = &[1, 2, 840, 113635, 100, 8, 2];

struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

fn pki() -> Pki {
    let root = ca(
        "Test App Attestation Root CA",
        &PKCS_ECDSA_P384_SHA384,
        None,
        BasicConstraints::Unconstrained,
    );
    let intermediate = ca(
        "Test App Attestation CA 1",
        &PKCS_ECDSA_P384_SHA384,
        Some(&root),
        BasicConstraints::Constrained(0),
    );
    Pki { root, intermediate }
}

fn policy(pki: &Pki) -> ApplePolicy {
    let mut p = ApplePolicy::new([APP_ID]);
    p.roots = vec![TrustAnchor::from_der(pki.root.der()).expect("anchor")];
    p
}

/// What to put in a synthetic attestation object; `Default` is a valid production one.
struct Build {
    app_id: &'static str,
    flags: u8,
    counter: u32,
    aaguid: [u8; 16],
    credential_id: Option<Vec<u8>>,
    /// `None`: the correct nonce extension; `Some(None)`: no extension; `Some(Some(der))`:
    /// this extension value.
    nonce_extension: Option<Option<Vec<u8>>>,
    leaf_alg: &'static rcgen::SignatureAlgorithm,
    truncate_auth_data: Option<usize>,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            app_id: APP_ID,
            flags: 0x40,
            counter: 0,
            aaguid: AAGUID_PRODUCTION,
            credential_id: None,
            nonce_extension: None,
            leaf_alg: &PKCS_ECDSA_P256_SHA256,
            truncate_auth_data: None,
        }
    }
}

struct Built {
    object: Vec<u8>,
    key_id: Vec<u8>,
    key: KeyPair,
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("encode");
    out
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn object(fmt: &str, x5c: Vec<Vec<u8>>, receipt: &[u8], auth_data: &[u8]) -> Value {
    Value::Map(vec![
        (text("fmt"), text(fmt)),
        (
            text("attStmt"),
            Value::Map(vec![
                (
                    text("x5c"),
                    Value::Array(x5c.into_iter().map(Value::Bytes).collect()),
                ),
                (text("receipt"), Value::Bytes(receipt.to_vec())),
            ]),
        ),
        (text("authData"), Value::Bytes(auth_data.to_vec())),
    ])
}

fn build(pki: &Pki, b: Build) -> Built {
    let key = KeyPair::generate_for(b.leaf_alg).expect("leaf key");
    let point = key.der_bytes().to_vec();
    let key_id = sha256(&point);
    let credential_id = b.credential_id.unwrap_or_else(|| key_id.clone());
    let mut auth = sha256(b.app_id.as_bytes());
    auth.push(b.flags);
    auth.extend(b.counter.to_be_bytes());
    auth.extend(b.aaguid);
    auth.extend((credential_id.len() as u16).to_be_bytes());
    auth.extend(&credential_id);
    auth.extend([0xa0]); // a COSE key would follow; not read by the verifier
    if let Some(n) = b.truncate_auth_data {
        auth.truncate(n);
    }
    let mut data = auth.clone();
    data.extend_from_slice(CDH);
    let nonce = sha256(&data);
    let extension = match b.nonce_extension {
        None => Some(seq(&[explicit(1, &octets(&nonce))])),
        Some(e) => e,
    };
    let extensions = extension
        .map(|e| vec![CustomExtension::from_oid_content(NONCE_OID, e)])
        .unwrap_or_default();
    let leaf = leaf_params(extensions)
        .signed_by(&key, &pki.intermediate)
        .expect("leaf");
    let object = cbor(&object(
        "apple-appattest",
        vec![leaf.der().to_vec(), pki.intermediate.der().to_vec()],
        b"receipt",
        &auth,
    ));
    Built {
        object,
        key_id,
        key,
    }
}

fn verify(built: &Built, policy: &ApplePolicy) -> Result<apple::AppleKey, Refusal> {
    apple::verify_attestation(&built.object, CDH, &built.key_id, policy, synthetic_now())
}

#[test]
fn a_production_attestation_is_accepted() {
    let pki = pki();
    let built = build(&pki, Build::default());
    let key = verify(&built, &policy(&pki)).expect("accepted");
    assert_eq!(key.environment, Environment::Production);
    assert_eq!(key.app_id, APP_ID);
    assert_eq!(key.receipt, b"receipt");
    assert_eq!(key.public_key, built.key.der_bytes());
}

#[test]
fn the_app_id_must_be_allowed() {
    let pki = pki();
    let built = build(
        &pki,
        Build {
            app_id: "ABCDE12345.com.example.other",
            ..Build::default()
        },
    );
    assert_eq!(verify(&built, &policy(&pki)), Err(Refusal::RpIdMismatch));
    let mut p = policy(&pki);
    p.app_ids.push("ABCDE12345.com.example.other".into());
    assert_eq!(
        verify(&built, &p).expect("second app").app_id,
        "ABCDE12345.com.example.other"
    );
}

#[test]
fn development_needs_the_policy() {
    let pki = pki();
    let built = build(
        &pki,
        Build {
            aaguid: AAGUID_DEVELOPMENT,
            ..Build::default()
        },
    );
    assert_eq!(
        verify(&built, &policy(&pki)),
        Err(Refusal::DevelopmentNotAllowed)
    );
    let mut p = policy(&pki);
    p.allow_development = true;
    assert_eq!(
        verify(&built, &p).expect("dev").environment,
        Environment::Development
    );
}

#[test]
fn an_unknown_aaguid_is_refused() {
    let pki = pki();
    let mut p = policy(&pki);
    p.allow_development = true;
    for aaguid in [
        *b"appattest\0\0\0\0\0\0\x01",
        [0u8; 16],
        *b"appattestdevelo\0",
    ] {
        let built = build(
            &pki,
            Build {
                aaguid,
                ..Build::default()
            },
        );
        assert_eq!(verify(&built, &p), Err(Refusal::BadAaguid));
    }
}

#[test]
fn the_counter_must_be_zero() {
    let pki = pki();
    let built = build(
        &pki,
        Build {
            counter: 1,
            ..Build::default()
        },
    );
    assert_eq!(verify(&built, &policy(&pki)), Err(Refusal::CounterNotZero));
}

#[test]
fn the_credential_id_must_be_the_key_id() {
    let pki = pki();
    let built = build(
        &pki,
        Build {
            credential_id: Some(vec![1u8; 32]),
            ..Build::default()
        },
    );
    assert_eq!(
        verify(&built, &policy(&pki)),
        Err(Refusal::CredentialIdMismatch)
    );
}

#[test]
fn the_key_id_must_be_the_hash_of_the_key() {
    let pki = pki();
    let mut built = build(&pki, Build::default());
    built.key_id[5] ^= 0x80;
    assert_eq!(verify(&built, &policy(&pki)), Err(Refusal::KeyIdMismatch));
}

#[test]
fn the_nonce_extension_is_required_well_formed_and_equal() {
    let pki = pki();
    let missing = build(
        &pki,
        Build {
            nonce_extension: Some(None),
            ..Build::default()
        },
    );
    assert_eq!(
        verify(&missing, &policy(&pki)),
        Err(Refusal::MissingAttestationExtension)
    );
    let bare = build(
        &pki,
        Build {
            nonce_extension: Some(Some(octets(&[0u8; 32]))),
            ..Build::default()
        },
    );
    assert_eq!(
        verify(&bare, &policy(&pki)),
        Err(Refusal::BadAttestationExtension)
    );
    let wrong_tag = build(
        &pki,
        Build {
            nonce_extension: Some(Some(seq(&[explicit(2, &octets(&[0u8; 32]))]))),
            ..Build::default()
        },
    );
    assert_eq!(
        verify(&wrong_tag, &policy(&pki)),
        Err(Refusal::BadAttestationExtension)
    );
    let other = build(
        &pki,
        Build {
            nonce_extension: Some(Some(seq(&[explicit(1, &octets(&[9u8; 32]))]))),
            ..Build::default()
        },
    );
    assert_eq!(verify(&other, &policy(&pki)), Err(Refusal::NonceMismatch));
    // And the client data hash is part of the nonce.
    let built = build(&pki, Build::default());
    let r = apple::verify_attestation(
        &built.object,
        &[8u8; 32],
        &built.key_id,
        &policy(&pki),
        synthetic_now(),
    );
    assert_eq!(r, Err(Refusal::NonceMismatch));
}

#[test]
fn authenticator_data_without_credential_data_is_refused() {
    let pki = pki();
    let no_at = build(
        &pki,
        Build {
            flags: 0x00,
            ..Build::default()
        },
    );
    assert_eq!(
        verify(&no_at, &policy(&pki)),
        Err(Refusal::BadAuthenticatorData)
    );
    for n in [0usize, 36, 37, 54, 60] {
        let short = build(
            &pki,
            Build {
                truncate_auth_data: Some(n),
                ..Build::default()
            },
        );
        assert_eq!(
            verify(&short, &policy(&pki)),
            Err(Refusal::BadAuthenticatorData),
            "authData of {n} bytes"
        );
    }
}

#[test]
fn only_p256_keys_are_app_attest_keys() {
    let pki = pki();
    let built = build(
        &pki,
        Build {
            leaf_alg: &PKCS_ECDSA_P384_SHA384,
            ..Build::default()
        },
    );
    assert_eq!(verify(&built, &policy(&pki)), Err(Refusal::UnsupportedKey));
}

#[test]
fn an_issuer_that_is_not_a_ca_is_refused() {
    let root = ca(
        "root",
        &PKCS_ECDSA_P384_SHA384,
        None,
        BasicConstraints::Unconstrained,
    );
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "not a CA");
    params.is_ca = IsCa::ExplicitNoCa;
    let intermediate = CertifiedIssuer::signed_by(params, key, &root).expect("cert");
    let pki = Pki { root, intermediate };
    let built = build(&pki, Build::default());
    assert_eq!(verify(&built, &policy(&pki)), Err(Refusal::ChainUntrusted));
}

#[test]
fn a_path_length_constraint_is_enforced() {
    let root = ca(
        "root",
        &PKCS_ECDSA_P384_SHA384,
        None,
        BasicConstraints::Constrained(0),
    );
    let intermediate = ca(
        "intermediate",
        &PKCS_ECDSA_P384_SHA384,
        Some(&root),
        BasicConstraints::Constrained(0),
    );
    let pki = Pki { root, intermediate };
    let built = build(&pki, Build::default());
    assert_eq!(verify(&built, &policy(&pki)), Err(Refusal::ChainUntrusted));
}

#[test]
fn an_expired_root_outside_the_chain_is_refused() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "old root");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = date_time_ymd(2010, 1, 1);
    params.not_after = date_time_ymd(2020, 1, 1);
    let root = CertifiedIssuer::self_signed(params, key).expect("root");
    let intermediate = ca(
        "intermediate",
        &PKCS_ECDSA_P384_SHA384,
        Some(&root),
        BasicConstraints::Constrained(0),
    );
    let pki = Pki { root, intermediate };
    let built = build(&pki, Build::default());
    assert_eq!(
        verify(&built, &policy(&pki)),
        Err(Refusal::CertificateExpired)
    );
}

#[test]
fn cbor_shape_is_checked() {
    let pki = pki();
    let built = build(&pki, Build::default());
    let p = policy(&pki);
    let run =
        |bytes: &[u8]| apple::verify_attestation(bytes, CDH, &built.key_id, &p, synthetic_now());
    let mut trailing = built.object.clone();
    trailing.push(0x00);
    assert_eq!(run(&trailing), Err(Refusal::BadCbor));
    let value: Value = ciborium::de::from_reader(built.object.as_slice()).expect("cbor");
    let Value::Map(map) = value else {
        panic!("map")
    };
    // Each field missing in turn, and each of the wrong type.
    for i in 0..map.len() {
        let mut m = map.clone();
        m.remove(i);
        assert_eq!(
            run(&cbor(&Value::Map(m))),
            Err(Refusal::BadCbor),
            "without field {i}"
        );
        let mut m = map.clone();
        m[i].1 = Value::Integer(1.into());
        assert_eq!(
            run(&cbor(&Value::Map(m))),
            Err(Refusal::BadCbor),
            "field {i} as integer"
        );
    }
    let mut dup = map.clone();
    dup.push(map[0].clone());
    assert_eq!(
        run(&cbor(&Value::Map(dup))),
        Err(Refusal::BadCbor),
        "duplicate key"
    );
    assert_eq!(run(&cbor(&Value::Array(vec![]))), Err(Refusal::BadCbor));
    assert_eq!(
        run(&vec![0u8; apple::MAX_ATTESTATION_LEN + 1]),
        Err(Refusal::TooLarge)
    );
}

/// An assertion by `key` over `client_data`, with this counter and app.
fn assertion(
    key: &KeyPair,
    client_data: &[u8],
    counter: u32,
    app_id: &str,
    sign_nonce: bool,
) -> Vec<u8> {
    let mut auth = sha256(app_id.as_bytes());
    auth.push(0x40);
    auth.extend(counter.to_be_bytes());
    let mut data = auth.clone();
    data.extend(sha256(client_data));
    let nonce = sha256(&data);
    // rcgen's P-256 key signs ECDSA-SHA256 (DER): SHA-256 of the message, as CryptoKit does.
    let signature = key
        .sign(if sign_nonce { &nonce } else { &data })
        .expect("sign");
    cbor(&Value::Map(vec![
        (text("signature"), Value::Bytes(signature)),
        (text("authenticatorData"), Value::Bytes(auth)),
    ]))
}

#[test]
fn assertions_with_increasing_counters() {
    let pki = pki();
    let built = build(&pki, Build::default());
    let stored = verify(&built, &policy(&pki)).expect("attested");
    let mut counter = stored.counter;
    for next in [1u32, 2, 5, 1000, u32::MAX] {
        let a = assertion(&built.key, b"request", next, APP_ID, true);
        counter = apple::verify_assertion(&a, b"request", &stored.public_key, APP_ID, counter)
            .expect("accepted");
        assert_eq!(counter, next);
    }
}

#[test]
fn assertions_with_a_non_increasing_counter_are_refused() {
    let pki = pki();
    let built = build(&pki, Build::default());
    let stored = verify(&built, &policy(&pki)).expect("attested");
    for (counter, previous) in [(0u32, 0u32), (4, 4), (3, 4), (0, u32::MAX)] {
        let a = assertion(&built.key, b"request", counter, APP_ID, true);
        assert_eq!(
            apple::verify_assertion(&a, b"request", &stored.public_key, APP_ID, previous),
            Err(Refusal::CounterNotIncreasing),
            "{counter} after {previous}"
        );
    }
}

#[test]
fn assertion_signed_over_the_wrong_message_or_by_another_key_is_refused() {
    let pki = pki();
    let built = build(&pki, Build::default());
    let stored = verify(&built, &policy(&pki)).expect("attested");
    let unhashed = assertion(&built.key, b"request", 1, APP_ID, false);
    assert_eq!(
        apple::verify_assertion(&unhashed, b"request", &stored.public_key, APP_ID, 0),
        Err(Refusal::BadSignature)
    );
    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let by_other = assertion(&other, b"request", 1, APP_ID, true);
    assert_eq!(
        apple::verify_assertion(&by_other, b"request", &stored.public_key, APP_ID, 0),
        Err(Refusal::BadSignature)
    );
    let for_other_app = assertion(
        &built.key,
        b"request",
        1,
        "ABCDE12345.com.example.other",
        true,
    );
    assert_eq!(
        apple::verify_assertion(&for_other_app, b"request", &stored.public_key, APP_ID, 0),
        Err(Refusal::RpIdMismatch)
    );
}
