//! A second factor after the password (issue 19): enrolment from the account page (QR code,
//! one confirming code, recovery codes shown once), the one-time-code step of the sign-in,
//! a wrong, an old and a replayed code refused, a recovery code used once, and the policy:
//! a client's `require_mfa`, `acr_values` and RFC 9470 step-up, with `amr`/`acr` in the tokens.

use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::browser::{
    Browser, Mobile, PASSWORD, authorize_path, exchange, hidden, location_params, pkce, setup,
};
use crate::helpers::{Resp, TestApp, jwt_parts, now};
use crate::passkeys::account_page;

fn totp_for(secret_b32: &str) -> totp_rs::Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret_b32).expect("base32 secret"))
        .build()
        .expect("totp")
}

fn code_at(secret_b32: &str, t: i64) -> String {
    totp_for(secret_b32).generate(t as u64).to_string()
}

/// Turns on the authenticator app for the signed-in account browser; the secret and the
/// recovery codes.
async fn enrol(b: &mut Browser<'_>) -> (String, Vec<String>) {
    let page = b.get("/account/totp").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("<svg"), "a QR code");
    let secret = crate::browser::text_by_id(&page, "totp-secret");
    // A wrong first code is refused and nothing is stored.
    let r = b
        .post(
            "/account/totp",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("sealed", &hidden(&page, "sealed")),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = b
        .post(
            "/account/totp",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("sealed", &hidden(&page, "sealed")),
                ("code", &code_at(&secret, now() - 30)),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("shown only now"), "{}", r.text());
    let html = r.text();
    let codes: Vec<String> = html
        .split("<li>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{html}");
    (secret, codes)
}

/// Starts the app's sign-in with a password in a fresh browser: the page after the password.
async fn after_password<'a>(
    app: &'a TestApp,
    m: &Mobile,
    challenge: &str,
    extra: &[(&str, &str)],
) -> (Browser<'a>, Resp) {
    let mut b = Browser::new(app);
    let r = b
        .get(&authorize_path(&m.client.client_id, challenge, extra))
        .await;
    let r = b.login(&r, &m.username, PASSWORD).await;
    (b, r)
}

async fn send_code(b: &mut Browser<'_>, page: &Resp, code: &str) -> Resp {
    b.post(
        "/authorize/login",
        &[
            ("csrf", &hidden(page, "csrf")),
            ("request", &hidden(page, "request")),
            ("ticket", &hidden(page, "ticket")),
            ("code", code),
        ],
    )
    .await
}

async fn tokens(app: &TestApp, m: &Mobile, b: &mut Browser<'_>, r: Resp, verifier: &str) -> Value {
    let mut r = r;
    if r.status == StatusCode::OK && r.text().contains("decision") {
        r = b.consent(&r, "allow").await;
    }
    let (_, p) = location_params(&r);
    let code = p
        .get("code")
        .unwrap_or_else(|| panic!("no code: {} {}", r.status, r.text()));
    let t = exchange(app, &m.client.client_id, code, verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());
    t.json()
}

#[track_caller]
fn assert_otp_refused(r: &Resp, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text());
    assert!(
        r.text().contains("name=\"ticket\""),
        "{what}: the code page again"
    );
}

