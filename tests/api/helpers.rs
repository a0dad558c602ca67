//! The test harness: every test spawns the real server on `127.0.0.1:0` with its own temporary
//! directory (SQLite database and keys), talks to it over HTTP, and drives the real `latchkey`
//! binary for CLI work against the same database, as an operator would in production.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use latchkey::app::Application;
use latchkey::config::Config;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tempfile::TempDir;

/// The audience most tests register their client for.
pub const API: &str = "https://api.example.test";

pub struct TestApp {
    /// `http://127.0.0.1:{port}`: where the server listens.
    pub address: String,
    /// The configured issuer; equal to `address` unless a test configured another one.
    pub issuer: String,
    pub port: u16,
    pub config: Config,
    pub http: reqwest::Client,
    /// Holds the database and keys; deleted when the test ends.
    pub dir: TempDir,
    /// Environment the CLI (and a server process) gets beyond the configuration, such as
    /// `LATCHKEY_KEY_ENCRYPTION_KEY` for replicas.
    pub extra_env: Vec<(String, String)>,
    /// Set when the server runs as a separate `latchkey serve` process.
    pub process: Option<ServerProcess>,
}

/// A `latchkey serve` child process, killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl ServerProcess {
    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response, fully read.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The output of one CLI run.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A client registered through `latchkey client add --json`.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub metadata: Value,
}

impl TestClient {
    pub fn secret(&self) -> &str {
        self.client_secret
            .as_deref()
            .expect("a confidential client has a secret")
    }

