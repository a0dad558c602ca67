//! Issue 18, the transport and output findings: idle and trickling connections are closed
//! (finding 10), audit entries for refused admin calls are rate-limited (finding 6), and
//! control characters never reach a log or a terminal raw (finding 5).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::admin_api::{admin_token, call};
use crate::browser::{Browser, authorize_path, pkce, setup};
use crate::helpers::{TestApp, eventually};
use crate::registration::{initial_token, register};

const IDLE_CONNECTIONS: usize = 2000;

/// Reads until the server closes the connection; what it sent, and when it closed.
async fn until_closed(mut s: TcpStream, deadline: Duration) -> Option<(Vec<u8>, Instant)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let at = tokio::time::timeout(deadline, read).await.ok()?;
    Some((got, at))
}

fn open_files_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return 0;
    }
    l.rlim_cur
}

#[actix_web::test]
async fn idle_and_trickling_connections_are_closed_and_health_stays_fast() {
    // Both ends of every connection live in this process.
    let needed = (2 * IDLE_CONNECTIONS + 200) as u64;
    let limit = open_files_limit();
    if limit < needed {
        eprintln!("SKIPPED: idle connection test needs {needed} open files (ulimit -n is {limit})");
        return;
    }
    let app = TestApp::spawn().await;
    let addr = format!("127.0.0.1:{}", app.port);
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    // Health checks stay fast with all of them open and silent.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = app.get("/healthz").await;
        assert_eq!(r.status, reqwest::StatusCode::OK);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "health check took {slowest:?}"
    );
    // A request head trickled a byte at a time, and a body trickled after a complete head.
    let head = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut s = TcpStream::connect(&addr).await.expect("connect");
            let start = Instant::now();
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (start, until_closed(s, Duration::from_secs(15)).await)
        }
    });
    let body = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut s = TcpStream::connect(&addr).await.expect("connect");
            let start = Instant::now();
            s.write_all(
                b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n",
            )
            .await
            .expect("head");
            let (mut rd, mut wr) = s.into_split();
            let trickle = tokio::spawn(async move {
                for _ in 0..60 {
                    if wr.write_all(b"a").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            let closed = tokio::time::timeout(Duration::from_secs(25), async {
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => return Instant::now(),
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await
            .ok();
            trickle.abort();
            (start, closed, got)
        }
    });
    // Every silent connection is closed by the server within the head timeout (+ slack).
    let deadline = latchkey::app::REQUEST_HEAD_TIMEOUT + Duration::from_secs(5);
    let waits = idle.into_iter().map(|s| until_closed(s, deadline));
    let closed = futures_util::future::join_all(waits).await;
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        still_open, 0,
        "idle connections left open after {deadline:?}"
    );
    let last = closed
        .iter()
        .flatten()
        .map(|(_, at)| *at)
        .max()
        .expect("closed");
    assert!(last.duration_since(opened) < deadline + Duration::from_secs(5));

    let (start, head) = head.await.expect("head task");
    let (got, at) = head.expect("a trickled request head is cut off");
    assert!(
        at.duration_since(start) < latchkey::app::REQUEST_HEAD_TIMEOUT + Duration::from_secs(3),
        "{:?}",
        at.duration_since(start)
    );
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    let (start, closed, got) = body.await.expect("body task");
    let at = closed.expect("a trickled body is cut off");
    assert!(
        at.duration_since(start) < latchkey::http::BODY_TIMEOUT + Duration::from_secs(4),
        "{:?}",
        at.duration_since(start)
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("invalid_request"), "{text}");
    // And the server still serves.
    assert_eq!(app.get("/healthz").await.status, reqwest::StatusCode::OK);
}

/// A username built to forge a log line and an audit row, clear the terminal and reverse text.
const FORGED: &str = "mallory\r\n2026-12-07T00:00:00.000000Z  INFO latchkey: audit=login.succeeded actor=user:alice\x1b[2J\u{202E}nimda";

#[actix_web::test]
async fn control_characters_typed_at_the_login_page_reach_no_log_or_terminal_raw() {
    let app = TestApp::spawn_process(|_| {}, &[]).await; // the default: text logs
    let m = setup(&app, true).await;
    let mut b = Browser::new(&app);
    let (_, challenge) = pkce();
    let page = b
        .get(&authorize_path(&m.client.client_id, &challenge, &[]))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let r = b.login(&page, FORGED, "not the password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());

    let process = app.process.as_ref().expect("a server process");
    let log = eventually(
        "the failed sign-in is logged",
        Duration::from_secs(10),
        || async {
            let log = process.log();
            log.contains("mallory").then_some(log)
        },
    )
    .await;
    for raw in ['\x1b', '\r', '\u{202E}'] {
        assert!(!log.contains(raw), "{raw:?} reached the log raw:\n{log}");
    }
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-07T00:00:00")),
        "a forged line:\n{log}"
    );
    assert!(
        log.contains("mallory\\u{d}\\u{a}2026-12-07T00:00:00.000000Z"),
        "{log}"
    );

    let out = app.cli(&["audit", "--event", "login"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        rows.len(),
        1,
        "one audit row, not a forged second one: {rows:?}"
    );
    assert!(rows[0].contains("\tlogin.failed\t"), "{rows:?}");
    assert!(
        rows[0].contains("user:mallory\\u{d}\\u{a}2026-12-07T"),
        "{rows:?}"
    );
    assert!(rows[0].contains("\\u{1b}[2J\\u{202e}nimda"), "{rows:?}");
    assert!(!out.stdout.contains('\x1b') && !out.stdout.contains('\u{202E}'));
    // The JSON output keeps the value exactly as typed, for machines.
    let out = app
        .cli(&["audit", "--event", "login", "--json"], None)
        .await;
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["actor"], format!("user:{FORGED}"));
}

