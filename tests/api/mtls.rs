//! Native TLS and RFC 8705 mutual-TLS, with certificates made here by `rcgen` (a CA, the
//! server, clients of that CA, a CA nobody trusts, self-signed clients) and real TLS clients:
//! reqwest on rustls, a hand-driven rustls handshake, and `curl`.
//! - the server speaks HTTPS and HTTP/2, and a renewed certificate on disk is served to new
//!   connections while requests keep succeeding;
//! - `tls_client_auth` (subject DN, SAN) and `self_signed_tls_client_auth`: the right
//!   certificate gets a token bound to it (`cnf.x5t#S256`); another certificate of the same CA,
//!   one from an untrusted CA, an unregistered self-signed one, none, or a secret instead are
//!   refused with `invalid_client`;
//! - the bound token works at userinfo and in latchkey-verify only with the same certificate;
//! - behind a proxy, the certificate header counts only from `trusted_proxies`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latchkey::config::Config;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::browser::{self, Browser, PASSWORD, REDIRECT_PORT};
use crate::helpers::{API, Resp, TestApp, TestClient, jwt_parts};

/// A certificate and its private key.
struct Cert {
    der: Vec<u8>,
    pem: String,
    key_pem: String,
}

impl Cert {
    fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &self.der,
        ))
    }

    /// The RFC 7517 JWK of this certificate's P-256 key, with the certificate as `x5c`.
    fn jwk(&self, key: &KeyPair) -> Value {
        let raw = key.public_key_raw();
        json!({
            "kty": "EC", "crv": "P-256", "kid": "mtls-1", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
            "x5c": [STANDARD.encode(&self.der)],
        })
    }
}

struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("CA")
}

fn leaf(
    issuer: Option<&CertifiedIssuer<'static, KeyPair>>,
    dn: &[(DnType, &str)],
    sans: Vec<SanType>,
    eku: ExtendedKeyUsagePurpose,
) -> (Cert, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    for (t, v) in dn {
        p.distinguished_name.push(t.clone(), *v);
    }
    p.subject_alt_names = sans;
    p.extended_key_usages = vec![eku];
    let key = KeyPair::generate().expect("key");
    let cert = match issuer {
        Some(i) => p.signed_by(&key, i).expect("sign"),
        None => p.self_signed(&key).expect("self-sign"),
    };
    (
        Cert {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
        key,
    )
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("temp dir"),
            ca: ca("Latchkey Test CA"),
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).expect("write CA");
        pki.write_server_cert();
        pki
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A new server certificate for `localhost`, written over the files the server reads
    /// (each by rename, as certbot and friends do); returns its DER.
    fn write_server_cert(&self) -> Vec<u8> {
        let (c, _) = leaf(
            Some(&self.ca),
            &[(DnType::CommonName, "localhost")],
            vec![
                SanType::DnsName("localhost".try_into().expect("dns name")),
                SanType::IpAddress("127.0.0.1".parse().expect("ip")),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        for (name, text) in [("server.pem", &c.pem), ("server.key", &c.key_pem)] {
            let tmp = self.path(&format!("{name}.new"));
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, self.path(name)).expect("rename");
        }
        c.der
    }

    /// A client certificate from this CA.
    fn client(&self, cn: &str, sans: Vec<SanType>) -> Cert {
        leaf(
            Some(&self.ca),
            &[
                (DnType::OrganizationName, "Example"),
                (DnType::CommonName, cn),
            ],
            sans,
            ExtendedKeyUsagePurpose::ClientAuth,
        )
        .0
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_tls_config(ca_pem: &str, identity: Option<&Cert>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("add root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    match identity {
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(c.der.clone())],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).expect("key PEM"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    }
}

/// An HTTPS client trusting `ca_pem`, presenting `identity` if given; `fresh`: a new TLS
/// connection (full handshake) for every request.
fn https(ca_pem: &str, identity: Option<&Cert>, fresh: bool) -> reqwest::Client {
    let mut tls = client_tls_config(ca_pem, identity);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20));
    if fresh {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().expect("https client")
}

/// The server over native TLS at `https://localhost:{port}`, trusting `pki`'s CA for
/// `tls_client_auth`; `app.http` and `app.address` speak HTTPS (no client certificate).
async fn spawn_tls(pki: &Pki, configure: impl FnOnce(&mut Config)) -> TestApp {
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let mut app = TestApp::spawn_with(move |c| {
        let port = c.listen.rsplit(':').next().expect("port").to_owned();
        c.issuer = format!("https://localhost:{port}");
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.tls_client_ca = Some(ca);
        configure(c);
    })
    .await;
    app.address = format!("https://localhost:{}", app.port);
    app.http = https(&pki.ca_pem(), None, false);
    app
}

async fn post_form(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Resp {
    Resp::read(http.post(url).form(form).send().await.expect("POST")).await
}

async fn client_credentials(app: &TestApp, http: &reqwest::Client, client_id: &str) -> Resp {
    post_form(
        http,
        &app.url("/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
        ],
    )
    .await
}

/// The leaf certificate a TLS handshake with the server is answered with.
async fn served_certificate(port: u16, ca_pem: String) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        let config = Arc::new(client_tls_config(&ca_pem, None));
        let name = "localhost".try_into().expect("server name");
        let mut conn = rustls::ClientConnection::new(config, name).expect("client connection");
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).expect("handshake");
        }
        conn.peer_certificates().expect("server certificate")[0].to_vec()
    })
    .await
    .expect("handshake task")
}

