//! Passkeys from outside (issue 19), over HTTP with a software authenticator written here
//! (P-256 through aws-lc-rs, `none` attestation, CBOR by hand): registration from the account
//! page and from an invitation link, sign-in with no username through the code + PKCE flow,
//! `amr`/`acr` in the tokens, and every forged answer refused with a clear page, never a 500:
//! wrong RP ID, wrong origin, a bad signature, a counter that did not go forward, a replayed
//! answer, another user's credential, a ceremony from another purpose, garbage.
//!
//! WebAuthn needs a domain name, so these servers' issuer is `http://localhost:PORT`.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, Mobile, PASSWORD, exchange, hidden, location_params, pkce, setup};
use crate::helpers::{Resp, TestApp, jwt_parts};

pub async fn spawn_localhost() -> TestApp {
    TestApp::spawn_with(|c| c.issuer = c.issuer.replace("127.0.0.1", "localhost")).await
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// CBOR byte string / text string headers (RFC 8949 §3.1), for lengths below 65536.
fn cbor_head(major: u8, len: usize, out: &mut Vec<u8>) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=255 => out.extend([m | 24, len as u8]),
        _ => out.extend([m | 25, (len >> 8) as u8, len as u8]),
    }
}

fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len(), out);
    out.extend_from_slice(b);
}

fn cbor_text(s: &str, out: &mut Vec<u8>) {
    cbor_head(3, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

/// A software authenticator holding resident P-256 credentials.
pub struct SoftKey {
    pub key: EcdsaKeyPair,
    pub cred_id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub counter: u32,
    pub rp_id: String,
    pub origin: String,
}

impl SoftKey {
    fn cose_key(&self) -> Vec<u8> {
        let pk = self.key.public_key().as_ref(); // 0x04 || x || y
        let mut c = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&pk[1..33], &mut c);
        c.push(0x22);
        cbor_bytes(&pk[33..65], &mut c);
        c
    }

    fn auth_data(&self, rp_id: &str, flags: u8, attested: bool) -> Vec<u8> {
        let mut a = sha256(rp_id.as_bytes());
        a.push(flags);
        a.extend(self.counter.to_be_bytes());
        if attested {
            a.extend([0u8; 16]); // AAGUID
            a.extend((self.cred_id.len() as u16).to_be_bytes());
            a.extend(&self.cred_id);
            a.extend(self.cose_key());
        }
        a
    }

    /// `navigator.credentials.create` for these options: a new credential, as WebAuthn JSON.
    pub fn create(options: &Value, origin: &str) -> (SoftKey, Value) {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().expect("rp.id").to_owned();
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        // 64 bytes: longer than the platforms' (16 to 32), as long as security keys' resident ones.
        let mut cred_id = vec![0u8; 64];
        aws_lc_rs::rand::SecureRandom::fill(&SystemRandom::new(), &mut cred_id).expect("random");
        let user_handle = B64
            .decode(pk["user"]["id"].as_str().expect("user.id"))
            .expect("user id");
        let k = SoftKey {
            key,
            cred_id,
            user_handle,
            counter: 0,
            rp_id: rp_id.clone(),
            origin: origin.to_owned(),
        };
        let client_data = json!({
            "type": "webauthn.create",
            "challenge": pk["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        // UP | UV | AT
        let auth = k.auth_data(&rp_id, 0x01 | 0x04 | 0x40, true);
        let mut att = vec![0xa3];
        cbor_text("fmt", &mut att);
        cbor_text("none", &mut att);
        cbor_text("attStmt", &mut att);
        att.push(0xa0);
        cbor_text("authData", &mut att);
        cbor_bytes(&auth, &mut att);
        let id = B64.encode(&k.cred_id);
        let cred = json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(client_data.as_bytes()),
                "attestationObject": B64.encode(&att),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        });
        (k, cred)
    }

    /// `navigator.credentials.get` for these options, with what a forger may change.
    pub fn assert_with(&mut self, options: &Value, f: Forge) -> Value {
        self.counter += 1;
        if let Some(c) = f.counter {
            self.counter = c;
        }
        let client_data = json!({
            "type": "webauthn.get",
            "challenge": options["publicKey"]["challenge"],
            "origin": f.origin.as_deref().unwrap_or(&self.origin),
            "crossOrigin": false,
        })
        .to_string();
        let rp = f.rp_id.clone().unwrap_or_else(|| self.rp_id.clone());
        let auth = self.auth_data(&rp, 0x01 | 0x04, false);
        let mut signed = auth.clone();
        signed.extend(sha256(client_data.as_bytes()));
        let mut sig = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .expect("sign")
            .as_ref()
            .to_vec();
        if f.bad_signature {
            let n = sig.len() - 1;
            sig[n] ^= 1;
        }
        let id = B64.encode(f.cred_id.as_deref().unwrap_or(&self.cred_id));
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(client_data.as_bytes()),
                "authenticatorData": B64.encode(&auth),
                "signature": B64.encode(&sig),
                "userHandle": B64.encode(f.user_handle.as_deref().unwrap_or(&self.user_handle)),
            },
            "clientExtensionResults": {},
        })
    }

    pub fn assert(&mut self, options: &Value) -> Value {
        self.assert_with(options, Forge::default())
    }
}

