//! Verification against a real HTTP JWKS endpoint, with real and forged tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use latchkey_verify::{SetupError, TokenType, Verifier, VerifyError};
use serde_json::json;

/// A verifier for `mock`'s JWKS (no discovery).
async fn verifier_for(mock: &MockIssuer) -> Verifier {
    Verifier::from_jwks_url(mock.jwks_url(), mock.issuer(), AUDIENCE)
        .await
        .unwrap()
}

fn one_key() -> (TestKey, MockIssuer) {
    let key = TestKey::es256("ec-1");
    let mock = MockIssuer::start(jwks(&[&key]));
    (key, mock)
}

#[tokio::test]
async fn valid_tokens_verify_for_every_algorithm() {
    let keys = [
        TestKey::es256("ec-1"),
        TestKey::es384("ec-384"),
        TestKey::rsa("rsa-1", "RS256"),
        TestKey::rsa("pss-1", "PS256"),
        TestKey::eddsa("ed-1"),
    ];
    let mock = MockIssuer::start(jwks(&keys.iter().collect::<Vec<_>>()));
    let verifier = verifier_for(&mock).await;
    assert_eq!(
        verifier.key_ids(),
        ["ec-1", "ec-384", "ed-1", "pss-1", "rsa-1"]
    );
    for key in &keys {
        let claims = verifier
            .verify(&key.token(&claims(&mock.issuer())))
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", key.alg));
        assert_eq!(claims.sub, "user-42");
        assert_eq!(claims.client_id, "mobile-app");
        assert_eq!(claims.iss, mock.issuer());
        assert!(claims.aud.contains(AUDIENCE));
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["openid", "api:read"]);
        assert!(claims.auth_time.is_some());
    }
    // The synchronous path accepts the same tokens.
    assert!(
        verifier
            .verify_cached(&keys[0].token(&claims(&mock.issuer())))
            .is_ok()
    );
    assert_eq!(mock.jwks_requests(), 1);
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let (key, mock) = one_key();
    let verifier = Verifier::from_issuer(mock.issuer(), AUDIENCE)
        .await
        .unwrap();
    assert_eq!(verifier.jwks_url(), Some(mock.jwks_url().as_str()));
    assert!(
        verifier
            .verify(&key.token(&claims(&mock.issuer())))
            .await
            .is_ok()
    );
    assert_eq!(mock.paths(), ["/.well-known/openid-configuration", "/jwks"]);
}

#[tokio::test]
async fn discovery_must_name_the_issuer_exactly() {
    let (_key, mock) = one_key();
    mock.set_discovery(json!({
        "issuer": format!("{}/", mock.issuer()),
        "jwks_uri": mock.jwks_url(),
    }));
    let err = Verifier::from_issuer(mock.issuer(), AUDIENCE)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SetupError::IssuerMismatch { found, .. } if *found == format!("{}/", mock.issuer())),
        "{err:?}"
    );
    assert_eq!(mock.jwks_requests(), 0);
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let err = Verifier::from_issuer("http://login.example.test", AUDIENCE)
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::InsecureUrl(_)), "{err:?}");
    let err = Verifier::from_jwks_url("http://10.0.0.1/jwks", "https://i", AUDIENCE)
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::InsecureUrl(_)), "{err:?}");
    let err = Verifier::from_issuer("ftp://x", AUDIENCE)
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::InvalidUrl(_)), "{err:?}");
}

