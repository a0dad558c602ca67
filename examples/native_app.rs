//! A native app logging a user in through Latchkey, the way a mobile or desktop app does it
//! (RFC 8252): OpenID Connect discovery, authorization code + PKCE S256, the system browser, a
//! loopback redirect on an ephemeral port, ID token verification, userinfo, one refresh.
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
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse, reqwest,
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

    // 2. A loopback listener on an ephemeral port (RFC 8252 §7.3), bound before the browser opens.
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let redirect_uri = format!(
        "http://127.0.0.1:{}{REDIRECT_PATH}",
        listener.local_addr()?.port()
    );
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(client_id), None)
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
        .request_async(&http)
        .await
        .context("exchanging the code")?;

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
        .request_async(&http)
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
        .request_async(&http)
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
