//! App attestation (issue 23) against the real server: Android Key Attestation chains and
//! Apple App Attest objects and assertions built with rcgen under test roots that the client's
//! policy trusts, `POST /attest`, then `attest_jwt_client_auth` at `/token` and `/par`, the
//! `att` claim in access tokens, introspection and `latchkey-verify`; and every refusal with
//! its error (never a 5xx): a missing attestation where it is required, a replayed PoP, a PoP
//! by another key or for another server, a stale challenge, an expired or foreign attestation,
//! a statement for another challenge, app, or root, a replayed statement or assertion.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ciborium::Value as Cbor;
use rcgen::{
    BasicConstraints, CertifiedIssuer, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PublicKeyData, SigningKey,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, Mobile, REDIRECT_PORT, obtain_code, pkce, setup};
use crate::dpop::DpopKey;
use crate::helpers::{API, Resp, TestApp, introspect_as, jwt_parts, now};

// The attestation crate's own test PKI and DER helpers.
#[allow(dead_code)]
#[path = "../../attestation/tests/all/common.rs"]
mod pki;
use pki::{boolean, ca, enumerated, explicit, int, leaf_params, octets, seq, set, sha256};

const PACKAGE: &str = "com.example.app";
const DIGEST: [u8; 32] = [0xab; 32];
const APP_ID: &str = "ABCDE12345.com.example.app";
const KEY_DESCRIPTION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17];
const NONCE_OID: &[u64] = &[1, 2, 840, 113_635, 100, 8, 2];

struct Roots {
    android_root: CertifiedIssuer<'static, KeyPair>,
    android_ca: CertifiedIssuer<'static, KeyPair>,
    apple_root: CertifiedIssuer<'static, KeyPair>,
    apple_ca: CertifiedIssuer<'static, KeyPair>,
}

fn roots() -> Roots {
    let android_root = ca(
        "Test Android Root",
        &PKCS_ECDSA_P256_SHA256,
        None,
        BasicConstraints::Unconstrained,
    );
    let android_ca = ca(
        "Test Android Intermediate",
        &PKCS_ECDSA_P256_SHA256,
        Some(&android_root),
        BasicConstraints::Unconstrained,
    );
    let apple_root = ca(
        "Test App Attestation Root CA",
        &PKCS_ECDSA_P384_SHA384,
        None,
        BasicConstraints::Unconstrained,
    );
    let apple_ca = ca(
        "Test App Attestation CA 1",
        &PKCS_ECDSA_P384_SHA384,
        Some(&apple_root),
        BasicConstraints::Constrained(0),
    );
    Roots {
        android_root,
        android_ca,
        apple_root,
        apple_ca,
    }
}

/// A device key, usable both by rcgen (as a certificate's key) and for JWS (PoP, DPoP).
fn device_key() -> (DpopKey, KeyPair) {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("pkcs8");
    let jws = DpopKey::from_pkcs8(pkcs8.as_ref());
    let cert = KeyPair::try_from(pkcs8.as_ref()).expect("rcgen key");
    (jws, cert)
}

/// An Android KeyDescription (TEE, verified boot, locked) for this challenge and package.
fn key_description(challenge: &[u8], package: &str) -> Vec<u8> {
    let app = explicit(
        709,
        &octets(&seq(&[
            set(&[seq(&[octets(package.as_bytes()), int(1)])]),
            set(&[octets(&DIGEST)]),
        ])),
    );
    let root_of_trust = explicit(
        704,
        &seq(&[
            octets(&[1u8; 32]),
            boolean(true),
            enumerated(0),
            octets(&[2u8; 32]),
        ]),
    );
    seq(&[
        int(300),
        enumerated(1),
        int(300),
        enumerated(1),
        octets(challenge),
        octets(b""),
        seq(&[app]),
        seq(&[root_of_trust]),
    ])
}

/// The chain `KeyStore.getCertificateChain` would return, base64, leaf first.
fn android_chain(
    root: &CertifiedIssuer<'static, KeyPair>,
    ca: &CertifiedIssuer<'static, KeyPair>,
    key: &KeyPair,
    challenge: &str,
    package: &str,
) -> Vec<String> {
    let ext = CustomExtension::from_oid_content(
        KEY_DESCRIPTION_OID,
        key_description(challenge.as_bytes(), package),
    );
    let leaf = leaf_params(vec![ext]).signed_by(key, ca).expect("leaf");
    [leaf.der().to_vec(), ca.der().to_vec(), root.der().to_vec()]
        .iter()
        .map(|d| STANDARD.encode(d))
        .collect()
}

