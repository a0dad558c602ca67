//! Pushed authorization requests (RFC 9126) from outside: the client pushes its request, the
//! browser carries only `client_id` and `request_uri`, and every misuse is refused with the
//! RFC error — JSON at the PAR endpoint, an error page (never a redirect) for a bad
//! `request_uri` at `/authorize`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::{
    Browser, PASSWORD, REDIRECT, REDIRECT_PORT, SCOPE, exchange, location_params, pkce, setup,
};
use crate::dpop::{DpopKey, token_request};
use crate::helpers::{API, Resp, TestApp, jwt_parts};

const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The authorization request parameters a native app would push.
fn request(client_id: &str, challenge: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_PORT),
        ("scope", SCOPE),
        ("state", "st-par"),
        ("nonce", "n-par"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn push(
    app: &TestApp,
    form: &[(String, String)],
    basic: Option<(&str, &str)>,
    proof: Option<&str>,
) -> Resp {
    let mut req = app.http.post(app.url("/par")).form(form);
    if let Some((id, secret)) = basic {
        req = req.header("authorization", crate::helpers::basic_header(id, secret));
    }
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    Resp::read(req.send().await.expect("POST /par")).await
}

/// Pushes and returns the `request_uri`, asserting the RFC 9126 §2.2 response.
async fn pushed(app: &TestApp, form: &[(String, String)]) -> String {
    let r = push(app, form, None, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["expires_in"], app.config.par_ttl);
    let uri = v["request_uri"].as_str().expect("request_uri").to_owned();
    assert!(uri.starts_with(PREFIX), "{uri}");
    assert!(
        uri.len() > PREFIX.len() + 30,
        "a guessable request_uri: {uri}"
    );
    uri
}

fn front(client_id: &str, request_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri);
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/authorize?{}", q.finish())
}

/// An error page at `/authorize`: never a redirect.
#[track_caller]
fn assert_error_page(r: &Resp, error: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.header("location").is_none());
    assert!(r.text().contains(error), "{}", r.text());
}

#[actix_web::test]
async fn a_pushed_request_signs_in_and_its_request_uri_is_used_once() {
    let app = TestApp::spawn().await;
    let d = app.discovery().await.json();
    assert_eq!(
        d["pushed_authorization_request_endpoint"],
        format!("{}/par", app.issuer)
    );
    assert_eq!(d["require_pushed_authorization_requests"], false);
    let m = setup(&app, true).await;
    let cid = m.client.client_id.as_str();
    let (verifier, challenge) = pkce();
    let uri = pushed(&app, &request(cid, &challenge)).await;

    let mut b = Browser::new(&app);
    // The browser carries only client_id and request_uri; what else the URL says is ignored
    // (RFC 9126 §4): here another registered redirect and a wider prompt.
    let page = b
        .get(&front(
            cid,
            &uri,
            &[("redirect_uri", "com.example.app:/cb"), ("state", "forged")],
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("name=\"password\""));
    // A reload of the login page before sign-in still works (§4 allows it).
    let again = b.get(&front(cid, &uri, &[])).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    let r = b.login(&page, "alice", PASSWORD).await;
    let (base, p) = location_params(&r);
    assert_eq!(base, REDIRECT_PORT, "the pushed redirect_uri");
    assert_eq!(p.get("state").map(String::as_str), Some("st-par"));
    let code = p.get("code").expect("code");
    let tokens = exchange(&app, cid, code, &verifier).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text());
    let (_, id) = jwt_parts(tokens.json()["id_token"].as_str().expect("id_token"));
    assert_eq!(id["nonce"], "n-par", "the pushed nonce");

    // Used up: the same request_uri is refused, in this browser or any other.
    let r = b.get(&front(cid, &uri, &[])).await;
    assert_error_page(&r, "invalid_request_uri");
    let r = Browser::new(&app).get(&front(cid, &uri, &[])).await;
    assert_error_page(&r, "invalid_request_uri");
}

