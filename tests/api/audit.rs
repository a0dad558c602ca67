//! The audit log: every admin action (admin API and CLI) and every security event (login
//! failure, throttling, refresh reuse, code replay, key rotation, refused admin access) is
//! recorded with who, what, when and from where, never a secret, and read back through
//! `GET /admin/v1/audit` and `latchkey audit`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_api::{admin_token, assert_error, call};
use crate::browser::{self, Browser, PASSWORD};
use crate::helpers::{API, TestApp, now};

/// `latchkey audit --json [args]`.
async fn cli_audit(app: &TestApp, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["audit", "--json"];
    full.extend_from_slice(args);
    let out = app.cli(&full, None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    serde_json::from_str::<Value>(&out.stdout)
        .expect("JSON")
        .as_array()
        .expect("array")
        .clone()
}

async fn api_audit(app: &TestApp, token: &str, query: &str) -> Value {
    let r = call(
        app,
        Method::GET,
        &format!("/admin/v1/audit{query}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

fn find<'a>(entries: &'a [Value], event: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["event"] == event).collect()
}

#[track_caller]
fn no_secret_in(entries: &[Value], secrets: &[&str]) {
    let all = serde_json::to_string(entries).expect("json");
    for s in secrets {
        assert!(
            !s.is_empty() && !all.contains(s),
            "a secret leaked into the audit log: {s}"
        );
    }
}

#[actix_web::test]
async fn admin_api_actions_are_audited_with_actor_target_and_address() {
    let app = TestApp::spawn().await;
    let (admin, token) = admin_token(&app).await;
    let t0 = now();
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&token),
        Some(
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "audience": [API]}),
        ),
    )
    .await;
    let created = r.json();
    let id = created["client_id"].as_str().expect("id").to_owned();
    let secret1 = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let secret2 = call(
        &app,
        Method::POST,
        &format!("/admin/v1/clients/{id}/rotate-secret"),
        Some(&token),
        None,
    )
    .await
    .json()["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    call(
        &app,
        Method::POST,
        &format!("/admin/v1/clients/{id}/disable"),
        Some(&token),
        None,
    )
    .await;
    let user = call(
        &app,
        Method::POST,
        "/admin/v1/users",
        Some(&token),
        Some(json!({"username": "bob", "password": PASSWORD})),
    )
    .await
    .json();
    let sub = user["sub"].as_str().expect("sub").to_owned();
    call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{sub}/password"),
        Some(&token),
        Some(json!({"password": "another password"})),
    )
    .await;
    call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{sub}/disable"),
        Some(&token),
        None,
    )
    .await;
    call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{sub}/revoke-grants"),
        Some(&token),
        None,
    )
    .await;
    let rotated = call(
        &app,
        Method::POST,
        "/admin/v1/keys/rotate",
        Some(&token),
        Some(json!({"alg": "ES256"})),
    )
    .await
    .json();
    let iat = crate::admin_api::create_registration_token(&app, &token, None).await;
    call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        None,
    )
    .await;

    let page = api_audit(&app, &token, "?limit=1000").await;
    let entries = page["events"].as_array().expect("events").clone();
    let actor = format!("admin:{}", admin.client_id);
    let expect = [
        ("client.created", format!("client:{id}")),
        ("client.secret_rotated", format!("client:{id}")),
        ("client.disabled", format!("client:{id}")),
        ("user.created", format!("user:{sub}")),
        ("user.password_reset", format!("user:{sub}")),
        ("user.disabled", format!("user:{sub}")),
        ("grants.revoked", format!("user:{sub}")),
        (
            "key.rotated",
            format!(
                "key:{}",
                rotated["rotated"][0]["kid"].as_str().expect("kid")
            ),
        ),
        ("client.deleted", format!("client:{id}")),
    ];
    for (event, target) in &expect {
        let e: Vec<&Value> = find(&entries, event)
            .into_iter()
            .filter(|e| e["actor"] == actor.as_str())
            .collect();
        assert_eq!(e.len(), 1, "{event}: {entries:?}");
        let e = e[0];
        assert_eq!(e["target"], target.as_str(), "{e}");
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
        assert_eq!(e["outcome"], "success", "{e}");
        let at = e["at"].as_i64().expect("at");
        assert!(at >= t0 && at <= now(), "{e}");
    }
    assert_eq!(find(&entries, "registration_token.created").len(), 1);
    // In order, ids ascending.
    let ids: Vec<i64> = entries
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    no_secret_in(
        &entries,
        &[
            &secret1,
            &secret2,
            &token,
            PASSWORD,
            "another password",
            iat["initial_access_token"].as_str().expect("iat"),
            admin.secret(),
        ],
    );
    // The CLI reads the same log.
    let cli = cli_audit(&app, &["--event", "client"]).await;
    let events: Vec<&str> = cli
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    assert!(
        events.starts_with(&["client.created", "client.created"])
            && events.contains(&"client.deleted"),
        "{events:?}"
    );
    assert!(
        events.iter().all(|e| e.starts_with("client.")),
        "{events:?}"
    );
}

