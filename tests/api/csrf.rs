//! CSRF tokens bound to the browser's session (issue 18 finding 8): a value planted in the
//! CSRF cookie and repeated in the form is refused (the old double-submit check took it),
//! signing in rotates the token, a token is worthless in another browser, and an https issuer
//! uses `__Host-` cookies.

use reqwest::StatusCode;

use crate::browser::{Browser, PASSWORD, authorize_path, hidden, location_params, pkce, setup};
use crate::helpers::TestApp;

fn set_cookies(r: &crate::helpers::Resp) -> Vec<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .collect()
}

#[actix_web::test]
async fn a_planted_cookie_with_the_same_value_in_the_form_is_refused() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut victim = Browser::new(&app);
    let page = victim
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let request = hidden(&page, "request");
    // The token is not the cookie's value: knowing the cookie is not knowing the token.
    let token = hidden(&page, "csrf");
    assert_ne!(victim.cookies.get("lk_csrf"), Some(&token));
    // An attacker who can set the victim's cookie (a sibling subdomain, a MITM on http)
    // plants a value and submits the same value in the form.
    let planted = "P".repeat(43);
    victim.cookies.insert("lk_csrf".into(), planted.clone());
    let r = victim
        .post(
            "/authorize/login",
            &[
                ("csrf", &planted),
                ("request", &request),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(!victim.cookies.contains_key("lk_session"));
    // A token shown to another browser is worthless here.
    let mut other = Browser::new(&app);
    let other_page = other
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let mut third = Browser::new(&app);
    let third_page = third
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let r = third
        .post(
            "/authorize/login",
            &[
                ("csrf", &hidden(&other_page, "csrf")),
                ("request", &hidden(&third_page, "request")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // The page's own token still works.
    let r = third.login(&third_page, "alice", PASSWORD).await;
    assert!(location_params(&r).1.contains_key("code"));
}

#[actix_web::test]
async fn signing_in_rotates_the_token_and_binds_it_to_the_session() {
    let app = TestApp::spawn().await;
    let m = setup(&app, false).await; // consent: a form after sign-in
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let before = hidden(&page, "csrf");
    let pre_cookie = b
        .cookies
        .get("lk_csrf")
        .cloned()
        .expect("pre-session cookie");
    let consent = b.login(&page, "alice", PASSWORD).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.text());
    let after = hidden(&consent, "csrf");
    assert_ne!(before, after, "the token rotates at sign-in");
    assert_ne!(
        b.cookies.get("lk_csrf"),
        Some(&pre_cookie),
        "so does the cookie"
    );
    // The pre-sign-in token no longer works on the consent form.
    let request = hidden(&consent, "request");
    let r = b
        .post(
            "/authorize/consent",
            &[
                ("csrf", &before),
                ("request", &request),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // Nor does this session's token in a browser with another session.
    let mut other = Browser::new(&app);
    let p2 = other
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let c2 = other.login(&p2, "alice", PASSWORD).await;
    assert_eq!(c2.status, StatusCode::OK, "{}", c2.text());
    let r = other
        .post(
            "/authorize/consent",
            &[
                ("csrf", &after),
                ("request", &hidden(&c2, "request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // The session's own token does.
    let r = b.consent(&consent, "allow").await;
    assert!(location_params(&r).1.contains_key("code"));
}

#[actix_web::test]
async fn an_https_issuer_uses_host_prefixed_cookies() {
    let app = TestApp::spawn_with(|c| c.issuer = "https://login.example.test".into()).await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let csrf = set_cookies(&page)
        .into_iter()
        .find(|c| c.starts_with("__Host-lk_csrf="))
        .expect("__Host-lk_csrf");
    for attr in ["Secure", "Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(csrf.contains(attr), "{attr}: {csrf}");
    }
    assert!(!csrf.to_ascii_lowercase().contains("domain="), "{csrf}");
    let r = b.login(&page, "alice", PASSWORD).await;
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("__Host-lk_session="))
        .expect("__Host-lk_session");
    assert!(
        session.contains("Secure") && session.contains("Path=/"),
        "{session}"
    );
    assert!(location_params(&r).1.contains_key("code"));
    // The unprefixed names mean nothing on an https issuer.
    let mut plain = Browser::new(&app);
    plain.cookies.insert(
        "lk_session".into(),
        b.cookies
            .get("__Host-lk_session")
            .cloned()
            .expect("session"),
    );
    let r = plain
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("name=\"password\""));
}

/// A `__Host-` cookie must have `Path=/` (browsers drop it otherwise): the flow cookies of the
/// account pages and the console, on an https issuer, have it.
#[actix_web::test]
async fn first_party_cookies_on_an_https_issuer_are_valid_host_cookies() {
    let app = TestApp::spawn_with(|c| c.issuer = "https://login.example.test".into()).await;
    for (page, name) in [
        ("/account", "__Host-lk_account_flow="),
        ("/console", "__Host-lk_console_flow="),
    ] {
        let r = Browser::new(&app).get(page).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
        let c = set_cookies(&r)
            .into_iter()
            .find(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} cookie"));
        let path: Vec<&str> = c
            .split(';')
            .map(str::trim)
            .filter(|a| a.starts_with("Path="))
            .collect();
        assert_eq!(path, ["Path=/"], "{c}");
        assert!(
            c.contains("Secure") && !c.to_ascii_lowercase().contains("domain="),
            "{c}"
        );
    }
}
