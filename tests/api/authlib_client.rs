//! authlib (Python, pinned in `tests/python-clients/requirements.txt`) as a third-party client:
//! a TV app on the device authorization grant (RFC 8628), polling through
//! `OAuth2Session.fetch_token` while the person approves at `/device`; and a backend on
//! `private_key_jwt` (RFC 7523) with authlib's `PrivateKeyJWT`, its keys published at a
//! `jwks_uri`.
//!
//! Needs `python3` (3.9+) with `venv`; installs authlib into `tests/python-clients/.venv` once.
//! Without them it prints `SKIPPED: ...` and passes, unless `LATCHKEY_REQUIRE_BROWSER=1` (set
//! by `.ci/run`), which makes that a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::json;

use crate::browser::{SCOPE, setup};
use crate::dpop::DpopKey;
use crate::helpers::{API, TestApp};
use crate::jwks_uri::{KeyHost, jwk_set};
use crate::openid_client::{Node, approve_device};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python-clients")
}

/// The venv's python, with authlib installed.
fn find_python() -> Result<PathBuf, String> {
    let d = dir();
    let python = d.join(".venv/bin/python");
    let installed = |p: &Path| {
        Command::new(p)
            .args(["-c", "import authlib, requests"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if installed(&python) {
        return Ok(python);
    }
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(d.join(".venv"))
        .output()
        .map_err(|e| format!("python3 not found: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 -m venv failed (install python3-venv): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(d.join("requirements.txt"))
        .output()
        .map_err(|e| format!("pip could not run: {e}"))?;
    if !out.status.success() || !installed(&python) {
        return Err(format!(
            "pip install -r {} failed: {}",
            d.join("requirements.txt").display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(python)
}

fn python_or_skip(test: &str) -> Option<&'static PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(find_python) {
        Ok(p) => Some(p),
        Err(why) if std::env::var("LATCHKEY_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            panic!("LATCHKEY_REQUIRE_BROWSER=1 but the authlib tests cannot run: {why}")
        }
        Err(why) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: {why}; the authlib test did not run"
            );
            None
        }
    }
}

fn run(python: &Path, mode: &str, plan: &serde_json::Value) -> Node {
    let mut cmd = Command::new(python);
    cmd.arg(dir().join("authlib_clients.py"))
        .arg(mode)
        .arg(plan.to_string());
    Node::spawn(cmd)
}

#[actix_web::test]
async fn authlib_signs_a_device_in_with_the_device_grant() {
    let Some(python) = python_or_skip("authlib_signs_a_device_in_with_the_device_grant") else {
        return;
    };
    let app = TestApp::spawn_with(|c| c.device_poll_interval = 1).await;
    let m = setup(&app, true).await;
    let tv = app
        .add_client(&[
            "--name",
            "Games console",
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
    let mut py = run(python, "device", &plan);
    let started = py.next().await;
    assert_eq!(
        started["verification_uri"],
        format!("{}/device", app.issuer)
    );
    assert_eq!(started["interval"], 1);
    let user_code = started["user_code"].as_str().expect("user_code").to_owned();
    // authlib polls (and is told authorization_pending) while the person finds their phone.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(2500)).await;
    approve_device(&app, &user_code, &m.username, "Games console").await;
    let report = py.next().await;
    assert_eq!(report["sub"], m.sub.as_str(), "{report}");
    assert_eq!(report["id_token_sub"], m.sub.as_str(), "{report}");
    assert_eq!(report["has_refresh_token"], true, "{report}");
    assert_eq!(report["token_type"], "Bearer", "{report}");
    let seen = report["errors_seen"].as_array().expect("errors_seen");
    assert!(
        seen.iter().any(|e| e == "authorization_pending"),
        "it polled while pending: {report}"
    );
}

#[actix_web::test]
async fn authlib_authenticates_a_backend_with_private_key_jwt_from_a_jwks_uri() {
    let Some(python) =
        python_or_skip("authlib_authenticates_a_backend_with_private_key_jwt_from_a_jwks_uri")
    else {
        return;
    };
    // The backend's key host runs on this machine, which only a development server may call.
    let app = TestApp::spawn_with(|c| c.outbound_allow_private_addresses = true).await;
    let key = DpopKey::new();
    let host = KeyHost::start(jwk_set(&[(&key, "k1")]));
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
            API,
            "--jwks-uri",
            &host.url("/jwks"),
        ])
        .await;
    let mut private = key.private_jwk();
    private["kid"] = json!("k1");
    let plan = json!({
        "issuer": app.issuer,
        "client_id": c.client_id,
        "private_jwk": private,
        "api": API,
    });
    let report = run(python, "private_key_jwt", &plan).next().await;
    assert_eq!(report["sub"], c.client_id.as_str(), "{report}");
    assert_eq!(report["aud"], API, "{report}");
    assert_eq!(report["second_ok"], true, "{report}");
    // authlib's default `aud` (the token endpoint URL) is refused: RFC 7523bis allows only the
    // issuer identifier.
    assert_eq!(report["token_endpoint_aud"], "invalid_client", "{report}");
    assert_eq!(host.requests("/jwks"), 1, "the key set was fetched once");
}
