//! End to end in a real browser: Debian's headless Chromium, driven by `tests/browser/login.mjs`
//! (playwright-core), logs in on the real server's pages, and the app's redirect lands on a
//! loopback listener this test runs, as a native app's would (RFC 8252 §7.3). The test then
//! redeems the code as the app would and checks the tokens.
//!
//! Needs `node` (20+), Chromium (`/usr/bin/chromium`, or `LATCHKEY_CHROMIUM`) and
//! `tests/browser/node_modules` (the test runs `npm ci` there once if it is missing). Without
//! them each test prints `SKIPPED: ...` and passes, unless `LATCHKEY_REQUIRE_BROWSER=1` (set by
//! `.ci/run`), which turns a missing tool into a failure.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{PASSWORD, SCOPE, pkce, setup};
use crate::helpers::{API, Resp, TestApp, now, verify_offline};

/// The Rust side's limit for one run of the script (which has its own, shorter, hard limit).
const RUN_LIMIT: Duration = Duration::from_secs(90);
/// The script's own hard limit for one run, browser start included.
const SCRIPT_LIMIT_MS: u64 = 45_000;

// ---------------------------------------------------------------------------------------------
// Tools: node, chromium, playwright-core; skip or fail when missing.

struct Tools {
    node: String,
    chromium: String,
    script: PathBuf,
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn require_browser() -> bool {
    std::env::var("LATCHKEY_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

fn find_tools() -> Result<Tools, String> {
    let node = "node".to_owned();
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .ok_or("node not found on PATH")?;
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!(
            "node {version} is too old for playwright-core (needs 20+)"
        ));
    }
    let chromium =
        std::env::var("LATCHKEY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        return Err(format!(
            "no Chromium at {chromium} (apt-get install chromium, or set LATCHKEY_CHROMIUM)"
        ));
    }
    let dir = browser_dir();
    let installed = |d: &Path| {
        d.join("node_modules/playwright-core/package.json")
            .is_file()
    };
    if !installed(&dir) {
        // A checkout without node_modules: install the pinned lockfile once for this process.
        let out = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&dir)
            .output()
            .map_err(|e| format!("{} is missing and npm could not run: {e}", dir.display()))?;
        if !out.status.success() || !installed(&dir) {
            return Err(format!(
                "`npm ci --prefix {}` failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(Tools {
        node,
        chromium,
        script: dir.join("login.mjs"),
    })
}

/// The tools, or `None` after printing why this test is skipped (a failure when
/// `LATCHKEY_REQUIRE_BROWSER=1`).
fn tools_or_skip(test: &str) -> Option<&'static Tools> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    match TOOLS.get_or_init(find_tools) {
        Ok(t) => Some(t),
        Err(why) if require_browser() => {
            panic!("LATCHKEY_REQUIRE_BROWSER=1 but the browser test cannot run: {why}")
        }
        Err(why) => {
            // Straight to stderr, not eprintln!: the test harness would capture that and show
            // nothing for a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: {why}; the real-browser test did not run"
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The app's side: a loopback HTTP listener for the redirect (and a page that frames the login).

struct Loopback {
    port: u16,
    /// Request targets (path and query) in the order they arrived.
    hits: Arc<Mutex<Vec<String>>>,
    /// What `/frame` serves, if anything.
    frame: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Loopback {
    /// Serves `/cb` (the redirect: a short "you can close this window" page) and `/frame`
    /// (see [`set_frame`](Self::set_frame)).
    fn start() -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the loopback redirect");
        let port = listener.local_addr().expect("loopback addr").port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let frame = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, f, s) = (hits.clone(), frame.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, f) = (h.clone(), f.clone());
                // One thread per connection: Chromium opens speculative connections that may
                // never carry a request.
                std::thread::spawn(move || serve_one(conn, &h, &f));
            }
        });
        Loopback {
            port,
            hits,
            frame,
            stop,
            thread: Some(thread),
        }
    }

    /// A page of this (other) origin that frames `url`: a clickjacking attempt.
    fn set_frame(&self, url: &str) {
        let html = format!(
            "<!doctype html><title>Not the server</title><iframe width=\"600\" height=\"600\" src=\"{}\"></iframe>",
            url.replace('&', "&amp;").replace('"', "&quot;")
        );
        *self.frame.lock().expect("frame") = Some(html);
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn redirect_uri(&self) -> String {
        format!("{}/cb", self.origin())
    }

    /// The redirects that reached the app, as absolute URLs.
    fn callbacks(&self) -> Vec<String> {
        self.hits
            .lock()
            .expect("hits")
            .iter()
            .filter(|t| t.starts_with("/cb"))
            .map(|t| format!("{}{t}", self.origin()))
            .collect()
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(mut conn: TcpStream, hits: &Mutex<Vec<String>>, frame: &Mutex<Option<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let (status, body) = if target.starts_with("/cb") {
        hits.lock().expect("hits").push(target);
        (
            "200 OK",
            "<!doctype html><title>Example app</title><p>Signed in. You can close this window.</p>"
                .to_owned(),
        )
    } else if let (true, Some(html)) = (
        target.starts_with("/frame"),
        frame.lock().expect("frame").clone(),
    ) {
        hits.lock().expect("hits").push(target);
        ("200 OK", html)
    } else if target == "/favicon.ico" {
        // The app's page has no icon; a 404 here would be a console error of the app's, not
        // of the server under test (and would appear or not depending on timing).
        ("204 No Content", String::new())
    } else {
        ("404 Not Found", "not found".to_owned())
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Running the script, with a hard limit, and making sure no Chromium is left behind.

/// Chromium processes (browser process) started with this marker switch.
fn marked_processes(marker: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == marker.as_bytes()))
        })
        .collect()
}

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Reads a child's pipe to the end on its own thread (so neither pipe can fill and block it).
fn read_all<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// Runs the script with `plan` (plus the tools and a marker for this run's Chromium) and
/// returns its report. Panics with the script's diagnostics if it failed, timed out, or left a
/// browser process running.
fn run_plan_blocking(tools: &Tools, mut plan: Value) -> Value {
    let run = latchkey::secret::random_token(12);
    let marker = format!("--latchkey-test-run={run}");
    plan["chromium"] = tools.chromium.clone().into();
    plan["extra_args"] = json!([marker]);
    plan["timeout_ms"] = SCRIPT_LIMIT_MS.into();
    // For a person looking into a failure: every page as a PNG, and the script's report.
    let debug_dir = std::env::var("LATCHKEY_BROWSER_SCREENSHOTS").ok();
    if let Some(dir) = &debug_dir {
        plan["screenshot_dir"] = dir.clone().into();
    }
    let mut child = Command::new(&tools.node)
        .arg(&tools.script)
        .arg(plan.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (out, err) = (read_all(child.stdout.take()), read_all(child.stderr.take()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for node") {
            break Some(s);
        }
        if start.elapsed() > RUN_LIMIT {
            // SIGTERM first: playwright closes the browser on it. Then make sure.
            signal("-TERM", child.id());
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The browser must be gone once the script is; give it a moment to exit, then end it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = marked_processes(&marker);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = marked_processes(&marker);
    }
    for pid in &left {
        signal("-KILL", *pid);
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "the browser script ran longer than {RUN_LIMIT:?} and was killed\nstdout: {stdout}\nstderr: {stderr}"
        );
    };
    if let Some(dir) = &debug_dir {
        let _ = std::fs::write(Path::new(dir).join(format!("report-{run}.json")), &stdout);
    }
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("the browser script printed no report ({status})\nstdout: {stdout}\nstderr: {stderr}")
        });
    assert!(
        status.success() && report["ok"] == true,
        "the browser script failed ({status}):\n{}\nstderr: {stderr}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    assert!(
        left.is_empty(),
        "Chromium processes {left:?} outlived the script (killed now)"
    );
    report
}

