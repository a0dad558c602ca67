//! The login and consent pages: CSRF, wrong passwords, enumeration, throttling, consent.

use reqwest::StatusCode;

use crate::browser::{
    Browser, PASSWORD, authorize_path, hidden, is_confirmation, location_params, pkce, setup,
};
use crate::helpers::TestApp;

#[actix_web::test]
async fn login_without_or_with_a_forged_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let request = hidden(&page, "request");
    for csrf in [
        "",
        "forged-token-forged-token-forged-token-1234",
        &"A".repeat(43),
    ] {
        let r = b
            .post(
                "/authorize/login",
                &[
                    ("csrf", csrf),
                    ("request", &request),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "csrf {csrf:?}: {}",
            r.text()
        );
        assert!(r.header("location").is_none());
        assert!(
            !b.cookies.contains_key("lk_session"),
            "no session without CSRF"
        );
    }
    // A browser without the CSRF cookie (a cross-site form post) is refused too.
    let mut other = Browser::new(&app);
    let r = other
        .post(
            "/authorize/login",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("request", &request),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let wrong = b.login(&page, "alice", "not the password").await;
    let unknown = b.login(&page, "mallory", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("Invalid username or password."));
    assert!(unknown.text().contains("Invalid username or password."));
    assert!(!b.cookies.contains_key("lk_session"));
}

#[actix_web::test]
async fn a_disabled_user_cannot_log_in() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    assert_eq!(
        app.cli(&["user", "disable", "alice"], None).await.code,
        Some(0)
    );
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let r = b.login(&page, "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn brute_force_is_throttled_per_account_with_a_clear_message() {
    let app = TestApp::spawn_with(|c| {
        c.login_burst_per_account = 3;
        c.login_replenish_secs = 600;
    })
    .await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    for _ in 0..3 {
        assert_eq!(
            b.login(&page, "alice", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password waits now: the account is throttled, not the guess.
    let r = b.login(&page, "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(
        r.text().contains("Too many sign-in attempts"),
        "{}",
        r.text()
    );
    // Case variations of the username share the bucket.
    assert_eq!(
        b.login(&page, "ALICE", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn brute_force_is_throttled_per_ip_across_accounts() {
    let app = TestApp::spawn_with(|c| {
        c.login_burst_per_ip = 2;
        c.login_replenish_secs = 600;
    })
    .await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    assert_eq!(
        b.login(&page, "u1", "x").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.login(&page, "u2", "x").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.login(&page, "u3", "x").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn third_party_clients_ask_for_consent_and_deny_is_access_denied() {
    let app = TestApp::spawn().await;
    let m = setup(&app, false).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let consent = b.login(&page, "alice", PASSWORD).await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.text().contains(">Allow<"), "{}", consent.text());
    let r = b.consent(&consent, "deny").await;
    let (_, p) = location_params(&r);
    assert_eq!(p.get("error").map(String::as_str), Some("access_denied"));
    assert!(!p.contains_key("code"));
    // prompt=none now says consent_required; after Allow, consent is remembered.
    let r = b
        .get(&authorize_path(
            &m.client.client_id,
            &challenge,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(
        location_params(&r).1.get("error").map(String::as_str),
        Some("consent_required")
    );
    let consent = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let r = b.consent(&consent, "allow").await;
    assert!(location_params(&r).1.contains_key("code"));
    // Consent remembered: no consent page again, only the one-press confirmation a public
    // client with a loopback redirect always gets (RFC 8252 §8.6).
    let r = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    assert!(
        is_confirmation(&r, "alice"),
        "consent remembered: {}",
        r.text()
    );
    let r = b.consent(&r, "allow").await;
    assert!(location_params(&r).1.contains_key("code"));
    // A forged CSRF token on the consent form is refused.
    let consent = b
        .get(&authorize_path(
            &m.client.client_id,
            &challenge,
            &[("prompt", "consent")],
        ))
        .await;
    let r = b
        .post(
            "/authorize/consent",
            &[
                ("csrf", "forged"),
                ("request", &hidden(&consent, "request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn consent_to_one_api_is_not_consent_to_another() {
    use crate::browser::{REDIRECT, SCOPE};
    const PAYMENTS: &str = "https://payments.example.test";
    let app = TestApp::spawn().await;
    setup(&app, false).await; // alice
    let client = app
        .add_client(&[
            "--name",
            "wallet",
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT,
            "--grant",
            "authorization_code",
            "--scope",
            SCOPE,
            "--audience",
            crate::helpers::API,
            "--audience",
            PAYMENTS,
        ])
        .await;
    let cid = client.client_id.as_str();
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(
            cid,
            &challenge,
            &[("resource", crate::helpers::API)],
        ))
        .await;
    let consent = b.login(&page, "alice", PASSWORD).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.text());
    assert!(
        consent.text().contains("api.example.test"),
        "{}",
        consent.text()
    );
    assert!(
        !consent.text().contains("payments.example.test"),
        "{}",
        consent.text()
    );
    let r = b.consent(&consent, "allow").await;
    assert!(location_params(&r).1.contains_key("code"));
    // The same API again: remembered (the confirmation page, not the consent page).
    let r = b
        .get(&authorize_path(
            cid,
            &challenge,
            &[("resource", crate::helpers::API)],
        ))
        .await;
    assert!(is_confirmation(&r, "alice"), "{}", r.text());
    let r = b.consent(&r, "allow").await;
    assert!(location_params(&r).1.contains_key("code"), "{}", r.text());
    // Another API: not covered, whatever the scope.
    let r = b
        .get(&authorize_path(
            cid,
            &challenge,
            &[("resource", PAYMENTS), ("prompt", "none")],
        ))
        .await;
    assert_eq!(
        location_params(&r).1.get("error").map(String::as_str),
        Some("consent_required")
    );
    let consent = b
        .get(&authorize_path(cid, &challenge, &[("resource", PAYMENTS)]))
        .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.text());
    assert!(
        consent.text().contains("payments.example.test"),
        "{}",
        consent.text()
    );
    let r = b.consent(&consent, "allow").await;
    assert!(location_params(&r).1.contains_key("code"));
    // Both are remembered now (the earlier one was not forgotten): no consent page, and
    // prompt=none fails only for want of the confirmation, not of consent.
    for aud in [crate::helpers::API, PAYMENTS] {
        let r = b
            .get(&authorize_path(
                cid,
                &challenge,
                &[("resource", aud), ("prompt", "none")],
            ))
            .await;
        assert_eq!(
            location_params(&r).1.get("error").map(String::as_str),
            Some("interaction_required"),
            "{aud}"
        );
        let r = b
            .get(&authorize_path(cid, &challenge, &[("resource", aud)]))
            .await;
        assert!(is_confirmation(&r, "alice"), "{aud}: {}", r.text());
        let r = b.consent(&r, "allow").await;
        assert!(location_params(&r).1.contains_key("code"), "{aud}");
    }
}
