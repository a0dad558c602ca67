//! [`Verifier`]: the JWKS cache and the verification hot path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use reqwest::{Client, Url};
use serde::{Deserialize, Deserializer};
use tokio::runtime::Handle;

use crate::claims::Claims;
use crate::dpop::{self, DEFAULT_DPOP_ALGORITHMS, DpopRequest};
use crate::error::{SetupError, VerifyError};
use crate::http;
use crate::jwks::{self, ClaimRules, VerificationKey};
use crate::replay::{ReplayCache, Seen};

/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default minimum time between two JWKS fetches caused by unknown `kid`s or a stale cache.
pub const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(10);
/// Longest token accepted, in bytes; longer ones are [`VerifyError::Malformed`].
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Default time a DPoP proof is accepted after its `iat` (RFC 9449 §11.1).
pub const DEFAULT_DPOP_MAX_AGE: Duration = Duration::from_secs(60);
/// Default number of slots of the DPoP replay cache (8 bytes each: 8 MiB), enough for about
/// 100,000 proofs live at once (~1,600 DPoP requests per second with the default max age).
pub const DEFAULT_DPOP_REPLAY_CAPACITY: usize = 1 << 20;

/// JWKS freshness when the response has no usable `Cache-Control`.
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Upper bound on the freshness a `Cache-Control` header can grant.
const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const NEVER: u64 = u64::MAX;

/// Which header `typ` values are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenType {
    /// Only `at+jwt` / `application/at+jwt` (RFC 9068 §4), case-insensitively. The default: it
    /// stops an ID token or any other JWT from the same issuer being used as an access token.
    #[default]
    AtJwt,
    /// Also `JWT`, `application/jwt`, or no `typ` at all, for legacy issuers. Weaker.
    AllowJwt,
}

/// Verifies Latchkey access tokens offline against the issuer's JWKS.
///
/// Cheap to clone (one `Arc`); build it once at start-up and share it. Verification is
/// synchronous CPU work on pre-parsed keys read from a lock-free snapshot; the JWKS is
/// refetched in the background when its `Cache-Control` lifetime ends, and on an unknown `kid`
/// (at most once per [`VerifierBuilder::refetch_cooldown`], concurrent misses sharing one fetch).
/// When the JWKS endpoint is unreachable the keys already known keep working.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    leeway_secs: u64,
    typ: TokenType,
    /// `None` for a verifier built from a fixed JWKS.
    source: Option<Source>,
    keys: ArcSwap<KeySet>,
    /// Serialises fetches (single flight). Never taken by the verification hot path.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Number of completed fetch attempts, successful or not.
    attempts: AtomicU64,
    /// Start (while running) or end of the last fetch attempt, in ms since `epoch`, or `NEVER`.
    last_attempt_ms: AtomicU64,
    background_pending: AtomicBool,
    epoch: Instant,
    runtime: Option<Handle>,
    dpop_algs: Vec<&'static str>,
    /// `dpop_algs` space-separated, for `DPoP` challenges.
    dpop_algs_str: String,
    dpop_max_age_secs: u64,
    /// Allocated on the first DPoP request: bearer-only users never pay for it.
    replay: std::sync::OnceLock<ReplayCache>,
    replay_capacity: usize,
    public_base_url: Option<String>,
}

struct Source {
    client: Client,
    jwks_url: Url,
    cooldown: Duration,
    default_ttl: Duration,
    max_ttl: Duration,
}

struct KeySet {
    keys: HashMap<String, VerificationKey>,
    /// When the snapshot becomes stale, in ms since `epoch` (`NEVER` for a fixed JWKS).
    stale_at_ms: u64,
}

/// Configures a [`Verifier`]. Start with [`Verifier::builder`].
#[derive(Clone)]
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    jwks_url: Option<String>,
    leeway: Duration,
    typ: TokenType,
    cooldown: Duration,
    default_ttl: Duration,
    max_ttl: Duration,
    timeout: Duration,
    allow_insecure_http: bool,
    client: Option<Client>,
    dpop_algs: Vec<String>,
    dpop_max_age: Duration,
    replay_capacity: usize,
    public_base_url: Option<String>,
}

