//! OIDC RP-Initiated Logout from outside (issue 18 finding 7): only an `id_token_hint` this
//! server signed (expired is fine) signs the user out at once and allows the redirect to a
//! registered `post_logout_redirect_uri`; a forged hint, a hint for someone else, or none at
//! all (a cross-site link) gets a confirmation page with a CSRF-protected form, and never a
//! redirect.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::{
    Browser, Mobile, PASSWORD, authorize_path, exchange, hidden, is_confirmation, obtain_code,
    pkce, setup,
};
use crate::helpers::TestApp;

const AFTER: &str = "com.example.app%3A%2Flogged-out";

/// Signs in with `b` and returns the ID token the app received.
async fn id_token(app: &TestApp, b: &mut Browser<'_>, m: &Mobile) -> String {
    let (verifier, challenge) = pkce();
    let code = obtain_code(app, b, m, &challenge).await;
    let r = exchange(app, &m.client.client_id, &code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["id_token"].as_str().expect("id_token").to_owned()
}

/// Whether `b` is still signed in (as anyone): an authorization request gets the "Continue as" page
/// (this public app's loopback redirect always asks for one press, RFC 8252 §8.6) rather than
/// the password form.
async fn signed_in(b: &mut Browser<'_>, m: &Mobile) -> bool {
    let (_, challenge) = pkce();
    let r = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    match r.status {
        StatusCode::OK if is_confirmation(&r, "") => true,
        StatusCode::OK => {
            assert!(r.text().contains("name=\"password\""), "{}", r.text());
            false
        }
        s => panic!("unexpected {s}: {}", r.text()),
    }
}

#[track_caller]
fn assert_confirmation(r: &crate::helpers::Resp) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.header("location").is_none());
    assert!(r.text().contains("Sign out?"), "{}", r.text());
    assert!(r.text().contains("name=\"confirm\""), "{}", r.text());
}

fn with_payload(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    edit(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[actix_web::test]
async fn a_valid_hint_signs_out_and_redirects_to_a_registered_uri_only() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let mut b = Browser::new(&app);
    let hint = id_token(&app, &mut b, &m).await;
    // Unregistered: refused, whoever asks.
    let r = b
        .get(&format!(
            "/end_session?id_token_hint={hint}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.header("location").is_none());
    assert!(signed_in(&mut b, &m).await);
    let r = b
        .get(&format!(
            "/end_session?id_token_hint={hint}&post_logout_redirect_uri={AFTER}&state=s1"
        ))
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("com.example.app:/logged-out?state=s1")
    );
    assert!(!signed_in(&mut b, &m).await);
}

#[actix_web::test]
async fn an_expired_hint_still_signs_out() {
    let app = TestApp::spawn_with(|c| c.id_token_ttl = 10).await;
    let m = setup(&app, true).await;
    let mut b = Browser::new(&app);
    let hint = id_token(&app, &mut b, &m).await;
    actix_web::rt::time::sleep(Duration::from_millis(11_100)).await;
    let (_, claims) = crate::helpers::jwt_parts(&hint);
    assert!(
        claims["exp"].as_i64().expect("exp") < crate::helpers::now(),
        "expired"
    );
    let r = b
        .get(&format!(
            "/end_session?id_token_hint={hint}&post_logout_redirect_uri={AFTER}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(r.header("location"), Some("com.example.app:/logged-out"));
    assert!(!signed_in(&mut b, &m).await);
}

#[actix_web::test]
async fn forged_hints_get_a_confirmation_page_and_no_redirect() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let mut b = Browser::new(&app);
    let real = id_token(&app, &mut b, &m).await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(real.split('.').next().expect("header"))
            .expect("b64"),
    )
    .expect("json");
    let unsigned = {
        let mut h = header.clone();
        h["alg"] = "none".into();
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).expect("json"));
        let p = real.split('.').nth(1).expect("payload");
        format!("{h}.{p}.")
    };
    let tampered = with_payload(&real, |c| c["sub"] = "someone-else".into());
    let foreign_iss = with_payload(&real, |c| c["iss"] = "https://evil.example".into());
    let access_token = {
        let (verifier, challenge) = pkce();
        let code = obtain_code(&app, &mut b, &m, &challenge).await;
        exchange(&app, &m.client.client_id, &code, &verifier)
            .await
            .json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    };
    let wrong_client = format!("{real}&client_id=someone-elses-app");
    for hint in [
        unsigned.as_str(),
        tampered.as_str(),
        foreign_iss.as_str(),
        access_token.as_str(),
        "not.a.jwt",
        wrong_client.as_str(),
    ] {
        let r = b
            .get(&format!(
                "/end_session?id_token_hint={hint}&post_logout_redirect_uri={AFTER}&client_id={}",
                m.client.client_id
            ))
            .await;
        if hint == wrong_client {
            // Two client_ids, one of them unknown: the hint is not for this client.
            assert!(r.header("location").is_none(), "{hint}");
        } else {
            assert_confirmation(&r);
        }
        assert!(
            signed_in(&mut b, &m).await,
            "a forged hint signed the user out: {hint}"
        );
    }
}

#[actix_web::test]
async fn a_cross_site_logout_link_asks_first_and_the_form_needs_its_csrf_token() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let mut b = Browser::new(&app);
    id_token(&app, &mut b, &m).await;
    // What <img src> on another site would send: no hint, a registered redirect.
    let page = b
        .get(&format!(
            "/end_session?client_id={}&post_logout_redirect_uri={AFTER}",
            m.client.client_id
        ))
        .await;
    assert_confirmation(&page);
    assert!(page.text().contains("alice"), "{}", page.text());
    assert!(signed_in(&mut b, &m).await);
    // The form without its token, or with a planted one: refused.
    let r = b.post("/end_session", &[("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = b
        .post(
            "/end_session",
            &[("confirm", "yes"), ("csrf", &"A".repeat(43))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(signed_in(&mut b, &m).await);
    // The user presses "Sign out": signed out, and no redirect.
    let csrf = hidden(&page, "csrf");
    let r = b
        .post("/end_session", &[("confirm", "yes"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.header("location").is_none());
    assert!(r.text().contains("You are signed out"), "{}", r.text());
    assert!(!signed_in(&mut b, &m).await);
}

#[actix_web::test]
async fn a_hint_for_another_user_asks_the_signed_in_user() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let out = app
        .cli(
            &["user", "add", "--username", "bob", "--password-stdin"],
            Some(PASSWORD),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    // Alice's ID token, from another browser.
    let mut alices = Browser::new(&app);
    let hint = id_token(&app, &mut alices, &m).await;
    // Bob is signed in here.
    let mut b = Browser::new(&app);
    let (_, challenge) = pkce();
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let r = b.login(&page, "bob", PASSWORD).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = b
        .get(&format!(
            "/end_session?id_token_hint={hint}&post_logout_redirect_uri={AFTER}"
        ))
        .await;
    assert_confirmation(&r);
    assert!(r.text().contains("bob"), "{}", r.text());
    assert!(signed_in(&mut b, &m).await);
}
