//! Signed request objects (JAR, RFC 9101) from outside: the authorization request as a JWT
//! signed with the client's registered key, at `/authorize` and through PAR; only the object's
//! parameters count; every forged or mis-addressed object is an `invalid_request_object`
//! error page (never a redirect to unverified parameters); `require_signed_request_object`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, PASSWORD, SCOPE, location_params, pkce, setup};
use crate::dpop::DpopKey;
use crate::helpers::{Resp, TestApp, TestClient, now};

const REDIRECT: &str = "https://web.example.test/cb";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn web_client(app: &TestApp, key: &DpopKey, extra: &[&str]) -> TestClient {
    let mut jwk = key.jwk.clone();
    jwk["kid"] = json!("k1");
    let path =
        std::env::temp_dir().join(format!("jwks-{}.json", latchkey::secret::random_token(6)));
    std::fs::write(&path, json!({ "keys": [jwk] }).to_string()).expect("jwks");
    let mut args = vec![
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
        "--first-party",
        "--jwks-file",
        path.to_str().expect("path"),
    ];
    args.extend_from_slice(extra);
    let c = app.add_client(&args).await;
    let _ = std::fs::remove_file(&path);
    c
}

fn object(app: &TestApp, client_id: &str, challenge: &str) -> Value {
    json!({
        "iss": client_id,
        "aud": app.issuer,
        "exp": now() + 300,
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "st-jar",
        "nonce": "n-jar",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
}

fn sign(key: &DpopKey, claims: &Value) -> String {
    key.sign(
        &json!({"alg": "ES256", "kid": "k1", "typ": "oauth-authz-req+jwt"}),
        claims,
    )
}

fn front(client_id: &str, request: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", client_id)
        .append_pair("request", request);
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/authorize?{}", q.finish())
}

fn assertion(app: &TestApp, key: &DpopKey, client_id: &str) -> String {
    key.sign(
        &json!({"alg": "ES256", "kid": "k1"}),
        &json!({
            "iss": client_id, "sub": client_id, "aud": app.issuer,
            "exp": now() + 60, "jti": latchkey::secret::random_token(12),
        }),
    )
}

#[track_caller]
fn assert_invalid_object(r: &Resp) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.header("location").is_none(), "never a redirect");
    assert!(r.text().contains("invalid_request_object"), "{}", r.text());
}

#[actix_web::test]
async fn a_signed_request_object_signs_in_and_only_its_parameters_count() {
    let app = TestApp::spawn().await;
    let d = app.discovery().await.json();
    assert_eq!(d["request_parameter_supported"], true);
    setup(&app, true).await;
    let key = DpopKey::new();
    let c = web_client(&app, &key, &[]).await;
    let (verifier, challenge) = pkce();
    let jwt = sign(&key, &object(&app, &c.client_id, &challenge));
    let mut b = Browser::new(&app);
    // Outside the object: a forged state and scope, ignored.
    let page = b
        .get(&front(
            &c.client_id,
            &jwt,
            &[("state", "forged"), ("scope", "openid email")],
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let r = b.login(&page, "alice", PASSWORD).await;
    let (base, p) = location_params(&r);
    assert_eq!(base, REDIRECT);
    assert_eq!(p.get("state").map(String::as_str), Some("st-jar"));
    let code = p.get("code").expect("code");
    let r = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion(&app, &key, &c.client_id)),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["scope"], "openid profile", "the object's scope");
}