impl VerifierBuilder {
    /// The algorithms accepted for DPoP proofs (RFC 9449 §4.3 5), a subset of
    /// [`DEFAULT_DPOP_ALGORITHMS`] (the default: ES256, ES384, EdDSA, RS256, PS256). Anything
    /// else (`none`, HMAC, unknown names) makes [`build`](Self::build) fail.
    pub fn dpop_algorithms<I, S>(mut self, algs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.dpop_algs = algs.into_iter().map(Into::into).collect();
        self
    }

    /// How long a DPoP proof is accepted after its `iat` (default [`DEFAULT_DPOP_MAX_AGE`]); a
    /// proof may also be up to [`leeway`](Self::leeway) in the future. Whole seconds.
    pub fn dpop_proof_max_age(mut self, max_age: Duration) -> Self {
        self.dpop_max_age = max_age;
        self
    }

    /// Slots of the DPoP replay cache (default [`DEFAULT_DPOP_REPLAY_CAPACITY`], 8 bytes each,
    /// allocated once, on the first DPoP request). Give it about ten times the number of proofs accepted per
    /// `dpop_proof_max_age`; when a bucket is full, new proofs are refused
    /// ([`VerifyError::DpopReplayCacheFull`], 503) rather than left unchecked.
    pub fn dpop_replay_cache_capacity(mut self, slots: usize) -> Self {
        self.replay_capacity = slots;
        self
    }

    /// The API's public base URL, as clients address it (`https://api.example.com`, or with a
    /// path prefix): the actix-web extractor checks a DPoP proof's `htu` against this plus the
    /// request path. Set it behind a proxy or load balancer, and whenever the API answers to
    /// more than one name; without it the request's `Host` header is used.
    pub fn public_base_url(mut self, url: impl Into<String>) -> Self {
        self.public_base_url = Some(url.into());
        self
    }

    /// Fetch the JWKS from this URL instead of discovering `jwks_uri` from the issuer.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default [`DEFAULT_LEEWAY`]; whole
    /// seconds, rounded down).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepted header `typ` values (default [`TokenType::AtJwt`]).
    pub fn token_type(mut self, typ: TokenType) -> Self {
        self.typ = typ;
        self
    }

