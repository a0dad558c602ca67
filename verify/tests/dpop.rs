//! DPoP (RFC 9449) for resource servers: `Verifier::verify_dpop` and the actix-web extractor
//! with `Authorization: DPoP`. Every refusal is checked for its exact error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::test as atest;
use actix_web::{App, HttpResponse, web};
use common::*;
use latchkey_verify::actix::{RequireScope, VerifiedToken};
use latchkey_verify::{DpopRequest, Scheme, Verifier, VerifyError, normalize_htu};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.example.test";
const URL: &str = "https://api.example.test/me";

/// The public JWK of a key, as a client puts it in a proof (no kid, use or alg needed).
fn public_jwk(key: &TestKey) -> Value {
    let mut j = key.jwk.clone();
    let o = j.as_object_mut().unwrap();
    o.remove("kid");
    o.remove("use");
    o.remove("alg");
    j
}

/// RFC 7638 thumbprint, computed here independently.
fn jkt(key: &TestKey) -> String {
    let j = &key.jwk;
    let s = |k: &str| serde_json::to_string(j[k].as_str().unwrap()).unwrap();
    let canonical = match j["kty"].as_str().unwrap() {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s("e"), s("n")),
        _ => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, s("crv"), s("x")),
    };
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

fn ath(token: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

fn proof_claims(method: &str, url: &str, token: &str) -> Value {
    json!({
        "jti": format!("jti-{}", b64(&rand_bytes())),
        "htm": method,
        "htu": url,
        "iat": now(),
        "ath": ath(token),
    })
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

fn dpop_header(key: &TestKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.alg, "jwk": public_jwk(key)})
}

/// A proof by `key` for `method` `url` and `token`.
fn proof(key: &TestKey, method: &str, url: &str, token: &str) -> String {
    key.token_with_header(&dpop_header(key), &proof_claims(method, url, token))
}

/// The signing key of the issuer, a verifier over its JWKS, and a token bound to `holder`.
struct Setup {
    issuer_key: TestKey,
    verifier: Verifier,
}

impl Setup {
    fn new() -> Setup {
        Self::with(|b| b)
    }

    fn with(
        configure: impl FnOnce(latchkey_verify::VerifierBuilder) -> latchkey_verify::VerifierBuilder,
    ) -> Setup {
        let issuer_key = TestKey::es256("ec-1");
        let verifier = configure(Verifier::builder(ISSUER, AUDIENCE))
            .build_static(jwks(&[&issuer_key]).as_bytes())
            .unwrap();
        Setup {
            issuer_key,
            verifier,
        }
    }

    /// An access token bound to `holder`'s key.
    fn bound_token(&self, holder: &TestKey) -> String {
        self.issuer_key
            .token(&with(claims(ISSUER), json!({"cnf": {"jkt": jkt(holder)}})))
    }

    fn check(&self, token: &str, proof: &str, method: &str, url: &str) -> Result<(), VerifyError> {
        self.verifier
            .verify_dpop_cached(token, &DpopRequest { proof, method, url })
            .map(|_| ())
    }
}