async fn run_plan(tools: &'static Tools, plan: Value) -> Value {
    let t = Instant::now();
    let report = actix_web::rt::task::spawn_blocking(move || run_plan_blocking(tools, plan))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    eprintln!(
        "browser run: {:?} in Chromium {}",
        t.elapsed(),
        report["version"]
    );
    report
}

// ---------------------------------------------------------------------------------------------
// The app's protocol side.

struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    url: String,
}

fn flow(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    tag: &str,
    extra: &[(&str, &str)],
) -> Flow {
    let (verifier, challenge) = pkce();
    let (state, nonce) = (format!("st-{tag}"), format!("n-{tag}"));
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPE)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    Flow {
        state,
        nonce,
        verifier,
        url: app.url(&format!("/authorize?{}", q.finish())),
    }
}

/// The redirect's query parameters, after checking it went to `redirect_uri` with this
/// flow's `state` and the issuer's `iss` (RFC 9207).
fn callback_params(
    app: &TestApp,
    f: &Flow,
    redirect_uri: &str,
    url: &str,
) -> HashMap<String, String> {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("final URL {url:?}: {e}"));
    assert_eq!(
        &url[..url.find('?').unwrap_or(url.len())],
        redirect_uri,
        "the browser ended somewhere else: {url}"
    );
    let p: HashMap<String, String> = u.query_pairs().into_owned().collect();
    assert_eq!(p.get("state"), Some(&f.state), "{url}");
    assert_eq!(p.get("iss"), Some(&app.issuer), "RFC 9207 iss: {url}");
    p
}

/// Redeems the code as the app would and checks the ID token (signature, nonce, subject) and
/// that the access token works at /userinfo. Returns the ID token's claims.
async fn redeem(
    app: &TestApp,
    client_id: &str,
    sub: &str,
    redirect_uri: &str,
    f: &Flow,
    code: &str,
) -> Value {
    let r = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", client_id),
                ("code_verifier", &f.verifier),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "code exchange: {}", r.text());
    let tokens = r.json();
    let jwks = app.jwks().await;
    let id = tokens["id_token"].as_str().expect("id_token");
    let claims = verify_offline(id, &jwks, &app.issuer, client_id)
        .unwrap_or_else(|e| panic!("the ID token does not verify: {e}"))
        .claims;
    assert_eq!(claims["nonce"], f.nonce.as_str());
    assert_eq!(claims["sub"], sub);
    let at = tokens["access_token"].as_str().expect("access_token");
    verify_offline(at, &jwks, &app.issuer, API).expect("the access token verifies offline");
    let info = Resp::read(
        app.http
            .get(app.url("/userinfo"))
            .bearer_auth(at)
            .send()
            .await
            .expect("GET /userinfo"),
    )
    .await;
    assert_eq!(info.status, StatusCode::OK, "userinfo: {}", info.text());
    assert_eq!(info.json()["sub"], sub);
    claims
}

// ---------------------------------------------------------------------------------------------
// Reading the report.

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in the report: {report}"))
}

