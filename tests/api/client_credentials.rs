//! RFC 6749 §4.4 client credentials: the happy paths, the issued RFC 9068 access token
//! verified offline against the published JWKS, and every refusal with its exact RFC error.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    API, Resp, TestApp, TestClient, basic_header, jwt_parts, now, verify_offline,
};

/// Asserts a successful RFC 6749 §5.1 token response and returns its JSON.
#[track_caller]
fn assert_token_response(r: &Resp) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.media_type(), "application/json");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer", "{v}");
    assert_eq!(v["expires_in"], 600, "{v}");
    assert!(v["access_token"].is_string(), "{v}");
    assert!(
        v.get("refresh_token").is_none(),
        "client_credentials must not issue a refresh token (RFC 6749 §4.4.3): {v}"
    );
    assert!(v.get("id_token").is_none(), "{v}");
    v
}

/// Verifies the access token offline and checks every RFC 9068 §2.2 claim.
async fn assert_access_token(
    app: &TestApp,
    token: &str,
    client: &TestClient,
    aud: &str,
    scope: &str,
) {
    let jwks = app.jwks().await;
    let verified = verify_offline(token, &jwks, &app.issuer, aud)
        .unwrap_or_else(|e| panic!("offline verification failed: {e}"));
    let h = &verified.header;
    assert_eq!(h.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1 typ");
    assert_eq!(
        h.alg,
        jsonwebtoken::Algorithm::ES256,
        "default access token alg"
    );
    assert!(h.kid.is_some());
    let c = &verified.claims;
    assert_eq!(c["iss"], app.issuer.as_str());
    assert_eq!(
        c["sub"],
        client.client_id.as_str(),
        "sub is the client for client_credentials"
    );
    assert_eq!(c["client_id"], client.client_id.as_str());
    assert_eq!(c["aud"], aud, "a single audience is a string");
    assert_eq!(c["scope"], scope);
    let (iat, exp) = (
        c["iat"].as_i64().expect("iat is a number"),
        c["exp"].as_i64().expect("exp is a number"),
    );
    assert_eq!(exp - iat, 600, "default lifetime is 10 minutes");
    assert!((iat - now()).abs() <= 5, "iat {iat} is now");
    let jti = c["jti"].as_str().expect("jti");
    assert!(jti.len() >= 16, "jti should be unguessable: {jti}");
    assert!(c.get("auth_time").is_none(), "no user, no auth_time");
}

#[actix_web::test]
async fn client_secret_basic_issues_a_verifiable_access_token() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app
        .post_token(&[("grant_type", "client_credentials")], client.basic())
        .await;
    let v = assert_token_response(&r);
    assert_eq!(v["scope"], "api:read");
    let token = v["access_token"].as_str().expect("token");
    assert_access_token(&app, token, &client, API, "api:read").await;
}

#[actix_web::test]
async fn client_secret_post_issues_a_verifiable_access_token() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", client.secret()),
            ],
            None,
        )
        .await;
    let v = assert_token_response(&r);
    let token = v["access_token"].as_str().expect("token");
    assert_access_token(&app, token, &client, API, "api:read").await;
}

#[actix_web::test]
async fn basic_with_matching_client_id_in_body_and_charset_parameter_is_accepted() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let body = format!(
        "grant_type=client_credentials&client_id={}",
        client.client_id
    );
    let r = app
        .post_token_raw(
            body,
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            Some(&basic_header(&client.client_id, client.secret())),
        )
        .await;
    assert_token_response(&r);
}

#[actix_web::test]
async fn each_token_is_distinct() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let a = app.access_token_for(&client).await;
    let b = app.access_token_for(&client).await;
    assert_ne!(a, b);
    assert_ne!(jwt_parts(&a).1["jti"], jwt_parts(&b).1["jti"]);
}

#[actix_web::test]
async fn access_token_lifetime_follows_configuration() {
    let app = TestApp::spawn_with(|c| c.access_token_ttl = 120).await;
    let client = app.add_service_client().await;
    let v = app.token_for(&client, &[]).await;
    assert_eq!(v["expires_in"], 120);
    let (_, claims) = jwt_parts(v["access_token"].as_str().expect("token"));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
}

