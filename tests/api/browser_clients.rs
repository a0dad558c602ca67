//! Issue 18 finding 11: what browsers see. CORS only for origins a client registered
//! (`allowed_origins`, none by default) and only on the token, revocation, userinfo, JWKS and
//! discovery endpoints; `Strict-Transport-Security` when the issuer is https; error
//! descriptions that never repeat the caller's input.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::admin_api::{admin_token, call};
use crate::browser::{self, Browser, location_params, pkce, setup};
use crate::helpers::{Resp, TestApp};

const SPA: &str = "https://spa.example.test";
const EVIL: &str = "https://evil.example.test";

/// The endpoints a single-page app calls itself, with the method it uses.
const CORS_ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/token"),
    ("POST", "/revoke"),
    ("GET", "/userinfo"),
    ("GET", "/jwks"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/oauth-authorization-server"),
];

async fn from_origin(app: &TestApp, method: &str, path: &str, origin: &str) -> Resp {
    let m = Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app
        .http
        .request(m.clone(), app.url(path))
        .header("origin", origin);
    if m == Method::POST {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=x&grant_type=client_credentials");
    }
    Resp::read(req.send().await.expect("request")).await
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Resp {
    let r = app
        .http
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type, dpop")
        .send()
        .await
        .expect("preflight");
    Resp::read(r).await
}

fn allow_origin(r: &Resp) -> Option<&str> {
    r.header("access-control-allow-origin")
}

fn assert_no_cors(r: &Resp, what: &str) {
    for h in r.headers.keys() {
        assert!(
            !h.as_str().starts_with("access-control-"),
            "{what}: unexpected {h}: {:?}",
            r.headers.get(h)
        );
    }
}

async fn spa_client(app: &TestApp, origins: &[&str]) -> crate::helpers::TestClient {
    let mut args = vec![
        "--name",
        "spa",
        "--type",
        "public",
        "--redirect-uri",
        "https://spa.example.test/cb",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "openid",
    ];
    for o in origins {
        args.extend_from_slice(&["--allowed-origin", o]);
    }
    app.add_client(&args).await
}

#[actix_web::test]
async fn without_registered_origins_no_endpoint_answers_cross_origin() {
    let app = TestApp::spawn().await;
    // A client without allowed_origins, as every client is by default.
    let c = spa_client(&app, &[]).await;
    assert_eq!(c.metadata["allowed_origins"], json!([]));
    for (m, path) in CORS_ENDPOINTS {
        let r = from_origin(&app, m, path, SPA).await;
        assert_no_cors(&r, path);
        assert!(!r.status.is_server_error(), "{path}: {}", r.status);
        assert_eq!(r.header("vary"), Some("Origin"), "{path}");
        let r = preflight(&app, path, SPA, m).await;
        assert_no_cors(&r, path);
    }
}

#[actix_web::test]
async fn a_registered_origin_gets_cors_on_the_browser_endpoints_and_nowhere_else() {
    let app = TestApp::spawn().await;
    let c = spa_client(&app, &[SPA, "http://localhost:5173"]).await;
    assert_eq!(
        c.metadata["allowed_origins"],
        json!([SPA, "http://localhost:5173"])
    );
    for (m, path) in CORS_ENDPOINTS {
        let r = from_origin(&app, m, path, SPA).await;
        assert_eq!(allow_origin(&r), Some(SPA), "{path}");
        assert!(r.header("access-control-allow-credentials").is_none());
        assert!(
            r.header("access-control-expose-headers")
                .is_some_and(|v| v.contains("DPoP-Nonce")),
            "{path}"
        );
        assert_eq!(r.header("vary"), Some("Origin"), "{path}");
        let p = preflight(&app, path, SPA, m).await;
        assert_eq!(p.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(allow_origin(&p), Some(SPA), "{path}");
        let methods = p.header("access-control-allow-methods").unwrap_or("");
        assert!(methods.contains(m), "{path}: {methods}");
        let headers = p.header("access-control-allow-headers").unwrap_or("");
        assert!(headers.contains("DPoP") && headers.contains("Content-Type"));
        // Another origin, or one that only looks alike, gets nothing.
        for other in [
            EVIL,
            "https://spa.example.test.evil.test",
            "http://spa.example.test",
            "https://SPA.example.test",
            "null",
        ] {
            assert_no_cors(&from_origin(&app, m, path, other).await, other);
            assert_no_cors(&preflight(&app, path, other, m).await, other);
        }
    }
    let r = from_origin(&app, "GET", "/jwks", "http://localhost:5173").await;
    assert_eq!(allow_origin(&r), Some("http://localhost:5173"));
    // The routes a page must never read cross-origin: authorization and login pages,
    // introspection (confidential clients), registration, the admin API, metrics.
    let (_, admin) = admin_token(&app).await;
    for (m, path) in [
        ("GET", "/authorize"),
        ("POST", "/authorize/login"),
        ("POST", "/introspect"),
        ("POST", "/register"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
    ] {
        assert_no_cors(&from_origin(&app, m, path, SPA).await, path);
        assert_no_cors(&preflight(&app, path, SPA, m).await, path);
    }
    let r = app
        .http
        .get(app.url("/admin/v1/clients"))
        .bearer_auth(&admin)
        .header("origin", SPA)
        .send()
        .await
        .expect("admin");
    assert_no_cors(&Resp::read(r).await, "admin API");
}

#[actix_web::test]
async fn a_disabled_clients_origin_stops_getting_cors() {
    let app = TestApp::spawn().await;
    let c = spa_client(&app, &[SPA]).await;
    let r = from_origin(&app, "GET", "/jwks", SPA).await;
    assert_eq!(allow_origin(&r), Some(SPA));
    let out = app.cli(&["client", "disable", &c.client_id], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    app.eventually(
        "the origin is no longer allowed",
        Duration::from_secs(15),
        || async {
            let r = from_origin(&app, "GET", "/jwks", SPA).await;
            allow_origin(&r).is_none().then_some(())
        },
    )
    .await;
}

#[actix_web::test]
async fn allowed_origins_must_be_exact_https_origins() {
    let app = TestApp::spawn().await;
    let (_, admin) = admin_token(&app).await;
    for bad in [
        "*",
        "null",
        "https://spa.example.test/",
        "https://spa.example.test/app",
        "https://SPA.example.test",
        "http://spa.example.test",
        "spa.example.test",
        "https://spa.example.test?x=1",
        "javascript:alert(1)",
    ] {
        let r = call(
            &app,
            Method::POST,
            "/admin/v1/clients",
            Some(&admin),
            Some(json!({
                "client_name": "spa",
                "token_endpoint_auth_method": "none",
                "redirect_uris": ["https://spa.example.test/cb"],
                "scope": "openid",
                "allowed_origins": [bad],
            })),
        )
        .await;
        r.assert_oauth_error(400, "invalid_client_metadata");
        assert!(!r.text().contains(bad) || bad.len() < 5, "{}", r.text());
        let out = app
            .cli(
                &[
                    "client",
                    "add",
                    "--name",
                    "spa",
                    "--type",
                    "public",
                    "--redirect-uri",
                    "https://spa.example.test/cb",
                    "--allowed-origin",
                    bad,
                ],
                None,
            )
            .await;
        assert_ne!(out.code, Some(0), "{bad}: {out:?}");
        assert!(out.stderr.contains("allowed_origins"), "{out:?}");
    }
    // The admin API accepts good ones and shows them.
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&admin),
        Some(json!({
            "client_name": "spa",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["https://spa.example.test/cb"],
            "scope": "openid",
            "allowed_origins": [SPA, "https://spa.example.test:8443", "http://127.0.0.1:3000"],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        r.json()["allowed_origins"],
        json!([
            SPA,
            "https://spa.example.test:8443",
            "http://127.0.0.1:3000"
        ])
    );
}

#[actix_web::test]
async fn an_https_issuer_sends_strict_transport_security_and_http_does_not() {
    let http = TestApp::spawn().await;
    for path in ["/jwks", "/healthz", "/authorize"] {
        let r = http.get(path).await;
        assert!(r.header("strict-transport-security").is_none(), "{path}");
    }
    let https = TestApp::spawn_with(|c| c.issuer = "https://login.example.test".into()).await;
    for path in [
        "/jwks",
        "/healthz",
        "/authorize",
        "/.well-known/openid-configuration",
    ] {
        let r = https.get(path).await;
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    let r = https
        .post_token(&[("grant_type", "client_credentials")], None)
        .await;
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
}

#[actix_web::test]
async fn a_refused_scope_is_not_repeated_in_the_error_description() {
    let app = TestApp::spawn().await;
    let svc = app.add_service_client().await;
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "api:read payments:transfer_everything"),
            ],
            svc.basic(),
        )
        .await;
    r.assert_oauth_error(400, "invalid_scope");
    assert!(!r.text().contains("payments"), "{}", r.text());
    // At /authorize the description travels to the redirect URI (and the user's browser).
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &m.client.client_id)
        .append_pair("redirect_uri", browser::REDIRECT_PORT)
        .append_pair("scope", "openid payments:transfer_everything")
        .append_pair("state", "st-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let r = b.get(&format!("/authorize?{query}")).await;
    let (_, p) = location_params(&r);
    assert_eq!(p.get("error").map(String::as_str), Some("invalid_scope"));
    let d = p.get("error_description").cloned().unwrap_or_default();
    assert!(!d.contains("payments"), "{d}");
}
