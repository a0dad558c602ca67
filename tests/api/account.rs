//! `/account` from outside (issue 20): the page signs in through `/authorize` with code +
//! PKCE as the built-in first-party client `latchkey-account`, then shows the user's devices;
//! "Sign out this device" kills that app's refresh token and access token and leaves the
//! others; the profile and password forms work only for the signed-in user, only with the
//! session-bound CSRF token, and a password change needs the current password and signs the
//! user out everywhere, the account page included.

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::{Browser, Mobile, PASSWORD, hidden, login_tokens, refresh, setup};
use crate::helpers::TestApp;

/// Opens `/account` in `b` and signs in as `username` through the authorization endpoint;
/// the account page.
async fn open_account(
    app: &TestApp,
    b: &mut Browser<'_>,
    username: &str,
    password: &str,
) -> crate::helpers::Resp {
    let r = b.get("/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let to = r.header("location").expect("location").to_owned();
    assert!(to.starts_with("/authorize?"), "{to}");
    let q: std::collections::HashMap<String, String> =
        url::Url::parse(&format!("{}{to}", app.issuer))
            .expect("url")
            .query_pairs()
            .into_owned()
            .collect();
    assert_eq!(q["client_id"], "latchkey-account");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/account/callback", app.issuer)
    );
    assert!(q["state"].len() >= 16);
    let mut r = b.get(&to).await;
    if r.status == StatusCode::OK && r.text().contains("name=\"password\"") {
        r = b.login(&r, username, password).await;
    }
    if r.status == StatusCode::OK && r.text().contains("Continue") {
        r = b.consent(&r, "allow").await;
    }
    let cb = r
        .header("location")
        .expect("a redirect to the callback")
        .to_owned();
    let cb = cb
        .strip_prefix(&app.issuer)
        .expect("to this server")
        .to_owned();
    assert!(cb.starts_with("/account/callback?"), "{cb}");
    let r = b.get(&cb).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.header("location"), Some("/account"));
    let page = b.get("/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("Your account"), "{}", page.text());
    page
}

async fn watch(app: &TestApp, m: &Mobile) -> Mobile {
    let client = app
        .add_client(&[
            "--name",
            "Watch app",
            "--type",
            "public",
            "--redirect-uri",
            crate::browser::REDIRECT,
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            crate::browser::SCOPE,
            "--first-party",
        ])
        .await;
    Mobile {
        client,
        username: m.username.clone(),
        sub: m.sub.clone(),
    }
}

