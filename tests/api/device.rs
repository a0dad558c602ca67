//! The device authorization grant (RFC 8628) from outside: a TV asks for codes and polls; a
//! person signs in at `/device` on another browser, checks the code and the app, and allows
//! or denies. Every refusal with its RFC error, never a 5xx.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::{Browser, PASSWORD, SCOPE, hidden, setup};
use crate::helpers::{API, Resp, TestApp, TestClient, jwt_parts};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public TV app with the device grant (and refresh tokens).
async fn tv(app: &TestApp) -> TestClient {
    app.add_client(&[
        "--name",
        "Living-room TV",
        "--type",
        "public",
        "--grant",
        "device_code",
        "--grant",
        "refresh_token",
        "--scope",
        SCOPE,
        "--audience",
        API,
    ])
    .await
}

async fn start(app: &TestApp, client_id: &str, scope: &str) -> Resp {
    let r = app
        .http
        .post(app.url("/device_authorization"))
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .expect("POST /device_authorization");
    Resp::read(r).await
}

async fn poll(app: &TestApp, client_id: &str, device_code: &str) -> Resp {
    app.post_token(
        &[
            ("grant_type", GRANT),
            ("device_code", device_code),
            ("client_id", client_id),
        ],
        None,
    )
    .await
}

/// The person at `/device`: types the code, signs in if asked, and decides.
async fn decide(b: &mut Browser<'_>, user_code: &str, decision: &str) -> Resp {
    let page = b.get("/device").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let mut r = b
        .post(
            "/device",
            &[("csrf", &hidden(&page, "csrf")), ("user_code", user_code)],
        )
        .await;
    if r.text().contains("name=\"password\"") {
        r = b
            .post(
                "/device/login",
                &[
                    ("csrf", &hidden(&r, "csrf")),
                    ("request", &hidden(&r, "request")),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
            )
            .await;
    }
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Living-room TV"), "{}", r.text());
    let shown: String = user_code.to_uppercase().replace('-', "");
    let shown = format!("{}-{}", &shown[..4], &shown[4..]);
    assert!(
        r.text().contains(&shown),
        "the page shows the code: {}",
        r.text()
    );
    b.post(
        "/device/confirm",
        &[
            ("csrf", &hidden(&r, "csrf")),
            ("user_code", &hidden(&r, "user_code")),
            ("decision", decision),
        ],
    )
    .await
}

#[actix_web::test]
async fn a_tv_signs_in_through_the_device_page() {
    let app = TestApp::spawn_with(|c| c.device_poll_interval = 1).await;
    let m = setup(&app, true).await;
    let d = app.discovery().await.json();
    assert_eq!(
        d["device_authorization_endpoint"],
        format!("{}/device_authorization", app.issuer)
    );
    assert!(
        d["grant_types_supported"]
            .as_array()
            .expect("grants")
            .contains(&Value::from(GRANT))
    );
    let tv = tv(&app).await;
    let r = start(&app, &tv.client_id, "openid profile offline_access").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    let device_code = v["device_code"].as_str().expect("device_code").to_owned();
    let user_code = v["user_code"].as_str().expect("user_code").to_owned();
    assert_eq!(v["verification_uri"], format!("{}/device", app.issuer));
    assert_eq!(
        v["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", app.issuer)
    );
    assert_eq!(v["interval"], 1);
    assert_eq!(v["expires_in"], app.config.device_code_ttl);
    // BCDF-GHJK: 8 consonants, no look-alikes.
    assert_eq!(user_code.len(), 9, "{user_code}");
    assert!(
        user_code.chars().enumerate().all(|(i, c)| if i == 4 {
            c == '-'
        } else {
            "BCDFGHJKLMNPQRSTVWXZ".contains(c)
        }),
        "{user_code}"
    );

    // Before the user decides: authorization_pending; polling faster than the interval:
    // slow_down.
    poll(&app, &tv.client_id, &device_code)
        .await
        .assert_oauth_error(400, "authorization_pending");
    poll(&app, &tv.client_id, &device_code)
        .await
        .assert_oauth_error(400, "slow_down");
    // Another client cannot poll with this device_code.
    let other = app
        .add_client(&[
            "--name",
            "other",
            "--type",
            "public",
            "--grant",
            "device_code",
            "--scope",
            "openid",
        ])
        .await;
    poll(&app, &other.client_id, &device_code)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // The person, on a phone: verification_uri_complete fills the code in; typed in lower case
    // without the dash works too.
    let mut phone = Browser::new(&app);
    let prefilled = phone.get(&format!("/device?user_code={user_code}")).await;
    assert!(
        prefilled.text().contains(&format!("value=\"{user_code}\"")),
        "{}",
        prefilled.text()
    );
    let typed = user_code.replace('-', "").to_lowercase();
    let r = decide(&mut phone, &typed, "allow").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Device connected"), "{}", r.text());

    // The TV's next poll (after the grown interval) gets the tokens.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let r = poll(&app, &tv.client_id, &device_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = r.json();
    let (_, at) = jwt_parts(t["access_token"].as_str().expect("access_token"));
    assert_eq!(at["sub"], m.sub.as_str());
    assert_eq!(at["client_id"], tv.client_id.as_str());
    let (_, id) = jwt_parts(t["id_token"].as_str().expect("id_token"));
    assert_eq!(id["aud"], tv.client_id.as_str());
    let refresh = t["refresh_token"].as_str().expect("refresh_token");
    let r = crate::browser::refresh(&app, &tv.client_id, refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // The device_code is spent: a second redemption is refused and revokes what it issued.
    tokio::time::sleep(Duration::from_secs(2)).await;
    poll(&app, &tv.client_id, &device_code)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let rotated = r.json()["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    crate::browser::refresh(&app, &tv.client_id, &rotated)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // And the user code cannot be used again.
    let page = phone.get("/device").await;
    let r = phone
        .post(
            "/device",
            &[("csrf", &hidden(&page, "csrf")), ("user_code", &user_code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

/// A decision is final: the confirmation form of a code already allowed (another tab, a
/// replayed POST) cannot deny it afterwards, nor allow it a second time; a disabled app's
/// codes are not shown at all.
#[actix_web::test]
async fn a_decided_code_cannot_be_decided_again_and_a_disabled_apps_codes_are_unknown() {
    let app = TestApp::spawn().await;
    setup(&app, true).await;
    let tv = tv(&app).await;
    let v = start(&app, &tv.client_id, "openid").await.json();
    let user_code = v["user_code"].as_str().expect("uc").to_owned();
    let mut b = Browser::new(&app);
    let page = b.get("/device").await;
    let r = b
        .post(
            "/device",
            &[("csrf", &hidden(&page, "csrf")), ("user_code", &user_code)],
        )
        .await;
    let confirm = b
        .post(
            "/device/login",
            &[
                ("csrf", &hidden(&r, "csrf")),
                ("request", &hidden(&r, "request")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let press = |decision: &'static str| {
        [
            ("csrf", hidden(&confirm, "csrf")),
            ("user_code", hidden(&confirm, "user_code")),
            ("decision", decision.to_owned()),
        ]
    };
    let allow = press("allow");
    let allow: Vec<(&str, &str)> = allow.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post("/device/confirm", &allow).await;
    assert!(r.text().contains("Device connected"), "{}", r.text());
    for decision in ["deny", "allow"] {
        let f = press(decision);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = b.post("/device/confirm", &f).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{decision}: {}",
            r.text()
        );
        assert!(!r.text().contains("Device connected"), "{decision}");
    }
    let r = poll(&app, &tv.client_id, v["device_code"].as_str().expect("dc")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the approval stands: {}",
        r.text()
    );

    // A disabled app: its pending code is unknown at /device, and its device cannot poll.
    let v = start(&app, &tv.client_id, "openid").await.json();
    let out = app.cli(&["client", "disable", &tv.client_id], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let page = b.get("/device").await;
    let r = b
        .post(
            "/device",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("user_code", v["user_code"].as_str().expect("uc")),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    poll(&app, &tv.client_id, v["device_code"].as_str().expect("dc"))
        .await
        .assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn deny_expiry_and_clients_without_the_grant() {
    let app = TestApp::spawn_with(|c| c.device_code_ttl = 10).await;
    setup(&app, true).await;
    let tv = tv(&app).await;
    // Denied: access_denied (400, RFC 8628 §3.5).
    let v = start(&app, &tv.client_id, "openid").await.json();
    let mut b = Browser::new(&app);
    let r = decide(&mut b, v["user_code"].as_str().expect("code"), "deny").await;
    assert!(r.text().contains("Request denied"), "{}", r.text());
    poll(&app, &tv.client_id, v["device_code"].as_str().expect("dc"))
        .await
        .assert_oauth_error(400, "access_denied");
    // Expired: expired_token; the page no longer knows the code.
    let v = start(&app, &tv.client_id, "openid").await.json();
    tokio::time::sleep(Duration::from_secs(11)).await;
    poll(&app, &tv.client_id, v["device_code"].as_str().expect("dc"))
        .await
        .assert_oauth_error(400, "expired_token");
    let page = b.get("/device").await;
    let r = b
        .post(
            "/device",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("user_code", v["user_code"].as_str().expect("uc")),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    // A forged device_code; a client without the grant; a scope beyond the client's.
    poll(&app, &tv.client_id, "forged")
        .await
        .assert_oauth_error(400, "invalid_grant");
    let web = app.add_service_client().await;
    let r = app
        .http
        .post(app.url("/device_authorization"))
        .basic_auth(&web.client_id, Some(web.secret()))
        .form(&[("scope", "api:read")])
        .send()
        .await
        .expect("POST");
    Resp::read(r)
        .await
        .assert_oauth_error(400, "unauthorized_client");
    start(&app, &tv.client_id, "openid admin:all")
        .await
        .assert_oauth_error(400, "invalid_scope");
    start(&app, "nobody", "openid")
        .await
        .assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn guessed_user_codes_are_throttled_and_forms_need_their_csrf_token() {
    let app = TestApp::spawn().await;
    setup(&app, true).await;
    let tv = tv(&app).await;
    let v = start(&app, &tv.client_id, "openid").await.json();
    let real = v["user_code"].as_str().expect("uc").to_owned();
    let mut b = Browser::new(&app);
    let page = b.get("/device").await;
    let csrf = hidden(&page, "csrf");
    // Ten wrong guesses are answered; the eleventh waits, even for the right code.
    for i in 0..10 {
        let guess = format!(
            "BCDF-{}",
            [
                "GHJK", "GHJL", "GHJM", "GHJN", "GHJP", "GHJQ", "GHJR", "GHJS", "GHJT", "GHJV"
            ][i]
        );
        let r = b
            .post("/device", &[("csrf", &csrf), ("user_code", &guess)])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "guess {i}: {}", r.text());
    }
    let r = b
        .post("/device", &[("csrf", &csrf), ("user_code", &real)])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    // Another address is not affected; without a valid CSRF token nothing is looked up or
    // decided.
    let mut other = Browser::from_address(&app, "127.0.0.2");
    let r = other
        .post("/device", &[("csrf", "forged"), ("user_code", &real)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = other
        .post(
            "/device/confirm",
            &[
                ("csrf", "forged"),
                ("user_code", &real),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    poll(&app, &tv.client_id, v["device_code"].as_str().expect("dc"))
        .await
        .assert_oauth_error(400, "authorization_pending");
    // The same person from that address can still connect the TV.
    let r = decide(&mut other, &real, "allow").await;
    assert!(r.text().contains("Device connected"), "{}", r.text());
}

/// `require_mfa` (here the server-wide default) holds on the device pages too: a password
/// alone cannot approve the TV; a password and an authenticator code can, through the same
/// one-time-code step as the authorization endpoint. The account pages stay reachable, so
/// the user can turn the authenticator on.
#[actix_web::test]
async fn a_device_needs_a_second_factor_when_the_server_requires_one() {
    let app = TestApp::spawn_with(|c| {
        c.device_poll_interval = 1;
        c.require_mfa = true;
    })
    .await;
    let _m = setup(&app, true).await;
    let tv = tv(&app).await;
    let v = start(&app, &tv.client_id, "openid offline_access")
        .await
        .json();
    let user_code = v["user_code"].as_str().expect("user_code").to_owned();
    let device_code = v["device_code"].as_str().expect("device_code").to_owned();
    let mut b = Browser::new(&app);
    let r = decide(&mut b, &user_code, "allow").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(
        r.text().contains("needs more than a password"),
        "{}",
        r.text()
    );
    let p = poll(&app, &tv.client_id, &device_code).await;
    p.assert_oauth_error(400, "authorization_pending");

    // The account page works with a password alone (exempt), and turns on the app.
    let mut acct = Browser::new(&app);
    crate::passkeys::account_page(&app, &mut acct, "alice").await;
    let page = acct.get("/account/totp").await;
    let secret = crate::browser::text_by_id(&page, "totp-secret");
    let code = |t: i64| {
        totp_rs::Builder::new()
            .with_secret(totp_rs::Secret::try_from_base32(&secret).expect("b32"))
            .build()
            .expect("totp")
            .generate(t as u64)
            .to_string()
    };
    let r = acct
        .post(
            "/account/totp",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("sealed", &hidden(&page, "sealed")),
                ("code", &code(crate::helpers::now() - 30)),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // A new browser: code, password, then the one-time code, then Allow.
    let mut b = Browser::new(&app);
    let page = b.get("/device").await;
    let r = b
        .post(
            "/device",
            &[("csrf", &hidden(&page, "csrf")), ("user_code", &user_code)],
        )
        .await;
    let r = b
        .post(
            "/device/login",
            &[
                ("csrf", &hidden(&r, "csrf")),
                ("request", &hidden(&r, "request")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(r.text().contains("Enter your code"), "{}", r.text());
    let r = b
        .post(
            "/device/login",
            &[
                ("csrf", &hidden(&r, "csrf")),
                ("request", &hidden(&r, "request")),
                ("ticket", &hidden(&r, "ticket")),
                ("code", &code(crate::helpers::now())),
            ],
        )
        .await;
    assert!(r.text().contains("Living-room TV"), "{}", r.text());
    let r = b
        .post(
            "/device/confirm",
            &[
                ("csrf", &hidden(&r, "csrf")),
                ("user_code", &hidden(&r, "user_code")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = poll(&app, &tv.client_id, &device_code).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());
    let (_, id) = jwt_parts(t.json()["id_token"].as_str().expect("id_token"));
    assert_eq!(id["acr"], "mfa", "{id}");
}
