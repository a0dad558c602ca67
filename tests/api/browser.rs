//! A minimal browser for the login flow: a cookie jar, no redirects followed, and form
//! scraping for the login and consent pages. Plus the mobile-app setup every flow test uses.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Resp, TestApp, TestClient, sha256_b64url};

pub const PASSWORD: &str = "correct horse battery";
pub const REDIRECT: &str = "http://127.0.0.1/cb";
/// The loopback redirect an app on an ephemeral port uses (only the port differs).
pub const REDIRECT_PORT: &str = "http://127.0.0.1:51234/cb";
pub const SCOPE: &str = "openid profile email offline_access api:read";

/// A browser's HTTP client: no redirects followed.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
}

pub struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            http: app.http.clone(),
            cookies: HashMap::new(),
        }
    }

    /// A browser on another machine: its connections come from `source` (any 127.0.0.0/8
    /// address works on Linux loopback), so the server sees another client address.
    pub fn from_address(app: &'a TestApp, source: &str) -> Self {
        let http = client_builder()
            .local_address(Some(source.parse().expect("source address")))
            .build()
            .expect("reqwest client");
        Browser {
            app,
            http,
            cookies: HashMap::new(),
        }
    }

    /// Sends every later request with these extra headers (a proxy's `X-Forwarded-For`).
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            name,
            reqwest::header::HeaderValue::from_str(value).expect("header value"),
        );
        self.http = client_builder()
            .default_headers(headers)
            .build()
            .expect("reqwest client");
        self
    }

    /// Goes on with the same cookies at another server (a replica behind the same issuer).
    pub fn switch_to(&mut self, app: &'a TestApp) {
        self.app = app;
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store(&mut self, r: &Resp) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().expect("set-cookie");
            let pair = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = pair.split_once('=') {
                if val.is_empty() || v.to_ascii_lowercase().contains("max-age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), val.to_owned());
                }
            }
        }
    }

    pub async fn get(&mut self, path_and_query: &str) -> Resp {
        let r = self
            .http
            .get(self.app.url(path_and_query))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        let r = Resp::read(r).await;
        self.store(&r);
        r
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = self
            .http
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        let r = Resp::read(r).await;
        self.store(&r);
        r
    }

    /// Submits the login form on `page` with these credentials.
    pub async fn login(&mut self, page: &Resp, username: &str, password: &str) -> Resp {
        let (csrf, request) = (hidden(page, "csrf"), hidden(page, "request"));
        self.post(
            "/authorize/login",
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Presses Allow or Deny on a consent page.
    pub async fn consent(&mut self, page: &Resp, decision: &str) -> Resp {
        let (csrf, request) = (hidden(page, "csrf"), hidden(page, "request"));
        self.post(
            "/authorize/consent",
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("decision", decision),
            ],
        )
        .await
    }
}

/// The value of a hidden form field, HTML-unescaped.
pub fn hidden(page: &Resp, name: &str) -> String {
    let html = page.text();
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden field {name} in: {html}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("closing quote");
    unescape(&html[start..end])
}

/// The text of the element with this `id` (up to its first tag), HTML-unescaped.
pub fn text_by_id(page: &Resp, id: &str) -> String {
    let html = page.text();
    let marker = format!("id=\"{id}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in: {html}"))
        + marker.len();
    let end = start + html[start..].find('<').expect("end of the text");
    unescape(&html[start..end])
}

/// HTML attribute text as minijinja escapes it, back to the value.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The page a signed-in user sees when a public client with a loopback or private-use redirect
/// asks for a code (RFC 8252 §8.6): no password field, one "Continue as NAME" button.
pub fn is_confirmation(r: &Resp, username: &str) -> bool {
    let html = r.text();
    r.status == StatusCode::OK
        && html.contains(&format!("Continue as {username}"))
        && !html.contains("name=\"password\"")
        && !html.contains(">Allow<")
}