#[actix_web::test]
async fn names_with_control_or_bidi_characters_are_refused_at_every_door() {
    let app = TestApp::spawn().await;
    let (_, admin) = admin_token(&app).await;
    let bad_names = [
        "pay\u{202E}lapyap",
        "app\0",
        "app\nAllowed by Latchkey",
        "a\x1b[8m",
    ];
    let before = app.cli(&["client", "list"], None).await.stdout;
    for name in bad_names {
        // The admin API.
        let r = call(
            &app,
            Method::POST,
            "/admin/v1/clients",
            Some(&admin),
            Some(json!({"client_name": name, "grant_types": ["client_credentials"]})),
        )
        .await;
        r.assert_oauth_error(400, "invalid_client_metadata");
        assert_eq!(
            r.json()["error_description"],
            "client_name must not contain control or bidi formatting characters"
        );
        // Dynamic registration (RFC 7591), where the name is the attacker's choice.
        let t = initial_token(&app, &[]).await;
        let r = register(
            &app,
            t["initial_access_token"].as_str(),
            &json!({"client_name": name, "token_endpoint_auth_method": "none",
                    "redirect_uris": ["com.example.app:/cb"]}),
        )
        .await;
        r.assert_oauth_error(400, "invalid_client_metadata");
        // The admin API's users.
        let r = call(
            &app,
            Method::POST,
            "/admin/v1/users",
            Some(&admin),
            Some(json!({"username": name, "password": "correct horse battery"})),
        )
        .await;
        r.assert_oauth_error(400, "invalid_request");
        let r = call(
            &app,
            Method::POST,
            "/admin/v1/users",
            Some(&admin),
            Some(json!({"username": "zoe", "name": name, "password": "correct horse battery"})),
        )
        .await;
        r.assert_oauth_error(400, "invalid_request");
        // The CLI (an argument cannot hold NUL).
        if !name.contains('\0') {
            let out = app
                .cli(
                    &["client", "add", "--name", name, "--type", "confidential"],
                    None,
                )
                .await;
            assert!(matches!(out.code, Some(c) if c != 0), "{out:?}");
            assert!(
                out.stderr.contains("client_name must not contain"),
                "{out:?}"
            );
            let out = app
                .cli(
                    &["user", "add", "--username", name, "--password-stdin"],
                    Some("correct horse battery"),
                )
                .await;
            assert!(matches!(out.code, Some(c) if c != 0), "{out:?}");
            assert!(out.stderr.contains("--username must be"), "{out:?}");
        }
    }
    assert_eq!(app.cli(&["client", "list"], None).await.stdout, before);
    // Names in any other script still register.
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&admin),
        Some(json!({"client_name": "Zoë's app — 日本", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

/// The `admin.access_denied` entries of `client_id` in the audit log.
async fn denied_rows(app: &TestApp, client_id: &str) -> Vec<serde_json::Value> {
    let out = app
        .cli(
            &[
                "audit",
                "--json",
                "--event",
                "admin.access_denied",
                "--limit",
                "1000",
            ],
            None,
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("JSON");
    all.into_iter()
        .filter(|e| e["actor"] == format!("client:{client_id}"))
        .collect()
}

async fn suppressed_metric(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix("latchkey_audit_suppressed_total "))
        .expect("latchkey_audit_suppressed_total is exported")
        .parse::<f64>()
        .expect("a number") as u64
}

#[actix_web::test]
async fn a_flood_of_refused_admin_calls_writes_a_few_audit_rows_and_counts_the_rest() {
    let app = TestApp::spawn().await;
    let flooder = app.add_service_client().await;
    let other = app.add_service_client().await;
    let token = app.access_token_for(&flooder).await;
    const CALLS: usize = 200;
    for _ in 0..CALLS {
        call(&app, Method::GET, "/admin/v1/users", Some(&token), None)
            .await
            .assert_oauth_error(403, "insufficient_scope");
    }
    let rows = denied_rows(&app, &flooder.client_id).await;
    // The burst, and at most a refill or two if this machine is slow.
    assert!(
        !rows.is_empty() && rows.len() <= latchkey::protocol::audit::DENIED_BURST as usize + 2,
        "{} rows for {CALLS} refused calls",
        rows.len()
    );
    assert_eq!(
        suppressed_metric(&app).await as usize,
        CALLS - rows.len(),
        "every refused call is either written or counted"
    );
    // Another caller is not silenced by the flood.
    let t2 = app.access_token_for(&other).await;
    call(&app, Method::GET, "/admin/v1/clients", Some(&t2), None)
        .await
        .assert_oauth_error(403, "insufficient_scope");
    assert_eq!(denied_rows(&app, &other.client_id).await.len(), 1);
    // Once the flooder's budget refills, its next entry says how many were skipped.
    let noted = crate::helpers::eventually(
        "an entry carrying the suppressed count",
        Duration::from_secs(20),
        || async {
            call(&app, Method::GET, "/admin/v1/users", Some(&token), None)
                .await
                .assert_oauth_error(403, "insufficient_scope");
            denied_rows(&app, &flooder.client_id)
                .await
                .into_iter()
                .find_map(|e| e["details"]["suppressed"].as_u64())
        },
    )
    .await;
    assert!(noted as usize >= CALLS - rows.len(), "{noted}");
}