fn cbor(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).expect("cbor");
    out
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.into())
}

/// An App Attest attestation object for `app_key` over `client_data`; returns (object, key id).
fn apple_attestation(r: &Roots, app_key: &KeyPair, client_data: &str) -> (Vec<u8>, Vec<u8>) {
    let key_id = sha256(app_key.der_bytes());
    let mut auth = sha256(APP_ID.as_bytes());
    auth.push(0x40);
    auth.extend(0u32.to_be_bytes());
    auth.extend(latchkey_attestation::apple::AAGUID_PRODUCTION);
    auth.extend((key_id.len() as u16).to_be_bytes());
    auth.extend(&key_id);
    auth.push(0xa0);
    let mut data = auth.clone();
    data.extend(sha256(client_data.as_bytes()));
    let nonce = sha256(&data);
    let ext = CustomExtension::from_oid_content(NONCE_OID, seq(&[explicit(1, &octets(&nonce))]));
    let leaf = leaf_params(vec![ext])
        .signed_by(app_key, &r.apple_ca)
        .expect("leaf");
    let object = cbor(&Cbor::Map(vec![
        (text("fmt"), text("apple-appattest")),
        (
            text("attStmt"),
            Cbor::Map(vec![
                (
                    text("x5c"),
                    Cbor::Array(vec![
                        Cbor::Bytes(leaf.der().to_vec()),
                        Cbor::Bytes(r.apple_ca.der().to_vec()),
                    ]),
                ),
                (text("receipt"), Cbor::Bytes(b"receipt".to_vec())),
            ]),
        ),
        (text("authData"), Cbor::Bytes(auth)),
    ]));
    (object, key_id)
}

/// An App Attest assertion by `app_key` over `client_data` with this counter.
fn apple_assertion(app_key: &KeyPair, client_data: &str, counter: u32) -> Vec<u8> {
    let mut auth = sha256(APP_ID.as_bytes());
    auth.push(0x40);
    auth.extend(counter.to_be_bytes());
    let mut data = auth.clone();
    data.extend(sha256(client_data.as_bytes()));
    let nonce = sha256(&data);
    // rcgen's P-256 key signs ECDSA-SHA256 (DER) over the message, as CryptoKit does.
    let signature = app_key.sign(&nonce).expect("sign");
    cbor(&Cbor::Map(vec![
        (text("signature"), Cbor::Bytes(signature)),
        (text("authenticatorData"), Cbor::Bytes(auth)),
    ]))
}

