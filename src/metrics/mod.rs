//! Prometheus metrics (`GET /metrics`, OpenMetrics text). One registry per server instance,
//! every series prefixed `latchkey_`. Labels come from closed sets (route patterns, grant
//! names, reasons, key ids), never from request input, so cardinality stays bounded.
//!
//! Recording is cheap enough for the hot paths: a read-locked map lookup of a label set that
//! borrows static strings, and an atomic add (histograms: a short uncontended mutex). Nothing
//! is held across an `.await`.

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub mod recent;

/// Request latency buckets, in seconds: sub-millisecond JWKS answers to slow password checks.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route pattern (`/token`, `/admin/v1/clients/{client_id}`), or `unmatched`.
    pub endpoint: Cow<'static, str>,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    kid: String,
    alg: String,
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    tokens_issued: Family<GrantLabels, Counter>,
    login_failures: Family<ReasonLabels, Counter>,
    refresh_reuse: Counter,
    code_replay: Counter,
    audit_failures: Counter,
    audit_suppressed: Counter,
    rows_pruned: Family<TableLabels, Counter>,
    key_age: Family<KeyLabels, Gauge>,
    /// SQLite: the store's `(transactions, writes)` (see `set_store_writes`).
    store_writes: Mirrored,
    /// PostgreSQL: the store's `(batches, rotations)` (see `set_rotations`).
    rotations: Mirrored,
    /// The last hour, per minute (the console's overview).
    pub recent: recent::Recent,
}

/// Two counters kept equal, at each scrape, to totals the store counts.
#[derive(Default)]
struct Mirrored {
    first: Counter,
    second: Counter,
    seen: std::sync::Mutex<(u64, u64)>,
}

impl Mirrored {
    fn register(registry: &mut Registry, names: [(&str, &str); 2]) -> Mirrored {
        let m = Mirrored::default();
        registry.register(names[0].0, names[0].1, m.first.clone());
        registry.register(names[1].0, names[1].1, m.second.clone());
        m
    }

    fn set(&self, (first, second): (u64, u64)) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.first.inc_by(first.saturating_sub(seen.0));
        self.second.inc_by(second.saturating_sub(seen.1));
        *seen = (first.max(seen.0), second.max(seen.1));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("latchkey");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer HTTP requests, by route pattern, method and status",
            Unit::Seconds,
            http_duration.clone(),
        );
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Successful token endpoint responses, by grant type",
            tokens_issued.clone(),
        );
        let login_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "login_failures",
            "Failed password logins, by reason (invalid credentials or throttled)",
            login_failures.clone(),
        );
        let refresh_reuse = Counter::default();
        registry.register(
            "refresh_token_reuse_detected",
            "Rotated refresh tokens presented again (the token family is revoked)",
            refresh_reuse.clone(),
        );
        let code_replay = Counter::default();
        registry.register(
            "authorization_code_replay_detected",
            "Authorization codes presented a second time (what they issued is revoked)",
            code_replay.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit log entries that could not be written",
            audit_failures.clone(),
        );
        let audit_suppressed = Counter::default();
        registry.register(
            "audit_suppressed",
            "Audit entries not written because their caller wrote too many of the kind (admin.access_denied)",
            audit_suppressed.clone(),
        );
        let rows_pruned = Family::<TableLabels, Counter>::default();
        registry.register(
            "rows_pruned",
            "Rows housekeeping deleted because they can no longer change an answer (expired sessions, codes, families, revocations; audit entries past audit_retention_days)",
            rows_pruned.clone(),
        );
        let key_age = Family::<KeyLabels, Gauge>::default();
        registry.register_with_unit(
            "signing_key_age",
            "Seconds since each published signing key was created, by kid, alg and state",
            Unit::Seconds,
            key_age.clone(),
        );
        let store_writes = Mirrored::register(
            &mut registry,
            [
                (
                    "sqlite_write_transactions",
                    "SQLite write transactions of the request paths committed or failed (several writes share one: group commit)",
                ),
                (
                    "sqlite_writes",
                    "Writes of the request paths (refresh rotations, code redemptions, sessions, codes, DPoP proofs) those transactions held",
                ),
            ],
        );
        let rotations = Mirrored::register(
            &mut registry,
            [
                (
                    "pg_rotation_batches",
                    "PostgreSQL: batches of refresh rotations decided together (one read and one write statement each)",
                ),
                (
                    "pg_rotations",
                    "PostgreSQL: refresh rotations those batches held",
                ),
            ],
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            tokens_issued,
            login_failures,
            refresh_reuse,
            code_replay,
            audit_failures,
            audit_suppressed,
            rows_pruned,
            key_age,
            store_writes,
            rotations,
            recent: recent::Recent::default(),
        }
    }

    /// Brings the SQLite write counters up to the store's totals `(transactions, writes)`.
    pub fn set_store_writes(&self, totals: (u64, u64)) {
        self.store_writes.set(totals);
    }

    /// Brings the PostgreSQL rotation counters up to the store's totals `(batches, rotations)`.
    pub fn set_rotations(&self, totals: (u64, u64)) {
        self.rotations.set(totals);
    }

    pub fn observe_request(&self, labels: &HttpLabels, seconds: f64) {
        self.http_requests.get_or_create(labels).inc();
        self.http_duration.get_or_create(labels).observe(seconds);
        self.recent.request(seconds);
    }

    pub fn token_issued(&self, grant: crate::model::GrantType) {
        self.tokens_issued
            .get_or_create(&GrantLabels {
                grant_type: grant.as_str(),
            })
            .inc();
        self.recent.token_issued(grant);
    }

    /// `reason`: `invalid` or `throttled`.
    pub fn login_failed(&self, reason: &'static str) {
        self.login_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
        self.recent.login_failed();
    }

    pub fn refresh_reuse_detected(&self) {
        self.refresh_reuse.inc();
        self.recent.refresh_reuse_detected();
    }

    pub fn code_replay_detected(&self) {
        self.code_replay.inc();
    }

    pub fn audit_write_failed(&self) {
        self.audit_failures.inc();
    }

    /// Rows of `table` deleted by housekeeping.
    pub fn rows_pruned(&self, table: &'static str, n: u64) {
        if n > 0 {
            self.rows_pruned
                .get_or_create(&TableLabels { table })
                .inc_by(n);
        }
    }

    pub fn audit_suppressed(&self) {
        self.audit_suppressed.inc();
    }

    /// Replaces the key-age series with `(kid, alg, state, age_seconds)` of every published key.
    pub fn set_key_ages(
        &self,
        keys: impl IntoIterator<Item = (String, String, &'static str, i64)>,
    ) {
        self.key_age.clear();
        for (kid, alg, state, age) in keys {
            self.key_age
                .get_or_create(&KeyLabels { kid, alg, state })
                .set(age);
        }
    }

    /// The OpenMetrics text exposition of every series.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
