//! Malformed, hostile and unusual requests to the token endpoint: each gets the exact RFC 6749
//! §5.2 error, and nothing produces a 5xx.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;

use crate::helpers::{Resp, TestApp, basic_header};

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

#[track_caller]
fn assert_4xx_json(r: &Resp) {
    assert!(
        r.status.is_client_error(),
        "expected a 4xx, got {}: {}",
        r.status,
        r.text()
    );
    let v = r.json();
    assert!(v["error"].is_string(), "{v}");
}

#[actix_web::test]
async fn unsupported_grant_type() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    for g in [
        "password",
        "implicit",
        "device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "CLIENT_CREDENTIALS",
        "client_credentials ",
    ] {
        let r = app.post_token(&[("grant_type", g)], client.basic()).await;
        r.assert_oauth_error(400, "unsupported_grant_type");
    }
    // A grant the server implements (RFC 8628) but this client does not hold.
    app.post_token(
        &[("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
        client.basic(),
    )
    .await
    .assert_oauth_error(400, "unauthorized_client");
}

#[actix_web::test]
async fn missing_grant_type_is_invalid_request() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app.post_token(&[], client.basic()).await;
    r.assert_oauth_error(400, "invalid_request");
    // A parameter sent without a value is treated as omitted (RFC 6749 §3.1).
    let r = app.post_token(&[("grant_type", "")], client.basic()).await;
    r.assert_oauth_error(400, "invalid_request");
    let r = app
        .post_token(
            &[
                ("client_id", &client.client_id),
                ("client_secret", client.secret()),
            ],
            None,
        )
        .await;
    r.assert_oauth_error(400, "invalid_request");
}

#[actix_web::test]
async fn duplicate_parameters_are_invalid_request() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let gt = ("grant_type", "client_credentials");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![gt, gt],
        vec![gt, ("grant_type", "password")],
        vec![gt, ("scope", "api:read"), ("scope", "api:read")],
        vec![
            gt,
            ("client_id", &client.client_id),
            ("client_id", &client.client_id),
            ("client_secret", client.secret()),
        ],
        vec![
            gt,
            ("client_id", &client.client_id),
            ("client_secret", client.secret()),
            ("client_secret", client.secret()),
        ],
    ];
    for form in cases {
        let r = app.post_token(&form, None).await;
        r.assert_oauth_error(400, "invalid_request");
    }
    let r = app.post_token(&[gt, gt], client.basic()).await;
    r.assert_oauth_error(400, "invalid_request");
}

#[actix_web::test]
async fn two_authentication_methods_are_invalid_request() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.client_id),
                ("client_secret", client.secret()),
            ],
            client.basic(),
        )
        .await;
    r.assert_oauth_error(400, "invalid_request");
}

#[actix_web::test]
async fn client_id_in_body_contradicting_basic_is_refused() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let other = app.add_service_client().await;
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &other.client_id),
            ],
            client.basic(),
        )
        .await;
    r.assert_oauth_error(400, "invalid_request");
}

#[actix_web::test]
async fn malformed_basic_header_is_invalid_client() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let b64 = |s: &str| STANDARD.encode(s);
    let cases = [
        "Basic !!!not-base64!!!".to_owned(),
        format!("Basic {}", b64("no-colon-here")),
        format!("Basic {}", b64(&format!(":{}", client.secret()))), // empty client_id
        format!("Basic {}", b64("id:%ZZ")),                         // bad percent-encoding
        format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', 0xfd])), // not UTF-8
        "Basic".to_owned(),
        "Basic ".to_owned(),
        format!("Bearer {}", client.secret()),
        "Digest username=\"x\"".to_owned(),
    ];
    for auth in cases {
        let r = app
            .post_token_raw("grant_type=client_credentials", FORM, Some(&auth))
            .await;
        r.assert_oauth_error(401, "invalid_client");
        let challenge = r
            .header("www-authenticate")
            .unwrap_or_else(|| panic!("{auth:?}: 401 without WWW-Authenticate"));
        assert!(challenge.starts_with("Basic"), "{auth:?}: {challenge}");
    }
}

