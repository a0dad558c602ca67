//! `latchkey-verify` against a running Latchkey, not a mock: real discovery, real JWKS with its
//! `Cache-Control`, real tokens from client_credentials and from the login flow, key rotation
//! driven by the CLI, the JWKS endpoint going away; and the `resource_api` example binary in
//! front of the real server.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_verify::{SetupError, Verifier, VerifyError};
use serde_json::{Value, json};

use crate::browser::{login_tokens, setup};
use crate::helpers::{API, TestApp, TestClient, example_binary, jwt_parts, now};

/// Another API: tokens for it must not be accepted by [`API`].
const OTHER_API: &str = "https://other-api.example.test";

fn kid_of(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().expect("kid").to_owned()
}

async fn client_with(app: &TestApp, name: &str, scope: &str, audience: &str) -> TestClient {
    app.add_client(&[
        "--name",
        name,
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        scope,
        "--audience",
        audience,
    ])
    .await
}

#[actix_web::test]
async fn from_issuer_verifies_real_service_and_user_tokens() {
    let app = TestApp::spawn().await;
    let verifier = Verifier::from_issuer(&app.issuer, API)
        .await
        .expect("discovery and JWKS from the running server");
    assert_eq!(
        verifier.jwks_url(),
        Some(format!("{}/jwks", app.issuer).as_str()),
        "the JWKS URL comes from discovery"
    );

    // A backend service's token (client_credentials).
    let svc = app.add_service_client().await;
    let token = app.access_token_for(&svc).await;
    let claims = verifier
        .verify(&token)
        .await
        .expect("a client_credentials token verifies");
    assert_eq!(claims.iss, app.issuer);
    assert_eq!(claims.sub, svc.client_id);
    assert_eq!(claims.client_id, svc.client_id);
    assert!(claims.aud.contains(API));
    assert!(claims.has_scope("api:read"));
    assert!(claims.auth_time.is_none(), "no user, no auth_time");
    assert!(claims.is_client_token(), "a client's own token is marked");
    assert_eq!(claims.user_id(), None);
    claims
        .require_scope("api:write")
        .expect_err("only the granted scope");

    // A user's token from the browser login (authorization code + PKCE).
    let m = setup(&app, true).await;
    let tokens = login_tokens(&app, &m).await;
    let user_token = tokens["access_token"].as_str().expect("access_token");
    let claims = verifier
        .verify_cached(user_token)
        .expect("a user token verifies with the keys already known");
    assert_eq!(claims.sub, m.sub);
    assert!(!claims.is_client_token());
    assert_eq!(claims.user_id(), Some(m.sub.as_str()));
    assert_eq!(claims.client_id, m.client.client_id);
    assert!(
        claims.has_scopes(&["openid", "api:read"]),
        "{}",
        claims.scope
    );
    let auth_time = claims.auth_time.expect("auth_time on user tokens") as i64;
    assert!((now() - auth_time).abs() < 60);

    // The ID token is signed by the same issuer but is not an access token (RFC 9068 typ).
    let id_token = tokens["id_token"].as_str().expect("id_token");
    assert_eq!(
        verifier.verify(id_token).await,
        Err(VerifyError::InvalidType)
    );
}

#[actix_web::test]
async fn tokens_for_another_audience_are_refused() {
    let app = TestApp::spawn().await;
    let other = client_with(&app, "other", "api:read", OTHER_API).await;
    let token = app.access_token_for(&other).await;
    let verifier = Verifier::from_issuer(&app.issuer, API)
        .await
        .expect("verifier");
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::InvalidAudience)
    );
    // The same token is fine for the API it was issued for.
    let theirs = Verifier::from_issuer(&app.issuer, OTHER_API)
        .await
        .expect("verifier");
    theirs.verify(&token).await.expect("its own audience");
    // And a wrong issuer string (trailing slash) is refused at set-up.
    let err = Verifier::from_issuer(format!("{}/", app.issuer), API)
        .await
        .expect_err("the issuer is an exact string");
    assert!(matches!(err, SetupError::IssuerMismatch { .. }), "{err}");
}

