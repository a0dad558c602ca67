//! Layered configuration: built-in defaults, then a TOML file (`--config PATH`, or
//! `./latchkey.toml` if present), then `LATCHKEY_<KEY>` environment variables.
//! Every value is validated at start-up; an error names the key and what is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Signing algorithms Latchkey can issue tokens with (RFC 7518 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    ES256,
    RS256,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        SigningAlg::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Issuer identifier: an http(s) URL with no query, fragment or trailing slash.
    pub issuer: String,
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// `sqlite://path/to/file.db`, or `postgres://user:pass@host:5432/db` for replicas.
    pub database_url: String,
    /// Directory holding private signing keys (created with mode 0700).
    pub keys_dir: PathBuf,
    /// Lifetimes, in seconds.
    pub access_token_ttl: u64,
    pub refresh_token_ttl: u64,
    pub id_token_ttl: u64,
    pub code_ttl: u64,
    /// Algorithm for access tokens (default ES256) and ID tokens (default RS256, the OIDC default).
    pub access_token_alg: SigningAlg,
    pub id_token_alg: SigningAlg,
    /// `Cache-Control: max-age` of the JWKS, in seconds.
    pub jwks_max_age: u64,
    /// A rotated key is published this many seconds before it signs. Should be at least
    /// `jwks_max_age` so that verifiers holding a cached JWKS know the key before they see it
    /// (start-up logs a warning otherwise; a verifier then refetches on the unknown `kid`).
    pub key_publish_ahead: u64,
    /// Seconds between automatic key rotations (0: rotate only with `latchkey keys rotate`).
    pub key_rotation_interval: u64,
    /// Absolute lifetime of a refresh token family (idle lifetime is `refresh_token_ttl`).
    pub refresh_token_absolute_ttl: u64,
    /// A rotated refresh token presented again within this many seconds is treated as a
    /// retry after a lost response (mobile networks), not as theft. 0 disables the window.
    pub refresh_reuse_grace: u64,
    /// Browser login session lifetime, in seconds.
    pub session_ttl: u64,
    /// Sign-in throttling (docs/security.md, "Sign-in throttling"): only failed attempts are
    /// charged. Failures allowed for one account from one client address (an IPv4 address or
    /// an IPv6 /64) before it must wait, and the seconds after which one more is allowed.
    pub login_burst_per_account_ip: u32,
    pub login_replenish_secs: u64,
    /// Failures allowed from one client address across all accounts (password spraying),
    /// and the seconds per further failure.
    pub login_burst_per_ip: u32,
    pub login_ip_replenish_secs: u64,
    /// Failures allowed for one account from all addresses together (the backstop against a
    /// campaign from many addresses), and the seconds per further failure.
    pub login_burst_per_account: u32,
    pub login_account_replenish_secs: u64,
    /// Proxies (CIDR blocks, or single addresses) whose `X-Forwarded-For` / `Forwarded`
    /// headers name the client address; empty (the default): the TCP peer is the client. A
    /// list, or one string of comma-separated entries (`LATCHKEY_TRUSTED_PROXIES`).
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// argon2id cost of new password hashes: memory in KiB and iterations. The defaults are
    /// OWASP's (19 MiB, 2); lower values are for test suites only (start-up warns). Existing
    /// hashes keep the cost they were made with.
    pub password_hash_memory_kib: u32,
    pub password_hash_iterations: u32,
    /// Database connection pool size.
    pub db_pool_size: u32,
    /// HTTP worker threads (0: one per CPU available to the process).
    pub workers: usize,
    /// `text` or `json` logs on stderr.
    pub log_format: LogFormat,
    /// RFC 9449: seconds a DPoP proof is accepted after its `iat` (proofs from up to
    /// `dpop_proof_max_age` in the past, or a few seconds in the future, are accepted; each
    /// proof only once, across replicas).
    pub dpop_proof_max_age: u64,
    /// RFC 9449 §8: require a server-provided nonce in every DPoP proof (`use_dpop_nonce`).
    /// Costs the client one extra round trip whenever its nonce is stale; in exchange a proof
    /// cannot be made in advance and the client's clock no longer matters.
    pub dpop_require_nonce: bool,
    /// RFC 9126: seconds a pushed authorization request's `request_uri` stays usable.
    pub par_ttl: u64,
    /// RFC 9126 §5: every client's authorization requests must be pushed (a client can
    /// require it for itself with `require_pushed_authorization_requests`).
    pub require_pushed_authorization_requests: bool,
    /// RFC 8628: seconds a device code and its user code stay usable.
    pub device_code_ttl: u64,
    /// RFC 8628 §3.2: seconds a device waits between polls (`slow_down` adds 5).
    pub device_poll_interval: u64,
    /// Let outbound requests (a client's `jwks_uri`) reach loopback, private, link-local and
    /// reserved addresses, and use plain http. For development and tests only: with it, anyone
    /// who can register a client can make the server call into its own network (SSRF).
    pub outbound_allow_private_addresses: bool,
    /// HTTPS in the server itself (`src/tls.rs`): the PEM certificate chain and private key,
    /// both or neither, re-read when either file changes. Without them the server speaks
    /// plain HTTP, for a TLS proxy in front of it.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// RFC 8705 `tls_client_auth`: a PEM file of the CAs whose client certificates may
    /// authenticate clients (by subject DN or SAN). Without it only
    /// `self_signed_tls_client_auth` (certificates registered in the client's `jwks`) works.
    pub tls_client_ca: Option<PathBuf>,
    /// Behind a TLS proxy: the request header carrying the client certificate the proxy saw,
    /// as URL-escaped PEM (nginx `$ssl_client_escaped_cert`). Read only from `trusted_proxies`.
    pub tls_client_cert_header: Option<String>,
    /// RFC 8705 §5 `mtls_endpoint_aliases`: the https origin where clients reach the token,
    /// PAR, introspection, revocation, userinfo and device endpoints with a client
    /// certificate (a proxy host that asks for one, so browsers on the issuer's host are never
    /// asked). Default: the issuer itself, when certificates can reach the server.
    pub mtls_endpoint_base: Option<String>,
    /// Serve plain http on a non-loopback address with an http issuer (a private network
    /// only: tokens and passwords then cross it in the clear).
    pub allow_insecure_http: bool,
    /// Passkeys: origins accepted besides the issuer's, for native apps that use the platform
    /// passkey APIs (an Android app's `android:apk-key-hash:...`). The RP ID is always the
    /// issuer's host.
    #[serde(deserialize_with = "string_or_list")]
    pub webauthn_origins: Vec<String>,
    /// Every app needs more than a password (a passkey, or a password and an authenticator
    /// code), as if each client had `require_mfa`. The account pages are exempt, so that users
    /// can enrol a factor.
    pub require_mfa: bool,
    /// iOS apps (`TEAMID.bundle.id`) associated with the issuer's domain: served in
    /// `/.well-known/apple-app-site-association` for passkeys (`webcredentials`) and claimed
    /// https redirects (`applinks`).
    #[serde(deserialize_with = "string_or_list")]
    pub apple_app_ids: Vec<String>,
    /// Android apps (`package.name:SHA256_FINGERPRINT`, the signing certificate's colon-hex
    /// SHA-256) served in `/.well-known/assetlinks.json` (passkeys and app links).
    #[serde(deserialize_with = "string_or_list")]
    pub android_apps: Vec<String>,
    /// How long an enrolment link from `latchkey user invite` stays valid, in seconds.
    pub invitation_ttl: u64,
    /// Seconds without a request after which the admin console (`/console`) asks for the
    /// password (or passkey) again, even while the browser session lives.
    pub console_idle_timeout: u64,
    /// Days an audit entry is kept; older ones are deleted by housekeeping in small batches.
    /// 0 keeps them forever.
    pub audit_retention_days: u64,
    /// Lifetime in seconds of a client attestation JWT from `POST /attest` (issue 23); the app
    /// attests again (an App Attest assertion, a new Android key) when it expires.
    pub attestation_lifetime: u64,
    /// Android Key Attestation: Google's revocation status list (the JSON of
    /// `https://android.googleapis.com/attestation/status`), saved to a file the operator
    /// refreshes; attestation chains with a listed serial are refused. Unset: none revoked.
    pub attestation_android_revocation_list: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "http://127.0.0.1:8080".into(),
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://./data/latchkey.db".into(),
            keys_dir: PathBuf::from("./keys"),
            access_token_ttl: 600,
            refresh_token_ttl: 30 * 24 * 3600,
            id_token_ttl: 600,
            code_ttl: 60,
            access_token_alg: SigningAlg::ES256,
            id_token_alg: SigningAlg::RS256,
            jwks_max_age: 300,
            key_publish_ahead: 300,
            key_rotation_interval: 30 * 24 * 3600,
            refresh_token_absolute_ttl: 90 * 24 * 3600,
            refresh_reuse_grace: 30,
            session_ttl: 24 * 3600,
            login_burst_per_account_ip: 10,
            login_replenish_secs: 60,
            login_burst_per_ip: 30,
            login_ip_replenish_secs: 2,
            login_burst_per_account: 50,
            login_account_replenish_secs: 30,
            trusted_proxies: Vec::new(),
            password_hash_memory_kib: crate::secret::OWASP_ARGON2_MEMORY_KIB,
            password_hash_iterations: crate::secret::OWASP_ARGON2_ITERATIONS,
            db_pool_size: 8,
            workers: 0,
            log_format: LogFormat::Text,
            dpop_proof_max_age: 60,
            dpop_require_nonce: false,
            par_ttl: 60,
            require_pushed_authorization_requests: false,
            device_code_ttl: 600,
            device_poll_interval: 5,
            outbound_allow_private_addresses: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_client_cert_header: None,
            mtls_endpoint_base: None,
            allow_insecure_http: false,
            webauthn_origins: Vec::new(),
            require_mfa: false,
            apple_app_ids: Vec::new(),
            android_apps: Vec::new(),
            invitation_ttl: 7 * 24 * 3600,
            console_idle_timeout: 900,
            audit_retention_days: 365,
            attestation_lifetime: 24 * 3600,
            attestation_android_revocation_list: None,
        }
    }
}