#[tokio::test]
async fn a_jwks_with_only_symmetric_keys_is_unusable() {
    let mock = MockIssuer::start(
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"}]}).to_string(),
    );
    let err = Verifier::from_jwks_url(mock.jwks_url(), mock.issuer(), AUDIENCE)
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::NoUsableKeys), "{err:?}");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    for alg in ["none", "None", "NONE", ""] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": key.kid});
        let token = format!("{}.", signing_input(&header, &claims(&mock.issuer())));
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::UnsupportedAlgorithm),
            "{alg}"
        );
        // Even with a valid ES256 signature over the same input.
        let input = signing_input(&header, &claims(&mock.issuer()));
        let token = format!("{input}.{}", b64(&key.sign(input.as_bytes())));
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::UnsupportedAlgorithm)
        );
    }
    let no_alg = json!({"typ": "at+jwt", "kid": key.kid});
    let token = format!("{}.", signing_input(&no_alg, &claims(&mock.issuer())));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::Malformed));
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    let ec = TestKey::es256("ec-1");
    let rsa = TestKey::rsa("rsa-1", "RS256");
    let mock = MockIssuer::start(jwks(&[&ec, &rsa]));
    let verifier = verifier_for(&mock).await;
    let jwks_text = jwks(&[&ec, &rsa]);
    for key in [&ec, &rsa] {
        for alg in ["HS256", "HS384", "HS512"] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": key.kid});
            let input = signing_input(&header, &claims(&mock.issuer()));
            for secret in [
                key.public_bytes.as_slice(),
                key.jwk.to_string().as_bytes(),
                jwks_text.as_bytes(),
            ] {
                let token = format!("{input}.{}", b64(&hmac_sha256(secret, input.as_bytes())));
                assert_eq!(
                    verifier.verify(&token).await,
                    Err(VerifyError::UnsupportedAlgorithm),
                    "{alg} with {}",
                    key.kid
                );
            }
        }
    }
}

#[tokio::test]
async fn header_alg_must_equal_the_key_alg() {
    let ec = TestKey::es256("ec-1");
    let rs = TestKey::rsa("rsa-1", "RS256");
    let ed = TestKey::eddsa("ed-1");
    let mock = MockIssuer::start(jwks(&[&ec, &rs, &ed]));
    let verifier = verifier_for(&mock).await;
    let c = claims(&mock.issuer());

    // Same RSA key, other padding: a PS256 signature by the RS256 key.
    let header = json!({"alg": "PS256", "typ": "at+jwt", "kid": "rsa-1"});
    let input = signing_input(&header, &c);
    let token = format!("{input}.{}", b64(&rs.sign_as("PS256", input.as_bytes())));
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::AlgorithmMismatch)
    );

    // An RSA signature presented under the EC key's kid.
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "ec-1"});
    assert_eq!(
        verifier.verify(&rs.token_with_header(&header, &c)).await,
        Err(VerifyError::AlgorithmMismatch)
    );

    // ES384 announced for a P-256 key; EdDSA announced for the EC key.
    let header = json!({"alg": "ES384", "typ": "at+jwt", "kid": "ec-1"});
    assert_eq!(
        verifier.verify(&ec.token_with_header(&header, &c)).await,
        Err(VerifyError::AlgorithmMismatch)
    );
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "ec-1"});
    assert_eq!(
        verifier.verify(&ed.token_with_header(&header, &c)).await,
        Err(VerifyError::AlgorithmMismatch)
    );
}

#[tokio::test]
async fn unknown_kid_causes_one_refetch_then_is_refused() {
    let (_key, mock) = one_key();
    let stranger = TestKey::es256("not-published");
    let verifier = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .refetch_cooldown(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    assert_eq!(mock.jwks_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1050)).await;

    let token = stranger.token(&claims(&mock.issuer()));
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::UnknownKeyId)
    );
    assert_eq!(mock.jwks_requests(), 2, "exactly one refetch");

    // Within the cooldown, further unknown kids cause no fetch at all.
    for kid in ["a", "b", "c"] {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        let token = stranger.token_with_header(&header, &claims(&mock.issuer()));
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::UnknownKeyId)
        );
        assert_eq!(
            verifier.verify_cached(&token),
            Err(VerifyError::UnknownKeyId)
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(mock.jwks_requests(), 2, "rate limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kids_share_one_fetch() {
    let (_key, mock) = one_key();
    let verifier = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .refetch_cooldown(Duration::ZERO)
        .build()
        .await
        .unwrap();
    mock.set_delay(Duration::from_millis(800));
    let stranger = TestKey::es256("not-published");
    let token = stranger.token(&claims(&mock.issuer()));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (v, t) = (verifier.clone(), token.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(VerifyError::UnknownKeyId));
    }
    assert_eq!(mock.jwks_requests(), 2, "16 concurrent misses, one fetch");
}

