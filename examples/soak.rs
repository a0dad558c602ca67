//! Soak load for a running Latchkey (driven by `bench/soak.sh`): N simulated apps log in
//! through the HTML login form with PKCE, then for the whole duration refresh, call userinfo,
//! get introspected, revoke and log in again — and a few percent of requests are malformed.
//!
//! It fails (exit 1) if any response is a 5xx, or if an app's own current refresh token is ever
//! refused (a lost grant: each chain is used by one app only, so a refusal means the server
//! lost or double-spent a rotation). Prints a JSON summary on stdout.
//!
//! ```text
//! cargo run --release --example soak -- --issuer http://127.0.0.1:8080 --client-id ID \
//!   --cc-id ID --cc-secret SECRET --username soak --password '...' --apps 16 --duration 120
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

struct Args {
    issuer: String,
    client_id: String,
    cc_id: String,
    cc_secret: String,
    username: String,
    password: String,
    apps: usize,
    duration: u64,
}

fn args() -> Args {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(k) = k.strip_prefix("--") else {
            eprintln!("unexpected argument {k}");
            std::process::exit(2);
        };
        let v = it.next().unwrap_or_default();
        m.insert(k.to_owned(), v);
    }
    let get = |k: &str| {
        m.get(k).cloned().unwrap_or_else(|| {
            eprintln!("--{k} is required");
            std::process::exit(2)
        })
    };
    Args {
        issuer: m
            .get("issuer")
            .cloned()
            .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        client_id: get("client-id"),
        cc_id: get("cc-id"),
        cc_secret: get("cc-secret"),
        username: get("username"),
        password: get("password"),
        apps: m.get("apps").and_then(|v| v.parse().ok()).unwrap_or(16),
        duration: m.get("duration").and_then(|v| v.parse().ok()).unwrap_or(60),
    }
}

/// Not for security: picks the next action.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Default)]
struct Stats {
    by_endpoint: BTreeMap<String, BTreeMap<u16, u64>>,
    failures: Vec<String>,
    logins: u64,
    refreshes: u64,
    revocations: u64,
    malformed: u64,
}

impl Stats {
    fn record(&mut self, endpoint: &str, status: u16, detail: impl FnOnce() -> String) {
        *self
            .by_endpoint
            .entry(endpoint.to_owned())
            .or_default()
            .entry(status)
            .or_default() += 1;
        if status >= 500 && self.failures.len() < 50 {
            self.failures
                .push(format!("{endpoint} answered {status}: {}", detail()));
        }
    }
}

type Shared = Rc<RefCell<Stats>>;

