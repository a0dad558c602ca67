//! The issue's "Done when": a token from a client added with the CLI is validated against
//! `jwks_uri` by an independent verifier in another language (Node's built-in crypto).

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::helpers::{API, TestApp};

fn script() -> String {
    format!("{}/tests/node/verify_jwt.mjs", env!("CARGO_MANIFEST_DIR"))
}

fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the Node verifier; `Ok(stdout)` if it accepts the token, `Err(output)` otherwise.
async fn node_verify(issuer: &str, token: &str, audience: &str) -> Result<String, String> {
    let args = [
        script(),
        issuer.to_owned(),
        token.to_owned(),
        audience.to_owned(),
    ];
    let out = actix_web::rt::task::spawn_blocking(move || {
        Command::new("node").args(&args).output().expect("run node")
    })
    .await
    .expect("node task");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(stdout),
        Some(1) => Err(format!("{stdout}{stderr}")),
        other => panic!("the verifier itself failed ({other:?}): {stdout}{stderr}"),
    }
}

/// Re-encodes the payload with `edit` applied, keeping the original signature.
fn tamper(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    edit(&mut payload);
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).expect("json"));
    format!("{}.{p}.{}", parts[0], parts[2])
}

#[actix_web::test]
async fn node_verifier_accepts_a_real_token_and_rejects_forgeries() {
    if !node_available() {
        println!("SKIPPED: node not found on PATH; the independent verifier test did not run");
        return;
    }
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let token = app.access_token_for(&client).await;

    let ok = node_verify(&app.issuer, &token, API)
        .await
        .unwrap_or_else(|e| panic!("the independent verifier rejected a real token: {e}"));
    assert!(ok.contains(&client.client_id), "{ok}");

    // Tampered payload, original signature.
    let forged = tamper(&token, |p| p["scope"] = "api:read api:admin".into());
    let e = node_verify(&app.issuer, &forged, API)
        .await
        .expect_err("tampered");
    assert!(e.contains("bad signature"), "{e}");

    // Flipped signature bit.
    let mut sig = URL_SAFE_NO_PAD
        .decode(token.rsplit('.').next().expect("sig"))
        .expect("b64");
    sig[10] ^= 1;
    let head = token.rsplit_once('.').expect("dots").0;
    let bad_sig = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig));
    let e = node_verify(&app.issuer, &bad_sig, API)
        .await
        .expect_err("bad sig");
    assert!(e.contains("bad signature"), "{e}");

    // alg none, unsigned.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let payload = token.split('.').nth(1).expect("payload");
    let unsigned = format!("{none_header}.{payload}.");
    let e = node_verify(&app.issuer, &unsigned, API)
        .await
        .expect_err("alg none");
    assert!(e.contains("not allowed") || e.contains("base64url"), "{e}");

    // Genuine token, wrong audience.
    let e = node_verify(&app.issuer, &token, "https://other.example.test")
        .await
        .expect_err("wrong audience");
    assert!(e.contains("aud"), "{e}");
}
