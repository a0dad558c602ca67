//! `private_key_jwt` client authentication (RFC 7523, OIDC Core §9) from outside: a backend
//! registers its public key and signs a short assertion per request instead of holding a
//! secret. Every forged, replayed, mis-addressed or over-long assertion is `401
//! invalid_client`, never a 5xx.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dpop::DpopKey;
use crate::helpers::{API, Resp, TestApp, TestClient, jwt_parts, now};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A backend client with this key registered (kid `k1`), through the CLI's `--jwks-file`.
async fn backend(app: &TestApp, key: &DpopKey) -> TestClient {
    let mut jwk = key.jwk.clone();
    jwk["kid"] = json!("k1");
    jwk["alg"] = json!("ES256");
    let path =
        std::env::temp_dir().join(format!("jwks-{}.json", latchkey::secret::random_token(6)));
    std::fs::write(&path, json!({ "keys": [jwk] }).to_string()).expect("write jwks");
    let c = app
        .add_client(&[
            "--name",
            "billing",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            "api:read",
            "--audience",
            API,
            "--jwks-file",
            path.to_str().expect("path"),
        ])
        .await;
    let _ = std::fs::remove_file(&path);
    c
}

fn claims(app: &TestApp, client_id: &str) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": app.issuer,
        "exp": now() + 60,
        "iat": now(),
        "jti": latchkey::secret::random_token(12),
    })
}

fn sign(key: &DpopKey, claims: &Value) -> String {
    key.sign(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}), claims)
}

async fn token_with(app: &TestApp, assertion: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    app.post_token(&form, None).await
}