struct App {
    http: reqwest::Client,
    a: Rc<Args>,
    stats: Shared,
    rng: Rng,
    access: Option<String>,
    refresh: Option<String>,
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

fn cookies(resp: &reqwest::Response, jar: &mut BTreeMap<String, String>) {
    for v in resp.headers().get_all("set-cookie") {
        if let Ok(v) = v.to_str()
            && let Some((k, val)) = v.split(';').next().and_then(|p| p.split_once('='))
        {
            jar.insert(k.to_owned(), val.to_owned());
        }
    }
}

fn cookie_header(jar: &BTreeMap<String, String>) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.a.issuer)
    }

    /// One request; records the status. `None` on a transport error (also recorded).
    async fn send(
        &self,
        endpoint: &str,
        req: reqwest::RequestBuilder,
    ) -> Option<(u16, Vec<u8>, reqwest::header::HeaderMap)> {
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                self.stats.borrow_mut().record(endpoint, status, || {
                    String::from_utf8_lossy(&body).chars().take(200).collect()
                });
                Some((status, body, headers))
            }
            Err(e) => {
                let mut s = self.stats.borrow_mut();
                if s.failures.len() < 50 {
                    s.failures.push(format!("{endpoint}: transport error {e}"));
                }
                None
            }
        }
    }

    async fn login(&mut self) -> bool {
        let verifier = format!("v{}", latchkey::secret::new_secret());
        let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            verifier.as_bytes(),
        ));
        let redirect = "http://127.0.0.1:9/cb";
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.a.client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", "openid profile offline_access api:read")
            .append_pair("state", "s")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let mut jar = BTreeMap::new();
        let Ok(page) = self
            .http
            .get(self.url(&format!("/authorize?{q}")))
            .send()
            .await
        else {
            return false;
        };
        cookies(&page, &mut jar);
        let status = page.status().as_u16();
        let html = page.text().await.unwrap_or_default();
        self.stats
            .borrow_mut()
            .record("GET /authorize", status, || html.clone());
        let (Some(csrf), Some(request)) = (hidden(&html, "csrf"), hidden(&html, "request")) else {
            return false;
        };
        let form = [
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", self.a.username.as_str()),
            ("password", self.a.password.as_str()),
        ];
        let Some((status, _, headers)) = self
            .send(
                "POST /authorize/login",
                self.http
                    .post(self.url("/authorize/login"))
                    .header("cookie", cookie_header(&jar))
                    .form(&form),
            )
            .await
        else {
            return false;
        };
        let location = headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("");
        let code = url::Url::parse(location).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        });
        let Some(code) = code else {
            if status != 429 {
                self.stats.borrow_mut().failures.push(format!(
                    "login did not redirect with a code: {status} {location}"
                ));
            }
            return false;
        };
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", self.a.client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let Some((200, body, _)) = self
            .send(
                "POST /token code",
                self.http.post(self.url("/token")).form(&form),
            )
            .await
        else {
            return false;
        };
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        self.access = v["access_token"].as_str().map(str::to_owned);
        self.refresh = v["refresh_token"].as_str().map(str::to_owned);
        self.stats.borrow_mut().logins += 1;
        true
    }

    async fn refresh(&mut self) {
        let Some(rt) = self.refresh.clone() else {
            return;
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("client_id", self.a.client_id.as_str()),
        ];
        let Some((status, body, _)) = self
            .send(
                "POST /token refresh",
                self.http.post(self.url("/token")).form(&form),
            )
            .await
        else {
            // The response may have been lost after the server rotated: retry once, as an app
            // does (the retry window makes this safe).
            return;
        };
        if status == 200 {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            self.access = v["access_token"].as_str().map(str::to_owned);
            self.refresh = v["refresh_token"].as_str().map(str::to_owned);
            self.stats.borrow_mut().refreshes += 1;
        } else {
            self.stats.borrow_mut().failures.push(format!(
                "LOST GRANT: the app's current refresh token was refused: {status} {}",
                String::from_utf8_lossy(&body)
            ));
            self.refresh = None;
        }
    }

    async fn introspect(&mut self) {
        let Some(at) = self.access.clone() else {
            return;
        };
        let form = [("token", at.as_str())];
        let req = self
            .http
            .post(self.url("/introspect"))
            .basic_auth(&self.a.cc_id, Some(&self.a.cc_secret))
            .form(&form);
        if let Some((200, body, _)) = self.send("POST /introspect", req).await {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            if v["active"] != true {
                self.stats
                    .borrow_mut()
                    .failures
                    .push(format!("a live access token introspected inactive: {v}"));
            }
        }
    }

    async fn userinfo(&mut self) {
        let Some(at) = self.access.clone() else {
            return;
        };
        let req = self.http.get(self.url("/userinfo")).bearer_auth(at);
        let _ = self.send("GET /userinfo", req).await;
    }

    async fn revoke(&mut self) {
        let Some(rt) = self.refresh.take() else {
            return;
        };
        let form = [
            ("token", rt.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", self.a.client_id.as_str()),
        ];
        let req = self.http.post(self.url("/revoke")).form(&form);
        let _ = self.send("POST /revoke", req).await;
        self.access = None;
        self.stats.borrow_mut().revocations += 1;
    }

    /// A malformed or hostile request: must be refused with a 4xx, never a 5xx.
    async fn malformed(&mut self) {
        self.stats.borrow_mut().malformed += 1;
        let junk: String = (0..self.rng.below(200))
            .map(|_| char::from(32 + self.rng.below(95) as u8))
            .collect();
        let req = match self.rng.below(6) {
            0 => self
                .http
                .post(self.url("/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(junk),
            1 => self
                .http
                .post(self.url("/token"))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", junk.as_str()), ("client_id", self.a.client_id.as_str())]),
            2 => self.http.get(self.url(&format!(
                "/authorize?client_id={}&redirect_uri=https%3A%2F%2Fevil.example%2F&response_type=code",
                self.a.client_id
            ))),
            3 => self
                .http
                .post(self.url("/introspect"))
                .basic_auth(&self.a.cc_id, Some("wrong-secret"))
                .form(&[("token", junk.as_str())]),
            4 => self
                .http
                .get(self.url("/userinfo"))
                .header("authorization", format!("Bearer {}", junk.replace(' ', "."))),
            _ => self
                .http
                .post(self.url("/token"))
                .header("content-type", "application/json")
                .body(format!("{{\"grant_type\":\"{junk}\"}}")),
        };
        if let Some((status, body, _)) = self.send("malformed", req).await
            && !(400..500).contains(&status)
        {
            self.stats.borrow_mut().failures.push(format!(
                "malformed request answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
    }

    async fn run(mut self, deadline: Instant) {
        while Instant::now() < deadline {
            if self.refresh.is_none() && !self.login().await {
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            match self.rng.below(100) {
                0..=59 => self.refresh().await,
                60..=74 => self.introspect().await,
                75..=84 => self.userinfo().await,
                85..=87 => self.revoke().await,
                _ => self.malformed().await,
            }
        }
    }
}

#[actix_web::main]
async fn main() {
    let a = Rc::new(args());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| {
            eprintln!("HTTP client: {e}");
            std::process::exit(1)
        });
    let stats: Shared = Rc::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.duration);
    let seed = started.elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut tasks = Vec::new();
    for i in 0..a.apps {
        let app = App {
            http: http.clone(),
            a: a.clone(),
            stats: stats.clone(),
            rng: Rng(seed.wrapping_add(i as u64 * 0x1000_0001) | 1),
            access: None,
            refresh: None,
        };
        tasks.push(actix_web::rt::spawn(app.run(deadline)));
    }
    for t in tasks {
        let _ = t.await;
    }
    let s = stats.borrow();
    let total: u64 = s.by_endpoint.values().flat_map(|m| m.values()).sum();
    let summary = serde_json::json!({
        "seconds": started.elapsed().as_secs_f64(),
        "requests": total,
        "logins": s.logins,
        "refreshes": s.refreshes,
        "revocations": s.revocations,
        "malformed": s.malformed,
        "by_endpoint": s.by_endpoint,
        "failures": s.failures,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    if !s.failures.is_empty() {
        std::process::exit(1);
    }
}
