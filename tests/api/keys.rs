//! Key rotation driven by `latchkey keys rotate` while the server runs: the new key is
//! published at once (the server polls the schedule every 2 s), signs after
//! `key_publish_ahead`, and the old key stays published for the tokens it signed.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{API, TestApp, jwt_parts, kids, now, verify_offline};

/// How long a running server may take to notice a rotation: one 2 s poll plus slack.
const PICKUP: Duration = Duration::from_secs(4);

fn cli_json(out: &crate::helpers::CliOutput) -> Value {
    assert_eq!(out.code, Some(0), "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

async fn keys_list(app: &TestApp) -> Vec<Value> {
    let v = cli_json(&app.cli(&["keys", "list", "--json"], None).await);
    v.as_array().expect("array").clone()
}

fn state_of<'a>(list: &'a [Value], kid: &str) -> &'a str {
    list.iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in keys list: {list:?}"))["state"]
        .as_str()
        .expect("state")
}

/// Waits (at most ~1 s) until the wall clock is past the second in which the current keys
/// activated, so that a key rotated now has a strictly later activation time.
async fn wait_for_next_second(app: &TestApp) {
    let latest = keys_list(app)
        .await
        .iter()
        .filter_map(|k| k["activates_at"].as_i64())
        .max()
        .expect("keys have activation times");
    app.eventually("the next second", Duration::from_secs(2), || async {
        (now() > latest).then_some(())
    })
    .await;
}

/// The ES256 kid from `keys rotate --json`.
fn rotated_kid(rotated: &Value, alg: &str) -> String {
    rotated
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["alg"] == alg)
        .unwrap_or_else(|| panic!("no {alg} key in {rotated}"))["kid"]
        .as_str()
        .expect("kid")
        .to_owned()
}

#[actix_web::test]
async fn keys_list_shows_the_initial_active_keys() {
    let app = TestApp::spawn().await;
    let list = keys_list(&app).await;
    let jwks = app.jwks().await;
    let es = kids(&jwks, "ES256");
    let rs = kids(&jwks, "RS256");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(state_of(&list, &es[0]), "active");
    assert_eq!(state_of(&list, &rs[0]), "active");
    let out = app.cli(&["keys", "list", "--json"], None).await;
    assert!(!out.stdout.contains("PRIVATE KEY"), "{out:?}");
    assert!(!out.stdout.contains("\"d\""), "{out:?}");
}

#[actix_web::test]
async fn rotation_without_grace_period_switches_the_signing_key() {
    let app = TestApp::spawn_with(|c| {
        c.key_publish_ahead = 0;
        c.jwks_max_age = 0;
    })
    .await;
    let client = app.add_service_client().await;
    let old_token = app.access_token_for(&client).await;
    let old_kid = jwt_parts(&old_token).0["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert_eq!(
        kids(&app.jwks().await, "ES256"),
        std::slice::from_ref(&old_kid)
    );
    wait_for_next_second(&app).await;

    let rotated = cli_json(&app.cli(&["keys", "rotate", "--json"], None).await);
    let new_kid = rotated_kid(&rotated, "ES256");
    rotated_kid(&rotated, "RS256"); // every configured algorithm is rotated by default
    assert_ne!(new_kid, old_kid);

    let started = Instant::now();
    let jwks = app
        .eventually(
            "the running server to publish the new key",
            PICKUP,
            || async {
                let jwks = app.jwks().await;
                kids(&jwks, "ES256").contains(&new_kid).then_some(jwks)
            },
        )
        .await;
    let took = started.elapsed();
    let es = kids(&jwks, "ES256");
    assert!(es.contains(&old_kid), "the old key stays published: {jwks}");
    assert_eq!(es.len(), 2, "{jwks}");

    // The key set is swapped as a whole: once the JWKS shows the new key, tokens use it.
    let new_token = app.access_token_for(&client).await;
    assert_eq!(
        jwt_parts(&new_token).0["kid"],
        new_kid.as_str(),
        "new tokens are signed with the new key (picked up after {took:?})"
    );
    verify_offline(&new_token, &jwks, &app.issuer, API).expect("new token verifies");
    verify_offline(&old_token, &jwks, &app.issuer, API)
        .expect("a token signed before the rotation still verifies against the JWKS");

    let list = keys_list(&app).await;
    assert_eq!(state_of(&list, &new_kid), "active");
    assert_eq!(state_of(&list, &old_kid), "retiring");
    let old = list
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .expect("old");
    let expires_at = old["expires_at"]
        .as_i64()
        .expect("the old key has an end of publication");
    let old_exp = jwt_parts(&old_token).1["exp"].as_i64().expect("exp");
    assert!(
        expires_at >= old_exp,
        "the old key must stay published until its tokens expire ({expires_at} < {old_exp})"
    );
}