#[actix_web::test]
async fn a_request_uri_is_bound_to_its_client_and_cannot_be_forged() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let other = app
        .add_client(&[
            "--name",
            "other",
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT,
            "--grant",
            "authorization_code",
            "--scope",
            SCOPE,
        ])
        .await;
    let (_, challenge) = pkce();
    let uri = pushed(&app, &request(&m.client.client_id, &challenge)).await;
    let mut b = Browser::new(&app);
    // Another client's id with this request_uri.
    assert_error_page(
        &b.get(&front(&other.client_id, &uri, &[])).await,
        "invalid_request_uri",
    );
    // Without client_id.
    let r = b
        .get(&format!(
            "/authorize?request_uri={}",
            form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()
        ))
        .await;
    assert_error_page(&r, "invalid_request");
    // Guessed, truncated or foreign-looking values.
    for forged in [
        format!("{PREFIX}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        uri[..uri.len() - 1].to_owned(),
        "https://evil.example/request.jwt".to_owned(),
        format!("{PREFIX}{}", "x".repeat(3000)),
    ] {
        let r = b.get(&front(&m.client.client_id, &forged, &[])).await;
        assert_error_page(&r, "invalid_request_uri");
    }
    // The genuine one still works for its own client: refusals did not use it up.
    let page = b.get(&front(&m.client.client_id, &uri, &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
}

#[actix_web::test]
async fn an_expired_request_uri_is_refused() {
    let app = TestApp::spawn_with(|c| c.par_ttl = 5).await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let uri = pushed(&app, &request(&m.client.client_id, &challenge)).await;
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let r = Browser::new(&app)
        .get(&front(&m.client.client_id, &uri, &[]))
        .await;
    assert_error_page(&r, "invalid_request_uri");
}

#[actix_web::test]
async fn the_par_endpoint_validates_like_authorize_and_answers_in_json() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let cid = m.client.client_id.as_str();
    let (_, challenge) = pkce();
    let with = |k: &str, v: Option<&str>| {
        let mut f: Vec<(String, String)> = request(cid, &challenge)
            .into_iter()
            .filter(|(key, _)| key != k)
            .collect();
        if let Some(v) = v {
            f.push((k.to_owned(), v.to_owned()));
        }
        f
    };
    // Unknown client: 401 invalid_client.
    push(&app, &with("client_id", Some("nobody")), None, None)
        .await
        .assert_oauth_error(401, "invalid_client");
    // An unregistered redirect: JSON invalid_request, never a redirect to it.
    let r = push(
        &app,
        &with("redirect_uri", Some("https://evil.example/cb")),
        None,
        None,
    )
    .await;
    r.assert_oauth_error(400, "invalid_request");
    assert!(r.header("location").is_none());
    // No PKCE, plain PKCE, a scope beyond the client's, a resource it may not reach.
    push(&app, &with("code_challenge", None), None, None)
        .await
        .assert_oauth_error(400, "invalid_request");
    push(
        &app,
        &with("code_challenge_method", Some("plain")),
        None,
        None,
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    push(&app, &with("scope", Some("openid admin:all")), None, None)
        .await
        .assert_oauth_error(400, "invalid_scope");
    push(
        &app,
        &with("resource", Some("https://payments.example.test")),
        None,
        None,
    )
    .await
    .assert_oauth_error(400, "invalid_target");
    // A request_uri cannot itself be pushed.
    push(
        &app,
        &with("request_uri", Some(&format!("{PREFIX}x"))),
        None,
        None,
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    // Only POST.
    let r = app.get("/par").await;
    assert!(r.status == StatusCode::METHOD_NOT_ALLOWED || r.status == StatusCode::NOT_FOUND);

    // A confidential client must authenticate: a wrong secret is invalid_client; Basic
    // without client_id in the body works.
    let web = app
        .add_client(&[
            "--name",
            "web",
            "--type",
            "confidential",
            "--redirect-uri",
            REDIRECT,
            "--grant",
            "authorization_code",
            "--scope",
            SCOPE,
            "--audience",
            API,
        ])
        .await;
    let mut form = request(&web.client_id, &challenge);
    push(&app, &form, Some((&web.client_id, "wrong")), None)
        .await
        .assert_oauth_error(401, "invalid_client");
    push(&app, &form, None, None)
        .await
        .assert_oauth_error(401, "invalid_client");
    form.retain(|(k, _)| k != "client_id");
    let r = push(&app, &form, Some((&web.client_id, web.secret())), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[actix_web::test]
async fn a_client_or_server_that_requires_par_refuses_plain_requests() {
    // Per client.
    let app = TestApp::spawn().await;
    setup(&app, true).await;
    let strict = app
        .add_client(&[
            "--name",
            "strict",
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT,
            "--grant",
            "authorization_code",
            "--scope",
            SCOPE,
            "--first-party",
            "--require-par",
        ])
        .await;
    assert_eq!(
        strict.metadata["require_pushed_authorization_requests"],
        true
    );
    let (verifier, challenge) = pkce();
    let plain = crate::browser::authorize_path(&strict.client_id, &challenge, &[]);
    let mut b = Browser::new(&app);
    let r = b.get(&plain).await;
    let (base, p) = location_params(&r);
    assert_eq!(base, REDIRECT_PORT);
    assert_eq!(p.get("error").map(String::as_str), Some("invalid_request"));
    assert!(!p.contains_key("code"));
    let uri = pushed(&app, &request(&strict.client_id, &challenge)).await;
    let page = b.get(&front(&strict.client_id, &uri, &[])).await;
    let r = b.login(&page, "alice", PASSWORD).await;
    let code = location_params(&r).1.get("code").expect("code").clone();
    let t = exchange(&app, &strict.client_id, &code, &verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());

    // For every client, by configuration; discovery says so.
    let app = TestApp::spawn_with(|c| c.require_pushed_authorization_requests = true).await;
    let m = setup(&app, true).await;
    assert_eq!(
        app.discovery().await.json()["require_pushed_authorization_requests"],
        true
    );
    let r = Browser::new(&app)
        .get(&crate::browser::authorize_path(
            &m.client.client_id,
            &challenge,
            &[],
        ))
        .await;
    assert_eq!(
        location_params(&r).1.get("error").map(String::as_str),
        Some("invalid_request")
    );
    pushed(&app, &request(&m.client.client_id, &challenge)).await;
}

#[actix_web::test]
async fn a_dpop_proof_at_par_binds_the_code_to_the_key() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let cid = m.client.client_id.as_str();
    let key = DpopKey::new();
    let par_url = format!("{}/par", app.issuer);
    let token_url = format!("{}/token", app.issuer);

    // A proof for another URL, or a dpop_jkt naming another key: invalid_dpop_proof.
    let (_, challenge) = pkce();
    let form = request(cid, &challenge);
    push(
        &app,
        &form,
        None,
        Some(&key.proof("POST", &token_url, None)),
    )
    .await
    .assert_oauth_error(400, "invalid_dpop_proof");
    let mut other = form.clone();
    other.push(("dpop_jkt".into(), DpopKey::new().jkt()));
    push(&app, &other, None, Some(&key.proof("POST", &par_url, None)))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    // A replayed proof.
    let proof = key.proof("POST", &par_url, None);
    let r = push(&app, &form, None, Some(&proof)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    push(&app, &form, None, Some(&proof))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");

    // Sign in with a pushed, proven request; the code needs a proof by the same key.
    let code_for = async || {
        let (verifier, challenge) = pkce();
        let r = push(
            &app,
            &request(cid, &challenge),
            None,
            Some(&key.proof("POST", &par_url, None)),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let uri = r.json()["request_uri"].as_str().expect("uri").to_owned();
        let mut b = Browser::new(&app);
        let page = b.get(&front(cid, &uri, &[])).await;
        let r = b.login(&page, "alice", PASSWORD).await;
        let code = location_params(&r).1.get("code").expect("code").clone();
        (code, verifier)
    };
    let redeem = |code: String, verifier: String, proof: Option<String>| {
        let app = &app;
        async move {
            token_request(
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_PORT),
                    ("client_id", cid),
                    ("code_verifier", &verifier),
                ],
                None,
                proof.as_deref(),
            )
            .await
        }
    };
    let (code, verifier) = code_for().await;
    redeem(code, verifier, None)
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    let (code, verifier) = code_for().await;
    let thief = DpopKey::new().proof("POST", &token_url, None);
    redeem(code, verifier, Some(thief))
        .await
        .assert_oauth_error(400, "invalid_grant");
    let (code, verifier) = code_for().await;
    let r = redeem(code, verifier, Some(key.proof("POST", &token_url, None))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v: Value = r.json();
    assert_eq!(v["token_type"], "DPoP");
    let (_, claims) = jwt_parts(v["access_token"].as_str().expect("at"));
    assert_eq!(claims["cnf"]["jkt"], key.jkt());
}
