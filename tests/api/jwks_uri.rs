//! `jwks_uri` (RFC 7591 §2) for `private_key_jwt` clients and signed request objects: the
//! server fetches the client's published keys, caches them, refetches when the client rotates
//! to a key it does not know (at most once per 30 s), and never lets the URL make it call into
//! its own network: loopback and private addresses are refused unless
//! `outbound_allow_private_addresses` is on (these tests' key host runs on 127.0.0.1), no
//! redirect is followed and the response size is capped. Every failure is `invalid_client`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dpop::DpopKey;
use crate::helpers::{API, Resp, TestApp, TestClient, now};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the key host answers: status, extra headers, body, and how long it waits first.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
}

/// A tiny HTTP server on 127.0.0.1 standing in for a client's key host (or its back-channel
/// logout receiver); it records every request's path and body.
pub(crate) struct KeyHost {
    pub(crate) port: u16,
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<(String, String)>>>,
}

impl KeyHost {
    pub(crate) fn start(body: String) -> KeyHost {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind key host");
        let port = listener.local_addr().expect("addr").port();
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
            delay: Duration::ZERO,
        }));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (a, s, bs) = (answer.clone(), seen.clone(), bodies.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (a, s, bs) = (a.clone(), s.clone(), bs.clone());
                std::thread::spawn(move || serve_one(conn, &a, &s, &bs));
            }
        });
        KeyHost {
            port,
            answer,
            seen,
            bodies,
        }
    }

    /// The bodies of the requests to `path`, in arrival order.
    pub(crate) fn bodies(&self, path: &str) -> Vec<String> {
        self.bodies
            .lock()
            .expect("bodies")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits `delay` before each answer from now on.
    pub(crate) fn delay(&self, delay: Duration) {
        self.answer.lock().expect("answer").delay = delay;
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn serve(&self, status: u16, headers: &[(&str, &str)], body: String) {
        let mut a = self.answer.lock().expect("answer");
        a.status = status;
        a.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        a.body = body;
    }

    pub(crate) fn requests(&self, path: &str) -> usize {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

/// Answers one connection: reads the head and a `Content-Length` body, records both, then
/// answers as told.
fn serve_one(
    mut conn: std::net::TcpStream,
    answer: &Mutex<Answer>,
    seen: &Mutex<Vec<String>>,
    bodies: &Mutex<Vec<(String, String)>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let body = String::from_utf8_lossy(&data[head_end..]).into_owned();
    seen.lock().expect("seen").push(path.clone());
    bodies.lock().expect("bodies").push((path, body));
    let ans = answer.lock().expect("answer").clone();
    std::thread::sleep(ans.delay);
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        ans.status,
        ans.body.len()
    );
    for (k, v) in &ans.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&ans.body);
    let _ = conn.write_all(out.as_bytes());
}

pub(crate) fn jwk_set(keys: &[(&DpopKey, &str)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(k, kid)| {
            let mut j = k.jwk.clone();
            j["kid"] = json!(kid);
            j["alg"] = json!("ES256");
            j
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

async fn backend(app: &TestApp, jwks_uri: &str) -> TestClient {
    app.add_client(&[
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
        jwks_uri,
    ])
    .await
}

fn assertion(app: &TestApp, key: &DpopKey, kid: &str, client_id: &str) -> String {
    key.sign(
        &json!({"alg": "ES256", "kid": kid, "typ": "JWT"}),
        &json!({
            "iss": client_id, "sub": client_id, "aud": app.issuer,
            "exp": now() + 60, "iat": now(), "jti": latchkey::secret::random_token(12),
        }),
    )
}

async fn token(app: &TestApp, assertion: &str) -> Resp {
    app.post_token(
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await
}

async fn dev_server() -> TestApp {
    TestApp::spawn_with(|c| c.outbound_allow_private_addresses = true).await
}

#[actix_web::test]
async fn keys_are_fetched_once_cached_and_refetched_when_the_client_rotates() {
    let app = dev_server().await;
    let (k1, k2) = (DpopKey::new(), DpopKey::new());
    let host = KeyHost::start(jwk_set(&[(&k1, "k1")]));
    let c = backend(&app, &host.url("/jwks")).await;
    assert_eq!(c.metadata["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(c.metadata["jwks_uri"], host.url("/jwks"));
    assert!(c.metadata["jwks"].is_null());
    assert!(
        c.client_secret.is_none(),
        "no secret for a client with keys"
    );
    assert_eq!(host.requests("/jwks"), 0, "nothing fetched at registration");

    for _ in 0..5 {
        let r = token(&app, &assertion(&app, &k1, "k1", &c.client_id)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(
        host.requests("/jwks"),
        1,
        "one fetch serves many assertions"
    );

    // The client rotates to k2. Right away the cached set does not know it, and an unknown
    // key cannot make the server refetch more than once per 30 s.
    host.serve(200, &[], jwk_set(&[(&k2, "k2")]));
    for _ in 0..3 {
        token(&app, &assertion(&app, &k2, "k2", &c.client_id))
            .await
            .assert_oauth_error(401, "invalid_client");
    }
    assert_eq!(host.requests("/jwks"), 1, "no refetch storm");
    // Half a minute later the unknown kid makes the server look again, once.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let r = token(&app, &assertion(&app, &k2, "k2", &c.client_id)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(host.requests("/jwks"), 2);
    // k1 is gone from the published set: refused (and no new fetch within 30 s).
    token(&app, &assertion(&app, &k1, "k1", &c.client_id))
        .await
        .assert_oauth_error(401, "invalid_client");
    assert_eq!(host.requests("/jwks"), 2);
}

#[actix_web::test]
async fn by_default_a_jwks_uri_on_loopback_is_never_requested() {
    // The default configuration: the key host on 127.0.0.1 is this machine, so the server
    // refuses to connect (an attacker's `jwks_uri` could name the admin port, a database or
    // the cloud metadata service the same way).
    let app = TestApp::spawn().await;
    let key = DpopKey::new();
    let host = KeyHost::start(jwk_set(&[(&key, "k1")]));
    for uri in [
        host.url("/jwks"),
        format!("http://localhost:{}/jwks", host.port),
    ] {
        let c = backend(&app, &uri).await;
        token(&app, &assertion(&app, &key, "k1", &c.client_id))
            .await
            .assert_oauth_error(401, "invalid_client");
    }
    assert_eq!(host.seen.lock().expect("seen").len(), 0, "never connected");
}

#[actix_web::test]
async fn redirects_oversized_and_malformed_key_sets_are_refused() {
    let app = dev_server().await;
    let key = DpopKey::new();
    let host = KeyHost::start(jwk_set(&[(&key, "k1")]));
    // A redirect is not followed, even to a valid key set.
    let c = backend(&app, &host.url("/moved")).await;
    host.serve(302, &[("Location", &host.url("/jwks"))], String::new());
    token(&app, &assertion(&app, &key, "k1", &c.client_id))
        .await
        .assert_oauth_error(401, "invalid_client");
    assert_eq!(host.requests("/moved"), 1);
    assert_eq!(host.requests("/jwks"), 0, "the redirect was not followed");

    let cases: Vec<(&str, String)> = vec![
        (
            "a huge body",
            format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(200_000)),
        ),
        ("not JSON", "<html>hello</html>".into()),
        ("a private key", {
            let mut j = key.private_jwk();
            j["kid"] = json!("k1");
            json!({ "keys": [j] }).to_string()
        }),
        ("no keys", json!({ "keys": [] }).to_string()),
    ];
    for (i, (what, body)) in cases.into_iter().enumerate() {
        let path = format!("/case{i}");
        let c = backend(&app, &host.url(&path)).await;
        host.serve(200, &[("Content-Type", "application/json")], body);
        let r = token(&app, &assertion(&app, &key, "k1", &c.client_id)).await;
        assert_eq!(r.status.as_u16(), 401, "{what}: {}", r.text());
        r.assert_oauth_error(401, "invalid_client");
        assert_eq!(host.requests(&path), 1, "{what}");
    }
    // A key host that answers 500: refused, and not asked again at once.
    let c = backend(&app, &host.url("/down")).await;
    host.serve(500, &[], String::new());
    for _ in 0..3 {
        token(&app, &assertion(&app, &key, "k1", &c.client_id))
            .await
            .assert_oauth_error(401, "invalid_client");
    }
    assert_eq!(host.requests("/down"), 1, "a failure is cached for a while");
    assert!(app.get("/readyz").await.status.is_success());
}

#[actix_web::test]
async fn jwks_uri_metadata_is_checked_at_registration() {
    let app = TestApp::spawn().await;
    let (_, admin) = crate::admin_api::admin_token(&app).await;
    let key = DpopKey::new();
    let post = |body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            Resp::read(
                app.http
                    .post(app.url("/admin/v1/clients"))
                    .bearer_auth(admin)
                    .json(&body)
                    .send()
                    .await
                    .expect("POST clients"),
            )
            .await
        }
    };
    let base = |extra: Value| {
        let mut b = json!({
            "client_name": "billing",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
            "token_endpoint_auth_method": "private_key_jwt",
        });
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    let r = post(base(
        json!({"jwks_uri": "https://billing.example/.well-known/jwks.json"}),
    ))
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(
        r.json()["jwks_uri"],
        "https://billing.example/.well-known/jwks.json"
    );
    assert!(r.json()["client_secret"].is_null(), "{}", r.text());
    for bad in [
        json!({"jwks_uri": "http://billing.example/jwks"}),
        json!({"jwks_uri": "https://user:pw@billing.example/jwks"}),
        json!({"jwks_uri": "https://billing.example/jwks#x"}),
        json!({"jwks_uri": "ftp://billing.example/jwks"}),
        json!({"jwks_uri": "jwks.json"}),
        json!({"jwks_uri": "https://169.254.169.254/latest/meta-data"}),
        json!({"jwks_uri": "https://billing.example/jwks", "jwks": {"keys": [key.jwk]}}),
        json!({"jwks_uri": "https://billing.example/jwks", "token_endpoint_auth_method": "none"}),
        json!({"jwks_uri": "https://billing.example/jwks", "token_endpoint_auth_method": "client_secret_basic"}),
    ] {
        let r = post(base(bad.clone())).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text());
        r.assert_oauth_error(400, "invalid_client_metadata");
    }
}

#[actix_web::test]
async fn a_request_object_verifies_with_a_key_from_jwks_uri_and_not_with_another() {
    let app = dev_server().await;
    let key = DpopKey::new();
    let host = KeyHost::start(jwk_set(&[(&key, "k1")]));
    let c = app
        .add_client(&[
            "--name",
            "web",
            "--type",
            "confidential",
            "--redirect-uri",
            "https://web.example/cb",
            "--grant",
            "authorization_code",
            "--scope",
            "openid profile",
            "--jwks-uri",
            &host.url("/jwks"),
            "--require-signed-request",
        ])
        .await;
    assert_eq!(c.metadata["require_signed_request_object"], true);
    let object = |signer: &DpopKey| {
        signer.sign(
            &json!({"alg": "ES256", "kid": "k1", "typ": "oauth-authz-req+jwt"}),
            &json!({
                "iss": c.client_id, "aud": app.issuer, "exp": now() + 300,
                "client_id": c.client_id, "response_type": "code",
                "redirect_uri": "https://web.example/cb", "scope": "openid",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            }),
        )
    };
    let par = |request: String| {
        let app = &app;
        let assertion = assertion(app, &key, "k1", &c.client_id);
        async move {
            Resp::read(
                app.http
                    .post(app.url("/par"))
                    .form(&[
                        ("request", request.as_str()),
                        ("client_assertion_type", ASSERTION_TYPE),
                        ("client_assertion", assertion.as_str()),
                    ])
                    .send()
                    .await
                    .expect("POST /par"),
            )
            .await
        }
    };
    let r = par(object(&key)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.json()["request_uri"].is_string());
    par(object(&DpopKey::new()))
        .await
        .assert_oauth_error(400, "invalid_request_object");
    assert_eq!(
        host.requests("/jwks"),
        1,
        "one fetch for the assertions and the objects"
    );
}