#[actix_web::test]
async fn the_account_page_lists_devices_and_signs_one_out() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let w = watch(&app, &m).await;
    let rs = app.add_service_client().await;
    let phone = login_tokens(&app, &m).await;
    let wrist = login_tokens(&app, &w).await;

    let mut b = Browser::new(&app);
    let page = open_account(&app, &mut b, "alice", PASSWORD).await;
    let html = page.text();
    assert!(html.contains("alice"), "{html}");
    assert!(html.contains("from 127.0.0.1"), "the last address: {html}");
    assert!(
        html.contains(">app<") && html.contains(">Watch app<"),
        "{html}"
    );
    assert!(html.contains("Sign out this device"), "{html}");
    // The phone's row: sign it out.
    let i = html.find(">app<").expect("the phone's row");
    let family = {
        let rest = &html[i..];
        let marker = "name=\"family_id\" value=\"";
        let s = rest.find(marker).expect("family_id") + marker.len();
        rest[s..s + rest[s..].find('"').expect("end")].to_owned()
    };
    let r = b
        .post(
            "/account/signout",
            &[("csrf", &hidden(&page, "csrf")), ("family_id", &family)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.text().contains("Signed out of that device"),
        "{}",
        r.text()
    );
    assert!(
        !r.text().contains(">app<"),
        "the phone is gone: {}",
        r.text()
    );
    refresh(
        &app,
        &m.client.client_id,
        phone["refresh_token"].as_str().expect("rt"),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        crate::helpers::introspect_as(&app, &rs, phone["access_token"].as_str().expect("at")).await
            ["active"],
        false
    );
    // The watch keeps working.
    let r = refresh(
        &app,
        &w.client.client_id,
        wrist["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // The profile.
    let page = b.get("/account").await;
    let r = b
        .post(
            "/account/profile",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("name", "Alice Liddell"),
                ("email", "alice@wonderland.example"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Saved."), "{}", r.text());
    let out = app.cli(&["user", "list", "--json"], None).await;
    assert!(out.stdout.contains("alice@wonderland.example"), "{out:?}");
    let r = b
        .post(
            "/account/profile",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("name", "A"),
                ("email", "not-an-email"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    // The account changes are audited with alice as the actor.
    let out = app.cli(&["audit", "--event", "user", "--json"], None).await;
    let entries: Value = serde_json::from_str(&out.stdout).expect("audit");
    let events: Vec<&str> = entries
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(events.contains(&"user.signed_out"), "{events:?}");
    assert!(events.contains(&"user.profile_updated"), "{events:?}");
}

#[actix_web::test]
async fn account_forms_need_the_csrf_token_and_the_signed_in_user() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let phone = login_tokens(&app, &m).await;
    let mut b = Browser::new(&app);
    let page = open_account(&app, &mut b, "alice", PASSWORD).await;
    let family = hidden(&page, "family_id");
    // A cross-site form: the browser sends its cookies, but the attacker cannot know the
    // token (none, or another browser's).
    let mut other = Browser::new(&app);
    let theirs = other.get("/authorize?client_id=x").await;
    let foreign = hidden_or_empty(&theirs);
    for (path, form) in [
        ("/account/signout", vec![("family_id", family.as_str())]),
        ("/account/signout-everywhere", vec![]),
        (
            "/account/profile",
            vec![("name", "Mallory"), ("email", "m@evil.example")],
        ),
        (
            "/account/password",
            vec![
                ("current_password", PASSWORD),
                ("new_password", "mallory's password"),
                ("confirm_password", "mallory's password"),
            ],
        ),
    ] {
        let r = b.post(path, &form).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{path} without a token: {}",
            r.text()
        );
        let mut with = form.clone();
        with.push(("csrf", foreign.as_str()));
        let r = b.post(path, &with).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{path} with another browser's token"
        );
    }
    // Nothing happened.
    let r = refresh(
        &app,
        &m.client.client_id,
        phone["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        !app.cli(&["user", "list"], None)
            .await
            .stdout
            .contains("Mallory")
    );

    // Without the account cookie (a browser signed in at the server, but not at /account),
    // a form with a good CSRF token still does nothing.
    let mut fresh = Browser::new(&app);
    let (_, challenge) = crate::browser::pkce();
    crate::browser::obtain_code(&app, &mut fresh, &m, &challenge).await;
    let p = fresh.get("/device").await;
    let csrf = hidden(&p, "csrf");
    let r = fresh
        .post("/account/signout-everywhere", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());

    // A callback that this browser did not start (a code injected from another flow).
    let r = b.get("/account/callback?code=abc&state=forged").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = Browser::new(&app)
        .get("/account/callback?code=abc&state=forged")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

fn hidden_or_empty(page: &crate::helpers::Resp) -> String {
    if page.text().contains("name=\"csrf\"") {
        hidden(page, "csrf")
    } else {
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()
    }
}

#[actix_web::test]
async fn a_password_change_needs_the_current_one_and_signs_out_everywhere() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let phone = login_tokens(&app, &m).await;
    let mut b = Browser::new(&app);
    let page = open_account(&app, &mut b, "alice", PASSWORD).await;
    let csrf = hidden(&page, "csrf");
    let change = |cur: &'static str, new: &'static str, again: &'static str| {
        vec![
            ("current_password", cur),
            ("new_password", new),
            ("confirm_password", again),
        ]
    };
    for (form, status, says) in [
        (
            change(
                "wrong password",
                "a new long password",
                "a new long password",
            ),
            400,
            "not right",
        ),
        (change(PASSWORD, "short", "short"), 400, "8 to 1024"),
        (
            change(PASSWORD, "a new long password", "something else"),
            400,
            "do not match",
        ),
    ] {
        let mut form = form;
        form.push(("csrf", csrf.as_str()));
        let r = b.post("/account/password", &form).await;
        assert_eq!(r.status.as_u16(), status, "{}", r.text());
        assert!(r.text().contains(says), "{says}: {}", r.text());
    }
    // Still the old password, still signed in.
    let r = refresh(
        &app,
        &m.client.client_id,
        phone["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let phone = r.json();

    let mut form = change(PASSWORD, "a new long password", "a new long password");
    form.push(("csrf", csrf.as_str()));
    let r = b.post("/account/password", &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("password was changed"), "{}", r.text());
    refresh(
        &app,
        &m.client.client_id,
        phone["refresh_token"].as_str().expect("rt"),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    // The account page itself is signed out: it starts a new sign-in.
    let r = b.get("/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // Keeping the other devices is an explicit choice: then only the password changes.
    let mut keep = Browser::new(&app);
    let page = open_account(&app, &mut keep, "alice", "a new long password").await;
    let phone2 = login_tokens_with(&app, &m, "a new long password").await;
    let r = keep
        .post(
            "/account/password",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("current_password", "a new long password"),
                ("new_password", "the third password"),
                ("confirm_password", "the third password"),
                ("others", "keep"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.text().contains("other devices stay signed in"),
        "{}",
        r.text()
    );
    let r = refresh(
        &app,
        &m.client.client_id,
        phone2["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the phone stays signed in: {}",
        r.text()
    );
    assert_eq!(
        keep.get("/account").await.status,
        StatusCode::OK,
        "and this page"
    );
    // The newest password works; the old one does not.
    let mut again = Browser::new(&app);
    open_account(&app, &mut again, "alice", "the third password").await;
    let mut old = Browser::new(&app);
    let r = old.get("/account").await;
    let to = r.header("location").expect("location").to_owned();
    let login = old.get(&to).await;
    let r = old.login(&login, "alice", PASSWORD).await;
    assert!(
        r.header("location").is_none(),
        "the old password is refused"
    );
}

#[actix_web::test]
async fn sign_out_everywhere_ends_apps_sessions_and_the_account_page() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let phone = login_tokens(&app, &m).await;
    let mut b = Browser::new(&app);
    let page = open_account(&app, &mut b, "alice", PASSWORD).await;
    let r = b
        .post(
            "/account/signout-everywhere",
            &[("csrf", &hidden(&page, "csrf"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("signed out everywhere"), "{}", r.text());
    refresh(
        &app,
        &m.client.client_id,
        phone["refresh_token"].as_str().expect("rt"),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    let r = b.get("/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the page signs in again");
    let out = app
        .cli(&["user", "sessions", "alice", "--json"], None)
        .await;
    let s: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(s["apps"], serde_json::json!([]));
    assert_eq!(s["sessions"], serde_json::json!([]));
}

/// Signs in to `m`'s app with `password` from a fresh browser; the token response.
async fn login_tokens_with(app: &TestApp, m: &Mobile, password: &str) -> Value {
    let mut b = Browser::new(app);
    let (verifier, challenge) = crate::browser::pkce();
    let r = b
        .get(&crate::browser::authorize_path(
            &m.client.client_id,
            &challenge,
            &[],
        ))
        .await;
    let r = b.login(&r, &m.username, password).await;
    let (_, p) = crate::browser::location_params(&r);
    let code = p.get("code").expect("code");
    let r = crate::browser::exchange(app, &m.client.client_id, code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

#[actix_web::test]
async fn another_apps_token_in_the_account_cookie_is_not_an_account_sign_in() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let phone = login_tokens(&app, &m).await;
    // A valid access token of alice's, but issued to another app: the account page does not
    // take it (it could be one an app leaked), it starts its own sign-in.
    let mut b = Browser::new(&app);
    b.cookies.insert(
        "lk_account".into(),
        phone["access_token"].as_str().expect("at").to_owned(),
    );
    let r = b.get("/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("/authorize?")),
        "{:?}",
        r.header("location")
    );
    // A forged or garbage token: the same.
    b.cookies
        .insert("lk_account".into(), "eyJhbGciOiJub25lIn0.e30.".into());
    assert_eq!(b.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn guessing_the_current_password_is_throttled_like_sign_in() {
    let app = TestApp::spawn_with(|c| c.login_burst_per_account_ip = 3).await;
    setup(&app, true).await;
    let mut b = Browser::new(&app);
    let page = open_account(&app, &mut b, "alice", PASSWORD).await;
    let csrf = hidden(&page, "csrf");
    let mut statuses = vec![];
    for i in 0..5 {
        let guess = format!("guess number {i}");
        let r = b
            .post(
                "/account/password",
                &[
                    ("csrf", &csrf),
                    ("current_password", &guess),
                    ("new_password", "a new long password"),
                    ("confirm_password", "a new long password"),
                ],
            )
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses[..3], [400, 400, 400], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Throttled, even the right password waits; and nothing changed.
    let r = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "a new long password"),
                ("confirm_password", "a new long password"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let out = app
        .cli(&["audit", "--event", "login", "--json"], None)
        .await;
    assert!(out.stdout.contains("login.failed"), "{out:?}");
}