#[tokio::test]
async fn kid_with_path_or_sql_characters_is_only_an_unknown_kid() {
    let (key, mock) = one_key();
    let verifier = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .refetch_cooldown(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let kids = [
        "../../../../etc/passwd",
        "/jwks?kid=1",
        "%2e%2e%2fadmin",
        "' OR '1'='1",
        "1; DROP TABLE signing_keys; --",
        "ec-1\u{0}",
        "ec-1 ",
        "EC-1",
        "http://attacker.example/jwks",
    ];
    for kid in kids {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        let token = key.token_with_header(&header, &claims(&mock.issuer()));
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::UnknownKeyId),
            "{kid:?}"
        );
    }
    // Each miss refetched the one configured URL, and nothing else was ever requested.
    let paths = mock.paths();
    assert_eq!(paths.len(), 1 + kids.len());
    assert!(paths.iter().all(|p| p == "/jwks"), "{paths:?}");

    // A kid that is not a string, or none at all.
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": 1});
    let token = key.token_with_header(&header, &claims(&mock.issuer()));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::Malformed));
    let header = json!({"alg": "ES256", "typ": "at+jwt"});
    let token = key.token_with_header(&header, &claims(&mock.issuer()));
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::MissingKeyId)
    );
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let token = key.token(&claims(&mock.issuer()));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let forged = with(
        claims(&mock.issuer()),
        json!({"scope": "openid api:read latchkey:admin"}),
    );
    parts[1] = b64(forged.to_string().as_bytes());
    assert_eq!(
        verifier.verify(&parts.join(".")).await,
        Err(VerifyError::InvalidSignature)
    );
    // Header tampering (here: a typ change) breaks the signature too.
    let token = key.token(&claims(&mock.issuer()));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = b64(json!({"alg": "ES256", "typ": "AT+JWT", "kid": "ec-1"})
        .to_string()
        .as_bytes());
    assert_eq!(
        verifier.verify(&parts.join(".")).await,
        Err(VerifyError::InvalidSignature)
    );
}

#[tokio::test]
async fn bad_signatures_are_refused() {
    let (key, mock) = one_key();
    let impostor = TestKey::es256("ec-1"); // same kid, other private key
    let verifier = verifier_for(&mock).await;
    let c = claims(&mock.issuer());

    assert_eq!(
        verifier.verify(&impostor.token(&c)).await,
        Err(VerifyError::InvalidSignature)
    );

    let token = key.token(&c);
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    sig[10] ^= 0x01;
    assert_eq!(
        verifier.verify(&format!("{input}.{}", b64(&sig))).await,
        Err(VerifyError::InvalidSignature)
    );
    assert_eq!(
        verifier
            .verify(&format!("{input}.{}", b64(&sig[..32])))
            .await,
        Err(VerifyError::InvalidSignature)
    );
    assert_eq!(
        verifier.verify(&format!("{input}.")).await,
        Err(VerifyError::InvalidSignature)
    );
    assert_eq!(
        verifier.verify(&format!("{input}.!!!")).await,
        Err(VerifyError::Malformed)
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let good = key.token(&claims(&mock.issuer()));
    let long = format!("{good}{}", "A".repeat(latchkey_verify::MAX_TOKEN_LEN));
    let not_json = format!("{}.e30.AAAA", b64(b"not json"));
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AAAA",
        &not_json,
        &format!("{good}.extra"),
        &long,
    ] {
        assert_eq!(
            verifier.verify(token).await,
            Err(VerifyError::Malformed),
            "{token:.40}"
        );
    }
    // A payload that is not the claims JSON.
    let header = key.header();
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(b"[1,2]"));
    let token = format!("{input}.{}", b64(&key.sign(input.as_bytes())));
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::InvalidClaims)
    );
}