    pub fn basic(&self) -> Option<(&str, &str)> {
        Some((&self.client_id, self.secret()))
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns the server with the test defaults, adjusted by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("create temp dir");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let mut config = Config {
            issuer: format!("http://127.0.0.1:{port}"),
            listen: format!("127.0.0.1:{port}"),
            database_url: format!("sqlite://{}", dir.path().join("latchkey.db").display()),
            keys_dir: dir.path().join("keys"),
            workers: 1,
            db_pool_size: 4,
            ..Config::default()
        };
        configure(&mut config);
        std::fs::write(dir.path().join("latchkey.toml"), config_toml(&config))
            .expect("write latchkey.toml");
        let app = Application::build_with_listener(config.clone(), listener)
            .await
            .expect("build the application");
        assert_eq!(app.port(), port);
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            issuer: config.issuer.clone(),
            port,
            config,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("reqwest client"),
            dir,
            extra_env: vec![],
            process: None,
        }
    }

    /// Starts the real `latchkey serve` binary as a separate process, configured only through
    /// `LATCHKEY_*` environment variables (plus `extra_env`), and waits until `/readyz`
    /// answers 200. Replica tests run two of these on one PostgreSQL database.
    pub async fn spawn_process(
        configure: impl FnOnce(&mut Config),
        extra_env: &[(&str, &str)],
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("create temp dir");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            l.local_addr().expect("local addr").port()
        };
        let mut config = Config {
            issuer: format!("http://127.0.0.1:{port}"),
            listen: format!("127.0.0.1:{port}"),
            database_url: format!("sqlite://{}", dir.path().join("latchkey.db").display()),
            keys_dir: dir.path().join("keys"),
            workers: 1,
            db_pool_size: 4,
            ..Config::default()
        };
        configure(&mut config);
        config.listen = format!("127.0.0.1:{port}");
        let extra_env: Vec<(String, String)> = extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let log = dir.path().join("server.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.arg("serve").current_dir(dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("LATCHKEY_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        for (k, v) in config_pairs(&config) {
            cmd.env(format!("LATCHKEY_{}", k.to_ascii_uppercase()), v);
        }
        cmd.envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create server.log"));
        let child = cmd.spawn().expect("spawn latchkey serve");
        let mut app = TestApp {
            address: format!("http://127.0.0.1:{port}"),
            issuer: config.issuer.clone(),
            port,
            config,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("reqwest client"),
            dir,
            extra_env,
            process: Some(ServerProcess { child, log }),
        };
        let started = Instant::now();
        loop {
            if let Some(p) = app.process.as_mut()
                && let Ok(Some(status)) = p.child.try_wait()
            {
                panic!("latchkey serve exited with {status}:\n{}", p.log());
            }
            if let Ok(r) = app.http.get(app.url("/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "latchkey serve did not become ready:\n{}",
                app.process
                    .as_ref()
                    .map(ServerProcess::log)
                    .unwrap_or_default()
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        app
    }

    /// `kill -9` the server process.
    pub fn kill(&mut self) {
        let p = self
            .process
            .as_mut()
            .expect("only a server process can be killed");
        p.child.kill().expect("SIGKILL");
        p.child.wait().expect("reap");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// RFC 7009 revocation with `form`, authenticated with `basic` when given: the status.
    pub async fn revoke(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::StatusCode {
        let mut req = self.http.post(self.url("/revoke")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.expect("revoke").status()
    }

    pub async fn get(&self, path: &str) -> Resp {
        Resp::read(
            self.http
                .get(self.url(path))
                .send()
                .await
                .expect("GET request"),
        )
        .await
    }

    pub async fn discovery(&self) -> Resp {
        self.get("/.well-known/openid-configuration").await
    }

    /// The JWKS, fetched from the `jwks_uri` that discovery advertises.
    pub async fn get_jwks(&self) -> Resp {
        let meta = self.discovery().await;
        assert_eq!(meta.status, StatusCode::OK);
        let jwks_uri = meta.json()["jwks_uri"]
            .as_str()
            .expect("jwks_uri")
            .to_owned();
        Resp::read(self.http.get(jwks_uri).send().await.expect("GET jwks")).await
    }

    pub async fn jwks(&self) -> Value {
        let r = self.get_jwks().await;
        assert_eq!(r.status, StatusCode::OK);
        r.json()
    }

    /// `POST /token` with a form body; `basic` adds `client_secret_basic` credentials
    /// (form-urlencoded, then base64, per RFC 6749 §2.3.1).
    pub async fn post_token(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let auth = basic.map(|(id, secret)| basic_header(id, secret));
        self.post_token_raw(
            body.into_bytes(),
            Some("application/x-www-form-urlencoded"),
            auth.as_deref(),
        )
        .await
    }

    /// `POST /token` with exactly these bytes and headers.
    pub async fn post_token_raw(
        &self,
        body: impl Into<Vec<u8>>,
        content_type: Option<&str>,
        authorization: Option<&str>,
    ) -> Resp {
        let mut req = self.http.post(self.url("/token")).body(body.into());
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        Resp::read(req.send().await.expect("POST /token")).await
    }

    /// A client_credentials token for `client` (client_secret_basic), asserting success.
    pub async fn token_for(&self, client: &TestClient, extra: &[(&str, &str)]) -> Value {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let r = self.post_token(&form, client.basic()).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "token request failed: {}",
            r.text()
        );
        r.json()
    }

    pub async fn access_token_for(&self, client: &TestClient) -> String {
        self.token_for(client, &[]).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Sends raw bytes on a fresh TCP connection and returns the raw response (status, lowercase
    /// header names, body). For requests reqwest will not produce (e.g. chunked bodies).
    pub async fn raw_http(&self, request: Vec<u8>) -> (u16, HashMap<String, String>, Vec<u8>) {
        let port = self.port;
        actix_web::rt::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(&request).expect("write request");
            let mut buf = Vec::new();
            // The server may answer (and close) before reading everything we sent; read
            // until it closes or the response is complete.
            let mut chunk = [0u8; 4096];
            loop {
                match s.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) if !buf.is_empty() => break,
                    Err(e) => panic!("reading the response failed: {e}"),
                }
                if response_complete(&buf) {
                    break;
                }
            }
            parse_raw_response(&buf)
        })
        .await
        .expect("raw http task")
    }

    /// Runs the real `latchkey` binary with this server's configuration (same database, keys
    /// directory, issuer and key schedule), optionally feeding `stdin`. The configuration
    /// reaches the CLI twice, as an operator would set it: `./latchkey.toml` in the working
    /// directory and the `LATCHKEY_*` environment (which overrides the file).
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        self.cli_with_env(args, stdin, &[]).await
    }

    /// As [`cli`](Self::cli) with extra (or overriding) environment variables.
    pub async fn cli_with_env(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> CliOutput {
        self.run_cli_in(self.dir.path().to_owned(), args, stdin, env)
            .await
    }

    /// As [`cli_with_env`](Self::cli_with_env), but from a working directory with no
    /// `latchkey.toml`: the `LATCHKEY_*` environment is the only configuration.
    pub async fn cli_env_only(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> CliOutput {
        let cwd = self.dir.path().join("env-only");
        std::fs::create_dir_all(&cwd).expect("create env-only dir");
        self.run_cli_in(cwd, args, stdin, env).await
    }

    /// Runs the CLI from this server's directory with no `LATCHKEY_*` environment at all, so
    /// that only `--config` (or `./latchkey.toml`) configures it.
    pub async fn cli_no_env(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let stdin = stdin.map(str::to_owned);
        let cwd = self.dir.path().to_owned();
        actix_web::rt::task::spawn_blocking(move || run_cli(&args, stdin.as_deref(), &[], &cwd))
            .await
            .expect("cli task")
    }

    /// The `LATCHKEY_*` variables describing this server's configuration.
    pub fn config_env(&self) -> Vec<(String, String)> {
        config_pairs(&self.config)
            .into_iter()
            .map(|(k, v)| (format!("LATCHKEY_{}", k.to_ascii_uppercase()), v))
            .collect()
    }

    async fn run_cli_in(
        &self,
        cwd: std::path::PathBuf,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> CliOutput {
        let mut vars = self.config_env();
        vars.extend(self.extra_env.iter().cloned());
        for (k, v) in env {
            vars.retain(|(vk, _)| vk != k);
            vars.push(((*k).into(), (*v).into()));
        }
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let stdin = stdin.map(str::to_owned);
        actix_web::rt::task::spawn_blocking(move || run_cli(&args, stdin.as_deref(), &vars, &cwd))
            .await
            .expect("cli task")
    }

    /// `latchkey client add ... --json`, asserting success.
    pub async fn add_client(&self, args: &[&str]) -> TestClient {
        let mut full = vec!["client", "add"];
        full.extend_from_slice(args);
        full.push("--json");
        let out = self.cli(&full, None).await;
        assert_eq!(out.code, Some(0), "client add failed: {out:?}");
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("client add --json printed non-JSON ({e}): {out:?}"));
        TestClient {
            client_id: v["client_id"].as_str().expect("client_id").to_owned(),
            client_secret: v["client_secret"].as_str().map(str::to_owned),
            metadata: v,
        }
    }

    /// The confidential client from the issue's "Done when": client_credentials, `api:read`,
    /// audience [`API`].
    pub async fn add_service_client(&self) -> TestClient {
        self.add_client(&[
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
        ])
        .await
    }

    /// Polls `check` every 100 ms until it returns `Some`, failing after `deadline`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, deadline: Duration, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        eventually(what, deadline, check).await
    }
}

impl Resp {
    pub async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("read body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}); status {}: {}",
                self.status,
                self.text()
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of `Content-Type`, without parameters, lowercased.
    pub fn media_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    /// Asserts an RFC 6749 §5.2 error: this status, a JSON body with exactly this `error`, a
    /// string `error_description`, and `Cache-Control: no-store`.
    #[track_caller]
    pub fn assert_oauth_error(&self, status: u16, error: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status} {error}, got {}: {}",
            self.status,
            self.text()
        );
        assert_eq!(
            self.media_type(),
            "application/json",
            "error body: {}",
            self.text()
        );
        let v = self.json();
        assert_eq!(v["error"], error, "body: {v}");
        assert!(
            v["error_description"].is_string(),
            "error_description should be a string: {v}"
        );
        // RFC 6749 §5.2 error characters: %x20-21 / %x23-5B / %x5D-7E.
        if let Some(d) = v["error_description"].as_str() {
            assert!(
                d.bytes().all(|b| b == 0x20
                    || b == 0x21
                    || (0x23..=0x5B).contains(&b)
                    || (0x5D..=0x7E).contains(&b)),
                "error_description has characters RFC 6749 §5.2 forbids: {d:?}"
            );
        }
        assert_eq!(
            self.header("cache-control"),
            Some("no-store"),
            "token endpoint errors must not be cached"
        );
    }
}

pub fn basic_header(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// The configuration keys the CLI needs to act on the same server, as (key, value) strings.
fn config_pairs(c: &Config) -> Vec<(&'static str, String)> {
    vec![
        ("issuer", c.issuer.clone()),
        ("database_url", c.database_url.clone()),
        ("keys_dir", c.keys_dir.display().to_string()),
        ("access_token_ttl", c.access_token_ttl.to_string()),
        ("id_token_ttl", c.id_token_ttl.to_string()),
        ("jwks_max_age", c.jwks_max_age.to_string()),
        ("key_publish_ahead", c.key_publish_ahead.to_string()),
        ("key_rotation_interval", c.key_rotation_interval.to_string()),
        ("listen", c.listen.clone()),
        ("workers", c.workers.to_string()),
        ("db_pool_size", c.db_pool_size.to_string()),
        ("refresh_reuse_grace", c.refresh_reuse_grace.to_string()),
    ]
}

/// `latchkey.toml` for the CLI, with the same values as the server's `Config`.
fn config_toml(c: &Config) -> String {
    config_pairs(c)
        .into_iter()
        .map(|(k, v)| match v.parse::<u64>() {
            Ok(n) => format!("{k} = {n}\n"),
            // A JSON string literal is a valid TOML basic string.
            Err(_) => format!("{k} = {}\n", serde_json::Value::from(v)),
        })
        .collect()
}

fn run_cli(
    args: &[String],
    stdin: Option<&str>,
    vars: &[(String, String)],
    cwd: &std::path::Path,
) -> CliOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.args(args).current_dir(cwd);
    // Only what the test decides: no LATCHKEY_* leaking in from the developer's shell.
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(vars.iter().map(|(k, v)| (k, v)));
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the latchkey binary");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for latchkey");
    CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match len {
        Some(n) => buf.len() >= end + 4 + n,
        None => false,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_raw_response(buf: &[u8]) -> (u16, HashMap<String, String>, Vec<u8>) {
    let end = find(buf, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "incomplete HTTP response: {:?}",
            String::from_utf8_lossy(buf)
        )
    });
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, buf[end + 4..].to_vec())
}