/// Keys that may be set through `LATCHKEY_<KEY>`; other `LATCHKEY_*` variables (used by the
/// example resource API or the test suite) are not configuration and are ignored.
const KEYS: &[&str] = &[
    "issuer",
    "listen",
    "database_url",
    "keys_dir",
    "access_token_ttl",
    "refresh_token_ttl",
    "id_token_ttl",
    "code_ttl",
    "access_token_alg",
    "id_token_alg",
    "jwks_max_age",
    "key_publish_ahead",
    "key_rotation_interval",
    "refresh_token_absolute_ttl",
    "refresh_reuse_grace",
    "session_ttl",
    "login_burst_per_account_ip",
    "login_replenish_secs",
    "login_burst_per_ip",
    "login_ip_replenish_secs",
    "login_burst_per_account",
    "login_account_replenish_secs",
    "trusted_proxies",
    "password_hash_memory_kib",
    "password_hash_iterations",
    "db_pool_size",
    "workers",
    "log_format",
    "dpop_proof_max_age",
    "dpop_require_nonce",
    "par_ttl",
    "require_pushed_authorization_requests",
    "device_code_ttl",
    "device_poll_interval",
    "outbound_allow_private_addresses",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "tls_client_cert_header",
    "mtls_endpoint_base",
    "allow_insecure_http",
    "webauthn_origins",
    "require_mfa",
    "apple_app_ids",
    "android_apps",
    "invitation_ttl",
    "console_idle_timeout",
    "audit_retention_days",
    "attestation_lifetime",
    "attestation_android_revocation_list",
];