#[actix_web::test]
async fn forged_or_misaddressed_request_objects_are_refused_without_a_redirect() {
    let app = TestApp::spawn().await;
    setup(&app, true).await;
    let key = DpopKey::new();
    let c = web_client(&app, &key, &[]).await;
    let id = c.client_id.as_str();
    let (_, challenge) = pkce();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut o = object(&app, id, &challenge);
        f(&mut o);
        sign(&key, &o)
    };
    let unsigned = {
        let s = sign(&key, &object(&app, id, &challenge));
        let parts: Vec<&str> = s.split('.').collect();
        let h = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"alg":"none"}"#,
        );
        format!("{h}.{}.", parts[1])
    };
    let cases = [
        ("alg none", unsigned),
        (
            "another key",
            sign(&DpopKey::new(), &object(&app, id, &challenge)),
        ),
        (
            "aud of another server",
            edit(&|o| o["aud"] = json!("https://other.example")),
        ),
        (
            "client_id of another client",
            edit(&|o| o["client_id"] = json!("other")),
        ),
        (
            "iss of another client",
            edit(&|o| o["iss"] = json!("other")),
        ),
        ("expired", edit(&|o| o["exp"] = json!(now() - 120))),
        (
            "no exp",
            edit(&|o| drop(o.as_object_mut().map(|m| m.remove("exp")))),
        ),
        ("lives a day", edit(&|o| o["exp"] = json!(now() + 86_400))),
        (
            "nested request_uri",
            edit(&|o| o["request_uri"] = json!("urn:x")),
        ),
        ("not a JWT", "eyJ".to_owned()),
    ];
    let mut b = Browser::new(&app);
    for (what, jwt) in &cases {
        let r = b.get(&front(id, jwt, &[])).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.text());
        assert_invalid_object(&r);
    }
    // A client without keys cannot send one at all.
    let m = setup_public(&app).await;
    let r = b
        .get(&front(&m, &sign(&key, &object(&app, &m, &challenge)), &[]))
        .await;
    assert_invalid_object(&r);
}

async fn setup_public(app: &TestApp) -> String {
    app.add_client(&[
        "--name",
        "phone",
        "--type",
        "public",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--grant",
        "authorization_code",
        "--scope",
        SCOPE,
    ])
    .await
    .client_id
}

#[actix_web::test]
async fn a_client_that_requires_signed_requests_refuses_plain_ones_also_through_par() {
    let app = TestApp::spawn().await;
    setup(&app, true).await;
    let key = DpopKey::new();
    let c = web_client(&app, &key, &["--require-signed-request"]).await;
    assert_eq!(c.metadata["require_signed_request_object"], true);
    let id = c.client_id.as_str();
    let (verifier, challenge) = pkce();
    let obj = object(&app, id, &challenge);
    let plain: Vec<(&str, String)> = obj
        .as_object()
        .expect("object")
        .iter()
        .filter(|(k, _)| !["iss", "aud", "exp"].contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str().expect("string").to_owned()))
        .collect();
    // At /authorize: the plain request is refused (to the registered redirect: the client
    // and redirect were valid).
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &plain {
        q.append_pair(k, v);
    }
    let mut b = Browser::new(&app);
    let r = b.get(&format!("/authorize?{}", q.finish())).await;
    let (_, p) = location_params(&r);
    assert_eq!(p.get("error").map(String::as_str), Some("invalid_request"));
    assert!(!p.contains_key("code"));

    // At /par: plain is refused, even with the server's own marker forged in; signed works.
    let push = |form: Vec<(String, String)>| {
        let app = &app;
        async move {
            Resp::read(
                app.http
                    .post(app.url("/par"))
                    .form(&form)
                    .send()
                    .await
                    .expect("POST /par"),
            )
            .await
        }
    };
    let auth = |extra: Vec<(String, String)>| {
        let mut f = vec![
            (
                "client_assertion_type".to_owned(),
                ASSERTION_TYPE.to_owned(),
            ),
            ("client_assertion".to_owned(), assertion(&app, &key, id)),
        ];
        f.extend(extra);
        f
    };
    let mut plain_form: Vec<(String, String)> = plain
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    push(auth(plain_form.clone()))
        .await
        .assert_oauth_error(400, "invalid_request");
    plain_form.push(("latchkey_signed_request_object".into(), "1".into()));
    push(auth(plain_form))
        .await
        .assert_oauth_error(400, "invalid_request");
    let jwt = sign(&key, &object(&app, id, &challenge));
    let r = push(auth(vec![
        ("client_id".into(), id.to_owned()),
        ("request".into(), jwt),
    ]))
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let uri = r.json()["request_uri"].as_str().expect("uri").to_owned();
    let page = b
        .get(&format!(
            "/authorize?client_id={id}&request_uri={}",
            form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()
        ))
        .await;
    let r = b.login(&page, "alice", PASSWORD).await;
    let (base, p) = location_params(&r);
    assert_eq!(base, REDIRECT);
    assert_eq!(p.get("state").map(String::as_str), Some("st-jar"));
    let r = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", p.get("code").expect("code")),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion(&app, &key, id)),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
