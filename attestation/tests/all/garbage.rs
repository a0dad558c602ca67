//! No parser or verifier panics on garbage: random bytes, truncations and bit flips of real
//! inputs. Truncations and random bytes must be refused; bit flips may land in unsigned
//! bytes (the App Attest receipt), so for those only "no panic" is asserted.

use latchkey_attestation::android::{self, AndroidPolicy};
use latchkey_attestation::apple::{self, ApplePolicy};
use latchkey_attestation::play_integrity::{self, PlayIntegrityKeys, PlayPolicy, RequestBinding};

use crate::common::{Rng, sha256};
use crate::{android_real, apple_real};

fn apple_all(data: &[u8]) -> bool {
    let policy = ApplePolicy::new([apple_real::APP_ID]);
    let a = apple::verify_attestation(
        data,
        &sha256(apple_real::CLIENT_DATA),
        &apple_real::key_id(),
        &policy,
        apple_real::now(),
    );
    let b = apple::verify_assertion(
        data,
        apple_real::CLIENT_DATA,
        &[4u8; 65],
        apple_real::APP_ID,
        0,
    );
    let _ = apple::parse_attestation_object(data);
    let _ = apple::parse_assertion(data);
    let _ = apple::parse_authenticator_data(data, true);
    let _ = apple::parse_authenticator_data(data, false);
    a.is_err() && b.is_err()
}

fn android_all(chain: &[Vec<u8>]) -> bool {
    let policy = AndroidPolicy::new(["com.google.attestationexample"], vec![vec![0u8; 32]]);
    for der in chain {
        let _ = android::parse_key_description(der);
        let _ = android::parse_attestation_application_id(der);
    }
    android::verify_key_attestation(chain, b"challenge", &policy, android_real::now()).is_err()
}

fn play_keys() -> PlayIntegrityKeys {
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    // The P-256 generator point: a valid public key.
    spki.extend(crate::common::hex(
        "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
    ));
    spki.extend(crate::common::hex(
        "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    ));
    PlayIntegrityKeys::new(&[1u8; 32], &spki).expect("keys")
}

fn play_all(token: &str) -> bool {
    let keys = play_keys();
    let policy = PlayPolicy::new("com.example.app", vec![]);
    let _ = play_integrity::decrypt(token, &keys);
    let _ = play_integrity::verify_jws(token.as_bytes(), &keys);
    let _ = play_integrity::parse_payload(token.as_bytes());
    play_integrity::verify(token, &keys, &policy, RequestBinding::Nonce("n"), 0).is_err()
}

/// Splits bytes into DER-ish pieces, as the fuzz target does.
fn split(data: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && pieces.len() < 6 {
        let n = 1 + rng.below(rest.len());
        pieces.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    pieces
}

#[test]
fn random_bytes_are_refused_everywhere() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        let len = rng.below(if round % 10 == 0 { 4096 } else { 300 });
        let mut data = rng.bytes(len);
        // Some rounds start like the real thing (a CBOR map, a DER SEQUENCE, a JWE header).
        match round % 4 {
            1 if !data.is_empty() => data[0] = 0xa3,
            2 if data.len() > 1 => {
                data[0] = 0x30;
                data[1] = 0x82;
            }
            _ => {}
        }
        assert!(apple_all(&data), "apple round {round}");
        let pieces = split(&data, &mut rng);
        assert!(android_all(&pieces), "android round {round}");
        let text: String = data
            .iter()
            .map(|b| {
                char::from(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
                        [*b as usize % 65],
                )
            })
            .collect();
        assert!(play_all(&text), "play round {round}");
        assert!(
            play_all(&format!(
                "eyJhbGciOiJBMjU2S1ciLCJlbmMiOiJBMjU2R0NNIn0.{text}"
            )),
            "play jwe round {round}"
        );
        assert!(
            play_all(&String::from_utf8_lossy(&data)),
            "play utf8 round {round}"
        );
    }
}

#[test]
fn every_truncation_of_the_real_apple_objects_is_refused() {
    let attestation = apple_real::attestation();
    for n in 0..attestation.len() {
        assert!(apple_all(&attestation[..n]), "attestation cut at {n}");
    }
    let assertion = apple_real::assertion();
    for n in 0..assertion.len() {
        assert!(apple_all(&assertion[..n]), "assertion cut at {n}");
    }
}

#[test]
fn truncated_certificates_of_the_real_android_chain_are_refused() {
    let chain = android_real::chain();
    for cert in 0..chain.len() {
        for n in (0..chain[cert].len()).step_by(7) {
            let mut c = chain.clone();
            c[cert].truncate(n);
            assert!(android_all(&c), "cert {cert} cut at {n}");
        }
    }
}

#[test]
fn bit_flips_in_real_inputs_never_panic() {
    let mut rng = Rng(42);
    let attestation = apple_real::attestation();
    let chain = android_real::chain();
    for _ in 0..300 {
        let mut a = attestation.clone();
        let i = rng.below(a.len());
        a[i] ^= 1 << rng.below(8);
        let _ = apple_all(&a);
        let mut c = chain.clone();
        let k = rng.below(c.len());
        let i = rng.below(c[k].len());
        c[k][i] ^= 1 << rng.below(8);
        // A flip anywhere in a certificate breaks its parse or a signature.
        assert!(
            android::verify_key_attestation(
                &c,
                b"challenge",
                &android_real::policy(),
                android_real::now()
            )
            .is_err(),
            "cert {k} byte {i}"
        );
    }
}
