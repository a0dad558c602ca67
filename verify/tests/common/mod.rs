//! Test helpers: a tiny real HTTP issuer (discovery + JWKS) on 127.0.0.1, keys generated with
//! aws-lc-rs, and a token minter that can craft anything (it never goes through jsonwebtoken,
//! so forged headers are exactly what the test wrote).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const AUDIENCE: &str = "https://api.example.test";

pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// Mock issuer

struct MockState {
    jwks: String,
    cache_control: Option<String>,
    discovery: Option<String>,
    status: u16,
    delay: Duration,
    paths: Vec<String>,
}

/// A real HTTP server on 127.0.0.1 (port 0) serving `/jwks` and
/// `/.well-known/openid-configuration`, recording every request path.
pub struct MockIssuer {
    pub addr: SocketAddr,
    state: Arc<Mutex<MockState>>,
    stop: Arc<AtomicBool>,
}

impl MockIssuer {
    pub fn start(jwks: String) -> MockIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let state = Arc::new(Mutex::new(MockState {
            jwks,
            cache_control: Some("public, max-age=3600".into()),
            discovery: Some(
                json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}).to_string(),
            ),
            status: 200,
            delay: Duration::ZERO,
            paths: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break; // dropping the listener: connections are now refused
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        MockIssuer { addr, state, stop }
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn set_jwks(&self, jwks: String) {
        self.state.lock().unwrap().jwks = jwks;
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.lock().unwrap().cache_control = value.map(str::to_owned);
    }

    pub fn set_discovery(&self, doc: Value) {
        self.state.lock().unwrap().discovery = Some(doc.to_string());
    }

    pub fn set_status(&self, status: u16) {
        self.state.lock().unwrap().status = status;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Every request path seen, in order.
    pub fn paths(&self) -> Vec<String> {
        self.state.lock().unwrap().paths.clone()
    }

    pub fn jwks_requests(&self) -> usize {
        self.paths().iter().filter(|p| *p == "/jwks").count()
    }

    /// Waits (up to 5 s) until `/jwks` was requested `n` times.
    pub async fn wait_for_jwks_requests(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.jwks_requests() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} JWKS requests, saw {}",
                self.jwks_requests()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops listening: from now on connections are refused.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(self.addr).is_ok() {
            assert!(Instant::now() < deadline, "mock issuer did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for MockIssuer {
    fn drop(&mut self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            let _ = TcpStream::connect(self.addr);
        }
    }
}

fn serve(conn: TcpStream, state: &Mutex<MockState>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let (status, body, cache_control, delay) = {
        let mut st = state.lock().unwrap();
        st.paths.push(path.clone());
        match path.as_str() {
            "/jwks" => (
                st.status,
                st.jwks.clone(),
                st.cache_control.clone(),
                st.delay,
            ),
            "/.well-known/openid-configuration" => match &st.discovery {
                Some(d) => (200, d.clone(), None, Duration::ZERO),
                None => (404, "{}".into(), None, Duration::ZERO),
            },
            _ => (404, "{}".into(), None, Duration::ZERO),
        }
    };
    std::thread::sleep(delay);
    let mut response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(cc) = cache_control {
        response.push_str(&format!("Cache-Control: {cc}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&body);
    let mut conn = conn;
    let _ = conn.write_all(response.as_bytes());
    let _ = conn.flush();
}

// ---------------------------------------------------------------------------------------------
// Keys and tokens

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    signer: Signer,
    pub jwk: Value,
    /// Public key bytes as an attacker would find them (EC: SEC1 point, RSA: PKCS#1 DER,
    /// Ed25519: raw).
    pub public_bytes: Vec<u8>,
}

impl TestKey {
    pub fn es256(kid: &str) -> TestKey {
        Self::ec(kid, "ES256")
    }

    pub fn es384(kid: &str) -> TestKey {
        Self::ec(kid, "ES384")
    }

    fn ec(kid: &str, alg: &'static str) -> TestKey {
        let (signing, crv, len) = match alg {
            "ES256" => (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
            _ => (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
        };
        let kp = EcdsaKeyPair::generate(signing).unwrap();
        let point = kp.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": crv,
            "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..]),
            "kid": kid, "use": "sig", "alg": alg,
        });
        TestKey {
            kid: kid.into(),
            alg,
            signer: Signer::Ec(kp),
            jwk,
            public_bytes: point,
        }
    }

    /// An RSA-2048 key published with `alg` (`RS256` or `PS256`).
    pub fn rsa(kid: &str, alg: &'static str) -> TestKey {
        let kp = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let parts = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
        let jwk = json!({
            "kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e),
            "kid": kid, "use": "sig", "alg": alg,
        });
        let public_bytes = kp.public_key().as_ref().to_vec();
        TestKey {
            kid: kid.into(),
            alg,
            signer: Signer::Rsa(kp),
            jwk,
            public_bytes,
        }
    }

    pub fn eddsa(kid: &str) -> TestKey {
        let kp = Ed25519KeyPair::generate().unwrap();
        let public = kp.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "x": b64(&public),
            "kid": kid, "use": "sig", "alg": "EdDSA",
        });
        TestKey {
            kid: kid.into(),
            alg: "EdDSA",
            signer: Signer::Ed(kp),
            jwk,
            public_bytes: public,
        }
    }

    /// Signs with the key's own algorithm.
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        self.sign_as(self.alg, input)
    }

    /// Signs with `alg` (for RSA keys: `RS256` or `PS256`, whatever the JWK says).
    pub fn sign_as(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ec(kp) => kp.sign(&rng, input).unwrap().as_ref().to_vec(),
            Signer::Ed(kp) => kp.sign(input).as_ref().to_vec(),
            Signer::Rsa(kp) => {
                let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match alg {
                    "PS256" => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(padding, &rng, input, &mut sig).unwrap();
                sig
            }
        }
    }

    /// The standard header for this key.
    pub fn header(&self) -> Value {
        json!({"alg": self.alg, "typ": "at+jwt", "kid": self.kid})
    }

    /// A token with the standard header and these claims, correctly signed.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(&self.header(), claims)
    }

    /// A token with exactly this header and these claims, signed with the key's algorithm.
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }
}

pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// Valid RFC 9068 claims for `issuer` and [`AUDIENCE`].
pub fn claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": "user-42",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now,
        "jti": "jti-1",
        "client_id": "mobile-app",
        "scope": "openid api:read",
        "auth_time": now - 5,
    })
}

/// `claims` with `changes` merged in (a `null` value removes the claim).
pub fn with(mut claims: Value, changes: Value) -> Value {
    let obj = claims.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    claims
}

/// HMAC-SHA256 over `input` with `secret`: what an attacker does with a public key.
pub fn hmac_sha256(secret: &[u8], input: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, input).as_ref().to_vec()
}

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449)

/// RFC 7638 SHA-256 thumbprint of a test key's public JWK, computed from its members.
pub fn jwk_thumbprint(key: &TestKey) -> String {
    let j = &key.jwk;
    let s = |k: &str| serde_json::to_string(j[k].as_str().unwrap()).unwrap();
    let canonical = match j["kty"].as_str().unwrap() {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s("e"), s("n")),
        _ => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, s("crv"), s("x")),
    };
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A DPoP proof by `key` for `method` `url`, bound to `access_token` (`ath`), with this `jti`.
pub fn dpop_proof(key: &TestKey, method: &str, url: &str, access_token: &str, jti: &str) -> String {
    let mut jwk = key.jwk.clone();
    for m in ["kid", "use", "alg"] {
        jwk.as_object_mut().unwrap().remove(m);
    }
    let header = json!({"typ": "dpop+jwt", "alg": key.alg, "jwk": jwk});
    let ath = b64(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes()).as_ref(),
    );
    let claims = json!({"jti": jti, "htm": method, "htu": url, "iat": now(), "ath": ath});
    key.token_with_header(&header, &claims)
}
