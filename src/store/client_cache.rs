//! PostgreSQL servers only: the clients that requests authenticate as, and which access
//! tokens were found not revoked, kept in memory, each entry dropped as soon as PostgreSQL
//! reports a change to its row (or a revocation: triggers of the `revocation_notify`
//! migration, on channel [`REVOCATIONS`]; this process's own revocations drop every "live"
//! answer at once, see [`note_revocation`]).
//!
//! A trigger on `clients` (migrations/postgres/…_client_notify) sends `NOTIFY
//! latchkey_clients, '<client_id>'` when any row changes, whoever changes it (admin API, CLI,
//! registration, SQL typed by an operator); PostgreSQL delivers it at commit to every server
//! `LISTEN`ing. Each server holds one such connection. Before anything is served from or added
//! to the cache, the notifications that connection has received are applied
//! ([`ClientCache::current`]: a non-blocking read of its socket, no round trip) — so a change
//! is in force on every replica from the moment PostgreSQL has sent its notification, which it
//! does when the change commits. Should the listening connection fail, or be in the middle of
//! its liveness check, nothing is served from the cache: every lookup reads the database, as
//! with no cache at all; when it is lost, the cache is emptied (notifications may have been
//! missed) and a new connection is made. A lookup that misses adds what it read only if no
//! notification arrived between its start and its end ([`Ticket`]).
//!
//! SQLite has no notifications and needs no cache: its client lookup is a ~4 µs read on the
//! request's own thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;

use crate::model::Client;

/// The channel the `clients` trigger notifies.
pub(crate) const CHANNEL: &str = "latchkey_clients";
/// The channel the revocation triggers notify: `j<jti>`, `f<family_id>`, or empty (all).
pub(crate) const REVOCATIONS: &str = "latchkey_revocations";
/// Clients kept at most (the least used beyond that are dropped).
const CAPACITY: usize = 4096;
/// "Live" answers for access tokens kept at most.
const TOKEN_CAPACITY: usize = 16_384;

thread_local! {
    /// Set by the store functions that revoke (a family, a `jti`), taken by
    /// [`super::Store::blocking`] once the work is done, to drop this process's "live" answers.
    static REVOKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks that the store work running on this thread revoked something.
pub(crate) fn note_revocation() {
    REVOKED.with(|r| r.set(true));
}

/// Whether the store work that just ran on this thread revoked something (and clears that).
pub(crate) fn take_revocation() -> bool {
    REVOKED.with(|r| r.replace(false))
}
/// How often the listening connection is checked (`SELECT 1`), or re-made when lost.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct ClientCache {
    entries: quick_cache::sync::Cache<Box<str>, Client>,
    /// Access tokens found not revoked, by `jti`, with the refresh family they descend from
    /// (`None`: none). Dropped by `jti` when one is revoked, all of them when a family is.
    live_tokens: quick_cache::sync::Cache<Box<str>, Option<Box<str>>>,
    /// The connection `LISTEN`ing on [`CHANNEL`]; `None` while it is being checked or made
    /// again: then nothing is served from or added to `entries`.
    listener: Mutex<Option<PgConnection>>,
    /// Counts the invalidations applied (and losses of the listener).
    generation: AtomicU64,
}

