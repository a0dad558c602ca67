//! Silent authorization for native public clients (issue 18 finding 2, RFC 8252 §8.6). A
//! public client whose redirect is a loopback address or a private-use scheme cannot prove which
//! app is behind it: any app on the phone can send the same request, with its own PKCE pair,
//! and receive the code. So an earlier sign-in, an earlier consent or being first-party is not
//! enough: the user acts in the same request (password, consent, or one press on "Continue as
//! alice"), and `prompt=none` is `interaction_required`. A claimed `https` redirect (universal
//! links / app links) and a confidential client keep silent single sign-on.

use reqwest::StatusCode;

use crate::browser::{
    Browser, PASSWORD, REDIRECT, SCOPE, hidden, is_confirmation, location_params, pkce, setup,
};
use crate::helpers::{API, TestApp};

const CLAIMED: &str = "https://app.example.test/oauth/cb";

/// `/authorize?…` with PKCE S256 for this client and redirect, plus `extra`.
fn authorize(client_id: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let (_, challenge) = pkce();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid profile")
        .append_pair("state", "st-9")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/authorize?{}", q.finish())
}

fn error_of(r: &crate::helpers::Resp) -> Option<String> {
    location_params(r).1.get("error").cloned()
}

#[actix_web::test]
async fn a_native_public_client_never_gets_a_code_without_the_user() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await; // first-party: never a consent page
    let cid = m.client.client_id.as_str();
    let mut b = Browser::new(&app);
    // The sign-in itself is the user's interaction: the code comes straight back.
    let page = b
        .get(&authorize(cid, "http://127.0.0.1:40001/cb", &[]))
        .await;
    let r = b.login(&page, "alice", PASSWORD).await;
    assert!(location_params(&r).1.contains_key("code"), "{}", r.text());

    // Another app on the phone, a fresh PKCE pair, any loopback port or the private-use
    // scheme, prompt=none: no code, interaction_required (OIDC Core §3.1.2.6).
    for redirect in ["http://127.0.0.1:40002/cb", "com.example.app:/cb"] {
        let r = b
            .get(&authorize(cid, redirect, &[("prompt", "none")]))
            .await;
        let (base, p) = location_params(&r);
        assert_eq!(
            p.get("error").map(String::as_str),
            Some("interaction_required"),
            "{redirect}"
        );
        assert!(!p.contains_key("code"), "{redirect}");
        assert_eq!(base, redirect.split('?').next().unwrap_or(redirect));
        assert_eq!(p.get("state").map(String::as_str), Some("st-9"));
    }

    // Without prompt=none: a "Continue as alice" page naming the app, never a silent code.
    let confirm = b
        .get(&authorize(cid, "http://127.0.0.1:40004/cb", &[]))
        .await;
    assert!(
        is_confirmation(&confirm, "alice"),
        "{} {}",
        confirm.status,
        confirm.text()
    );
    assert!(confirm.header("location").is_none());
    assert!(
        confirm.text().contains("Continue to app?"),
        "{}",
        confirm.text()
    );
    // Cancel: access_denied, no code.
    let r = b.consent(&confirm, "deny").await;
    assert_eq!(error_of(&r).as_deref(), Some("access_denied"));
    // A forged CSRF token cannot press Continue for the user.
    let r = b
        .post(
            "/authorize/consent",
            &[
                ("csrf", "forged"),
                ("request", &hidden(&confirm, "request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A page from before sign-in carries no token bound to this session either.
    let other = Browser::new(&app)
        .get(&authorize(cid, "http://127.0.0.1:40004/cb", &[]))
        .await;
    let r = b
        .post(
            "/authorize/consent",
            &[
                ("csrf", &hidden(&other, "csrf")),
                ("request", &hidden(&confirm, "request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // "Use another account": the password form, for this same request.
    let r = b.consent(&confirm, "switch").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("name=\"password\""), "{}", r.text());
    // Continue: the code, to the redirect of this request.
    let r = b.consent(&confirm, "allow").await;
    let (base, p) = location_params(&r);
    assert_eq!(base, "http://127.0.0.1:40004/cb");
    assert!(p.contains_key("code"));
    // Pressing once is not remembered: the next request asks again.
    let r = b
        .get(&authorize(
            cid,
            "http://127.0.0.1:40005/cb",
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(error_of(&r).as_deref(), Some("interaction_required"));
}

#[actix_web::test]
async fn a_signed_out_or_unconsented_user_still_gets_the_earlier_errors() {
    // The new rule comes after login and consent: prompt=none without a session is still
    // login_required, and without consent still consent_required.
    let app = TestApp::spawn().await;
    let m = setup(&app, false).await; // third-party: consent needed
    let cid = m.client.client_id.as_str();
    let mut b = Browser::new(&app);
    let r = b
        .get(&authorize(
            cid,
            "http://127.0.0.1:40001/cb",
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(error_of(&r).as_deref(), Some("login_required"));
    let page = b
        .get(&authorize(cid, "http://127.0.0.1:40001/cb", &[]))
        .await;
    let consent = b.login(&page, "alice", PASSWORD).await;
    assert!(consent.text().contains(">Allow<"), "{}", consent.text());
    let r = b
        .get(&authorize(
            cid,
            "http://127.0.0.1:40001/cb",
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(error_of(&r).as_deref(), Some("consent_required"));
}

#[actix_web::test]
async fn claimed_https_redirects_and_confidential_clients_keep_single_sign_on() {
    let app = TestApp::spawn().await;
    setup(&app, true).await; // alice
    // A public app whose redirect is a claimed https link (bound to the app by the platform).
    let claimed = app
        .add_client(&[
            "--name",
            "claimed",
            "--type",
            "public",
            "--redirect-uri",
            CLAIMED,
            "--grant",
            "authorization_code",
            "--scope",
            SCOPE,
            "--audience",
            API,
            "--first-party",
        ])
        .await;
    // A confidential web client: it proves who it is when it redeems the code.
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
            "--first-party",
        ])
        .await;
    let mut b = Browser::new(&app);
    let page = b.get(&authorize(&claimed.client_id, CLAIMED, &[])).await;
    let r = b.login(&page, "alice", PASSWORD).await;
    assert!(location_params(&r).1.contains_key("code"), "{}", r.text());
    // Signed in: both get a code silently, prompt=none included.
    for (cid, redirect) in [(&claimed.client_id, CLAIMED), (&web.client_id, REDIRECT)] {
        for extra in [&[][..], &[("prompt", "none")][..]] {
            let r = b.get(&authorize(cid, redirect, extra)).await;
            let (base, p) = location_params(&r);
            assert_eq!(base, redirect);
            assert!(p.contains_key("code"), "{redirect} {extra:?}: {p:?}");
        }
    }
}