    /// Minimum time between JWKS fetches triggered by unknown `kid`s or a stale cache
    /// (default [`DEFAULT_REFETCH_COOLDOWN`]). The initial fetch counts.
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// JWKS freshness when the response has no `Cache-Control: max-age` (default 5 minutes).
    pub fn default_cache_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Upper bound on the freshness a `Cache-Control` header can grant (default 24 hours).
    pub fn max_cache_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Timeout of each HTTP request of the default client (default 10 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allow plain `http` issuer / JWKS URLs on non-loopback hosts (default: only `https`, or
    /// `http` to `localhost` / a loopback address). Anyone on the network path could then
    /// substitute signing keys: use only on a trusted private network.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Use this HTTP client instead of the default one (no redirects, 10 s timeout, rustls).
    pub fn http_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    fn check(&self) -> Result<(), SetupError> {
        if self.issuer.is_empty() {
            return Err(SetupError::InvalidConfig("the issuer is empty"));
        }
        if self.audience.is_empty() {
            return Err(SetupError::InvalidConfig("the audience is empty"));
        }
        if self
            .dpop_algs
            .iter()
            .any(|a| !DEFAULT_DPOP_ALGORITHMS.contains(&a.as_str()))
        {
            return Err(SetupError::InvalidConfig(
                "DPoP algorithms must be among ES256, ES384, EdDSA, RS256, PS256",
            ));
        }
        if let Some(base) = &self.public_base_url
            && dpop::normalize_htu(base).is_none()
        {
            return Err(SetupError::InvalidConfig(
                "the public base URL must be an absolute http(s) URL",
            ));
        }
        Ok(())
    }

    fn inner(&self, source: Option<Source>, keys: KeySet, epoch: Instant) -> Inner {
        let dpop_algs: Vec<&'static str> = DEFAULT_DPOP_ALGORITHMS
            .into_iter()
            .filter(|a| self.dpop_algs.iter().any(|b| b == a))
            .collect();
        Inner {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway.as_secs(),
            typ: self.typ,
            source,
            keys: ArcSwap::from_pointee(keys),
            refresh_lock: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_attempt_ms: AtomicU64::new(NEVER),
            background_pending: AtomicBool::new(false),
            epoch,
            runtime: Handle::try_current().ok(),
            dpop_algs: dpop_algs.clone(),
            dpop_algs_str: dpop_algs.join(" "),
            dpop_max_age_secs: self.dpop_max_age.as_secs(),
            replay: std::sync::OnceLock::new(),
            replay_capacity: self.replay_capacity.max(8),
            public_base_url: self
                .public_base_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        }
    }

    fn rules(&self) -> ClaimRules<'_> {
        ClaimRules {
            issuer: &self.issuer,
            audience: &self.audience,
            leeway_secs: self.leeway.as_secs(),
        }
    }

    /// Discovers the JWKS URL (unless given), fetches and parses the JWKS.
    ///
    /// Fails if discovery or the first JWKS fetch fails, or the JWKS holds no usable key.
    pub async fn build(self) -> Result<Verifier, SetupError> {
        self.check()?;
        let client = match &self.client {
            Some(c) => c.clone(),
            None => http::default_client(self.timeout)?,
        };
        let jwks_url = match &self.jwks_url {
            Some(url) => http::checked_url(url, self.allow_insecure_http)?,
            None => self.discover(&client).await?,
        };
        let source = Source {
            client,
            jwks_url,
            cooldown: self.cooldown,
            default_ttl: self.default_ttl,
            max_ttl: self.max_ttl,
        };
        let epoch = Instant::now();
        let started = Instant::now();
        let fetched = http::fetch(&source.client, &source.jwks_url).await?;
        let keys = jwks::parse_jwks(&fetched.body, &self.rules())?;
        let keys = KeySet {
            keys,
            stale_at_ms: ms_since(epoch, started) + source.ttl_ms(fetched.cache_control.as_deref()),
        };
        let inner = self.inner(Some(source), keys, epoch);
        inner
            .last_attempt_ms
            .store(ms_since(epoch, started), Ordering::Release);
        inner.attempts.store(1, Ordering::Release);
        Ok(Verifier {
            inner: Arc::new(inner),
        })
    }

    /// Builds a verifier over a fixed JWKS document, with no network access ever (no refetch;
    /// the JWKS URL, discovery and HTTP settings are ignored). For tests, benchmarks, and
    /// deployments that distribute keys out of band.
    pub fn build_static(self, jwks_json: &[u8]) -> Result<Verifier, SetupError> {
        self.check()?;
        let keys = KeySet {
            keys: jwks::parse_jwks(jwks_json, &self.rules())?,
            stale_at_ms: NEVER,
        };
        Ok(Verifier {
            inner: Arc::new(self.inner(None, keys, Instant::now())),
        })
    }

    async fn discover(&self, client: &Client) -> Result<Url, SetupError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        http::checked_url(&self.issuer, self.allow_insecure_http)?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let url = http::checked_url(&url, self.allow_insecure_http)?;
        let fetched = http::fetch(client, &url).await?;
        let doc: Discovery = serde_json::from_slice(&fetched.body)
            .map_err(|e| SetupError::InvalidDiscovery(e.to_string()))?;
        if doc.issuer != self.issuer {
            return Err(SetupError::IssuerMismatch {
                expected: self.issuer.clone(),
                found: doc.issuer,
            });
        }
        http::checked_url(&doc.jwks_uri, self.allow_insecure_http)
    }
}

impl Source {
    fn ttl_ms(&self, cache_control: Option<&str>) -> u64 {
        let ttl = jwks::cache_lifetime(cache_control)
            .unwrap_or(self.default_ttl)
            .min(self.max_ttl);
        u64::try_from(ttl.as_millis()).unwrap_or(NEVER)
    }
}