#[actix_web::test]
async fn the_audit_api_pages_and_filters_and_rejects_bad_queries() {
    let app = TestApp::spawn().await;
    let (_, token) = admin_token(&app).await;
    for i in 0..5 {
        call(
            &app,
            Method::POST,
            "/admin/v1/users",
            Some(&token),
            Some(json!({"username": format!("u{i}"), "password": PASSWORD})),
        )
        .await;
    }
    // The newest two, oldest first.
    let p = api_audit(&app, &token, "?event=user.created&limit=2").await;
    let names: Vec<&str> = p["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["details"]["username"].as_str().expect("username"))
        .collect();
    assert_eq!(names, ["u3", "u4"]);
    // Forwards from the start.
    let p = api_audit(&app, &token, "?event=user&after=0&limit=3").await;
    let names: Vec<&str> = p["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["details"]["username"].as_str().expect("username"))
        .collect();
    assert_eq!(names, ["u0", "u1", "u2"]);
    let next = p["next_after"].as_i64().expect("next_after");
    let p = api_audit(&app, &token, &format!("?event=user&after={next}")).await;
    assert_eq!(p["events"].as_array().map(Vec::len), Some(2));
    // A prefix matches whole name parts only, and LIKE wildcards are literal.
    let p = api_audit(&app, &token, "?event=use").await;
    assert_eq!(p["events"].as_array().map(Vec::len), Some(0));
    let p = api_audit(&app, &token, "?event=user_created").await;
    assert_eq!(p["events"].as_array().map(Vec::len), Some(0));
    let p = api_audit(&app, &token, "?event=%25").await;
    assert_eq!(p["events"].as_array().map(Vec::len), Some(0));
    assert_eq!(p["next_after"], Value::Null);
    for (q, d) in [
        ("?limit=0", "limit must be 1 to 1000"),
        ("?limit=5000", "limit must be 1 to 1000"),
        ("?limit=abc", "limit must be an integer"),
        ("?after=1.5", "after must be an integer"),
    ] {
        let r = call(
            &app,
            Method::GET,
            &format!("/admin/v1/audit{q}"),
            Some(&token),
            None,
        )
        .await;
        assert_error(&r, 400, "invalid_request", d);
    }
}

#[actix_web::test]
async fn cli_actions_are_audited_with_the_cli_as_actor() {
    let app = TestApp::spawn().await;
    let c = app.add_service_client().await;
    let out = app
        .cli(&["client", "rotate-secret", &c.client_id, "--json"], None)
        .await;
    let new_secret: Value = serde_json::from_str(&out.stdout).expect("json");
    app.cli(&["client", "disable", &c.client_id], None).await;
    let out = app
        .cli(
            &[
                "user",
                "add",
                "--username",
                "carol",
                "--password-stdin",
                "--json",
            ],
            Some(PASSWORD),
        )
        .await;
    let carol: Value = serde_json::from_str(&out.stdout).expect("json");
    app.cli(
        &["user", "passwd", "carol", "--password-stdin"],
        Some("carol's new password"),
    )
    .await;
    app.cli(&["user", "disable", "carol"], None).await;
    app.cli(&["keys", "rotate", "--alg", "ES256"], None).await;
    let iat = crate::registration::initial_token(&app, &["--max-uses", "3"]).await;
    let entries = cli_audit(&app, &["--limit", "1000"]).await;
    let sub = carol["sub"].as_str().expect("sub");
    for (event, target) in [
        ("client.created", format!("client:{}", c.client_id)),
        ("client.secret_rotated", format!("client:{}", c.client_id)),
        ("client.disabled", format!("client:{}", c.client_id)),
        ("user.created", format!("user:{sub}")),
        ("user.password_reset", format!("user:{sub}")),
        ("user.disabled", format!("user:{sub}")),
    ] {
        let e = find(&entries, event);
        assert_eq!(e.len(), 1, "{event}: {entries:?}");
        assert!(
            e[0]["actor"].as_str().is_some_and(|a| a.starts_with("cli")),
            "{}",
            e[0]
        );
        assert_eq!(e[0]["target"], target.as_str());
        assert_eq!(e[0]["ip"], Value::Null);
    }
    let rot = find(&entries, "key.rotated");
    assert_eq!(rot.len(), 1);
    assert_eq!(rot[0]["details"]["alg"], "ES256");
    let reg = find(&entries, "registration_token.created");
    assert_eq!(
        reg[0]["target"],
        format!("registration_token:{}", iat["id"].as_str().expect("id"))
    );
    assert_eq!(reg[0]["details"]["max_uses"], 3);
    no_secret_in(
        &entries,
        &[
            c.secret(),
            new_secret["client_secret"].as_str().expect("secret"),
            PASSWORD,
            "carol's new password",
            iat["initial_access_token"].as_str().expect("iat"),
        ],
    );
    // Text output: one line per entry.
    let out = app.cli(&["audit", "--event", "user"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    let out = app.cli(&["audit", "--limit", "0"], None).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("--limit"), "{out:?}");
}

#[actix_web::test]
async fn login_failures_and_throttling_are_audited_with_the_address_but_no_password() {
    let app = TestApp::spawn_with(|c| {
        c.login_burst_per_account = 2;
        c.login_replenish_secs = 600;
    })
    .await;
    let m = browser::setup(&app, true).await;
    let (_, challenge) = browser::pkce();
    let mut b = Browser::new(&app);
    let page = b
        .get(&browser::authorize_path(
            &m.client.client_id,
            &challenge,
            &[],
        ))
        .await;
    for _ in 0..2 {
        assert_eq!(
            b.login(&page, "alice", "wrong guess 1").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..3 {
        assert_eq!(
            b.login(&page, "alice", "wrong guess 2").await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let entries = cli_audit(&app, &["--event", "login"]).await;
    let failed = find(&entries, "login.failed");
    assert_eq!(failed.len(), 2, "{entries:?}");
    assert_eq!(failed[0]["actor"], "user:alice");
    assert_eq!(failed[0]["ip"], "127.0.0.1");
    assert_eq!(failed[0]["outcome"], "failure");
    assert_eq!(failed[0]["details"]["reason"], "invalid");
    // Throttled attempts are recorded once per account per minute, not once per request.
    let throttled = find(&entries, "login.throttled");
    assert_eq!(throttled.len(), 1, "{entries:?}");
    assert_eq!(throttled[0]["ip"], "127.0.0.1");
    no_secret_in(&entries, &["wrong guess 1", "wrong guess 2", PASSWORD]);
}

#[actix_web::test]
async fn refresh_reuse_and_code_replay_are_audited() {
    let app = TestApp::spawn_with(|c| c.refresh_reuse_grace = 0).await;
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

    let entries = cli_audit(&app, &[]).await;
    let reuse = find(&entries, "refresh_token.reuse_detected");
    assert_eq!(reuse.len(), 1, "{entries:?}");
    assert_eq!(reuse[0]["actor"], format!("client:{cid}"));
    assert_eq!(reuse[0]["outcome"], "detected");
    assert_eq!(reuse[0]["details"]["user_id"], m.sub.as_str());
    let replay = find(&entries, "authorization_code.replay_detected");
    assert_eq!(replay.len(), 1, "{entries:?}");
    assert_eq!(replay[0]["target"], format!("client:{cid}"));
    no_secret_in(&entries, &[&rt0, &code, &verifier]);
}

#[actix_web::test]
async fn refused_admin_access_and_scheduled_key_rotation_are_audited() {
    let app = TestApp::spawn_with(|c| {
        c.key_publish_ahead = 2;
        c.key_rotation_interval = 3;
    })
    .await;
    let svc = app.add_service_client().await;
    let t = app.access_token_for(&svc).await;
    let r = call(&app, Method::GET, "/admin/v1/users", Some(&t), None).await;
    r.assert_oauth_error(403, "insufficient_scope");
    let denied = find(&cli_audit(&app, &[]).await, "admin.access_denied")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["actor"], format!("client:{}", svc.client_id));
    assert_eq!(denied[0]["ip"], "127.0.0.1");
    assert_eq!(denied[0]["outcome"], "failure");

    let rotated = app
        .eventually(
            "a scheduled rotation in the audit log",
            Duration::from_secs(12),
            || async {
                let e = cli_audit(&app, &["--event", "key.rotated"]).await;
                (!e.is_empty()).then_some(e)
            },
        )
        .await;
    assert_eq!(rotated[0]["actor"], "system");
    assert!(
        rotated[0]["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("key:"))
    );
}
