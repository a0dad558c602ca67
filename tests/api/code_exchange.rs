//! The authorization_code grant: PKCE verification, binding to client and redirect URI,
//! single use, replay revocation, concurrent redemption, and the tokens it issues.

use reqwest::StatusCode;

use crate::browser::{Browser, REDIRECT_PORT, exchange, obtain_code, pkce, refresh, setup};
use crate::helpers::{API, TestApp, jwt_parts, sha256_b64url, verify_offline};

#[actix_web::test]
async fn the_code_flow_issues_tokens_that_verify_offline() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let tokens = crate::browser::login_tokens(&app, &m).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(
        tokens["refresh_token"].is_string(),
        "offline_access gives a refresh token"
    );
    let jwks = app.jwks().await;
    let at = tokens["access_token"].as_str().expect("access_token");
    let v = verify_offline(at, &jwks, &app.issuer, API).expect("access token verifies");
    assert_eq!(v.claims["sub"], m.sub.as_str());
    assert_eq!(v.claims["client_id"], m.client.client_id.as_str());
    assert!(v.claims["auth_time"].is_i64());
    // ID token: RS256 by default, audience = client, nonce, at_hash, azp, sid.
    let id = tokens["id_token"].as_str().expect("id_token");
    let (h, c) = jwt_parts(id);
    assert_eq!(h["alg"], "RS256");
    let v = verify_offline(id, &jwks, &app.issuer, &m.client.client_id).expect("id token verifies");
    assert_eq!(v.claims["nonce"], "n-456");
    assert_eq!(c["azp"], m.client.client_id.as_str());
    assert!(c["sid"].is_string());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, at.as_bytes());
    let left = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &digest.as_ref()[..16],
    );
    assert_eq!(c["at_hash"], left.as_str());
}

#[actix_web::test]
async fn a_wrong_or_missing_verifier_is_invalid_grant_and_burns_the_code() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(&app);
    let code = obtain_code(&app, &mut b, &m, &challenge).await;
    let (other, _) = pkce();
    exchange(&app, &m.client.client_id, &code, &other)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // The code was spent by the failed attempt.
    exchange(&app, &m.client.client_id, &code, &verifier)
        .await
        .assert_oauth_error(400, "invalid_grant");

    let code = obtain_code(&app, &mut b, &m, &challenge).await;
    let r = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_PORT),
                ("client_id", &m.client.client_id),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(400, "invalid_grant");
    // The challenge itself is not a verifier.
    let code = obtain_code(&app, &mut b, &m, &challenge).await;
    exchange(&app, &m.client.client_id, &code, &challenge)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(sha256_b64url(&verifier), challenge);
}

#[actix_web::test]
async fn the_code_is_bound_to_its_client_and_redirect_uri() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let other = app
        .add_client(&[
            "--name",
            "other",
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT_PORT,
            "--scope",
            "openid",
        ])
        .await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(&app);
    let code = obtain_code(&app, &mut b, &m, &challenge).await;
    exchange(&app, &other.client_id, &code, &verifier)
        .await
        .assert_oauth_error(400, "invalid_grant");

    let code = obtain_code(&app, &mut b, &m, &challenge).await;
    let r = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9999/cb"),
                ("client_id", &m.client.client_id),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(400, "invalid_grant");
    // Unknown and forged codes.
    exchange(&app, &m.client.client_id, "not-a-code", &verifier)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // An unknown client id is invalid_client, not a 5xx.
    exchange(&app, "nobody", "x", &verifier)
        .await
        .assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn a_replayed_code_revokes_what_it_issued() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(&app);
    let code = obtain_code(&app, &mut b, &m, &challenge).await;
    let first = exchange(&app, &m.client.client_id, &code, &verifier).await;
    assert_eq!(first.status, StatusCode::OK);
    let tokens = first.json();
    exchange(&app, &m.client.client_id, &code, &verifier)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // The refresh token and the access token from the first redemption are dead now.
    refresh(
        &app,
        &m.client.client_id,
        tokens["refresh_token"].as_str().expect("rt"),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn two_concurrent_redemptions_of_one_code_yield_exactly_one_success() {
    let app = TestApp::spawn_with(|c| c.workers = 2).await;
    let m = setup(&app, true).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(&app);
    for _ in 0..5 {
        let code = obtain_code(&app, &mut b, &m, &challenge).await;
        let (a, c) = futures_util::future::join(
            exchange(&app, &m.client.client_id, &code, &verifier),
            exchange(&app, &m.client.client_id, &code, &verifier),
        )
        .await;
        let ok = [a.status, c.status]
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
        assert_eq!(ok, 1, "{} / {}", a.text(), c.text());
        let loser = if a.status == StatusCode::OK { &c } else { &a };
        loser.assert_oauth_error(400, "invalid_grant");
    }
}

#[actix_web::test]
async fn an_expired_code_is_invalid_grant() {
    let app = TestApp::spawn_with(|c| c.code_ttl = 5).await;
    let m = setup(&app, true).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::new(&app);
    let code = obtain_code(&app, &mut b, &m, &challenge).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(6100)).await;
    exchange(&app, &m.client.client_id, &code, &verifier)
        .await
        .assert_oauth_error(400, "invalid_grant");
}