/// Taken by a lookup that missed: [`ClientCache::remember`] adds the client it then read only
/// if no invalidation was applied in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl ClientCache {
    /// A cache fed by a listening connection to `url`, which a background thread makes, checks
    /// every [`CHECK_INTERVAL`] and makes again when lost; the thread ends with the cache.
    pub(crate) fn start(url: &str) -> std::io::Result<Arc<ClientCache>> {
        let cache = Arc::new(ClientCache {
            entries: quick_cache::sync::Cache::new(CAPACITY),
            live_tokens: quick_cache::sync::Cache::new(TOKEN_CAPACITY),
            listener: Mutex::new(None),
            generation: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&cache);
        let url = listener_url(url);
        std::thread::Builder::new()
            .name("latchkey-listen".into())
            .spawn(move || keep_listening(&weak, &url))?;
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, Option<PgConnection>> {
        self.listener.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies every notification received so far, then runs `f` with the generation reached,
    /// still holding the listener (so no notification is applied between the two). `None`
    /// when there is no listening connection right now.
    fn current<R>(&self, f: impl FnOnce(u64) -> R) -> Option<R> {
        let mut guard = self.lock();
        let conn = guard.as_mut()?;
        let mut lost = false;
        // Twice: one read of the socket returns what data there is, and only the next one
        // sees the end of the stream behind it — as when the server ends the session with
        // an error message and closes it (`pg_terminate_backend`, a shutdown).
        'passes: for _ in 0..2 {
            for n in conn.notifications_iter() {
                match n {
                    Ok(n) if n.channel == CHANNEL => {
                        self.generation.fetch_add(1, Ordering::Relaxed);
                        if n.payload.is_empty() {
                            self.entries.clear();
                        } else {
                            self.entries.remove(n.payload.as_str());
                        }
                        // A "live" answer also says the token's client is enabled: any client
                        // change (rare) drops them all, tokens are not indexed by client.
                        self.live_tokens.clear();
                    }
                    Ok(n) if n.channel == REVOCATIONS => {
                        self.generation.fetch_add(1, Ordering::Relaxed);
                        match n.payload.strip_prefix('j') {
                            Some(jti) => {
                                self.live_tokens.remove(jti);
                            }
                            // A family, or everything: tokens are not indexed by family.
                            None => self.live_tokens.clear(),
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        lost = true;
                        break 'passes;
                    }
                }
            }
        }
        if lost {
            *guard = None;
            self.forget_all();
            tracing::warn!(
                "client cache: the listening connection failed; reading clients from the database until it is back"
            );
            return None;
        }
        Some(f(self.generation.load(Ordering::Relaxed)))
    }

    /// Empties the cache, and makes every outstanding [`Ticket`] stale.
    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.entries.clear();
        self.live_tokens.clear();
    }

    /// Whether the access token `jti` (descending from `family`) was found live and nothing
    /// revoked it since; else (`Err`) a ticket to [`remember_live`](Self::remember_live) it
    /// with once the database says it is live (`None`: do not).
    pub(crate) fn token_live(&self, jti: &str, family: Option<&str>) -> Result<(), Option<Ticket>> {
        match self.current(|generation| (self.live_tokens.get(jti), generation)) {
            Some((Some(f), _)) if f.as_deref() == family => Ok(()),
            Some((_, generation)) => Err(Some(Ticket(generation))),
            None => Err(None),
        }
    }

    /// Keeps "live" for `jti`, read after `ticket` was taken, unless a revocation (or any
    /// other change) was reported since.
    pub(crate) fn remember_live(&self, ticket: Ticket, jti: &str, family: Option<&str>) {
        self.current(|generation| {
            if generation == ticket.0 {
                self.live_tokens.insert(jti.into(), family.map(Into::into));
            }
        });
    }

    /// Drops every "live" answer at once: this process just revoked something.
    pub(crate) fn forget_live_tokens(&self) {
        let _listener = self.lock();
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.live_tokens.clear();
    }

    /// The client from memory, or (`Err`) a ticket to [`remember`](Self::remember) it with once
    /// read from the database (`None`: do not).
    pub(crate) fn get(&self, client_id: &str) -> Result<Client, Option<Ticket>> {
        match self.current(|generation| (self.entries.get(client_id), generation)) {
            Some((Some(client), _)) => Ok(client),
            Some((None, generation)) => Err(Some(Ticket(generation))),
            None => Err(None),
        }
    }

    /// Adds `client`, read from the database after `ticket` was taken, unless a change was
    /// reported since (it may be older than that change).
    pub(crate) fn remember(&self, ticket: Ticket, client: &Client) {
        self.current(|generation| {
            if generation == ticket.0 {
                self.entries
                    .insert(client.client_id.as_str().into(), client.clone());
            }
        });
    }

    /// Drops `client_id` at once: called by this process's own changes, once committed, so
    /// that they are in force here without waiting for their notification.
    pub(crate) fn forget(&self, client_id: &str) {
        let _listener = self.lock();
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.entries.remove(client_id);
        // "Live" answers include the client's state (see the notification case above).
        self.live_tokens.clear();
    }
}

/// The listening connection gives up on a network that stopped answering after 5 s (libpq's
/// `tcp_user_timeout`), so that the thread checking it notices and makes a new one.
fn listener_url(url: &str) -> String {
    if url.contains("tcp_user_timeout=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut url = format!("{url}{sep}tcp_user_timeout=5000");
    // So that operators (and the tests) can tell it in `pg_stat_activity`.
    if !url.contains("application_name=") {
        url.push_str("&application_name=latchkey-listen");
    }
    url
}

fn listen(url: &str) -> Result<PgConnection, String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {REVOCATIONS}"))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// The background thread: every [`CHECK_INTERVAL`], takes the listening connection out (so
/// that nothing is served from the cache meanwhile), checks it with `SELECT 1` and puts it back
/// — or, when it failed, empties the cache and connects again. Notifications that arrive during
/// the check are kept by libpq and applied by the next lookup.
fn keep_listening(cache: &Weak<ClientCache>, url: &str) {
    let mut reported = false;
    loop {
        let Some(c) = cache.upgrade() else { return };
        let taken = c.lock().take();
        drop(c);
        let back = match taken {
            Some(mut conn) => match conn.batch_execute("SELECT 1") {
                Ok(()) => Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "client cache: the listening connection failed; reading clients from the database until it is back");
                    if let Some(c) = cache.upgrade() {
                        c.forget_all();
                    }
                    None
                }
            },
            None => match listen(url) {
                Ok(conn) => {
                    if reported {
                        tracing::info!("client cache: listening again");
                    }
                    reported = false;
                    Some(conn)
                }
                Err(e) => {
                    if !reported {
                        tracing::warn!(error = %e, "client cache: cannot listen for client changes; reading clients from the database");
                        reported = true;
                    }
                    None
                }
            },
        };
        let Some(c) = cache.upgrade() else { return };
        if let Some(conn) = back {
            let mut guard = c.lock();
            if guard.is_none() {
                *guard = Some(conn);
            }
        }
        drop(c);
        std::thread::sleep(CHECK_INTERVAL);
    }
}
