//! A native app logging a user in through Latchkey, the way a mobile or desktop app does it
//! (RFC 8252): OpenID Connect discovery, authorization code + PKCE S256 in a pushed
//! authorization request (RFC 9126, when the server offers it: the parameters go straight to the
//! server, the browser carries only a `request_uri`), the system browser, a
//! loopback redirect on an ephemeral port, ID token verification, userinfo, one refresh — with
//! DPoP (RFC 9449): a P-256 key made in memory at start (a phone keeps it in its secure
//! hardware), a proof on every request, so the tokens are bound to it and useless to a thief.
//! The `openidconnect` crate does the protocol; DPoP is added by the HTTP client it is given
//! (proof header, `Authorization: DPoP`, and the `use_dpop_nonce` retry).
//!
//! ```text
//! cargo run --example native_app -- --client-id CLIENT_ID [--issuer http://127.0.0.1:8080]
//! ```
//!
//! - `--client-id` / `LATCHKEY_CLIENT_ID` (required): a *public* client registered with the
//!   redirect URI `http://127.0.0.1/cb` (any port is accepted for loopback redirects) and the
//!   grants `authorization_code` and `refresh_token` (see the README, "Log in from a native app").
//! - `--issuer` / `LATCHKEY_ISSUER`: the issuer, exactly as in discovery (default
//!   `http://127.0.0.1:8080`).
//! - `--scope`: requested scopes (default `openid profile email offline_access api:read`).
//! - `--no-browser` / `NATIVE_APP_NO_BROWSER=1`: only print the URL to open (it is always
//!   printed, so it can be pasted into a browser by hand).
//! - `--timeout SECONDS`: how long to wait for the redirect (default 300).
//!
//! This example's HTTP client has no TLS: it talks to an issuer over plain http on this machine,
//! as `latchkey serve` runs by default. A real app uses https.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClientId, CsrfToken, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse, reqwest,
};