#[test]
fn a_good_proof_with_its_bound_token_is_accepted_for_every_algorithm() {
    let s = Setup::new();
    for holder in [
        TestKey::es256("h"),
        TestKey::es384("h"),
        TestKey::eddsa("h"),
        TestKey::rsa("h", "RS256"),
        TestKey::rsa("h", "PS256"),
    ] {
        let token = s.bound_token(&holder);
        let p = proof(&holder, "GET", URL, &token);
        let claims = s
            .verifier
            .verify_dpop_cached(
                &token,
                &DpopRequest {
                    proof: &p,
                    method: "GET",
                    url: "https://API.example.test:443/me?page=2",
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", holder.alg));
        assert_eq!(claims.cnf.unwrap().jkt.unwrap(), jkt(&holder));
    }
}

#[tokio::test]
async fn the_async_entry_point_agrees() {
    let s = Setup::new();
    let holder = TestKey::es256("h");
    let token = s.bound_token(&holder);
    let p = proof(&holder, "POST", URL, &token);
    let req = DpopRequest {
        proof: &p,
        method: "POST",
        url: URL,
    };
    assert!(s.verifier.verify_dpop(&token, &req).await.is_ok());
    assert_eq!(
        s.verifier.verify_dpop(&token, &req).await,
        Err(VerifyError::InvalidDpopProof(
            "the DPoP proof was already used"
        ))
    );
}

#[test]
fn a_stolen_bound_token_is_useless_as_bearer_and_with_the_thiefs_key() {
    let s = Setup::new();
    let holder = TestKey::es256("h");
    let token = s.bound_token(&holder);
    assert_eq!(
        s.verifier.verify_cached(&token),
        Err(VerifyError::SenderConstrained)
    );
    let thief = TestKey::es256("t");
    assert_eq!(
        s.check(&token, &proof(&thief, "GET", URL, &token), "GET", URL),
        Err(VerifyError::DpopKeyMismatch)
    );
    // A proof claiming the holder's public key but signed by the thief.
    let forged = {
        let input = signing_input(&dpop_header(&holder), &proof_claims("GET", URL, &token));
        format!("{input}.{}", b64(&thief.sign(input.as_bytes())))
    };
    assert_eq!(
        s.check(&token, &forged, "GET", URL),
        Err(VerifyError::InvalidDpopProof(
            "the DPoP proof signature is invalid"
        ))
    );
    // An unbound token with the DPoP scheme.
    let unbound = s.issuer_key.token(&claims(ISSUER));
    assert_eq!(
        s.check(&unbound, &proof(&holder, "GET", URL, &unbound), "GET", URL),
        Err(VerifyError::NotDpopBound)
    );
}

#[test]
fn every_bad_proof_is_invalid_dpop_proof() {
    let s = Setup::new();
    let holder = TestKey::es256("h");
    let token = s.bound_token(&holder);
    let t = now();
    let signed = |header: Value, changes: Value| {
        holder.token_with_header(&header, &with(proof_claims("GET", URL, &token), changes))
    };
    let h = dpop_header(&holder);
    let mut private = public_jwk(&holder);
    private["d"] = json!(b64(&[1u8; 32]));
    let hs256 = {
        let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": public_jwk(&holder)});
        let input = signing_input(&header, &proof_claims("GET", URL, &token));
        let sig = hmac_sha256(public_jwk(&holder).to_string().as_bytes(), input.as_bytes());
        format!("{input}.{}", b64(&sig))
    };
    let none = format!(
        "{}.",
        signing_input(
            &json!({"typ": "dpop+jwt", "alg": "none", "jwk": public_jwk(&holder)}),
            &proof_claims("GET", URL, &token)
        )
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another URL",
            signed(h.clone(), json!({"htu": "https://api.example.test/admin"})),
            "the DPoP proof is for another URL",
        ),
        (
            "another host",
            signed(h.clone(), json!({"htu": "https://evil.example/me"})),
            "the DPoP proof is for another URL",
        ),
        (
            "http instead of https",
            signed(h.clone(), json!({"htu": "http://api.example.test/me"})),
            "the DPoP proof is for another URL",
        ),
        (
            "another method",
            signed(h.clone(), json!({"htm": "POST"})),
            "the DPoP proof is for another HTTP method",
        ),
        (
            "too old",
            signed(h.clone(), json!({"iat": t - 61})),
            "the DPoP proof is too old",
        ),
        (
            "from the future",
            signed(h.clone(), json!({"iat": t + 120})),
            "the DPoP proof was issued in the future",
        ),
        (
            "no ath",
            signed(h.clone(), json!({"ath": null})),
            "the DPoP proof ath does not match the access token",
        ),
        (
            "another token's ath",
            signed(h.clone(), json!({"ath": ath("x.y.z")})),
            "the DPoP proof ath does not match the access token",
        ),
        (
            "no jti",
            signed(h.clone(), json!({"jti": null})),
            "the DPoP proof jti is missing or too long",
        ),
        (
            "huge jti",
            signed(h.clone(), json!({"jti": "j".repeat(1000)})),
            "the DPoP proof jti is missing or too long",
        ),
        (
            "no htu",
            signed(h.clone(), json!({"htu": null})),
            "the DPoP proof has no htu",
        ),
        (
            "no iat",
            signed(h.clone(), json!({"iat": null})),
            "the DPoP proof has no valid iat",
        ),
        (
            "private key",
            signed(
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
                json!({}),
            ),
            "the DPoP proof jwk must not contain a private key",
        ),
        (
            "typ JWT",
            signed(
                json!({"typ": "JWT", "alg": "ES256", "jwk": public_jwk(&holder)}),
                json!({}),
            ),
            "the DPoP proof typ must be dpop+jwt",
        ),
        (
            "no jwk",
            signed(json!({"typ": "dpop+jwt", "alg": "ES256"}), json!({})),
            "the DPoP proof header has no jwk",
        ),
        (
            "alg/key mismatch",
            signed(
                json!({"typ": "dpop+jwt", "alg": "ES384", "jwk": public_jwk(&holder)}),
                json!({}),
            ),
            "the DPoP proof jwk curve does not match alg",
        ),
        (
            "crit",
            signed(
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&holder), "crit": ["x"]}),
                json!({}),
            ),
            "the DPoP proof has an unsupported crit header",
        ),
        ("HS256", hs256, "the DPoP proof algorithm is not accepted"),
        ("alg none", none, "the DPoP proof algorithm is not accepted"),
        (
            "garbage",
            "garbage".into(),
            "the DPoP proof is not a compact JWS",
        ),
        (
            "huge",
            "a.b.".repeat(3000),
            "the DPoP proof is empty or too long",
        ),
    ];
    for (what, p, want) in cases {
        assert_eq!(
            s.check(&token, &p, "GET", URL),
            Err(VerifyError::InvalidDpopProof(want)),
            "{what}"
        );
    }
    let e = VerifyError::InvalidDpopProof("x");
    assert_eq!(e.status(), 401);
    assert_eq!(e.error_code(), Some("invalid_dpop_proof"));
    assert_eq!(
        e.www_authenticate_dpop("ES256 PS256"),
        "DPoP error=\"invalid_dpop_proof\", error_description=\"x\", algs=\"ES256 PS256\""
    );
}