impl Verifier {
    /// Starts configuring a verifier for tokens from `issuer` (exact string, as in the tokens'
    /// `iss`) meant for `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            leeway: DEFAULT_LEEWAY,
            typ: TokenType::AtJwt,
            cooldown: DEFAULT_REFETCH_COOLDOWN,
            default_ttl: DEFAULT_CACHE_TTL,
            max_ttl: MAX_CACHE_TTL,
            timeout: DEFAULT_HTTP_TIMEOUT,
            allow_insecure_http: false,
            client: None,
            dpop_algs: DEFAULT_DPOP_ALGORITHMS.map(str::to_owned).to_vec(),
            dpop_max_age: DEFAULT_DPOP_MAX_AGE,
            replay_capacity: DEFAULT_DPOP_REPLAY_CAPACITY,
            public_base_url: None,
        }
    }

    /// A verifier with default settings, its JWKS found through
    /// `{issuer}/.well-known/openid-configuration`.
    pub async fn from_issuer(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Verifier, SetupError> {
        Self::builder(issuer, audience).build().await
    }

    /// A verifier with default settings and a known JWKS URL (no discovery). `issuer` is still
    /// needed: it is what the tokens' `iss` must equal.
    pub async fn from_jwks_url(
        jwks_url: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Verifier, SetupError> {
        Self::builder(issuer, audience)
            .jwks_url(jwks_url)
            .build()
            .await
    }

    /// Verifies a bearer access token (the raw JWT, without `Bearer `).
    ///
    /// This is [`Verifier::verify_cached`] plus one thing: on an unknown `kid` it waits for a JWKS
    /// refetch (unless one happened within the cooldown; concurrent callers share one fetch) and
    /// tries again, so the first token signed with a newly published key is accepted. On every
    /// other path it does not wait for anything.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let first = self.inner.verify_snapshot(token);
        match first {
            Err(VerifyError::UnknownKeyId) if self.inner.source.is_some() => {
                self.inner.refresh_after(seen).await;
                self.inner.verify_snapshot(token)
            }
            other => other,
        }
    }

    /// Verifies a bearer access token with the keys already known, synchronously, never waiting
    /// for I/O. On an unknown `kid` it starts a background JWKS refetch (rate limited, when a
    /// Tokio runtime is available) and returns [`VerifyError::UnknownKeyId`].
    pub fn verify_cached(&self, token: &str) -> Result<Claims, VerifyError> {
        let result = self.inner.verify_snapshot(token);
        if matches!(result, Err(VerifyError::UnknownKeyId)) {
            Inner::schedule_background_refresh(&self.inner);
        }
        result
    }

    /// Verifies a DPoP-bound access token (presented as `Authorization: DPoP <token>`) with its
    /// proof (RFC 9449 §4.3, §7.1): the token as [`verify`](Self::verify) checks it, but it must
    /// carry `cnf.jkt`; the proof must be a `dpop+jwt` signed with an accepted asymmetric
    /// algorithm by a public `jwk` whose RFC 7638 thumbprint is that `jkt`, for this method and
    /// URL (query and fragment ignored, URLs normalized), issued within
    /// [`dpop_proof_max_age`](VerifierBuilder::dpop_proof_max_age) (or up to the leeway in the
    /// future), with `ath` = base64url(SHA-256(token)), and never seen before by this verifier.
    ///
    /// Waits for a JWKS refetch on an unknown `kid` like [`verify`](Self::verify); otherwise
    /// synchronous.
    pub async fn verify_dpop(
        &self,
        token: &str,
        request: &DpopRequest<'_>,
    ) -> Result<Claims, VerifyError> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let first = self.inner.verify_dpop_snapshot(token, request);
        match first {
            Err(VerifyError::UnknownKeyId) if self.inner.source.is_some() => {
                self.inner.refresh_after(seen).await;
                self.inner.verify_dpop_snapshot(token, request)
            }
            other => other,
        }
    }

    /// [`verify_dpop`](Self::verify_dpop) with the keys already known, never waiting (an unknown
    /// `kid` starts a background refetch and returns [`VerifyError::UnknownKeyId`]). No lock:
    /// the replay cache is a fixed table of atomics.
    pub fn verify_dpop_cached(
        &self,
        token: &str,
        request: &DpopRequest<'_>,
    ) -> Result<Claims, VerifyError> {
        let result = self.inner.verify_dpop_snapshot(token, request);
        if matches!(result, Err(VerifyError::UnknownKeyId)) {
            Inner::schedule_background_refresh(&self.inner);
        }
        result
    }

    /// Verifies an access token bound to a TLS client certificate (RFC 8705 §3), presented as
    /// a bearer token over a connection whose client certificate is `certificate_der` (the
    /// end-entity certificate, DER, as the API's TLS stack or its trusted proxy saw it): the
    /// token as [`verify`](Self::verify) checks it, and its `cnf.x5t#S256` must be
    /// base64url(SHA-256(`certificate_der`)). A token with no certificate binding is refused
    /// ([`VerifyError::NotMtlsBound`]), as is one also bound to a DPoP key
    /// ([`VerifyError::SenderConstrained`]: use [`verify_dpop`](Self::verify_dpop) and check
    /// the certificate with [`Claims::cnf`](crate::Claims)).
    pub async fn verify_mtls(
        &self,
        token: &str,
        certificate_der: &[u8],
    ) -> Result<Claims, VerifyError> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let first = self.inner.verify_mtls_snapshot(token, certificate_der);
        match first {
            Err(VerifyError::UnknownKeyId) if self.inner.source.is_some() => {
                self.inner.refresh_after(seen).await;
                self.inner.verify_mtls_snapshot(token, certificate_der)
            }
            other => other,
        }
    }

    /// [`verify_mtls`](Self::verify_mtls) with the keys already known, never waiting.
    pub fn verify_mtls_cached(
        &self,
        token: &str,
        certificate_der: &[u8],
    ) -> Result<Claims, VerifyError> {
        let result = self.inner.verify_mtls_snapshot(token, certificate_der);
        if matches!(result, Err(VerifyError::UnknownKeyId)) {
            Inner::schedule_background_refresh(&self.inner);
        }
        result
    }

    /// The accepted DPoP proof algorithms, space-separated (the `algs` of a `DPoP` challenge).
    pub fn dpop_algorithms(&self) -> &str {
        &self.inner.dpop_algs_str
    }

    /// The configured public base URL, without a trailing `/`.
    pub fn public_base_url(&self) -> Option<&str> {
        self.inner.public_base_url.as_deref()
    }

    /// Fetches the JWKS now, ignoring the cooldown. On failure the known keys are kept.
    /// A verifier built from a fixed JWKS has nothing to fetch and returns `Ok`.
    pub async fn refresh(&self) -> Result<(), SetupError> {
        match &self.inner.source {
            None => Ok(()),
            Some(source) => {
                let _flight = self.inner.refresh_lock.lock().await;
                self.inner.fetch_now(source).await
            }
        }
    }

    /// The issuer the tokens' `iss` must equal.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience the tokens' `aud` must contain.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// The JWKS URL, or `None` for a verifier built from a fixed JWKS.
    pub fn jwks_url(&self) -> Option<&str> {
        self.inner.source.as_ref().map(|s| s.jwks_url.as_str())
    }

    /// The `kid`s of the keys currently usable, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.inner.keys.load().keys.keys().cloned().collect();
        kids.sort();
        kids
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks_url", &self.jwks_url())
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

