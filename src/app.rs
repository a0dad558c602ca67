//! Builds and runs the server: store, key ring, HTTP server, background key-ring refresher.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{Condition, DefaultHeaders};
use actix_web::{App, HttpServer, web};

use crate::config::Config;
use crate::http::{self, AppState, unix_now};
use crate::keys::KeyRing;
use crate::protocol::Ctx;
use crate::protocol::audit;
use crate::store::Store;

/// How often a running server re-reads the key schedule (rotations by the CLI or another
/// replica, keys reaching activation or retirement).
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// A new connection must send its whole request head within this time (slowloris, sockets
/// opened and left silent), and so must each later request on a kept-alive connection.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle kept-alive connection is closed after this (long enough for an app's burst of
/// calls to reuse one connection).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// After a response on a connection being closed, how long the peer gets to take it.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Open connections per worker; beyond it new ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 8192;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    /// With native TLS: the certificate the listener serves, re-read when its files change.
    tls: Option<Arc<crate::tls::ServerCert>>,
}

impl Application {
    /// Opens storage and keys and binds `config.listen`.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&config.listen)
            .map_err(|e| anyhow::anyhow!("listen: cannot bind {}: {e}", config.listen))?;
        Self::build_with_listener(config, listener).await
    }

    /// As [`build`](Self::build), on a listener the caller bound (tests bind port 0).
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        config.validate()?;
        let config = Arc::new(config);
        let (store, keys) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<(Store, KeyRing)> {
                let store = Store::open(&config.database_url, config.db_pool_size)?;
                crate::protocol::account::ensure_client(&store, &config.issuer, unix_now())
                    .map_err(|e| anyhow::anyhow!("cannot set up the account pages' client: {e}"))?;
                crate::protocol::account::ensure(
                    &store,
                    crate::protocol::console::client(&config.issuer, unix_now()),
                )
                .map_err(|e| anyhow::anyhow!("cannot set up the console's client: {e}"))?;
                let keys = KeyRing::open(&store, &config, unix_now())?;
                Ok((store, keys))
            })
            .await??
        };
        let outbound = crate::outbound::Fetcher::new(config.outbound_allow_private_addresses)?;
        let ctx = Ctx {
            config: config.clone(),
            store,
            keys: Arc::new(keys),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            audit_limits: Arc::new(crate::protocol::audit::Limits::new()),
            client_keys: Arc::new(crate::protocol::client_keys::ClientKeys::new(
                outbound.clone(),
            )),
            outbound,
            mtls: match &config.tls_client_ca {
                Some(path) => crate::protocol::mtls::Trust::new(crate::tls::read_certificates(
                    "tls_client_ca",
                    path,
                )?)?,
                None => crate::protocol::mtls::Trust::default(),
            },
            passkeys: Arc::new(crate::protocol::login::passkey::Passkeys::new(&config)?),
            attestation: Arc::new(crate::protocol::attestation::Trust::load(&config)?),
        };
        let state = web::Data::new(AppState::new(ctx.clone())?);
        let port = listener.local_addr()?.port();
        let workers = match config.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        let app_state = state.clone();
        // RFC 6797: browsers that once reached an https issuer never use plain http for it
        // again (a year; this host only, since the issuer's parent domain is not ours).
        let hsts = config.issuer.starts_with("https://");
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(crate::tls::ServerCert::open(cert, key)?)),
            _ => None,
        };
        let server = HttpServer::new(move || {
            App::new()
                .wrap_fn(http::cors::headers)
                .wrap(Condition::new(
                    hsts,
                    DefaultHeaders::new().add((
                        actix_web::http::header::STRICT_TRANSPORT_SECURITY,
                        "max-age=31536000",
                    )),
                ))
                .wrap_fn(http::metrics::track)
                .app_data(app_state.clone())
                .configure(http::routes)
        })
        .workers(workers)
        // Connections that send nothing, or trickle a request head, are closed (408) after
        // this; an idle keep-alive connection after KEEP_ALIVE; a body must arrive within
        // `http::BODY_TIMEOUT`. Each worker holds at most MAX_CONNECTIONS connections (beyond
        // that the listener's backlog waits), so a flood of idle sockets cannot take every
        // file descriptor.
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .keep_alive(KEEP_ALIVE)
        .max_connections(MAX_CONNECTIONS)
        // Blocking work is database calls (each holds a pooled connection) and the odd password
        // hash: a thread per pooled connection, plus one. More threads than connections would
        // only park on the pool, each wake-up a context switch on the server's CPUs (actix's
        // default is 512 / CPUs threads per worker: 32 concurrent token requests made 32).
        .worker_max_blocking_threads(blocking_threads(config.db_pool_size, workers))
        // RFC 8705: the client certificate of a TLS connection, for its requests.
        .on_connect(http::client_cert::on_connect);
        let server = match &tls {
            Some(cert) => server
                .listen_rustls_0_23(listener, crate::tls::server_config(&config, cert.clone())?)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Application {
            port,
            server,
            state,
            tls,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process is told to stop, refreshing the key ring in the background.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let refresher = actix_web::rt::spawn(housekeeping(self.state.clone()));
        let checkpointer = actix_web::rt::spawn(checkpoints(self.state.ctx.store.clone()));
        let logouts = actix_web::rt::spawn(logout_deliveries(self.state.ctx.clone()));
        let certificates = self
            .tls
            .map(|cert| actix_web::rt::spawn(reload_certificate(cert)));
        let result = self.server.await;
        refresher.abort();
        checkpointer.abort();
        logouts.abort();
        if let Some(c) = certificates {
            c.abort();
        }
        result
    }
}

