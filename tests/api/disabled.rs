//! Issue 18 finding 3: a disabled user's or client's tokens are not "active" (RFC 7662 §2.2:
//! usable now) at introspection, userinfo and refresh — and usable again once re-enabled.
//! The same on two PostgreSQL replicas is in `replicas.rs`.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::admin_api::{admin_token, call};
use crate::browser::{login_tokens, refresh, setup};
use crate::helpers::{TestApp, TestClient};

async fn introspect(app: &TestApp, rs: &TestClient, token: &str) -> Value {
    let r = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&rs.client_id, rs.client_secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn userinfo(app: &TestApp, token: &str) -> (StatusCode, String) {
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo");
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status(), www)
}

#[actix_web::test]
async fn a_disabled_users_tokens_are_inactive_until_the_user_is_enabled_again() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let rs = app.add_service_client().await;
    let t = login_tokens(&app, &m).await;
    let at = t["access_token"].as_str().expect("access token");
    let rt = t["refresh_token"].as_str().expect("refresh token");
    assert_eq!(introspect(&app, &rs, at).await["active"], true);
    let out = app.cli(&["user", "disable", "alice"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        introspect(&app, &rs, at).await,
        serde_json::json!({"active": false})
    );
    let (status, www) = userinfo(&app, at).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www.contains("invalid_token"), "{www}");
    // Re-enabled (admin API): the unexpired token is usable again; nothing was revoked.
    let (_, admin) = admin_token(&app).await;
    let path = format!("/admin/v1/users/{}/enable", m.sub);
    let r = call(&app, Method::POST, &path, Some(&admin), None).await;
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(introspect(&app, &rs, at).await["active"], true);
    assert_eq!(userinfo(&app, at).await.0, StatusCode::OK);
    // Disabled again: refresh is refused too.
    let path = format!("/admin/v1/users/{}/disable", m.sub);
    let r = call(&app, Method::POST, &path, Some(&admin), None).await;
    assert!(r.status.is_success(), "{}", r.text());
    assert_eq!(introspect(&app, &rs, at).await["active"], false);
    refresh(&app, &m.client.client_id, rt)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[actix_web::test]
async fn a_disabled_clients_tokens_are_inactive_at_introspection_and_userinfo() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let rs = app.add_service_client().await;
    let svc = app.add_service_client().await;
    let t = login_tokens(&app, &m).await;
    let user_at = t["access_token"].as_str().expect("access token");
    let svc_at = app.access_token_for(&svc).await;
    assert_eq!(introspect(&app, &rs, user_at).await["active"], true);
    assert_eq!(introspect(&app, &rs, &svc_at).await["active"], true);
    for id in [&m.client.client_id, &svc.client_id] {
        let out = app.cli(&["client", "disable", id], None).await;
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    // The user's token from the disabled app, and the disabled service's own token.
    assert_eq!(introspect(&app, &rs, user_at).await["active"], false);
    assert_eq!(introspect(&app, &rs, &svc_at).await["active"], false);
    let (status, www) = userinfo(&app, user_at).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www.contains("invalid_token"), "{www}");
}