#[actix_web::test]
async fn token_does_not_verify_for_another_audience_or_issuer() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let token = app.access_token_for(&client).await;
    let jwks = app.jwks().await;
    assert!(verify_offline(&token, &jwks, &app.issuer, API).is_ok());
    assert!(verify_offline(&token, &jwks, &app.issuer, "https://other.example.test").is_err());
    assert!(verify_offline(&token, &jwks, "https://evil.example.test", API).is_err());
}

async fn multi_audience_client(app: &TestApp) -> TestClient {
    app.add_client(&[
        "--name",
        "multi",
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "api:read api:write",
        "--audience",
        "https://a.example.test",
        "--audience",
        "https://b.example.test",
    ])
    .await
}

#[actix_web::test]
async fn resource_parameter_selects_the_audience() {
    let app = TestApp::spawn().await;
    let client = multi_audience_client(&app).await;

    for aud in ["https://a.example.test", "https://b.example.test"] {
        let v = app.token_for(&client, &[("resource", aud)]).await;
        let token = v["access_token"].as_str().expect("token");
        assert_access_token(&app, token, &client, aud, "api:read api:write").await;
    }

    // Both, with repeated `resource` (RFC 8707 §2): aud is an array in request order.
    let v = app
        .token_for(
            &client,
            &[
                ("resource", "https://b.example.test"),
                ("resource", "https://a.example.test"),
            ],
        )
        .await;
    let token = v["access_token"].as_str().expect("token");
    let jwks = app.jwks().await;
    let verified = verify_offline(token, &jwks, &app.issuer, "https://a.example.test")
        .expect("verifies for a");
    assert_eq!(
        verified.claims["aud"],
        serde_json::json!(["https://b.example.test", "https://a.example.test"])
    );

    // Several registered audiences and none requested: the client must choose.
    let r = app
        .post_token(&[("grant_type", "client_credentials")], client.basic())
        .await;
    r.assert_oauth_error(400, "invalid_target");
}

#[actix_web::test]
async fn only_registered_audience_is_the_default() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let v = app.token_for(&client, &[("resource", API)]).await;
    let (_, claims) = jwt_parts(v["access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], API);
}

#[actix_web::test]
async fn scope_can_be_narrowed_but_not_widened() {
    let app = TestApp::spawn().await;
    let client = multi_audience_client(&app).await;
    let aud = ("resource", "https://a.example.test");

    let v = app.token_for(&client, &[aud, ("scope", "api:write")]).await;
    assert_eq!(v["scope"], "api:write");
    let token = v["access_token"].as_str().expect("token");
    assert_access_token(&app, token, &client, "https://a.example.test", "api:write").await;

    // Omitted scope: the client's whole registered scope.
    let v = app.token_for(&client, &[aud]).await;
    assert_eq!(v["scope"], "api:read api:write");

    // Widening is refused.
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                aud,
                ("scope", "api:read api:admin"),
            ],
            client.basic(),
        )
        .await;
    r.assert_oauth_error(400, "invalid_scope");
}

#[actix_web::test]
async fn scope_not_allowed_is_invalid_scope() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    for scope in [
        "api:write",
        "latchkey:admin",
        "openid",
        "offline_access",
        "a\"b",
    ] {
        let r = app
            .post_token(
                &[("grant_type", "client_credentials"), ("scope", scope)],
                client.basic(),
            )
            .await;
        r.assert_oauth_error(400, "invalid_scope");
    }
}

#[actix_web::test]
async fn resource_not_allowed_is_invalid_target() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    for resource in [
        "https://other.example.test",
        "https://api.example.test/", // exact match only
        "not a uri",
        "https://api.example.test#frag",
    ] {
        let r = app
            .post_token(
                &[("grant_type", "client_credentials"), ("resource", resource)],
                client.basic(),
            )
            .await;
        r.assert_oauth_error(400, "invalid_target");
    }
    // One allowed and one not: the whole request is refused.
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("resource", API),
                ("resource", "https://other.example.test"),
            ],
            client.basic(),
        )
        .await;
    r.assert_oauth_error(400, "invalid_target");
}

