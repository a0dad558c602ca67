//! The `native_app` example as a black box: the compiled example runs against a test server, the
//! test plays the user in the browser (login, consent), then follows the redirect to the
//! example's loopback listener, as the system browser would.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::browser::{Browser, PASSWORD, setup};
use crate::helpers::TestApp;

fn example_binary() -> Option<PathBuf> {
    crate::helpers::example_binary("native_app", "cargo build --example native_app")
}

/// The example process, killed when the test ends; its stdout arrives line by line.
struct NativeApp {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for NativeApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NativeApp {
    fn start(bin: PathBuf, app: &TestApp, client_id: &str) -> NativeApp {
        let mut child = Command::new(bin)
            .args(["--client-id", client_id, "--no-browser", "--timeout", "20"])
            .env("LATCHKEY_ISSUER", &app.issuer)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the native_app example");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        NativeApp {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next stdout line, polled without blocking the test's executor (the server under test
    /// runs on it); `None` once stdout closes or after 20 s.
    async fn next_line(&mut self) -> Option<String> {
        let mut waited = Duration::ZERO;
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    self.seen.push(line.clone());
                    return Some(line);
                }
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) if waited > Duration::from_secs(20) => return None,
                Err(mpsc::TryRecvError::Empty) => {
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                    waited += Duration::from_millis(20);
                }
            }
        }
    }

    /// The authorization request the example pushed (RFC 9126), as it printed it.
    async fn pushed_request(&mut self) -> HashMap<String, String> {
        const PREFIX: &str = "Pushed the authorization request (RFC 9126): ";
        while let Some(line) = self.next_line().await {
            if let Some(q) = line.trim().strip_prefix(PREFIX) {
                return url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect();
            }
        }
        let (code, out, err) = self.finish().await;
        panic!("the example pushed no authorization request (exit {code:?}): {out}\n{err}");
    }

    /// The authorization URL the example printed for the user to open.
    async fn authorize_url(&mut self, app: &TestApp) -> url::Url {
        let prefix = format!("{}/authorize?", app.issuer);
        while let Some(line) = self.next_line().await {
            if let Some(u) = line.trim().strip_prefix(&prefix) {
                return url::Url::parse(&format!("{prefix}{u}")).expect("a URL");
            }
        }
        let (code, out, err) = self.finish().await;
        panic!("the example printed no authorization URL (exit {code:?}): {out}\n{err}");
    }

    /// Waits for the process to exit; returns its status code, whole stdout and stderr.
    async fn finish(&mut self) -> (Option<i32>, String, String) {
        while self.next_line().await.is_some() {}
        let mut waited = Duration::ZERO;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                waited < Duration::from_secs(20),
                "the example did not exit; stdout: {:#?}",
                self.seen
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        };
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr).expect("stderr");
        }
        (status.code(), self.seen.join("\n"), stderr)
    }
}

/// What the system browser does at the end: follows the redirect to the app's listener.
async fn deliver_redirect(app: &TestApp, location: &str) -> reqwest::Response {
    assert!(
        location.starts_with("http://127.0.0.1:"),
        "a loopback redirect: {location}"
    );
    app.http
        .get(location)
        .send()
        .await
        .expect("the example's loopback listener answers")
}

