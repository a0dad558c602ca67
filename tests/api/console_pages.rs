//! The admin console's page sets from outside (issue 21): users, keys, registration tokens,
//! the audit log, the overview, app edits and deletion, and the console session's limits
//! (bound to the browser session it came from, ended by idleness). Each action is checked by
//! its effect at the protocol endpoints, and each refusal by its status and that nothing
//! changed.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, PASSWORD, hidden, text_by_id};
use crate::console::{add_user, open_console};
use crate::helpers::{Resp, TestApp};

/// A console form: the page's CSRF token and `fields`.
async fn submit(b: &mut Browser<'_>, page: &Resp, path: &str, fields: &[(&str, &str)]) -> Resp {
    let csrf = hidden(page, "csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    b.post(path, &form).await
}

async fn admin_console(app: &TestApp) -> (Browser<'_>, Resp) {
    add_user(app, "root", true).await;
    let mut b = Browser::new(app);
    let page = open_console(app, &mut b, "root").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    (b, page)
}

fn user_sub(app_json: &str, username: &str) -> String {
    let users: Value = serde_json::from_str(app_json).expect("user list JSON");
    users
        .as_array()
        .and_then(|u| u.iter().find(|u| u["username"] == username))
        .and_then(|u| u["sub"].as_str().or(u["user_id"].as_str()))
        .unwrap_or_else(|| panic!("no {username} in {app_json}"))
        .to_owned()
}

async fn sub_of(app: &TestApp, username: &str) -> String {
    let out = app.cli(&["user", "list", "--json"], None).await;
    user_sub(&out.stdout, username)
}

/// A password sign-in of `username` at the account pages' client: the status of the answer
/// to the login form (302 signed in, 401 refused).
async fn can_sign_in(app: &TestApp, username: &str, password: &str) -> StatusCode {
    let mut b = Browser::new(app);
    let page = sign_in_page(&mut b).await;
    b.login(&page, username, password).await.status
}

const SIGNED_IN: StatusCode = StatusCode::FOUND;

#[actix_web::test]
async fn the_console_creates_and_manages_users() {
    // On localhost: passkeys (and so invitations) need a host name, not an IP address.
    let app = crate::passkeys::spawn_localhost().await;
    let (mut b, _) = admin_console(&app).await;
    // With a password: the user signs in with it.
    let form = b.get("/console/users/new").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let r = submit(
        &mut b,
        &form,
        "/console/users",
        &[
            ("username", "bob"),
            ("email", "bob@example.com"),
            ("with", "password"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("User created."), "{}", r.text());
    let bob = text_by_id(&r, "user-sub");
    assert_eq!(can_sign_in(&app, "bob", PASSWORD).await, SIGNED_IN);
    // With an invitation: no password, a single-use link that opens the passkey page.
    let r = submit(
        &mut b,
        &form,
        "/console/users",
        &[("username", "carol"), ("with", "invitation")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let link = text_by_id(&r, "invitation-url");
    let path = link
        .strip_prefix(&app.issuer)
        .expect("an invitation on this server");
    assert_eq!(Browser::new(&app).get(path).await.status, StatusCode::OK);
    assert_ne!(can_sign_in(&app, "carol", "").await, SIGNED_IN);
    // A duplicate, a short password: refused with the admin API's rules.
    let r = submit(
        &mut b,
        &form,
        "/console/users",
        &[
            ("username", "bob"),
            ("with", "password"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = submit(
        &mut b,
        &form,
        "/console/users",
        &[
            ("username", "dave"),
            ("with", "password"),
            ("password", "short"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    // Search, and keyset pages of 50.
    let list = b.get("/console/users?q=BOB%40example").await;
    assert!(
        list.text().contains("bob@example.com") && !list.text().contains("carol"),
        "{}",
        list.text()
    );
    for i in 0..55 {
        let out = app
            .cli(
                &[
                    "user",
                    "add",
                    "--username",
                    &format!("crowd{i:02}"),
                    "--password-stdin",
                ],
                Some(PASSWORD),
            )
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let first = b.get("/console/users?q=crowd").await;
    assert!(first.text().contains("crowd00") && first.text().contains("crowd49"));
    assert!(!first.text().contains("crowd50"), "a page holds 50");
    let next = crate::browser::unescape(&text_attr(&first, "next", "href"));
    let second = b.get(&next).await;
    assert!(
        second.text().contains("crowd50") && second.text().contains("crowd54"),
        "{next}"
    );
    assert!(!second.text().contains("crowd49"));

    // Reset the password; disable and enable; each takes effect at once.
    let page = b.get(&format!("/console/users/{bob}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let r = submit(
        &mut b,
        &page,
        &format!("/console/users/{bob}/password"),
        &[("password", "a new passphrase")],
    )
    .await;
    assert!(r.text().contains("Password changed"), "{}", r.text());
    assert_eq!(
        can_sign_in(&app, "bob", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        can_sign_in(&app, "bob", "a new passphrase").await,
        SIGNED_IN
    );
    let r = submit(&mut b, &page, &format!("/console/users/{bob}/disable"), &[]).await;
    assert_eq!(text_by_id(&r, "user-status"), "disabled");
    assert_eq!(
        can_sign_in(&app, "bob", "a new passphrase").await,
        StatusCode::UNAUTHORIZED
    );
    let r = submit(&mut b, &page, &format!("/console/users/{bob}/enable"), &[]).await;
    assert_eq!(text_by_id(&r, "user-status"), "enabled");
    // An admin cannot disable or sign out themselves here (it would end their own console).
    let root = sub_of(&app, "root").await;
    for action in ["disable", "signout-everywhere", "reset-factors"] {
        let r = submit(
            &mut b,
            &page,
            &format!("/console/users/{root}/{action}"),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{action}: {}", r.text());
    }
    // Unknown user or action: 404.
    let r = submit(&mut b, &page, "/console/users/nobody/disable", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = submit(&mut b, &page, &format!("/console/users/{bob}/explode"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Without the CSRF token: refused, nothing changed.
    let r = b
        .post(
            &format!("/console/users/{bob}/disable"),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        can_sign_in(&app, "bob", "a new passphrase").await,
        SIGNED_IN
    );
    let log = app
        .cli(
            &[
                "audit",
                "--actor",
                "admin:latchkey-console/user:root",
                "--json",
            ],
            None,
        )
        .await
        .stdout;
    for event in [
        "user.created",
        "user.password_reset",
        "user.disabled",
        "user.enabled",
        "user.invited",
    ] {
        assert!(log.contains(event), "{event} audited as the admin: {log}");
    }
}

/// Bob signs in to an app; the admin sees it on his page and signs him out of it.
#[actix_web::test]
async fn the_console_shows_and_ends_a_users_sign_ins() {
    let app = TestApp::spawn().await;
    let m = crate::browser::setup(&app, false).await;
    let tokens = crate::browser::login_tokens(&app, &m).await;
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let (mut b, _) = admin_console(&app).await;
    let alice = sub_of(&app, "alice").await;
    let page = b.get(&format!("/console/users/{alice}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let family = hidden(&page, "family_id");
    assert!(!family.is_empty(), "{}", page.text());
    let r = submit(
        &mut b,
        &page,
        &format!("/console/users/{alice}/signout"),
        &[("family_id", &family)],
    )
    .await;
    assert!(r.text().contains("Signed out of that app"), "{}", r.text());
    let again = crate::browser::refresh(&app, &m.client.client_id, &refresh).await;
    assert_eq!(
        again.status,
        StatusCode::BAD_REQUEST,
        "the refresh token stopped working: {}",
        again.text()
    );
    assert_eq!(again.json()["error"], "invalid_grant");
}

/// The sign-in page of the account pages (a first-party client, no consent).
async fn sign_in_page(b: &mut Browser<'_>) -> Resp {
    let r = b.get("/account").await;
    let to = r.header("location").expect("to the sign-in").to_owned();
    let page = b.get(&to).await;
    assert_eq!(page.status, StatusCode::OK, "{to}: {}", page.text());
    page
}

fn text_attr(page: &Resp, id: &str, attr: &str) -> String {
    let html = page.text();
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let tag_start = html[..at].rfind('<').expect("tag");
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').expect("tag end")];
    let key = format!("{attr}=\"");
    let v = &tag[tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} in {tag}"))
        + key.len()..];
    v[..v.find('"').expect("quote")].to_owned()
}

#[actix_web::test]
async fn the_console_rotates_keys_and_the_jwks_publishes_them() {
    let app = TestApp::spawn().await;
    let (mut b, _) = admin_console(&app).await;
    let page = b.get("/console/keys").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let before = app.jwks().await["keys"].as_array().expect("keys").len();
    assert!(page.text().contains("signing"), "the signing key is marked");
    assert!(
        page.text().contains("next scheduled rotation"),
        "{}",
        page.text()
    );
    let r = submit(&mut b, &page, "/console/keys/rotate", &[("alg", "ES256")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("New key published"));
    let jwks = app.jwks().await;
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        before + 1,
        "{jwks}"
    );
    assert!(
        r.text().contains("pending"),
        "the new key waits before it signs"
    );
    let r = submit(&mut b, &page, "/console/keys/rotate", &[("alg", "HS256")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(
        app.jwks().await["keys"].as_array().expect("keys").len(),
        before + 1
    );
    let r = b.post("/console/keys/rotate", &[("csrf", "")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.jwks().await["keys"].as_array().expect("keys").len(),
        before + 1
    );
}

#[actix_web::test]
async fn the_console_makes_registration_tokens_with_a_policy_and_revokes_them() {
    let app = TestApp::spawn().await;
    let (mut b, _) = admin_console(&app).await;
    let page = b.get("/console/registration-tokens").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let r = submit(
        &mut b,
        &page,
        "/console/registration-tokens",
        &[
            ("expires_in_hours", "2"),
            ("max_uses", "1"),
            ("client_type", "public"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let token = text_by_id(&r, "initial-access-token");
    let public = json!({ "client_name": "Reg", "redirect_uris": ["com.example.reg:/cb"], "token_endpoint_auth_method": "none" });
    let confidential =
        json!({ "client_name": "Reg", "redirect_uris": ["https://reg.example.com/cb"] });
    let refused = crate::registration::register(&app, Some(&token), &confidential).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "the policy says public: {}",
        refused.text()
    );
    let ok = crate::registration::register(&app, Some(&token), &public).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());
    let spent = crate::registration::register(&app, Some(&token), &public).await;
    assert_eq!(
        spent.status,
        StatusCode::UNAUTHORIZED,
        "one use: {}",
        spent.text()
    );
    // A second token, revoked from the list: refused from then on.
    let r = submit(
        &mut b,
        &page,
        "/console/registration-tokens",
        &[("expires_in_hours", "1")],
    )
    .await;
    let second = text_by_id(&r, "initial-access-token");
    let list = b.get("/console/registration-tokens").await;
    let html = list.text();
    let action = html
        .match_indices("action=\"/console/registration-tokens/")
        .map(|(i, _)| &html[i + 8..i + 8 + html[i + 8..].find('"').expect("quote")])
        .next()
        .expect("a revoke form")
        .to_owned();
    let r = submit(&mut b, &list, &action, &[]).await;
    assert!(r.text().contains("Token revoked."), "{}", r.text());
    let after = crate::registration::register(&app, Some(&second), &public).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.text());
    // Bad numbers are refused, not guessed.
    let r = submit(
        &mut b,
        &page,
        "/console/registration-tokens",
        &[("max_uses", "many")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

#[actix_web::test]
async fn the_console_audit_log_filters_and_pages() {
    let app = TestApp::spawn().await;
    let (mut b, _) = admin_console(&app).await;
    // Three failed sign-ins as "mallory", and a client the admin made and toggled 55 times.
    let mut m = Browser::new(&app);
    for _ in 0..3 {
        let p = sign_in_page(&mut m).await;
        m.login(&p, "mallory", "wrong").await;
    }
    let form = b.get("/console/apps/new?kind=service").await;
    let r = submit(
        &mut b,
        &form,
        "/console/apps",
        &[("kind", "service"), ("name", "Audited")],
    )
    .await;
    let client_id = text_by_id(&r, "cfg-client-id");
    let page = b.get(&format!("/console/apps/{client_id}")).await;
    for i in 0..55 {
        let action = if i % 2 == 0 { "disable" } else { "enable" };
        let r = submit(
            &mut b,
            &page,
            &format!("/console/apps/{client_id}/{action}"),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let by_client = b.get(&format!("/console/audit?client={client_id}")).await;
    assert_eq!(by_client.status, StatusCode::OK, "{}", by_client.text());
    let rows = by_client.text().matches("<tr><td>").count();
    assert_eq!(rows, 50, "a page of 50, newest first");
    assert!(by_client.text().contains("client.disabled"));
    assert!(!by_client.text().contains("mallory"));
    let older = crate::browser::unescape(&text_attr(&by_client, "older", "href"));
    let r = b.get(&older).await;
    assert!(
        r.text().contains("client.created"),
        "the oldest entry is on the second page: {older}"
    );
    let by_actor = b.get("/console/audit?actor=user:mallory&event=login").await;
    assert_eq!(
        by_actor.text().matches("login.failed").count(),
        3,
        "{}",
        by_actor.text()
    );
    assert!(!by_actor.text().contains("<code>client.created</code>"));
    let by_admin = b
        .get("/console/audit?actor=admin:latchkey-console/user:root&event=client.created")
        .await;
    assert!(
        by_admin.text().contains("<code>client.created</code>")
            && !by_admin.text().contains("<code>login.failed</code>")
    );
    // A time range: nothing before 1971, everything since.
    let r = b.get("/console/audit?until=1971-01-01T00:00").await;
    assert!(r.text().contains("No entry matches."), "{}", r.text());
    let r = b
        .get("/console/audit?since=1971-01-01T00:00&event=client.created")
        .await;
    assert!(r.text().contains("client.created"));
    for bad in ["since=yesterday", "until=2026-02-30T00:00", "before=x"] {
        let r = b.get(&format!("/console/audit?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
}

#[actix_web::test]
async fn the_overview_counts_the_last_hour() {
    let app = TestApp::spawn().await;
    let (mut b, _) = admin_console(&app).await;
    let m = crate::browser::setup(&app, true).await;
    crate::browser::login_tokens(&app, &m).await;
    let wrong = can_sign_in(&app, "alice", "not her password").await;
    assert_eq!(wrong, StatusCode::UNAUTHORIZED);
    let page = b.get("/console").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    let card = |id: &str| {
        let at = html.find(&format!("id=\"{id}\"")).expect("card");
        let n = &html[at..];
        let v = &n[n.find("class=\"n\">").expect("number") + 10..];
        v[..v.find('<').expect("end")].to_owned()
    };
    // The console's own sign-in is a code exchange too: alice's and root's.
    assert_eq!(card("card-tokens"), "2", "{html}");
    assert_eq!(card("card-failures"), "1");
    assert_eq!(card("card-reuse"), "0");
    assert!(html.contains("authorization_code 2"), "{html}");
    assert!(
        html.contains("<svg class=\"chart\""),
        "charts are inline SVG"
    );
    assert!(!html.contains("<script>"), "no inline script");
}

#[actix_web::test]
async fn the_console_edits_and_deletes_apps_and_keeps_its_own_clients() {
    let app = TestApp::spawn().await;
    let (mut b, _) = admin_console(&app).await;
    // A resource API and a service that calls it.
    let form = b.get("/console/apps/new?kind=api").await;
    let r = submit(
        &mut b,
        &form,
        "/console/apps",
        &[
            ("kind", "api"),
            ("name", "Notes API"),
            ("audience", "https://notes.example.com"),
            ("scopes", "notes:read notes:write"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.text().contains("latchkey_verify::Verifier::from_issuer"),
        "{}",
        r.text()
    );
    let r = submit(
        &mut b,
        &form,
        "/console/apps",
        &[("kind", "service"), ("name", "Sync")],
    )
    .await;
    let (id, secret) = (
        text_by_id(&r, "cfg-client-id"),
        text_by_id(&r, "client-secret"),
    );
    let token = |scope: &'static str| {
        let (app, id, secret) = (&app, id.clone(), secret.clone());
        async move {
            app.post_token(
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", scope),
                    ("resource", "https://notes.example.com"),
                ],
                Some((&id, &secret)),
            )
            .await
        }
    };
    assert_eq!(
        token("notes:read").await.status,
        StatusCode::BAD_REQUEST,
        "not yet allowed"
    );
    // Edit: give it the API's audience and a scope; the token endpoint follows.
    let edit = b.get(&format!("/console/apps/{id}/edit")).await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.text());
    let r = submit(
        &mut b,
        &edit,
        &format!("/console/apps/{id}/edit"),
        &[
            ("name", "Sync v2"),
            ("redirect_uris", ""),
            ("scope", "notes:read"),
            ("audience", "https://notes.example.com"),
            ("allowed_origins", ""),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.text().contains("Saved.") && r.text().contains("Sync v2"),
        "{}",
        r.text()
    );
    let t = token("notes:read").await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());
    assert_eq!(
        token("notes:write").await.status,
        StatusCode::BAD_REQUEST,
        "only what was granted"
    );
    // An edit the rules refuse (a service with a private-use redirect and the code grant's
    // absence): refused with the reason, nothing changed.
    let r = submit(
        &mut b,
        &edit,
        &format!("/console/apps/{id}/edit"),
        &[
            ("name", ""),
            ("scope", "notes:read"),
            ("audience", "not a uri"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(token("notes:read").await.status, StatusCode::OK);
    // Delete needs the client id typed.
    let page = b.get(&format!("/console/apps/{id}")).await;
    let r = submit(
        &mut b,
        &page,
        &format!("/console/apps/{id}/delete"),
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(token("notes:read").await.status, StatusCode::OK);
    let r = submit(
        &mut b,
        &page,
        &format!("/console/apps/{id}/delete"),
        &[("confirm", &id)],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        token("notes:read").await.status,
        StatusCode::UNAUTHORIZED,
        "deleted"
    );
    assert_eq!(
        b.get(&format!("/console/apps/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    // The server's own clients cannot be edited, disabled or deleted from the console.
    for (path, action) in [
        ("/console/apps/latchkey-account/edit", "edit"),
        ("/console/apps/latchkey-console/delete", "delete"),
        ("/console/apps/latchkey-account/disable", "disable"),
    ] {
        let r = submit(
            &mut b,
            &page,
            path,
            &[("confirm", "latchkey-account"), ("name", "x")],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{action}: {}", r.text());
    }
    assert_eq!(
        b.get("/console/apps/latchkey-console/edit").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        b.get("/console").await.status,
        StatusCode::OK,
        "the console still works"
    );
    // A browser app: its origin is allowed for CORS at the token endpoint.
    let form = b.get("/console/apps/new?kind=spa").await;
    let r = submit(
        &mut b,
        &form,
        "/console/apps",
        &[
            ("kind", "spa"),
            ("name", "Web"),
            ("redirect_uri", "https://web.example.com/cb"),
            ("origins", "https://web.example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("snippet-spa"));
    let pre = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/token"))
        .header("Origin", "https://web.example.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(
        pre.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://web.example.com")
    );
}

/// The console session is bound to the browser session it came from and to recent activity:
/// signed out elsewhere, or idle (the activity cookie gone, as the browser drops it after
/// `console_idle_timeout`, or forged), the next request asks for the password again
/// (`prompt=login`), and the old console token no longer works.
#[actix_web::test]
async fn the_console_session_ends_with_the_sign_in_and_when_idle() {
    let app = TestApp::spawn().await;
    let (mut b, page) = admin_console(&app).await;
    let active = b
        .cookies
        .keys()
        .find(|k| k.ends_with("lk_console_active"))
        .cloned()
        .expect("an activity cookie");
    let set = page.header("set-cookie").unwrap_or("");
    assert!(!set.is_empty() || b.cookies.contains_key(&active));
    // Forged: a later time with the old MAC.
    let value = b.cookies[&active].clone();
    let (_, tag) = value.split_once('.').expect("at.tag");
    b.cookies.insert(
        active.clone(),
        format!("{}.{tag}", crate::helpers::now() + 5),
    );
    let r = b.get("/console/users").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let to = r.header("location").expect("location");
    assert!(
        to.starts_with("/authorize?") && to.contains("prompt=login"),
        "{to}"
    );
    // Signing in again comes back to the page asked for.
    let login = b.get(to).await;
    let r = b.login(&login, "root", PASSWORD).await;
    let cb = r
        .header("location")
        .expect("callback")
        .strip_prefix(&app.issuer)
        .expect("ours")
        .to_owned();
    let r = b.get(&cb).await;
    assert_eq!(r.header("location"), Some("/console/users"));
    assert_eq!(b.get("/console/users").await.status, StatusCode::OK);
    // Idle: the cookie gone.
    b.cookies.remove(&active);
    let r = b.get("/console").await;
    assert!(
        r.header("location")
            .is_some_and(|l| l.contains("prompt=login")),
        "{:?}",
        r.header("location")
    );
    // Signed out of the browser session everywhere (the CLI): the console ends too.
    let mut b = Browser::new(&app);
    let page = open_console(&app, &mut b, "root").await;
    assert_eq!(page.status, StatusCode::OK);
    let out = app.cli(&["user", "signout", "root"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = b.get("/console").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(
        r.header("location")
            .is_some_and(|l| l.contains("prompt=login"))
    );
    // A wrong return path never leaves the console.
    let r = b.get("/console/audit?x=1").await;
    let to = r.header("location").expect("location").to_owned();
    let login = b.get(&to).await;
    let r = b.login(&login, "root", PASSWORD).await;
    let cb = r
        .header("location")
        .expect("callback")
        .strip_prefix(&app.issuer)
        .expect("ours")
        .to_owned();
    assert_eq!(
        b.get(&cb).await.header("location"),
        Some("/console/audit?x=1")
    );
}

/// On an IP-address issuer passkeys are off, so an invitation link could never be used: the
/// console, the admin API and the CLI all refuse to make one, and the console and the CLI make
/// no user for it.
#[actix_web::test]
async fn no_invitation_is_made_where_passkeys_cannot_work() {
    use crate::admin_api::{admin_token, call};
    let app = TestApp::spawn().await;
    let (mut b, _) = admin_console(&app).await;
    let form = b.get("/console/users/new").await;
    assert!(
        form.text().contains("Passkeys are off on this server"),
        "{}",
        form.text()
    );
    let r = submit(
        &mut b,
        &form,
        "/console/users",
        &[("username", "dora"), ("with", "invitation")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let out = app.cli(&["user", "invite", "erik", "--create"], None).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("passkeys are off"), "{out:?}");
    let users = app.cli(&["user", "list", "--json"], None).await.stdout;
    assert!(
        !users.contains("dora") && !users.contains("erik"),
        "no user without a way in: {users}"
    );
    let root = sub_of(&app, "root").await;
    let (_, token) = admin_token(&app).await;
    let r = call(
        &app,
        reqwest::Method::POST,
        &format!("/admin/v1/users/{root}/invitation"),
        Some(&token),
        None,
    )
    .await;
    crate::admin_api::assert_error(
        &r,
        400,
        "invalid_request",
        latchkey::protocol::login::invite::PASSKEYS_OFF,
    );
}

/// The paged user search and the audit filters of the admin API refuse what they cannot mean.
#[actix_web::test]
async fn the_admin_api_refuses_bad_search_and_audit_parameters() {
    use crate::admin_api::{admin_token, call};
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    let long = "x".repeat(201);
    for q in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        &format!("q={long}"),
        &format!("after={long}"),
    ] {
        let r = call(
            &app,
            reqwest::Method::GET,
            &format!("/admin/v1/users?{q}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_request", "{q}");
    }
    for q in [
        "since=yesterday",
        "until=1.5",
        "before=x",
        &format!("actor={long}"),
        &format!("client={long}"),
    ] {
        let r = call(
            &app,
            reqwest::Method::GET,
            &format!("/admin/v1/audit?{q}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text());
    }
    // And page as documented: one user per page, then the next.
    for i in 0..2 {
        let out = app
            .cli(
                &[
                    "user",
                    "add",
                    "--username",
                    &format!("p{i}"),
                    "--password-stdin",
                ],
                Some(PASSWORD),
            )
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let r = call(
        &app,
        reqwest::Method::GET,
        "/admin/v1/users?q=p&limit=1",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.json()["users"][0]["username"], "p0", "{}", r.text());
    assert_eq!(r.json()["next_after"], "p0");
    let r = call(
        &app,
        reqwest::Method::GET,
        "/admin/v1/users?q=p&limit=1&after=p0",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.json()["users"][0]["username"], "p1", "{}", r.text());
}