#[actix_web::test]
async fn wrong_secret_with_basic_is_401_with_challenge() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&client.client_id, "not-the-secret")),
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
    let challenge = r
        .header("www-authenticate")
        .expect("RFC 6749 §5.2: WWW-Authenticate when Basic was used");
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic"),
        "the challenge names the scheme the client used: {challenge}"
    );
}

#[actix_web::test]
async fn wrong_secret_with_post_is_invalid_client() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", "not-the-secret"),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
    // An empty secret is "omitted", i.e. no authentication: still invalid_client.
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", ""),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn another_clients_secret_is_refused() {
    let app = TestApp::spawn().await;
    let a = app.add_service_client().await;
    let b = app.add_service_client().await;
    let r = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&a.client_id, b.secret())),
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn unknown_client_is_invalid_client() {
    let app = TestApp::spawn().await;
    let r = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some(("no-such-client", "whatever")),
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "no-such-client"),
                ("client_secret", "whatever"),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn no_client_authentication_is_invalid_client() {
    let app = TestApp::spawn().await;
    let r = app
        .post_token(&[("grant_type", "client_credentials")], None)
        .await;
    r.assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn error_responses_do_not_reveal_why_authentication_failed() {
    // Unknown client and wrong secret must be indistinguishable.
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let unknown = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some(("no-such-client", "x")),
        )
        .await;
    let wrong = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&client.client_id, "x")),
        )
        .await;
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.json(), wrong.json());
}

#[actix_web::test]
async fn disabled_client_is_refused_on_the_next_request() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    app.token_for(&client, &[]).await;

    let out = app
        .cli(&["client", "disable", &client.client_id, "--json"], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");

    // No restart, no wait: the very next request is refused.
    let r = app
        .post_token(&[("grant_type", "client_credentials")], client.basic())
        .await;
    r.assert_oauth_error(401, "invalid_client");
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", client.secret()),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn public_client_cannot_use_client_credentials() {
    let app = TestApp::spawn().await;
    let public = app
        .add_client(&[
            "--name",
            "mobile",
            "--type",
            "public",
            "--redirect-uri",
            "com.example.app:/cb",
            "--scope",
            "api:read",
            "--audience",
            API,
        ])
        .await;
    assert!(public.client_secret.is_none(), "{:?}", public.metadata);
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &public.client_id),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(400, "unauthorized_client");
    // Pretending to hold a secret does not help.
    let r = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&public.client_id, "guess")),
        )
        .await;
    r.assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn confidential_client_without_the_grant_is_unauthorized_client() {
    let app = TestApp::spawn().await;
    let web = app
        .add_client(&[
            "--name",
            "web",
            "--type",
            "confidential",
            "--redirect-uri",
            "https://app.example.test/cb",
            "--grant",
            "authorization_code",
            "--scope",
            "api:read",
            "--audience",
            API,
        ])
        .await;
    let r = app
        .post_token(&[("grant_type", "client_credentials")], web.basic())
        .await;
    r.assert_oauth_error(400, "unauthorized_client");
}

#[actix_web::test]
async fn every_401_carries_a_challenge() {
    // RFC 6749 §5.2 lets the server answer invalid_client with 401 "to indicate which HTTP
    // authentication schemes are supported"; RFC 9110 §15.5.2: a 401 MUST carry
    // WWW-Authenticate. (Alternatively, answer 400 when Basic was not used.)
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    for form in [
        vec![("grant_type", "client_credentials")],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", client.client_id.as_str()),
            ("client_secret", "wrong"),
        ],
    ] {
        let r = app.post_token(&form, None).await;
        assert!(r.status.is_client_error(), "{}", r.text());
        assert_eq!(r.json()["error"], "invalid_client");
        if r.status == StatusCode::UNAUTHORIZED {
            assert!(
                r.header("www-authenticate").is_some(),
                "401 without WWW-Authenticate for {form:?}"
            );
        }
    }
}