#[actix_web::test]
async fn password_and_code_sign_in_with_replays_and_recovery_codes() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let mut acct = Browser::new(&app);
    account_page(&app, &mut acct, "alice").await;
    let (secret, recovery) = enrol(&mut acct).await;
    let page = acct.get("/account").await;
    assert!(
        page.text().contains("10 recovery codes left"),
        "{}",
        page.text()
    );

    // The password alone no longer signs in: the code page comes, with no session yet.
    let (verifier, challenge) = pkce();
    let (mut b, r) = after_password(&app, &m, &challenge, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Enter your code"), "{}", r.text());
    assert!(r.header("location").is_none());
    for (what, code) in [
        ("a wrong code", "123456".to_owned()),
        ("an old code", code_at(&secret, now() - 120)),
        ("a code from the future", code_at(&secret, now() + 120)),
        ("not digits", "abcdef".to_owned()),
    ] {
        let r2 = send_code(&mut b, &r, &code).await;
        assert_otp_refused(&r2, what);
    }
    let forged = b
        .post(
            "/authorize/login",
            &[
                ("csrf", &hidden(&r, "csrf")),
                ("request", &hidden(&r, "request")),
                ("ticket", "forged"),
                ("code", &code_at(&secret, now())),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "a forged ticket");
    assert!(forged.text().contains("Sign in again"), "{}", forged.text());
    let code = code_at(&secret, now());
    let ok = send_code(&mut b, &r, &code).await;
    let t = tokens(&app, &m, &mut b, ok, &verifier).await;
    let (_, id) = jwt_parts(t["id_token"].as_str().expect("id_token"));
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]), "{id}");
    assert_eq!(id["acr"], "mfa");

    // The same code again (another sign-in within its window): refused.
    let (_, challenge) = pkce();
    let (mut b, r) = after_password(&app, &m, &challenge, &[]).await;
    assert_otp_refused(&send_code(&mut b, &r, &code).await, "a replayed code");

    // A recovery code works once, in any case and with spaces.
    let (verifier, challenge) = pkce();
    let (mut b, r) = after_password(&app, &m, &challenge, &[]).await;
    let ok = send_code(&mut b, &r, &format!(" {} ", recovery[0].to_uppercase())).await;
    let t = tokens(&app, &m, &mut b, ok, &verifier).await;
    let (_, id) = jwt_parts(t["id_token"].as_str().expect("id_token"));
    assert_eq!(id["acr"], "mfa");
    let (_, challenge) = pkce();
    let (mut b, r) = after_password(&app, &m, &challenge, &[]).await;
    assert_otp_refused(
        &send_code(&mut b, &r, &recovery[0]).await,
        "a used recovery code",
    );
    let page = acct.get("/account").await;
    assert!(
        page.text().contains("9 recovery codes left"),
        "{}",
        page.text()
    );

    // Wrong codes are throttled like passwords: the account's budget runs out.
    let (_, challenge) = pkce();
    let (mut b, r) = after_password(&app, &m, &challenge, &[]).await;
    let mut throttled = false;
    for _ in 0..60 {
        let r2 = send_code(&mut b, &r, "000000").await;
        if r2.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r2.header("retry-after").is_some());
            throttled = true;
            break;
        }
    }
    assert!(throttled, "wrong codes must be throttled");

    let log = app.cli(&["audit", "--json"], None).await.stdout;
    for ev in ["totp.enrolled", "login.factor"] {
        assert!(log.contains(ev), "audit has {ev}");
    }
    assert!(
        log.contains("\"replayed\""),
        "a replayed code is audited: {log}"
    );
}