#[actix_web::test]
async fn native_app_example_logs_in_verifies_the_id_token_and_refreshes() {
    let Some(bin) = example_binary() else { return };
    let app = TestApp::spawn().await;
    let m = setup(&app, false).await;
    let mut native = NativeApp::start(bin, &app, &m.client.client_id);

    let q = native.pushed_request().await;
    let url = native.authorize_url(&app).await;
    // The browser carries only the client and the request_uri (RFC 9126 §4).
    let front: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let mut keys: Vec<&str> = front.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["client_id", "request_uri"], "{url}");
    assert_eq!(front["client_id"], m.client.client_id);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["code_challenge"].len() == 43, "{q:?}");
    assert!(!q["state"].is_empty() && !q["nonce"].is_empty(), "{q:?}");
    let redirect = url::Url::parse(&q["redirect_uri"]).expect("redirect_uri");
    assert_eq!(redirect.host_str(), Some("127.0.0.1"));
    assert_eq!(redirect.path(), "/cb");
    let port = redirect.port().expect("an explicit ephemeral port");
    assert_ne!(port, 80);

    // The user logs in and allows access in the browser...
    let mut b = Browser::new(&app);
    let path = &url.as_str()[app.address.len()..];
    let page = b.get(path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let consent = b.login(&page, &m.username, PASSWORD).await;
    let r = b.consent(&consent, "allow").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let location = r.header("location").expect("Location").to_owned();
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{port}/cb?")),
        "{location}"
    );
    // ... and the browser lands on the app's listener.
    let landed = deliver_redirect(&app, &location).await;
    assert_eq!(landed.status(), StatusCode::OK);
    assert!(
        landed
            .text()
            .await
            .expect("body")
            .contains("return to the app")
    );

    let (code, out, err) = native.finish().await;
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("ID token verified (signature, issuer, audience, expiry, nonce, at_hash)"),
        "{out}"
    );
    // DPoP (RFC 9449): the tokens are bound to the example's in-memory key, and userinfo and the
    // refresh (which only work with proofs by that key) succeeded.
    assert!(
        out.lines().any(
            |l| l.starts_with("DPoP: tokens bound to this app's key (jkt ")
                && l.ends_with("token_type DPoP")
        ),
        "{out}"
    );
    // The claims it printed are the verified ID token's: this user, this client, this issuer.
    assert!(out.contains(&format!("\"sub\": \"{}\"", m.sub)), "{out}");
    assert!(
        out.contains(&format!("\"iss\": \"{}\"", app.issuer)),
        "{out}"
    );
    assert!(
        out.contains(&format!("\"azp\": \"{}\"", m.client.client_id)),
        "{out}"
    );
    assert!(
        out.contains("\"email\": \"alice@example.test\""),
        "userinfo: {out}"
    );
    let refreshed = out
        .lines()
        .find(|l| l.starts_with("Refreshed: "))
        .unwrap_or_else(|| panic!("no refresh line: {out}"));
    assert!(
        refreshed.contains("refresh token rotated: yes") && refreshed.contains("api:read"),
        "{refreshed}"
    );
}

#[actix_web::test]
async fn native_app_example_refuses_a_redirect_with_a_forged_state() {
    let Some(bin) = example_binary() else { return };
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let mut native = NativeApp::start(bin, &app, &m.client.client_id);
    let q = native.pushed_request().await;
    let url = native.authorize_url(&app).await;

    // A real code for this user, but delivered by an attacker with another state (login CSRF).
    let mut b = Browser::new(&app);
    let page = b.get(&url.as_str()[app.address.len()..]).await;
    let r = b.login(&page, &m.username, PASSWORD).await;
    let location = r
        .header("location")
        .expect("first-party: straight back")
        .to_owned();
    let forged = location.replace(&format!("state={}", q["state"]), "state=attacker-chosen");
    assert_ne!(forged, location, "the state was replaced");
    // Another path on the listener is not the redirect and is ignored.
    let stray = app
        .http
        .get(
            url::Url::parse(&q["redirect_uri"])
                .and_then(|u| u.join("/favicon.ico"))
                .expect("URL")
                .as_str(),
        )
        .send()
        .await
        .expect("listener");
    assert_eq!(stray.status(), StatusCode::NOT_FOUND);
    deliver_redirect(&app, &forged).await;

    let (code, out, err) = native.finish().await;
    assert_ne!(code, Some(0), "stdout:\n{out}");
    assert!(err.contains("state does not match"), "stderr: {err}");
    assert!(!out.contains("ID token verified"), "{out}");
}