#[derive(Parser)]
#[command(about = "Log in to Latchkey as a native app (PKCE, loopback redirect)")]
struct Args {
    /// The public client's id [env: LATCHKEY_CLIENT_ID]
    #[arg(long)]
    client_id: Option<String>,
    /// The issuer URL, exact string [env: LATCHKEY_ISSUER] [default: http://127.0.0.1:8080]
    #[arg(long)]
    issuer: Option<String>,
    /// Space-separated scopes to request
    #[arg(long, default_value = "openid profile email offline_access api:read")]
    scope: String,
    /// Do not try to open the system browser; only print the URL [env: NATIVE_APP_NO_BROWSER=1]
    #[arg(long)]
    no_browser: bool,
    /// Seconds to wait for the browser to come back to the app
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// The loopback redirect's path; the host is 127.0.0.1 and the port is chosen by the OS.
const REDIRECT_PATH: &str = "/cb";

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match actix_web::rt::System::new().block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client_id = args
        .client_id
        .or_else(|| std::env::var("LATCHKEY_CLIENT_ID").ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("--client-id (or LATCHKEY_CLIENT_ID) is required"))?;
    let issuer = args
        .issuer
        .or_else(|| std::env::var("LATCHKEY_ISSUER").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let no_browser = args.no_browser
        || std::env::var("NATIVE_APP_NO_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0");
    if issuer.starts_with("https://") {
        bail!("this example is built without TLS: use an http issuer on this machine");
    }

    // The HTTP client: never follow redirects (SSRF), bounded time.
    let http = reqwest::ClientBuilder::new()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;

    // 1. Discovery: endpoints, supported algorithms and the JWKS.
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone())?, &http)
        .await
        .with_context(|| format!("discovery at {issuer}"))?;
    // The one member `openidconnect` does not model: RFC 9126 §5 (same document).
    let par_endpoint = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("discovery at {issuer}"))?
        .json::<serde_json::Value>()
        .await
        .context("discovery is not JSON")?["pushed_authorization_request_endpoint"]
        .as_str()
        .map(str::to_owned);

    // The DPoP key: made now, in memory; every token request and resource call proves it.
    let dpop = Dpop::new(http.clone())?;
    let dpop_http = |request: HttpRequest| dpop.send(request);

    // 2. A loopback listener on an ephemeral port (RFC 8252 §7.3), bound before the browser opens.
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let redirect_uri = format!(
        "http://127.0.0.1:{}{REDIRECT_PATH}",
        listener.local_addr()?.port()
    );
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), None)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.clone())?);

    // 3. The authorization request: PKCE S256, CSRF state, nonce.
    let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in args.scope.split_whitespace().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.into()));
    }
    let (auth_url, state, nonce) = request.url();
    // RFC 9126: push the request, with a DPoP proof (RFC 9449 §10.1) so that the code can only
    // be redeemed with this app's key; the browser gets the client id and a request_uri only.
    let auth_url = match &par_endpoint {
        Some(endpoint) => {
            let pushed = auth_url.query().unwrap_or("").to_owned();
            println!("Pushed the authorization request (RFC 9126): {pushed}");
            push_request(&dpop, endpoint, &auth_url, &client_id).await?
        }
        None => auth_url,
    };

    println!("Waiting for the browser on {redirect_uri}");
    println!("Open this URL in a browser to log in:");
    println!();
    println!("    {auth_url}");
    println!();
    if !no_browser {
        open_browser(auth_url.as_str());
    }

    // 4. The redirect back to the app.
    let timeout = Duration::from_secs(args.timeout);
    let params = actix_web::rt::task::spawn_blocking(move || wait_for_redirect(listener, timeout))
        .await
        .context("the redirect listener")??;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("state") != Some(state.secret().as_str()) {
        bail!("the redirect's state does not match the one sent: refusing it (CSRF)");
    }
    if let Some(iss) = get("iss")
        && iss != issuer
    {
        bail!("the redirect's iss is {iss:?}, expected {issuer:?} (RFC 9207 mix-up defence)");
    }
    if let Some(error) = get("error") {
        bail!(
            "authorization failed: {error}: {}",
            get("error_description").unwrap_or("")
        );
    }
    let code = get("code").ok_or_else(|| anyhow!("the redirect carries no code"))?;

    // 5. The code exchange, proving possession of the PKCE verifier.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.into()))?
        .set_pkce_verifier(pkce_verifier)
        .request_async(&dpop_http)
        .await
        .context("exchanging the code")?;
    // RFC 9449 §5: a response that is not DPoP-bound is discarded, since the binding matters here.
    if !tokens.token_type().as_ref().eq_ignore_ascii_case("dpop") {
        bail!(
            "the server issued {:?} tokens, not DPoP-bound ones: refusing them",
            tokens.token_type().as_ref()
        );
    }
    println!(
        "DPoP: tokens bound to this app's key (jkt {}), token_type DPoP",
        dpop.thumbprint()
    );

    // 6. The ID token: signature (JWKS), iss, aud, exp, nonce; then at_hash.
    let id_token = tokens
        .id_token()
        .ok_or_else(|| anyhow!("no ID token (was `openid` requested?)"))?;
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .context("verifying the ID token")?;
    check_at_hash(
        id_token,
        &verifier,
        claims.access_token_hash(),
        tokens.access_token(),
    )?;
    println!("ID token verified (signature, issuer, audience, expiry, nonce, at_hash). Claims:");
    println!("{}", serde_json::to_string_pretty(claims)?);

    // 7. Userinfo, checked to be about the same subject.
    let userinfo: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )?
        .request_async(&dpop_http)
        .await
        .context("calling userinfo")?;
    println!("Userinfo:");
    println!("{}", serde_json::to_string_pretty(&userinfo)?);
    println!(
        "Access token: expires in {} s, scope {:?}",
        tokens.expires_in().map_or(0, |d| d.as_secs()),
        scopes(&tokens)
    );

    // 8. One refresh: a new access token and a rotated refresh token.
    let Some(refresh_token) = tokens.refresh_token() else {
        println!("No refresh token (request `offline_access` to get one).");
        return Ok(());
    };
    let refreshed = client
        .exchange_refresh_token(refresh_token)?
        .request_async(&dpop_http)
        .await
        .context("refreshing")?;
    if let Some(id_token) = refreshed.id_token() {
        // OIDC Core §12.2: same subject; a nonce, if any, is the original one.
        let sent = nonce.secret().clone();
        let again = id_token
            .claims(&verifier, |n: Option<&Nonce>| match n {
                Some(n) if *n.secret() != sent => Err("nonce changed".to_owned()),
                _ => Ok(()),
            })
            .context("verifying the refreshed ID token")?;
        if again.subject() != claims.subject() {
            bail!("the refreshed ID token is about another subject");
        }
        check_at_hash(
            id_token,
            &verifier,
            again.access_token_hash(),
            refreshed.access_token(),
        )?;
    }
    let rotated = refreshed
        .refresh_token()
        .is_some_and(|new| new.secret() != refresh_token.secret());
    println!(
        "Refreshed: new access token expires in {} s, scope {:?}, refresh token rotated: {}",
        refreshed.expires_in().map_or(0, |d| d.as_secs()),
        scopes(&refreshed),
        if rotated { "yes" } else { "no" }
    );
    Ok(())
}