#[actix_web::test]
async fn rotation_with_grace_period_publishes_without_signing() {
    let app = TestApp::spawn_with(|c| c.key_publish_ahead = 3600).await;
    let client = app.add_service_client().await;
    let old_kid = jwt_parts(&app.access_token_for(&client).await).0["kid"]
        .as_str()
        .expect("kid")
        .to_owned();

    let rotated = cli_json(&app.cli(&["keys", "rotate", "--json"], None).await);
    let new_kid = rotated_kid(&rotated, "ES256");
    let new = rotated
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["kid"] == new_kid.as_str())
        .expect("new key");
    assert_eq!(
        new["activates_at"].as_i64().expect("activates_at")
            - new["published_at"].as_i64().expect("published_at"),
        3600
    );

    let jwks = app
        .eventually(
            "the running server to publish the new key",
            PICKUP,
            || async {
                let jwks = app.jwks().await;
                kids(&jwks, "ES256").contains(&new_kid).then_some(jwks)
            },
        )
        .await;
    assert!(kids(&jwks, "ES256").contains(&old_kid), "{jwks}");

    // Published ahead, but not signing yet.
    for _ in 0..3 {
        let token = app.access_token_for(&client).await;
        assert_eq!(jwt_parts(&token).0["kid"], old_kid.as_str());
        verify_offline(&token, &jwks, &app.issuer, API).expect("verifies");
    }
    let list = keys_list(&app).await;
    assert_eq!(state_of(&list, &new_kid), "pending");
    assert_eq!(state_of(&list, &old_kid), "active");
}

#[actix_web::test]
async fn rotating_one_algorithm_leaves_the_other_alone() {
    let app = TestApp::spawn_with(|c| c.key_publish_ahead = 3600).await;
    let before = app.jwks().await;
    let rotated = cli_json(
        &app.cli(&["keys", "rotate", "--alg", "RS256", "--json"], None)
            .await,
    );
    assert_eq!(rotated.as_array().expect("array").len(), 1, "{rotated}");
    let new_rs = rotated_kid(&rotated, "RS256");
    let jwks = app
        .eventually("the new RS256 key", PICKUP, || async {
            let jwks = app.jwks().await;
            kids(&jwks, "RS256").contains(&new_rs).then_some(jwks)
        })
        .await;
    assert_eq!(kids(&jwks, "ES256"), kids(&before, "ES256"));
    assert_eq!(kids(&jwks, "RS256").len(), 2);
}

#[actix_web::test]
async fn two_rotations_in_the_same_second_sign_with_the_newest_key() {
    // Without a publish-ahead window both rotated keys would activate at the same instant;
    // each rotation must activate strictly after its predecessor, so the signer is the newest.
    let app = TestApp::spawn_with(|c| c.key_publish_ahead = 0).await;
    let client = app.add_service_client().await;
    let first = cli_json(
        &app.cli(&["keys", "rotate", "--alg", "ES256", "--json"], None)
            .await,
    );
    let second = cli_json(
        &app.cli(&["keys", "rotate", "--alg", "ES256", "--json"], None)
            .await,
    );
    let (k1, k2) = (rotated_kid(&first, "ES256"), rotated_kid(&second, "ES256"));
    assert!(
        second[0]["activates_at"].as_i64() > first[0]["activates_at"].as_i64(),
        "{first} / {second}"
    );
    app.eventually(
        "the second rotated key to sign",
        Duration::from_secs(8),
        || async {
            let t = app.access_token_for(&client).await;
            (jwt_parts(&t).0["kid"] == k2.as_str()).then_some(())
        },
    )
    .await;
    assert_ne!(k1, k2);
}

#[actix_web::test]
async fn scheduled_rotation_publishes_ahead_then_signs_and_keeps_the_old_key() {
    let app = TestApp::spawn_with(|c| {
        c.key_publish_ahead = 2;
        c.key_rotation_interval = 4;
        c.jwks_max_age = 300;
    })
    .await;
    // The JWKS may not be cached longer than a new key is published before it signs.
    let r = app.get("/jwks").await;
    assert_eq!(r.header("cache-control"), Some("public, max-age=2"));
    let first = kids(&app.jwks().await, "ES256");
    assert_eq!(first.len(), 1);
    let svc = app.add_service_client().await;

    // Within one interval plus a poll, a second key is published without anyone asking...
    let new_kid = app
        .eventually("a scheduled rotation", Duration::from_secs(10), || async {
            let es = kids(&app.jwks().await, "ES256");
            es.into_iter().find(|k| *k != first[0])
        })
        .await;
    let published_at = Instant::now();
    let list = keys_list(&app).await;
    let state = state_of(&list, &new_kid);
    // ...and, until key_publish_ahead has passed, tokens are still signed with the old key.
    if state == "pending" {
        let token = app.access_token_for(&svc).await;
        assert_eq!(jwt_parts(&token).0["kid"], first[0].as_str());
    }
    // Then the new key signs, and the old one stays published for the tokens it signed.
    let token = app
        .eventually("the new key to sign", Duration::from_secs(6), || async {
            let t = app.access_token_for(&svc).await;
            (jwt_parts(&t).0["kid"] == new_kid.as_str()).then_some(t)
        })
        .await;
    assert!(published_at.elapsed() < Duration::from_secs(6));
    let jwks = app.jwks().await;
    assert!(
        kids(&jwks, "ES256").contains(&first[0]),
        "old key still published"
    );
    verify_offline(&token, &jwks, &app.issuer, API).expect("new token verifies");
    // RS256 (ID tokens) rotated on the same schedule.
    assert!(kids(&jwks, "RS256").len() >= 2, "{jwks}");
}

#[actix_web::test]
async fn rotation_interval_not_longer_than_publish_ahead_is_refused() {
    let app = TestApp::spawn().await;
    let out = app
        .cli_with_env(
            &["keys", "list"],
            None,
            &[
                ("LATCHKEY_KEY_PUBLISH_AHEAD", "600"),
                ("LATCHKEY_KEY_ROTATION_INTERVAL", "300"),
            ],
        )
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("key_rotation_interval"), "{out:?}");
}
