//! RFC 9449 DPoP against the real server: bound tokens from every grant, refresh binding,
//! userinfo and introspection, and every refusal with its exact RFC error (never a 5xx):
//! stolen token as Bearer, another URL or method, replay (also across two servers on one
//! database), too old / future proofs, private keys and symmetric algorithms, nonces.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, REDIRECT_PORT, obtain_code, pkce, setup};
use crate::helpers::{API, Resp, TestApp, TestClient, jwt_parts, now, rfc7638_thumbprint};

/// A client's DPoP key (P-256) and the proofs it makes.
pub struct DpopKey {
    kp: EcdsaKeyPair,
    pub jwk: Value,
}

impl DpopKey {
    pub fn new() -> DpopKey {
        Self::of(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key"))
    }

    /// The key of a PKCS #8 document (shared with an rcgen certificate, say).
    pub fn from_pkcs8(pkcs8: &[u8]) -> DpopKey {
        Self::of(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).expect("P-256 key"),
        )
    }

    fn of(kp: EcdsaKeyPair) -> DpopKey {
        let p = kp.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]),
        });
        DpopKey { kp, jwk }
    }

    /// The whole key as a JWK, private scalar `d` included (for a third-party client that
    /// signs with it, such as openid-client's `PrivateKeyJwt`).
    pub fn private_jwk(&self) -> Value {
        use aws_lc_rs::encoding::AsBigEndian;
        let d = self.kp.private_key().as_be_bytes().expect("private scalar");
        let mut jwk = self.jwk.clone();
        jwk["d"] = json!(URL_SAFE_NO_PAD.encode(d.as_ref()));
        jwk
    }

    /// RFC 7638 thumbprint, computed independently of the server.
    pub fn jkt(&self) -> String {
        rfc7638_thumbprint(&self.jwk)
    }

    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
    }

    /// A fresh proof for `method` `url` (random jti, iat now), with `ath` for `access_token`.
    pub fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        self.proof_claims(claims(method, url, access_token, None))
    }

    pub fn proof_claims(&self, claims: Value) -> String {
        self.sign(&self.header(), &claims)
    }

    /// Signs exactly this header and these claims with this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .kp
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

/// Proof claims: random jti, iat now, optional ath and nonce.
pub fn claims(method: &str, url: &str, access_token: Option<&str>, nonce: Option<&str>) -> Value {
    let mut c = json!({
        "jti": latchkey::secret::random_token(16),
        "htm": method,
        "htu": url,
        "iat": now(),
    });
    if let Some(t) = access_token {
        c["ath"] = json!(URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            t.as_bytes()
        )));
    }
    if let Some(n) = nonce {
        c["nonce"] = json!(n);
    }
    c
}

/// `POST /token` with a form, optional Basic credentials and optional DPoP proof.
pub async fn token_request(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    proof: Option<&str>,
) -> Resp {
    let mut req = app.http.post(app.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.header("authorization", crate::helpers::basic_header(id, secret));
    }
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    Resp::read(req.send().await.expect("POST /token")).await
}

/// `GET /userinfo` with this Authorization value and optional proof.
async fn userinfo(app: &TestApp, authorization: &str, proof: Option<&str>) -> Resp {
    let mut req = app
        .http
        .get(app.url("/userinfo"))
        .header("authorization", authorization);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    Resp::read(req.send().await.expect("GET /userinfo")).await
}

fn token_url(app: &TestApp) -> String {
    format!("{}/token", app.issuer)
}

fn userinfo_url(app: &TestApp) -> String {
    format!("{}/userinfo", app.issuer)
}

/// A client_credentials request for `client` with this proof.
async fn service_token(app: &TestApp, client: &TestClient, proof: Option<&str>) -> Resp {
    token_request(
        app,
        &[("grant_type", "client_credentials")],
        client.basic(),
        proof,
    )
    .await
}