#[actix_web::test]
async fn basic_credentials_are_form_urlencoded_before_base64() {
    // RFC 6749 §2.3.1: a client whose secret contained ':' or '+' must encode it; our secrets
    // are base64url, so check the encoded form of a real secret with a percent-encoded byte.
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let id_encoded: String = client
        .client_id
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{id_encoded}:{}", client.secret()))
    );
    let r = app
        .post_token_raw("grant_type=client_credentials", FORM, Some(&auth))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let lower = basic_header(&client.client_id, client.secret()).replacen("Basic", "basic", 1);
    let r = app
        .post_token_raw("grant_type=client_credentials", FORM, Some(&lower))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[actix_web::test]
async fn wrong_content_type_is_invalid_request() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let auth = basic_header(&client.client_id, client.secret());
    for ct in [
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-www-form-urlencoded-not"),
        None,
    ] {
        let body = if ct == Some("application/json") {
            r#"{"grant_type":"client_credentials"}"#
        } else {
            "grant_type=client_credentials"
        };
        let r = app.post_token_raw(body, ct, Some(&auth)).await;
        r.assert_oauth_error(400, "invalid_request");
    }
}

#[actix_web::test]
async fn oversized_body_is_invalid_request() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let auth = basic_header(&client.client_id, client.secret());
    // Just over 16 KiB, made of many small (individually acceptable) parameters.
    let mut body = String::from("grant_type=client_credentials");
    let mut i = 0;
    while body.len() <= 16 * 1024 {
        body.push_str(&format!("&x{i}=y"));
        i += 1;
    }
    let r = app.post_token_raw(body, FORM, Some(&auth)).await;
    r.assert_oauth_error(400, "invalid_request");

    // Far larger (1 MiB): refused early, still not a 5xx.
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(1 << 20));
    let r = app.post_token_raw(big, FORM, Some(&auth)).await;
    r.assert_oauth_error(400, "invalid_request");

    // The server is still healthy afterwards.
    assert_eq!(app.access_token_for(&client).await.split('.').count(), 3);
}

#[actix_web::test]
async fn body_just_under_the_limit_is_accepted() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let auth = basic_header(&client.client_id, client.secret());
    let mut body = String::from("grant_type=client_credentials");
    let mut i = 0;
    while body.len() < 16 * 1024 - 32 {
        body.push_str(&format!("&x{i}=y"));
        i += 1;
    }
    let r = app.post_token_raw(body, FORM, Some(&auth)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "unknown parameters within the limit are ignored: {}",
        r.text()
    );
}

#[actix_web::test]
async fn oversized_chunked_body_without_content_length_is_invalid_request() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let auth = basic_header(&client.client_id, client.secret());
    let mut req = format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.port
    )
    .into_bytes();
    let first = b"grant_type=client_credentials&pad=";
    req.extend_from_slice(format!("{:x}\r\n", first.len()).as_bytes());
    req.extend_from_slice(first);
    req.extend_from_slice(b"\r\n");
    for _ in 0..20 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b'a'; 0x400]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, headers, body) = app.raw_http(req).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(
        headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{headers:?}"
    );
    // The body may be chunked too; the JSON object is inside either way.
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(r#""error":"invalid_request""#), "{text}");
}

#[actix_web::test]
async fn overlong_parameter_is_invalid_request() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let long = "s".repeat(8 * 1024);
    let r = app
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", &long)],
            client.basic(),
        )
        .await;
    r.assert_oauth_error(400, "invalid_request");
}

#[actix_web::test]
async fn garbage_bodies_get_json_4xx() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let auth = basic_header(&client.client_id, client.secret());
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"&&&===&&&".to_vec(),
        b"%".to_vec(),
        b"%%%%%%".to_vec(),
        b"grant_type=%".to_vec(),
        b"grant_type=%zz".to_vec(),
        b"grant_type=%FF%FE".to_vec(),
        b"\xff\xfe\xfd\x00\x01".to_vec(),
        b"grant_type=client_credentials\x00".to_vec(),
        b"grant_type=client_credentials&scope=%FF".to_vec(),
        b"grant_type=client_credentials&resource=%E2%82".to_vec(),
        "grant_type=client_credentials&scope=\u{1F512}"
            .as_bytes()
            .to_vec(),
        b"{\"grant_type\":\"client_credentials\"}".to_vec(),
        b"<xml/>".to_vec(),
    ];
    for body in bodies {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let r = app.post_token_raw(body, FORM, Some(&auth)).await;
        assert!(
            r.status.is_client_error(),
            "{shown:?}: expected a 4xx, got {}: {}",
            r.status,
            r.text()
        );
        assert_4xx_json(&r);
    }
}