#[test]
fn a_replayed_proof_is_refused_and_the_cache_is_bounded() {
    let s = Setup::with(|b| b.dpop_replay_cache_capacity(8));
    let holder = TestKey::es256("h");
    let token = s.bound_token(&holder);
    let p = proof(&holder, "GET", URL, &token);
    assert_eq!(s.check(&token, &p, "GET", URL), Ok(()));
    assert_eq!(
        s.check(&token, &p, "GET", URL),
        Err(VerifyError::InvalidDpopProof(
            "the DPoP proof was already used"
        ))
    );
    // One bucket of 8 slots: 7 more proofs fit, the next one is refused (fail closed, 503).
    for _ in 0..7 {
        assert_eq!(
            s.check(&token, &proof(&holder, "GET", URL, &token), "GET", URL),
            Ok(())
        );
    }
    let refused = s.check(&token, &proof(&holder, "GET", URL, &token), "GET", URL);
    assert_eq!(refused, Err(VerifyError::DpopReplayCacheFull));
    assert_eq!(VerifyError::DpopReplayCacheFull.status(), 503);
}

#[test]
fn the_algorithm_allow_list_and_the_max_age_are_configurable() {
    let s = Setup::with(|b| {
        b.dpop_algorithms(["ES256"])
            .dpop_proof_max_age(Duration::from_secs(5))
    });
    assert_eq!(s.verifier.dpop_algorithms(), "ES256");
    let ed = TestKey::eddsa("h");
    let token = s.bound_token(&ed);
    assert_eq!(
        s.check(&token, &proof(&ed, "GET", URL, &token), "GET", URL),
        Err(VerifyError::InvalidDpopProof(
            "the DPoP proof algorithm is not accepted"
        ))
    );
    let ec = TestKey::es256("h");
    let token = s.bound_token(&ec);
    let old = ec.token_with_header(
        &dpop_header(&ec),
        &with(proof_claims("GET", URL, &token), json!({"iat": now() - 10})),
    );
    assert_eq!(
        s.check(&token, &old, "GET", URL),
        Err(VerifyError::InvalidDpopProof("the DPoP proof is too old"))
    );
    for bad in [vec!["HS256"], vec!["none"], vec!["ES512"]] {
        let r = Verifier::builder(ISSUER, AUDIENCE)
            .dpop_algorithms(bad.clone())
            .build_static(jwks(&[&ec]).as_bytes());
        assert!(r.is_err(), "{bad:?}");
    }
    assert!(
        Verifier::builder(ISSUER, AUDIENCE)
            .public_base_url("not a url")
            .build_static(jwks(&[&ec]).as_bytes())
            .is_err()
    );
}

#[test]
fn htu_is_compared_normalized() {
    assert_eq!(
        normalize_htu("HTTPS://API.example.test:443/a/../me?x#y"),
        normalize_htu("https://api.example.test/me")
    );
    assert_ne!(
        normalize_htu("https://api.example.test/me"),
        normalize_htu("https://api.example.test:8443/me")
    );
}

// ---------------------------------------------------------------------------------------------
// The actix-web extractor

async fn me(token: VerifiedToken) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sub": token.sub,
        "dpop": token.scheme() == Scheme::Dpop,
    }))
}

macro_rules! app {
    ($verifier:expr) => {
        atest::init_service(
            App::new()
                .app_data($verifier.clone())
                .service(
                    web::resource("/me")
                        .wrap(RequireScope::new("api:read"))
                        .route(web::get().to(me)),
                )
                .service(
                    web::resource("/admin")
                        .wrap(RequireScope::new("api:admin"))
                        .route(web::get().to(me)),
                ),
        )
        .await
    };
}

struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    body: Value,
}