#[actix_web::test]
async fn after_a_rotation_old_tokens_keep_verifying_and_new_ones_verify_after_a_refetch() {
    // No publish-ahead: the new key signs as soon as the server picks it up, before this
    // verifier has seen it, so the first new token is an unknown kid.
    let app = TestApp::spawn_with(|c| c.key_publish_ahead = 0).await;
    let svc = app.add_service_client().await;
    let old_token = app.access_token_for(&svc).await;
    let old_kid = kid_of(&old_token);
    let verifier = Verifier::builder(&app.issuer, API)
        .refetch_cooldown(Duration::from_millis(100))
        .build()
        .await
        .expect("verifier");
    verifier.verify(&old_token).await.expect("before rotation");

    let out = app
        .cli(&["keys", "rotate", "--alg", "ES256", "--json"], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let new_token = app
        .eventually(
            "tokens signed with the rotated key",
            Duration::from_secs(6),
            || async {
                let t = app.access_token_for(&svc).await;
                (kid_of(&t) != old_kid).then_some(t)
            },
        )
        .await;
    let new_kid = kid_of(&new_token);
    assert!(
        !verifier.key_ids().contains(&new_kid),
        "the verifier has not fetched the new key yet"
    );

    // verify() refetches the JWKS on the unknown kid and accepts the token.
    let claims = verifier
        .verify(&new_token)
        .await
        .expect("a token signed with the new key verifies after the refetch");
    assert_eq!(claims.sub, svc.client_id);
    let kids = verifier.key_ids();
    assert!(
        kids.contains(&new_kid) && kids.contains(&old_kid),
        "{kids:?}"
    );
    // The old key is retiring, not gone: its tokens still verify, and it stays published
    // at least until they expire.
    verifier
        .verify(&old_token)
        .await
        .expect("a token signed before the rotation still verifies");
    let list: Value =
        serde_json::from_str(&app.cli(&["keys", "list", "--json"], None).await.stdout)
            .expect("keys list JSON");
    let old = list
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .expect("old key listed");
    assert_eq!(old["state"], "retiring", "{old}");
    let exp = jwt_parts(&old_token).1["exp"].as_i64().expect("exp");
    assert!(
        old["expires_at"].as_i64().expect("expires_at") >= exp,
        "{old}"
    );
}

#[actix_web::test]
async fn a_key_published_ahead_is_known_before_it_signs() {
    // The schedule operators should use: publish ahead of signing for longer than verifiers
    // cache the JWKS. Then no verifier ever meets an unknown kid: verify_cached, which never
    // waits for the network, accepts the first token from the new key.
    let app = TestApp::spawn_with(|c| {
        // Publication reaches the verifier within ~3 s (server poll 2 s, max-age 1 s).
        c.key_publish_ahead = 5;
        c.jwks_max_age = 1;
    })
    .await;
    let svc = app.add_service_client().await;
    let old_token = app.access_token_for(&svc).await;
    let old_kid = kid_of(&old_token);
    let verifier = Verifier::builder(&app.issuer, API)
        .refetch_cooldown(Duration::from_millis(200))
        .build()
        .await
        .expect("verifier");

    let out = app
        .cli(&["keys", "rotate", "--alg", "ES256", "--json"], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let rotated: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let new_kid = rotated[0]["kid"].as_str().expect("kid").to_owned();
    let activates_at = rotated[0]["activates_at"].as_i64().expect("activates_at");
    assert_ne!(new_kid, old_kid);

    // Requests keep coming; the stale cache is refreshed in the background.
    app.eventually(
        "the verifier to learn the pending key",
        Duration::from_secs(5),
        || async {
            verifier.verify_cached(&old_token).expect("old token");
            verifier.key_ids().contains(&new_kid).then_some(())
        },
    )
    .await;
    assert!(
        now() < activates_at,
        "the verifier learned the key before it started signing ({} >= {activates_at})",
        now()
    );

    let new_token = app
        .eventually(
            "the new key to start signing",
            Duration::from_secs(8),
            || async {
                let t = app.access_token_for(&svc).await;
                (kid_of(&t) == new_kid).then_some(t)
            },
        )
        .await;
    verifier
        .verify_cached(&new_token)
        .expect("no unknown kid: the key was fetched ahead of time");
    verifier.verify_cached(&old_token).expect("old still valid");
}

/// A TCP forwarder to the test server that can be taken down (then connections are refused).
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&up);
        let thread = std::thread::spawn(move || {
            while flag.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        std::thread::spawn(move || forward(client, target_port));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            // The listener is dropped here: the port now refuses connections.
        });
        Proxy {
            port,
            up,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.up.store(false, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().expect("proxy thread");
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn forward(client: TcpStream, target_port: u16) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
        return;
    };
    let _ = client.set_nonblocking(false);
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    let a = pipe(client, server);
    let b = pipe(s2, c2);
    let _ = a.join();
    let _ = b.join();
}

#[actix_web::test]
async fn cached_keys_keep_verifying_while_the_jwks_endpoint_is_down() {
    // max-age 0: the cached set is stale at once, so every verification wants a refetch.
    let app = TestApp::spawn_with(|c| c.jwks_max_age = 0).await;
    let svc = app.add_service_client().await;
    let token = app.access_token_for(&svc).await;
    let mut proxy = Proxy::start(app.port);
    let verifier = Verifier::builder(&app.issuer, API)
        .jwks_url(format!("http://127.0.0.1:{}/jwks", proxy.port))
        .refetch_cooldown(Duration::from_millis(50))
        .http_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("JWKS through the proxy");
    verifier.verify(&token).await.expect("verifies");
    verifier.refresh().await.expect("the endpoint is up");

    proxy.stop();
    let err = verifier
        .refresh()
        .await
        .expect_err("the JWKS endpoint is down");
    assert!(matches!(err, SetupError::Fetch { .. }), "{err}");
    // Stale, refetches failing in the background: the known keys still verify.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(400) {
        let claims = verifier
            .verify(&token)
            .await
            .expect("cached keys keep verifying");
        assert_eq!(claims.sub, svc.client_id);
        actix_web::rt::time::sleep(Duration::from_millis(60)).await;
    }
    // A fresh token from the (still running) server is signed by a known key too.
    let fresh = app.access_token_for(&svc).await;
    verifier.verify_cached(&fresh).expect("known kid");
    // Forgeries are still refused: a broken endpoint does not open the door.
    let (h, rest) = fresh.split_once('.').expect("JWT");
    let (payload, sig) = rest.split_once('.').expect("JWT");
    let tampered = format!("{h}.{}.{sig}", tamper_payload(payload));
    assert_eq!(
        verifier.verify(&tampered).await,
        Err(VerifyError::InvalidSignature)
    );
}