/// A redirect's query parameters (`Location` must be present).
pub fn location_params(r: &Resp) -> (String, HashMap<String, String>) {
    assert_eq!(
        r.status,
        StatusCode::FOUND,
        "expected a redirect: {} {}",
        r.status,
        r.text()
    );
    let loc = r.header("location").expect("Location").to_owned();
    let url = url::Url::parse(&loc).expect("absolute Location");
    let params = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let base = loc[..loc.find('?').unwrap_or(loc.len())].to_owned();
    (base, params)
}

pub fn pkce() -> (String, String) {
    let verifier = format!("v{}", latchkey::secret::new_secret());
    let challenge = sha256_b64url(&verifier);
    (verifier, challenge)
}

pub struct Mobile {
    pub client: TestClient,
    pub username: String,
    pub sub: String,
}

/// A user and the public client from issue 3's "Done when" (`first_party` skips consent).
pub async fn setup(app: &TestApp, first_party: bool) -> Mobile {
    let out = app
        .cli(
            &[
                "user",
                "add",
                "--username",
                "alice",
                "--email",
                "alice@example.test",
                "--name",
                "Alice",
                "--password-stdin",
                "--json",
            ],
            Some(PASSWORD),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let user: Value = serde_json::from_str(&out.stdout).expect("user JSON");
    let mut args = vec![
        "--name",
        "app",
        "--type",
        "public",
        "--redirect-uri",
        REDIRECT,
        "--redirect-uri",
        "com.example.app:/cb",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        SCOPE,
        "--audience",
        crate::helpers::API,
        "--post-logout-redirect-uri",
        "com.example.app:/logged-out",
    ];
    if first_party {
        args.push("--first-party");
    }
    let client = app.add_client(&args).await;
    Mobile {
        client,
        username: "alice".into(),
        sub: user["sub"].as_str().expect("sub").to_owned(),
    }
}

/// `/authorize?…` for this client with PKCE S256, `state` and `nonce`, plus `extra`.
pub fn authorize_path(client_id: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT_PORT)
        .append_pair("scope", SCOPE)
        .append_pair("state", "st-123")
        .append_pair("nonce", "n-456")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/authorize?{}", q.finish())
}

/// Logs in (and consents if asked) and returns the code from the redirect.
pub async fn obtain_code(
    app: &TestApp,
    b: &mut Browser<'_>,
    m: &Mobile,
    challenge: &str,
) -> String {
    let mut r = b
        .get(&authorize_path(&m.client.client_id, challenge, &[]))
        .await;
    if r.status == StatusCode::OK && r.text().contains("name=\"password\"") {
        r = b.login(&r, &m.username, PASSWORD).await;
    }
    // The consent page, or the "Continue as alice" page a public native client gets when the
    // user is already signed in (RFC 8252 §8.6): both need one press.
    if r.status == StatusCode::OK
        && (r.text().contains(">Allow<") || is_confirmation(&r, &m.username))
    {
        r = b.consent(&r, "allow").await;
    }
    let (base, p) = location_params(&r);
    assert_eq!(base, REDIRECT_PORT);
    assert_eq!(p.get("state").map(String::as_str), Some("st-123"));
    assert_eq!(p.get("iss"), Some(&app.issuer), "RFC 9207 iss");
    p.get("code").expect("code").clone()
}

/// Exchanges a code at the token endpoint as a public client.
pub async fn exchange(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> Resp {
    app.post_token(
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_PORT),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await
}

/// The whole login: returns the token response JSON.
pub async fn login_tokens(app: &TestApp, m: &Mobile) -> Value {
    let mut b = Browser::new(app);
    let (verifier, challenge) = pkce();
    let code = obtain_code(app, &mut b, m, &challenge).await;
    let r = exchange(app, &m.client.client_id, &code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

pub async fn refresh(app: &TestApp, client_id: &str, token: &str) -> Resp {
    app.post_token(
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
        None,
    )
    .await
}
