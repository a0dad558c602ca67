//! Play Integrity on synthetic tokens: built here with aws-lc-rs exactly as Google builds
//! them (ES256 JWS inside an A256KW / A256GCM JWE). No real token is available: they are
//! encrypted to each app's own keys.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrap};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latchkey_attestation::Refusal;
use latchkey_attestation::play_integrity::{
    self, DeviceVerdict, PlayIntegrityKeys, PlayPolicy, RequestBinding,
};
use serde_json::{Value, json};

const PACKAGE: &str = "com.example.app";
const NONCE: &str = "bm9uY2UtZnJvbS10aGUtc2VydmVy";
const NOW: i64 = 1_750_000_000;
const AES_KEY: [u8; 32] = [0x42; 32];
const DIGEST: [u8; 32] = [0x5a; 32];

struct Google {
    signer: EcdsaKeyPair,
    keys: PlayIntegrityKeys,
}

/// DER SubjectPublicKeyInfo of an uncompressed P-256 point (fixed prefix, RFC 5480).
fn spki(point: &[u8]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(point);
    der
}

fn google() -> Google {
    let signer = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let verification = STANDARD.encode(spki(signer.public_key().as_ref()));
    let keys =
        PlayIntegrityKeys::from_base64(&STANDARD.encode(AES_KEY), &verification).expect("keys");
    Google { signer, keys }
}

fn payload() -> Value {
    json!({
        "requestDetails": {
            "requestPackageName": PACKAGE,
            "nonce": NONCE,
            "timestampMillis": (NOW * 1000 - 5_000).to_string(),
        },
        "appIntegrity": {
            "appRecognitionVerdict": "PLAY_RECOGNIZED",
            "packageName": PACKAGE,
            "certificateSha256Digest": [URL_SAFE_NO_PAD.encode(DIGEST)],
            "versionCode": "42",
        },
        "deviceIntegrity": { "deviceRecognitionVerdict": ["MEETS_DEVICE_INTEGRITY"] },
        "accountDetails": { "appLicensingVerdict": "LICENSED" },
    })
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn jws(signer: &EcdsaKeyPair, header: &Value, payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
    let sig = signer
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("sign");
    format!("{input}.{}", b64(sig.as_ref()))
}

fn jwe(kek: &[u8; 32], header: &Value, plaintext: &[u8]) -> String {
    let cek = [0x17u8; 32];
    let iv = [0x09u8; 12];
    let mut wrapped = [0u8; 40];
    let wrapped = KeyEncryptionKey::new(&AES_256, kek)
        .expect("kek")
        .wrap(&cek, &mut wrapped)
        .expect("wrap")
        .to_vec();
    let header_b64 = b64(header.to_string().as_bytes());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).expect("cek"));
    let mut data = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header_b64.as_bytes()),
            &mut data,
        )
        .expect("seal");
    format!(
        "{header_b64}.{}.{}.{}.{}",
        b64(&wrapped),
        b64(&iv),
        b64(&data),
        b64(tag.as_ref())
    )
}

fn jwe_header() -> Value {
    json!({"alg": "A256KW", "enc": "A256GCM"})
}

fn jws_header() -> Value {
    json!({"alg": "ES256"})
}

fn token(g: &Google, payload: &Value) -> String {
    jwe(
        &AES_KEY,
        &jwe_header(),
        jws(&g.signer, &jws_header(), payload.to_string().as_bytes()).as_bytes(),
    )
}

fn policy() -> PlayPolicy {
    PlayPolicy::new(PACKAGE, vec![DIGEST.to_vec()])
}

fn verify(
    g: &Google,
    token: &str,
    policy: &PlayPolicy,
) -> Result<play_integrity::PlayVerdict, Refusal> {
    play_integrity::verify(token, &g.keys, policy, RequestBinding::Nonce(NONCE), NOW)
}

fn with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut p = payload();
    edit(&mut p);
    p
}

#[test]
fn a_good_token_is_accepted() {
    let g = google();
    let verdict = verify(&g, &token(&g, &payload()), &policy()).expect("accepted");
    assert_eq!(verdict.device_verdict, Some(DeviceVerdict::Device));
    assert_eq!(verdict.payload.version_code, Some(42));
    assert_eq!(
        verdict.payload.app_licensing_verdict.as_deref(),
        Some("LICENSED")
    );
    assert_eq!(verdict.payload.timestamp_millis, NOW * 1000 - 5_000);
}

