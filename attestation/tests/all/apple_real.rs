//! Apple App Attest against a real attestation and assertion from an iPhone (iOS 14.4),
//! published by veehaitch/devicecheck-appattest (see tests/fixtures/README.md).

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ciborium::Value;
use latchkey_attestation::Refusal;
use latchkey_attestation::apple::{self, ApplePolicy, Environment};

use crate::common::{fixture_b64, flip, sha256, unix};

pub const APP_ID: &str = "6MURL8TA57.de.vincent-haupert.apple-appattest-poc";
pub const CLIENT_DATA: &[u8] = b"wurzelpfropf";

pub fn attestation() -> Vec<u8> {
    fixture_b64("apple/ios-14.4-attestation.b64")
}

pub fn assertion() -> Vec<u8> {
    fixture_b64("apple/ios-14.4-assertion.b64")
}

pub fn key_id() -> Vec<u8> {
    STANDARD
        .decode("YmbJO4x5nEHUvncp9zdWuVZjNBEMgJn3cdSToAXQe3M=")
        .expect("b64")
}

/// When the source test made the attestation.
pub fn now() -> i64 {
    unix("2021-01-23T12:13:33Z")
}

fn policy() -> ApplePolicy {
    let mut p = ApplePolicy::new([APP_ID]);
    p.allow_development = true;
    p
}

fn verify(
    object: &[u8],
    cdh: &[u8],
    key_id: &[u8],
    policy: &ApplePolicy,
    now: i64,
) -> Result<apple::AppleKey, Refusal> {
    apple::verify_attestation(object, cdh, key_id, policy, now)
}

/// Decodes the attestation object, lets `edit` change it, re-encodes it.
fn edit_object(edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
    let mut value: Value = ciborium::de::from_reader(attestation().as_slice()).expect("cbor");
    let Value::Map(map) = &mut value else {
        panic!("map")
    };
    edit(map);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&value, &mut out).expect("encode");
    out
}

fn field<'a>(map: &'a mut [(Value, Value)], key: &str) -> &'a mut Value {
    &mut map
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .expect(key)
        .1
}

fn x5c(map: &mut [(Value, Value)]) -> &mut Vec<Value> {
    let Value::Map(stmt) = field(map, "attStmt") else {
        panic!("attStmt")
    };
    let Value::Array(x5c) = field(stmt, "x5c") else {
        panic!("x5c")
    };
    x5c
}

#[test]
fn real_attestation_is_accepted() {
    let key = verify(
        &attestation(),
        &sha256(CLIENT_DATA),
        &key_id(),
        &policy(),
        now(),
    )
    .expect("accepted");
    assert_eq!(key.app_id, APP_ID);
    assert_eq!(key.environment, Environment::Development);
    assert_eq!(key.counter, 0);
    assert_eq!(key.key_id, key_id());
    assert_eq!(sha256(&key.public_key), key_id());
    assert_eq!(key.public_key.len(), 65);
    // The public key published next to the fixture (PEM SPKI in the YAML).
    let spki = STANDARD
        .decode("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEiMA0oZCqfbxaBhUBxlQoA5QlghmLPxzFRnPKO5rSC0FSgmelT1/boEafr7RrtpkKOWvwT5SknUMgyBx6skCjmA==")
        .expect("b64");
    assert_eq!(&spki[spki.len() - 65..], key.public_key.as_slice());
    assert_eq!(key.public_key_jwk["kty"], "EC");
    assert_eq!(key.public_key_jwk["crv"], "P-256");
    assert_eq!(
        key.public_key_jwk["x"],
        "iMA0oZCqfbxaBhUBxlQoA5QlghmLPxzFRnPKO5rSC0E"
    );
    // The receipt is a PKCS #7 blob (BER, indefinite length: 0x30 0x80).
    assert_eq!(&key.receipt[..2], &[0x30, 0x80]);
}

