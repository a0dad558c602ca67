//! Userinfo, introspection, revocation and logout: reading back what was issued.

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::{
    Browser, PASSWORD, REDIRECT_PORT, exchange, location_params, login_tokens, pkce, refresh, setup,
};
use crate::helpers::{TestApp, TestClient};

async fn userinfo(app: &TestApp, token: &str) -> (StatusCode, Option<String>, String) {
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo");
    let s = r.status();
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (s, www, r.text().await.unwrap_or_default())
}

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

#[actix_web::test]
async fn userinfo_answers_claims_by_scope_and_refuses_forged_or_id_tokens() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let t = login_tokens(&app, &m).await;
    let (s, _, body) = userinfo(&app, t["access_token"].as_str().expect("at")).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["sub"], m.sub.as_str());
    assert_eq!(v["email"], "alice@example.test");
    assert_eq!(v["preferred_username"], "alice");
    // An ID token is not an access token (typ), a tampered token fails the signature.
    let id = t["id_token"].as_str().expect("id");
    let (s, www, _) = userinfo(&app, id).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(www.unwrap_or_default().contains("invalid_token"));
    let at = t["access_token"].as_str().expect("at");
    let tampered = format!("{}x", &at[..at.len() - 1]);
    assert_eq!(userinfo(&app, &tampered).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        userinfo(&app, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // No token at all: 401 with a bare challenge.
    let r = app
        .http
        .get(app.url("/userinfo"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(r#"Bearer realm="latchkey""#)
    );
    // A client_credentials token has no openid scope: 403 insufficient_scope.
    let svc = app.add_service_client().await;
    let cc = app.access_token_for(&svc).await;
    let (s, www, _) = userinfo(&app, &cc).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(www.unwrap_or_default().contains("insufficient_scope"));
}

/// A login without `offline_access` gets no refresh token, and its access token has no refresh
/// family behind it: it must still work at userinfo and introspection, and be revocable by jti.
#[actix_web::test]
async fn tokens_of_a_login_without_offline_access_are_live_until_revoked() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let rs = app.add_service_client().await;
    let (verifier, challenge) = pkce();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &m.client.client_id)
        .append_pair("redirect_uri", REDIRECT_PORT)
        .append_pair("scope", "openid profile email")
        .append_pair("state", "st-123")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut b = Browser::new(&app);
    let page = b.get(&format!("/authorize?{}", q.finish())).await;
    let r = b.login(&page, &m.username, PASSWORD).await;
    let (_, p) = location_params(&r);
    let code = p.get("code").expect("code");
    let r = exchange(&app, &m.client.client_id, code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t: Value = r.json();
    assert!(t.get("refresh_token").is_none(), "{t}");
    let at = t["access_token"].as_str().expect("at");
    let (s, _, body) = userinfo(&app, at).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["email"], "alice@example.test");
    assert_eq!(introspect(&app, &rs, at).await["active"], true);
    // Revocation by jti still reaches it.
    assert_eq!(
        app.revoke(
            &[("token", at), ("client_id", m.client.client_id.as_str())],
            None
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(introspect(&app, &rs, at).await["active"], false);
    assert_eq!(userinfo(&app, at).await.0, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn introspection_is_for_confidential_clients_and_inactive_for_forged_or_revoked_tokens() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let rs = app.add_service_client().await;
    let t = login_tokens(&app, &m).await;
    let at = t["access_token"].as_str().expect("at");
    let v = introspect(&app, &rs, at).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], m.sub.as_str());
    for bad in ["", "garbage", "a.b.c", t["id_token"].as_str().expect("id")] {
        if bad.is_empty() {
            continue;
        }
        assert_eq!(
            introspect(&app, &rs, bad).await,
            serde_json::json!({"active": false}),
            "{bad}"
        );
    }
    // Public clients may not introspect.
    let r = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", at), ("client_id", &m.client.client_id)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Revoking the refresh token revokes the family, and its access tokens go inactive.
    assert_eq!(
        app.revoke(
            &[
                ("token", t["refresh_token"].as_str().expect("rt")),
                ("client_id", m.client.client_id.as_str()),
            ],
            None
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(introspect(&app, &rs, at).await["active"], false);
    assert_eq!(userinfo(&app, at).await.0, StatusCode::UNAUTHORIZED);
    refresh(
        &app,
        &m.client.client_id,
        t["refresh_token"].as_str().expect("rt"),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
}

#[actix_web::test]
async fn revoking_an_access_token_by_jti_and_foreign_revocations() {
    let app = TestApp::spawn().await;
    let svc = app.add_service_client().await;
    let other = app.add_service_client().await;
    let at = app.access_token_for(&svc).await;
    // Another client's revocation is answered 200 but changes nothing.
    assert_eq!(
        app.revoke(&[("token", at.as_str())], other.basic()).await,
        StatusCode::OK
    );
    assert_eq!(introspect(&app, &other, &at).await["active"], true);
    assert_eq!(
        app.revoke(&[("token", at.as_str())], svc.basic()).await,
        StatusCode::OK
    );
    assert_eq!(introspect(&app, &other, &at).await["active"], false);
    // Unknown tokens: 200; no credentials: 401.
    assert_eq!(
        app.revoke(&[("token", "unknown")], svc.basic()).await,
        StatusCode::OK
    );
    assert_eq!(
        app.revoke(&[("token", "unknown")], None).await,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn logout_ends_the_session_and_redirects_only_to_registered_uris() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let mut b = Browser::new(&app);
    let (verifier, challenge) = crate::browser::pkce();
    let code = crate::browser::obtain_code(&app, &mut b, &m, &challenge).await;
    let cid = m.client.client_id.clone();
    // Only a relying party holding the user's ID token signs them out without asking
    // (tests/api/logout.rs has the refusals).
    let hint = crate::browser::exchange(&app, &cid, &code, &verifier)
        .await
        .json()["id_token"]
        .as_str()
        .expect("id_token")
        .to_owned();
    let r = b
        .get(&format!(
            "/end_session?client_id={cid}&id_token_hint={hint}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.header("location").is_none());
    let r = b.get(&format!("/end_session?client_id={cid}&id_token_hint={hint}&post_logout_redirect_uri=com.example.app%3A%2Flogged-out&state=s1")).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.header("location"),
        Some("com.example.app:/logged-out?state=s1")
    );
    // The session is gone: the next authorization asks for the password again.
    let r = b
        .get(&crate::browser::authorize_path(&cid, &challenge, &[]))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("name=\"password\""));
}