#[test]
fn a_standard_request_is_bound_by_its_request_hash() {
    let g = google();
    let p = with(|p| {
        let details = p["requestDetails"].as_object_mut().expect("object");
        details.remove("nonce");
        details.insert("requestHash".into(), json!("2cp24z..hash"));
    });
    let t = token(&g, &p);
    assert!(
        play_integrity::verify(
            &t,
            &g.keys,
            &policy(),
            RequestBinding::RequestHash("2cp24z..hash"),
            NOW
        )
        .is_ok()
    );
    assert_eq!(
        play_integrity::verify(
            &t,
            &g.keys,
            &policy(),
            RequestBinding::RequestHash("other"),
            NOW
        )
        .map(|_| ()),
        Err(Refusal::RequestMismatch)
    );
    assert_eq!(
        play_integrity::verify(&t, &g.keys, &policy(), RequestBinding::Nonce(NONCE), NOW)
            .map(|_| ()),
        Err(Refusal::RequestMismatch)
    );
}

#[test]
fn a_wrong_nonce_is_refused() {
    let g = google();
    let r = play_integrity::verify(
        &token(&g, &payload()),
        &g.keys,
        &policy(),
        RequestBinding::Nonce("other"),
        NOW,
    );
    assert_eq!(r.map(|_| ()), Err(Refusal::RequestMismatch));
}

#[test]
fn tampered_ciphertext_tag_key_or_header_is_refused() {
    let g = google();
    let t = token(&g, &payload());
    let parts: Vec<&str> = t.split('.').collect();
    let rebuild = |i: usize, new: String| {
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        p[i] = new;
        p.join(".")
    };
    let flip_part = |i: usize| {
        let mut bytes = URL_SAFE_NO_PAD.decode(parts[i]).expect("b64");
        bytes[0] ^= 0x01;
        rebuild(i, b64(&bytes))
    };
    assert_eq!(
        verify(&g, &flip_part(1), &policy()).map(|_| ()),
        Err(Refusal::DecryptionFailed),
        "encrypted key"
    );
    assert_eq!(
        verify(&g, &flip_part(2), &policy()).map(|_| ()),
        Err(Refusal::DecryptionFailed),
        "iv"
    );
    assert_eq!(
        verify(&g, &flip_part(3), &policy()).map(|_| ()),
        Err(Refusal::DecryptionFailed),
        "ciphertext"
    );
    assert_eq!(
        verify(&g, &flip_part(4), &policy()).map(|_| ()),
        Err(Refusal::DecryptionFailed),
        "tag"
    );
    // The same header with another (valid) encoding: the AAD differs.
    let spaced = rebuild(0, b64(br#"{"alg":"A256KW", "enc":"A256GCM"}"#));
    assert_eq!(
        verify(&g, &spaced, &policy()).map(|_| ()),
        Err(Refusal::DecryptionFailed),
        "header is AAD"
    );
}

#[test]
fn the_wrong_keys_are_refused() {
    let g = google();
    let t = token(&g, &payload());
    let other = google();
    let wrong_aes = PlayIntegrityKeys::from_base64(
        &STANDARD.encode([0x43u8; 32]),
        &STANDARD.encode(spki(g.signer.public_key().as_ref())),
    )
    .expect("keys");
    assert_eq!(
        play_integrity::verify(&t, &wrong_aes, &policy(), RequestBinding::Nonce(NONCE), NOW)
            .map(|_| ()),
        Err(Refusal::DecryptionFailed)
    );
    // Right AES key, another verification key.
    assert_eq!(
        play_integrity::verify(
            &t,
            &other.keys,
            &policy(),
            RequestBinding::Nonce(NONCE),
            NOW
        )
        .map(|_| ()),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn a_tampered_jws_is_a_bad_signature() {
    let g = google();
    let inner = jws(&g.signer, &jws_header(), payload().to_string().as_bytes());
    let (input, sig) = inner.rsplit_once('.').expect("jws");
    let mut sig = URL_SAFE_NO_PAD.decode(sig).expect("b64");
    sig[10] ^= 0x01;
    let t = jwe(
        &AES_KEY,
        &jwe_header(),
        format!("{input}.{}", b64(&sig)).as_bytes(),
    );
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::BadSignature)
    );
    // Another payload under the original signature.
    let (header, _) = input.split_once('.').expect("jws");
    let swapped = format!(
        "{header}.{}.{}",
        b64(with(|p| p["appIntegrity"]["packageName"] = json!("x"))
            .to_string()
            .as_bytes()),
        inner.rsplit_once('.').expect("sig").1
    );
    let t = jwe(&AES_KEY, &jwe_header(), swapped.as_bytes());
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn other_algorithms_are_refused() {
    let g = google();
    let inner = jws(&g.signer, &jws_header(), payload().to_string().as_bytes());
    for header in [
        json!({"alg": "RSA-OAEP-256", "enc": "A256GCM"}),
        json!({"alg": "dir", "enc": "A256GCM"}),
        json!({"alg": "A256KW", "enc": "A128GCM"}),
        json!({"alg": "A256KW", "enc": "A256CBC-HS512"}),
        json!({"alg": "A256KW"}),
        json!({"alg": "A256KW", "enc": "A256GCM", "zip": "DEF"}),
        json!({"alg": "A256KW", "enc": "A256GCM", "crit": ["exp"]}),
    ] {
        let t = jwe(&AES_KEY, &header, inner.as_bytes());
        assert_eq!(
            verify(&g, &t, &policy()).map(|_| ()),
            Err(Refusal::UnsupportedAlgorithm),
            "{header}"
        );
    }
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "HS256"}),
        json!({"alg": "ES384"}),
        json!({"alg": "ES256", "enc": "A256GCM"}),
        json!({"alg": "ES256", "crit": ["b64"]}),
        json!({}),
    ] {
        let t = jwe(
            &AES_KEY,
            &jwe_header(),
            jws(&g.signer, &header, payload().to_string().as_bytes()).as_bytes(),
        );
        assert_eq!(
            verify(&g, &t, &policy()).map(|_| ()),
            Err(Refusal::UnsupportedAlgorithm),
            "{header}"
        );
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let g = google();
    let t = token(&g, &payload());
    for bad in [
        String::new(),
        "a.b.c.d".to_owned(),
        format!("{t}.extra"),
        t.replacen('.', "!", 1),
        format!("{}.", &t[..t.rfind('.').expect("dot")]),
        "e30.AAAA.AAAA.AAAA.AAAA".to_owned(),
    ] {
        let r = verify(&g, &bad, &policy()).map(|_| ());
        assert!(
            matches!(
                r,
                Err(Refusal::MalformedToken) | Err(Refusal::UnsupportedAlgorithm)
            ),
            "{bad:?}: {r:?}"
        );
    }
    assert_eq!(
        verify(
            &g,
            &"a".repeat(play_integrity::MAX_TOKEN_LEN + 1),
            &policy()
        )
        .map(|_| ()),
        Err(Refusal::TooLarge)
    );
    // A JWE whose plaintext is not a JWS, or whose payload is not the verdict JSON.
    let t = jwe(&AES_KEY, &jwe_header(), b"not a jws");
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::MalformedToken)
    );
    let t = jwe(
        &AES_KEY,
        &jwe_header(),
        jws(&g.signer, &jws_header(), b"{\"requestDetails\":1}").as_bytes(),
    );
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::BadPayload)
    );
    let t = token(
        &g,
        &with(|p| p["requestDetails"]["timestampMillis"] = json!("soon")),
    );
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::BadPayload)
    );
}