/// DPoP (RFC 9449) for the `openidconnect` requests: an in-memory P-256 key, a fresh proof per
/// request (`htm`, `htu`, `iat`, random `jti`; `ath` with an access token), `Authorization:
/// DPoP` instead of `Bearer`, and the server's nonce (`DPoP-Nonce`) remembered and retried with
/// once when the server asks for it (`use_dpop_nonce`).
struct Dpop {
    http: reqwest::Client,
    key: EcdsaKeyPair,
    jwk: serde_json::Value,
    nonce: Mutex<Option<String>>,
}

impl Dpop {
    fn new(http: reqwest::Client) -> anyhow::Result<Dpop> {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow!("generating the DPoP key failed"))?;
        let point = key.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Ok(Dpop {
            http,
            key,
            jwk,
            nonce: Mutex::new(None),
        })
    }

    /// RFC 7638 thumbprint of the public key: what the server puts in `cnf.jkt`.
    fn thumbprint(&self) -> String {
        let j = &self.jwk;
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            j["x"].as_str().unwrap_or(""),
            j["y"].as_str().unwrap_or("")
        );
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    fn proof(
        &self,
        method: &str,
        htu: &str,
        access_token: Option<&str>,
    ) -> std::io::Result<String> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| std::io::Error::other("no randomness"))?;
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut claims = serde_json::json!({
            "jti": URL_SAFE_NO_PAD.encode(jti), "htm": method, "htu": htu, "iat": iat,
        });
        if let Some(t) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    t.as_bytes(),
                ))
                .into();
        }
        if let Some(n) = self.nonce.lock().ok().and_then(|n| n.clone()) {
            claims["nonce"] = n.into();
        }
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| std::io::Error::other("signing the DPoP proof failed"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// Sends an `openidconnect` request with a DPoP proof.
    async fn send(&self, request: HttpRequest) -> std::io::Result<HttpResponse> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let htu = url.split(['?', '#']).next().unwrap_or(&url).to_owned();
        // A resource request: the access token goes with the DPoP scheme, its hash in the proof.
        let access_token = parts
            .headers
            .get(reqwest::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let proof = self.proof(parts.method.as_str(), &htu, access_token.as_deref())?;
            let mut headers = parts.headers.clone();
            if let Some(t) = &access_token {
                let value = format!("DPoP {t}")
                    .parse()
                    .map_err(|_| std::io::Error::other("bad access token"))?;
                headers.insert(reqwest::header::AUTHORIZATION, value);
            }
            let req = self
                .http
                .request(parts.method.clone(), &url)
                .headers(headers)
                .header("DPoP", proof)
                .body(body.clone());
            let resp = req.send().await.map_err(std::io::Error::other)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(std::io::Error::other)?.to_vec();
            let new_nonce = headers
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(n) = &new_nonce
                && let Ok(mut slot) = self.nonce.lock()
            {
                *slot = Some(n.clone());
            }
            let nonce_asked = String::from_utf8_lossy(&bytes).contains("use_dpop_nonce")
                || headers
                    .get_all(reqwest::header::WWW_AUTHENTICATE)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| v.contains("use_dpop_nonce")));
            if nonce_asked && new_nonce.is_some() && attempt == 1 {
                continue;
            }
            let mut out = HttpResponse::new(bytes);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            return Ok(out);
        }
    }
}

