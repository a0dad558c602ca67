//! The authorization endpoint: validation order, redirect URI rules, PKCE, prompt.

use reqwest::StatusCode;

use crate::browser::{Browser, REDIRECT_PORT, authorize_path, location_params, pkce, setup};
use crate::helpers::TestApp;

/// An error shown as a page: 4xx HTML, no `Location`, never a redirect.
#[track_caller]
fn assert_error_page(r: &crate::helpers::Resp, needle: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(
        r.header("location").is_none(),
        "must not redirect: {:?}",
        r.header("location")
    );
    assert_eq!(r.media_type(), "text/html");
    assert!(
        r.text().contains(needle),
        "page should say {needle:?}: {}",
        r.text()
    );
}

#[actix_web::test]
async fn unknown_client_renders_a_page_and_never_redirects() {
    let app = TestApp::spawn().await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let r = b
        .get(&authorize_path("no-such-client", &challenge, &[]))
        .await;
    assert_error_page(&r, "invalid_client");
    let r = b
        .get("/authorize?response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb")
        .await;
    assert_error_page(&r, "invalid_request");
}

#[actix_web::test]
async fn unregistered_redirect_uris_render_a_page_and_never_redirect() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    for bad in [
        "http://evil.example/cb",         // other host
        "http://127.0.0.1:51234/other",   // other path
        "http://127.0.0.1:51234/cb?x=1",  // added query
        "http://127.0.0.1:51234/cb#frag", // fragment
        "http://localhost:51234/cb",      // localhost is not 127.0.0.1
        "http://127.0.0.2:51234/cb",      // other loopback address
        "https://127.0.0.1:51234/cb",     // other scheme
        "com.example.app:/cb2",           // other private-use path
        "com.example.evil:/cb",           // other private-use scheme
    ] {
        let mut q = authorize_path(&m.client.client_id, &challenge, &[]);
        q = q.replace(
            &form_urlencoded::byte_serialize(REDIRECT_PORT.as_bytes()).collect::<String>(),
            &form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>(),
        );
        let r = b.get(&q).await;
        assert_error_page(&r, "redirect_uri");
    }
}

#[actix_web::test]
async fn registered_private_use_and_any_loopback_port_are_accepted() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    for ok in [
        "com.example.app:/cb",
        "http://127.0.0.1:1/cb",
        "http://127.0.0.1:65535/cb",
        "http://127.0.0.1/cb",
    ] {
        let q = authorize_path(&m.client.client_id, &challenge, &[]).replace(
            &form_urlencoded::byte_serialize(REDIRECT_PORT.as_bytes()).collect::<String>(),
            &form_urlencoded::byte_serialize(ok.as_bytes()).collect::<String>(),
        );
        let r = b.get(&q).await;
        assert_eq!(r.status, StatusCode::OK, "{ok}: {}", r.text());
        assert!(
            r.text().contains("name=\"password\""),
            "{ok}: login page expected"
        );
    }
}

#[actix_web::test]
async fn pkce_plain_missing_or_malformed_is_redirected_as_invalid_request() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let base = authorize_path(&m.client.client_id, &challenge, &[]);
    let cases = [
        base.replace("code_challenge_method=S256", "code_challenge_method=plain"),
        base.replace("&code_challenge_method=S256", ""),
        base.replace(&format!("&code_challenge={challenge}"), ""),
        base.replace(&challenge, "too-short"),
    ];
    for q in cases {
        let r = b.get(&q).await;
        let (target, p) = location_params(&r);
        assert_eq!(target, REDIRECT_PORT, "{q}");
        assert_eq!(
            p.get("error").map(String::as_str),
            Some("invalid_request"),
            "{q}: {p:?}"
        );
        assert_eq!(p.get("state").map(String::as_str), Some("st-123"));
        assert_eq!(p.get("iss"), Some(&app.issuer));
        assert!(!p.contains_key("code"));
    }
}

#[actix_web::test]
async fn other_response_types_and_foreign_scopes_are_refused_by_redirect() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let base = authorize_path(&m.client.client_id, &challenge, &[]);
    for (q, err) in [
        (
            base.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            base.replace("response_type=code", "response_type=code+id_token"),
            "unsupported_response_type",
        ),
        (
            base.replace("scope=openid", "scope=latchkey%3Aadmin+openid"),
            "invalid_scope",
        ),
        (
            format!("{base}&resource=https%3A%2F%2Fother.example"),
            "invalid_target",
        ),
    ] {
        let r = b.get(&q).await;
        let (_, p) = location_params(&r);
        assert_eq!(p.get("error").map(String::as_str), Some(err), "{q}");
    }
    // A request object this client cannot have signed (it registered no keys): an error page,
    // never a redirect to parameters nobody verified (RFC 9101 §6.3).
    let r = b.get(&format!("{base}&request=eyJ")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.header("location").is_none());
    assert!(r.text().contains("invalid_request_object"), "{}", r.text());
}

#[actix_web::test]
async fn prompt_none_without_a_session_is_login_required() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let r = Browser::new(&app)
        .get(&authorize_path(
            &m.client.client_id,
            &challenge,
            &[("prompt", "none")],
        ))
        .await;
    let (_, p) = location_params(&r);
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"));
}

#[actix_web::test]
async fn a_browser_session_skips_the_password_unless_prompt_login() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let mut b = Browser::new(&app);
    let (_, challenge) = pkce();
    crate::browser::obtain_code(&app, &mut b, &m, &challenge).await;
    // Same browser: no password again, but this public client's loopback redirect could be
    // any app's, so the user confirms with one press (RFC 8252 §8.6) and gets the code.
    let r = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    assert!(
        crate::browser::is_confirmation(&r, "alice"),
        "{} {}",
        r.status,
        r.text()
    );
    let r = b.consent(&r, "allow").await;
    assert!(location_params(&r).1.contains_key("code"));
    // prompt=login and max_age=0 ask again.
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let r = b
            .get(&authorize_path(&m.client.client_id, &challenge, &[extra]))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{extra:?}");
        assert!(r.text().contains("name=\"password\""), "{extra:?}");
    }
}

#[actix_web::test]
async fn pages_cannot_be_framed_and_cookies_are_protected() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let r = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(
        r.header("content-security-policy")
            .unwrap_or("")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let csrf = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .find(|c| c.starts_with("lk_csrf="))
        .expect("csrf cookie");
    assert!(
        csrf.contains("HttpOnly") && csrf.contains("SameSite=Lax"),
        "{csrf}"
    );
    let r = b.login(&r, "alice", crate::browser::PASSWORD).await;
    let session = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .find(|c| c.starts_with("lk_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "http issuer: no Secure flag");
}