/// Asserts a 401 from a protected resource: this RFC error, and a `WWW-Authenticate` challenge
/// of `scheme` carrying it.
#[track_caller]
fn assert_resource_refusal(r: &Resp, scheme: &str, error: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert_eq!(r.json()["error"], error, "{}", r.text());
    let challenges: Vec<&str> = r
        .headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with(&format!("{scheme} "))
                && c.contains(&format!("error=\"{error}\""))),
        "{challenges:?}"
    );
    if scheme == "DPoP" {
        assert!(
            challenges.iter().any(|c| c.contains("algs=\"ES256")),
            "{challenges:?}"
        );
    }
}

/// The public app's full login with a DPoP proof at the code exchange: the token response.
async fn dpop_login(app: &TestApp, m: &crate::browser::Mobile, key: &DpopKey) -> Value {
    let mut b = Browser::new(app);
    let (verifier, challenge) = pkce();
    let code = obtain_code(app, &mut b, m, &challenge).await;
    let r = token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_PORT),
            ("client_id", &m.client.client_id),
            ("code_verifier", &verifier),
        ],
        None,
        Some(&key.proof("POST", &token_url(app), None)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

async fn refresh_with(
    app: &TestApp,
    m: &crate::browser::Mobile,
    rt: &str,
    proof: Option<&str>,
) -> Resp {
    token_request(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &m.client.client_id),
        ],
        None,
        proof,
    )
    .await
}

#[actix_web::test]
async fn discovery_advertises_the_proof_algorithms() {
    let app = TestApp::spawn().await;
    let meta = app.discovery().await.json();
    let algs: Vec<&str> = meta["dpop_signing_alg_values_supported"]
        .as_array()
        .expect("dpop_signing_alg_values_supported")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        algs.contains(&"ES256") && algs.contains(&"EdDSA"),
        "{algs:?}"
    );
    assert!(
        !algs.iter().any(|a| a.starts_with("HS") || *a == "none"),
        "{algs:?}"
    );
}

