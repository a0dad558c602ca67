//! Prometheus `/metrics`: every series prefixed `latchkey_`; requests and latency by route
//! pattern and status; tokens issued by grant; login failures; reuse detections; key ages.
//! And the JSON log format: one JSON object per line, no secret or token in any of them.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_api::{admin_token, call};
use crate::browser::{self, Browser, PASSWORD};
use crate::helpers::{API, TestApp};

/// The scrape as `series{labels} -> value` (label order as served).
async fn scrape(app: &TestApp) -> (String, HashMap<String, f64>) {
    let r = app.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = r.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            if let Some(rest) = line
                .strip_prefix("# TYPE ")
                .or(line.strip_prefix("# HELP "))
            {
                assert!(rest.starts_with("latchkey_"), "unprefixed metric: {line}");
            }
            continue;
        }
        assert!(line.starts_with("latchkey_"), "unprefixed series: {line}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        samples.insert(series.to_owned(), value.parse::<f64>().expect("number"));
    }
    (text, samples)
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[actix_web::test]
async fn requests_latency_tokens_and_key_ages_are_exported_with_bounded_labels() {
    let app = TestApp::spawn().await;
    let svc = app.add_service_client().await;
    for _ in 0..3 {
        app.token_for(&svc, &[]).await;
    }
    app.post_token(
        &[("grant_type", "client_credentials")],
        Some((&svc.client_id, "wrong")),
    )
    .await
    .assert_oauth_error(401, "invalid_client");
    app.jwks().await;
    // An admin call on a path with an id, and a 404 on an unrouted path with a unique name.
    let (_, token) = admin_token(&app).await;
    let r = call(
        &app,
        Method::GET,
        &format!("/admin/v1/clients/{}", svc.client_id),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.get("/no-such-page-7f3a").await.status,
        StatusCode::NOT_FOUND
    );

    let (text, s) = scrape(&app).await;
    let tok = r#"latchkey_http_requests_total{endpoint="/token",method="POST",status="200"}"#;
    assert_eq!(
        get(&s, tok),
        4.0,
        "3 service tokens and the admin token:\n{text}"
    );
    assert_eq!(
        get(
            &s,
            r#"latchkey_http_requests_total{endpoint="/token",method="POST",status="401"}"#
        ),
        1.0
    );
    assert!(
        get(
            &s,
            r#"latchkey_http_requests_total{endpoint="/jwks",method="GET",status="200"}"#
        ) >= 1.0
    );
    assert_eq!(
        get(
            &s,
            r#"latchkey_http_request_duration_seconds_count{endpoint="/token",method="POST",status="200"}"#
        ),
        4.0
    );
    assert_eq!(
        get(&s, r#"latchkey_http_request_duration_seconds_bucket{le="+Inf",endpoint="/token",method="POST",status="200"}"#)
            .max(get(&s, r#"latchkey_http_request_duration_seconds_bucket{endpoint="/token",method="POST",status="200",le="+Inf"}"#)),
        4.0,
        "{text}"
    );
    // The route pattern, never the raw path: no client id, no unrouted path in any label.
    assert_eq!(
        get(
            &s,
            r#"latchkey_http_requests_total{endpoint="/admin/v1/clients/{client_id}",method="GET",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(!text.contains(&svc.client_id), "{text}");
    assert!(!text.contains("no-such-page"), "{text}");
    assert!(
        get(
            &s,
            r#"latchkey_http_requests_total{endpoint="unmatched",method="GET",status="404"}"#
        ) >= 1.0
    );
    // Tokens by grant.
    assert_eq!(
        get(
            &s,
            r#"latchkey_tokens_issued_total{grant_type="client_credentials"}"#
        ),
        4.0
    );
    // Key ages: both active keys, with kid, alg and state.
    let keys = app.jwks().await;
    for k in keys["keys"].as_array().expect("keys") {
        let series = format!(
            r#"latchkey_signing_key_age_seconds{{kid="{}",alg="{}",state="active"}}"#,
            k["kid"].as_str().expect("kid"),
            k["alg"].as_str().expect("alg")
        );
        let age = s
            .get(&series)
            .copied()
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert!((0.0..60.0).contains(&age), "{series} = {age}");
    }
    // No secret or token in the scrape.
    assert!(!text.contains(svc.secret()) && !text.contains(&token));
}

#[actix_web::test]
async fn login_failures_and_reuse_detections_are_counted() {
    let app = TestApp::spawn_with(|c| {
        c.refresh_reuse_grace = 0;
        // Successful logins below cost nothing; two failures, then throttled.
        c.login_burst_per_account = 2;
        c.login_replenish_secs = 600;
    })
    .await;
    let m = browser::setup(&app, true).await;
    let cid = m.client.client_id.clone();
    let t = browser::login_tokens(&app, &m).await;
    let rt0 = t["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(
        browser::refresh(&app, &cid, &rt0).await.status,
        StatusCode::OK
    );
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
    browser::refresh(&app, &cid, &rt0)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let (verifier, challenge) = browser::pkce();
    let mut b = Browser::new(&app);
    let code = browser::obtain_code(&app, &mut b, &m, &challenge).await;
    assert_eq!(
        browser::exchange(&app, &cid, &code, &verifier).await.status,
        StatusCode::OK
    );
    browser::exchange(&app, &cid, &code, &verifier)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let mut b2 = Browser::new(&app);
    let page2 = b2
        .get(&browser::authorize_path(&cid, &challenge, &[]))
        .await;
    for _ in 0..2 {
        assert_eq!(
            b2.login(&page2, "alice", "nope nope").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        b2.login(&page2, "alice", "nope nope").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let (text, s) = scrape(&app).await;
    assert_eq!(
        get(&s, "latchkey_refresh_token_reuse_detected_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        get(&s, "latchkey_authorization_code_replay_detected_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        get(&s, r#"latchkey_login_failures_total{reason="invalid"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        get(&s, r#"latchkey_login_failures_total{reason="throttled"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        get(
            &s,
            r#"latchkey_tokens_issued_total{grant_type="authorization_code"}"#
        ),
        2.0
    );
    assert_eq!(
        get(
            &s,
            r#"latchkey_tokens_issued_total{grant_type="refresh_token"}"#
        ),
        1.0
    );
    assert_eq!(get(&s, "latchkey_audit_write_failures_total"), 0.0);
    assert!(!text.contains(PASSWORD) && !text.contains("nope nope") && !text.contains(&rt0));
}

/// `log_format = "json"` at debug level while tokens, registrations, admin calls and failed
/// logins happen: every line is a JSON object and none holds a secret or token.
#[actix_web::test]
async fn json_logs_hold_no_secret_or_token() {
    let app = TestApp::spawn_process(
        |_| {},
        &[("LATCHKEY_LOG_FORMAT", "json"), ("RUST_LOG", "debug")],
    )
    .await;
    let svc = app.add_service_client().await;
    let access = app.access_token_for(&svc).await;
    let (admin, admin_tok) = admin_token(&app).await;
    let created = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&admin_tok),
        Some(json!({"client_name": "x", "grant_types": ["client_credentials"], "audience": [API]})),
    )
    .await
    .json();
    let iat = crate::registration::initial_token(&app, crate::registration::SERVICE_POLICY).await;
    let iat = iat["initial_access_token"]
        .as_str()
        .expect("iat")
        .to_owned();
    let reg = crate::registration::register(
        &app,
        Some(&iat),
        &json!({"grant_types": ["client_credentials"], "audience": [API]}),
    )
    .await
    .json();
    crate::registration::register(&app, Some("bogus-initial-token"), &json!({})).await;
    call(
        &app,
        Method::GET,
        "/admin/v1/users",
        Some("bogus-admin-token"),
        None,
    )
    .await;
    let m = browser::setup(&app, true).await;
    let t = browser::login_tokens(&app, &m).await;
    let (_, challenge) = browser::pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&browser::authorize_path(
            &m.client.client_id,
            &challenge,
            &[],
        ))
        .await;
    b.login(&page, "alice", "not the password").await;
    let secrets: Vec<String> = [
        svc.secret().to_owned(),
        access,
        admin.secret().to_owned(),
        admin_tok,
        created["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
        iat,
        reg["client_secret"].as_str().expect("secret").to_owned(),
        reg["registration_access_token"]
            .as_str()
            .expect("rat")
            .to_owned(),
        t["access_token"].as_str().expect("at").to_owned(),
        t["refresh_token"].as_str().expect("rt").to_owned(),
        t["id_token"].as_str().expect("id token").to_owned(),
        PASSWORD.to_owned(),
        "not the password".to_owned(),
        "bogus-initial-token".to_owned(),
        "bogus-admin-token".to_owned(),
    ]
    .into();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let log = app.process.as_ref().expect("a server process").log();
    assert!(log.lines().count() > 5, "{log}");
    for line in log.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        for s in &secrets {
            assert!(
                !line.contains(s.as_str()),
                "a secret or token in the log: {line}"
            );
        }
    }
    assert!(
        log.contains("\"audit\""),
        "audit events are logged too: {log}"
    );
}
