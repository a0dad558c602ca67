//! The admin console from outside (issue 21, first part): an admin user signs in through
//! `/authorize` as the built-in `latchkey-console` client, lists and searches apps, creates an
//! iOS app with the wizard and gets its configuration, and a native-app login with that client
//! id (code + PKCE + DPoP) works. A user who is not an admin gets 403; a form without the
//! session's CSRF token is refused; every change is audited with the admin user's name.

use reqwest::StatusCode;

use crate::browser::{Browser, PASSWORD, hidden, pkce, text_by_id};
use crate::dpop::{DpopKey, token_request};
use crate::helpers::{Resp, TestApp};

pub async fn add_user(app: &TestApp, name: &str, admin: bool) {
    let mut args = vec!["user", "add", "--username", name, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    let out = app.cli(&args, Some(PASSWORD)).await;
    assert_eq!(out.code, Some(0), "{out:?}");
}

/// Opens `/console` and signs in as `username`; the page after the callback.
pub async fn open_console(app: &TestApp, b: &mut Browser<'_>, username: &str) -> Resp {
    let r = b.get("/console").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let to = r.header("location").expect("location").to_owned();
    assert!(
        to.starts_with("/authorize?") && to.contains("client_id=latchkey-console"),
        "{to}"
    );
    let r = b.get(&to).await;
    let r = b.login(&r, username, PASSWORD).await;
    let cb = r.header("location").expect("callback").to_owned();
    let cb = cb.strip_prefix(&app.issuer).expect("ours").to_owned();
    assert!(cb.starts_with("/console/callback?"), "{cb}");
    let r = b.get(&cb).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/console"));
    b.get("/console").await
}

#[actix_web::test]
async fn an_admin_creates_an_ios_app_and_a_native_login_with_it_works() {
    let app = TestApp::spawn().await;
    add_user(&app, "root", true).await;
    add_user(&app, "alice", false).await;
    let mut b = Browser::new(&app);
    let page = open_console(&app, &mut b, "root").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let page = b.get("/console/apps").await;
    assert!(
        page.text().contains("latchkey-account"),
        "the built-in clients are listed"
    );
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline'; script"),
        "{csp}"
    );

    let form = b.get("/console/apps/new?kind=native").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let r = b
        .post(
            "/console/apps",
            &[
                ("csrf", &hidden(&form, "csrf")),
                ("kind", "native"),
                ("name", "Notes"),
                ("bundle_id", "com.example.Notes"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("App created."), "{}", r.text());
    let client_id = text_by_id(&r, "cfg-client-id");
    let redirect = text_by_id(&r, "cfg-redirect");
    assert_eq!(redirect, "com.example.notes:/oauth2redirect");
    assert_eq!(text_by_id(&r, "cfg-issuer"), app.issuer);
    for snippet in ["snippet-ios", "snippet-android", "snippet-rust"] {
        assert!(r.text().contains(snippet), "{snippet}");
    }
    assert!(r.text().contains(&client_id));
    // Search finds it.
    let list = b.get("/console/apps?q=note").await;
    assert!(list.text().contains("Notes") && !list.text().contains("latchkey-account"));

    // A native app with that client id: code + PKCE, then the token with a DPoP proof.
    let (verifier, challenge) = pkce();
    let mut phone = Browser::new(&app);
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "openid offline_access")
        .append_pair("state", "s1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let r = phone.get(&format!("/authorize?{}", q.finish())).await;
    let mut r = phone.login(&r, "alice", PASSWORD).await;
    if r.status == StatusCode::OK {
        r = phone.consent(&r, "allow").await;
    }
    let loc = r
        .header("location")
        .unwrap_or_else(|| panic!("{}", r.text()))
        .to_owned();
    assert!(loc.starts_with(&redirect), "{loc}");
    let code = url::Url::parse(&loc)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    // DPoP is on by default for a mobile app: a bare request is refused.
    let bare = token_request(&app, &form, None, None).await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST, "{}", bare.text());
    let key = DpopKey::new();
    let proof = key.proof("POST", &format!("{}/token", app.issuer), None);
    // The refused request burned nothing: it failed before the code was redeemed.
    let t = token_request(&app, &form, None, Some(&proof)).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());
    assert_eq!(t.json()["token_type"], "DPoP");

    // Disable from the console: the app stops working.
    let page = b.get(&format!("/console/apps/{client_id}")).await;
    let r = b
        .post(
            &format!("/console/apps/{client_id}/disable"),
            &[("csrf", &hidden(&page, "csrf"))],
        )
        .await;
    assert!(r.text().contains("App disabled"), "{}", r.text());
    let log = app.cli(&["audit", "--json"], None).await.stdout;
    assert!(
        log.contains("admin:latchkey-console/user:root"),
        "audited as the admin user: {log}"
    );
    assert!(log.contains("client.disabled"));
}

