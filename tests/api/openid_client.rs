//! A third-party DPoP client, unmodified: openid-client 6 (npm, pinned in
//! `tests/node-clients/package-lock.json`) runs a native app's whole login against the real
//! server — discovery, a pushed authorization request (RFC 9126), PKCE, state, nonce, code exchange, userinfo, refresh — with a DPoP proof
//! on every request, then calls the `resource_api` example (latchkey-verify) with its
//! DPoP-bound token. With and without server nonces (openid-client retries `use_dpop_nonce`).
//! And a TV app on the device authorization grant (RFC 8628), polling while the user approves.
//!
//! Needs `node` (20+); runs `npm ci` in `tests/node-clients` once when `node_modules` is missing.
//! Without node it prints `SKIPPED: ...` and passes, unless `LATCHKEY_REQUIRE_BROWSER=1` (set by
//! `.ci/run`), which makes that a failure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, PASSWORD, REDIRECT_PORT, SCOPE, location_params, setup};
use crate::helpers::TestApp;
use crate::verify_live::ResourceApi;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node-clients")
}

fn find_node() -> Result<PathBuf, String> {
    let version = Command::new("node")
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
            "node {version} is too old for openid-client 6 (needs 20+)"
        ));
    }
    let d = dir();
    let installed = |d: &Path| d.join("node_modules/openid-client/package.json").is_file();
    if !installed(&d) {
        let out = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&d)
            .output()
            .map_err(|e| {
                format!(
                    "{} has no node_modules and npm could not run: {e}",
                    d.display()
                )
            })?;
        if !out.status.success() || !installed(&d) {
            return Err(format!(
                "`npm ci --prefix {}` failed: {}",
                d.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(d.join("openid_client_dpop.mjs"))
}

fn script_or_skip(test: &str) -> Option<&'static PathBuf> {
    static SCRIPT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match SCRIPT.get_or_init(find_node) {
        Ok(p) => Some(p),
        Err(why) if std::env::var("LATCHKEY_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            panic!("LATCHKEY_REQUIRE_BROWSER=1 but the openid-client test cannot run: {why}")
        }
        Err(why) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: {why}; the openid-client DPoP test did not run"
            );
            None
        }
    }
}

/// The node process, killed when dropped; stdout arrives line by line on a channel, so that
/// waiting for it never blocks the test's runtime (the server under test runs on it).
pub(crate) struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(script: &Path, plan: &Value) -> Node {
        let mut cmd = Command::new("node");
        cmd.arg(script).arg(plan.to_string());
        Node::spawn(cmd)
    }

    /// Runs `cmd` (a third-party client script that prints JSON lines).
    pub(crate) fn spawn(mut cmd: Command) -> Node {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the client script");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        Node {
            child,
            lines,
            stderr,
        }
    }

    /// The next JSON line the script prints (it fails the test on an `error` line or silence).
    pub(crate) async fn next(&mut self) -> Value {
        let mut waited = Duration::ZERO;
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("the script printed non-JSON ({e}): {line}"));
                    assert!(v.get("error").is_none(), "the client script failed: {v}");
                    return v;
                }
                Err(mpsc::TryRecvError::Empty) if waited < Duration::from_secs(45) => {
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                    waited += Duration::from_millis(20);
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let err = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
                    panic!(
                        "the client script ended or hung; stderr:\n{}",
                        err.join().unwrap_or_default()
                    );
                }
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to node");
        stdin.flush().expect("flush");
    }
}