impl Config {
    /// Loads configuration: defaults, then `path` (or `./latchkey.toml` if it exists), then env.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => {
                if !p.exists() {
                    anyhow::bail!("configuration file {} does not exist", p.display());
                }
                fig = fig.merge(Toml::file_exact(p));
            }
            None => {
                let p = Path::new("latchkey.toml");
                if p.exists() {
                    fig = fig.merge(Toml::file_exact(p));
                }
            }
        }
        // figment hands the filter the key as written in the environment (upper case).
        fig = fig.merge(
            Env::prefixed("LATCHKEY_")
                .filter(|k| KEYS.iter().any(|key| k.as_str().eq_ignore_ascii_case(key))),
        );
        let config: Config = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {}", describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        fn bad(key: &str, why: impl std::fmt::Display) -> anyhow::Error {
            anyhow::anyhow!("invalid configuration: {key}: {why}")
        }
        let url =
            url::Url::parse(&self.issuer).map_err(|e| bad("issuer", format!("not a URL ({e})")))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(bad(
                "issuer",
                "must be an https (or, for development, http) URL",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "issuer",
                "must not have a query or fragment (RFC 8414 §2)",
            ));
        }
        if self.issuer.ends_with('/') {
            return Err(bad(
                "issuer",
                "must not end with '/' (issuers are compared as exact strings)",
            ));
        }
        if self.listen.parse::<SocketAddr>().is_err()
            && std::net::ToSocketAddrs::to_socket_addrs(&self.listen).is_err()
        {
            return Err(bad(
                "listen",
                format!("{:?} is not a host:port address", self.listen),
            ));
        }
        if let Err(e) = crate::store::DatabaseUrl::parse(&self.database_url) {
            return Err(bad("database_url", e));
        }
        if self.key_rotation_interval != 0 && self.key_rotation_interval <= self.key_publish_ahead {
            return Err(bad(
                "key_rotation_interval",
                format!(
                    "must be 0 (off) or longer than key_publish_ahead ({}), or keys would be replaced before they sign",
                    self.key_publish_ahead
                ),
            ));
        }
        if self.keys_dir.as_os_str().is_empty() {
            return Err(bad("keys_dir", "must not be empty"));
        }
        for (key, v, min, max) in [
            ("access_token_ttl", self.access_token_ttl, 10, 24 * 3600),
            (
                "refresh_token_ttl",
                self.refresh_token_ttl,
                60,
                400 * 24 * 3600,
            ),
            ("id_token_ttl", self.id_token_ttl, 10, 24 * 3600),
            ("code_ttl", self.code_ttl, 5, 600),
            ("dpop_proof_max_age", self.dpop_proof_max_age, 5, 600),
            ("par_ttl", self.par_ttl, 5, 600),
            (
                "console_idle_timeout",
                self.console_idle_timeout,
                60,
                24 * 3600,
            ),
            (
                "attestation_lifetime",
                self.attestation_lifetime,
                60,
                7 * 24 * 3600,
            ),
            ("device_code_ttl", self.device_code_ttl, 10, 1800),
            ("device_poll_interval", self.device_poll_interval, 1, 60),
            ("jwks_max_age", self.jwks_max_age, 0, 24 * 3600),
            (
                "key_publish_ahead",
                self.key_publish_ahead,
                0,
                7 * 24 * 3600,
            ),
            (
                "key_rotation_interval",
                self.key_rotation_interval,
                0,
                400 * 24 * 3600,
            ),
        ] {
            if v < min || v > max {
                return Err(bad(
                    key,
                    format!("{v} is out of range ({min}..={max} seconds)"),
                ));
            }
        }
        for (key, v) in [
            (
                "login_burst_per_account_ip",
                self.login_burst_per_account_ip,
            ),
            ("login_burst_per_ip", self.login_burst_per_ip),
            ("login_burst_per_account", self.login_burst_per_account),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1"));
            }
        }
        for (key, v) in [
            ("login_replenish_secs", self.login_replenish_secs),
            ("login_ip_replenish_secs", self.login_ip_replenish_secs),
            (
                "login_account_replenish_secs",
                self.login_account_replenish_secs,
            ),
        ] {
            if v == 0 || v > 24 * 3600 {
                return Err(bad(key, format!("{v} is out of range (1..=86400 seconds)")));
            }
        }
        if let Err(e) = crate::http::client_ip::TrustedProxies::parse(&self.trusted_proxies) {
            return Err(bad("trusted_proxies", e));
        }
        if let Err(e) = self.password_cost().params() {
            return Err(bad(
                "password_hash_memory_kib / password_hash_iterations",
                e,
            ));
        }
        if self.db_pool_size == 0 || self.db_pool_size > 256 {
            return Err(bad("db_pool_size", "must be between 1 and 256"));
        }
        self.validate_transport(&url)
            .map_err(|(key, why)| bad(key, why))
    }

    /// TLS, client certificates and where plain http may be served.
    fn validate_transport(&self, issuer: &url::Url) -> Result<(), (&'static str, String)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(("tls_cert / tls_key", "set both or neither".into()));
            }
            _ => {}
        }
        let https_issuer = issuer.scheme() == "https";
        if self.tls_cert.is_some() && !https_issuer {
            return Err((
                "issuer",
                "must be an https URL when tls_cert is set (tokens name the issuer clients reach)"
                    .into(),
            ));
        }
        if self.tls_cert.is_none()
            && !https_issuer
            && !self.allow_insecure_http
            && self.trusted_proxies.is_empty()
            && !self.listens_on_loopback_only()
        {
            return Err((
                "listen",
                format!(
                    "{} is reachable from other machines and the issuer is plain http: set tls_cert and tls_key with an https issuer, or put a TLS proxy in front and list it in trusted_proxies, or set allow_insecure_http = true (a private network only)",
                    self.listen
                ),
            ));
        }
        if let Some(h) = &self.tls_client_cert_header {
            if actix_web::http::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err((
                    "tls_client_cert_header",
                    format!("{h:?} is not a header name"),
                ));
            }
            if self.trusted_proxies.is_empty() {
                return Err((
                    "tls_client_cert_header",
                    "is read only from trusted_proxies, and none is set".into(),
                ));
            }
        }
        if let Some(base) = &self.mtls_endpoint_base {
            let ok = url::Url::parse(base).is_ok_and(|u| {
                u.scheme() == "https"
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if !ok || base.ends_with('/') {
                return Err((
                    "mtls_endpoint_base",
                    "must be an https URL with no query, fragment or trailing slash".into(),
                ));
            }
        }
        Ok(())
    }

    /// Whether every address `listen` names is a loopback address.
    fn listens_on_loopback_only(&self) -> bool {
        match std::net::ToSocketAddrs::to_socket_addrs(&self.listen) {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
            }
            Err(_) => false,
        }
    }

    /// Whether client certificates can reach the server: its own TLS handshake, or a proxy's
    /// header.
    pub fn client_certificates(&self) -> bool {
        self.tls_cert.is_some() || self.tls_client_cert_header.is_some()
    }

    /// The base URL of the RFC 8705 §5 mTLS endpoint aliases, when certificates can arrive.
    pub fn mtls_base(&self) -> Option<&str> {
        if !self.client_certificates() {
            return None;
        }
        Some(self.mtls_endpoint_base.as_deref().unwrap_or(&self.issuer))
    }

    /// Values that are valid but risky, for start-up to log.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.key_publish_ahead < self.jwks_max_age {
            w.push(format!(
                "key_publish_ahead ({}) is below jwks_max_age ({}): the JWKS is served with max-age={} so that caches learn new keys before they sign",
                self.key_publish_ahead, self.jwks_max_age, self.key_publish_ahead
            ));
        }
        if self.issuer.starts_with("http://")
            && !["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| self.issuer.starts_with(p))
        {
            w.push("issuer is plain http on a non-loopback host: use https in production".into());
        }
        if self.login_replenish_secs < self.login_account_replenish_secs {
            w.push(format!(
                "login_replenish_secs ({}) is below login_account_replenish_secs ({}): failures from one address alone can then exhaust an account's budget and lock its owner out elsewhere",
                self.login_replenish_secs, self.login_account_replenish_secs
            ));
        }
        if self.password_hash_memory_kib < crate::secret::OWASP_ARGON2_MEMORY_KIB
            || self.password_hash_iterations < crate::secret::OWASP_ARGON2_ITERATIONS
        {
            w.push("password_hash_memory_kib / password_hash_iterations are below OWASP's argon2id recommendation (19456 KiB, 2): new password hashes are cheaper to crack; use this only for test suites".into());
        }
        if self.allow_insecure_http && self.tls_cert.is_none() && !self.listens_on_loopback_only() {
            w.push(format!("allow_insecure_http is on and {} is reachable from other machines: passwords, codes and tokens cross the network in the clear", self.listen));
        }
        if self.tls_client_ca.is_some() && !self.client_certificates() {
            w.push("tls_client_ca is set but no client certificate can arrive: set tls_cert / tls_key, or tls_client_cert_header behind a proxy".into());
        }
        if self.outbound_allow_private_addresses {
            w.push("outbound_allow_private_addresses is on: a client's jwks_uri may point at this machine or its private network, over plain http; use this only for development and tests".into());
        }
        w
    }

    /// The argon2id cost of new password hashes.
    pub fn password_cost(&self) -> crate::secret::PasswordCost {
        crate::secret::PasswordCost {
            memory_kib: self.password_hash_memory_kib,
            iterations: self.password_hash_iterations,
        }
    }

    /// The JWKS `Cache-Control: max-age`: `jwks_max_age`, but never longer than the window in
    /// which a new key is published before it signs, so a cached JWKS always knows the key
    /// that signs a token.
    pub fn jwks_cache_max_age(&self) -> u64 {
        self.jwks_max_age.min(self.key_publish_ahead)
    }

    /// The longest a token signed by one key can stay valid: how long a retired key stays published.
    pub fn max_token_ttl(&self) -> u64 {
        self.access_token_ttl.max(self.id_token_ttl)
    }

    /// The algorithms that need an active signing key.
    pub fn signing_algs(&self) -> Vec<SigningAlg> {
        let mut algs = vec![self.access_token_alg];
        if self.id_token_alg != self.access_token_alg {
            algs.push(self.id_token_alg);
        }
        algs
    }
}