#[test]
fn the_verdict_age_is_checked() {
    let g = google();
    let mut p = policy();
    p.max_age_secs = 60;
    let at = |ms: i64| {
        token(
            &g,
            &with(|p| p["requestDetails"]["timestampMillis"] = json!(ms.to_string())),
        )
    };
    assert!(verify(&g, &at(NOW * 1000 - 60_000), &p).is_ok());
    assert_eq!(
        verify(&g, &at(NOW * 1000 - 60_001), &p).map(|_| ()),
        Err(Refusal::VerdictTooOld)
    );
    assert!(verify(&g, &at(NOW * 1000 + 60_000), &p).is_ok());
    assert_eq!(
        verify(&g, &at(NOW * 1000 + 60_001), &p).map(|_| ()),
        Err(Refusal::VerdictFromFuture)
    );
    // A number rather than a string is accepted too.
    let t = token(
        &g,
        &with(|p| p["requestDetails"]["timestampMillis"] = json!(NOW * 1000)),
    );
    assert!(verify(&g, &t, &p).is_ok());
}

#[test]
fn the_package_must_be_ours() {
    let g = google();
    let t = token(
        &g,
        &with(|p| p["requestDetails"]["requestPackageName"] = json!("com.example.evil")),
    );
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::PackageNotAllowed)
    );
    let t = token(
        &g,
        &with(|p| p["appIntegrity"]["packageName"] = json!("com.example.evil")),
    );
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::PackageNotAllowed)
    );
}

#[test]
fn the_app_must_be_recognized() {
    let g = google();
    let unrecognized = token(
        &g,
        &with(|p| p["appIntegrity"]["appRecognitionVerdict"] = json!("UNRECOGNIZED_VERSION")),
    );
    assert_eq!(
        verify(&g, &unrecognized, &policy()).map(|_| ()),
        Err(Refusal::AppNotRecognized)
    );
    let mut lax = policy();
    lax.allow_unrecognized_version = true;
    assert!(verify(&g, &unrecognized, &lax).is_ok());
    let unevaluated = token(
        &g,
        &with(|p| p["appIntegrity"] = json!({"appRecognitionVerdict": "UNEVALUATED"})),
    );
    assert_eq!(
        verify(&g, &unevaluated, &lax).map(|_| ()),
        Err(Refusal::AppNotRecognized)
    );
}

