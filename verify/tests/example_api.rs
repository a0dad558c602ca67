//! The `resource_api` example as a black box: a real process, configured by environment, in
//! front of a mock issuer; checked over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// `target/<profile>/examples/resource_api`, which `cargo test` builds before running tests.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("resource_api{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test -p latchkey-verify` (which builds examples), \
         or `cargo build -p latchkey-verify --example resource_api` first",
        path.display()
    );
    path
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_example(issuer: &str, listen: &str) -> Running {
    let child = Command::new(example_binary())
        .env("LATCHKEY_ISSUER", issuer)
        .env("RESOURCE_AUDIENCE", AUDIENCE)
        .env("RESOURCE_LISTEN", listen)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(listen).is_err() {
        if let Some(status) = running.0.try_wait().unwrap() {
            panic!("resource_api exited early: {status}");
        }
        assert!(Instant::now() < deadline, "resource_api did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}

struct Reply {
    status: u16,
    www_authenticate: Option<String>,
    body: String,
}

async fn get_me(client: &reqwest::Client, listen: &str, token: Option<&str>) -> Reply {
    let mut req = client.get(format!("http://{listen}/me"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        www_authenticate: resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: resp.text().await.unwrap(),
    }
}

#[tokio::test]
async fn resource_api_example_answers_as_specified() {
    let key = TestKey::es256("ec-1");
    let mock = MockIssuer::start(jwks(&[&key]));
    let listen = format!("127.0.0.1:{}", free_port());
    let _api = start_example(&mock.issuer(), &listen);
    // A plain client: with the `tls` feature on, it must still build (no "No provider set").
    let client = reqwest::Client::new();
    let iss = mock.issuer();

    // A valid token with api:read.
    let reply = get_me(&client, &listen, Some(&key.token(&claims(&iss)))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        serde_json::from_str::<Value>(&reply.body).unwrap(),
        json!({"sub": "user-42", "scope": "openid api:read"})
    );

    // No token.
    let reply = get_me(&client, &listen, None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.www_authenticate.as_deref(), Some("Bearer"));

    // Without the scope.
    let token = key.token(&with(claims(&iss), json!({"scope": "openid"})));
    let reply = get_me(&client, &listen, Some(&token)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.www_authenticate.as_deref(),
        Some(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks the required scope\", scope=\"api:read\""
        )
    );

    // Forgeries.
    let none = json!({"alg": "none", "typ": "at+jwt", "kid": "ec-1"});
    let hs = json!({"alg": "HS256", "typ": "at+jwt", "kid": "ec-1"});
    let hs_input = signing_input(&hs, &claims(&iss));
    let forgeries = [
        format!("{}.", signing_input(&none, &claims(&iss))),
        format!(
            "{hs_input}.{}",
            b64(&hmac_sha256(&key.public_bytes, hs_input.as_bytes()))
        ),
        TestKey::es256("ec-1").token(&claims(&iss)),
        TestKey::es256("unknown").token(&claims(&iss)),
        key.token(&with(claims(&iss), json!({"exp": now() - 3600}))),
        key.token(&with(claims(&iss), json!({"nbf": now() + 3600}))),
        key.token(&with(claims(&iss), json!({"iss": "https://evil"}))),
        key.token(&with(claims(&iss), json!({"aud": "https://other"}))),
        key.token_with_header(
            &json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"}),
            &claims(&iss),
        ),
    ];
    for token in &forgeries {
        let reply = get_me(&client, &listen, Some(token)).await;
        assert_eq!(reply.status, 401, "{token:.60}");
        assert!(
            reply
                .www_authenticate
                .as_deref()
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\", error_description=\""),
            "{:?}",
            reply.www_authenticate
        );
    }
    // Discovery once and the JWKS (once, or twice if the unknown kid came after the default
    // refetch cooldown); nothing else, and nothing derived from the tokens.
    let paths = mock.paths();
    assert_eq!(paths[0], "/.well-known/openid-configuration");
    assert!(paths[1..].iter().all(|p| p == "/jwks"), "{paths:?}");
    assert!((2..=3).contains(&paths.len()), "{paths:?}");
}
