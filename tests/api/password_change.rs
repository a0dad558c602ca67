//! Issue 18 finding 4: a password change or reset (CLI, admin API) ends what the old password
//! opened — every browser session, refresh token family and unused code of the user — and
//! `latchkey user revoke-grants NAME` does the same (and forgets consents) on demand.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::admin_api::{admin_token, call};
use crate::browser::{
    self, Browser, Mobile, PASSWORD, authorize_path, exchange, obtain_code, pkce, refresh, setup,
};
use crate::helpers::{TestApp, TestClient};

const NEW_PASSWORD: &str = "a brand new passphrase";

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

/// One device's sign-in: its browser (holding the session cookie) and its tokens.
async fn device<'a>(app: &'a TestApp, m: &Mobile) -> (Browser<'a>, Value) {
    let mut b = Browser::new(app);
    let (verifier, challenge) = pkce();
    let code = obtain_code(app, &mut b, m, &challenge).await;
    let r = exchange(app, &m.client.client_id, &code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    (b, r.json())
}

/// Whether this browser's session still signs it in: `/authorize` answers with the
/// "Continue as alice" page (this public app always asks for one press, RFC 8252 §8.6)
/// instead of asking for a password.
async fn still_signed_in(b: &mut Browser<'_>, m: &Mobile) -> bool {
    let (_, challenge) = pkce();
    let r = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    if crate::browser::is_confirmation(&r, &m.username) {
        return true;
    }
    assert!(
        r.text().contains("name=\"password\""),
        "{} {}",
        r.status,
        r.text()
    );
    false
}

/// Signs in from a fresh browser with this password; true if a code came back.
async fn signs_in_with(app: &TestApp, m: &Mobile, password: &str) -> bool {
    let mut b = Browser::new(app);
    let (_, challenge) = pkce();
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let r = b.login(&page, &m.username, password).await;
    r.status == StatusCode::FOUND || r.status == StatusCode::SEE_OTHER || {
        // A page after the password (consent or an explicit "Continue") is a success too.
        r.status == StatusCode::OK && !r.text().contains("name=\"password\"")
    }
}

fn token<'v>(t: &'v Value, name: &str) -> &'v str {
    t[name].as_str().expect(name)
}

#[actix_web::test]
async fn a_password_change_at_the_cli_signs_the_user_out_everywhere() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let rs = app.add_service_client().await;
    let (mut phone, t1) = device(&app, &m).await;
    let (mut laptop, t2) = device(&app, &m).await;
    // A code the old session obtained but has not redeemed yet.
    let (verifier, challenge) = pkce();
    let pending = obtain_code(&app, &mut phone, &m, &challenge).await;
    assert!(still_signed_in(&mut phone, &m).await);
    assert!(still_signed_in(&mut laptop, &m).await);
    assert_eq!(
        introspect(&app, &rs, token(&t1, "access_token")).await["active"],
        true
    );

    let out = app
        .cli(
            &["user", "passwd", "alice", "--password-stdin", "--json"],
            Some(NEW_PASSWORD),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["password_changed"], true);
    assert_eq!(v["sessions_ended"], 2, "{v}");
    assert_eq!(v["token_families_revoked"], 2, "{v}");

    assert!(
        !still_signed_in(&mut phone, &m).await,
        "phone session ended"
    );
    assert!(
        !still_signed_in(&mut laptop, &m).await,
        "laptop session ended"
    );
    for t in [&t1, &t2] {
        refresh(&app, &m.client.client_id, token(t, "refresh_token"))
            .await
            .assert_oauth_error(400, "invalid_grant");
        assert_eq!(
            introspect(&app, &rs, token(t, "access_token")).await["active"],
            false
        );
    }
    exchange(&app, &m.client.client_id, &pending, &verifier)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(!signs_in_with(&app, &m, PASSWORD).await, "old password");
    assert!(signs_in_with(&app, &m, NEW_PASSWORD).await, "new password");
    // What was signed in after the change is untouched by it.
    let mut after = Browser::new(&app);
    let (verifier, challenge) = pkce();
    let page = after
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    let r = after.login(&page, &m.username, NEW_PASSWORD).await;
    let (_, p) = browser::location_params(&r);
    let r = exchange(&app, &m.client.client_id, &p["code"], &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(still_signed_in(&mut after, &m).await);
    let r = refresh(&app, &m.client.client_id, token(&r.json(), "refresh_token")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[actix_web::test]
async fn a_password_reset_through_the_admin_api_ends_sessions_and_is_audited() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (mut phone, t) = device(&app, &m).await;
    let (_, admin) = admin_token(&app).await;
    let path = format!("/admin/v1/users/{}/password", m.sub);
    let r = call(
        &app,
        Method::POST,
        &path,
        Some(&admin),
        Some(serde_json::json!({ "password": NEW_PASSWORD })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(!still_signed_in(&mut phone, &m).await);
    refresh(&app, &m.client.client_id, token(&t, "refresh_token"))
        .await
        .assert_oauth_error(400, "invalid_grant");
    let audit = call(
        &app,
        Method::GET,
        "/admin/v1/audit?event=user.password_reset",
        Some(&admin),
        None,
    )
    .await
    .json();
    let entry = &audit["events"][0];
    assert_eq!(entry["details"]["sessions_ended"], 1, "{audit}");
    assert_eq!(entry["details"]["token_families_revoked"], 1, "{audit}");
    assert!(!audit.to_string().contains(NEW_PASSWORD));
    // An unknown user is 404 and changes nothing.
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/users/nobody/password",
        Some(&admin),
        Some(serde_json::json!({ "password": NEW_PASSWORD })),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
}

#[actix_web::test]
async fn user_revoke_grants_at_the_cli_ends_sessions_tokens_and_consents() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let rs = app.add_service_client().await;
    let (mut phone, t) = device(&app, &m).await;
    let out = app
        .cli(&["user", "revoke-grants", "alice", "--json"], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["token_families"], 1, "{v}");
    assert_eq!(v["sessions"], 1, "{v}");
    assert!(!still_signed_in(&mut phone, &m).await);
    refresh(&app, &m.client.client_id, token(&t, "refresh_token"))
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        introspect(&app, &rs, token(&t, "access_token")).await["active"],
        false
    );
    // The password still works: revoking grants is not a password change.
    assert!(signs_in_with(&app, &m, browser::PASSWORD).await);
    let audit = app
        .cli(&["audit", "--json", "--event", "grants.revoked"], None)
        .await;
    assert_eq!(audit.code, Some(0), "{audit:?}");
    assert!(audit.stdout.contains("user:"), "{}", audit.stdout);
    let out = app.cli(&["user", "revoke-grants", "nobody"], None).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("no user named"), "{out:?}");
}