#[actix_web::test]
async fn code_flow_binds_access_and_refresh_tokens_and_a_stolen_token_is_useless() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let key = DpopKey::new();
    let tokens = dpop_login(&app, &m, &key).await;
    assert_eq!(tokens["token_type"], "DPoP");
    let at = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let (_, claims) = jwt_parts(&at);
    assert_eq!(claims["cnf"]["jkt"], key.jkt(), "{claims}");

    // The holder: DPoP scheme, a proof with ath → the claims.
    let ok = userinfo(
        &app,
        &format!("DPoP {at}"),
        Some(&key.proof("GET", &userinfo_url(&app), Some(&at))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["sub"], m.sub.as_str());

    // A thief with the token only: as a bearer token it is refused...
    let stolen = userinfo(&app, &format!("Bearer {at}"), None).await;
    assert_resource_refusal(&stolen, "Bearer", "invalid_token");
    // ... with the DPoP scheme but no proof, or a proof of the thief's own key, too.
    let no_proof = userinfo(&app, &format!("DPoP {at}"), None).await;
    assert_resource_refusal(&no_proof, "DPoP", "invalid_dpop_proof");
    let thief = DpopKey::new();
    let wrong_key = userinfo(
        &app,
        &format!("DPoP {at}"),
        Some(&thief.proof("GET", &userinfo_url(&app), Some(&at))),
    )
    .await;
    assert_resource_refusal(&wrong_key, "DPoP", "invalid_token");
    // A proof without ath, with another token's ath, for POST, or for the token endpoint.
    for bad in [
        key.proof("GET", &userinfo_url(&app), None),
        key.proof("GET", &userinfo_url(&app), Some("another.access.token")),
        key.proof("POST", &userinfo_url(&app), Some(&at)),
        key.proof("GET", &token_url(&app), Some(&at)),
    ] {
        let r = userinfo(&app, &format!("DPoP {at}"), Some(&bad)).await;
        assert_resource_refusal(&r, "DPoP", "invalid_dpop_proof");
    }
    // A replayed proof.
    let once = key.proof("GET", &userinfo_url(&app), Some(&at));
    let first = userinfo(&app, &format!("DPoP {at}"), Some(&once)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let again = userinfo(&app, &format!("DPoP {at}"), Some(&once)).await;
    assert_resource_refusal(&again, "DPoP", "invalid_dpop_proof");

    // Introspection tells a resource server the binding (RFC 9449 §6.2).
    let rs = app.add_service_client().await;
    let r = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&rs.client_id, rs.client_secret.as_deref())
        .form(&[("token", at.as_str())])
        .send()
        .await
        .expect("introspect");
    let intro: Value = r.json().await.expect("json");
    assert_eq!(intro["active"], true, "{intro}");
    assert_eq!(intro["token_type"], "DPoP");
    assert_eq!(intro["cnf"]["jkt"], key.jkt());

    // The refresh token is bound too: no proof, or another key's, is refused and costs the
    // holder nothing; the holder's key refreshes.
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    refresh_with(&app, &m, rt, None)
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    refresh_with(
        &app,
        &m,
        rt,
        Some(&thief.proof("POST", &token_url(&app), None)),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    let r = refresh_with(
        &app,
        &m,
        rt,
        Some(&key.proof("POST", &token_url(&app), None)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let refreshed = r.json();
    assert_eq!(refreshed["token_type"], "DPoP");
    let (_, c2) = jwt_parts(refreshed["access_token"].as_str().expect("at"));
    assert_eq!(c2["cnf"]["jkt"], key.jkt());
    // The rotated-out token presented by a thief (without the key) does not revoke the family.
    refresh_with(
        &app,
        &m,
        rt,
        Some(&thief.proof("POST", &token_url(&app), None)),
    )
    .await
    .assert_oauth_error(400, "invalid_grant");
    let rt2 = refreshed["refresh_token"].as_str().expect("rt2");
    let r = refresh_with(
        &app,
        &m,
        rt2,
        Some(&key.proof("POST", &token_url(&app), None)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[actix_web::test]
async fn without_a_proof_tokens_stay_bearer_tokens() {
    let app = TestApp::spawn().await;
    let svc = app.add_service_client().await;
    let r = service_token(&app, &svc, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["token_type"], "Bearer");
    let (_, claims) = jwt_parts(r.json()["access_token"].as_str().expect("at"));
    assert!(claims.get("cnf").is_none(), "{claims}");
    // An unbound token is not accepted with the DPoP scheme.
    let m = setup(&app, true).await;
    let tokens = crate::browser::login_tokens(&app, &m).await;
    let at = tokens["access_token"].as_str().expect("at");
    let r = userinfo(
        &app,
        &format!("DPoP {at}"),
        Some(&DpopKey::new().proof("GET", &userinfo_url(&app), Some(at))),
    )
    .await;
    assert_resource_refusal(&r, "DPoP", "invalid_token");
    // No credentials at all: a bare challenge per scheme, no error.
    let r = Resp::read(
        app.http
            .get(app.url("/userinfo"))
            .send()
            .await
            .expect("userinfo"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenges: Vec<&str> = r
        .headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[1].starts_with("DPoP ") && !challenges[1].contains("error="));
}

#[actix_web::test]
async fn client_credentials_with_a_proof_is_bound_and_every_bad_proof_gets_invalid_dpop_proof() {
    let app = TestApp::spawn().await;
    let svc = app.add_service_client().await;
    let key = DpopKey::new();
    let url = token_url(&app);
    let r = service_token(&app, &svc, Some(&key.proof("POST", &url, None))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["token_type"], "DPoP");
    let (_, claims) = jwt_parts(r.json()["access_token"].as_str().expect("at"));
    assert_eq!(claims["cnf"]["jkt"], key.jkt());
    assert_eq!(claims["aud"], API);

    let t = now();
    let with = |change: Value| {
        let mut c = claims_for("POST", &url);
        for (k, v) in change.as_object().expect("object") {
            c[k] = v.clone();
        }
        key.proof_claims(c)
    };
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    let hs256 = {
        // What an attacker does: an HMAC "signature" keyed with the public JWK.
        let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims_for("POST", &url).to_string())
        );
        let k =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.jwk.to_string().as_bytes());
        let sig = aws_lc_rs::hmac::sign(&k, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    };
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}).to_string()),
        URL_SAFE_NO_PAD.encode(claims_for("POST", &url).to_string())
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "another URL",
            with(json!({"htu": format!("{}/userinfo", app.issuer)})),
        ),
        (
            "another host",
            with(json!({"htu": "https://evil.example/token"})),
        ),
        ("another method", with(json!({"htm": "GET"}))),
        ("too old", with(json!({"iat": t - 3600}))),
        ("from the future", with(json!({"iat": t + 3600}))),
        ("no jti", with(json!({"jti": null}))),
        ("no iat", with(json!({"iat": null}))),
        (
            "private key in jwk",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private_jwk}),
                &claims_for("POST", &url),
            ),
        ),
        (
            "typ JWT",
            key.sign(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk}),
                &claims_for("POST", &url),
            ),
        ),
        (
            "no jwk",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256"}),
                &claims_for("POST", &url),
            ),
        ),
        (
            "signed by another key",
            DpopKey::new().sign(&key.header(), &claims_for("POST", &url)),
        ),
        ("HS256", hs256),
        ("alg none", none),
        ("garbage", "not-a-jwt".into()),
        ("bad base64", "%%%.%%%.%%%".into()),
        (
            "JSON array header",
            format!("{}.e30.AAAA", URL_SAFE_NO_PAD.encode("[1]")),
        ),
        ("huge", "a".repeat(9000)),
    ];
    for (what, proof) in cases {
        let r = service_token(&app, &svc, Some(&proof)).await;
        assert!(!r.status.is_server_error(), "{what}: {}", r.status);
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text());
        assert_eq!(
            r.json()["error"],
            "invalid_dpop_proof",
            "{what}: {}",
            r.text()
        );
    }
    // Two DPoP headers.
    let r = Resp::read(
        app.http
            .post(app.url("/token"))
            .header(
                "authorization",
                crate::helpers::basic_header(&svc.client_id, svc.secret()),
            )
            .header("dpop", key.proof("POST", &url, None))
            .header("dpop", key.proof("POST", &url, None))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token"),
    )
    .await;
    r.assert_oauth_error(400, "invalid_dpop_proof");

    // Replay: the same proof twice.
    let proof = key.proof("POST", &url, None);
    assert_eq!(
        service_token(&app, &svc, Some(&proof)).await.status,
        StatusCode::OK
    );
    service_token(&app, &svc, Some(&proof))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
}