/// A list from TOML, or one string of comma- (or space-) separated entries from the environment.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

fn describe_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|err| {
            let key = err.path.join(".");
            let source = err
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", err.kind)
            } else {
                format!("{key}: {}{source}", err.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn issuer_with_trailing_slash_is_refused_naming_the_key() {
        let c = Config {
            issuer: "https://id.example.com/".into(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("issuer"), "{e}");
    }

    #[test]
    fn out_of_range_lifetime_names_the_key() {
        let c = Config {
            access_token_ttl: 0,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("access_token_ttl"), "{e}");
    }

    #[test]
    fn trusted_proxies_from_a_list_or_a_comma_separated_string_and_bad_entries_name_the_key() {
        let from_env: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(("trusted_proxies", "10.0.0.0/8, 192.168.1.1"))
            .extract()
            .expect("string form");
        assert_eq!(from_env.trusted_proxies, ["10.0.0.0/8", "192.168.1.1"]);
        from_env.validate().expect("valid proxies");
        let c = Config {
            trusted_proxies: vec!["10.0.0.0/40".into()],
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("trusted_proxies") && e.contains("10.0.0.0/40"),
            "{e}"
        );
    }

    #[test]
    fn throttle_settings_are_checked_and_a_lockout_prone_one_is_warned_about() {
        let c = Config {
            login_ip_replenish_secs: 0,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("login_ip_replenish_secs"), "{e}");
        assert!(Config::default().warnings().is_empty());
        let c = Config {
            login_replenish_secs: 6,
            password_hash_memory_kib: 1024,
            ..Config::default()
        };
        let w = c.warnings().join("\n");
        assert!(
            w.contains("lock its owner out") && w.contains("OWASP"),
            "{w}"
        );
        let c = Config {
            password_hash_memory_kib: 1,
            ..Config::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("password_hash_memory_kib")
        );
    }

    #[test]
    fn plain_http_is_served_only_on_loopback_unless_the_operator_says_why() {
        let reachable = Config {
            listen: "0.0.0.0:8080".into(),
            ..Config::default()
        };
        let e = reachable.validate().unwrap_err().to_string();
        for key in [
            "listen",
            "tls_cert",
            "trusted_proxies",
            "allow_insecure_http",
        ] {
            assert!(e.contains(key), "{key}: {e}");
        }
        for ok in [
            Config {
                allow_insecure_http: true,
                ..reachable.clone()
            },
            Config {
                trusted_proxies: vec!["10.0.0.0/8".into()],
                ..reachable.clone()
            },
            Config {
                issuer: "https://id.example.com".into(),
                ..reachable.clone()
            },
            Config {
                listen: "[::1]:8080".into(),
                ..Config::default()
            },
            Config {
                listen: "localhost:8080".into(),
                ..Config::default()
            },
        ] {
            assert!(ok.validate().is_ok(), "{}: {:?}", ok.listen, ok.validate());
        }
        let insecure = Config {
            allow_insecure_http: true,
            ..reachable
        };
        assert!(insecure.warnings().join(" ").contains("in the clear"));
    }

    #[test]
    fn tls_settings_are_checked_together() {
        let half = Config {
            tls_cert: Some("cert.pem".into()),
            issuer: "https://id.example.com".into(),
            ..Config::default()
        };
        assert!(
            half.validate()
                .unwrap_err()
                .to_string()
                .contains("tls_cert / tls_key")
        );
        let http_issuer = Config {
            tls_cert: Some("cert.pem".into()),
            tls_key: Some("key.pem".into()),
            ..Config::default()
        };
        assert!(
            http_issuer
                .validate()
                .unwrap_err()
                .to_string()
                .contains("issuer")
        );
        let header_alone = Config {
            tls_client_cert_header: Some("X-SSL-Client-Cert".into()),
            ..Config::default()
        };
        assert!(
            header_alone
                .validate()
                .unwrap_err()
                .to_string()
                .contains("trusted_proxies")
        );
        for bad in [
            "http://mtls.example.com",
            "https://mtls.example.com/",
            "https://x?y",
        ] {
            let c = Config {
                mtls_endpoint_base: Some(bad.into()),
                ..Config::default()
            };
            assert!(
                c.validate()
                    .unwrap_err()
                    .to_string()
                    .contains("mtls_endpoint_base"),
                "{bad}"
            );
        }
        // Without a way for certificates to arrive, no mTLS aliases are advertised.
        assert_eq!(Config::default().mtls_base(), None);
        let proxied = Config {
            tls_client_cert_header: Some("X-SSL-Client-Cert".into()),
            trusted_proxies: vec!["10.0.0.1".into()],
            ..Config::default()
        };
        assert_eq!(proxied.mtls_base(), Some(proxied.issuer.as_str()));
    }
}