#[test]
fn the_embedded_apple_root_is_apples() {
    let roots = apple::apple_roots();
    assert_eq!(roots.len(), 1);
    assert_eq!(
        crate::common::hex("1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932"),
        sha256(roots[0].der())
    );
}

#[test]
fn development_is_refused_unless_allowed() {
    let mut p = policy();
    p.allow_development = false;
    assert_eq!(
        verify(&attestation(), &sha256(CLIENT_DATA), &key_id(), &p, now()),
        Err(Refusal::DevelopmentNotAllowed)
    );
}

#[test]
fn another_client_data_hash_is_a_nonce_mismatch() {
    let r = verify(
        &attestation(),
        &sha256(b"wurzelpfropg"),
        &key_id(),
        &policy(),
        now(),
    );
    assert_eq!(r, Err(Refusal::NonceMismatch));
    let r = verify(&attestation(), CLIENT_DATA, &key_id(), &policy(), now());
    assert_eq!(
        r,
        Err(Refusal::NonceMismatch),
        "the raw client data is not its hash"
    );
}

#[test]
fn another_key_id_is_refused() {
    let r = verify(
        &attestation(),
        &sha256(CLIENT_DATA),
        &flip(&key_id(), 0),
        &policy(),
        now(),
    );
    assert_eq!(r, Err(Refusal::KeyIdMismatch));
    let r = verify(
        &attestation(),
        &sha256(CLIENT_DATA),
        &key_id()[..31],
        &policy(),
        now(),
    );
    assert_eq!(r, Err(Refusal::KeyIdMismatch));
}

#[test]
fn another_app_id_is_refused() {
    let mut p = policy();
    p.app_ids = vec![
        "6MURL8TA57.de.vincent-haupert.other".into(),
        "OTHERTEAM1.de.vincent-haupert.apple-appattest-poc".into(),
    ];
    assert_eq!(
        verify(&attestation(), &sha256(CLIENT_DATA), &key_id(), &p, now()),
        Err(Refusal::RpIdMismatch)
    );
    p.app_ids.push(APP_ID.into());
    assert!(verify(&attestation(), &sha256(CLIENT_DATA), &key_id(), &p, now()).is_ok());
}

#[test]
fn every_byte_of_auth_data_is_bound_by_the_nonce() {
    // rpIdHash, flags, counter, aaguid, credential id, COSE key: a change anywhere is caught
    // by the nonce, before any field check (those are tested on synthetic objects).
    let original = edit_object(|_| {});
    assert!(verify(&original, &sha256(CLIENT_DATA), &key_id(), &policy(), now()).is_ok());
    for i in [0usize, 31, 32, 33, 36, 37, 52, 53, 55, 86, 120, 163] {
        let tampered = edit_object(|map| {
            let Value::Bytes(auth) = field(map, "authData") else {
                panic!("authData")
            };
            auth[i] ^= 0x01;
        });
        assert_eq!(
            verify(&tampered, &sha256(CLIENT_DATA), &key_id(), &policy(), now()),
            Err(Refusal::NonceMismatch),
            "authData byte {i}"
        );
    }
}

#[test]
fn a_tampered_certificate_is_refused() {
    let der_of = |cert: usize| {
        let value: Value = ciborium::de::from_reader(attestation().as_slice()).expect("cbor");
        let Value::Map(mut map) = value else {
            panic!("map")
        };
        let Value::Bytes(der) = &x5c(&mut map)[cert] else {
            panic!("bytes")
        };
        der.clone()
    };
    let tamper = |cert: usize, i: usize| {
        let tampered = edit_object(|map| {
            let Value::Bytes(der) = &mut x5c(map)[cert] else {
                panic!("bytes")
            };
            der[i] ^= 0x01;
        });
        verify(&tampered, &sha256(CLIENT_DATA), &key_id(), &policy(), now())
    };
    // The last bytes of each certificate are its signature's s value.
    for cert in [0usize, 1] {
        let len = der_of(cert).len();
        assert_eq!(
            tamper(cert, len - 2),
            Err(Refusal::BadSignature),
            "signature of cert {cert}"
        );
    }
    // Any byte of the signed part: refused, as a bad signature, a broken name link or a
    // certificate that no longer parses.
    for (cert, i) in [
        (0usize, 150usize),
        (0, 300),
        (0, 500),
        (1, 100),
        (1, 200),
        (1, 400),
    ] {
        let r = tamper(cert, i);
        assert!(
            matches!(
                r,
                Err(Refusal::BadSignature | Refusal::ChainUntrusted | Refusal::BadCertificate)
            ),
            "cert {cert} byte {i}: {r:?}"
        );
    }
}