/// base64url payload with `sub` changed.
fn tamper_payload(payload_b64: &str) -> String {
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload_b64).expect("b64")).expect("JSON");
    claims["sub"] = json!("someone-else");
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("JSON"))
}

/// The `resource_api` example of `latchkey-verify`, as a process.
pub(crate) struct ResourceApi {
    child: Child,
    pub(crate) base: String,
}

impl Drop for ResourceApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ResourceApi {
    pub(crate) async fn start(app: &TestApp) -> Option<ResourceApi> {
        let bin = example_binary(
            "resource_api",
            "cargo build -p latchkey-verify --example resource_api",
        )?;
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .env("LATCHKEY_ISSUER", &app.issuer)
            .env("RESOURCE_AUDIENCE", API)
            .env("RESOURCE_LISTEN", &listen)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start resource_api");
        let mut api = ResourceApi {
            child,
            base: format!("http://{listen}"),
        };
        // Its discovery needs this (single-threaded) test runtime to serve it: poll, not block.
        let start = Instant::now();
        while TcpStream::connect(&listen).is_err() {
            if let Some(status) = api.child.try_wait().expect("try_wait") {
                panic!("resource_api exited early: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "resource_api did not start"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        Some(api)
    }

    async fn me(&self, app: &TestApp, token: &str) -> (u16, Option<String>, String) {
        let r = app
            .http
            .get(format!("{}/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /me");
        let status = r.status().as_u16();
        let www = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii").to_owned());
        (status, www, r.text().await.expect("body"))
    }
}

#[actix_web::test]
async fn resource_api_example_in_front_of_the_real_server() {
    let app = TestApp::spawn().await;
    let Some(api) = ResourceApi::start(&app).await else {
        return;
    };

    // A service token with the scope: 200 with its subject.
    let svc = app.add_service_client().await;
    let token = app.access_token_for(&svc).await;
    let (status, _, body) = api.me(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v, json!({"sub": svc.client_id, "scope": "api:read"}));

    // A user's token from the login flow: 200 with the user's subject.
    let m = setup(&app, true).await;
    let user_token = login_tokens(&app, &m).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let (status, _, body) = api.me(&app, &user_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON")["sub"],
        m.sub.as_str()
    );

    // A real token for this API but without api:read: 403 insufficient_scope.
    let writer = client_with(&app, "writer", "api:write", API).await;
    let (status, www, body) = api.me(&app, &app.access_token_for(&writer).await).await;
    assert_eq!(status, 403, "{body}");
    let www = www.expect("WWW-Authenticate");
    assert!(
        www.starts_with("Bearer error=\"insufficient_scope\"")
            && www.contains("scope=\"api:read\""),
        "{www}"
    );

    // Forgeries built from real tokens: 401 invalid_token.
    let (h, rest) = token.split_once('.').expect("JWT");
    let (payload, sig) = rest.split_once('.').expect("JWT");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("JSON");
    let mut none = header.clone();
    none["alg"] = json!("none");
    let none = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&none).expect("JSON"));
    let other = client_with(&app, "other", "api:read", OTHER_API).await;
    let forgeries = [
        ("alg none", format!("{none}.{payload}.")),
        (
            "alg none with the real signature",
            format!("{none}.{payload}.{sig}"),
        ),
        (
            "tampered payload",
            format!("{h}.{}.{sig}", tamper_payload(payload)),
        ),
        ("wrong audience", app.access_token_for(&other).await),
        (
            "an ID token",
            login_tokens(&app, &m).await["id_token"]
                .as_str()
                .expect("id_token")
                .to_owned(),
        ),
    ];
    for (what, forged) in &forgeries {
        let (status, www, body) = api.me(&app, forged).await;
        assert_eq!(status, 401, "{what}: {body}");
        let www = www.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
        assert!(
            www.starts_with("Bearer error=\"invalid_token\""),
            "{what}: {www}"
        );
    }
}