async fn call(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    req: atest::TestRequest,
) -> Answer {
    let resp = atest::call_service(app, req.to_request()).await;
    let status = resp.status();
    let challenges = resp
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = atest::read_body(resp).await;
    Answer {
        status,
        challenges,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

fn dpop_get(path: &str, token: &str, proof: Option<&str>) -> atest::TestRequest {
    let mut r = atest::TestRequest::get()
        .uri(path)
        .insert_header((header::AUTHORIZATION, format!("DPoP {token}")));
    if let Some(p) = proof {
        r = r.insert_header(("DPoP", p.to_owned()));
    }
    r
}

#[actix_web::test]
async fn the_extractor_accepts_dpop_and_answers_each_refusal_in_the_right_scheme() {
    let s = Setup::with(|b| b.public_base_url("https://api.example.test/"));
    let app = app!(s.verifier);
    let holder = TestKey::es256("h");
    let token = s.bound_token(&holder);

    let ok = call(
        &app,
        dpop_get("/me", &token, Some(&proof(&holder, "GET", URL, &token))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.body, json!({"sub": "user-42", "dpop": true}));

    // The URL comes from the configured public base URL, not from the Host header.
    let local = call(
        &app,
        dpop_get(
            "/me",
            &token,
            Some(&proof(&holder, "GET", "http://localhost:8080/me", &token)),
        )
        .insert_header((header::HOST, "localhost:8080")),
    )
    .await;
    assert_eq!(local.status, StatusCode::UNAUTHORIZED);
    assert_eq!(local.body["error"], "invalid_dpop_proof");

    // No proof: invalid_dpop_proof in a DPoP challenge with algs.
    let r = call(&app, dpop_get("/me", &token, None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"], "invalid_dpop_proof");
    assert_eq!(r.challenges.len(), 1, "{:?}", r.challenges);
    assert!(
        r.challenges[0].starts_with("DPoP error=\"invalid_dpop_proof\"")
            && r.challenges[0].ends_with("algs=\"ES256 ES384 EdDSA RS256 PS256\""),
        "{:?}",
        r.challenges
    );
    // Two proofs.
    let r = call(
        &app,
        dpop_get("/me", &token, Some(&proof(&holder, "GET", URL, &token)))
            .append_header(("DPoP", proof(&holder, "GET", URL, &token))),
    )
    .await;
    assert_eq!(r.body["error"], "invalid_dpop_proof");

    // The bound token stolen and presented as a bearer token.
    let r = call(
        &app,
        atest::TestRequest::get()
            .uri("/me")
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"], "invalid_token");
    assert!(r.challenges[0].starts_with("Bearer error=\"invalid_token\""));
    assert_eq!(
        r.challenges[1],
        "DPoP algs=\"ES256 ES384 EdDSA RS256 PS256\""
    );

    // The thief's own key: invalid_token (binding), in the DPoP challenge.
    let thief = TestKey::es256("t");
    let r = call(
        &app,
        dpop_get("/me", &token, Some(&proof(&thief, "GET", URL, &token))),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.challenges[0].starts_with("DPoP error=\"invalid_token\""),
        "{:?}",
        r.challenges
    );

    // A replayed request.
    let p = proof(&holder, "GET", URL, &token);
    assert_eq!(
        call(&app, dpop_get("/me", &token, Some(&p))).await.status,
        StatusCode::OK
    );
    let r = call(&app, dpop_get("/me", &token, Some(&p))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"], "invalid_dpop_proof");

    // A proof for /me used at /admin, and a good proof without the scope: 403 in DPoP.
    let r = call(
        &app,
        dpop_get("/admin", &token, Some(&proof(&holder, "GET", URL, &token))),
    )
    .await;
    assert_eq!(r.body["error"], "invalid_dpop_proof");
    let r = call(
        &app,
        dpop_get(
            "/admin",
            &token,
            Some(&proof(
                &holder,
                "GET",
                "https://api.example.test/admin",
                &token,
            )),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.challenges[0].starts_with("DPoP error=\"insufficient_scope\""),
        "{:?}",
        r.challenges
    );

    // No credentials: both schemes offered, no error.
    let r = call(&app, atest::TestRequest::get().uri("/me")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.challenges,
        ["Bearer", "DPoP algs=\"ES256 ES384 EdDSA RS256 PS256\""]
    );
}

#[actix_web::test]
async fn without_a_public_base_url_the_host_header_names_the_url() {
    let s = Setup::new();
    let app = app!(s.verifier);
    let holder = TestKey::es256("h");
    let token = s.bound_token(&holder);
    let url = "http://api.internal:8081/me";
    let r = call(
        &app,
        dpop_get("/me", &token, Some(&proof(&holder, "GET", url, &token)))
            .insert_header((header::HOST, "api.internal:8081")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}
