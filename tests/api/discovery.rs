//! OIDC Discovery 1.0 / RFC 8414 metadata and the health endpoints.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

const WELL_KNOWN: [&str; 2] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
];

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|s| s.as_str().expect("string"))
        .collect()
}

#[actix_web::test]
async fn both_well_known_documents_describe_the_issuer() {
    let app = TestApp::spawn().await;
    let mut docs = Vec::new();
    for path in WELL_KNOWN {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert_eq!(r.media_type(), "application/json", "{path}");
        let m = r.json();
        // RFC 8414 §3.3: identical to the issuer the client used, character for character.
        assert_eq!(m["issuer"], app.issuer.as_str(), "{path}");
        assert_eq!(
            m["token_endpoint"],
            format!("{}/token", app.issuer),
            "{path}"
        );
        assert_eq!(m["jwks_uri"], format!("{}/jwks", app.issuer), "{path}");
        docs.push(m);
    }
    assert_eq!(docs[0], docs[1], "both documents describe the same server");
}

#[actix_web::test]
async fn metadata_advertises_what_is_implemented() {
    let app = TestApp::spawn().await;
    let m = app.discovery().await.json();
    assert_eq!(
        strings(&m["grant_types_supported"]),
        [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"
        ]
    );
    let mut methods = strings(&m["token_endpoint_auth_methods_supported"]);
    methods.sort_unstable();
    assert_eq!(
        methods,
        [
            "attest_jwt_client_auth",
            "client_secret_basic",
            "client_secret_post",
            "none",
            "private_key_jwt"
        ]
    );
    assert_eq!(
        strings(&m["token_endpoint_auth_signing_alg_values_supported"]),
        ["ES256", "ES384", "RS256", "PS256", "EdDSA"]
    );
    assert_eq!(
        strings(&m["access_token_signing_alg_values_supported"]),
        ["ES256"]
    );
    assert!(
        strings(&m["id_token_signing_alg_values_supported"]).contains(&"RS256"),
        "RS256 is the OIDC mandatory ID token algorithm: {m}"
    );
    for alg in strings(&m["id_token_signing_alg_values_supported"])
        .into_iter()
        .chain(strings(&m["access_token_signing_alg_values_supported"]))
    {
        assert_ne!(alg, "none", "alg none must never be advertised");
        assert!(!alg.starts_with("HS"), "HMAC must not be advertised: {alg}");
    }
    // Every advertised endpoint is absolute, under the issuer, and actually answers.
    for (k, v) in m.as_object().expect("object") {
        if k.ends_with("_endpoint") || k == "jwks_uri" {
            let url = v.as_str().expect("endpoint URL");
            assert!(
                url.starts_with(&format!("{}/", app.issuer)),
                "{k} = {url} is not under the issuer"
            );
        }
    }
    let jwks_uri = m["jwks_uri"].as_str().expect("jwks_uri");
    let r = app.http.get(jwks_uri).send().await.expect("jwks");
    assert_eq!(r.status(), StatusCode::OK);
    let token_endpoint = m["token_endpoint"].as_str().expect("token_endpoint");
    let r = app
        .http
        .post(token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the advertised token endpoint is live"
    );
}

#[actix_web::test]
async fn metadata_does_not_advertise_unimplemented_endpoints() {
    let app = TestApp::spawn().await;
    let m = app.discovery().await.json();
    // Implemented since the mobile-login work: advertised with exact values.
    assert_eq!(strings(&m["code_challenge_methods_supported"]), ["S256"]);
    assert_eq!(strings(&m["response_types_supported"]), ["code"]);
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    for present in [
        "authorization_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
        "registration_endpoint",
    ] {
        assert!(m[present].is_string(), "{present} missing: {m}");
    }
    // DPoP (RFC 9449 §5.1): asymmetric proof algorithms only.
    assert_eq!(
        strings(&m["dpop_signing_alg_values_supported"]),
        ["ES256", "ES384", "EdDSA", "RS256", "PS256"]
    );
    for g in strings(&m["grant_types_supported"]) {
        assert!(
            !["implicit", "password"].contains(&g),
            "{g} must never be supported"
        );
    }
}

#[actix_web::test]
async fn issuer_is_exactly_the_configured_value() {
    // A non-default issuer (e.g. behind a proxy, with a path) is echoed verbatim.
    let app = TestApp::spawn_with(|c| c.issuer = "https://id.example.test/tenant-a".into()).await;
    let m = app.discovery().await.json();
    assert_eq!(m["issuer"], "https://id.example.test/tenant-a");
    assert_eq!(
        m["token_endpoint"],
        "https://id.example.test/tenant-a/token"
    );
    assert_eq!(m["jwks_uri"], "https://id.example.test/tenant-a/jwks");
}

#[actix_web::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert_eq!(r.media_type(), "application/json", "{path}");
    }
    assert_eq!(app.get("/readyz").await.json()["status"], "ready");
}

#[actix_web::test]
async fn unknown_path_is_404() {
    let app = TestApp::spawn().await;
    let r = app.get("/.well-known/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