/// SQLite: checkpoints the WAL in the background every `CHECKPOINT_INTERVAL`, so that
/// requests that write never run a checkpoint (and its fsync) themselves; batching them also
/// copies a page rewritten by many transactions once. Ends at once on PostgreSQL.
async fn checkpoints(store: crate::store::Store) {
    let mut tick = tokio::time::interval(crate::store::CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.blocking(|s| s.checkpoint()).await {
            Ok(None) => return,
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
        }
    }
}

/// Native TLS: looks at the certificate and key files every `tls::RELOAD_INTERVAL` and serves a
/// renewed pair to new connections (open ones keep theirs).
async fn reload_certificate(cert: Arc<crate::tls::ServerCert>) {
    let mut tick = tokio::time::interval(crate::tls::RELOAD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cert = cert.clone();
        // A few stat calls, and a file read now and then: off the worker.
        let _ = tokio::task::spawn_blocking(move || cert.reload_if_changed()).await;
    }
}

/// Blocking-pool threads per HTTP worker: the worker's share of the database pool, plus one.
fn blocking_threads(db_pool_size: u32, workers: usize) -> usize {
    (db_pool_size as usize).div_ceil(workers.max(1)) + 1
}

/// Every tick: reload the key ring; now and then, drop idle login-throttle entries and expired
/// DPoP replay records.
/// Back-channel logout (`protocol::backchannel`): every second, deliver what is due.
async fn logout_deliveries(ctx: Ctx) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::protocol::backchannel::deliver_due(&ctx, unix_now()).await;
    }
}

/// Audit entries past `audit_retention_days`: up to 10 batches of 1000 every 30 s (a backlog of
/// millions drains in hours, and no statement holds the write lock for long).
async fn prune_audit(ctx: &Ctx) {
    let days = ctx.config.audit_retention_days as i64;
    if days == 0 {
        return;
    }
    let before = unix_now() - days * 86400;
    for _ in 0..10 {
        match ctx
            .store
            .blocking(move |s| s.prune_audit(before, 1000))
            .await
        {
            Ok(n) => {
                ctx.metrics.rows_pruned("audit_log", n as u64);
                if n < 1000 {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning the audit log failed; will retry");
                return;
            }
        }
    }
}

/// Expired sessions, revocation records, codes and families (`store::retention`): up to 10
/// batches of 1000 per table every 30 s.
async fn prune_expired(ctx: &Ctx) {
    for _ in 0..10 {
        match ctx
            .store
            .blocking(|s| s.prune_expired(unix_now(), 1000))
            .await
        {
            Ok(p) => {
                let m = &ctx.metrics;
                m.rows_pruned("sessions", p.sessions as u64);
                m.rows_pruned("revoked_access_tokens", p.revoked_access_tokens as u64);
                m.rows_pruned("authorization_codes", p.authorization_codes as u64);
                m.rows_pruned("token_families", p.token_families as u64);
                m.rows_pruned("refresh_tokens", p.refresh_tokens as u64);
                let full = [
                    p.sessions,
                    p.revoked_access_tokens,
                    p.authorization_codes,
                    p.token_families,
                ];
                if full.iter().all(|n| *n < 1000) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning expired grants failed; will retry");
                return;
            }
        }
    }
}

async fn housekeeping(state: web::Data<AppState>) {
    let ctx: Ctx = state.ctx.clone();
    let mut n: u64 = 0;
    let mut tick = tokio::time::interval(KEY_REFRESH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        n += 1;
        if n.is_multiple_of(30) {
            state.throttle.prune(unix_now());
            ctx.audit_limits.prune();
        }
        // DPoP replay records (RFC 9449 §11.1): every 30 s, drop those of proofs that are too
        // old to be accepted anyway, so the table holds at most one acceptance window.
        if n.is_multiple_of(15) {
            let pruned = ctx
                .store
                .blocking(|s| s.prune_dpop_proofs(unix_now()))
                .await;
            if let Err(e) = pruned {
                tracing::warn!(error = %e, "pruning DPoP replay records failed; will retry");
            }
            // Pushed authorization requests (RFC 9126) and device authorizations (RFC 8628)
            // that expired.
            let pruned = ctx
                .store
                .blocking(|s| {
                    let now = unix_now();
                    Ok(s.prune_pushed_requests(now)? + s.prune_device_grants(now)?)
                })
                .await;
            if let Err(e) = pruned {
                tracing::warn!(error = %e, "pruning pushed authorization requests or device codes failed; will retry");
            }
            prune_audit(&ctx).await;
            prune_expired(&ctx).await;
        }
        let keys = ctx.keys.clone();
        let config = ctx.config.clone();
        let result = ctx
            .store
            .blocking(move |s| {
                let now = unix_now();
                // Scheduled rotation first, so this replica publishes its own new key at
                // once; the database lock lets exactly one replica rotate.
                match crate::keys::rotate_if_due(s, keys.kek(), &config, now) {
                    Ok(rotated) => {
                        for r in &rotated {
                            let e = audit::key_rotated(&audit::Actor::System, None, r, now);
                            audit::record_blocking(s, e);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "scheduled key rotation failed; will retry")
                    }
                }
                keys.reload(s, now)
                    .map_err(|e| crate::store::StoreError::Other(e.to_string()))
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "key ring refresh failed; keeping the current keys");
        }
    }
}
