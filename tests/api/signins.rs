//! A user's signed-in devices (issue 20) through the admin API and the CLI: alice signs in
//! with two apps from two browsers; both are listed with the app's name, first sign-in and last
//! use; signing one out kills its refresh token (`invalid_grant`) and its access token
//! (inactive at introspection, refused at userinfo) and leaves the other working; "sign out
//! everywhere" ends the rest and the browser sessions. Every sign-out is audited, and another
//! user's device, an unknown one or a malformed body is refused.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_api::{admin_token, call};
use crate::browser::{Mobile, REDIRECT, REDIRECT_PORT, SCOPE, login_tokens, refresh, setup};
use crate::helpers::TestApp;

async fn userinfo(app: &TestApp, token: &str) -> StatusCode {
    app.http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo")
        .status()
}

/// A second app of alice's: the watch app.
async fn watch_app(app: &TestApp, m: &Mobile) -> Mobile {
    let client = app
        .add_client(&[
            "--name",
            "Watch app",
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT,
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            SCOPE,
            "--first-party",
        ])
        .await;
    let _ = REDIRECT_PORT;
    Mobile {
        client,
        username: m.username.clone(),
        sub: m.sub.clone(),
    }
}

fn app_named<'a>(sessions: &'a Value, name: &str) -> &'a Value {
    sessions["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["client_name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {sessions}"))
}

#[actix_web::test]
async fn signing_out_one_device_leaves_the_other_and_everywhere_ends_all() {
    two_devices(None).await;
}

#[actix_web::test]
async fn signing_out_devices_on_postgres() {
    let Some(pg) = crate::pg::PgDb::create("signins_on_postgres") else {
        return;
    };
    two_devices(Some(pg.url.clone())).await;
}

