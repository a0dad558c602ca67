//! The admin REST API (`/admin/v1/`): authorized only by an admin client's `latchkey:admin`
//! client_credentials token; every 401/403/400/404 with its exact body; clients, users, keys,
//! grants and registration tokens; the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::{self, Browser, PASSWORD};
use crate::helpers::{API, Resp, TestApp, TestClient, jwt_parts};

/// `latchkey client add --admin` (no audience: its tokens are for the issuer).
pub async fn admin_client(app: &TestApp) -> TestClient {
    app.add_client(&["--name", "ops", "--type", "confidential", "--admin"])
        .await
}

/// An admin client and a `latchkey:admin` access token for it.
pub async fn admin_token(app: &TestApp) -> (TestClient, String) {
    let c = admin_client(app).await;
    let t = app.access_token_for(&c).await;
    (c, t)
}

/// An admin API call with an optional bearer token and JSON body.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::read(req.send().await.expect("admin API request")).await
}

/// Asserts an exact error body (`error` and `error_description`) and status.
#[track_caller]
pub fn assert_error(r: &Resp, status: u16, error: &str, description: &str) {
    r.assert_oauth_error(status, error);
    assert_eq!(
        r.json(),
        json!({ "error": error, "error_description": description }),
        "exact error body"
    );
}

const NO_TOKEN: &str = "a bearer access token with scope latchkey:admin is required";
const BAD_TOKEN: &str = "the access token is invalid, expired or revoked";
const NO_SCOPE: &str = "the access token does not carry the latchkey:admin scope";

/// Every admin endpoint with a method that exists.
fn endpoints() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/admin/v1/clients"),
        (Method::POST, "/admin/v1/clients"),
        (Method::GET, "/admin/v1/clients/abc"),
        (Method::PUT, "/admin/v1/clients/abc"),
        (Method::DELETE, "/admin/v1/clients/abc"),
        (Method::POST, "/admin/v1/clients/abc/disable"),
        (Method::POST, "/admin/v1/clients/abc/enable"),
        (Method::POST, "/admin/v1/clients/abc/rotate-secret"),
        (Method::POST, "/admin/v1/clients/abc/revoke-grants"),
        (Method::GET, "/admin/v1/users"),
        (Method::POST, "/admin/v1/users"),
        (Method::GET, "/admin/v1/users/abc"),
        (Method::POST, "/admin/v1/users/abc/disable"),
        (Method::POST, "/admin/v1/users/abc/enable"),
        (Method::POST, "/admin/v1/users/abc/password"),
        (Method::POST, "/admin/v1/users/abc/revoke-grants"),
        (Method::GET, "/admin/v1/keys"),
        (Method::POST, "/admin/v1/keys/rotate"),
        (Method::POST, "/admin/v1/registration-tokens"),
        (Method::GET, "/admin/v1/registration-tokens"),
        (Method::POST, "/admin/v1/registration-tokens/abc/revoke"),
        (Method::GET, "/admin/v1/audit"),
        (Method::GET, "/admin/v1/no-such-thing"),
        (Method::PATCH, "/admin/v1/clients"),
    ]
}