#[actix_web::test]
async fn require_mfa_acr_values_and_step_up_are_enforced() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let strict = app
        .add_client(&[
            "--name",
            "Bank app",
            "--type",
            "public",
            "--redirect-uri",
            crate::browser::REDIRECT,
            "--grant",
            "authorization_code",
            "--scope",
            crate::browser::SCOPE,
            "--first-party",
            "--require-mfa",
        ])
        .await;
    let bank = Mobile {
        client: strict,
        username: "alice".into(),
        sub: m.sub.clone(),
    };
    // Alice has only a password: the strict app refuses her, the other app lets her in.
    let (_, challenge) = pkce();
    let (_, r) = after_password(&app, &bank, &challenge, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(
        r.text().contains("needs more than a password"),
        "{}",
        r.text()
    );
    assert!(r.header("location").is_none(), "no code");

    // The relaxed app, with a password: acr pwd. A resource server wanting `mfa` answers
    // RFC 9470 insufficient_user_authentication; the app asks again with acr_values=mfa.
    let (verifier, challenge) = pkce();
    let (mut b, r) = after_password(&app, &m, &challenge, &[]).await;
    let t = tokens(&app, &m, &mut b, r, &verifier).await;
    let (_, at) = jwt_parts(t["access_token"].as_str().expect("at"));
    assert_eq!(at["acr"], "pwd");
    assert_eq!(at["amr"], json!(["pwd"]));
    // The resource server (latchkey-verify) asks for more: RFC 9470's challenge.
    let verifier = latchkey_verify::Verifier::builder(&app.issuer, crate::helpers::API)
        .allow_insecure_http(true)
        .build()
        .await
        .expect("verifier");
    let claims = verifier
        .verify(t["access_token"].as_str().expect("at"))
        .await
        .expect("a valid token");
    let refused = claims
        .require_user_authentication(&["mfa", "phr"], None, now() as u64)
        .expect_err("a password is not enough here");
    assert_eq!(refused.status(), 401);
    let challenge = refused.www_authenticate();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"mfa phr\""),
        "{challenge}"
    );
    // Same browser (signed in with a password): acr_values=mfa does not pass silently.
    let (_, challenge) = pkce();
    let r = b
        .get(&authorize_path(
            &m.client.client_id,
            &challenge,
            &[("acr_values", "mfa")],
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        r.text().contains("name=\"password\""),
        "sign in again: {}",
        r.text()
    );
    assert!(r.text().contains("two-step sign-in"), "{}", r.text());
    // prompt=none cannot step up silently.
    let r = b
        .get(&authorize_path(
            &m.client.client_id,
            &challenge,
            &[("acr_values", "mfa"), ("prompt", "none")],
        ))
        .await;
    let (_, p) = location_params(&r);
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"));

    // Alice turns on the authenticator app; now both the step-up and the strict app work.
    let mut acct = Browser::new(&app);
    account_page(&app, &mut acct, "alice").await;
    let (secret, _) = enrol(&mut acct).await;
    let (verifier, challenge) = pkce();
    let (mut b, r) = after_password(&app, &m, &challenge, &[("acr_values", "mfa")]).await;
    let ok = send_code(&mut b, &r, &code_at(&secret, now())).await;
    let t = tokens(&app, &m, &mut b, ok, &verifier).await;
    let (_, at) = jwt_parts(t["access_token"].as_str().expect("at"));
    assert_eq!(at["acr"], "mfa");
    let rs = latchkey_verify::Verifier::builder(&app.issuer, crate::helpers::API)
        .allow_insecure_http(true)
        .build()
        .await
        .expect("verifier");
    let claims = rs
        .verify(t["access_token"].as_str().expect("at"))
        .await
        .expect("a valid token");
    claims
        .require_user_authentication(&["mfa", "phr"], Some(60), now() as u64)
        .expect("stepped up");
    // The session now satisfies the strict app without another sign-in.
    let (verifier, challenge) = pkce();
    let r = b
        .get(&authorize_path(&bank.client.client_id, &challenge, &[]))
        .await;
    let t = tokens(&app, &bank, &mut b, r, &verifier).await;
    let (_, id) = jwt_parts(t["id_token"].as_str().expect("id"));
    assert_eq!(id["acr"], "mfa");
    // But `phr` (a passkey) is more than a password and a code.
    let (_, challenge) = pkce();
    let (mut b, r) = after_password(&app, &m, &challenge, &[("acr_values", "phr")]).await;
    let r = send_code(&mut b, &r, &code_at(&secret, now() + 30)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("passkey"), "{}", r.text());

    let d = app.discovery().await.json();
    assert_eq!(d["acr_values_supported"], json!(["pwd", "mfa", "phr"]));
    assert!(
        d["claims_supported"]
            .as_array()
            .expect("claims")
            .contains(&json!("amr"))
    );
}

/// The enrolment form's sealed secret is bound to its user and its purpose: Bob cannot turn
/// on an authenticator with Alice's (a secret Alice's browser saw), a tampered one is refused,
/// and recovery codes cannot be made without an authenticator.
#[actix_web::test]
async fn enrolment_secrets_belong_to_their_user() {
    let app = TestApp::spawn().await;
    let _m = setup(&app, true).await;
    let out = app
        .cli(
            &["user", "add", "--username", "bob", "--password-stdin"],
            Some(PASSWORD),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut alice = Browser::new(&app);
    account_page(&app, &mut alice, "alice").await;
    let alice_page = alice.get("/account/totp").await;
    let secret = crate::browser::text_by_id(&alice_page, "totp-secret");
    let mut bob = Browser::new(&app);
    account_page(&app, &mut bob, "bob").await;
    let bob_page = bob.get("/account/totp").await;
    for (what, sealed) in [
        ("alice's sealed secret", hidden(&alice_page, "sealed")),
        (
            "a tampered one",
            format!("{}x", hidden(&bob_page, "sealed")),
        ),
        ("none", String::new()),
    ] {
        let r = bob
            .post(
                "/account/totp",
                &[
                    ("csrf", &hidden(&bob_page, "csrf")),
                    ("sealed", &sealed),
                    ("code", &code_at(&secret, now())),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.text());
        assert!(!r.text().contains("shown only now"), "{what}");
    }
    let page = bob.get("/account").await;
    assert!(
        page.text().contains("Set up an authenticator app"),
        "still off for bob"
    );
    let r = bob
        .post(
            "/account/recovery-codes",
            &[("csrf", &hidden(&page, "csrf"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}
