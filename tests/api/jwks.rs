//! The JWKS endpoint (RFC 7517/7518): public keys only, kid = RFC 7638 thumbprint, cacheable.

use reqwest::StatusCode;

use crate::helpers::{TestApp, jsonwebtoken_thumbprint, kids, rfc7638_thumbprint};

/// Private (or symmetric) key members that must never be published (RFC 7518 §6).
const PRIVATE_MEMBERS: [&str; 9] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"];

#[actix_web::test]
async fn jwks_is_cacheable_json() {
    let app = TestApp::spawn().await;
    let r = app.get_jwks().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.media_type(), "application/json");
    let cc = r
        .header("cache-control")
        .expect("Cache-Control on the JWKS");
    assert!(
        cc.split(',').any(|d| d.trim() == "max-age=300"),
        "Cache-Control should carry the configured max-age: {cc}"
    );
    assert!(!cc.contains("no-store"), "{cc}");
}

#[actix_web::test]
async fn jwks_max_age_follows_configuration() {
    let app = TestApp::spawn_with(|c| {
        c.jwks_max_age = 42;
        c.key_publish_ahead = 42;
    })
    .await;
    let r = app.get_jwks().await;
    let cc = r.header("cache-control").expect("Cache-Control");
    assert!(cc.split(',').any(|d| d.trim() == "max-age=42"), "{cc}");
}

#[actix_web::test]
async fn keys_are_public_signing_keys_with_thumbprint_kids() {
    let app = TestApp::spawn().await;
    let jwks = app.jwks().await;
    let keys = jwks["keys"].as_array().expect("keys array");
    assert!(!keys.is_empty());
    for k in keys {
        let kid = k["kid"].as_str().unwrap_or_else(|| panic!("no kid: {k}"));
        assert!(k["alg"].is_string(), "no alg: {k}");
        assert_eq!(k["use"], "sig", "{k}");
        for m in PRIVATE_MEMBERS {
            assert!(k.get(m).is_none(), "private member {m:?} published: {k}");
        }
        assert_eq!(
            kid,
            jsonwebtoken_thumbprint(k),
            "kid is not the RFC 7638 thumbprint (jsonwebtoken)"
        );
        assert_eq!(
            kid,
            rfc7638_thumbprint(k),
            "kid is not the RFC 7638 thumbprint (computed from members)"
        );
    }
    let mut all: Vec<&str> = keys.iter().filter_map(|k| k["kid"].as_str()).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), keys.len(), "kids are unique");
}

#[actix_web::test]
async fn es256_and_rs256_keys_are_published() {
    let app = TestApp::spawn().await;
    let jwks = app.jwks().await;
    let es = kids(&jwks, "ES256");
    let rs = kids(&jwks, "RS256");
    assert_eq!(es.len(), 1, "one ES256 key on first start: {jwks}");
    assert_eq!(rs.len(), 1, "one RS256 key on first start: {jwks}");
    for k in jwks["keys"].as_array().expect("keys") {
        match k["alg"].as_str() {
            Some("ES256") => {
                assert_eq!(k["kty"], "EC", "{k}");
                assert_eq!(k["crv"], "P-256", "{k}");
            }
            Some("RS256") => {
                assert_eq!(k["kty"], "RSA", "{k}");
                let n = k["n"].as_str().expect("n");
                // base64url of a >= 2048-bit modulus is at least 342 characters.
                assert!(n.len() >= 342, "RSA modulus shorter than 2048 bits: {k}");
            }
            other => panic!("unexpected alg {other:?}: {k}"),
        }
    }
}

#[actix_web::test]
async fn keys_survive_a_restart_on_the_same_directory() {
    // The key ring is generated on first start only: a second server on the same database and
    // keys directory publishes the same kids.
    let app = TestApp::spawn().await;
    let before = app.jwks().await;
    let (db, dir) = (app.config.database_url.clone(), app.config.keys_dir.clone());
    let again = TestApp::spawn_with(|c| {
        c.database_url = db;
        c.keys_dir = dir;
    })
    .await;
    let after = again.jwks().await;
    assert_eq!(kids(&before, "ES256"), kids(&after, "ES256"));
    assert_eq!(kids(&before, "RS256"), kids(&after, "RS256"));
}

#[cfg(unix)]
#[actix_web::test]
async fn private_keys_are_sealed_at_rest_and_the_kek_file_is_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let dir_mode = std::fs::metadata(&app.config.keys_dir)
        .expect("keys_dir exists")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "keys_dir mode {dir_mode:o}");
    let names: Vec<String> = std::fs::read_dir(&app.config.keys_dir)
        .expect("read keys_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        vec!["kek.key".to_string()],
        "only the KEK lives on disk"
    );
    let kek = app.config.keys_dir.join("kek.key");
    let mode = std::fs::metadata(&kek).expect("kek").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "kek.key mode {mode:o}");
    // The database holds the private keys sealed: no PEM, no PKCS#8 DER in the clear.
    let db_path = app.config.database_url.trim_start_matches("sqlite://");
    let mut bytes = std::fs::read(db_path).expect("read db");
    if let Ok(wal) = std::fs::read(format!("{db_path}-wal")) {
        bytes.extend(wal);
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("v1."),
        "sealed keys are stored in the database"
    );
    assert!(!text.contains("PRIVATE KEY"), "no PEM in the database");
    // The base64 of a PKCS#8 EC (P-256) or RSA private key starts like this; "MIG" alone
    // occurs by chance in ~2% of databases full of random base64.
    for prefix in [
        "MIGHAgEAMBMGByqGSM49",
        "ADANBgkqhkiG9w0BAQEF",
        "MC4CAQAwBQYDK2Vw",
    ] {
        assert!(!text.contains(prefix), "no base64 PKCS#8 in the database");
    }
}

#[actix_web::test]
async fn a_server_with_another_kek_refuses_to_start_and_says_why() {
    let app = TestApp::spawn().await;
    let other_keys = tempfile::tempdir().expect("tempdir");
    let mut config = app.config.clone();
    config.keys_dir = other_keys.path().join("keys");
    config.listen = "127.0.0.1:0".into();
    let err = match latchkey::app::Application::build(config).await {
        Ok(_) => panic!("a server whose KEK cannot open the stored keys must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("key-encryption key"), "{err}");
    assert!(err.contains("same key-encryption key"), "{err}");
}