/// RFC 9126 §2: POSTs the authorization request's parameters to the pushed authorization request
/// endpoint and returns the URL for the browser: `client_id` and `request_uri` only.
async fn push_request(
    dpop: &Dpop,
    endpoint: &str,
    auth_url: &openidconnect::url::Url,
    client_id: &str,
) -> anyhow::Result<openidconnect::url::Url> {
    let request = openidconnect::http::Request::builder()
        .method(openidconnect::http::Method::POST)
        .uri(endpoint)
        .header(
            openidconnect::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(auth_url.query().unwrap_or("").as_bytes().to_vec())
        .context("building the pushed authorization request")?;
    let resp = dpop
        .send(request)
        .await
        .context("the pushed authorization request")?;
    let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
    if resp.status().as_u16() != 201 {
        bail!(
            "the pushed authorization request was refused ({}): {} {}",
            resp.status(),
            body["error"].as_str().unwrap_or(""),
            body["error_description"].as_str().unwrap_or("")
        );
    }
    let request_uri = body["request_uri"]
        .as_str()
        .ok_or_else(|| anyhow!("the pushed authorization response has no request_uri"))?;
    let mut url = auth_url.clone();
    url.set_query(None);
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri);
    Ok(url)
}

fn scopes(tokens: &impl OAuth2TokenResponse) -> String {
    tokens
        .scopes()
        .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// OIDC Core §3.1.3.8: the ID token's `at_hash` must match the access token it came with.
fn check_at_hash(
    id_token: &CoreIdToken,
    verifier: &CoreIdTokenVerifier<'_>,
    expected: Option<&AccessTokenHash>,
    access_token: &AccessToken,
) -> anyhow::Result<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let actual = AccessTokenHash::from_token(
        access_token,
        id_token.signing_alg()?,
        id_token.signing_key(verifier)?,
    )?;
    if actual != *expected {
        bail!("at_hash does not match the access token");
    }
    Ok(())
}

/// Best effort: the system browser. The URL is printed anyway.
fn open_browser(url: &str) {
    let candidates: &[(&str, &[&str])] = if cfg!(target_os = "macos") {
        &[("open", &[])]
    } else if cfg!(windows) {
        &[("rundll32", &["url.dll,FileProtocolHandler"])]
    } else {
        &[("xdg-open", &[])]
    };
    for (program, pre) in candidates {
        let spawned = std::process::Command::new(program)
            .args(*pre)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            return;
        }
    }
    eprintln!("(could not open a browser: open the URL above by hand)");
}

/// Serves the loopback listener until a request for the redirect path arrives (other paths,
/// such as `/favicon.ico`, get a 404) and returns its query parameters.
fn wait_for_redirect(
    listener: TcpListener,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, String)>> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    bail!("no redirect within {} s", timeout.as_secs());
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(params) = handle_connection(stream)? {
            return Ok(params);
        }
    }
}

fn handle_connection(mut stream: TcpStream) -> anyhow::Result<Option<Vec<(String, String)>>> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return Ok(None);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != REDIRECT_PATH {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return Ok(None);
    }
    let body = "<!doctype html><title>Signed in</title>\
                <p>You can close this window and return to the app.</p>";
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Ok(Some(
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
    ))
}