async fn two_devices(database_url: Option<String>) {
    let app = TestApp::spawn_with(|c| {
        if let Some(u) = database_url {
            c.database_url = u;
        }
    })
    .await;
    let m = setup(&app, true).await;
    let w = watch_app(&app, &m).await;
    let rs = app.add_service_client().await;
    let (_, admin) = admin_token(&app).await;
    let phone = login_tokens(&app, &m).await;
    let watch = login_tokens(&app, &w).await;
    let sessions_path = format!("/admin/v1/users/{}/sessions", m.sub);

    let r = call(&app, Method::GET, &sessions_path, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let s = r.json();
    assert_eq!(s["apps"].as_array().expect("apps").len(), 2, "{s}");
    assert_eq!(s["sessions"].as_array().expect("sessions").len(), 2, "{s}");
    assert_eq!(
        s["sessions"][0]["ip"], "127.0.0.1",
        "where the sign-in came from: {s}"
    );
    let p = app_named(&s, "app");
    assert_eq!(p["client_id"], m.client.client_id.as_str());
    assert_eq!(p["dpop_bound"], false);
    assert!(p["signed_in_at"].as_i64().expect("signed_in_at") > 0);
    assert!(
        !s.to_string().contains("session_hash"),
        "no cookie hashes: {s}"
    );
    let phone_family = p["family_id"].as_str().expect("family_id").to_owned();

    // A refresh is the device's last use; the family stays the same device, and its address
    // and User-Agent are the refresh's (control characters dropped, at most 200 kept).
    assert_eq!(p["last_ip"], "127.0.0.1", "{p}");
    let agent = format!("Phone/2.0 (iOS 19)\t{}", "x".repeat(300));
    let r = crate::helpers::Resp::read(
        app.http
            .post(app.url("/token"))
            .header("user-agent", &agent)
            .form(&[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    phone["refresh_token"].as_str().expect("rt"),
                ),
                ("client_id", m.client.client_id.as_str()),
            ])
            .send()
            .await
            .expect("refresh"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let phone = r.json();
    let s = call(&app, Method::GET, &sessions_path, Some(&admin), None)
        .await
        .json();
    let a = app_named(&s, "app");
    assert_eq!(a["family_id"], phone_family.as_str());
    assert!(a["last_used_at"].as_i64() >= p["last_used_at"].as_i64());
    assert_eq!(a["last_ip"], "127.0.0.1");
    let seen = a["user_agent"].as_str().expect("user_agent");
    assert!(seen.starts_with("Phone/2.0 (iOS 19)x"), "{seen}");
    assert_eq!(seen.chars().count(), 200);

    // Sign the phone out.
    let signout = format!("/admin/v1/users/{}/signout", m.sub);
    let r = call(
        &app,
        Method::POST,
        &signout,
        Some(&admin),
        Some(json!({ "family_id": phone_family })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["token_families"], 1);
    refresh(
        &app,
        &m.client.client_id,
        phone["refresh_token"].as_str().expect("rt"),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    let at = phone["access_token"].as_str().expect("at");
    assert_eq!(
        crate::helpers::introspect_as(&app, &rs, at).await["active"],
        false
    );
    assert_eq!(userinfo(&app, at).await, StatusCode::UNAUTHORIZED);
    // The watch keeps working.
    let wat = watch["access_token"].as_str().expect("at");
    assert_eq!(
        crate::helpers::introspect_as(&app, &rs, wat).await["active"],
        true
    );
    let r = refresh(
        &app,
        &w.client.client_id,
        watch["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let watch = r.json();
    // Signing the same device out again: it is not signed in any more.
    call(
        &app,
        Method::POST,
        &signout,
        Some(&admin),
        Some(json!({ "family_id": phone_family })),
    )
    .await
    .assert_oauth_error(404, "not_found");

    // The CLI sees the watch only, then signs alice out everywhere.
    let out = app
        .cli(&["user", "sessions", "alice", "--json"], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let s: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(s["apps"].as_array().expect("apps").len(), 1, "{s}");
    assert_eq!(s["apps"][0]["client_name"], "Watch app");
    let out = app.cli(&["user", "sessions", "alice"], None).await;
    assert!(out.stdout.contains("Watch app"), "{out:?}");
    assert!(out.stdout.contains("from 127.0.0.1"), "{out:?}");
    let out = app.cli(&["user", "signout", "alice", "--json"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["token_families"], 1, "{v}");
    assert_eq!(v["sessions"], 2, "{v}");
    refresh(
        &app,
        &w.client.client_id,
        watch["refresh_token"].as_str().expect("rt"),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    let s = call(&app, Method::GET, &sessions_path, Some(&admin), None)
        .await
        .json();
    assert_eq!(s, json!({"apps": [], "sessions": []}));

    // Both sign-outs are in the audit log, by whom and of whom.
    let out = app
        .cli(&["audit", "--event", "user.signed_out", "--json"], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let entries: Value = serde_json::from_str(&out.stdout).expect("audit JSON");
    let entries = entries.as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{entries:?}");
    let target = format!("user:{}", m.sub);
    assert!(
        entries.iter().all(|e| e["target"] == target.as_str()),
        "{entries:?}"
    );
}

#[actix_web::test]
async fn another_users_device_unknown_ids_and_bad_bodies_are_refused() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, admin) = admin_token(&app).await;
    let tokens = login_tokens(&app, &m).await;
    let out = app
        .cli(
            &[
                "user",
                "add",
                "--username",
                "bob",
                "--password-stdin",
                "--json",
            ],
            Some("bob's long password"),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let bob: Value = serde_json::from_str(&out.stdout).expect("bob");
    let bob_sub = bob["sub"].as_str().expect("sub");
    let s = call(
        &app,
        Method::GET,
        &format!("/admin/v1/users/{}/sessions", m.sub),
        Some(&admin),
        None,
    )
    .await
    .json();
    let family = s["apps"][0]["family_id"]
        .as_str()
        .expect("family")
        .to_owned();

    // alice's device, named as bob's: not found, and alice stays signed in.
    call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{bob_sub}/signout"),
        Some(&admin),
        Some(json!({ "family_id": family })),
    )
    .await
    .assert_oauth_error(404, "not_found");
    let out = app
        .cli(&["user", "signout", "bob", "--family", &family], None)
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    let r = refresh(
        &app,
        &m.client.client_id,
        tokens["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    for (path, body, status, error) in [
        (
            format!("/admin/v1/users/{}/signout", m.sub),
            json!({"family": "x"}),
            400,
            "invalid_request",
        ),
        (
            format!("/admin/v1/users/{}/signout", m.sub),
            json!({"family_id": 7}),
            400,
            "invalid_request",
        ),
        (
            "/admin/v1/users/nobody/signout".to_owned(),
            json!({}),
            404,
            "not_found",
        ),
    ] {
        call(&app, Method::POST, &path, Some(&admin), Some(body))
            .await
            .assert_oauth_error(status, error);
    }
    call(
        &app,
        Method::GET,
        "/admin/v1/users/nobody/sessions",
        Some(&admin),
        None,
    )
    .await
    .assert_oauth_error(404, "not_found");
    // Without an admin token, nothing is listed or signed out.
    let r = call(
        &app,
        Method::GET,
        &format!("/admin/v1/users/{}/sessions", m.sub),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let user_token = tokens["access_token"].as_str().expect("at");
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{}/signout", m.sub),
        Some(user_token),
        None,
    )
    .await;
    // A user's own access token is not an admin token.
    r.assert_oauth_error(403, "insufficient_scope");
}