/// The part of the header we look at before choosing a key.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

impl Inner {
    fn now_ms(&self) -> u64 {
        ms_since(self.epoch, Instant::now())
    }

    /// The hot path: one snapshot load, no lock, no I/O.
    fn verify_snapshot(self: &Arc<Self>, token: &str) -> Result<Claims, VerifyError> {
        let keys = self.keys.load();
        if self.source.is_some() && self.now_ms() >= keys.stale_at_ms {
            Self::schedule_background_refresh(self);
        }
        self.check(&keys, token)
    }

    fn verify_dpop_snapshot(
        self: &Arc<Self>,
        token: &str,
        request: &DpopRequest<'_>,
    ) -> Result<Claims, VerifyError> {
        let keys = self.keys.load();
        if self.source.is_some() && self.now_ms() >= keys.stale_at_ms {
            Self::schedule_background_refresh(self);
        }
        let claims = self.check_token(&keys, token)?;
        let bound = claims
            .cnf
            .as_ref()
            .and_then(|c| c.jkt.as_deref())
            .ok_or(VerifyError::NotDpopBound)?;
        let now = unix_now();
        let proof = dpop::check(
            request,
            token,
            &self.dpop_algs,
            self.dpop_max_age_secs,
            self.leeway_secs,
            now,
        )?;
        if proof.jkt != bound {
            return Err(VerifyError::DpopKeyMismatch);
        }
        // Last, so that only proofs that passed every other check take a slot. Kept until
        // the proof is too old to be accepted anyway.
        let expires = proof
            .iat
            .saturating_add(self.dpop_max_age_secs)
            .saturating_add(1);
        let replay = self
            .replay
            .get_or_init(|| ReplayCache::new(self.replay_capacity));
        match replay.insert(&proof.jkt, &proof.jti, expires, now) {
            Seen::Fresh => Ok(claims),
            Seen::Replay => Err(VerifyError::InvalidDpopProof(
                "the DPoP proof was already used",
            )),
            Seen::Full => Err(VerifyError::DpopReplayCacheFull),
        }
    }