/// The JWT's three parts, base64url-decoded header and payload as JSON.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let (h, p, s) = (it.next(), it.next(), it.next());
    assert!(
        h.is_some() && p.is_some() && s.is_some() && it.next().is_none(),
        "not a compact JWS: {token}"
    );
    let dec = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    (dec(h.unwrap_or("")), dec(p.unwrap_or("")))
}

/// The outcome of verifying an access token offline, the way a resource server would.
#[derive(Debug)]
pub struct Verified {
    pub header: Header,
    pub claims: Value,
}

/// Verifies `token` with `jsonwebtoken` against `jwks` only: kid from the header selects the
/// JWK, the algorithm comes from the JWK (never from the token), and iss, aud and exp are
/// required and checked.
pub fn verify_offline(
    token: &str,
    jwks: &Value,
    issuer: &str,
    audience: &str,
) -> Result<Verified, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.clone().ok_or("the header has no kid")?;
    let raw = jwks["keys"]
        .as_array()
        .ok_or("the JWKS has no keys array")?
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("JWK: {e}"))?;
    let alg: Algorithm = raw["alg"]
        .as_str()
        .ok_or("the JWK has no alg")?
        .parse()
        .map_err(|e| format!("JWK alg: {e}"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("decoding key: {e}"))?;
    let mut v = Validation::new(alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 5;
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| format!("{e}"))?;
    Ok(Verified {
        header: data.header,
        claims: data.claims,
    })
}