#[test]
fn the_signing_certificate_must_be_allowed() {
    let g = google();
    let t = token(
        &g,
        &with(|p| {
            p["appIntegrity"]["certificateSha256Digest"] =
                json!([URL_SAFE_NO_PAD.encode([1u8; 32])])
        }),
    );
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::SigningCertNotAllowed)
    );
    let t = token(
        &g,
        &with(|p| p["appIntegrity"]["certificateSha256Digest"] = json!([])),
    );
    assert_eq!(
        verify(&g, &t, &policy()).map(|_| ()),
        Err(Refusal::SigningCertNotAllowed)
    );
    // Padded base64url is accepted too.
    let padded = format!("{}=", URL_SAFE_NO_PAD.encode(DIGEST));
    let t = token(
        &g,
        &with(|p| p["appIntegrity"]["certificateSha256Digest"] = json!(["garbage!", padded])),
    );
    assert!(verify(&g, &t, &policy()).is_ok());
}

#[test]
fn the_device_verdict_must_reach_the_minimum() {
    let g = google();
    let labels = |l: Value| {
        token(
            &g,
            &with(|p| p["deviceIntegrity"]["deviceRecognitionVerdict"] = l),
        )
    };
    assert_eq!(
        verify(&g, &labels(json!(["MEETS_BASIC_INTEGRITY"])), &policy()).map(|_| ()),
        Err(Refusal::DeviceIntegrityTooLow)
    );
    assert_eq!(
        verify(&g, &labels(json!([])), &policy()).map(|_| ()),
        Err(Refusal::DeviceIntegrityTooLow)
    );
    assert_eq!(
        verify(&g, &labels(json!(["MEETS_VIRTUAL_INTEGRITY"])), &policy()).map(|_| ()),
        Err(Refusal::DeviceIntegrityTooLow)
    );
    let no_device = token(&g, &with(|p| p["deviceIntegrity"] = json!({})));
    assert_eq!(
        verify(&g, &no_device, &policy()).map(|_| ()),
        Err(Refusal::DeviceIntegrityTooLow)
    );
    let mut strong = policy();
    strong.min_device_verdict = DeviceVerdict::Strong;
    let all = labels(json!([
        "MEETS_BASIC_INTEGRITY",
        "MEETS_DEVICE_INTEGRITY",
        "MEETS_STRONG_INTEGRITY"
    ]));
    assert_eq!(
        verify(&g, &all, &strong).expect("strong").device_verdict,
        Some(DeviceVerdict::Strong)
    );
    assert_eq!(
        verify(&g, &labels(json!(["MEETS_DEVICE_INTEGRITY"])), &strong).map(|_| ()),
        Err(Refusal::DeviceIntegrityTooLow)
    );
    let mut basic = policy();
    basic.min_device_verdict = DeviceVerdict::Basic;
    assert!(verify(&g, &labels(json!(["MEETS_BASIC_INTEGRITY"])), &basic).is_ok());
}

#[test]
fn licensing_is_checked_when_required() {
    let g = google();
    let mut p = policy();
    p.require_licensed = true;
    assert!(verify(&g, &token(&g, &payload()), &p).is_ok());
    let t = token(
        &g,
        &with(|p| p["accountDetails"]["appLicensingVerdict"] = json!("UNLICENSED")),
    );
    assert_eq!(verify(&g, &t, &p).map(|_| ()), Err(Refusal::NotLicensed));
    assert!(verify(&g, &t, &policy()).is_ok());
}

#[test]
fn key_configuration_errors() {
    let g = google();
    let spki_b64 = STANDARD.encode(spki(g.signer.public_key().as_ref()));
    assert!(PlayIntegrityKeys::from_base64("not base64!", &spki_b64).is_err());
    assert!(PlayIntegrityKeys::from_base64(&STANDARD.encode([0u8; 16]), &spki_b64).is_err());
    assert!(PlayIntegrityKeys::from_base64(&STANDARD.encode(AES_KEY), "AAAA").is_err());
    // A P-384 SPKI is not a verification key.
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let p384_spki = STANDARD.encode(rcgen::PublicKeyData::subject_public_key_info(&p384));
    assert!(PlayIntegrityKeys::from_base64(&STANDARD.encode(AES_KEY), &p384_spki).is_err());
    assert_eq!(format!("{:?}", g.keys), "PlayIntegrityKeys { .. }");
}