fn kinds(step: &Value) -> Vec<String> {
    step["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| p["kind"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn final_url(step: &Value) -> String {
    step["final_url"].as_str().expect("final_url").to_owned()
}

/// The document responses (of the main frame, or of frames in it) whose URL starts with
/// `prefix`.
fn responses<'a>(step: &'a Value, prefix: &str, main_frame: bool) -> Vec<&'a Value> {
    step["navigations"]
        .as_array()
        .expect("navigations")
        .iter()
        .filter(|n| {
            n["main_frame"] == main_frame
                && n["url"].as_str().is_some_and(|u| u.starts_with(prefix))
        })
        .collect()
}

fn cookie<'a>(step: &'a Value, name: &str) -> &'a Value {
    step["cookies"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} cookie in the browser: {}", step["cookies"]))
}

/// Every page of the server that the browser rendered in this step carries the page headers.
#[track_caller]
fn assert_pages_headers(step: &Value, server: &str) -> usize {
    let shown: Vec<_> = responses(step, server, true)
        .into_iter()
        .filter(|r| {
            !r["status"]
                .as_u64()
                .is_some_and(|s| (300..400).contains(&s))
        })
        .collect();
    for r in &shown {
        assert_page_headers(r);
    }
    shown.len()
}

/// The headers every HTML page of the server carries, as the browser received them.
#[track_caller]
fn assert_page_headers(resp: &Value) {
    let h = &resp["headers"];
    let what = format!("{} {}", resp["status"], resp["url"]);
    assert_eq!(h["x-frame-options"], "DENY", "{what}: {h}");
    let csp = h["content-security-policy"].as_str().unwrap_or("");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    assert!(csp.contains("default-src 'none'"), "{what}: CSP {csp:?}");
    assert_eq!(h["cache-control"], "no-store", "{what}: {h}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}: {h}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}: {h}");
    assert!(
        h["content-type"]
            .as_str()
            .unwrap_or("")
            .starts_with("text/html"),
        "{what}: {h}"
    );
}