#[actix_web::test]
async fn done_when_an_admin_token_creates_lists_and_disables_clients_and_a_non_admin_gets_403() {
    let app = TestApp::spawn().await;
    let (admin, token) = admin_token(&app).await;
    // The admin token: scope latchkey:admin, audience the issuer, the admin client's own.
    let (_, claims) = jwt_parts(&token);
    assert_eq!(claims["aud"], app.issuer.as_str());
    assert_eq!(claims["scope"], "latchkey:admin");
    assert_eq!(claims["sub"], admin.client_id.as_str());

    let r = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&token),
        Some(json!({
            "client_name": "billing",
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
            "audience": [API],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let created = r.json();
    let id = created["client_id"].as_str().expect("client_id").to_owned();
    let secret = created["client_secret"]
        .as_str()
        .expect("secret once")
        .to_owned();
    assert_eq!(created["client_name"], "billing");
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["client_secret_expires_at"], 0);
    let billing = TestClient {
        client_id: id.clone(),
        client_secret: Some(secret.clone()),
        metadata: created.clone(),
    };
    // The new client works at once.
    let t = app.token_for(&billing, &[]).await;
    assert_eq!(t["scope"], "api:read");

    // Listed (without secrets), and readable one by one.
    let r = call(&app, Method::GET, "/admin/v1/clients", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json();
    let ids: Vec<&str> = list["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| c["client_id"].as_str().expect("id"))
        .collect();
    assert!(ids.contains(&id.as_str()) && ids.contains(&admin.client_id.as_str()));
    assert!(!r.text().contains(&secret), "no secret in the list");
    assert!(!r.text().contains("secret_hash"));
    let r = call(
        &app,
        Method::GET,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["client_id"], id.as_str());
    assert!(r.json().get("client_secret").is_none());

    // Disabled: its credentials stop working.
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/clients/{id}/disable"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["disabled"], true);
    let r = app
        .post_token(&[("grant_type", "client_credentials")], billing.basic())
        .await;
    r.assert_oauth_error(401, "invalid_client");
    // ...and again, once enabled.
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/clients/{id}/enable"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.json()["disabled"], false);
    app.token_for(&billing, &[]).await;

    // A non-admin client's token is refused with 403 insufficient_scope.
    let other = app.access_token_for(&billing).await;
    let r = call(&app, Method::GET, "/admin/v1/clients", Some(&other), None).await;
    assert_error(&r, 403, "insufficient_scope", NO_SCOPE);
    let challenge = r.header("www-authenticate").expect("challenge");
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="latchkey:admin""#),
        "{challenge}"
    );
}

#[actix_web::test]
async fn every_endpoint_without_a_token_is_401_with_a_bare_bearer_challenge() {
    let app = TestApp::spawn().await;
    for (m, path) in endpoints() {
        let r = call(&app, m.clone(), path, None, Some(json!({}))).await;
        assert_error(&r, 401, "invalid_token", NO_TOKEN);
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="latchkey", scope="latchkey:admin""#),
            "RFC 6750 §3.1: no error attribute without credentials ({m} {path})"
        );
        // Another scheme is no token either.
        let r = Resp::read(
            app.http
                .request(m.clone(), app.url(path))
                .basic_auth("x", Some("y"))
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_error(&r, 401, "invalid_token", NO_TOKEN);
    }
}

#[actix_web::test]
async fn bad_tokens_are_401_invalid_token_and_non_admin_tokens_403_on_every_endpoint() {
    let app = TestApp::spawn().await;
    let (admin, good) = admin_token(&app).await;
    let svc = app.add_service_client().await;
    let non_admin = app.access_token_for(&svc).await;
    // A forged token: the admin token's payload with another signature, and alg none.
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        &parts[2][..parts[2].len() - 4]
    );
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{}.", parts[1]);
    for (m, path) in endpoints() {
        for bad in ["garbage", forged.as_str(), none.as_str(), "a.b.c"] {
            let r = call(&app, m.clone(), path, Some(bad), None).await;
            assert_error(&r, 401, "invalid_token", BAD_TOKEN);
            let c = r.header("www-authenticate").expect("challenge");
            assert!(c.contains(r#"error="invalid_token""#), "{c}");
        }
        let r = call(&app, m.clone(), path, Some(&non_admin), None).await;
        assert_error(&r, 403, "insufficient_scope", NO_SCOPE);
    }
    // The admin client disabled (by the CLI): its live token stops working at once.
    let out = app
        .cli(&["client", "disable", &admin.client_id], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = call(&app, Method::GET, "/admin/v1/clients", Some(&good), None).await;
    assert_error(&r, 401, "invalid_token", BAD_TOKEN);
}

#[actix_web::test]
async fn an_admin_token_for_another_audience_or_a_revoked_one_is_refused() {
    let app = TestApp::spawn().await;
    // An admin client whose only audience is an API: its tokens are for that API.
    let c = app
        .add_client(&[
            "--name",
            "ops-api",
            "--type",
            "confidential",
            "--admin",
            "--audience",
            API,
        ])
        .await;
    let t = app.access_token_for(&c).await;
    assert_eq!(jwt_parts(&t).1["aud"], API);
    let r = call(&app, Method::GET, "/admin/v1/clients", Some(&t), None).await;
    assert_error(
        &r,
        401,
        "invalid_token",
        "the access token is not for this server: its audience must be the issuer",
    );
    // Revoked through RFC 7009: refused too.
    let (admin, token) = admin_token(&app).await;
    let r = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&admin.client_id, Some(admin.secret()))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(&app, Method::GET, "/admin/v1/clients", Some(&token), None).await;
    assert_error(&r, 401, "invalid_token", BAD_TOKEN);
}

#[actix_web::test]
async fn client_metadata_errors_are_rfc_7591_errors_with_exact_bodies() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "none", "redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
            "redirect URI 'http://evil.example/cb': http is allowed only for loopback redirects (127.0.0.1 or [::1])",
        ),
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "none", "redirect_uris": ["https://app.example/cb#x"]}),
            "invalid_redirect_uri",
            "redirect URI 'https://app.example/cb#x': must not contain a fragment",
        ),
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "none", "redirect_uris": ["myapp:/cb"]}),
            "invalid_redirect_uri",
            "redirect URI 'myapp:/cb': a private-use scheme must be in reverse-domain form, e.g. com.example.app",
        ),
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
            "the authorization_code grant needs at least one redirect URI",
        ),
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
            "a public client cannot use client_credentials: it cannot keep a secret",
        ),
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "private_key_jwt needs jwks or jwks_uri",
        ),
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "client_secret_jwt"}),
            "invalid_client_metadata",
            "token_endpoint_auth_method must be none, client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, self_signed_tls_client_auth or attest_jwt_client_auth",
        ),
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
            "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email",
        ),
        (
            json!({"client_name": "a", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.example", "tls_client_auth_san_uri": "https://a.example"}),
            "invalid_client_metadata",
            "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email",
        ),
        (
            json!({"client_name": "a", "tls_client_auth_san_dns": "a.example"}),
            "invalid_client_metadata",
            "tls_client_auth_* names are used only with token_endpoint_auth_method tls_client_auth",
        ),
        (
            json!({"client_name": "a", "grant_types": ["password"]}),
            "invalid_client_metadata",
            "unsupported grant type 'password'",
        ),
        (
            json!({"client_name": "a", "grant_types": ["client_credentials"], "scope": "latchkey:admin"}),
            "invalid_client_metadata",
            "the latchkey:admin scope is granted only with --admin",
        ),
        (
            json!({"client_name": "a", "grant_types": ["client_credentials"], "admin": true}),
            "invalid_client_metadata",
            "admin clients are created only with `latchkey client add --admin`",
        ),
        (
            json!({"grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
            "client_name is required",
        ),
        (
            json!({"client_name": "", "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
            "client_name must be 1 to 200 characters",
        ),
        (
            json!({"client_name": "a", "redirect_uris": "https://app.example/cb"}),
            "invalid_client_metadata",
            "invalid client metadata: redirect_uris: wrong type: got string, expected a sequence",
        ),
        (
            json!({"client_name": "a", "redirect_uris": ["https://app.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
            "response_type 'token' is not supported (only code)",
        ),
        (
            json!({"client_name": "a", "grant_types": ["client_credentials"], "response_types": ["code"]}),
            "invalid_client_metadata",
            "response_types and grant_types disagree: code goes with authorization_code",
        ),
        (
            json!(["not", "an", "object"]),
            "invalid_client_metadata",
            "the client metadata must be a JSON object",
        ),
    ];
    for (body, error, description) in cases {
        let r = call(
            &app,
            Method::POST,
            "/admin/v1/clients",
            Some(&token),
            Some(body.clone()),
        )
        .await;
        assert_error(&r, 400, error, description);
    }
    // Not JSON, or not declared as JSON.
    let raw = |ct: &'static str, body: &'static str| {
        app.http
            .post(app.url("/admin/v1/clients"))
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = Resp::read(raw("application/json", "{not json").await.expect("send")).await;
    assert_error(&r, 400, "invalid_request", "the body is not valid JSON");
    let r = Resp::read(raw("text/plain", "{}").await.expect("send")).await;
    assert_error(
        &r,
        400,
        "invalid_request",
        "the body must be application/json",
    );
    let big = "x".repeat(20_000);
    let r = Resp::read(
        app.http
            .post(app.url("/admin/v1/clients"))
            .bearer_auth(&token)
            .json(&json!({ "client_name": big }))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_request",
        "the request body exceeds 16384 bytes",
    );
    // Nothing was created by any of these.
    let r = call(&app, Method::GET, "/admin/v1/clients", Some(&token), None).await;
    assert_eq!(crate::helpers::made_clients(&r.json()["clients"]).len(), 1);
}

#[actix_web::test]
async fn update_replaces_metadata_keeps_id_and_secret_and_rotate_secret_replaces_it() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&token),
        Some(json!({"client_name": "web", "redirect_uris": ["https://web.example/cb"], "grant_types": ["authorization_code", "client_credentials"], "scope": "api:read", "audience": [API]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();
    let id = created["client_id"].as_str().expect("id").to_owned();
    let mut c = TestClient {
        client_id: id.clone(),
        client_secret: created["client_secret"].as_str().map(str::to_owned),
        metadata: created.clone(),
    };
    // PUT the GET output back with changes (RFC 7592 style): id, secret and issue time stay.
    let mut body = call(
        &app,
        Method::GET,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        None,
    )
    .await
    .json();
    body["client_name"] = json!("web v2");
    body["redirect_uris"] = json!(["https://web.example/cb2", "com.example.web:/cb"]);
    let r = call(
        &app,
        Method::PUT,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["client_id"], id.as_str());
    assert_eq!(v["client_name"], "web v2");
    assert_eq!(
        v["redirect_uris"],
        json!(["https://web.example/cb2", "com.example.web:/cb"])
    );
    assert_eq!(v["client_id_issued_at"], created["client_id_issued_at"]);
    assert!(
        v.get("client_secret").is_none(),
        "the secret is kept, not re-shown"
    );
    app.token_for(&c, &[]).await;
    // The same rules as creation.
    let r = call(
        &app,
        Method::PUT,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        Some(json!({"client_name": "web", "redirect_uris": ["http://web.example/cb"]})),
    )
    .await;
    r.assert_oauth_error(400, "invalid_redirect_uri");
    let r = call(
        &app,
        Method::PUT,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        Some(json!({"client_id": "someone-else", "client_name": "web", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_request",
        "client_id does not match the client being updated",
    );
    let r = call(
        &app,
        Method::PUT,
        "/admin/v1/clients/0000",
        Some(&token),
        Some(json!({"client_name": "x", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_error(&r, 404, "not_found", "no such client");

    // Rotate the secret: the old one fails, the new one works.
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/clients/{id}/rotate-secret"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let new_secret = r.json()["client_secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    let r = app
        .post_token(&[("grant_type", "client_credentials")], c.basic())
        .await;
    r.assert_oauth_error(401, "invalid_client");
    c.client_secret = Some(new_secret);
    app.token_for(&c, &[]).await;

    // A public client has no secret to rotate.
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&token),
        Some(json!({"client_name": "app", "token_endpoint_auth_method": "none", "redirect_uris": ["com.example.app:/cb"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let public = r.json();
    assert!(public.get("client_secret").is_none() || public["client_secret"].is_null());
    assert_eq!(public["token_endpoint_auth_method"], "none");
    let pid = public["client_id"].as_str().expect("id");
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/clients/{pid}/rotate-secret"),
        Some(&token),
        None,
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_request",
        "the client is public: it has no secret",
    );

    // Delete: gone, and its credentials with it; an admin cannot delete itself.
    let r = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .post_token(&[("grant_type", "client_credentials")], c.basic())
        .await;
    r.assert_oauth_error(401, "invalid_client");
    let r = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_error(&r, 404, "not_found", "no such client");
}

#[actix_web::test]
async fn unknown_resources_are_404_and_the_admin_client_cannot_delete_itself() {
    let app = TestApp::spawn().await;
    let (admin, token) = admin_token(&app).await;
    for (m, path) in [
        (Method::GET, "/admin/v1/clients/nope"),
        (Method::POST, "/admin/v1/clients/nope/disable"),
        (Method::POST, "/admin/v1/clients/nope/rotate-secret"),
        (Method::POST, "/admin/v1/clients/nope/revoke-grants"),
    ] {
        let r = call(&app, m, path, Some(&token), None).await;
        assert_error(&r, 404, "not_found", "no such client");
    }
    for (m, path) in [
        (Method::GET, "/admin/v1/users/nope"),
        (Method::POST, "/admin/v1/users/nope/disable"),
        (Method::POST, "/admin/v1/users/nope/revoke-grants"),
    ] {
        let r = call(&app, m, path, Some(&token), None).await;
        assert_error(&r, 404, "not_found", "no such user");
    }
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/users/nope/password",
        Some(&token),
        Some(json!({"password": "long enough pw"})),
    )
    .await;
    assert_error(&r, 404, "not_found", "no such user");
    let r = call(
        &app,
        Method::GET,
        "/admin/v1/nothing/here",
        Some(&token),
        None,
    )
    .await;
    assert_error(&r, 404, "not_found", "no such admin API endpoint or method");
    let r = call(&app, Method::PATCH, "/admin/v1/clients", Some(&token), None).await;
    assert_error(&r, 404, "not_found", "no such admin API endpoint or method");
    let r = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/clients/{}", admin.client_id),
        Some(&token),
        None,
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_request",
        "an admin client cannot delete itself",
    );
}

#[actix_web::test]
async fn users_are_created_listed_disabled_and_get_a_new_password() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/users",
        Some(&token),
        Some(json!({"username": "alice", "password": PASSWORD, "email": "alice@example.test", "name": "Alice"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let u = r.json();
    let sub = u["sub"].as_str().expect("sub").to_owned();
    assert_eq!(u["username"], "alice");
    assert_eq!(u["disabled"], false);
    assert!(!r.text().contains(PASSWORD) && !r.text().contains("argon2"));

    // Errors, exactly.
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"username": "alice", "password": PASSWORD}),
            409,
            "conflict",
            "a user with this username already exists",
        ),
        (
            json!({"username": "bob", "password": "short"}),
            400,
            "invalid_request",
            "password must be 8 to 1024 characters",
        ),
        (
            json!({"username": "", "password": PASSWORD}),
            400,
            "invalid_request",
            "username must be 1 to 200 printable characters",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "email": "nope"}),
            400,
            "invalid_request",
            "email is not an email address",
        ),
        // (No `password` is a passkey-only user since issue 19: tests/api/passkeys.rs.)
        (
            json!({"password": PASSWORD}),
            400,
            "invalid_request",
            "invalid request body: missing field `username`",
        ),
        (
            // The offending value (here, a password of the wrong type) is never echoed.
            json!({"username": "bob", "password": 987654321}),
            400,
            "invalid_request",
            "invalid request body: wrong type: got integer, expected a string",
        ),
        (
            json!({"username": "bob", "password": PASSWORD, "role": "root"}),
            400,
            "invalid_request",
            "invalid request body: unknown field `role`, expected one of `username`, `password`, `email`, `name`",
        ),
    ];
    for (body, status, error, description) in cases {
        let r = call(
            &app,
            Method::POST,
            "/admin/v1/users",
            Some(&token),
            Some(body),
        )
        .await;
        assert_error(&r, status, error, description);
    }

    let r = call(&app, Method::GET, "/admin/v1/users", Some(&token), None).await;
    assert_eq!(r.json()["users"][0]["sub"], sub.as_str());
    assert_eq!(r.json()["users"].as_array().map(Vec::len), Some(1));

    // The user can log in; after a password reset only the new password works.
    let m = browser::Mobile {
        client: app
            .add_client(&[
                "--name",
                "app",
                "--type",
                "public",
                "--redirect-uri",
                browser::REDIRECT,
                "--scope",
                browser::SCOPE,
                "--audience",
                API,
                "--first-party",
            ])
            .await,
        username: "alice".into(),
        sub: sub.clone(),
    };
    browser::login_tokens(&app, &m).await;
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{sub}/password"),
        Some(&token),
        Some(json!({"password": "a brand new password"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{sub}/password"),
        Some(&token),
        Some(json!({"password": "short"})),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_request",
        "password must be 8 to 1024 characters",
    );
    let (_, challenge) = browser::pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&browser::authorize_path(
            &m.client.client_id,
            &challenge,
            &[],
        ))
        .await;
    assert_eq!(
        b.login(&page, "alice", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = b.login(&page, "alice", "a brand new password").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());

    // Disabled: no more logins.
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{sub}/disable"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.json()["disabled"], true);
    let mut b = Browser::new(&app);
    let page = b
        .get(&browser::authorize_path(
            &m.client.client_id,
            &challenge,
            &[],
        ))
        .await;
    assert_eq!(
        b.login(&page, "alice", "a brand new password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{sub}/enable"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.json()["disabled"], false);
}

#[actix_web::test]
async fn revoking_a_users_or_a_clients_grants_kills_their_refresh_tokens() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let m = browser::setup(&app, true).await;
    let t1 = browser::login_tokens(&app, &m).await;
    let rt1 = t1["refresh_token"].as_str().expect("refresh token");
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{}/revoke-grants", m.sub),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["token_families"], 1);
    assert_eq!(r.json()["sessions"], 1, "the browser session ended too");
    browser::refresh(&app, &m.client.client_id, rt1)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // The access token descending from it no longer passes userinfo.
    let at = t1["access_token"].as_str().expect("access token");
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let t2 = browser::login_tokens(&app, &m).await;
    let rt2 = t2["refresh_token"].as_str().expect("refresh token");
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/clients/{}/revoke-grants", m.client.client_id),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["token_families"], 1);
    browser::refresh(&app, &m.client.client_id, rt2)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[actix_web::test]
async fn keys_are_listed_and_rotated_and_the_new_key_is_published_at_once() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let r = call(&app, Method::GET, "/admin/v1/keys", Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let keys = r.json()["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k["state"] == "active"));
    assert!(!r.text().contains("private"), "public data only");

    let r = call(
        &app,
        Method::POST,
        "/admin/v1/keys/rotate",
        Some(&token),
        Some(json!({"alg": "ES256"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let rotated = r.json()["rotated"].as_array().expect("rotated").clone();
    assert_eq!(rotated.len(), 1);
    let kid = rotated[0]["kid"].as_str().expect("kid");
    let jwks = app.jwks().await;
    assert!(
        crate::helpers::kids(&jwks, "ES256")
            .iter()
            .any(|k| k == kid),
        "published at once"
    );
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/keys/rotate",
        Some(&token),
        Some(json!({"alg": "HS256"})),
    )
    .await;
    assert_error(
        &r,
        400,
        "invalid_request",
        "alg must be ES256, RS256 or EdDSA",
    );
    // No body: every configured algorithm.
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/keys/rotate",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        r.json()["rotated"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.text()
    );
}

#[actix_web::test]
async fn registration_tokens_from_the_admin_api_register_clients() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/registration-tokens",
        Some(&token),
        Some(json!({"expires_in": 600, "max_uses": 1, "grant_types": ["client_credentials"], "audience": [API]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    let iat = v["initial_access_token"].as_str().expect("token");
    let exp = v["expires_at"].as_i64().expect("expires_at");
    assert!((exp - crate::helpers::now() - 600).abs() <= 2);
    assert_eq!(v["max_uses"], 1);
    let reg = crate::registration::register(
        &app,
        Some(iat),
        &json!({"client_name": "x", "grant_types": ["client_credentials"], "audience": [API]}),
    )
    .await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.text());
    for (body, d) in [
        (
            json!({"expires_in": 0}),
            "expires_in must be between 1 and 31622400 seconds",
        ),
        (json!({"max_uses": 0}), "max_uses must be at least 1"),
        (
            json!({"expires_in": -5}),
            "invalid request body: wrong type: got integer, expected u64",
        ),
    ] {
        let r = call(
            &app,
            Method::POST,
            "/admin/v1/registration-tokens",
            Some(&token),
            Some(body),
        )
        .await;
        assert_error(&r, 400, "invalid_request", d);
    }
}

async fn list_registration_tokens(app: &TestApp, token: &str) -> Vec<Value> {
    let r = call(
        app,
        Method::GET,
        "/admin/v1/registration-tokens",
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["registration_tokens"]
        .as_array()
        .expect("list")
        .clone()
}

/// `POST /admin/v1/registration-tokens` with an optional body; the 201 response's JSON.
pub async fn create_registration_token(app: &TestApp, token: &str, body: Option<Value>) -> Value {
    let r = call(
        app,
        Method::POST,
        "/admin/v1/registration-tokens",
        Some(token),
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()
}

async fn revoke_registration_token(app: &TestApp, token: &str, id: &str) -> Resp {
    let path = format!("/admin/v1/registration-tokens/{id}/revoke");
    call(app, Method::POST, &path, Some(token), None).await
}

#[actix_web::test]
async fn registration_tokens_are_listed_without_secrets_and_a_revoked_one_registers_nothing() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let created = create_registration_token(
        &app,
        &token,
        Some(json!({"max_uses": 3, "grant_types": ["client_credentials"], "audience": [API]})),
    )
    .await;
    let iat = created["initial_access_token"].as_str().expect("token");
    let id = created["id"].as_str().expect("id");
    let body =
        json!({"client_name": "x", "grant_types": ["client_credentials"], "audience": [API]});
    let reg = crate::registration::register(&app, Some(iat), &body).await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.text());

    let all = list_registration_tokens(&app, &token).await;
    assert_eq!(all.len(), 1);
    let t = &all[0];
    assert_eq!(t["id"], id);
    assert_eq!(
        (t["uses"].clone(), t["max_uses"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(t["status"], "active");
    assert!(
        t["created_by"]
            .as_str()
            .is_some_and(|c| c.starts_with("admin:")),
        "{t}"
    );
    // Neither the token nor its hash is ever listed.
    let text = serde_json::to_string(&all).expect("json");
    assert!(!text.contains(iat), "the token leaked: {text}");
    assert!(
        !text.contains(&crate::helpers::sha256_b64url(iat)),
        "the hash leaked: {text}"
    );
    // The listed members are the documented ones (no drift).
    let doc = app.get("/admin/v1/openapi.json").await.json();
    let mut documented: Vec<_> =
        doc["components"]["schemas"]["RegistrationTokenView"]["properties"]
            .as_object()
            .expect("schema")
            .keys()
            .cloned()
            .collect();
    let mut listed: Vec<_> = t.as_object().expect("object").keys().cloned().collect();
    documented.sort();
    listed.sort();
    assert_eq!(listed, documented);

    // Revoked: the token registers nothing more; the client it registered stays.
    let r = revoke_registration_token(&app, &token, id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "revoked");
    let revoked_at = r.json()["revoked_at"].as_i64().expect("revoked_at");
    let again = crate::registration::register(&app, Some(iat), &body).await;
    assert_error(
        &again,
        401,
        "invalid_token",
        "the initial access token has been revoked",
    );
    let client_id = reg.json()["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    let c = call(
        &app,
        Method::GET,
        &format!("/admin/v1/clients/{client_id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    // Revoking twice keeps the first time; the list shows the state.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = revoke_registration_token(&app, &token, id).await;
    assert_eq!(r.json()["revoked_at"], revoked_at);
    assert_eq!(
        list_registration_tokens(&app, &token).await[0]["status"],
        "revoked"
    );
    // Unknown ids, a prefix of a real id, LIKE wildcards: 404, nothing revoked.
    let other = create_registration_token(
        &app,
        &token,
        Some(json!({"grant_types": ["client_credentials"], "audience": [API]})),
    )
    .await;
    let other_id = other["id"].as_str().expect("id");
    for bad in [
        "000000000000",
        &other_id[..6],
        "%",
        "____________",
        "%25%25%25%25",
    ] {
        let r = revoke_registration_token(&app, &token, bad).await;
        assert_error(&r, 404, "not_found", "no such registration token");
    }
    let all = list_registration_tokens(&app, &token).await;
    let other_now = all.iter().find(|t| t["id"] == other_id).expect("listed");
    assert_eq!(other_now["status"], "active");
    let reg = crate::registration::register(
        &app,
        Some(other["initial_access_token"].as_str().expect("token")),
        &body,
    )
    .await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.text());
    // Audited.
    let audit = call(
        &app,
        Method::GET,
        "/admin/v1/audit?event=registration_token.revoked",
        Some(&token),
        None,
    )
    .await
    .json();
    let events = audit["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{audit}");
    assert_eq!(events[0]["target"], format!("registration_token:{id}"));
}

#[actix_web::test]
async fn the_openapi_document_is_generated_and_covers_every_endpoint() {
    let app = TestApp::spawn().await;
    let r = app.get("/admin/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.media_type(), "application/json");
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Latchkey admin API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (m, path) in endpoints() {
        if path.contains("no-such-thing") || m == Method::PATCH {
            continue;
        }
        let templated = path
            .replace("/clients/abc", "/clients/{client_id}")
            .replace("/users/abc", "/users/{user_id}")
            .replace("/registration-tokens/abc", "/registration-tokens/{id}");
        let op = &paths
            .get(&templated)
            .unwrap_or_else(|| panic!("{templated} is not documented"))[m.as_str().to_lowercase()];
        assert!(op.is_object(), "{m} {templated} is not documented");
        assert_eq!(
            op["security"][0]["bearer"],
            json!(["latchkey:admin"]),
            "{m} {templated}"
        );
        assert!(
            op["responses"]["401"].is_object() && op["responses"]["403"].is_object(),
            "{m} {templated}"
        );
    }
    // Every member a real client response has is in the documented schema (no drift).
    let (_, token) = admin_token(&app).await;
    let created = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&token),
        Some(json!({"client_name": "d", "grant_types": ["client_credentials"], "audience": [API]})),
    )
    .await
    .json();
    let props = doc["components"]["schemas"]["ClientMetadata"]["properties"]
        .as_object()
        .expect("ClientMetadata");
    for k in created.as_object().expect("object").keys() {
        assert!(props.contains_key(k), "ClientMetadata schema lacks {k}");
    }
    let req_props = doc["components"]["schemas"]["ClientMetadataRequest"]["properties"]
        .as_object()
        .expect("request schema");
    for k in [
        "redirect_uris",
        "grant_types",
        "token_endpoint_auth_method",
        "client_name",
        "scope",
    ] {
        assert!(req_props.contains_key(k), "{k}");
    }
}

/// A plain OAuth 2.0 library (the `oauth2` crate) gets the admin token; the API works with it.
#[actix_web::test]
async fn a_standard_oauth2_client_obtains_an_admin_token_and_uses_the_api() {
    use oauth2::basic::BasicClient;
    use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
    let app = TestApp::spawn().await;
    let admin = admin_client(&app).await;
    let client = BasicClient::new(ClientId::new(admin.client_id.clone()))
        .set_client_secret(ClientSecret::new(admin.secret().to_owned()))
        .set_token_uri(TokenUrl::new(app.url("/token")).expect("token url"));
    let http = oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let tok = client
        .exchange_client_credentials()
        .add_scope(Scope::new("latchkey:admin".into()))
        .request_async(&http)
        .await
        .expect("client_credentials through oauth2");
    let token = tok.access_token().secret();
    let r = call(&app, Method::GET, "/admin/v1/users", Some(token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Hostile input on every admin and registration endpoint never yields a 5xx.
#[actix_web::test]
async fn no_input_makes_the_admin_or_registration_endpoints_fail_with_5xx() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<(&str, String)> = vec![
        ("application/json", "null".into()),
        ("application/json", "[]".into()),
        ("application/json", "\"x\"".into()),
        ("application/json", deep),
        (
            "application/json",
            "{\"client_name\": \"\\u0000\", \"redirect_uris\": [\"\\ud800\"]}".into(),
        ),
        ("application/json", "{\"client_name\": 1e400}".into()),
        (
            "application/json",
            "{\"username\": \"a\\nb\", \"password\": \"pppppppppp\"}".into(),
        ),
        (
            "application/json",
            "{\"expires_in\": 18446744073709551615, \"max_uses\": 18446744073709551615}".into(),
        ),
        ("application/json", "{\"alg\": [\"ES256\"]}".into()),
        ("application/octet-stream", "\u{0}\u{1}".into()),
        ("application/json", "\u{feff}{}".into()),
    ];
    let mut paths: Vec<(Method, String)> = endpoints()
        .into_iter()
        .map(|(m, p)| (m, p.to_owned()))
        .collect();
    for weird in ["%00", "%FF%FE", "..%2F..%2Fetc", &"x".repeat(3000)] {
        paths.push((Method::GET, format!("/admin/v1/clients/{weird}")));
        paths.push((Method::PUT, format!("/admin/v1/clients/{weird}")));
        paths.push((Method::GET, format!("/register/{weird}")));
        paths.push((Method::DELETE, format!("/register/{weird}")));
    }
    paths.push((Method::POST, "/register".into()));
    paths.push((
        Method::GET,
        "/admin/v1/audit?limit=99999999999999999999&after=-1&event=%FF".into(),
    ));
    for (m, p) in &paths {
        for (ct, body) in &bodies {
            for tok in [Some(token.as_str()), Some("x"), None] {
                let mut req = app
                    .http
                    .request(m.clone(), app.url(p))
                    .header("content-type", *ct)
                    .body(body.clone());
                if let Some(t) = tok {
                    req = req.bearer_auth(t);
                }
                let r = Resp::read(req.send().await.expect("request")).await;
                assert!(
                    r.status.as_u16() < 500,
                    "{m} {p} {ct} {body:.40}: {} {}",
                    r.status,
                    r.text()
                );
            }
        }
    }
}