#[tokio::test]
async fn expiry_is_enforced_with_leeway() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await; // default leeway: 30 s
    let now = now();
    let expired = with(claims(&mock.issuer()), json!({"exp": now - 120}));
    assert_eq!(
        verifier.verify(&key.token(&expired)).await,
        Err(VerifyError::Expired)
    );
    let just_expired = with(claims(&mock.issuer()), json!({"exp": now - 10}));
    assert!(verifier.verify(&key.token(&just_expired)).await.is_ok());

    let strict = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    assert_eq!(
        strict.verify(&key.token(&just_expired)).await,
        Err(VerifyError::Expired)
    );
    let no_exp = with(claims(&mock.issuer()), json!({"exp": null}));
    assert_eq!(
        verifier.verify(&key.token(&no_exp)).await,
        Err(VerifyError::InvalidClaims)
    );
    let string_exp = with(claims(&mock.issuer()), json!({"exp": "9999999999"}));
    assert_eq!(
        verifier.verify(&key.token(&string_exp)).await,
        Err(VerifyError::InvalidClaims)
    );
}

#[tokio::test]
async fn not_yet_valid_tokens_are_refused() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let now = now();
    let nbf = with(claims(&mock.issuer()), json!({"nbf": now + 120}));
    assert_eq!(
        verifier.verify(&key.token(&nbf)).await,
        Err(VerifyError::NotYetValid)
    );
    let nbf_skew = with(claims(&mock.issuer()), json!({"nbf": now + 10}));
    assert!(verifier.verify(&key.token(&nbf_skew)).await.is_ok());
    let iat = with(claims(&mock.issuer()), json!({"iat": now + 120}));
    assert_eq!(
        verifier.verify(&key.token(&iat)).await,
        Err(VerifyError::IssuedInFuture)
    );
}

#[tokio::test]
async fn issuer_must_match_exactly() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let iss = mock.issuer();
    for wrong in [
        "https://evil.example".to_owned(),
        format!("{iss}/"),
        iss.to_uppercase(),
        iss.replace("127.0.0.1", "localhost"),
    ] {
        let c = with(claims(&iss), json!({"iss": wrong}));
        assert_eq!(
            verifier.verify(&key.token(&c)).await,
            Err(VerifyError::InvalidIssuer),
            "{wrong}"
        );
    }
    let array = with(claims(&iss), json!({"iss": [iss]}));
    assert_eq!(
        verifier.verify(&key.token(&array)).await,
        Err(VerifyError::InvalidClaims)
    );
    let missing = with(claims(&iss), json!({"iss": null}));
    assert_eq!(
        verifier.verify(&key.token(&missing)).await,
        Err(VerifyError::InvalidClaims)
    );
}

#[tokio::test]
async fn audience_must_be_contained() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let iss = mock.issuer();
    for wrong in [json!("https://other.example"), json!([]), json!(["a", "b"])] {
        let c = with(claims(&iss), json!({ "aud": wrong }));
        assert_eq!(
            verifier.verify(&key.token(&c)).await,
            Err(VerifyError::InvalidAudience),
            "{wrong}"
        );
    }
    let several = with(claims(&iss), json!({"aud": ["https://other", AUDIENCE]}));
    assert!(verifier.verify(&key.token(&several)).await.is_ok());
    let missing = with(claims(&iss), json!({"aud": null}));
    assert_eq!(
        verifier.verify(&key.token(&missing)).await,
        Err(VerifyError::InvalidClaims)
    );
}

#[tokio::test]
async fn typ_must_be_at_jwt() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let c = claims(&mock.issuer());
    for typ in [json!("JWT"), json!("dpop+jwt"), json!(null)] {
        let mut header = key.header();
        if typ.is_null() {
            header.as_object_mut().unwrap().remove("typ");
        } else {
            header["typ"] = typ.clone();
        }
        assert_eq!(
            verifier.verify(&key.token_with_header(&header, &c)).await,
            Err(VerifyError::InvalidType),
            "{typ}"
        );
    }
    let header = json!({"alg": "ES256", "typ": "application/at+jwt", "kid": "ec-1"});
    assert!(
        verifier
            .verify(&key.token_with_header(&header, &c))
            .await
            .is_ok()
    );

    let legacy = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .token_type(TokenType::AllowJwt)
        .build()
        .await
        .unwrap();
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"});
    assert!(
        legacy
            .verify(&key.token_with_header(&header, &c))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn missing_scope_is_insufficient_scope() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let c = with(
        claims(&mock.issuer()),
        json!({"scope": "openid api:readonly"}),
    );
    let claims = verifier.verify(&key.token(&c)).await.unwrap();
    let err = claims.require_scope("api:read").unwrap_err();
    assert_eq!(
        err,
        VerifyError::InsufficientScope {
            required: vec!["api:read".into()]
        }
    );
    assert_eq!(err.status(), 403);
    assert_eq!(
        err.www_authenticate(),
        "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks the required scope\", scope=\"api:read\""
    );
    let no_scope_claim = with(c, json!({"scope": null}));
    let claims = verifier.verify(&key.token(&no_scope_claim)).await.unwrap();
    assert_eq!(claims.scopes().count(), 0);
    assert!(claims.require_scope("openid").is_err());
}