#[actix_web::test]
async fn non_admins_and_forged_forms_are_refused() {
    let app = TestApp::spawn().await;
    add_user(&app, "alice", false).await;
    add_user(&app, "root", true).await;
    let mut b = Browser::new(&app);
    let page = open_console(&app, &mut b, "alice").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
    assert_eq!(
        b.get("/console/apps/new").await.status,
        StatusCode::FORBIDDEN
    );
    // The role is read on every request: granted now, it works without signing in again.
    let out = app.cli(&["user", "grant-admin", "alice"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let page = b.get("/console").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let out = app.cli(&["user", "revoke-admin", "alice"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(b.get("/console").await.status, StatusCode::FORBIDDEN);
    // A non-admin cannot create an app even with a valid CSRF token.
    let r = b
        .post(
            "/console/apps",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("kind", "service"),
                ("name", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());

    // An admin's form without the session's CSRF token (none, forged, cut short): refused,
    // nothing made.
    let mut admin = Browser::new(&app);
    let page = open_console(&app, &mut admin, "root").await;
    for token in ["", "forged", &hidden(&page, "csrf")[..10]] {
        let r = admin
            .post(
                "/console/apps",
                &[("csrf", token), ("kind", "service"), ("name", "Evil")],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    }
    let list = admin.get("/console/apps").await;
    assert!(!list.text().contains("Evil"));
    // Without a console session at all: a sign-in, never an action.
    let mut stranger = Browser::new(&app);
    let r = stranger.get("/console/apps/latchkey-account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // A service created by the admin shows its secret once, and rotating shows a new one.
    let form = admin.get("/console/apps/new?kind=service").await;
    let r = admin
        .post(
            "/console/apps",
            &[
                ("csrf", &hidden(&form, "csrf")),
                ("kind", "service"),
                ("name", "Billing"),
                ("audience", crate::helpers::API),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let secret = text_by_id(&r, "client-secret");
    let id = text_by_id(&r, "cfg-client-id");
    let t = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());
    let page = admin.get(&format!("/console/apps/{id}")).await;
    assert!(!page.text().contains(&secret), "never shown again");
    let r = admin
        .post(
            &format!("/console/apps/{id}/rotate-secret"),
            &[("csrf", &hidden(&page, "csrf"))],
        )
        .await;
    let fresh = text_by_id(&r, "client-secret");
    assert_ne!(fresh, secret);
    let t = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(
        t.status,
        StatusCode::UNAUTHORIZED,
        "the old secret stopped working"
    );
}

/// The console refuses an unknown action and will not disable itself (that would lock every
/// admin out of it); wrong inputs to the wizard are refused with a page, nothing created.
#[actix_web::test]
async fn the_console_refuses_what_it_does_not_know() {
    let app = TestApp::spawn().await;
    add_user(&app, "root", true).await;
    let mut b = Browser::new(&app);
    let page = open_console(&app, &mut b, "root").await;
    let csrf = hidden(&page, "csrf");
    let r = b
        .post("/console/apps/latchkey-console/disable", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = b
        .post("/console/apps/latchkey-account/explode", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    for form in [
        vec![
            ("kind", "native"),
            ("name", "X"),
            ("bundle_id", "notabundle"),
        ],
        vec![("kind", "rocket"), ("name", "X")],
    ] {
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend(form);
        let r = b.post("/console/apps", &f).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    }
    // Still signed in and working: the console's own client was not disabled.
    assert_eq!(b.get("/console").await.status, StatusCode::OK);
    let list = b.get("/console/apps?q=X").await;
    assert!(
        list.text().contains("No app matches."),
        "nothing was created: {}",
        list.text()
    );
}