    fn verify_mtls_snapshot(
        self: &Arc<Self>,
        token: &str,
        certificate_der: &[u8],
    ) -> Result<Claims, VerifyError> {
        let keys = self.keys.load();
        if self.source.is_some() && self.now_ms() >= keys.stale_at_ms {
            Self::schedule_background_refresh(self);
        }
        let claims = self.check_token(&keys, token)?;
        let cnf = claims.cnf.as_ref().ok_or(VerifyError::NotMtlsBound)?;
        if cnf.jkt.is_some() {
            return Err(VerifyError::SenderConstrained);
        }
        let bound = cnf.x5t_s256.as_deref().ok_or(VerifyError::NotMtlsBound)?;
        let seen = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            certificate_der,
        ));
        if seen != bound {
            return Err(VerifyError::CertificateMismatch);
        }
        Ok(claims)
    }

    fn check(&self, keys: &KeySet, token: &str) -> Result<Claims, VerifyError> {
        let claims = self.check_token(keys, token)?;
        // A sender-constrained token is only valid with its proof (DPoP, RFC 9449 §7.2, or
        // mTLS): as a plain bearer token it is refused.
        if claims.cnf.is_some() {
            return Err(VerifyError::SenderConstrained);
        }
        Ok(claims)
    }

    /// Every check of the token itself (not how it was presented).
    fn check_token(&self, keys: &KeySet, token: &str) -> Result<Claims, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| VerifyError::Malformed)?;
        let header: Header<'_> =
            serde_json::from_slice(&header_json).map_err(|_| VerifyError::Malformed)?;

        // The token's alg only selects nothing: it must be an asymmetric algorithm, and equal
        // to the algorithm of the key its kid names.
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| VerifyError::UnsupportedAlgorithm)?;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        if header.crit {
            return Err(VerifyError::CriticalHeader);
        }
        if !typ_accepted(header.typ.as_deref(), self.typ) {
            return Err(VerifyError::InvalidType);
        }
        let kid = header.kid.ok_or(VerifyError::MissingKeyId)?;
        let key = keys.keys.get(&*kid).ok_or(VerifyError::UnknownKeyId)?;
        if key.alg != alg {
            return Err(VerifyError::AlgorithmMismatch);
        }

        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation)
            .map_err(map_jwt_error)?
            .claims;

        // jsonwebtoken checked these already; they are cheap to check again here, where the
        // rules are ours and do not depend on its defaults.
        if claims.iss != self.issuer {
            return Err(VerifyError::InvalidIssuer);
        }
        if !claims.aud.contains(&self.audience) {
            return Err(VerifyError::InvalidAudience);
        }
        let now = unix_now();
        if claims.exp.saturating_add(self.leeway_secs) < now {
            return Err(VerifyError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway_secs))
        {
            return Err(VerifyError::NotYetValid);
        }
        if claims.iat > now.saturating_add(self.leeway_secs) {
            return Err(VerifyError::IssuedInFuture);
        }
        Ok(claims)
    }

    fn cooldown_elapsed(&self, source: &Source) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Acquire);
        last == NEVER
            || Duration::from_millis(self.now_ms().saturating_sub(last)) >= source.cooldown
    }

    /// Single-flight, rate-limited refetch. `seen` is the attempt count observed before the
    /// caller looked at the keys: if a fetch completed since, its result is used instead.
    async fn refresh_after(&self, seen: u64) {
        let Some(source) = &self.source else {
            return;
        };
        let _flight = self.refresh_lock.lock().await;
        if self.attempts.load(Ordering::Acquire) != seen || !self.cooldown_elapsed(source) {
            return;
        }
        // Failures are logged in fetch_now; the known keys stay in place.
        let _ = self.fetch_now(source).await;
    }

    /// Fetches and installs the JWKS. The caller holds `refresh_lock`.
    async fn fetch_now(&self, source: &Source) -> Result<(), SetupError> {
        let started = self.now_ms();
        self.last_attempt_ms.store(started, Ordering::Release);
        let result = async {
            let fetched = http::fetch(&source.client, &source.jwks_url).await?;
            let rules = ClaimRules {
                issuer: &self.issuer,
                audience: &self.audience,
                leeway_secs: self.leeway_secs,
            };
            let keys = jwks::parse_jwks(&fetched.body, &rules)?;
            Ok::<_, SetupError>(KeySet {
                keys,
                stale_at_ms: started
                    .saturating_add(source.ttl_ms(fetched.cache_control.as_deref())),
            })
        }
        .await;
        let outcome = match result {
            Ok(keys) => {
                tracing::debug!(url = %source.jwks_url, keys = keys.keys.len(), "JWKS refreshed");
                self.keys.store(Arc::new(keys));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the known keys");
                Err(e)
            }
        };
        // The cooldown runs from the end of the attempt too: a slow endpoint is not asked again
        // the moment it answers.
        self.last_attempt_ms
            .store(self.now_ms().max(started), Ordering::Release);
        self.attempts.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// Starts a refetch in the background if the cooldown allows and none is pending.
    fn schedule_background_refresh(this: &Arc<Self>) {
        let Some(source) = &this.source else {
            return;
        };
        if !this.cooldown_elapsed(source) {
            return;
        }
        let Some(handle) = Handle::try_current().ok().or_else(|| this.runtime.clone()) else {
            return;
        };
        if this.background_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        struct Pending(Arc<Inner>);
        impl Drop for Pending {
            fn drop(&mut self) {
                self.0.background_pending.store(false, Ordering::Release);
            }
        }
        let pending = Pending(Arc::clone(this));
        let seen = this.attempts.load(Ordering::Acquire);
        handle.spawn(async move {
            pending.0.refresh_after(seen).await;
            drop(pending);
        });
    }
}

