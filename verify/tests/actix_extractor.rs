//! The actix-web extractor and scope guard: exact statuses and `WWW-Authenticate` values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpResponse, test, web};
use common::*;
use latchkey_verify::Verifier;
use latchkey_verify::actix::{RequireScope, VerifiedToken};
use serde_json::{Value, json};

async fn me(token: VerifiedToken) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": token.sub, "scope": token.scope}))
}

async fn whoami(token: VerifiedToken) -> HttpResponse {
    HttpResponse::Ok().body(token.into_claims().client_id)
}

const INVALID_TOKEN: &str = "Bearer error=\"invalid_token\", error_description=";

macro_rules! app {
    ($verifier:expr) => {
        test::init_service(
            App::new()
                .app_data($verifier.clone())
                .service(
                    web::resource("/me")
                        .wrap(RequireScope::new("api:read"))
                        .route(web::get().to(me)),
                )
                .service(
                    web::resource("/admin")
                        .wrap(RequireScope::all(["api:read", "api:admin"]))
                        .route(web::get().to(me)),
                )
                .route("/whoami", web::get().to(whoami)),
        )
        .await
    };
}

struct Answer {
    status: StatusCode,
    www_authenticate: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn answer(resp: actix_web::dev::ServiceResponse) -> Answer {
    let status = resp.status();
    let www_authenticate = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = test::read_body(resp).await.to_vec();
    Answer {
        status,
        www_authenticate,
        body,
    }
}

async fn call(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    req: test::TestRequest,
) -> Answer {
    answer(test::call_service(app, req.to_request()).await).await
}

fn get(path: &str) -> test::TestRequest {
    test::TestRequest::get().uri(path)
}

fn bearer(path: &str, token: &str) -> test::TestRequest {
    get(path).insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
}

async fn setup() -> (TestKey, MockIssuer, Verifier) {
    let key = TestKey::es256("ec-1");
    let mock = MockIssuer::start(jwks(&[&key]));
    let verifier = Verifier::from_jwks_url(mock.jwks_url(), mock.issuer(), AUDIENCE)
        .await
        .unwrap();
    (key, mock, verifier)
}

#[actix_web::test]
async fn valid_token_with_scope_is_served() {
    let (key, mock, verifier) = setup().await;
    let app = app!(verifier);
    let answer = call(&app, bearer("/me", &key.token(&claims(&mock.issuer())))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"sub": "user-42", "scope": "openid api:read"})
    );
    // The plain extractor, without a guard.
    let answer = call(&app, bearer("/whoami", &key.token(&claims(&mock.issuer())))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, b"mobile-app");
}