#[actix_web::test]
async fn garbage_bodies_get_the_precise_error() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let auth = basic_header(&client.client_id, client.secret());
    let cases: [(&[u8], u16, &str); 6] = [
        (b"", 400, "invalid_request"),
        (b"\xff\xfe\xfd", 400, "invalid_request"),
        (b"grant_type=%FF%FE", 400, "unsupported_grant_type"),
        (
            b"grant_type=client_credentials&scope=%FF",
            400,
            "invalid_scope",
        ),
        (
            b"grant_type=client_credentials&resource=%E2%82",
            400,
            "invalid_target",
        ),
        (
            b"grant_type=client_credentials&scope=%22quoted%22",
            400,
            "invalid_scope",
        ),
    ];
    for (body, status, error) in cases {
        let r = app.post_token_raw(body.to_vec(), FORM, Some(&auth)).await;
        r.assert_oauth_error(status, error);
    }
}

#[actix_web::test]
async fn unknown_parameters_are_ignored() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("foo", "bar"),
                ("code_verifier", "x"),
                ("redirect_uri", "https://evil.example/cb"),
                ("nonce", "n"),
                ("", "empty-name"),
                ("empty-value", ""),
            ],
            client.basic(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[actix_web::test]
async fn get_on_token_endpoint_is_not_a_5xx() {
    let app = TestApp::spawn().await;
    let r = app.get("/token?grant_type=client_credentials").await;
    assert!(
        r.status == StatusCode::METHOD_NOT_ALLOWED || r.status == StatusCode::NOT_FOUND,
        "GET /token: {}",
        r.status
    );
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = app
            .http
            .request(method.clone(), app.url("/token"))
            .send()
            .await
            .expect("request");
        assert!(
            r.status() == StatusCode::METHOD_NOT_ALLOWED || r.status() == StatusCode::NOT_FOUND,
            "{method} /token: {}",
            r.status()
        );
    }
}

#[actix_web::test]
async fn credentials_in_the_query_string_are_not_used() {
    // RFC 6749 §2.3.1: credentials only in the body or the Authorization header.
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app
        .http
        .post(app.url(&format!(
            "/token?client_id={}&client_secret={}",
            client.client_id,
            client.secret()
        )))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("request");
    let r = Resp::read(r).await;
    r.assert_oauth_error(401, "invalid_client");
}

#[actix_web::test]
async fn forged_and_unusual_headers_do_not_cause_5xx() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let huge = format!("Basic {}", "A".repeat(7000));
    let cases = [huge.as_str(), "Basic ====", "Basic YQ==", " Basic x", "\t"];
    for auth in cases {
        let r = app
            .post_token_raw("grant_type=client_credentials", FORM, Some(auth))
            .await;
        assert!(
            r.status.is_client_error(),
            "{auth:.40?}: {}: {}",
            r.status,
            r.text()
        );
    }
    // Still serving.
    app.access_token_for(&client).await;
}

#[actix_web::test]
async fn error_description_never_echoes_raw_input() {
    // Values holding '"', '\' and non-ASCII in the parameters the server reports on: the
    // descriptions use only the characters RFC 6749 §5.2 allows (assert_oauth_error checks
    // the character set).
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let auth = basic_header(&client.client_id, client.secret());
    let r = app
        .post_token_raw("grant_type=%22x%5C%E2%82%AC", FORM, Some(&auth))
        .await;
    r.assert_oauth_error(400, "unsupported_grant_type");
    let r = app
        .post_token_raw(
            "grant_type=client_credentials&scope=%22x%5C%E2%82%AC",
            FORM,
            Some(&auth),
        )
        .await;
    r.assert_oauth_error(400, "invalid_scope");
    let r = app
        .post_token_raw(
            "grant_type=client_credentials&resource=%22x%5C%E2%82%AC",
            FORM,
            Some(&auth),
        )
        .await;
    r.assert_oauth_error(400, "invalid_target");
}

#[actix_web::test]
async fn repeated_unknown_parameters_are_ignored() {
    // RFC 6749 §3.2: "The authorization server MUST ignore unrecognized request parameters."
    // The no-repeat rule protects parameters the server acts on; one it does not know cannot
    // be ambiguous, so repeating it must not change the outcome.
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let r = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("foo", "1"),
                ("foo", "2"),
            ],
            client.basic(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