#[tokio::test]
async fn sender_constrained_token_is_refused_as_bearer() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let c = with(
        claims(&mock.issuer()),
        json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
    );
    let err = verifier.verify(&key.token(&c)).await.unwrap_err();
    assert_eq!(err, VerifyError::SenderConstrained);
    assert_eq!(
        err.www_authenticate(),
        "Bearer error=\"invalid_token\", error_description=\"the access token is sender-constrained and cannot be used as a bearer token\""
    );
}

#[tokio::test]
async fn critical_header_is_refused() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec-1", "crit": ["exp"], "exp": 1});
    assert_eq!(
        verifier
            .verify(&key.token_with_header(&header, &claims(&mock.issuer())))
            .await,
        Err(VerifyError::CriticalHeader)
    );
}

#[tokio::test]
async fn rotated_key_verifies_and_retired_key_stops() {
    let old = TestKey::es256("key-2026-01");
    let new = TestKey::rsa("key-2026-02", "RS256");
    let mock = MockIssuer::start(jwks(&[&old]));
    let verifier = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .refetch_cooldown(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let c = claims(&mock.issuer());

    // The server publishes a second key and starts signing with it.
    mock.set_jwks(jwks(&[&old, &new]));
    assert!(verifier.verify(&new.token(&c)).await.is_ok());
    assert_eq!(mock.jwks_requests(), 2);
    assert!(verifier.verify(&old.token(&c)).await.is_ok());
    assert_eq!(verifier.key_ids(), ["key-2026-01", "key-2026-02"]);
    assert_eq!(mock.jwks_requests(), 2, "known keys cause no fetch");

    // The old key is retired: once the verifier refetches, its tokens are refused.
    mock.set_jwks(jwks(&[&new]));
    verifier.refresh().await.unwrap();
    assert_eq!(
        verifier.verify(&old.token(&c)).await,
        Err(VerifyError::UnknownKeyId)
    );
    assert!(verifier.verify(&new.token(&c)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_max_age_is_honoured() {
    let (key, mock) = one_key();
    mock.set_cache_control(Some("public, max-age=2"));
    let verifier = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .refetch_cooldown(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let token = key.token(&claims(&mock.issuer()));
    for _ in 0..20 {
        assert!(verifier.verify_cached(&token).is_ok());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mock.jwks_requests(), 1, "fresh for max-age");

    // Once stale, verification goes on with the cached keys and refetches in the background.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(verifier.verify_cached(&token).is_ok());
    mock.wait_for_jwks_requests(2).await;

    // A long max-age (and the default TTL otherwise) keeps the keys without refetching.
    mock.set_cache_control(Some("max-age=3600"));
    verifier.refresh().await.unwrap();
    let before = mock.jwks_requests();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..20 {
        assert!(verifier.verify_cached(&token).is_ok());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mock.jwks_requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_cached_never_waits_but_schedules_a_refetch() {
    let (old, mock) = one_key();
    let new = TestKey::es256("ec-2");
    let verifier = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .refetch_cooldown(Duration::ZERO)
        .build()
        .await
        .unwrap();
    mock.set_jwks(jwks(&[&old, &new]));
    let token = new.token(&claims(&mock.issuer()));
    assert_eq!(
        verifier.verify_cached(&token),
        Err(VerifyError::UnknownKeyId)
    );
    mock.wait_for_jwks_requests(2).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while verifier.verify_cached(&token).is_err() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn unreachable_jwks_endpoint_keeps_cached_keys() {
    let (key, mock) = one_key();
    mock.set_cache_control(Some("no-cache"));
    let verifier = Verifier::builder(mock.issuer(), AUDIENCE)
        .jwks_url(mock.jwks_url())
        .refetch_cooldown(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let c = claims(&mock.issuer());
    mock.shutdown();

    assert!(verifier.verify(&key.token(&c)).await.is_ok());
    let stranger = TestKey::es256("ec-9");
    assert_eq!(
        verifier.verify(&stranger.token(&c)).await,
        Err(VerifyError::UnknownKeyId)
    );
    let err = verifier.refresh().await.unwrap_err();
    assert!(matches!(err, SetupError::Fetch { .. }), "{err:?}");
    // Stale (no-cache) and unreachable: the known key still verifies, again and again.
    for _ in 0..3 {
        assert!(verifier.verify(&key.token(&c)).await.is_ok());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(verifier.key_ids(), ["ec-1"]);
}

#[tokio::test]
async fn broken_jwks_responses_keep_cached_keys() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let token = key.token(&claims(&mock.issuer()));

    mock.set_status(503);
    let err = verifier.refresh().await.unwrap_err();
    assert!(matches!(err, SetupError::Fetch { .. }), "{err:?}");
    assert!(verifier.verify(&token).await.is_ok());

    mock.set_status(200);
    mock.set_jwks("<html>maintenance</html>".into());
    let err = verifier.refresh().await.unwrap_err();
    assert!(matches!(err, SetupError::InvalidJwks(_)), "{err:?}");
    assert!(verifier.verify(&token).await.is_ok());

    mock.set_jwks(json!({"keys": []}).to_string());
    let err = verifier.refresh().await.unwrap_err();
    assert!(matches!(err, SetupError::NoUsableKeys), "{err:?}");
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(mock.jwks_requests(), 4);
}

#[test]
fn static_jwks_needs_no_network() {
    let issuer = "https://login.example.test";
    let key = TestKey::eddsa("ed-1");
    let verifier = Verifier::builder(issuer, AUDIENCE)
        .build_static(jwks(&[&key]).as_bytes())
        .unwrap();
    assert_eq!(verifier.jwks_url(), None);
    let verified = verifier.verify_cached(&key.token(&claims(issuer))).unwrap();
    assert_eq!(verified.sub, "user-42");
    let other = TestKey::eddsa("ed-2");
    assert_eq!(
        verifier.verify_cached(&other.token(&claims(issuer))),
        Err(VerifyError::UnknownKeyId)
    );
}

/// The `att` claim (docs/attestation.md) rides in the signed token: a production attestation
/// passes `require_attested`, a token without one or with a development one is refused with
/// 403, and a malformed `att` makes the whole token invalid rather than unattested.
#[tokio::test]
async fn require_attested_reads_the_signed_att_claim() {
    let (key, mock) = one_key();
    let verifier = verifier_for(&mock).await;
    let att = |level: &str| json!({ "att": { "platform": "android", "method": "key_attestation", "level": level } });
    let genuine = key.token(&with(claims(&mock.issuer()), att("strongbox")));
    let c = verifier.verify(&genuine).await.unwrap();
    let a = c.require_attested().unwrap();
    assert_eq!(
        (a.platform.as_str(), a.level.as_str()),
        ("android", "strongbox")
    );
    let plain = verifier
        .verify(&key.token(&claims(&mock.issuer())))
        .await
        .unwrap();
    assert_eq!(plain.require_attested(), Err(VerifyError::NotAttested));
    let dev = key.token(&with(claims(&mock.issuer()), att("software")));
    let dev = verifier.verify(&dev).await.unwrap();
    assert_eq!(
        dev.require_attested().map(|_| ()),
        Err(VerifyError::NotAttested)
    );
    let forged = key.token(&with(claims(&mock.issuer()), json!({ "att": "genuine" })));
    assert_eq!(
        verifier.verify(&forged).await,
        Err(VerifyError::InvalidClaims)
    );
    // Another key's token claiming an attestation: the signature fails first.
    let other = TestKey::es256("ec-1");
    let stolen = other.token(&with(claims(&mock.issuer()), att("strongbox")));
    assert_eq!(
        verifier.verify(&stolen).await,
        Err(VerifyError::InvalidSignature)
    );
}