#[test]
fn a_chain_without_its_intermediate_or_out_of_order_is_untrusted() {
    let no_intermediate = edit_object(|map| {
        x5c(map).truncate(1);
    });
    assert_eq!(
        verify(
            &no_intermediate,
            &sha256(CLIENT_DATA),
            &key_id(),
            &policy(),
            now()
        ),
        Err(Refusal::ChainUntrusted)
    );
    let reversed = edit_object(|map| x5c(map).reverse());
    assert_eq!(
        verify(&reversed, &sha256(CLIENT_DATA), &key_id(), &policy(), now()),
        Err(Refusal::ChainUntrusted)
    );
    let empty = edit_object(|map| x5c(map).clear());
    assert_eq!(
        verify(&empty, &sha256(CLIENT_DATA), &key_id(), &policy(), now()),
        Err(Refusal::BadCertificate)
    );
}

#[test]
fn validity_is_checked_at_now() {
    let cdh = sha256(CLIENT_DATA);
    // The credential certificate: 2021-01-22T12:13:35Z .. 2021-01-25T12:13:35Z.
    assert!(
        verify(
            &attestation(),
            &cdh,
            &key_id(),
            &policy(),
            unix("2021-01-25T12:13:35Z")
        )
        .is_ok()
    );
    assert_eq!(
        verify(
            &attestation(),
            &cdh,
            &key_id(),
            &policy(),
            unix("2021-01-25T12:13:36Z")
        ),
        Err(Refusal::CertificateExpired)
    );
    assert_eq!(
        verify(
            &attestation(),
            &cdh,
            &key_id(),
            &policy(),
            unix("2021-01-22T12:13:34Z")
        ),
        Err(Refusal::CertificateNotYetValid)
    );
}

#[test]
fn another_root_is_untrusted() {
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = params.self_signed(&other).expect("root");
    let mut p = policy();
    p.roots = vec![latchkey_attestation::TrustAnchor::from_der(root.der()).expect("anchor")];
    assert_eq!(
        verify(&attestation(), &sha256(CLIENT_DATA), &key_id(), &p, now()),
        Err(Refusal::ChainUntrusted)
    );
    p.roots.clear();
    assert_eq!(
        verify(&attestation(), &sha256(CLIENT_DATA), &key_id(), &p, now()),
        Err(Refusal::ChainUntrusted)
    );
}

#[test]
fn another_format_is_refused() {
    let packed = edit_object(|map| *field(map, "fmt") = Value::Text("packed".into()));
    assert_eq!(
        verify(&packed, &sha256(CLIENT_DATA), &key_id(), &policy(), now()),
        Err(Refusal::UnsupportedFormat)
    );
}

fn public_key() -> Vec<u8> {
    verify(
        &attestation(),
        &sha256(CLIENT_DATA),
        &key_id(),
        &policy(),
        now(),
    )
    .expect("accepted")
    .public_key
}

#[test]
fn real_assertion_is_accepted_and_returns_the_counter() {
    let counter = apple::verify_assertion(&assertion(), CLIENT_DATA, &public_key(), APP_ID, 0);
    assert_eq!(counter, Ok(1));
}