#[actix_web::test]
async fn missing_token_is_401_with_a_bare_challenge() {
    let (_key, _mock, verifier) = setup().await;
    let app = app!(verifier);
    for req in [
        get("/me"),
        get("/whoami"),
        get("/me").insert_header((header::AUTHORIZATION, "Basic dXNlcjpwYXNz")),
    ] {
        let answer = call(&app, req).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
        assert!(answer.body.is_empty());
    }
    // The DPoP scheme is understood (RFC 9449): without a proof it is an invalid_dpop_proof,
    // answered in a DPoP challenge (verify/tests/dpop.rs has the rest).
    let answer = call(
        &app,
        get("/me").insert_header((header::AUTHORIZATION, "DPoP abc.def.ghi")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .www_authenticate
            .as_deref()
            .is_some_and(|c| c.starts_with("DPoP error=\"invalid_dpop_proof\"")),
        "{:?}",
        answer.www_authenticate
    );
}

#[actix_web::test]
async fn malformed_requests_are_400_invalid_request() {
    let (key, mock, verifier) = setup().await;
    let app = app!(verifier);
    let token = key.token(&claims(&mock.issuer()));
    let cases = [
        (
            get("/me").insert_header((header::AUTHORIZATION, "Bearer")),
            "the bearer token is missing",
        ),
        (
            get("/me").insert_header((header::AUTHORIZATION, "Bearer a b")),
            "the bearer token is malformed",
        ),
        (
            bearer("/me", &token).append_header((header::AUTHORIZATION, format!("Bearer {token}"))),
            "more than one Authorization header",
        ),
        (
            get(&format!("/me?access_token={token}")),
            "access tokens are not accepted in the URL",
        ),
    ];
    for (req, description) in cases {
        let answer = call(&app, req).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{description}");
        assert_eq!(
            answer.www_authenticate.as_deref().unwrap(),
            format!("Bearer error=\"invalid_request\", error_description=\"{description}\"")
        );
        assert_eq!(
            answer.json(),
            json!({"error": "invalid_request", "error_description": description})
        );
    }
}

#[actix_web::test]
async fn bad_tokens_are_401_invalid_token() {
    let (key, mock, verifier) = setup().await;
    let app = app!(verifier);
    let iss = mock.issuer();
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": "ec-1"});
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "ec-1"});
    let hs_input = signing_input(&hs_header, &claims(&iss));
    let cases = [
        (
            format!("{}.", signing_input(&none_header, &claims(&iss))),
            "the access token algorithm is not accepted",
        ),
        (
            format!(
                "{hs_input}.{}",
                b64(&hmac_sha256(&key.public_bytes, hs_input.as_bytes()))
            ),
            "the access token algorithm is not accepted",
        ),
        (
            TestKey::es256("ec-1").token(&claims(&iss)),
            "the access token signature is invalid",
        ),
        (
            key.token(&with(claims(&iss), json!({"exp": now() - 3600}))),
            "the access token expired",
        ),
        (
            key.token(&with(claims(&iss), json!({"aud": "https://other"}))),
            "the access token is not intended for this resource",
        ),
        (
            key.token(&with(claims(&iss), json!({"iss": "https://evil"}))),
            "the access token issuer is not trusted",
        ),
        (
            key.token_with_header(
                &json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"}),
                &claims(&iss),
            ),
            "the token is not an access token (typ must be at+jwt)",
        ),
        (
            key.token(&with(claims(&iss), json!({"cnf": {"jkt": "abc"}}))),
            "the access token is sender-constrained and cannot be used as a bearer token",
        ),
        ("abc.def".to_owned(), "the access token is malformed"),
    ];
    for (token, description) in cases {
        for path in ["/me", "/whoami"] {
            let answer = call(&app, bearer(path, &token)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{description}");
            assert_eq!(
                answer.www_authenticate.as_deref().unwrap(),
                format!("{INVALID_TOKEN}\"{description}\"")
            );
            assert_eq!(
                answer.json(),
                json!({"error": "invalid_token", "error_description": description})
            );
        }
    }
}

#[actix_web::test]
async fn missing_scope_is_403_insufficient_scope() {
    let (key, mock, verifier) = setup().await;
    let app = app!(verifier);
    let token = key.token(&with(
        claims(&mock.issuer()),
        json!({"scope": "openid api:readonly"}),
    ));
    let answer = call(&app, bearer("/me", &token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks the required scope\", scope=\"api:read\""
        )
    );
    assert_eq!(answer.json()["error"], "insufficient_scope");

    // Every scope of the guard is needed, and all are named.
    let token = key.token(&claims(&mock.issuer()));
    let answer = call(&app, bearer("/admin", &token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks the required scope\", scope=\"api:read api:admin\""
        )
    );
    let token = key.token(&with(
        claims(&mock.issuer()),
        json!({"scope": "api:admin api:read"}),
    ));
    assert_eq!(
        call(&app, bearer("/admin", &token)).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn verifier_from_web_data_works_and_a_missing_one_is_500() {
    let (key, mock, verifier) = setup().await;
    let token = key.token(&claims(&mock.issuer()));
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(verifier))
            .route("/whoami", web::get().to(whoami)),
    )
    .await;
    assert_eq!(
        call(&app, bearer("/whoami", &token)).await.status,
        StatusCode::OK
    );

    let app = test::init_service(App::new().route("/whoami", web::get().to(whoami))).await;
    assert_eq!(
        call(&app, bearer("/whoami", &token)).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}