fn claims_for(method: &str, url: &str) -> Value {
    claims(method, url, None, None)
}

#[actix_web::test]
async fn a_dpop_bound_client_cannot_get_unbound_tokens() {
    let app = TestApp::spawn().await;
    let svc = app
        .add_client(&[
            "--name",
            "svc",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            "api:read",
            "--audience",
            API,
            "--dpop-bound",
        ])
        .await;
    assert_eq!(svc.metadata["dpop_bound_access_tokens"], true);
    service_token(&app, &svc, None)
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    let key = DpopKey::new();
    let r = service_token(&app, &svc, Some(&key.proof("POST", &token_url(&app), None))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["token_type"], "DPoP");
    let shown = app
        .cli(&["client", "show", &svc.client_id, "--json"], None)
        .await;
    let shown: Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(shown["dpop_bound_access_tokens"], true);
    // Other clients are unaffected.
    let plain = app.add_service_client().await;
    assert_eq!(plain.metadata["dpop_bound_access_tokens"], false);
}

#[actix_web::test]
async fn nonce_flow() {
    let app = TestApp::spawn_with(|c| c.dpop_require_nonce = true).await;
    let svc = app.add_service_client().await;
    let key = DpopKey::new();
    let url = token_url(&app);

    // No nonce: use_dpop_nonce, and the nonce to use.
    let r = service_token(&app, &svc, Some(&key.proof("POST", &url, None))).await;
    r.assert_oauth_error(400, "use_dpop_nonce");
    let nonce = r.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    assert_eq!(r.headers.get_all("dpop-nonce").iter().count(), 1);
    // A made-up nonce: the same.
    let fake = key.proof_claims(claims("POST", &url, None, Some("made-up")));
    service_token(&app, &svc, Some(&fake))
        .await
        .assert_oauth_error(400, "use_dpop_nonce");
    // With it: tokens, and (RFC 9449 §8.2) the nonce to use next.
    let r = service_token(
        &app,
        &svc,
        Some(&key.proof_claims(claims("POST", &url, None, Some(&nonce)))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let next = r
        .header("dpop-nonce")
        .expect("a nonce for next time")
        .to_owned();
    let at = r.json()["access_token"].as_str().expect("at").to_owned();
    // A proof with a nonce whose client clock is an hour off is fine: the nonce dates it.
    let mut skewed = claims("POST", &url, None, Some(&next));
    skewed["iat"] = json!(now() - 3600);
    let r = service_token(&app, &svc, Some(&key.proof_claims(skewed))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // A protected resource (userinfo) asks for the nonce with 401 and a DPoP challenge. The
    // service token has no openid scope: once the proof passes, the answer is 403.
    let r = userinfo(
        &app,
        &format!("DPoP {at}"),
        Some(&key.proof("GET", &userinfo_url(&app), Some(&at))),
    )
    .await;
    assert_resource_refusal(&r, "DPoP", "use_dpop_nonce");
    let n = r.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    let r = userinfo(
        &app,
        &format!("DPoP {at}"),
        Some(&key.proof_claims(claims("GET", &userinfo_url(&app), Some(&at), Some(&n)))),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.json()["error"], "insufficient_scope");
}

/// Two servers on one database (as replicas behind one issuer): a proof used at one is a
/// replay at the other, and a nonce from one is good at the other.
async fn replay_across_servers(database_url: Option<String>) {
    let a = TestApp::spawn_with(|c| {
        c.dpop_require_nonce = true;
        if let Some(u) = &database_url {
            c.database_url = u.clone();
        }
    })
    .await;
    let (db, keys, issuer) = (
        a.config.database_url.clone(),
        a.config.keys_dir.clone(),
        a.issuer.clone(),
    );
    let b = TestApp::spawn_with(move |c| {
        c.dpop_require_nonce = true;
        c.database_url = db;
        c.keys_dir = keys; // the same key-encryption key
        c.issuer = issuer;
    })
    .await;
    let svc = a.add_service_client().await;
    let key = DpopKey::new();
    let url = token_url(&a);
    let r = service_token(&a, &svc, Some(&key.proof("POST", &url, None))).await;
    let nonce = r.header("dpop-nonce").expect("nonce from A").to_owned();
    let proof = key.proof_claims(claims("POST", &url, None, Some(&nonce)));
    let r = service_token(&b, &svc, Some(&proof)).await;
    assert_eq!(r.status, StatusCode::OK, "A's nonce at B: {}", r.text());
    service_token(&a, &svc, Some(&proof))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    service_token(&b, &svc, Some(&proof))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
}

#[actix_web::test]
async fn a_replayed_proof_is_refused_by_another_server_on_the_same_sqlite_database() {
    replay_across_servers(None).await;
}

#[actix_web::test]
async fn a_replayed_proof_is_refused_by_another_replica_on_postgres() {
    let Some(pg) = crate::pg::PgDb::create("dpop_replay_across_replicas") else {
        return;
    };
    replay_across_servers(Some(pg.url.clone())).await;
}

/// The server's binding and latchkey-verify's check agree (thumbprint, `ath`, `htu`): a token
/// the server bound is accepted by the library with a proof by the same key, and refused as a
/// bearer token or with another key's proof.
#[actix_web::test]
async fn latchkey_verify_accepts_the_servers_bound_tokens_with_their_proofs() {
    use latchkey_verify::{DpopRequest, Verifier, VerifyError};
    let app = TestApp::spawn().await;
    let svc = app.add_service_client().await;
    let key = DpopKey::new();
    let r = service_token(&app, &svc, Some(&key.proof("POST", &token_url(&app), None))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let at = r.json()["access_token"].as_str().expect("at").to_owned();
    let verifier = Verifier::from_issuer(&app.issuer, API)
        .await
        .expect("verifier");
    let url = "https://api.example.test/orders?page=2";
    let proof = key.proof("GET", "https://api.example.test/orders", Some(&at));
    let ok = verifier
        .verify_dpop(
            &at,
            &DpopRequest {
                proof: &proof,
                method: "GET",
                url,
            },
        )
        .await
        .expect("accepted");
    assert_eq!(ok.cnf.and_then(|c| c.jkt), Some(key.jkt()));
    assert_eq!(
        verifier.verify(&at).await.unwrap_err(),
        VerifyError::SenderConstrained
    );
    let other = DpopKey::new().proof("GET", "https://api.example.test/orders", Some(&at));
    assert_eq!(
        verifier
            .verify_dpop(
                &at,
                &DpopRequest {
                    proof: &other,
                    method: "GET",
                    url,
                },
            )
            .await
            .unwrap_err(),
        VerifyError::DpopKeyMismatch
    );
}

/// RFC 9449 §10: `dpop_jkt` in the authorization request binds the code to that key.
#[actix_web::test]
async fn dpop_jkt_binds_the_authorization_code_to_the_key() {
    use crate::browser::{PASSWORD, authorize_path, location_params};
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let key = DpopKey::new();
    let jkt = key.jkt();
    let mut b = Browser::new(&app);
    // Each authorization signs in with the password (on the login page, or instead of
    // pressing "Continue" when the session is already there: a fresh sign-in either way).
    let mut code_for = async |extra: &[(&str, &str)]| {
        let (verifier, challenge) = pkce();
        let mut r = b
            .get(&authorize_path(&m.client.client_id, &challenge, extra))
            .await;
        if r.status == StatusCode::OK {
            r = b.login(&r, &m.username, PASSWORD).await;
        }
        let (_, p) = location_params(&r);
        (p, verifier)
    };
    let exchange = |code: String, verifier: String, proof: Option<String>| {
        let app = &app;
        let client_id = m.client.client_id.clone();
        async move {
            token_request(
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_PORT),
                    ("client_id", &client_id),
                    ("code_verifier", &verifier),
                ],
                None,
                proof.as_deref(),
            )
            .await
        }
    };
    let url = token_url(&app);

    // Another key's proof, or none: refused (and the code is spent).
    let (p, v) = code_for(&[("dpop_jkt", &jkt)]).await;
    let thief = DpopKey::new().proof("POST", &url, None);
    exchange(p["code"].clone(), v, Some(thief))
        .await
        .assert_oauth_error(400, "invalid_grant");
    let (p, v) = code_for(&[("dpop_jkt", &jkt)]).await;
    exchange(p["code"].clone(), v, None)
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    // The key named in the request: tokens bound to it.
    let (p, v) = code_for(&[("dpop_jkt", &jkt)]).await;
    let r = exchange(p["code"].clone(), v, Some(key.proof("POST", &url, None))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, claims) = jwt_parts(r.json()["access_token"].as_str().expect("at"));
    assert_eq!(claims["cnf"]["jkt"], jkt);
    // A malformed dpop_jkt is an error sent back to the client.
    let (p, _) = code_for(&[("dpop_jkt", "not-a-thumbprint")]).await;
    assert_eq!(
        p.get("error").map(String::as_str),
        Some("invalid_request"),
        "{p:?}"
    );
}

/// Garbage in the DPoP scheme or header at userinfo: an RFC error in a DPoP challenge, never a
/// server error.
#[actix_web::test]
async fn malformed_dpop_requests_at_userinfo_are_refused_cleanly() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let key = DpopKey::new();
    let at = dpop_login(&app, &m, &key).await["access_token"]
        .as_str()
        .expect("at")
        .to_owned();
    for proof in [
        "".to_owned(),
        "x".to_owned(),
        "a.b.c".to_owned(),
        "e30.e30.".to_owned(),
        "a".repeat(20_000),
        format!(
            "{}.{}",
            key.proof("GET", &userinfo_url(&app), Some(&at)),
            "extra"
        ),
    ] {
        let r = userinfo(&app, &format!("DPoP {at}"), Some(&proof)).await;
        assert!(!r.status.is_server_error(), "{}", r.status);
        assert_resource_refusal(&r, "DPoP", "invalid_dpop_proof");
    }
    for token in ["x", "a.b.c", "e30.e30.e30"] {
        let r = userinfo(
            &app,
            &format!("DPoP {token}"),
            Some(&key.proof("GET", &userinfo_url(&app), Some(token))),
        )
        .await;
        assert_resource_refusal(&r, "DPoP", "invalid_token");
    }
}