#[actix_web::test]
async fn a_backend_authenticates_with_a_signed_assertion_once() {
    let app = TestApp::spawn().await;
    let d = app.discovery().await.json();
    assert!(
        d["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("methods")
            .contains(&json!("private_key_jwt"))
    );
    let key = DpopKey::new();
    let c = backend(&app, &key).await;
    assert_eq!(c.metadata["token_endpoint_auth_method"], "private_key_jwt");
    assert!(
        c.client_secret.is_none(),
        "no secret for a client with keys"
    );
    assert_eq!(c.metadata["jwks"]["keys"][0]["kid"], "k1");

    let assertion = sign(&key, &claims(&app, &c.client_id));
    let r = token_with(&app, &assertion, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, at) = jwt_parts(r.json()["access_token"].as_str().expect("at"));
    assert_eq!(at["sub"], c.client_id.as_str());
    assert_eq!(at["aud"], API);
    // With client_id repeated in the body, as RFC 7523 allows.
    let r = token_with(
        &app,
        &sign(&key, &claims(&app, &c.client_id)),
        &[("client_id", &c.client_id)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // The same assertion again: a replay.
    token_with(&app, &assertion, &[])
        .await
        .assert_oauth_error(401, "invalid_client");
    // The key works at introspection too (the same authentication path).
    let r = app
        .http
        .post(app.url("/introspect"))
        .form(&[
            ("token", "x"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &sign(&key, &claims(&app, &c.client_id))),
        ])
        .send()
        .await
        .expect("introspect");
    let r = Resp::read(r).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["active"], false);
}

#[actix_web::test]
async fn forged_misaddressed_and_overlong_assertions_are_invalid_client() {
    let app = TestApp::spawn().await;
    let key = DpopKey::new();
    let c = backend(&app, &key).await;
    let id = c.client_id.as_str();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut cl = claims(&app, id);
        f(&mut cl);
        cl
    };
    let cases: Vec<(&str, String)> = vec![
        ("another key", sign(&DpopKey::new(), &claims(&app, id))),
        (
            "aud = the token endpoint",
            sign(
                &key,
                &edit(&|c| c["aud"] = json!(format!("{}/token", app.issuer))),
            ),
        ),
        (
            "aud as an array",
            sign(&key, &edit(&|c| c["aud"] = json!([app.issuer.clone()]))),
        ),
        (
            "aud of another server",
            sign(&key, &edit(&|c| c["aud"] = json!("https://other.example"))),
        ),
        (
            "expired",
            sign(&key, &edit(&|c| c["exp"] = json!(now() - 120))),
        ),
        (
            "lives two hours",
            sign(&key, &edit(&|c| c["exp"] = json!(now() + 7200))),
        ),
        (
            "no jti",
            sign(
                &key,
                &edit(&|c| drop(c.as_object_mut().map(|o| o.remove("jti")))),
            ),
        ),
        (
            "no exp",
            sign(
                &key,
                &edit(&|c| drop(c.as_object_mut().map(|o| o.remove("exp")))),
            ),
        ),
        (
            "iss of another client",
            sign(&key, &edit(&|c| c["iss"] = json!("someone-else"))),
        ),
        (
            "unknown kid",
            key.sign(&json!({"alg": "ES256", "kid": "nope"}), &claims(&app, id)),
        ),
        ("alg none", {
            let s = sign(&key, &claims(&app, id));
            let mut p: Vec<&str> = s.split('.').collect();
            let h = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                r#"{"alg":"none","kid":"k1"}"#,
            );
            p[0] = &h;
            format!("{}.{}.", p[0], p[1])
        }),
        (
            "HS256 with the public key as secret",
            key.sign(&json!({"alg": "HS256", "kid": "k1"}), &claims(&app, id)),
        ),
        ("not a JWT", "garbage".to_owned()),
    ];
    for (what, assertion) in &cases {
        let r = token_with(&app, assertion, &[]).await;
        assert_eq!(r.status.as_u16(), 401, "{what}: {}", r.text());
        r.assert_oauth_error(401, "invalid_client");
    }
    // A client_id in the body naming another client than the assertion.
    token_with(
        &app,
        &sign(&key, &claims(&app, id)),
        &[("client_id", "someone-else")],
    )
    .await
    .assert_oauth_error(401, "invalid_client");
    // The wrong assertion type.
    app.post_token(
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &sign(&key, &claims(&app, id))),
        ],
        None,
    )
    .await
    .assert_oauth_error(401, "invalid_client");
    // An assertion and Basic credentials at once.
    app.post_token(
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &sign(&key, &claims(&app, id))),
        ],
        Some((id, "whatever")),
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    // A client with keys cannot fall back to a secret (it has none) or to none.
    app.post_token(
        &[("grant_type", "client_credentials"), ("client_id", id)],
        None,
    )
    .await
    .assert_oauth_error(401, "invalid_client");
    // And the CLI refuses to give it one.
    let out = app.cli(&["client", "rotate-secret", id], None).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("private_key_jwt"), "{out:?}");
    // A secret client cannot authenticate with an assertion.
    let svc = app.add_service_client().await;
    token_with(&app, &sign(&key, &claims(&app, &svc.client_id)), &[])
        .await
        .assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn registered_keys_must_be_public_keys() {
    let app = TestApp::spawn().await;
    let (_, admin) = crate::admin_api::admin_token(&app).await;
    let key = DpopKey::new();
    let post = |body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            Resp::read(
                app.http
                    .post(app.url("/admin/v1/clients"))
                    .bearer_auth(admin)
                    .json(&body)
                    .send()
                    .await
                    .expect("POST clients"),
            )
            .await
        }
    };
    let base = |jwks: Value| {
        json!({
            "client_name": "billing",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": jwks,
        })
    };
    let r = post(base(json!({ "keys": [key.jwk] }))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["token_endpoint_auth_method"], "private_key_jwt");
    assert!(r.json()["client_secret"].is_null(), "{}", r.text());
    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    for bad in [
        json!({ "keys": [private] }),
        json!({ "keys": [{"kty": "oct", "k": "c2VjcmV0"}] }),
        json!({ "keys": [] }),
        json!([key.jwk]),
    ] {
        post(base(bad.clone()))
            .await
            .assert_oauth_error(400, "invalid_client_metadata");
    }
}

/// Two servers on one database: an assertion accepted by one is a replay at the other.
async fn replay_across_servers(database_url: Option<String>) {
    let a = TestApp::spawn_with(|c| {
        if let Some(u) = &database_url {
            c.database_url = u.clone();
        }
    })
    .await;
    let (db, keys, issuer) = (
        a.config.database_url.clone(),
        a.config.keys_dir.clone(),
        a.issuer.clone(),
    );
    let b = TestApp::spawn_with(move |c| {
        c.database_url = db;
        c.keys_dir = keys;
        c.issuer = issuer;
    })
    .await;
    let key = DpopKey::new();
    let c = backend(&a, &key).await;
    let assertion = sign(&key, &claims(&a, &c.client_id));
    let r = token_with(&b, &assertion, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    token_with(&a, &assertion, &[])
        .await
        .assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn a_replayed_assertion_is_refused_by_another_server_on_the_same_sqlite_database() {
    replay_across_servers(None).await;
}

#[actix_web::test]
async fn a_replayed_assertion_is_refused_by_another_replica_on_postgres() {
    let Some(pg) = crate::pg::PgDb::create("assertion_replay_across_replicas") else {
        return;
    };
    replay_across_servers(Some(pg.url.clone())).await;
}