fn typ_accepted(typ: Option<&str>, policy: TokenType) -> bool {
    let is_at_jwt =
        |t: &str| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt");
    match policy {
        TokenType::AtJwt => typ.is_some_and(is_at_jwt),
        TokenType::AllowJwt => typ.is_none_or(|t| {
            is_at_jwt(t)
                || t.eq_ignore_ascii_case("jwt")
                || t.eq_ignore_ascii_case("application/jwt")
        }),
    }
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature
        | K::InvalidEcdsaKey
        | K::InvalidEddsaKey
        | K::InvalidRsaKey(_)
        | K::InvalidKeyFormat => VerifyError::InvalidSignature,
        K::ExpiredSignature => VerifyError::Expired,
        K::ImmatureSignature => VerifyError::NotYetValid,
        K::InvalidIssuer => VerifyError::InvalidIssuer,
        K::InvalidAudience => VerifyError::InvalidAudience,
        K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) | K::InvalidSubject | K::Json(_) => {
            VerifyError::InvalidClaims
        }
        K::InvalidAlgorithm | K::MissingAlgorithm => VerifyError::AlgorithmMismatch,
        K::UnsupportedAlgorithm | K::InvalidAlgorithmName => VerifyError::UnsupportedAlgorithm,
        _ => VerifyError::Malformed,
    }
}

fn ms_since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_millis()).unwrap_or(NEVER - 1)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_policy() {
        assert!(typ_accepted(Some("at+jwt"), TokenType::AtJwt));
        assert!(typ_accepted(Some("application/AT+JWT"), TokenType::AtJwt));
        assert!(!typ_accepted(Some("JWT"), TokenType::AtJwt));
        assert!(!typ_accepted(None, TokenType::AtJwt));
        assert!(typ_accepted(Some("JWT"), TokenType::AllowJwt));
        assert!(typ_accepted(None, TokenType::AllowJwt));
        assert!(!typ_accepted(Some("dpop+jwt"), TokenType::AllowJwt));
    }

    /// Compile-time check: the futures can be spawned on a multi-threaded runtime.
    #[allow(dead_code)]
    fn futures_are_send(v: &Verifier, b: VerifierBuilder) {
        fn is_send<T: Send>(_: T) {}
        is_send(v.verify(""));
        is_send(v.refresh());
        is_send(b.build());
    }
}