/// The console's errors (CSP violations, framing refusals, failed loads, script errors).
fn console_errors(step: &Value) -> Vec<String> {
    step["console"]
        .as_array()
        .expect("console")
        .iter()
        .filter(|m| m["type"] == "error" || m["type"] == "pageerror")
        .map(|m| {
            let text = m["text"].as_str().unwrap_or("");
            match m["url"].as_str() {
                Some(u) if !u.is_empty() => format!("{text} ({u})"),
                _ => text.to_owned(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// A third-party app: sign in and consent in Chromium, then single sign-on from the session
/// cookie (one press on "Continue as alice"), `prompt=login`, a denied `prompt=consent`; and the login page refuses to be framed.
#[actix_web::test]
async fn chromium_signs_in_consents_reuses_the_session_and_honours_prompt() {
    let Some(tools) =
        tools_or_skip("chromium_signs_in_consents_reuses_the_session_and_honours_prompt")
    else {
        return;
    };
    let app = TestApp::spawn().await;
    let m = setup(&app, false).await;
    let id = m.client.client_id.clone();

    // The app's loopback redirect listener; its /frame page also tries to frame the login page.
    let lb = Loopback::start();
    let redirect = lb.redirect_uri();
    let framed = flow(&app, &id, &redirect, "framed", &[("prompt", "login")]);
    lb.set_frame(&framed.url);
    let first = flow(&app, &id, &redirect, "first", &[]);
    let sso = flow(&app, &id, &redirect, "sso", &[]);
    let relogin = flow(&app, &id, &redirect, "relogin", &[("prompt", "login")]);
    let deny = flow(&app, &id, &redirect, "deny", &[("prompt", "consent")]);
    let alice = json!([{ "username": m.username, "password": PASSWORD }]);
    let plan = json!({
        "redirect_prefix": redirect,
        "context": { "viewport": { "width": 1280, "height": 800 } },
        "steps": [
            { "name": "framed", "action": "framed", "url": format!("{}/frame", lb.origin()) },
            { "name": "first", "action": "authorize", "url": first.url, "logins": alice, "consent": "allow" },
            { "name": "sso", "action": "authorize", "url": sso.url, "continue": "allow" },
            { "name": "relogin", "action": "authorize", "url": relogin.url, "logins": alice },
            { "name": "deny", "action": "authorize", "url": deny.url, "consent": "deny" },
        ]
    });
    let report = run_plan(tools, plan).await;

    // Clickjacking: the server answered the framed request, and Chromium refused to show it.
    let st = step(&report, "framed");
    assert_eq!(
        lb.hits.lock().expect("hits").first().map(String::as_str),
        Some("/frame")
    );
    let inner = responses(st, &app.address, false);
    assert_eq!(inner.len(), 1, "the frame's request: {}", st["navigations"]);
    assert_eq!(inner[0]["status"], 200);
    assert_page_headers(inner[0]);
    assert_eq!(st["frame_found"], true, "{st}");
    assert_eq!(
        st["frame_has_password_input"], false,
        "the login form rendered in a frame: {st}"
    );
    assert!(
        st["frame_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("chrome-error:")),
        "the frame should end on Chromium's error page: {st}"
    );
    assert!(
        console_errors(st)
            .iter()
            .any(|e| e.contains("frame-ancestors 'none'")),
        "Chromium should report the frame-ancestors refusal: {}",
        st["console"]
    );

    // First sign-in: login page, consent page, then the redirect reaches the app.
    let st = step(&report, "first");
    assert_eq!(kinds(st), ["login", "consent"], "{st}");
    let pages = st["pages"].as_array().expect("pages");
    assert_eq!(pages[0]["title"], "Sign in · Latchkey");
    assert_eq!(pages[0]["client_text"], "to continue to app");
    assert_eq!(pages[1]["heading"], "Allow app?");
    assert_eq!(
        pages[1]["scopes"],
        json!([
            "Sign you in",
            "See your name and username",
            "See your email address",
            "Stay signed in (keep access while you are away)",
            "Access: api:read"
        ])
    );
    assert_eq!(
        assert_pages_headers(st, &app.address),
        2,
        "login and consent pages: {}",
        st["navigations"]
    );
    assert!(
        console_errors(st).is_empty(),
        "errors in the console (a CSP violation?): {}",
        st["console"]
    );
    let url = final_url(st);
    assert_eq!(
        lb.callbacks().first(),
        Some(&url),
        "the app's listener saw the redirect"
    );
    let p = callback_params(&app, &first, &redirect, &url);
    let code = p.get("code").expect("code");
    let c1 = redeem(&app, &id, &m.sub, &redirect, &first, code).await;

    // The session cookie as the browser stored it.
    let session = cookie(st, "lk_session");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Lax", "{session}");
    assert_eq!(session["secure"], false, "http issuer: no Secure flag");
    assert_eq!(session["path"], "/");
    assert_eq!(session["domain"], "127.0.0.1");
    let expires = session["expires"].as_f64().expect("expires") as i64;
    let ttl = app.config.session_ttl as i64;
    assert!(
        (now() + ttl - 60..=now() + ttl + 5).contains(&expires),
        "lk_session should live session_ttl: {session}"
    );
    let csrf = cookie(st, "lk_csrf");
    assert_eq!(csrf["httpOnly"], true, "{csrf}");
    assert_eq!(csrf["sameSite"], "Lax", "{csrf}");

    // Second authorization, same browser: no login form, no consent (remembered); same session.
    // This public app's loopback redirect could belong to any app on the machine, so the user
    // presses "Continue as alice" once (RFC 8252 §8.6) instead of getting a silent code.
    let st = step(&report, "sso");
    assert_eq!(
        kinds(st),
        ["continue"],
        "SSO shows only the Continue page: {st}"
    );
    let pages = st["pages"].as_array().expect("pages");
    assert_eq!(pages[0]["heading"], "Continue to app?");
    assert_eq!(pages[0]["button"], "Continue as alice");
    assert_eq!(assert_pages_headers(st, &app.address), 1);
    let p = callback_params(&app, &sso, &redirect, &final_url(st));
    let c2 = redeem(
        &app,
        &id,
        &m.sub,
        &redirect,
        &sso,
        p.get("code").expect("code"),
    )
    .await;
    assert_eq!(c2["sid"], c1["sid"], "SSO reuses the session");
    assert_eq!(c2["auth_time"], c1["auth_time"]);
    assert_eq!(cookie(st, "lk_session")["value"], session["value"]);

    // prompt=login: the login form again (consent is remembered), then a new session.
    let st = step(&report, "relogin");
    assert_eq!(kinds(st), ["login"], "{st}");
    assert_eq!(assert_pages_headers(st, &app.address), 1);
    let p = callback_params(&app, &relogin, &redirect, &final_url(st));
    let c3 = redeem(
        &app,
        &id,
        &m.sub,
        &redirect,
        &relogin,
        p.get("code").expect("code"),
    )
    .await;
    assert_ne!(c3["sid"], c1["sid"], "a fresh login is a new session");
    assert!(c3["auth_time"].as_i64() >= c1["auth_time"].as_i64());
    assert_ne!(cookie(st, "lk_session")["value"], session["value"]);

    // prompt=consent and Deny: access_denied at the app, no code.
    let st = step(&report, "deny");
    assert_eq!(kinds(st), ["consent"], "{st}");
    assert_eq!(assert_pages_headers(st, &app.address), 1);
    let p = callback_params(&app, &deny, &redirect, &final_url(st));
    assert_eq!(p.get("error").map(String::as_str), Some("access_denied"));
    assert!(!p.contains_key("code"));

    // Every redirect the browser reached was received by the app, in order.
    let finals: Vec<String> = ["first", "sso", "relogin", "deny"]
        .iter()
        .map(|n| final_url(step(&report, n)))
        .collect();
    assert_eq!(lb.callbacks(), finals);
}

/// A first-party app on a phone: the login page fits a 390×844 touch screen, a wrong password
/// shows the error and keeps the username, and tapping through signs in.
#[actix_web::test]
async fn chromium_signs_in_on_a_phone_sized_touch_screen() {
    let Some(tools) = tools_or_skip("chromium_signs_in_on_a_phone_sized_touch_screen") else {
        return;
    };
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let id = m.client.client_id.clone();
    let lb = Loopback::start();
    let redirect = lb.redirect_uri();
    let f = flow(&app, &id, &redirect, "phone", &[]);
    let plan = json!({
        "redirect_prefix": redirect,
        "context": {
            "viewport": { "width": 390, "height": 844 },
            "deviceScaleFactor": 3,
            "isMobile": true,
            "hasTouch": true,
        },
        "steps": [{
            "name": "phone",
            "action": "authorize",
            "url": f.url,
            "measure": true,
            "logins": [
                { "username": m.username, "password": "not the password" },
                { "username": m.username, "password": PASSWORD },
            ],
        }]
    });
    let report = run_plan(tools, plan).await;
    let st = step(&report, "phone");
    // First-party: no consent page.
    assert_eq!(kinds(st), ["login", "login"], "{st}");
    assert_eq!(assert_pages_headers(st, &app.address), 2);
    let pages = st["pages"].as_array().expect("pages");
    assert_eq!(pages[0]["error"], Value::Null);
    assert_eq!(pages[1]["error"], "Invalid username or password.");
    assert_eq!(
        pages[1]["username_value"],
        m.username.as_str(),
        "the username is kept"
    );
    let statuses: Vec<&Value> = responses(st, &app.address, true)
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(200), &json!(401), &json!(302)],
        "{}",
        st["navigations"]
    );
    for page in pages {
        let l = &page["layout"];
        let w = l["inner_width"].as_f64().expect("inner_width");
        assert_eq!(w, 390.0, "the page uses the device width: {l}");
        assert!(
            l["viewport_meta"]
                .as_str()
                .is_some_and(|v| v.contains("width=device-width")),
            "{l}"
        );
        assert!(
            l["scroll_width"].as_f64().expect("scroll_width") <= w,
            "no horizontal scrolling: {l}"
        );
        for field in ["username", "password", "submit"] {
            let b = &l[field];
            assert_eq!(b["visible"], true, "{field}: {l}");
            let (left, right) = (
                b["left"].as_f64().expect("left"),
                b["right"].as_f64().expect("right"),
            );
            assert!(left >= 0.0 && right <= w, "{field} fits the width: {b}");
            assert!(
                b["width"].as_f64().expect("width") >= w * 0.6,
                "{field} uses the width of a phone: {b}"
            );
            assert!(
                b["bottom"].as_f64().expect("bottom") <= l["inner_height"].as_f64().expect("h"),
                "{field} is on the first screen: {b}"
            );
            // Below 16px, iOS Safari zooms the page when an input gets focus.
            assert!(
                b["font_size_px"].as_f64().expect("font") >= 16.0,
                "{field}: {b}"
            );
            // A finger-sized target: 44 CSS px (WCAG 2.5.5), less 1 px for font metrics.
            assert!(
                b["height"].as_f64().expect("height") >= 43.0,
                "{field} tap target: {b}"
            );
        }
    }
    assert_eq!(pages[0]["layout"]["focused"], "username", "autofocus");
    let p = callback_params(&app, &f, &redirect, &final_url(st));
    assert_eq!(lb.callbacks(), [final_url(st)]);
    redeem(
        &app,
        &id,
        &m.sub,
        &redirect,
        &f,
        p.get("code").expect("code"),
    )
    .await;
}

/// RFC 8628 in Chromium: a wrong code is refused on the page; the `verification_uri_complete`
/// (what a QR code on the TV opens) fills the code in, the user signs in, sees the app's name
/// and the code, allows, and the TV's poll gets the tokens.
#[actix_web::test]
async fn chromium_connects_a_tv_through_the_device_page() {
    let Some(tools) = tools_or_skip("chromium_connects_a_tv_through_the_device_page") else {
        return;
    };
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let tv = app
        .add_client(&[
            "--name",
            "Living-room TV",
            "--type",
            "public",
            "--grant",
            "device_code",
            "--scope",
            SCOPE,
        ])
        .await;
    let started = Resp::read(
        app.http
            .post(app.url("/device_authorization"))
            .form(&[
                ("client_id", tv.client_id.as_str()),
                ("scope", "openid profile"),
            ])
            .send()
            .await
            .expect("POST /device_authorization"),
    )
    .await
    .json();
    let user_code = started["user_code"].as_str().expect("user_code");
    let alice = json!([{ "username": m.username, "password": PASSWORD }]);
    let plan = json!({
        "redirect_prefix": "http://127.0.0.1:9/never",
        "context": { "viewport": { "width": 390, "height": 844 }, "isMobile": true, "hasTouch": true },
        "steps": [
            { "name": "wrong", "action": "device", "url": format!("{}/device", app.issuer), "user_code": "BCDF-GHJK" },
            { "name": "device", "action": "device", "url": started["verification_uri_complete"], "logins": alice, "decision": "allow" },
        ]
    });
    let report = run_plan(tools, plan).await;

    let st = step(&report, "wrong");
    assert_eq!(kinds(st), ["code", "code"], "{st}");
    let pages = st["pages"].as_array().expect("pages");
    assert!(
        pages[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not valid")),
        "{st}"
    );
    assert_eq!(assert_pages_headers(st, &app.address), 2);

    let st = step(&report, "device");
    assert_eq!(kinds(st), ["code", "login", "confirm", "done"], "{st}");
    let pages = st["pages"].as_array().expect("pages");
    assert_eq!(pages[0]["user_code_value"], user_code, "prefilled: {st}");
    assert_eq!(
        pages[2]["heading"],
        "Sign in Living-room TV on your device?"
    );
    assert_eq!(pages[2]["code"], user_code);
    assert_eq!(
        pages[2]["scopes"],
        json!(["Sign you in", "See your name and username"])
    );
    assert_eq!(pages[3]["heading"], "Device connected");
    assert_eq!(
        assert_pages_headers(st, &app.address),
        4,
        "{}",
        st["navigations"]
    );
    assert!(
        console_errors(st).is_empty(),
        "errors in the console (a CSP violation?): {}",
        st["console"]
    );

    let r = app
        .post_token(
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", started["device_code"].as_str().expect("dc")),
                ("client_id", &tv.client_id),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, claims) = crate::helpers::jwt_parts(r.json()["access_token"].as_str().expect("at"));
    assert_eq!(claims["sub"], m.sub.as_str());
}

/// Issue 20: alice signs in on two "devices" — two Chromium runs, so two browser contexts
/// with their own cookies, one per app (the phone app and the watch app); then, in a third,
/// she opens her account page (signing in through `/authorize` as the account client), sees
/// both, and signs the phone out: its refresh token stops working, the watch's goes on.
#[actix_web::test]
async fn chromium_signs_a_lost_phone_out_from_the_account_page() {
    let Some(tools) = tools_or_skip("chromium_signs_a_lost_phone_out_from_the_account_page") else {
        return;
    };
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let watch = app
        .add_client(&[
            "--name",
            "Watch app",
            "--type",
            "public",
            "--redirect-uri",
            crate::browser::REDIRECT,
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            SCOPE,
            "--first-party",
        ])
        .await;
    let w = crate::browser::Mobile {
        client: watch,
        username: m.username.clone(),
        sub: m.sub.clone(),
    };
    let alice = json!([{ "username": m.username, "password": PASSWORD }]);
    let lb = Loopback::start();
    let redirect = lb.redirect_uri();
    let mut tokens = vec![];
    for (tag, client_id) in [
        ("phone", &m.client.client_id),
        ("watch", &w.client.client_id),
    ] {
        let f = flow(&app, client_id, &redirect, tag, &[]);
        let plan = json!({
            "redirect_prefix": redirect,
            "context": { "viewport": { "width": 390, "height": 844 }, "isMobile": true, "hasTouch": true },
            "steps": [ { "name": tag, "action": "authorize", "url": f.url, "logins": alice } ]
        });
        let report = run_plan(tools, plan).await;
        let st = step(&report, tag);
        assert_eq!(kinds(st), ["login"], "{st}");
        let p = callback_params(&app, &f, &redirect, &final_url(st));
        let r = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", p.get("code").expect("code")),
                    ("redirect_uri", &redirect),
                    ("client_id", client_id),
                    ("code_verifier", &f.verifier),
                ],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        tokens.push(r.json());
    }
    let (phone, wrist) = (&tokens[0], &tokens[1]);
    let plan = json!({
        "redirect_prefix": "http://127.0.0.1:9/never",
        "context": { "viewport": { "width": 390, "height": 844 }, "isMobile": true, "hasTouch": true },
        "steps": [
            { "name": "account", "action": "account", "url": format!("{}/account", app.issuer),
              "logins": alice, "continue": "allow", "sign_out": "app" },
        ]
    });
    let report = run_plan(tools, plan).await;
    let st = step(&report, "account");
    let pages = st["pages"].as_array().expect("pages");
    let accounts: Vec<&Value> = pages.iter().filter(|p| p["kind"] == "account").collect();
    assert_eq!(accounts.len(), 2, "{st}");
    let before = accounts[0]["devices"].as_array().expect("devices");
    assert!(
        before.contains(&json!("app")) && before.contains(&json!("Watch app")),
        "{st}"
    );
    let after = accounts[1]["devices"].as_array().expect("devices");
    assert!(!after.contains(&json!("app")), "{st}");
    assert!(after.contains(&json!("Watch app")), "{st}");
    assert_eq!(accounts[1]["notice"], "Signed out of that device.", "{st}");
    assert!(console_errors(st).is_empty(), "{}", st["console"]);

    crate::browser::refresh(
        &app,
        &m.client.client_id,
        phone["refresh_token"].as_str().expect("rt"),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    let r = crate::browser::refresh(
        &app,
        &w.client.client_id,
        wrist["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Issue 19's "done when": a new user without a password opens an invitation link in
/// Chromium, creates a passkey (a CDP virtual authenticator: internal, resident keys, user
/// verification), and then signs in to a native app through the whole code + PKCE flow with
/// the passkey alone, once with the "Sign in with a passkey" button and once through passkey
/// autofill (conditional mediation) with no click at all; the ID token says how (`amr`,
/// `acr`). The issuer is `http://localhost:PORT`: WebAuthn needs a domain name.
#[actix_web::test]
async fn chromium_signs_up_with_a_passkey_invitation_and_logs_into_a_native_app() {
    let Some(tools) =
        tools_or_skip("chromium_signs_up_with_a_passkey_invitation_and_logs_into_a_native_app")
    else {
        return;
    };
    let app = crate::passkeys::spawn_localhost().await;
    let m = setup(&app, true).await;
    let lb = Loopback::start();
    let redirect = lb.redirect_uri();
    for (username, conditional) in [("dana", false), ("erin", true)] {
        let out = app
            .cli(&["user", "invite", username, "--create", "--json"], None)
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let invite: Value = serde_json::from_str(&out.stdout).expect("invite JSON");
        let sub = invite["sub"].as_str().expect("sub").to_owned();
        let f = flow(&app, &m.client.client_id, &redirect, username, &[]);
        // The browser talks to the issuer's origin (localhost), as a phone would.
        let url = f.url.replacen(&app.address, &app.issuer, 1);
        let sign_in = if conditional {
            json!({ "name": "app", "action": "conditional", "url": url })
        } else {
            json!({ "name": "app", "action": "authorize", "url": url, "logins": [{ "passkey": true }] })
        };
        let report = run_plan(
            tools,
            json!({
                "redirect_prefix": redirect,
                "virtual_authenticator": true,
                "disable_conditional_ui": !conditional,
                "steps": [
                    { "name": "invite", "action": "invite", "url": invite["url"], "passkey_name": "My phone" },
                    sign_in,
                ],
            }),
        )
        .await;
        let inv = step(&report, "invite");
        assert_eq!(inv["before"]["heading"], "Create your passkey", "{inv}");
        assert_eq!(inv["heading"], "Your passkey is ready", "{inv}");
        let errors = console_errors(inv);
        assert!(errors.is_empty(), "errors in the console: {errors:?}");
        let creds = report["credentials"].as_array().expect("credentials");
        assert_eq!(creds.len(), 1, "one passkey on the authenticator: {report}");
        assert_eq!(creds[0]["rp_id"], "localhost");
        assert_eq!(creds[0]["resident"], true, "a discoverable credential");
        let s = step(&report, "app");
        if !conditional {
            assert_eq!(kinds(s), vec!["login"], "{s}");
            assert_eq!(s["pages"][0]["passkey_button"], 1);
            assert_eq!(s["pages"][0]["webauthn_autofill"], "username webauthn");
        }
        let errors = console_errors(s);
        assert!(errors.is_empty(), "errors in the console: {errors:?}");
        let p = callback_params(&app, &f, &redirect, &final_url(s));
        let code = p.get("code").expect("code");
        let claims = redeem(&app, &m.client.client_id, &sub, &redirect, &f, code).await;
        assert_eq!(claims["acr"], "phr", "{claims}");
        let amr = claims["amr"].as_array().expect("amr");
        assert!(
            amr.contains(&json!("user")) && amr.contains(&json!("mfa")),
            "{claims}"
        );
        assert!(
            amr.contains(&json!("hwk")) || amr.contains(&json!("swk")),
            "{claims}"
        );
        // The server recorded the passkey's use.
        let out = app
            .cli(&["user", "factors", username, "--json"], None)
            .await;
        let fx: Value = serde_json::from_str(&out.stdout).expect("factors");
        assert!(fx["passkeys"][0]["last_used_at"].is_i64(), "{fx}");
    }
}

/// The admin console in Chromium (issue 21): an admin signs in through `/authorize`, creates
/// an iOS app with the wizard (with a desktop loopback redirect), copies its client id with
/// the Copy button, creates a user with an invitation link, rotates a key and sees it
/// published, makes a registration token, and filters the audit log down to their own
/// changes. Then a native app signs in with that client id (code + PKCE in Chromium, DPoP at
/// the token endpoint). Every console page carries the page headers and logs no error (no CSP
/// violation: the charts are inline SVG, the only script is /assets/console.js). With
/// `LATCHKEY_BROWSER_SCREENSHOTS`, every page is saved as a PNG.
#[actix_web::test]
async fn chromium_runs_the_admin_console_and_a_native_app_signs_in_with_its_client() {
    let Some(tools) =
        tools_or_skip("chromium_runs_the_admin_console_and_a_native_app_signs_in_with_its_client")
    else {
        return;
    };
    // localhost, not an IP address: WebAuthn (the invitation's passkey) needs a host name.
    let app = crate::passkeys::spawn_localhost().await;
    for (name, admin) in [("root", true), ("alice", false)] {
        let mut args = vec!["user", "add", "--username", name, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        let out = app.cli(&args, Some(PASSWORD)).await;
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    // Some traffic for the overview: a failed sign-in.
    let mut b = crate::browser::Browser::new(&app);
    let r = b.get("/account").await;
    let page = b.get(r.header("location").expect("sign-in")).await;
    let r = b.login(&page, "alice", "wrong password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());

    let rows = |what: &str| format!("#{what} tr td:nth-child(2)");
    let report = run_plan(
        tools,
        json!({
            "redirect_prefix": "http://127.0.0.1:9/never",
            "clipboard": true,
            "steps": [{
                "name": "console", "action": "console", "url": format!("{}/console", app.issuer),
                "logins": [{ "username": "root", "password": PASSWORD }],
                "ops": [
                    { "text": "#card-failures .n", "as": "failures" },
                    { "goto": "/console/apps/new?kind=native", "shot": "new-app" },
                    { "fill": "#name", "value": "Field Notes" },
                    { "fill": "#bundle_id", "value": "com.example.FieldNotes" },
                    { "check": "input[name=desktop]" },
                    { "submit": "#wizard button[type=submit]", "shot": "app-created" },
                    { "text": "#cfg-client-id", "as": "client_id" },
                    { "text": "#cfg-redirect", "as": "redirect" },
                    { "text": "#snippet-ios", "as": "ios" },
                    { "copy": "button[data-copy=cfg-client-id]", "as": "copied" },
                    { "goto": "/console/apps", "shot": "apps" },
                    { "texts": "#apps td:first-child", "as": "apps" },
                    { "goto": "/console/users/new", "shot": "new-user" },
                    { "fill": "#username", "value": "field-tester" },
                    { "submit": "#new-user button[type=submit]", "shot": "user" },
                    { "text": "#invitation-url", "as": "invitation" },
                    { "goto": "/console/users", "shot": "users" },
                    { "goto": "/console/keys", "shot": "keys" },
                    { "texts": "#keys td:first-child code", "as": "kids_before" },
                    { "select": "#alg", "value": "ES256" },
                    { "submit": "form[action='/console/keys/rotate'] button", "shot": "keys-rotated" },
                    { "texts": "#keys td:first-child code", "as": "kids_after" },
                    { "texts": "#keys tr", "as": "key_rows" },
                    { "goto": "/console/registration-tokens", "shot": "registration-tokens" },
                    { "fill": "#max_uses", "value": "1" },
                    { "submit": "#new-token button[type=submit]", "shot": "token-created" },
                    { "text": "#initial-access-token", "as": "initial_access_token" },
                    { "goto": "/console/audit", "shot": "audit" },
                    { "fill": "#event", "value": "client" },
                    { "fill": "#actor", "value": "admin:latchkey-console/user:root" },
                    { "submit": "#filters button[type=submit]", "shot": "audit-filtered" },
                    { "texts": rows("audit"), "as": "client_events" },
                    { "texts": "#audit td:nth-child(4)", "as": "client_actors" },
                    { "goto": "/console/audit?event=key", "shot": "audit-keys" },
                    { "texts": rows("audit"), "as": "key_events" },
                    { "goto": "/console", "shot": "overview" },
                ],
            }],
        }),
    )
    .await;
    let s = step(&report, "console");
    let read = &s["read"];
    let headings: Vec<&str> = s["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .filter_map(|p| p["heading"].as_str())
        .collect();
    assert_eq!(headings[0], "Overview", "signed in, on the overview: {s}");
    assert!(
        headings.contains(&"Field Notes") && headings.contains(&"field-tester"),
        "{headings:?}"
    );
    assert_eq!(
        read["failures"], "1",
        "the failed sign-in is counted: {read}"
    );
    let client_id = read["client_id"].as_str().expect("client id").to_owned();
    assert_eq!(
        read["copied"],
        client_id.as_str(),
        "the Copy button copied the client id"
    );
    assert_eq!(read["copied_button"], "Copied");
    assert_eq!(read["redirect"], "com.example.fieldnotes:/oauth2redirect");
    assert!(
        read["ios"]
            .as_str()
            .is_some_and(|t| t.contains(&client_id) && t.contains(&app.issuer)),
        "{read}"
    );
    assert!(
        read["apps"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == "Field Notes")),
        "{read}"
    );
    assert!(
        read["invitation"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{}/invite/", app.issuer))),
        "{read}"
    );
    assert!(
        read["initial_access_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 40),
        "{read}"
    );
    // The rotated key: one more in the console, published in the JWKS at once.
    let (before, after) = (
        read["kids_before"].as_array().expect("kids"),
        read["kids_after"].as_array().expect("kids"),
    );
    assert_eq!(after.len(), before.len() + 1, "{read}");
    let new_kid = after
        .iter()
        .find(|k| !before.contains(k))
        .and_then(Value::as_str)
        .expect("a new kid")
        .to_owned();
    let row = read["key_rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(Value::as_str)
        .find(|r| r.contains(&new_kid))
        .expect("its row")
        .to_owned();
    assert!(
        row.contains("pending") && row.contains("published"),
        "published, not signing yet: {row}"
    );
    let jwks = app.jwks().await;
    assert!(
        jwks["keys"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k["kid"] == new_kid.as_str())),
        "{jwks}"
    );
    // The audit log, filtered to this admin's client changes, then to key events.
    let events = read["client_events"].as_array().expect("events");
    assert!(events.iter().any(|e| e == "client.created"), "{read}");
    assert!(
        events
            .iter()
            .all(|e| e.as_str().is_some_and(|e| e.starts_with("client."))),
        "{read}"
    );
    assert!(
        read["client_actors"]
            .as_array()
            .expect("actors")
            .iter()
            .all(|a| a == "admin:latchkey-console/user:root"),
        "{read}"
    );
    assert!(
        read["key_events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e == "key.rotated"),
        "{read}"
    );
    let shown = assert_pages_headers(s, &app.issuer);
    assert!(shown >= 12, "{shown} pages");
    let errors = console_errors(s);
    assert!(errors.is_empty(), "errors in the console: {errors:?}");

    // The app the wizard made: a native login with its client id, through its loopback
    // redirect (the desktop build), code + PKCE, then DPoP at the token endpoint.
    let lb = Loopback::start();
    let redirect = format!("{}/oauth2redirect", lb.origin());
    let (verifier, challenge) = pkce();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "openid offline_access")
        .append_pair("state", "st-console")
        .append_pair("nonce", "n-console")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let report = run_plan(
        tools,
        json!({
            "redirect_prefix": redirect,
            "steps": [{
                "name": "app", "action": "authorize", "url": format!("{}/authorize?{}", app.issuer, q.finish()),
                "logins": [{ "username": "alice", "password": PASSWORD }],
                "consent": "allow", "continue": "allow",
            }],
        }),
    )
    .await;
    let s = step(&report, "app");
    let url = url::Url::parse(&final_url(s)).expect("final url");
    let p: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        p.get("state").map(String::as_str),
        Some("st-console"),
        "{url}"
    );
    let code = p.get("code").expect("code");
    let key = crate::dpop::DpopKey::new();
    let proof = key.proof("POST", &format!("{}/token", app.issuer), None);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let t = crate::dpop::token_request(&app, &form, None, Some(&proof)).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());
    assert_eq!(t.json()["token_type"], "DPoP");
    let id = t.json()["id_token"].as_str().expect("id_token").to_owned();
    let claims = verify_offline(&id, &app.jwks().await, &app.issuer, &client_id)
        .expect("the ID token verifies offline")
        .claims;
    assert_eq!(claims["nonce"], "n-console");
}