async fn full_flow(test: &str, require_nonce: bool) {
    let Some(script) = script_or_skip(test) else {
        return;
    };
    let app = TestApp::spawn_with(|c| c.dpop_require_nonce = require_nonce).await;
    let m = setup(&app, true).await;
    let api = ResourceApi::start(&app).await;
    let plan = json!({
        "issuer": app.issuer,
        "client_id": m.client.client_id,
        "redirect_uri": REDIRECT_PORT,
        "scope": SCOPE,
        "api_url": api.as_ref().map(|a| format!("{}/me", a.base)),
    });
    let mut node = Node::start(script, &plan);

    // openid-client built the authorization request; the user logs in in the browser...
    let first = node.next().await;
    let url = first["authorization_url"]
        .as_str()
        .expect("authorization_url");
    let q: std::collections::HashMap<String, String> = url::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .into_owned()
        .collect();
    // Pushed (RFC 9126): the browser carries the client and a request_uri, nothing else; PKCE
    // S256, state, nonce and the DPoP key went straight to the server.
    let mut keys: Vec<&str> = q.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["client_id", "request_uri"], "{url}");
    assert!(
        q["request_uri"].starts_with("urn:ietf:params:oauth:request_uri:"),
        "{url}"
    );
    let mut b = Browser::new(&app);
    let page = b.get(&url[app.address.len()..]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let r = b.login(&page, &m.username, PASSWORD).await;
    location_params(&r);
    let location = r.header("location").expect("redirect").to_owned();
    // ... and the browser lands on the app's redirect URI.
    node.send(&location);

    let report = node.next().await;
    let jkt = report["jkt"].as_str().expect("jkt");
    assert_eq!(
        report["token_type"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("dpop"),
        "{report}"
    );
    assert_eq!(report["cnf_jkt"], jkt, "{report}");
    assert_eq!(report["id_token_sub"], m.sub.as_str());
    assert_eq!(report["userinfo_sub"], m.sub.as_str());
    assert_eq!(report["refreshed_cnf_jkt"], jkt, "{report}");
    assert_eq!(report["refresh_token_rotated"], true);
    if api.is_some() {
        assert_eq!(report["api"]["status"], 200, "{report}");
        assert_eq!(report["api"]["body"]["sub"], m.sub.as_str());
        assert_eq!(report["api"]["bearer_status"], 401, "{report}");
        assert!(
            report["api"]["bearer_challenge"]
                .as_str()
                .is_some_and(|c| c.contains("invalid_token")),
            "{report}"
        );
    }
}

#[actix_web::test]
async fn openid_client_logs_in_with_dpop_and_calls_a_latchkey_verify_api() {
    full_flow("openid_client_logs_in_with_dpop", false).await;
}

#[actix_web::test]
async fn openid_client_follows_server_dpop_nonces() {
    full_flow("openid_client_follows_server_dpop_nonces", true).await;
}

/// RFC 8628 with a third-party client: openid-client starts the device authorization and
/// polls (honouring `interval`); the person approves at `/device` in the meantime.
#[actix_web::test]
async fn openid_client_signs_a_device_in_with_the_device_grant() {
    let Some(script) = script_or_skip("openid_client_signs_a_device_in_with_the_device_grant")
    else {
        return;
    };
    let script = script.with_file_name("openid_client_device.mjs");
    let app = TestApp::spawn_with(|c| c.device_poll_interval = 1).await;
    let m = setup(&app, true).await;
    let tv = app
        .add_client(&[
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
        ])
        .await;
    let plan = json!({
        "issuer": app.issuer,
        "client_id": tv.client_id,
        "scope": "openid profile offline_access",
    });
    let mut node = Node::start(&script, &plan);
    let started = node.next().await;
    assert_eq!(
        started["verification_uri"],
        format!("{}/device", app.issuer)
    );
    assert_eq!(started["interval"], 1);
    let user_code = started["user_code"].as_str().expect("user_code").to_owned();

    // Let it poll a few times while pending, then approve from a phone.
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    approve_device(&app, &user_code, &m.username, "Living-room TV").await;

    let report = node.next().await;
    assert_eq!(report["sub"], m.sub.as_str(), "{report}");
    assert_eq!(report["id_token_sub"], m.sub.as_str(), "{report}");
    assert_eq!(report["cnf_jkt"], report["jkt"], "DPoP-bound: {report}");
    assert_eq!(report["has_refresh_token"], true, "{report}");
}

/// RFC 7523 with a third-party client: openid-client's `PrivateKeyJwt` signs the assertions
/// (its own claims: `aud` = the issuer, a fresh `jti`) for a client_credentials grant and an
/// introspection call, and Latchkey accepts them with the registered public key.
#[actix_web::test]
async fn openid_client_authenticates_a_backend_with_private_key_jwt() {
    let Some(script) = script_or_skip("openid_client_authenticates_a_backend_with_private_key_jwt")
    else {
        return;
    };
    let script = script.with_file_name("openid_client_private_key_jwt.mjs");
    let app = TestApp::spawn().await;
    let key = crate::dpop::DpopKey::new();
    let mut public = key.jwk.clone();
    public["kid"] = json!("k1");
    let path =
        std::env::temp_dir().join(format!("jwks-{}.json", latchkey::secret::random_token(6)));
    std::fs::write(&path, json!({ "keys": [public] }).to_string()).expect("jwks file");
    let c = app
        .add_client(&[
            "--name",
            "billing",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            "api:read",
            "--audience",
            crate::helpers::API,
            "--jwks-file",
            path.to_str().expect("path"),
        ])
        .await;
    let _ = std::fs::remove_file(&path);
    let plan = json!({
        "issuer": app.issuer,
        "client_id": c.client_id,
        "private_jwk": key.private_jwk(),
        "kid": "k1",
        "scope": "api:read",
        "resource": crate::helpers::API,
    });
    let mut node = Node::start(&script, &plan);
    let report = node.next().await;
    assert_eq!(report["sub"], c.client_id.as_str(), "{report}");
    assert_eq!(report["aud"], crate::helpers::API, "{report}");
    assert_eq!(report["active"], true, "{report}");
}

/// The person's side of RFC 8628: open `verification_uri_complete` on a phone, sign in as
/// `username`, check that the page names `app_name`, and allow.
pub(crate) async fn approve_device(app: &TestApp, user_code: &str, username: &str, app_name: &str) {
    let mut phone = Browser::new(app);
    let page = phone.get(&format!("/device?user_code={user_code}")).await;
    let code = crate::browser::hidden(&page, "user_code");
    assert_eq!(
        code, user_code,
        "verification_uri_complete fills the code in"
    );
    let r = phone
        .post(
            "/device",
            &[
                ("csrf", &crate::browser::hidden(&page, "csrf")),
                ("user_code", &code),
            ],
        )
        .await;
    let r = phone
        .post(
            "/device/login",
            &[
                ("csrf", &crate::browser::hidden(&r, "csrf")),
                ("request", &crate::browser::hidden(&r, "request")),
                ("username", username),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(r.text().contains(app_name), "{}", r.text());
    let r = phone
        .post(
            "/device/confirm",
            &[
                ("csrf", &crate::browser::hidden(&r, "csrf")),
                ("user_code", &crate::browser::hidden(&r, "user_code")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert!(r.text().contains("Device connected"), "{}", r.text());
}
