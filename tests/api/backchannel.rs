//! OpenID Connect Back-Channel Logout 1.0 from outside: apps register a
//! `backchannel_logout_uri`; when alice signs out (at the server's logout endpoint, or
//! everywhere from the CLI, or her refresh token is reused) each app she signed in to gets a
//! `logout_token` POSTed to it, signed by a key in the JWKS, for that app, with her `sub`,
//! the session's `sid` and the back-channel logout event. Deliveries never hold up the
//! sign-out; a receiver that fails is retried, then given up on.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{
    Browser, Mobile, PASSWORD, REDIRECT, SCOPE, exchange, obtain_code, pkce, refresh,
};
use crate::helpers::{Resp, TestApp, eventually, verify_offline};
use crate::jwks_uri::KeyHost;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

async fn server() -> TestApp {
    // The receivers run on this machine, which only a development server may call.
    TestApp::spawn_with(|c| c.outbound_allow_private_addresses = true).await
}

async fn alice(app: &TestApp) -> String {
    let out = app
        .cli(
            &[
                "user",
                "add",
                "--username",
                "alice",
                "--password-stdin",
                "--json",
            ],
            Some(PASSWORD),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("user");
    v["sub"].as_str().expect("sub").to_owned()
}

async fn app_with(app: &TestApp, name: &str, sub: &str, extra: &[&str]) -> Mobile {
    let mut args = vec![
        "--name",
        name,
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
    ];
    args.extend_from_slice(extra);
    Mobile {
        client: app.add_client(&args).await,
        username: "alice".into(),
        sub: sub.to_owned(),
    }
}

/// Signs in to `m` in browser `b`; the token response.
async fn sign_in(app: &TestApp, b: &mut Browser<'_>, m: &Mobile) -> Value {
    let (verifier, challenge) = pkce();
    let code = obtain_code(app, b, m, &challenge).await;
    let r = exchange(app, &m.client.client_id, &code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// The logout tokens a receiver got at `path`, verified against the JWKS for `client_id`.
async fn logout_tokens(app: &TestApp, host: &KeyHost, path: &str, client_id: &str) -> Vec<Value> {
    let jwks = app.jwks().await;
    host.bodies(path)
        .iter()
        .map(|body| {
            let form: std::collections::HashMap<String, String> =
                form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
            let jwt = form.get("logout_token").expect("a logout_token parameter");
            let v = verify_offline(jwt, &jwks, &app.issuer, client_id)
                .unwrap_or_else(|e| panic!("the logout token does not verify: {e}"));
            assert_eq!(v.header.typ.as_deref(), Some("logout+jwt"));
            let c = v.claims;
            assert_eq!(c["events"], json!({ EVENT: {} }), "{c}");
            assert!(c.get("nonce").is_none(), "§2.4: no nonce: {c}");
            assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "{c}");
            let (iat, exp) = (
                c["iat"].as_i64().expect("iat"),
                c["exp"].as_i64().expect("exp"),
            );
            assert!(exp > iat && exp - iat <= 300, "short-lived: {c}");
            c
        })
        .collect()
}

async fn queue_len(app: &TestApp) -> i64 {
    let url = app.config.database_url.clone();
    tokio::task::spawn_blocking(move || {
        latchkey::store::Store::open(&url, 1)
            .and_then(|s| Ok(s.logout_notices_queued()?))
            .expect("queue length")
    })
    .await
    .expect("join")
}

#[actix_web::test]
async fn signing_out_at_the_server_tells_each_app_of_that_session_with_a_verifiable_token() {
    let app = server().await;
    let d = app.discovery().await.json();
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);
    let sub = alice(&app).await;
    let host = KeyHost::start(String::new());
    host.serve(200, &[], String::new());
    let shop = app_with(
        &app,
        "Shop",
        &sub,
        &["--backchannel-logout-uri", &host.url("/shop")],
    )
    .await;
    assert_eq!(
        shop.client.metadata["backchannel_logout_uri"],
        host.url("/shop")
    );
    let news = app_with(
        &app,
        "News",
        &sub,
        &["--backchannel-logout-uri", &host.url("/news")],
    )
    .await;
    let quiet = app_with(&app, "Quiet", &sub, &[]).await;
    // An app alice never signed in to hears nothing.
    let _unused = app_with(
        &app,
        "Unused",
        &sub,
        &["--backchannel-logout-uri", &host.url("/unused")],
    )
    .await;

    // One browser session, three apps.
    let mut b = Browser::new(&app);
    let tokens = sign_in(&app, &mut b, &shop).await;
    sign_in(&app, &mut b, &news).await;
    sign_in(&app, &mut b, &quiet).await;
    let hint = tokens["id_token"].as_str().expect("id_token");
    let (_, id) = crate::helpers::jwt_parts(hint);
    let sid = id["sid"].as_str().expect("sid").to_owned();
    assert!(
        host.bodies("/shop").is_empty(),
        "nothing before the sign-out"
    );

    let r = b.get(&format!("/end_session?id_token_hint={hint}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    eventually(
        "both receivers are told",
        Duration::from_secs(10),
        || async {
            (host.bodies("/shop").len() == 1 && host.bodies("/news").len() == 1).then_some(())
        },
    )
    .await;
    for (path, m) in [("/shop", &shop), ("/news", &news)] {
        let t = logout_tokens(&app, &host, path, &m.client.client_id).await;
        assert_eq!(t[0]["sub"], sub.as_str(), "{}", t[0]);
        assert_eq!(
            t[0]["sid"],
            sid.as_str(),
            "the session that ended: {}",
            t[0]
        );
    }
    assert!(host.bodies("/unused").is_empty());
    eventually("the queue empties", Duration::from_secs(5), || async {
        (queue_len(&app).await == 0).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn a_failing_receiver_is_retried_then_dropped_and_never_delays_the_user() {
    let app = server().await;
    let sub = alice(&app).await;
    let flaky = KeyHost::start(String::new());
    flaky.serve(500, &[], String::new());
    let slow = KeyHost::start(String::new());
    slow.serve(200, &[], String::new());
    slow.delay(Duration::from_secs(20));
    let a = app_with(
        &app,
        "Flaky",
        &sub,
        &["--backchannel-logout-uri", &flaky.url("/bcl")],
    )
    .await;
    let s = app_with(
        &app,
        "Slow",
        &sub,
        &["--backchannel-logout-uri", &slow.url("/bcl")],
    )
    .await;
    let mut b = Browser::new(&app);
    let tokens = sign_in(&app, &mut b, &a).await;
    sign_in(&app, &mut b, &s).await;
    let hint = tokens["id_token"].as_str().expect("id_token").to_owned();

    // The sign-out answers at once, whatever the receivers do (the slow one takes 20 s).
    let started = Instant::now();
    let r = b.get(&format!("/end_session?id_token_hint={hint}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Other requests are not held up by the deliveries either.
    eventually(
        "the slow receiver is called",
        Duration::from_secs(5),
        || async { (!slow.bodies("/bcl").is_empty()).then_some(()) },
    )
    .await;
    let t = Instant::now();
    assert!(app.get("/readyz").await.status.is_success());
    assert!(t.elapsed() < Duration::from_secs(2));

    // The flaky receiver: tried, and tried again 2 s later; it recovers on the third try.
    eventually("two attempts", Duration::from_secs(10), || async {
        (flaky.bodies("/bcl").len() >= 2).then_some(())
    })
    .await;
    flaky.serve(200, &[], String::new());
    eventually(
        "a third, successful attempt",
        Duration::from_secs(20),
        || async { (flaky.bodies("/bcl").len() == 3).then_some(()) },
    )
    .await;
    let toks = logout_tokens(&app, &flaky, "/bcl", &a.client.client_id).await;
    let jtis: std::collections::HashSet<_> = toks.iter().map(|t| t["jti"].clone()).collect();
    assert_eq!(jtis.len(), 3, "a fresh token per attempt");
    // The slow receiver timed out (5 s) each time: retried after 2, 10 and 30 s, then dropped.
    eventually(
        "the slow notice is given up",
        Duration::from_secs(75),
        || async { (queue_len(&app).await == 0).then_some(()) },
    )
    .await;
    assert_eq!(slow.bodies("/bcl").len(), 4, "one try and three retries");
    assert_eq!(flaky.bodies("/bcl").len(), 3, "delivered: not sent again");
}

#[actix_web::test]
async fn signing_out_everywhere_and_a_stolen_refresh_token_tell_the_apps() {
    // No retry window: a rotated token presented again is a theft at once.
    let app = TestApp::spawn_with(|c| {
        c.outbound_allow_private_addresses = true;
        c.refresh_reuse_grace = 0;
    })
    .await;
    let sub = alice(&app).await;
    let host = KeyHost::start(String::new());
    host.serve(200, &[], String::new());
    let phone = app_with(
        &app,
        "Phone",
        &sub,
        &["--backchannel-logout-uri", &host.url("/phone")],
    )
    .await;
    let web = app_with(
        &app,
        "Web",
        &sub,
        &[
            "--backchannel-logout-uri",
            &host.url("/web"),
            "--backchannel-logout-session-required",
        ],
    )
    .await;
    assert_eq!(
        web.client.metadata["backchannel_logout_session_required"],
        true
    );

    // A refresh token replayed after its rotation: the family is revoked as stolen, and the
    // app is told about that session.
    let mut b = Browser::new(&app);
    let t = sign_in(&app, &mut b, &phone).await;
    let sid = crate::helpers::jwt_parts(t["id_token"].as_str().expect("id")).1["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let rt = t["refresh_token"].as_str().expect("rt");
    let r = refresh(&app, &phone.client.client_id, rt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    refresh(&app, &phone.client.client_id, rt)
        .await
        .assert_oauth_error(400, "invalid_grant");
    eventually("the phone app is told", Duration::from_secs(10), || async {
        (host.bodies("/phone").len() == 1).then_some(())
    })
    .await;
    let told = logout_tokens(&app, &host, "/phone", &phone.client.client_id).await;
    assert_eq!(told[0]["sid"], sid.as_str());

    // Everywhere, from the CLI: the phone app hears `sub` only (all her sessions); the web app,
    // which requires `sid`, hears of each session it had.
    let mut b2 = Browser::new(&app);
    sign_in(&app, &mut b2, &web).await;
    let mut b3 = Browser::new(&app);
    sign_in(&app, &mut b3, &web).await;
    let out = app.cli(&["user", "signout", "alice"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually("both apps are told", Duration::from_secs(10), || async {
        (host.bodies("/phone").len() == 2 && host.bodies("/web").len() == 2).then_some(())
    })
    .await;
    let told = logout_tokens(&app, &host, "/phone", &phone.client.client_id).await;
    assert_eq!(told[1]["sub"], sub.as_str());
    assert!(told[1].get("sid").is_none(), "every session: {}", told[1]);
    let told = logout_tokens(&app, &host, "/web", &web.client.client_id).await;
    let sids: std::collections::HashSet<_> = told.iter().map(|t| t["sid"].clone()).collect();
    assert_eq!(sids.len(), 2, "one per session: {told:?}");
    assert!(sids.iter().all(|s| s.is_string()));
}

#[actix_web::test]
async fn backchannel_logout_uris_must_be_https_and_public() {
    let app = TestApp::spawn().await;
    let (_, admin) = crate::admin_api::admin_token(&app).await;
    for (uri, ok) in [
        ("https://shop.example/logout", true),
        ("http://127.0.0.1:9/logout", true),
        ("http://shop.example/logout", false),
        ("https://10.0.0.1/logout", false),
        ("https://shop.example/logout#x", false),
        ("https://u:p@shop.example/logout", false),
        ("not a url", false),
    ] {
        let r = Resp::read(
            app.http
                .post(app.url("/admin/v1/clients"))
                .bearer_auth(&admin)
                .json(&json!({
                    "client_name": "shop",
                    "grant_types": ["authorization_code"],
                    "redirect_uris": ["https://shop.example/cb"],
                    "backchannel_logout_uri": uri,
                }))
                .send()
                .await
                .expect("POST"),
        )
        .await;
        if ok {
            assert_eq!(r.status, StatusCode::CREATED, "{uri}: {}", r.text());
            assert_eq!(r.json()["backchannel_logout_uri"], uri);
        } else {
            r.assert_oauth_error(400, "invalid_client_metadata");
        }
    }
}