/// A user and a public native client with a required attestation policy trusting `r`.
async fn attested_app(app: &TestApp, r: &Roots, mode: &str) -> Mobile {
    let m = setup(app, true).await;
    let dir = app.dir.path();
    std::fs::write(dir.join("android.pem"), r.android_root.pem()).expect("pem");
    std::fs::write(dir.join("apple.pem"), r.apple_root.pem()).expect("pem");
    let digest: String = DIGEST.iter().map(|b| format!("{b:02X}:")).collect();
    let out = app
        .cli(
            &[
                "client",
                "attestation",
                &m.client.client_id,
                "--attestation",
                mode,
                "--attest-android-package",
                PACKAGE,
                "--attest-android-cert-digest",
                digest.trim_end_matches(':'),
                "--attest-android-roots",
                dir.join("android.pem").to_str().expect("path"),
                "--attest-apple-app-id",
                APP_ID,
                "--attest-apple-roots",
                dir.join("apple.pem").to_str().expect("path"),
                "--json",
            ],
            None,
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let view: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(view["attestation"]["mode"], mode);
    m
}

async fn post_json(app: &TestApp, path: &str, body: &Value) -> Resp {
    Resp::read(
        app.http
            .post(app.url(path))
            .json(body)
            .send()
            .await
            .expect("POST"),
    )
    .await
}

async fn challenge(app: &TestApp) -> String {
    let r = Resp::read(
        app.http
            .post(app.url("/attest/challenge"))
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let c = r.json()["attestation_challenge"]
        .as_str()
        .expect("challenge")
        .to_owned();
    assert_eq!(
        r.header("oauth-client-attestation-challenge"),
        Some(c.as_str())
    );
    c
}

/// `POST /attest` with an Android chain for `key`; returns the client attestation JWT.
async fn attest_android(app: &TestApp, r: &Roots, client_id: &str, key: &KeyPair) -> String {
    let c = challenge(app).await;
    let chain = android_chain(&r.android_root, &r.android_ca, key, &c, PACKAGE);
    let resp = post_json(
        app,
        "/attest",
        &json!({"client_id": client_id, "challenge": c, "type": "android_key_attestation",
                "certificate_chain": chain}),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    resp.json()["client_attestation"]
        .as_str()
        .expect("jwt")
        .to_owned()
}

fn pop_claims(client_id: &str, aud: &str, challenge: Option<&str>) -> Value {
    let mut c = json!({"iss": client_id, "aud": aud,
                       "jti": latchkey::secret::random_token(16), "iat": now()});
    if let Some(ch) = challenge {
        c["challenge"] = json!(ch);
    }
    c
}

fn pop(key: &DpopKey, claims: &Value) -> String {
    key.sign(
        &json!({"typ": "oauth-client-attestation-pop+jwt", "alg": "ES256"}),
        claims,
    )
}

async fn post_with(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = app.http.post(app.url(path)).form(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::read(req.send().await.expect("POST")).await
}

fn assert_error(r: &Resp, status: StatusCode, code: &str, description: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(body["error_description"], description, "{body}");
}

#[actix_web::test]
async fn an_attested_android_app_signs_in_and_its_tokens_say_so() {
    let app = TestApp::spawn().await;
    let r = roots();
    let m = attested_app(&app, &r, "required").await;
    let id = m.client.client_id.clone();

    let d = app.discovery().await.json();
    assert_eq!(
        d["challenge_endpoint"],
        format!("{}/attest/challenge", app.issuer)
    );
    assert_eq!(d["attestation_endpoint"], format!("{}/attest", app.issuer));
    assert!(
        d["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("list")
            .contains(&json!("attest_jwt_client_auth"))
    );

    let (device, device_cert_key) = device_key();
    let attestation = attest_android(&app, &r, &id, &device_cert_key).await;
    let (header, claims) = jwt_parts(&attestation);
    assert_eq!(header["typ"], "oauth-client-attestation+jwt");
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["sub"], id);
    assert_eq!(
        claims["cnf"]["jwk"], device.jwk,
        "bound to the attested key"
    );
    assert_eq!(
        claims["att"],
        json!({"platform": "android", "method": "key_attestation", "level": "tee"})
    );
    assert_eq!(
        claims["exp"].as_i64(),
        claims["iat"].as_i64().map(|t| t + 86_400)
    );

    // The code flow: attestation + PoP at the token endpoint, DPoP with the same key.
    let mut b = Browser::new(&app);
    let (verifier, code_challenge) = pkce();
    let code = obtain_code(&app, &mut b, &m, &code_challenge).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_PORT),
        ("client_id", id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let token_url = format!("{}/token", app.issuer);
    let c = challenge(&app).await;
    let proof = pop(&device, &pop_claims(&id, &app.issuer, Some(&c)));
    let dpop = device.proof("POST", &token_url, None);
    let resp = post_with(
        &app,
        "/token",
        &form,
        &[
            ("OAuth-Client-Attestation", &attestation),
            ("OAuth-Client-Attestation-PoP", &proof),
            ("DPoP", &dpop),
        ],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let tokens = resp.json();
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().expect("at").to_owned();
    let (_, at) = jwt_parts(&access);
    assert_eq!(
        at["att"], claims["att"],
        "the access token says how the app was attested"
    );
    assert_eq!(at["cnf"]["jkt"], device.jkt());

    // Introspection returns it; latchkey-verify's require_attested accepts it.
    let rs = app
        .add_client(&[
            "--name",
            "rs",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
        ])
        .await;
    let info = introspect_as(&app, &rs, &access).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["att"], claims["att"]);
    let v = latchkey_verify::Verifier::from_issuer(&app.issuer, API)
        .await
        .expect("verifier");
    let api_url = format!("{API}/notes");
    let api_proof = device.proof("GET", &api_url, Some(&access));
    let verified = v
        .verify_dpop(
            &access,
            &latchkey_verify::DpopRequest {
                proof: &api_proof,
                method: "GET",
                url: &api_url,
            },
        )
        .await
        .expect("verifies");
    verified.require_attested().expect("attested");

    // Refresh: with attestation, a new token with att; the same PoP again is a replay.
    let refresh = tokens["refresh_token"].as_str().expect("rt").to_owned();
    let c = challenge(&app).await;
    let proof = pop(&device, &pop_claims(&id, &app.issuer, Some(&c)));
    let refresh_form = |rt: &str| {
        vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), rt.to_owned()),
            ("client_id".to_owned(), id.clone()),
        ]
    };
    let send = |rt: String, proof: Option<String>| {
        let app = &app;
        let device = &device;
        let attestation = attestation.clone();
        let token_url = token_url.clone();
        let form = refresh_form(&rt);
        async move {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let dpop = device.proof("POST", &token_url, None);
            let mut h: Vec<(&str, &str)> = vec![("DPoP", &dpop)];
            if let Some(p) = &proof {
                h.push(("OAuth-Client-Attestation", &attestation));
                h.push(("OAuth-Client-Attestation-PoP", p));
            }
            post_with(app, "/token", &form, &h).await
        }
    };
    let resp = send(refresh.clone(), Some(proof.clone())).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let next = resp.json();
    let (_, at2) = jwt_parts(next["access_token"].as_str().expect("at"));
    assert_eq!(at2["att"], claims["att"]);
    let next_rt = next["refresh_token"].as_str().expect("rt").to_owned();

    let replayed = send(next_rt.clone(), Some(proof)).await;
    assert_error(
        &replayed,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation PoP was already used",
    );
    // Without attestation, a client that requires it gets nothing.
    let bare = send(next_rt.clone(), None).await;
    assert_error(
        &bare,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "this client must authenticate with a client attestation (attest_jwt_client_auth)",
    );
    // The refresh token survived both refusals.
    let c = challenge(&app).await;
    let ok = send(
        next_rt,
        Some(pop(&device, &pop_claims(&id, &app.issuer, Some(&c)))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
}

#[actix_web::test]
async fn forged_stale_foreign_and_expired_attestations_are_refused_at_the_token_endpoint() {
    let app = TestApp::spawn().await;
    let r = roots();
    let m = attested_app(&app, &r, "required").await;
    let other = attested_app_named(&app, &r).await;
    let id = m.client.client_id.clone();
    let (device, cert_key) = device_key();
    let attestation = attest_android(&app, &r, &id, &cert_key).await;
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "not-a-real-token"),
        ("client_id", id.as_str()),
    ];
    let app_ref = &app;
    let form_ref = &refresh_form;
    let with = move |att: String, p: String| async move {
        post_with(
            app_ref,
            "/token",
            form_ref,
            &[
                ("OAuth-Client-Attestation", att.as_str()),
                ("OAuth-Client-Attestation-PoP", p.as_str()),
            ],
        )
        .await
    };
    let c = challenge(&app).await;

    // A correct attestation reaches the grant (which refuses the unknown refresh token).
    let ok = with(
        attestation.clone(),
        pop(&device, &pop_claims(&id, &app.issuer, Some(&c))),
    )
    .await;
    assert_eq!(ok.json()["error"], "invalid_grant", "{}", ok.text());

    // A PoP by another key.
    let (thief, _) = device_key();
    assert_error(
        &with(
            attestation.clone(),
            pop(&thief, &pop_claims(&id, &app.issuer, Some(&c))),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation PoP is not signed by the attested key",
    );
    // A PoP for another server.
    assert_error(
        &with(
            attestation.clone(),
            pop(&device, &pop_claims(&id, "https://other.example", Some(&c))),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation PoP audience is not this server",
    );
    // A PoP of the wrong type (a DPoP proof).
    assert_error(
        &with(
            attestation.clone(),
            device.proof("POST", &format!("{}/token", app.issuer), None),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation PoP typ must be oauth-client-attestation-pop+jwt",
    );
    // A PoP without a challenge, or with a forged one: use_attestation_challenge and a fresh
    // challenge in the header, which then works.
    for bad in [None, Some("Zm9yZ2Vk")] {
        let resp = with(
            attestation.clone(),
            pop(&device, &pop_claims(&id, &app.issuer, bad)),
        )
        .await;
        assert_error(
            &resp,
            StatusCode::BAD_REQUEST,
            "use_attestation_challenge",
            "a fresh attestation challenge is required in the client attestation PoP",
        );
        let fresh = resp
            .header("oauth-client-attestation-challenge")
            .expect("a fresh challenge")
            .to_owned();
        let retry = with(
            attestation.clone(),
            pop(&device, &pop_claims(&id, &app.issuer, Some(&fresh))),
        )
        .await;
        assert_eq!(retry.json()["error"], "invalid_grant", "{}", retry.text());
    }
    // An old PoP.
    let mut old = pop_claims(&id, &app.issuer, Some(&c));
    old["iat"] = json!(now() - 3600);
    assert_error(
        &with(attestation.clone(), pop(&device, &old)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation PoP is too old",
    );
    // A PoP naming another client, one that has expired, one with a crit header.
    let mut foreign_iss = pop_claims(&id, &app.issuer, Some(&c));
    foreign_iss["iss"] = json!("someone-else");
    assert_error(
        &with(attestation.clone(), pop(&device, &foreign_iss)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation PoP iss is not the client",
    );
    let mut expired_pop = pop_claims(&id, &app.issuer, Some(&c));
    expired_pop["exp"] = json!(now() - 1);
    assert_error(
        &with(attestation.clone(), pop(&device, &expired_pop)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation PoP has expired",
    );
    let crit = device.sign(
        &json!({"typ": "oauth-client-attestation-pop+jwt", "alg": "ES256", "crit": ["x"]}),
        &pop_claims(&id, &app.issuer, Some(&c)),
    );
    assert_error(
        &with(attestation.clone(), crit).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation PoP has an unsupported crit header",
    );
    // Another client's attestation (its own PoP key, its own sub).
    let (other_device, other_key) = device_key();
    let foreign = attest_android(&app, &r, &other.client.client_id, &other_key).await;
    assert_error(
        &with(
            foreign,
            pop(&other_device, &pop_claims(&id, &app.issuer, Some(&c))),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation is for another client",
    );
    // A forged attestation: the real one with its claims changed (signature no longer holds),
    // and one signed by a key of the test's own.
    let mut parts: Vec<&str> = attestation.split('.').collect();
    let (_, mut claims) = jwt_parts(&attestation);
    claims["att"]["level"] = json!("strongbox");
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts[1] = &forged_payload;
    let self_signed = device.sign(
        &json!({"typ": "oauth-client-attestation+jwt", "alg": "ES256"}),
        &claims,
    );
    for forged in [parts.join("."), self_signed, "garbage".to_owned()] {
        assert_error(
            &with(
                forged,
                pop(&device, &pop_claims(&id, &app.issuer, Some(&c))),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the client attestation is invalid or expired",
        );
    }
    // An expired attestation, genuinely signed by the server's key.
    let expired = sign_with_server_key(&app, &claims, now() - 10);
    assert_error(
        &with(
            expired,
            pop(&device, &pop_claims(&id, &app.issuer, Some(&c))),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation is invalid or expired",
    );
    // Two attestation headers.
    let resp = Resp::read(
        app.http
            .post(app.url("/token"))
            .form(&refresh_form)
            .header("OAuth-Client-Attestation", attestation.as_str())
            .header("OAuth-Client-Attestation", attestation.as_str())
            .header(
                "OAuth-Client-Attestation-PoP",
                pop(&device, &pop_claims(&id, &app.issuer, Some(&c))),
            )
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_error(
        &resp,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "send one OAuth-Client-Attestation header and one OAuth-Client-Attestation-PoP header",
    );
}

/// A second attested client of the same app.
async fn attested_app_named(app: &TestApp, r: &Roots) -> Mobile {
    let out = app
        .cli(
            &[
                "client",
                "add",
                "--name",
                "other",
                "--type",
                "public",
                "--redirect-uri",
                REDIRECT_PORT,
                "--grant",
                "authorization_code",
                "--attestation",
                "required",
                "--attest-android-package",
                PACKAGE,
                "--attest-android-cert-digest",
                &DIGEST
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
                "--attest-android-roots",
                app.dir.path().join("android.pem").to_str().expect("path"),
                "--json",
            ],
            None,
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    let _ = r;
    Mobile {
        client: crate::helpers::TestClient {
            client_id: v["client_id"].as_str().expect("id").to_owned(),
            client_secret: None,
            metadata: v,
        },
        username: String::new(),
        sub: String::new(),
    }
}

/// Signs `claims` as a client attestation with the server's own signing key, `exp` set.
fn sign_with_server_key(app: &TestApp, claims: &Value, exp: i64) -> String {
    let store = latchkey::store::Store::open(&app.config.database_url, 1).expect("store");
    let ring = latchkey::keys::KeyRing::open(&store, &app.config, now()).expect("key ring");
    let mut c = claims.clone();
    c["iat"] = json!(exp - 60);
    c["exp"] = json!(exp);
    c["att"]["level"] = json!("tee");
    ring.sign(
        app.config.access_token_alg,
        latchkey::keys::TYP_CLIENT_ATTESTATION,
        &c,
        now(),
    )
    .expect("sign")
}

#[actix_web::test]
async fn the_attestation_endpoint_refuses_what_it_cannot_trust() {
    let app = TestApp::spawn().await;
    let r = roots();
    let m = attested_app(&app, &r, "required").await;
    let id = m.client.client_id.clone();
    let (_, key) = device_key();
    let attest = |body: Value| {
        let app = &app;
        async move { post_json(app, "/attest", &body).await }
    };
    let refused = |resp: &Resp, reason: &str| {
        assert_error(
            resp,
            StatusCode::BAD_REQUEST,
            "invalid_client_attestation",
            &format!("the attestation was refused: {reason}"),
        );
    };
    let android = |c: &str, chain: Vec<String>| {
        json!({"client_id": id, "challenge": c, "type": "android_key_attestation",
               "certificate_chain": chain})
    };

    // A chain made for another challenge (itself a valid one).
    let c1 = challenge(&app).await;
    let chain = android_chain(
        &r.android_root,
        &r.android_ca,
        &key,
        "another challenge",
        PACKAGE,
    );
    refused(&attest(android(&c1, chain)).await, "challenge_mismatch");
    // Another app's package.
    let chain = android_chain(&r.android_root, &r.android_ca, &key, &c1, "com.evil.app");
    refused(&attest(android(&c1, chain)).await, "package_not_allowed");
    // A chain under a root the client does not trust (Google's would be the default).
    let stranger_root = ca(
        "Stranger Root",
        &PKCS_ECDSA_P256_SHA256,
        None,
        BasicConstraints::Unconstrained,
    );
    let stranger_ca = ca(
        "Stranger Intermediate",
        &PKCS_ECDSA_P256_SHA256,
        Some(&stranger_root),
        BasicConstraints::Unconstrained,
    );
    let chain = android_chain(&stranger_root, &stranger_ca, &key, &c1, PACKAGE);
    refused(&attest(android(&c1, chain)).await, "chain_untrusted");
    // A statement is used once.
    let chain = android_chain(&r.android_root, &r.android_ca, &key, &c1, PACKAGE);
    assert_eq!(
        attest(android(&c1, chain.clone())).await.status,
        StatusCode::OK
    );
    refused(&attest(android(&c1, chain)).await, "statement_replayed");
    // On Android the bound key is the attested key: another jwk is refused.
    let (other_device, _) = device_key();
    let chain = android_chain(&r.android_root, &r.android_ca, &key, &c1, PACKAGE);
    let mut body = android(&c1, chain);
    body["jwk"] = other_device.jwk.clone();
    let resp = attest(body).await;
    assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "jwk differs from the attested key (on Android the attested key is the bound key)",
    );
    // A forged challenge.
    let chain = android_chain(&r.android_root, &r.android_ca, &key, "Zm9yZ2Vk", PACKAGE);
    let resp = attest(android("Zm9yZ2Vk", chain)).await;
    assert_eq!(
        resp.json()["error"],
        "use_attestation_challenge",
        "{}",
        resp.text()
    );
    // Garbage: never a 5xx.
    for body in [
        json!({"client_id": id, "challenge": c1, "type": "android_key_attestation",
               "certificate_chain": ["!!!"]}),
        json!({"client_id": id, "challenge": c1, "type": "android_key_attestation",
               "certificate_chain": [STANDARD.encode(b"not DER")]}),
        json!({"client_id": id, "challenge": c1, "type": "apple_app_attest",
               "key_id": "AAAA", "attestation": STANDARD.encode(b"\xa1\x00"),
               "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}),
        json!({"client_id": id, "challenge": c1, "type": "sms"}),
        json!({"client_id": id, "challenge": c1, "type": "android_key_attestation",
               "extra": 1}),
        json!("just a string"),
    ] {
        let resp = attest(body.clone()).await;
        assert!(
            resp.status == StatusCode::BAD_REQUEST,
            "{body}: {} {}",
            resp.status,
            resp.text()
        );
    }
    // A client without attestation, and an unknown one: the same invalid_client.
    let plain = app
        .add_client(&[
            "--name",
            "plain",
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT_PORT,
        ])
        .await;
    for client in [plain.client_id.as_str(), "nobody"] {
        let c = challenge(&app).await;
        let chain = android_chain(&r.android_root, &r.android_ca, &key, &c, PACKAGE);
        let mut body = android(&c, chain);
        body["client_id"] = json!(client);
        assert_error(
            &attest(body).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client attestation is not enabled for this client",
        );
    }
    // And such a client may not send attestation headers to the token endpoint.
    let resp = post_with(
        &app,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", plain.client_id.as_str()),
        ],
        &[
            ("OAuth-Client-Attestation", "a.b.c"),
            ("OAuth-Client-Attestation-PoP", "a.b.c"),
        ],
    )
    .await;
    assert_error(
        &resp,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client attestation is not enabled for this client",
    );
}

#[actix_web::test]
async fn an_app_attest_key_is_attested_once_then_proved_by_growing_assertions_at_par() {
    let app = TestApp::spawn().await;
    let r = roots();
    let m = attested_app(&app, &r, "required").await;
    let id = m.client.client_id.clone();
    let (device, _) = device_key();
    let (_, app_key) = device_key();
    let jkt = device.jkt();

    let c = challenge(&app).await;
    let (object, key_id) = apple_attestation(&r, &app_key, &format!("{c}.{jkt}"));
    let body = json!({"client_id": id, "challenge": c, "type": "apple_app_attest",
                      "key_id": STANDARD.encode(&key_id), "attestation": STANDARD.encode(&object),
                      "jwk": device.jwk});
    let resp = post_json(&app, "/attest", &body).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let (_, claims) = jwt_parts(resp.json()["client_attestation"].as_str().expect("jwt"));
    assert_eq!(
        claims["att"],
        json!({"platform": "ios", "method": "app_attest", "level": "production"})
    );
    assert_eq!(claims["cnf"]["jwk"], device.jwk);

    // The client data binds the key: the same object for another key is refused.
    let (thief, _) = device_key();
    let c2 = challenge(&app).await;
    let (object2, key_id2) = apple_attestation(&r, &app_key, &format!("{c2}.{jkt}"));
    let mut swapped = json!({"client_id": id, "challenge": c2, "type": "apple_app_attest",
                             "key_id": STANDARD.encode(&key_id2),
                             "attestation": STANDARD.encode(&object2), "jwk": thief.jwk});
    let resp = post_json(&app, "/attest", &swapped).await;
    assert_error(
        &resp,
        StatusCode::BAD_REQUEST,
        "invalid_client_attestation",
        "the attestation was refused: nonce_mismatch",
    );
    swapped["jwk"] = device.jwk.clone();
    assert_eq!(
        post_json(&app, "/attest", &swapped).await.status,
        StatusCode::OK
    );

    // Assertions: counter 1 works, then 1 again is refused, 2 works.
    let assertion = |counter: u32, c: &str| {
        json!({"client_id": id, "challenge": c, "type": "apple_app_attest_assertion",
               "key_id": STANDARD.encode(&key_id),
               "assertion": STANDARD.encode(apple_assertion(&app_key, &format!("{c}.{jkt}"), counter)),
               "jwk": device.jwk})
    };
    let c3 = challenge(&app).await;
    let resp = post_json(&app, "/attest", &assertion(1, &c3)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let from_assertion = resp.json()["client_attestation"]
        .as_str()
        .expect("jwt")
        .to_owned();
    for replay in [assertion(1, &c3), assertion(1, &challenge(&app).await)] {
        assert_error(
            &post_json(&app, "/attest", &replay).await,
            StatusCode::BAD_REQUEST,
            "invalid_client_attestation",
            "the attestation was refused: counter_not_increasing",
        );
    }
    assert_eq!(
        post_json(&app, "/attest", &assertion(2, &challenge(&app).await))
            .await
            .status,
        StatusCode::OK
    );
    // An assertion by another key, and for a key never attested.
    let (_, stranger) = device_key();
    let c4 = challenge(&app).await;
    let mut forged = assertion(3, &c4);
    forged["assertion"] =
        json!(STANDARD.encode(apple_assertion(&stranger, &format!("{c4}.{jkt}"), 3)));
    assert_error(
        &post_json(&app, "/attest", &forged).await,
        StatusCode::BAD_REQUEST,
        "invalid_client_attestation",
        "the attestation was refused: bad_signature",
    );
    forged["key_id"] = json!(STANDARD.encode(sha256(b"unknown")));
    assert_error(
        &post_json(&app, "/attest", &forged).await,
        StatusCode::BAD_REQUEST,
        "invalid_client_attestation",
        "the attestation was refused: key_not_attested",
    );

    // PAR: the attested app pushes its request; without attestation it cannot.
    let (_, code_challenge) = pkce();
    let form = [
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT_PORT),
        ("scope", "openid"),
        ("code_challenge", code_challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let c5 = challenge(&app).await;
    let proof = pop(&device, &pop_claims(&id, &app.issuer, Some(&c5)));
    let resp = post_with(
        &app,
        "/par",
        &form,
        &[
            ("OAuth-Client-Attestation", &from_assertion),
            ("OAuth-Client-Attestation-PoP", &proof),
        ],
    )
    .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let resp = post_with(&app, "/par", &form, &[]).await;
    assert_error(
        &resp,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "this client must authenticate with a client attestation (attest_jwt_client_auth)",
    );
}

#[actix_web::test]
async fn an_optional_policy_marks_attested_tokens_and_refuses_nothing_else() {
    let app = TestApp::spawn().await;
    let r = roots();
    let m = attested_app(&app, &r, "optional").await;
    assert_eq!(m.client.metadata["token_endpoint_auth_method"], "none");
    let tokens = crate::browser::login_tokens(&app, &m).await;
    let (_, at) = jwt_parts(tokens["access_token"].as_str().expect("at"));
    assert!(at.get("att").is_none(), "no attestation, no att: {at}");
    let v = latchkey_verify::Verifier::from_issuer(&app.issuer, API)
        .await
        .expect("verifier");
    let verified = v
        .verify(tokens["access_token"].as_str().expect("at"))
        .await
        .expect("verifies");
    assert!(
        verified.require_attested().is_err(),
        "an unattested token is refused"
    );

    // An administrator narrows the policy: an attestation issued before no longer works.
    let (device, key) = device_key();
    let attestation = attest_android(&app, &r, &m.client.client_id, &key).await;
    let out = app
        .cli(
            &[
                "client",
                "attestation",
                &m.client.client_id,
                "--attestation",
                "optional",
                "--attest-apple-app-id",
                APP_ID,
            ],
            None,
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let c = challenge(&app).await;
    let resp = post_with(
        &app,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", m.client.client_id.as_str()),
        ],
        &[
            ("OAuth-Client-Attestation", &attestation),
            (
                "OAuth-Client-Attestation-PoP",
                &pop(
                    &device,
                    &pop_claims(&m.client.client_id, &app.issuer, Some(&c)),
                ),
            ),
        ],
    )
    .await;
    assert_error(
        &resp,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client attestation no longer satisfies this client's policy",
    );
}

#[actix_web::test]
async fn attestation_policies_are_for_administrators_and_public_clients() {
    let app = TestApp::spawn().await;
    // The CLI refuses a policy on a confidential client, and a malformed one.
    for args in [
        vec![
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--attestation",
            "required",
            "--attest-apple-app-id",
            APP_ID,
        ],
        vec![
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT_PORT,
            "--attestation",
            "required",
        ],
        vec![
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT_PORT,
            "--attestation",
            "required",
            "--attest-apple-app-id",
            "not-an-app-id",
        ],
        vec![
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT_PORT,
            "--attest-apple-app-id",
            APP_ID,
        ],
    ] {
        let mut full = vec!["client", "add", "--name", "x"];
        full.extend(args.iter().copied());
        let out = app.cli(&full, None).await;
        assert_ne!(out.code, Some(0), "{args:?} should be refused: {out:?}");
    }
    // The admin API sets it (and says so); /register ignores it.
    let (_, admin) = crate::admin_api::admin_token(&app).await;
    let body = json!({"client_name": "ios", "token_endpoint_auth_method": "attest_jwt_client_auth",
                      "redirect_uris": [REDIRECT_PORT], "grant_types": ["authorization_code"],
                      "attestation": {"mode": "required", "apple_app_ids": [APP_ID]}});
    let create = |b: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            crate::admin_api::call(
                app,
                reqwest::Method::POST,
                "/admin/v1/clients",
                Some(admin),
                Some(b),
            )
            .await
        }
    };
    let resp = create(body.clone()).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let made = resp.json();
    assert_eq!(made["token_endpoint_auth_method"], "attest_jwt_client_auth");
    assert_eq!(made["attestation"]["apple_app_ids"], json!([APP_ID]));
    let mut no_policy = body.clone();
    no_policy
        .as_object_mut()
        .expect("object")
        .remove("attestation");
    let resp = create(no_policy).await;
    assert_eq!(
        resp.json()["error"],
        "invalid_client_metadata",
        "{}",
        resp.text()
    );

    let open = crate::registration::initial_token(&app, &[]).await;
    let open = open["initial_access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut dynamic = body.clone();
    dynamic["token_endpoint_auth_method"] = json!("none");
    let resp = crate::registration::register(&app, Some(&open), &dynamic).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    assert_eq!(
        resp.json()["attestation"],
        Value::Null,
        "ignored at /register"
    );
}