fn curl() -> Option<&'static str> {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED the curl half of this test: curl is not installed (.ci/run installs it)"
        );
    }
    ok.then_some("curl")
}

#[actix_web::test]
async fn https_with_http2_and_a_renewed_certificate_is_served_without_dropping_requests() {
    let pki = Pki::new();
    let app = spawn_tls(&pki, |_| {}).await;
    let meta = app.discovery().await;
    assert_eq!(meta.status, StatusCode::OK);
    assert_eq!(meta.json()["issuer"], json!(app.issuer));
    assert_eq!(
        meta.header("strict-transport-security"),
        Some("max-age=31536000"),
        "HSTS follows the https issuer"
    );
    // A plain-http request to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/jwks", app.port))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()),
        "plain http must not be served on the TLS port"
    );

    if let Some(curl) = curl() {
        let out = std::process::Command::new(curl)
            .args(["-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version}"])
            .arg("--cacert")
            .arg(pki.path("ca.pem"))
            .arg(app.url("/jwks"))
            .output()
            .expect("run curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "2",
            "HTTP/2 by ALPN: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let before = served_certificate(app.port, pki.ca_pem()).await;
    // Requests keep coming, each on a new connection, while the certificate is renewed.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (client, url) = (https(&pki.ca_pem(), None, true), app.url("/jwks"));
        actix_web::rt::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let renewed = pki.write_server_cert();
    assert_ne!(renewed, before);
    let mut served = before.clone();
    for _ in 0..50 {
        served = served_certificate(app.port, pki.ca_pem()).await;
        if served == renewed {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        served, renewed,
        "the renewed certificate is served within 10 s"
    );
    let at_swap = ok.load(Ordering::Relaxed);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load task");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    assert!(
        ok.load(Ordering::Relaxed) > at_swap,
        "requests went on after the swap"
    );

    // A half-written renewal (a key that does not match) keeps the current certificate.
    std::fs::write(
        pki.path("server.key"),
        KeyPair::generate().expect("key").serialize_pem(),
    )
    .expect("write");
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served_certificate(app.port, pki.ca_pem()).await, renewed);
    assert_eq!(app.get("/jwks").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn tls_client_auth_binds_the_token_to_the_certificate_and_refuses_any_other() {
    let pki = Pki::new();
    let app = spawn_tls(&pki, |_| {}).await;
    let meta = app.discovery().await.json();
    for m in ["tls_client_auth", "self_signed_tls_client_auth"] {
        assert!(
            meta["token_endpoint_auth_methods_supported"]
                .as_array()
                .expect("methods")
                .contains(&json!(m)),
            "{m}: {meta}"
        );
    }
    assert_eq!(
        meta["tls_client_certificate_bound_access_tokens"],
        json!(true)
    );
    assert_eq!(
        meta["mtls_endpoint_aliases"]["token_endpoint"],
        json!(app.url("/token"))
    );
    let svc = add_cert_client(&app, "payments", "subject_dn=CN=payments,O=Example", true).await;
    assert!(svc.client_secret.is_none(), "no secret: {:?}", svc.metadata);
    assert_eq!(
        svc.metadata["token_endpoint_auth_method"],
        json!("tls_client_auth")
    );
    assert_eq!(
        svc.metadata["tls_client_auth_subject_dn"],
        json!("CN=payments,O=Example")
    );

    let mine = pki.client("payments", vec![]);
    let r = client_credentials(
        &app,
        &https(&pki.ca_pem(), Some(&mine), false),
        &svc.client_id,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["token_type"], json!("Bearer"));
    let token = body["access_token"].as_str().expect("token").to_owned();
    let (_, claims) = jwt_parts(&token);
    assert_eq!(claims["cnf"], json!({ "x5t#S256": mine.x5t() }));

    // Another certificate of the same CA, the same name from a CA nobody trusts, no
    // certificate, or a secret: all invalid_client.
    let other = pki.client("reports", vec![]);
    let (rogue, _) = leaf(
        Some(&ca("Rogue CA")),
        &[
            (DnType::OrganizationName, "Example"),
            (DnType::CommonName, "payments"),
        ],
        vec![],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (self_made, _) = leaf(
        None,
        &[
            (DnType::OrganizationName, "Example"),
            (DnType::CommonName, "payments"),
        ],
        vec![],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    // The right name and CA, but expired, or made for servers (no clientAuth usage).
    let expired = {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name
            .push(DnType::OrganizationName, "Example");
        p.distinguished_name.push(DnType::CommonName, "payments");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &pki.ca).expect("sign");
        Cert {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    };
    let (server_only, _) = leaf(
        Some(&pki.ca),
        &[
            (DnType::OrganizationName, "Example"),
            (DnType::CommonName, "payments"),
        ],
        vec![],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    for (what, cert) in [
        ("another client's certificate", Some(&other)),
        ("an untrusted CA", Some(&rogue)),
        ("a self-signed copy of the name", Some(&self_made)),
        ("an expired certificate", Some(&expired)),
        ("a server certificate", Some(&server_only)),
        ("no certificate", None),
    ] {
        let r = client_credentials(&app, &https(&pki.ca_pem(), cert, false), &svc.client_id).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text());
        r.assert_oauth_error(401, "invalid_client");
    }
    let r = Resp::read(
        https(&pki.ca_pem(), Some(&mine), false)
            .post(app.url("/token"))
            .basic_auth(&svc.client_id, Some("guess"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    r.assert_oauth_error(401, "invalid_client");

    // Introspection by the client itself (authenticated by its certificate) shows the binding.
    let r = post_form(
        &https(&pki.ca_pem(), Some(&mine), false),
        &app.url("/introspect"),
        &[("token", &token), ("client_id", &svc.client_id)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["active"], json!(true));
    assert_eq!(r.json()["cnf"]["x5t#S256"], json!(mine.x5t()));
    assert_eq!(r.json()["token_type"], json!("Bearer"));

    // latchkey-verify: only with the certificate the API saw.
    let jwks = app.get("/jwks").await.body;
    let verifier = latchkey_verify::Verifier::builder(app.issuer.clone(), API)
        .build_static(&jwks)
        .expect("verifier");
    let claims = verifier
        .verify_mtls(&token, &mine.der)
        .await
        .expect("bound to this certificate");
    assert_eq!(claims.client_id, svc.client_id);
    assert_eq!(
        verifier.verify_mtls(&token, &other.der).await.err(),
        Some(latchkey_verify::VerifyError::CertificateMismatch)
    );
    assert_eq!(
        verifier.verify(&token).await.err(),
        Some(latchkey_verify::VerifyError::SenderConstrained),
        "a bound token is no bearer token"
    );
    let plain = app.add_service_client().await;
    let unbound = app.access_token_for(&plain).await;
    assert_eq!(
        verifier.verify_mtls(&unbound, &mine.der).await.err(),
        Some(latchkey_verify::VerifyError::NotMtlsBound)
    );

    // A disabled certificate client is refused like any other.
    let disabled = add_cert_client(&app, "gone", "subject_dn=CN=gone,O=Example", false).await;
    let gone = pki.client("gone", vec![]);
    let gone_http = https(&pki.ca_pem(), Some(&gone), false);
    assert_eq!(
        client_credentials(&app, &gone_http, &disabled.client_id)
            .await
            .status,
        StatusCode::OK
    );
    let out = app
        .cli(&["client", "disable", &disabled.client_id], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    client_credentials(&app, &gone_http, &disabled.client_id)
        .await
        .assert_oauth_error(401, "invalid_client");

    // curl --cert, the way an operator would try it.
    if let Some(curl) = curl() {
        let dir = &pki.dir;
        std::fs::write(dir.path().join("c.pem"), &mine.pem).expect("write");
        std::fs::write(dir.path().join("c.key"), &mine.key_pem).expect("write");
        let out = std::process::Command::new(curl)
            .args(["-sS", "--fail-with-body"])
            .arg("--cacert")
            .arg(pki.path("ca.pem"))
            .arg("--cert")
            .arg(dir.path().join("c.pem"))
            .arg("--key")
            .arg(dir.path().join("c.key"))
            .args(["-d", "grant_type=client_credentials", "-d"])
            .arg(format!("client_id={}", svc.client_id))
            .arg(app.url("/token"))
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("token JSON");
        let (_, c) = jwt_parts(v["access_token"].as_str().expect("token"));
        assert_eq!(c["cnf"]["x5t#S256"], json!(mine.x5t()));
    }
}

#[actix_web::test]
async fn a_san_name_or_a_registered_self_signed_certificate_authenticates_too() {
    let pki = Pki::new();
    let app = spawn_tls(&pki, |_| {}).await;
    let by_san = add_cert_client(&app, "edge", "san_dns=edge.example.test", false).await;
    let named = pki.client(
        "whatever",
        vec![SanType::DnsName(
            "EDGE.example.test".try_into().expect("dns"),
        )],
    );
    let unnamed = pki.client(
        "whatever",
        vec![SanType::DnsName(
            "edge2.example.test".try_into().expect("dns"),
        )],
    );
    let r = client_credentials(
        &app,
        &https(&pki.ca_pem(), Some(&named), false),
        &by_san.client_id,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, c) = jwt_parts(r.json()["access_token"].as_str().expect("token"));
    assert!(
        c.get("cnf").is_none(),
        "not bound without --mtls-bound: {c}"
    );
    client_credentials(
        &app,
        &https(&pki.ca_pem(), Some(&unnamed), false),
        &by_san.client_id,
    )
    .await
    .assert_oauth_error(401, "invalid_client");

    // self_signed_tls_client_auth: the certificate registered as x5c in the client's jwks.
    let (registered, key) = leaf(
        None,
        &[(DnType::CommonName, "device-42")],
        vec![],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (stranger, _) = leaf(
        None,
        &[(DnType::CommonName, "device-42")],
        vec![],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let jwks_file = pki.path("jwks.json");
    std::fs::write(
        &jwks_file,
        json!({ "keys": [registered.jwk(&key)] }).to_string(),
    )
    .expect("write jwks");
    let jwks_arg = jwks_file.display().to_string();
    let device = app
        .add_client(&[
            "--name",
            "device",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--audience",
            API,
            "--jwks-file",
            &jwks_arg,
            "--tls-client-auth",
            "self_signed",
            "--mtls-bound",
        ])
        .await;
    assert_eq!(
        device.metadata["token_endpoint_auth_method"],
        json!("self_signed_tls_client_auth")
    );
    let r = client_credentials(
        &app,
        &https(&pki.ca_pem(), Some(&registered), false),
        &device.client_id,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, c) = jwt_parts(r.json()["access_token"].as_str().expect("token"));
    assert_eq!(c["cnf"]["x5t#S256"], json!(registered.x5t()));
    client_credentials(
        &app,
        &https(&pki.ca_pem(), Some(&stranger), false),
        &device.client_id,
    )
    .await
    .assert_oauth_error(401, "invalid_client");

    // Registration rules name what is wrong.
    for (args, why) in [
        (
            vec!["--tls-client-auth", "self_signed"],
            "self_signed_tls_client_auth needs",
        ),
        (vec!["--tls-client-auth", "subject_dn=not a dn"], "RFC 4514"),
        (
            vec!["--tls-client-auth", "san_ip=10.0.0.300"],
            "IPv4 or IPv6",
        ),
        (vec!["--tls-client-auth", "serial=42"], "KIND=NAME"),
    ] {
        let mut full = vec![
            "client",
            "add",
            "--name",
            "bad",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
        ];
        full.extend(args);
        let out = app.cli(&full, None).await;
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(out.stderr.contains(why), "{why}: {out:?}");
    }
    let out = app
        .cli(
            &[
                "client",
                "add",
                "--name",
                "phone",
                "--type",
                "public",
                "--redirect-uri",
                "com.example.app:/cb",
                "--mtls-bound",
            ],
            None,
        )
        .await;
    assert!(out.stderr.contains("DPoP"), "{out:?}");
}

#[actix_web::test]
async fn a_certificate_bound_token_works_at_userinfo_only_with_its_certificate() {
    let pki = Pki::new();
    let app = spawn_tls(&pki, |_| {}).await;
    let m = browser::setup(&app, true).await;
    let web = app
        .add_client(&[
            "--name",
            "web",
            "--type",
            "confidential",
            "--redirect-uri",
            REDIRECT_PORT,
            "--scope",
            browser::SCOPE,
            "--audience",
            API,
            "--first-party",
            "--tls-client-auth",
            "subject_dn=CN=web,O=Example",
            "--mtls-bound",
        ])
        .await;
    let mine = pki.client("web", vec![]);
    let other = pki.client("someone-else", vec![]);
    let web_app = browser::Mobile {
        client: web.clone(),
        username: m.username.clone(),
        sub: m.sub.clone(),
    };
    let mut b = Browser::new(&app);
    let (verifier, challenge) = browser::pkce();
    let code = browser::obtain_code(&app, &mut b, &web_app, &challenge).await;
    let with_cert = https(&pki.ca_pem(), Some(&mine), false);
    let r = post_form(
        &with_cert,
        &app.url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_PORT),
            ("client_id", &web.client_id),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tokens = r.json();
    let at = tokens["access_token"].as_str().expect("access token");
    assert_eq!(jwt_parts(at).1["cnf"]["x5t#S256"], json!(mine.x5t()));

    let userinfo = |http: reqwest::Client| {
        let url = app.url("/userinfo");
        let at = at.to_owned();
        async move { Resp::read(http.get(url).bearer_auth(at).send().await.expect("GET")).await }
    };
    let r = userinfo(with_cert.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["sub"], json!(m.sub));
    for (what, http) in [
        (
            "another certificate",
            https(&pki.ca_pem(), Some(&other), false),
        ),
        ("no certificate", app.http.clone()),
    ] {
        let r = userinfo(http).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.contains("invalid_token")),
            "{what}: {:?}",
            r.header("www-authenticate")
        );
    }

    // The refresh token is the confidential client's: it needs the certificate again.
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    let refresh = |http: reqwest::Client| {
        let url = app.url("/token");
        let (rt, id) = (rt.to_owned(), web.client_id.clone());
        async move {
            post_form(
                &http,
                &url,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", &id),
                ],
            )
            .await
        }
    };
    refresh(https(&pki.ca_pem(), Some(&other), false))
        .await
        .assert_oauth_error(401, "invalid_client");
    let r = refresh(with_cert).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, c) = jwt_parts(r.json()["access_token"].as_str().expect("token"));
    assert_eq!(c["cnf"]["x5t#S256"], json!(mine.x5t()));
    let _ = PASSWORD;
}

/// Behind a TLS proxy: the certificate arrives in `tls_client_cert_header`, URL-escaped PEM as
/// nginx's `$ssl_client_escaped_cert`, and counts only when the proxy is trusted.
#[actix_web::test]
async fn the_proxy_certificate_header_counts_only_from_trusted_proxies() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let behind = |trusted: &'static str| {
        let ca = ca.clone();
        move |c: &mut Config| {
            c.tls_client_ca = Some(ca);
            c.tls_client_cert_header = Some("X-SSL-Client-Cert".into());
            c.trusted_proxies = vec![trusted.into()];
        }
    };
    let mine = pki.client("payments", vec![]);
    let escaped: String =
        percent_encoding::utf8_percent_encode(&mine.pem, percent_encoding::NON_ALPHANUMERIC)
            .collect();
    for (trusted, accepted) in [("127.0.0.1/32", true), ("10.0.0.0/8", false)] {
        let app = TestApp::spawn_with(behind(trusted)).await;
        let svc = add_cert_client(&app, "payments", "subject_dn=CN=payments,O=Example", true).await;
        let r = Resp::read(
            app.http
                .post(app.url("/token"))
                .header("X-SSL-Client-Cert", &escaped)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", svc.client_id.as_str()),
                ])
                .send()
                .await
                .expect("POST"),
        )
        .await;
        if accepted {
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let (_, c) = jwt_parts(r.json()["access_token"].as_str().expect("token"));
            assert_eq!(c["cnf"]["x5t#S256"], json!(mine.x5t()));
            // Garbage, a truncated certificate or an oversized header from the trusted proxy:
            // no certificate, so invalid_client (never a 500).
            let truncated: String = escaped.chars().take(escaped.len() / 2).collect();
            for junk in ["not a certificate", truncated.as_str(), &"A".repeat(70_000)] {
                let r = Resp::read(
                    app.http
                        .post(app.url("/token"))
                        .header("X-SSL-Client-Cert", junk)
                        .form(&[
                            ("grant_type", "client_credentials"),
                            ("client_id", svc.client_id.as_str()),
                        ])
                        .send()
                        .await
                        .expect("POST"),
                )
                .await;
                assert!(
                    r.status == StatusCode::UNAUTHORIZED
                        || r.status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                        || r.status == StatusCode::BAD_REQUEST,
                    "{}: {}",
                    junk.len(),
                    r.text()
                );
                if r.status == StatusCode::UNAUTHORIZED {
                    r.assert_oauth_error(401, "invalid_client");
                }
            }
        } else {
            r.assert_oauth_error(401, "invalid_client");
        }
    }
}

#[actix_web::test]
async fn plain_http_on_a_reachable_address_refuses_to_start_and_names_the_keys() {
    let app = TestApp::spawn().await;
    let out = app
        .cli_with_env(&["serve"], None, &[("LATCHKEY_LISTEN", "0.0.0.0:0")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    for key in [
        "listen",
        "tls_cert",
        "trusted_proxies",
        "allow_insecure_http",
    ] {
        assert!(out.stderr.contains(key), "{key}: {}", out.stderr);
    }
    let out = app
        .cli_with_env(
            &["serve"],
            None,
            &[
                ("LATCHKEY_LISTEN", "127.0.0.1:0"),
                ("LATCHKEY_TLS_CERT", "/nonexistent.pem"),
            ],
        )
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("tls_cert / tls_key"), "{}", out.stderr);
}

/// A client_credentials client for [`API`] that authenticates with its certificate
/// (`--tls-client-auth auth`), its tokens bound to it when `bound`.
async fn add_cert_client(app: &TestApp, name: &str, auth: &str, bound: bool) -> TestClient {
    let mut args = vec![
        "--name",
        name,
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "api:read",
        "--audience",
        API,
        "--tls-client-auth",
        auth,
    ];
    if bound {
        args.push("--mtls-bound");
    }
    app.add_client(&args).await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The docker-compose mTLS example for real: `deploy/mtls/make-certs.sh` makes the
/// certificates, nginx runs `deploy/nginx.conf` (upstreams and ports pointed at this test),
/// and Latchkey trusts it as a proxy. A client certificate through the TLS listener gets a
/// bound token; a forged certificate header sent to the plain listener is dropped by nginx.
#[actix_web::test]
async fn the_nginx_example_passes_the_client_certificate_and_drops_a_forged_header() {
    let have = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("nginx", "-v") || !have("openssl", "version") {
        eprintln!(
            "SKIPPED the nginx mTLS example: nginx or openssl is not installed (.ci/run installs them)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    let script = std::process::Command::new("sh")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/mtls/make-certs.sh"
        ))
        .env("OUT", &certs)
        .output()
        .expect("run make-certs.sh");
    assert!(
        script.status.success(),
        "{}",
        String::from_utf8_lossy(&script.stderr)
    );
    let (plain_port, tls_port) = (free_port(), free_port());
    let ca = certs.join("ca.pem");
    let app = TestApp::spawn_with(move |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.tls_client_cert_header = Some("X-SSL-Client-Cert".into());
        c.tls_client_ca = Some(ca);
        c.mtls_endpoint_base = Some(format!("https://localhost:{tls_port}"));
    })
    .await;
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"))
            .expect("read deploy/nginx.conf");
    let upstream = format!("server 127.0.0.1:{};", app.port);
    let site = example
        .replace(
            "server latchkey-a:8080 max_fails=2 fail_timeout=5s;",
            &upstream,
        )
        .replace("server latchkey-b:8080 max_fails=2 fail_timeout=5s;", "")
        .replace("listen 8080;", &format!("listen 127.0.0.1:{plain_port};"))
        .replace(
            "listen 8443 ssl;",
            &format!("listen 127.0.0.1:{tls_port} ssl;"),
        )
        .replace("/etc/nginx/mtls/", &format!("{}/", certs.display()));
    assert!(
        !site.contains("latchkey-a") && !site.contains(":8443"),
        "{site}"
    );
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{}}\nhttp {{\naccess_log off;\nclient_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n{site}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
    let mut nginx = std::process::Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start nginx");
    /// SIGTERM to the master, which stops its workers too (SIGKILL would orphan them).
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Ok(pid) = i32::try_from(self.0.id()) {
                // SAFETY: kill(2) on our own child's pid; no memory is involved.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = self.0.wait();
        }
    }
    let _guard = {
        let _ = &mut nginx;
        Kill(nginx)
    };
    let svc = add_cert_client(&app, "payments", "subject_dn=CN=payments,O=Example", true).await;
    let read = |name: &str| std::fs::read_to_string(certs.join(name)).expect("read cert");
    let client = Cert {
        der: CertificateDer::from_pem_slice(read("client.pem").as_bytes())
            .expect("client PEM")
            .to_vec(),
        pem: read("client.pem"),
        key_pem: read("client.key"),
    };
    let ca_pem = read("ca.pem");
    let tls_token = format!("https://localhost:{tls_port}/token");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", svc.client_id.as_str()),
    ];
    let r = crate::helpers::eventually("nginx to listen", Duration::from_secs(10), || {
        let http = https(&ca_pem, Some(&client), false);
        let url = tls_token.clone();
        async move {
            let r = http.post(&url).form(&form).send().await.ok()?;
            Some(Resp::read(r).await)
        }
    })
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, c) = jwt_parts(r.json()["access_token"].as_str().expect("token"));
    assert_eq!(c["cnf"]["x5t#S256"], json!(client.x5t()));
    // No certificate at the TLS listener.
    post_form(&https(&ca_pem, None, false), &tls_token, &form)
        .await
        .assert_oauth_error(401, "invalid_client");
    // A client that sends the proxy's header itself, to the plain listener: nginx drops it.
    let escaped: String =
        percent_encoding::utf8_percent_encode(&client.pem, percent_encoding::NON_ALPHANUMERIC)
            .collect();
    let r = Resp::read(
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{plain_port}/token"))
            .header("X-SSL-Client-Cert", escaped)
            .form(&form)
            .send()
            .await
            .expect("POST"),
    )
    .await;
    r.assert_oauth_error(401, "invalid_client");
    // Discovery points mTLS clients at the alias.
    let meta = app.discovery().await.json();
    assert_eq!(
        meta["mtls_endpoint_aliases"]["token_endpoint"],
        json!(tls_token)
    );
}

/// RFC 7591 registration with the RFC 8705 metadata names, then a token with the certificate.
#[actix_web::test]
async fn a_client_registered_with_rfc_8705_metadata_authenticates_with_its_certificate() {
    let pki = Pki::new();
    let app = spawn_tls(&pki, |_| {}).await;
    let t = crate::registration::initial_token(
        &app,
        &["--grant", "client_credentials", "--audience", API],
    )
    .await;
    let r = crate::registration::register(
        &app,
        t["initial_access_token"].as_str(),
        &json!({
            "client_name": "ledger",
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=ledger,O=Example",
            "tls_client_certificate_bound_access_tokens": true,
            "grant_types": ["client_credentials"],
            "audience": [API],
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let meta = r.json();
    assert!(
        meta.get("client_secret").is_none_or(Value::is_null),
        "{meta}"
    );
    assert_eq!(meta["token_endpoint_auth_method"], json!("tls_client_auth"));
    assert_eq!(
        meta["tls_client_auth_subject_dn"],
        json!("CN=ledger,O=Example")
    );
    assert_eq!(
        meta["tls_client_certificate_bound_access_tokens"],
        json!(true)
    );
    let id = meta["client_id"].as_str().expect("client_id");
    // The certificate's subject is O=Example then CN=ledger; its RFC 4514 string (last RDN
    // first) is what was registered.
    let mine = pki.client("ledger", vec![]);
    let r = post_form(
        &https(&pki.ca_pem(), Some(&mine), false),
        &app.url("/token"),
        &[("grant_type", "client_credentials"), ("client_id", id)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (_, c) = jwt_parts(r.json()["access_token"].as_str().expect("token"));
    assert_eq!(c["cnf"]["x5t#S256"], json!(mine.x5t()));
}

/// A subject DN registered in the order `openssl x509 -subject` prints it (first RDN first)
/// names the certificate too; a DN with one RDN more or less does not.
#[actix_web::test]
async fn a_subject_dn_matches_in_either_rdn_order_and_only_exactly() {
    let pki = Pki::new();
    let app = spawn_tls(&pki, |_| {}).await;
    let cert = pki.client("ledger", vec![]);
    for (dn, accepted) in [
        ("O=Example, CN=ledger", true),
        ("cn=LEDGER,o=example", true),
        ("CN=ledger", false),
        ("CN=ledger,O=Example,C=DE", false),
        ("CN=ledger+O=Example", false),
    ] {
        let name = format!("subject_dn={dn}");
        let c = add_cert_client(&app, "ledger", &name, false).await;
        let r = client_credentials(
            &app,
            &https(&pki.ca_pem(), Some(&cert), false),
            &c.client_id,
        )
        .await;
        if accepted {
            assert_eq!(r.status, StatusCode::OK, "{dn}: {}", r.text());
        } else {
            r.assert_oauth_error(401, "invalid_client");
        }
    }
}