/// What a forged assertion changes.
#[derive(Default, Clone)]
pub struct Forge {
    pub rp_id: Option<String>,
    pub origin: Option<String>,
    pub bad_signature: bool,
    pub counter: Option<u32>,
    pub cred_id: Option<Vec<u8>>,
    pub user_handle: Option<Vec<u8>>,
}

/// The value of an attribute (HTML-unescaped) in `page`.
pub fn attr(page: &Resp, name: &str) -> String {
    let html = page.text();
    let marker = format!("{name}=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in: {html}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("closing quote");
    crate::browser::unescape(&html[start..end])
}

fn options(page: &Resp) -> Value {
    serde_json::from_str(&attr(page, "data-options")).expect("options JSON")
}

/// Signs in to `/account` with the password; the account page.
pub async fn account_page(app: &TestApp, b: &mut Browser<'_>, username: &str) -> Resp {
    let r = b.get("/account").await;
    let to = r.header("location").expect("location").to_owned();
    let r = b.get(&to).await;
    let r = b.login(&r, username, PASSWORD).await;
    let cb = r.header("location").expect("callback").to_owned();
    let cb = cb.strip_prefix(&app.issuer).expect("ours").to_owned();
    let r = b.get(&cb).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    b.get("/account").await
}

/// Adds a passkey from the account page; the authenticator holding it.
pub async fn add_passkey(app: &TestApp, b: &mut Browser<'_>, page: &Resp, name: &str) -> SoftKey {
    let (key, cred) = SoftKey::create(&options(page), &app.issuer);
    let r = b
        .post(
            "/account/passkeys",
            &[
                ("csrf", &hidden(page, "csrf")),
                ("ceremony", &hidden(page, "ceremony")),
                ("credential", &cred.to_string()),
                ("name", name),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Passkey added."), "{}", r.text());
    assert!(r.text().contains(name), "{}", r.text());
    key
}

/// Opens the app's authorization request in a fresh browser: the login page.
async fn login_page<'a>(app: &'a TestApp, m: &Mobile, challenge: &str) -> (Browser<'a>, Resp) {
    let mut b = Browser::new(app);
    let r = b
        .get(&crate::browser::authorize_path(
            &m.client.client_id,
            challenge,
            &[],
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Sign in with a passkey"), "{}", r.text());
    (b, r)
}

async fn post_assertion(b: &mut Browser<'_>, page: &Resp, credential: &str) -> Resp {
    b.post(
        "/authorize/login",
        &[
            ("csrf", &hidden(page, "csrf")),
            ("request", &hidden(page, "request")),
            ("ceremony", &hidden(page, "ceremony")),
            ("credential", credential),
        ],
    )
    .await
}

/// After a passkey sign-in: through "Continue as" if asked, to the code, to the tokens.
async fn finish(app: &TestApp, b: &mut Browser<'_>, m: &Mobile, r: Resp, verifier: &str) -> Value {
    let mut r = r;
    if r.status == StatusCode::OK && r.text().contains("decision") {
        r = b.consent(&r, "allow").await;
    }
    let (_, p) = location_params(&r);
    let code = p
        .get("code")
        .unwrap_or_else(|| panic!("no code: {}", r.text()));
    let t = exchange(app, &m.client.client_id, code, verifier).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());
    t.json()
}

#[track_caller]
fn assert_refused(r: &Resp, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text());
    assert!(r.text().contains("class=\"error\""), "{what}: {}", r.text());
    assert!(r.text().contains("Sign in"), "{what}: the login page again");
}

#[actix_web::test]
async fn a_passkey_signs_in_through_the_code_flow_and_tokens_say_so() {
    let app = spawn_localhost().await;
    let m = setup(&app, true).await;
    let mut acct = Browser::new(&app);
    let page = account_page(&app, &mut acct, "alice").await;
    assert!(page.text().contains("Add a passkey"), "{}", page.text());
    let mut key = add_passkey(&app, &mut acct, &page, "Work laptop").await;

    let (verifier, challenge) = pkce();
    let (mut b, page) = login_page(&app, &m, &challenge).await;
    let cred = key.assert(&options(&page));
    let r = post_assertion(&mut b, &page, &cred.to_string()).await;
    let tokens = finish(&app, &mut b, &m, r, &verifier).await;
    let (_, id) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id["sub"], m.sub.as_str());
    assert_eq!(id["acr"], "phr");
    assert_eq!(id["amr"], json!(["hwk", "user", "mfa"]), "{id}");
    let (_, at) = jwt_parts(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(at["acr"], "phr");
    assert_eq!(at["amr"], json!(["hwk", "user", "mfa"]));
    // A refresh keeps what the sign-in proved.
    let r = crate::browser::refresh(
        &app,
        &m.client.client_id,
        tokens["refresh_token"].as_str().expect("refresh"),
    )
    .await;
    let (_, at) = jwt_parts(r.json()["access_token"].as_str().expect("access_token"));
    assert_eq!(at["acr"], "phr");

    // The account page lists it with its last use; removing it ends passkey sign-in.
    let page = acct.get("/account").await;
    assert!(page.text().contains("Work laptop") && page.text().contains("last used"));
    let id = B64.encode(&key.cred_id);
    let r = acct
        .post(
            "/account/passkeys/remove",
            &[("csrf", &hidden(&page, "csrf")), ("credential_id", &id)],
        )
        .await;
    assert!(r.text().contains("Passkey removed."), "{}", r.text());
    let (_, challenge) = pkce();
    let (mut b, page) = login_page(&app, &m, &challenge).await;
    let r = post_assertion(&mut b, &page, &key.assert(&options(&page)).to_string()).await;
    assert_refused(&r, "a removed passkey");
    let log = app.cli(&["audit", "--json"], None).await.stdout;
    for ev in ["passkey.added", "passkey.removed", "login.factor"] {
        assert!(log.contains(ev), "audit has {ev}: {log}");
    }
}

#[actix_web::test]
async fn forged_passkey_answers_are_refused_with_a_page() {
    let app = spawn_localhost().await;
    let m = setup(&app, true).await;
    let mut acct = Browser::new(&app);
    let page = account_page(&app, &mut acct, "alice").await;
    let mut alice = add_passkey(&app, &mut acct, &page, "Phone").await;
    // Bob, with his own passkey.
    let out = app
        .cli(
            &["user", "add", "--username", "bob", "--password-stdin"],
            Some(PASSWORD),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut bacct = Browser::new(&app);
    let page = account_page(&app, &mut bacct, "bob").await;
    let mut bob = add_passkey(&app, &mut bacct, &page, "Bob phone").await;

    let evil_rp = Forge {
        rp_id: Some("evil.example".into()),
        ..Forge::default()
    };
    let evil_origin = Forge {
        origin: Some("https://evil.example".into()),
        ..Forge::default()
    };
    let bad_sig = Forge {
        bad_signature: true,
        ..Forge::default()
    };
    // Bob's credential id, claiming to be Alice's (signed by Bob's key).
    let bob_as_alice = Forge {
        user_handle: Some(alice.user_handle.clone()),
        ..Forge::default()
    };
    for (what, bobs, forge) in [
        ("another RP ID", false, evil_rp),
        ("another origin", false, evil_origin),
        ("a bad signature", false, bad_sig),
        ("another user's credential", true, bob_as_alice),
    ] {
        let (_, challenge) = pkce();
        let (mut b, page) = login_page(&app, &m, &challenge).await;
        let key = if bobs { &mut bob } else { &mut alice };
        let cred = key.assert_with(&options(&page), forge);
        let r = post_assertion(&mut b, &page, &cred.to_string()).await;
        assert_refused(&r, what);
    }

    // A counter that did not go forward (a cloned authenticator).
    let (verifier, challenge) = pkce();
    let (mut b, page) = login_page(&app, &m, &challenge).await;
    let fwd = Forge {
        counter: Some(10),
        ..Forge::default()
    };
    let r = post_assertion(
        &mut b,
        &page,
        &alice.assert_with(&options(&page), fwd).to_string(),
    )
    .await;
    let _ = finish(&app, &mut b, &m, r, &verifier).await;
    let (_, challenge) = pkce();
    let (mut b, page) = login_page(&app, &m, &challenge).await;
    let same = Forge {
        counter: Some(10),
        ..Forge::default()
    };
    let r = post_assertion(
        &mut b,
        &page,
        &alice.assert_with(&options(&page), same).to_string(),
    )
    .await;
    assert_refused(&r, "a replayed signature counter");

    // The same answer twice: the challenge is used up by the first.
    let (verifier, challenge) = pkce();
    let (mut b, page) = login_page(&app, &m, &challenge).await;
    let cred = alice.assert(&options(&page)).to_string();
    let r = post_assertion(&mut b, &page, &cred).await;
    let _ = finish(&app, &mut b, &m, r, &verifier).await;
    let (mut b2, page2) = login_page(&app, &m, &challenge).await;
    let r = b2
        .post(
            "/authorize/login",
            &[
                ("csrf", &hidden(&page2, "csrf")),
                ("request", &hidden(&page2, "request")),
                ("ceremony", &hidden(&page, "ceremony")),
                ("credential", &cred),
            ],
        )
        .await;
    assert_refused(&r, "a replayed answer");

    // Garbage, a tampered ceremony, a registration ceremony posted at sign-in.
    let (_, challenge) = pkce();
    let (mut b, page) = login_page(&app, &m, &challenge).await;
    for (what, ceremony, credential) in [
        (
            "garbage JSON",
            hidden(&page, "ceremony"),
            "{not json".to_owned(),
        ),
        (
            "an empty object",
            hidden(&page, "ceremony"),
            "{}".to_owned(),
        ),
        (
            "a tampered ceremony",
            format!("{}x", hidden(&page, "ceremony")),
            alice.assert(&options(&page)).to_string(),
        ),
        (
            "no ceremony",
            String::new(),
            alice.assert(&options(&page)).to_string(),
        ),
    ] {
        let r = b
            .post(
                "/authorize/login",
                &[
                    ("csrf", &hidden(&page, "csrf")),
                    ("request", &hidden(&page, "request")),
                    ("ceremony", &ceremony),
                    ("credential", &credential),
                ],
            )
            .await;
        assert_refused(&r, what);
    }
    let acct_page = acct.get("/account").await;
    let r = b
        .post(
            "/authorize/login",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("request", &hidden(&page, "request")),
                ("ceremony", &hidden(&acct_page, "ceremony")),
                ("credential", &alice.assert(&options(&page)).to_string()),
            ],
        )
        .await;
    assert_refused(&r, "a registration ceremony at sign-in");

    // A registration answer for another user's ceremony: sealed to Bob, posted by Alice.
    let bob_page = bacct.get("/account").await;
    let (_, cred) = SoftKey::create(&options(&bob_page), &app.issuer);
    let alice_page = acct.get("/account").await;
    let r = acct
        .post(
            "/account/passkeys",
            &[
                ("csrf", &hidden(&alice_page, "csrf")),
                ("ceremony", &hidden(&bob_page, "ceremony")),
                ("credential", &cred.to_string()),
                ("name", "stolen"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(!r.text().contains("stolen"), "{}", r.text());
    // A registration whose attestation names another RP.
    let mut opts = options(&alice_page);
    opts["publicKey"]["rp"]["id"] = "evil.example".into();
    let (_, cred) = SoftKey::create(&opts, &app.issuer);
    let r = acct
        .post(
            "/account/passkeys",
            &[
                ("csrf", &hidden(&alice_page, "csrf")),
                ("ceremony", &hidden(&alice_page, "ceremony")),
                ("credential", &cred.to_string()),
                ("name", "evil"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}

#[actix_web::test]
async fn an_invitation_makes_a_passkey_only_account() {
    let app = spawn_localhost().await;
    let m = setup(&app, true).await;
    let out = app
        .cli(&["user", "invite", "carol", "--create", "--json"], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let inv: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let url = inv["url"].as_str().expect("url");
    let path = url.strip_prefix(&app.issuer).expect("ours").to_owned();
    assert!(path.starts_with("/invite/"), "{path}");

    let mut b = Browser::new(&app);
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("carol") && page.text().contains("Create passkey"));
    let (mut key, cred) = SoftKey::create(&options(&page), &app.issuer);
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("ceremony", hidden(&page, "ceremony")),
        ("credential", cred.to_string()),
        ("name", "Carol's phone".into()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post(&path, &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Your passkey is ready"), "{}", r.text());
    // Single use: the link is gone, also for a second registration.
    let r = b.post(&path, &form).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(b.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        b.get("/invite/not-a-token").await.status,
        StatusCode::NOT_FOUND
    );

    // Carol signs in to the app with the passkey alone; she has no password.
    let carol = Mobile {
        client: m.client.clone(),
        username: "carol".into(),
        sub: inv["sub"].as_str().expect("sub").to_owned(),
    };
    let (verifier, challenge) = pkce();
    let (mut b, page) = login_page(&app, &carol, &challenge).await;
    let r = post_assertion(&mut b, &page, &key.assert(&options(&page)).to_string()).await;
    let tokens = finish(&app, &mut b, &carol, r, &verifier).await;
    let (_, id) = jwt_parts(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id["sub"], carol.sub.as_str());
    assert_eq!(id["acr"], "phr");
    for pw in ["", "x", PASSWORD] {
        let (_, challenge) = pkce();
        let (mut b, page) = login_page(&app, &carol, &challenge).await;
        let r = b.login(&page, "carol", pw).await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::BAD_REQUEST,
            "password {pw:?}: {}",
            r.text()
        );
    }
    // The CLI shows the passkey and removes it; a reset leaves nothing.
    let out = app.cli(&["user", "factors", "carol", "--json"], None).await;
    let f: Value = serde_json::from_str(&out.stdout).expect("factors JSON");
    assert_eq!(f["passkeys"][0]["name"], "Carol's phone", "{f}");
    let out = app.cli(&["user", "reset-factors", "carol"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = app.cli(&["user", "factors", "carol", "--json"], None).await;
    let f: Value = serde_json::from_str(&out.stdout).expect("factors JSON");
    assert_eq!(f["passkeys"], json!([]), "{f}");
    let log = app.cli(&["audit", "--json"], None).await.stdout;
    for ev in ["user.invited", "user.factors_reset", "passkey.added"] {
        assert!(log.contains(ev), "audit has {ev}");
    }
}

#[actix_web::test]
async fn an_ip_address_issuer_has_no_passkeys() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::new(&app);
    let r = b
        .get(&crate::browser::authorize_path(
            &m.client.client_id,
            &challenge,
            &[],
        ))
        .await;
    assert!(!r.text().contains("passkey-sign-in"), "{}", r.text());
    let r = b
        .post(
            "/authorize/login",
            &[
                ("csrf", &hidden(&r, "csrf")),
                ("request", &hidden(&r, "request")),
                ("ceremony", "x"),
                ("credential", "{}"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(
        r.text().contains("Passkeys are not available"),
        "{}",
        r.text()
    );
}

/// The admin API's side: a user's factors, an enrolment link, removing a passkey, a reset;
/// each needs an admin token, each is audited, and a wrong user or passkey is a 404.
#[actix_web::test]
async fn the_admin_api_lists_invites_and_resets_factors() {
    use crate::admin_api::{admin_token, call};
    use reqwest::Method;
    let app = spawn_localhost().await;
    let m = setup(&app, true).await;
    let mut acct = Browser::new(&app);
    let page = account_page(&app, &mut acct, "alice").await;
    let key = add_passkey(&app, &mut acct, &page, "Phone").await;
    let (_, token) = admin_token(&app).await;
    let base = format!("/admin/v1/users/{}", m.sub);

    let f = call(
        &app,
        Method::GET,
        &format!("{base}/factors"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.text());
    assert_eq!(f.json()["passkeys"][0]["name"], "Phone");
    assert_eq!(f.json()["totp"], Value::Null);
    let r = call(&app, Method::GET, &format!("{base}/factors"), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &app,
        Method::GET,
        "/admin/v1/users/nobody/factors",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = call(
        &app,
        Method::DELETE,
        &format!("{base}/passkeys/nope"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let id = B64.encode(&key.cred_id);
    let r = call(
        &app,
        Method::DELETE,
        &format!("{base}/passkeys/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let f = call(
        &app,
        Method::GET,
        &format!("{base}/factors"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(f.json()["passkeys"], json!([]));

    let r = call(
        &app,
        Method::POST,
        &format!("{base}/invitation"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let url = r.json()["url"].as_str().expect("url").to_owned();
    let path = url.strip_prefix(&app.issuer).expect("ours").to_owned();
    let mut b = Browser::new(&app);
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("alice"));

    let r = call(
        &app,
        Method::POST,
        &format!("{base}/factors/reset"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let log = app.cli(&["audit", "--json"], None).await.stdout;
    for ev in ["user.invited", "user.factors_reset", "passkey.removed"] {
        assert!(log.contains(ev), "audit has {ev}");
    }
    assert!(!log.contains(&url), "the link itself is never audited");

    // A passkey-only user made through the API (no password), invited the same way.
    let r = call(
        &app,
        Method::POST,
        "/admin/v1/users",
        Some(&token),
        Some(json!({ "username": "frank" })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let frank = r.json()["sub"].as_str().expect("sub").to_owned();
    let r = call(
        &app,
        Method::POST,
        &format!("/admin/v1/users/{frank}/invitation"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let (_, challenge) = pkce();
    let (mut b, page) = login_page(&app, &m, &challenge).await;
    let r = b.login(&page, "frank", "").await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "no password to sign in with"
    );
}

/// An account holds up to ten passkeys (each listed in the next registration's sealed state,
/// which must fit in a form field); the eleventh is refused with a message, and all ten sign in.
#[actix_web::test]
async fn ten_passkeys_fit_and_the_eleventh_is_refused() {
    let app = spawn_localhost().await;
    let m = setup(&app, true).await;
    let mut acct = Browser::new(&app);
    let mut page = account_page(&app, &mut acct, "alice").await;
    let mut keys = vec![];
    for i in 0..10 {
        keys.push(add_passkey(&app, &mut acct, &page, &format!("key {i}")).await);
        page = acct.get("/account").await;
    }
    assert!(
        !page.text().contains("Add a passkey"),
        "no registration offered at the limit"
    );
    assert!(
        page.text()
            .contains("as many passkeys as an account may have")
    );
    let r = acct
        .post(
            "/account/passkeys",
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("ceremony", "x"),
                ("credential", "{}"),
                ("name", "eleven"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let (verifier, challenge) = pkce();
    let (mut b, page) = login_page(&app, &m, &challenge).await;
    let last = keys.last_mut().expect("ten");
    let r = post_assertion(&mut b, &page, &last.assert(&options(&page)).to_string()).await;
    let t = finish(&app, &mut b, &m, r, &verifier).await;
    assert!(t["id_token"].is_string());
}

/// The app-association files come from configuration only: 404 without it, exactly the
/// configured apps with it.
#[actix_web::test]
async fn app_association_files_list_only_the_configured_apps() {
    let app = TestApp::spawn().await;
    for path in [
        "/.well-known/apple-app-site-association",
        "/.well-known/assetlinks.json",
    ] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let app = TestApp::spawn_with(|c| {
        c.apple_app_ids = vec!["ABCDE12345.com.example.app".into()];
        c.android_apps = vec!["com.example.app:14:6D:E9:83".into()];
    })
    .await;
    let aasa = app.get("/.well-known/apple-app-site-association").await;
    assert_eq!(aasa.status, StatusCode::OK);
    assert_eq!(
        aasa.json(),
        json!({ "webcredentials": { "apps": ["ABCDE12345.com.example.app"] } })
    );
    let links = app.get("/.well-known/assetlinks.json").await.json();
    assert_eq!(links[0]["target"]["package_name"], "com.example.app");
    assert_eq!(
        links[0]["target"]["sha256_cert_fingerprints"],
        json!(["14:6D:E9:83"])
    );
    assert_eq!(links.as_array().map(Vec::len), Some(1));
}