/// RFC 7638 thumbprint computed from the raw JWK members, independently of jsonwebtoken.
pub fn rfc7638_thumbprint(jwk: &Value) -> String {
    let s = |k: &str| -> String {
        serde_json::to_string(jwk[k].as_str().unwrap_or_else(|| panic!("JWK member {k}")))
            .expect("JSON string")
    };
    let canonical = match jwk["kty"].as_str() {
        Some("EC") => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        Some("RSA") => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s("e"), s("n")),
        Some("OKP") => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, s("crv"), s("x")),
        other => panic!("unexpected kty {other:?}"),
    };
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// The thumbprint as jsonwebtoken computes it.
pub fn jsonwebtoken_thumbprint(jwk: &Value) -> String {
    let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("JWK");
    jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint")
}

/// base64url(SHA-256(secret)): how the server stores client secrets; used to prove the CLI
/// never prints the hash either.
pub fn sha256_b64url(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        s.as_bytes(),
    ))
}

/// The kids of the JWKS keys with this `alg`.
pub fn kids(jwks: &Value, alg: &str) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// `target/<profile>/examples/NAME`: the example binaries `cargo test --workspace` builds before
/// running tests (`cargo test --test api` alone does not). `None`, with a message saying why and
/// how to build it, when it is missing.
pub fn example_binary(name: &str, build: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent()?.parent()?;
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        return Some(path);
    }
    eprintln!(
        "SKIPPED: {} is missing; `cargo test --workspace --all-features` builds it, or run \
         `{build}` first",
        path.display()
    );
    None
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Polls `check` every 100 ms until it returns `Some`, failing after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {:?} waiting for {what}",
            start.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client list without the built-in account pages' client (`latchkey-account`, made at the
/// first start): the clients a test made.
pub fn made_clients(list: &Value) -> Vec<Value> {
    list.as_array()
        .expect("a list of clients")
        .iter()
        // The built-in clients of the account pages and the console.
        .filter(|c| c["client_id"] != "latchkey-account" && c["client_id"] != "latchkey-console")
        .cloned()
        .collect()
}

/// RFC 7662 introspection of `token` by the resource server `rs`.
pub async fn introspect_as(app: &TestApp, rs: &TestClient, token: &str) -> Value {
    let r = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&rs.client_id, rs.client_secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    r.json().await.expect("introspection JSON")
}
