//! latchkey-attestation's parsers and verifiers on attacker bytes: App Attest attestation
//! objects and assertions (CBOR), Android Key Attestation chains (DER pieces) and Play
//! Integrity tokens (compact JWE/JWS). Every input must give an error (or, for bytes no key
//! signed, at least no panic); nothing here is trusted, so nothing may be accepted.
#![no_main]

use latchkey_attestation::android::{self, AndroidPolicy};
use latchkey_attestation::apple::{self, ApplePolicy};
use latchkey_attestation::play_integrity::{self, PlayIntegrityKeys, PlayPolicy, RequestBinding};
use libfuzzer_sys::fuzz_target;

/// An uncompressed P-256 point (the curve's generator): a valid verification key.
const GENERATOR: [u8; 65] = [
    0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4,
    0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8,
    0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a,
    0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40,
    0x68, 0x37, 0xbf, 0x51, 0xf5,
];

const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Splits `data` into DER pieces: each piece is preceded by a 2-byte big-endian length.
fn pieces(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < 8 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
        out.push(&data[2..2 + len]);
        data = &data[2 + len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let now = 1_700_000_000;

    // Apple App Attest.
    let _ = apple::parse_attestation_object(data);
    let _ = apple::parse_assertion(data);
    let _ = apple::parse_authenticator_data(data, true);
    let policy = ApplePolicy::new(["ABCDE12345.com.example.app"]);
    assert!(apple::verify_attestation(data, &[0u8; 32], &[0u8; 32], &policy, now).is_err());
    assert!(
        apple::verify_assertion(data, b"client data", &GENERATOR, "ABCDE12345.com.example.app", 0)
            .is_err()
    );

    // Android Key Attestation: the whole input as one certificate, and split into pieces.
    let _ = android::parse_key_description(data);
    let _ = android::parse_attestation_application_id(data);
    let policy = AndroidPolicy::new(["com.example.app"], vec![vec![0u8; 32]]);
    assert!(android::verify_key_attestation(&[data], b"challenge", &policy, now).is_err());
    assert!(android::verify_key_attestation(&pieces(data), b"challenge", &policy, now).is_err());

    // Play Integrity.
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(&GENERATOR);
    if let Ok(keys) = PlayIntegrityKeys::new(&[7u8; 32], &spki) {
        let token = String::from_utf8_lossy(data);
        let _ = play_integrity::decrypt(&token, &keys);
        let _ = play_integrity::verify_jws(data, &keys);
        let _ = play_integrity::parse_payload(data);
        let policy = PlayPolicy::new("com.example.app", vec![vec![0u8; 32]]);
        assert!(
            play_integrity::verify(&token, &keys, &policy, RequestBinding::Nonce("n"), now).is_err()
        );
    }
});