#[test]
fn the_assertion_signature_is_over_the_nonce_hashed_once_more() {
    // Which message the device signs, shown on the real assertion: nonce =
    // SHA-256(authenticatorData || SHA-256(clientData)), and the ECDSA-SHA256 signature is
    // over the message `nonce` (so SHA-256(nonce) is what is signed).
    let parsed = apple::parse_assertion(&assertion()).expect("parse");
    let mut data = parsed.authenticator_data.clone();
    data.extend_from_slice(&sha256(CLIENT_DATA));
    let nonce = sha256(&data);
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key());
    assert!(key.verify(&nonce, &parsed.signature).is_ok());
    assert!(
        key.verify(&data, &parsed.signature).is_err(),
        "not over authData || clientDataHash"
    );
}

#[test]
fn assertion_counter_must_increase() {
    let r = apple::verify_assertion(&assertion(), CLIENT_DATA, &public_key(), APP_ID, 1);
    assert_eq!(r, Err(Refusal::CounterNotIncreasing));
    let r = apple::verify_assertion(&assertion(), CLIENT_DATA, &public_key(), APP_ID, 7);
    assert_eq!(r, Err(Refusal::CounterNotIncreasing));
}

#[test]
fn assertion_for_other_client_data_or_key_is_a_bad_signature() {
    let r = apple::verify_assertion(&assertion(), b"fporfplezruw", &public_key(), APP_ID, 0);
    assert_eq!(r, Err(Refusal::BadSignature));
    let mut other_key = public_key();
    other_key[64] ^= 0x01; // not on the curve any more, or another key: either way refused
    let r = apple::verify_assertion(&assertion(), CLIENT_DATA, &other_key, APP_ID, 0);
    assert_eq!(r, Err(Refusal::BadSignature));
    let r = apple::verify_assertion(&assertion(), CLIENT_DATA, &public_key()[1..], APP_ID, 0);
    assert_eq!(r, Err(Refusal::UnsupportedKey));
}

#[test]
fn assertion_for_another_app_is_refused() {
    let r = apple::verify_assertion(
        &assertion(),
        CLIENT_DATA,
        &public_key(),
        "6MURL8TA57.other",
        0,
    );
    assert_eq!(r, Err(Refusal::RpIdMismatch));
}

#[test]
fn a_tampered_assertion_is_refused() {
    let parsed = apple::parse_assertion(&assertion()).expect("parse");
    let encode = |sig: &[u8], auth: &[u8]| {
        let value = Value::Map(vec![
            (Value::Text("signature".into()), Value::Bytes(sig.to_vec())),
            (
                Value::Text("authenticatorData".into()),
                Value::Bytes(auth.to_vec()),
            ),
        ]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&value, &mut out).expect("encode");
        out
    };
    // Re-encoded untouched: still valid.
    let same = encode(&parsed.signature, &parsed.authenticator_data);
    assert_eq!(
        apple::verify_assertion(&same, CLIENT_DATA, &public_key(), APP_ID, 0),
        Ok(1)
    );
    for i in [10usize, 40, parsed.signature.len() - 1] {
        let t = encode(&flip(&parsed.signature, i), &parsed.authenticator_data);
        assert_eq!(
            apple::verify_assertion(&t, CLIENT_DATA, &public_key(), APP_ID, 0),
            Err(Refusal::BadSignature),
            "sig byte {i}"
        );
    }
    for i in [0usize, 32, 36] {
        let t = encode(&parsed.signature, &flip(&parsed.authenticator_data, i));
        assert_eq!(
            apple::verify_assertion(&t, CLIENT_DATA, &public_key(), APP_ID, 0),
            Err(Refusal::BadSignature),
            "authData byte {i}"
        );
    }
    let t = encode(&parsed.signature, &parsed.authenticator_data[..36]);
    assert_eq!(
        apple::verify_assertion(&t, CLIENT_DATA, &public_key(), APP_ID, 0),
        Err(Refusal::BadAuthenticatorData)
    );
}
