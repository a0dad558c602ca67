//! The storage facade: the only module that knows SQL. Protocol code calls the domain methods
//! here (through [`Store::blocking`] from async code); each method is one transaction.
//!
//! Point reads use `get_result` (every such query is by a primary key or a unique column), never
//! diesel's `first`: `first` appends `LIMIT ?`, and SQLite (3.48+) plans with the value bound to
//! a `LIMIT` parameter, so binding it again expires the cached statement and every execution
//! re-parsed and re-planned the SQL (~90k of the ~110k instructions of a client lookup).

mod admin;
mod attestation;
mod client_cache;
mod device;
mod factors;
mod grants;
mod logout_notices;
mod retention;
mod rotation;
mod schema;
mod signins;

pub use admin::{AuditQuery, GrantsRevoked, Registered};
pub use attestation::AttestedKey;
pub use client_cache::Ticket;
pub use factors::{Factors, PasskeyRow, TotpRow};
pub use grants::{Redeemed, Rotated};
pub use logout_notices::{LogoutNotice, SignedOut};
pub use retention::Pruned;
pub use signins::{SignIns, SignedInApp};

use std::path::Path;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::model::{Client, ClientType, GrantType, SigningKeyRecord, User};
use schema::{clients, signing_keys, users};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Arbitrary constant naming the PostgreSQL advisory lock held while migrations run, so that
/// replicas starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x4c41_5443_484b_4559; // "LATCHKEY"

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is busy beyond the timeout.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness constraint was violated (e.g. a username that already exists).
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Other(String),
}

/// Messages by which SQLite and libpq report that the database cannot be used right now.
const UNAVAILABLE_HINTS: &[&str] = &[
    "database is locked",
    "unable to open",
    "server closed the connection",
    "terminating connection",
    "could not connect",
    "connection refused",
    "no connection to the server",
    "connection to server",
    "the database system is",
];

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            Error::BrokenTransactionManager => StoreError::Unavailable(e.to_string()),
            other => {
                let msg = other.to_string();
                let lower = msg.to_ascii_lowercase();
                if UNAVAILABLE_HINTS.iter().any(|h| lower.contains(h)) {
                    StoreError::Unavailable(msg)
                } else {
                    StoreError::Other(msg)
                }
            }
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One database connection of either backend. Queries are written once against this type;
/// the backend is chosen when the pool connects, from the URL scheme.
#[derive(diesel::MultiConnection)]
pub(crate) enum Db {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// Runs the same diesel query on the concrete connection inside a [`Db`]: `on_backend!(conn,
/// |db| query.execute(db))`. The query is written once and compiled per backend, so diesel's
/// statement cache is keyed by the query's type. Through the `MultiConnection` itself, every
/// execution rendered the SQL text again (quoting each identifier) to find the cached
/// statement: ~80 % of the ~50k instructions of a client lookup on SQLite. Used on the hot
/// paths (client lookup, revocation checks, refresh rotation, code redemption).
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::Db::Sqlite($c) => $body,
            $crate::store::Db::Pg($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// The database behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where to connect, parsed from `database_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A file path (`sqlite://path/to/file.db`).
    Sqlite(String),
    /// A libpq connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path == ":memory:" || path.starts_with("file::memory:") {
                return Err(
                    "a file path is required (an in-memory database cannot be pooled)".into(),
                );
            }
            return Ok(DatabaseUrl::Sqlite(path.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let parsed = url::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
            if parsed.host_str().is_none_or(str::is_empty)
                && !parsed.query_pairs().any(|(k, _)| k == "host")
            {
                return Err("a PostgreSQL URL needs a host".into());
            }
            let mut url = url.to_owned();
            // A database that does not answer must not hang a request for minutes (libpq's
            // default is no timeout); the pool gives up after its own timeout anyway.
            if !parsed.query_pairs().any(|(k, _)| k == "connect_timeout") {
                url.push(if parsed.query().is_some() { '&' } else { '?' });
                url.push_str("connect_timeout=3");
            }
            return Ok(DatabaseUrl::Postgres(url));
        }
        Err("must start with sqlite:// (e.g. sqlite://./data/latchkey.db) or postgres://".into())
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Opens connections of the backend named by the URL, so that a `postgres://` URL can never
/// be mistaken for a SQLite file name (diesel's derived `establish` would try both).
#[derive(Debug)]
struct Manager {
    url: DatabaseUrl,
    /// SQLite's busy timeout: how long a statement waits for another connection's lock
    /// before failing with `SQLITE_BUSY`. 0 for the in-place writer, which must never wait.
    busy_timeout_ms: u32,
    /// PostgreSQL: when ([`mono_ms`]) a connection of this pool was last found lost; every
    /// connection not heard from since is checked before its next use.
    suspect_since: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Manager {
    fn new(url: DatabaseUrl, busy_timeout_ms: u32) -> Manager {
        Manager {
            url,
            busy_timeout_ms,
            suspect_since: Default::default(),
        }
    }
}

/// How long a SQLite writer on the blocking pool waits for the write lock.
const BUSY_TIMEOUT_MS: u32 = 5000;

impl ManageConnection for Manager {
    type Connection = Db;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Db, Self::Error> {
        use diesel::r2d2::Error;
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path).map_err(Error::ConnectionError)?;
                // WAL lets readers proceed during a write; NORMAL sync in WAL mode survives a
                // process crash (kill -9) without losing a committed transaction;
                // busy_timeout makes writers queue instead of failing under contention (except
                // on the in-place writer, which falls back to the blocking pool instead).
                // Checkpoints: the server runs them in the background (`Store::checkpoint`,
                // every `CHECKPOINT_INTERVAL`), so no request pays for copying the WAL back
                // and its fsync; the automatic checkpoint stays as a backstop at
                // `WAL_AUTOCHECKPOINT_PAGES` for processes without that task (the CLI) or if
                // it falls behind.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};",
                    self.busy_timeout_ms
                ))
                .map_err(Error::QueryError)?;
                Ok(Db::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url).map_err(Error::ConnectionError)?;
                conn.set_instrumentation(PgHealth::new());
                Ok(Db::Pg(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut Db) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Db) -> bool {
        if let Db::Pg(c) = conn
            && PgHealth::of(c).is_some_and(|h| h.lost)
        {
            // One lost connection (a database restart, a cut network) makes every other one
            // in the pool suspect: each is checked before its next use.
            self.suspect_since
                .fetch_max(mono_ms(), std::sync::atomic::Ordering::Relaxed);
            return true;
        }
        std::thread::panicking()
            || <Db as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Milliseconds on a monotonic clock that starts with the process (0 is "never").
fn mono_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// A PostgreSQL connection not used for this long is checked (`SELECT 1`) before it is lent.
/// One used more recently is lent as it is (as HikariCP does, with 500 ms): under load that
/// saves a round trip per store call — half of those of a client_credentials grant — and a
/// connection that breaks under load is noticed on its next query anyway (`PgHealth`), when
/// the request fails with a 503 and the pool replaces it.
const PG_IDLE_CHECK_MS: u64 = 1000;

/// What a PostgreSQL connection's own queries tell about it: diesel reports every query's end
/// to this instrumentation, so whether the connection was lost and when the server last
/// answered cost no round trip of their own.
struct PgHealth {
    /// A query failed because the connection is gone (closed by the server, cut, or libpq
    /// could not send): the pool discards it ([`Manager::has_broken`]).
    lost: bool,
    /// When the server last answered a query ([`mono_ms`]).
    last_answer_ms: u64,
}

impl PgHealth {
    fn new() -> PgHealth {
        PgHealth {
            lost: false,
            last_answer_ms: mono_ms(),
        }
    }

    fn of(conn: &mut PgConnection) -> Option<&mut PgHealth> {
        conn.instrumentation().downcast_mut::<PgHealth>()
    }

    /// Whether the connection must be checked before it is lent: idle for a while, or not
    /// heard from since a connection of the same pool was found lost.
    fn needs_check(&self, suspect_since: u64, now: u64) -> bool {
        self.lost
            || now.saturating_sub(self.last_answer_ms) > PG_IDLE_CHECK_MS
            || self.last_answer_ms <= suspect_since
    }
}

impl diesel::connection::Instrumentation for PgHealth {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent;
        use diesel::result::{DatabaseErrorKind, Error};
        if let InstrumentationEvent::FinishQuery { error, .. } = event {
            match error {
                Some(Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _,
                )) => self.lost = true,
                // Any other outcome, errors included, is an answer from the server.
                _ => self.last_answer_ms = mono_ms(),
            }
        }
    }
}

type Pooled = PooledConnection<Manager>;

/// SQLite's automatic checkpoint threshold (pages of 4 KiB): a backstop only, well above what
/// the background checkpoint lets the WAL reach (SQLite's default is 1000).
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// What `PRAGMA wal_checkpoint` reports.
#[derive(Debug, diesel::QueryableByName)]
pub struct WalCheckpoint {
    /// 1 when the checkpoint could not run (another one in progress).
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub busy: i32,
    /// Frames in the WAL.
    #[diesel(sql_type = diesel::sql_types::Integer, column_name = log)]
    pub frames: i32,
    /// Frames now copied into the database file.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub checkpointed: i32,
}

/// How often the server checkpoints the SQLite WAL into the database file in the background.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

thread_local! {
    /// The connection lent to [`Store::read`]'s closure on this thread: `(store id, conn)`.
    static LENT: std::cell::RefCell<Option<(u64, Pooled)>> = const { std::cell::RefCell::new(None) };
}

/// A connection checked out for one store method: either from the pool, or the one lent to
/// the [`Store::read`] running on this thread (given back when the method is done with it).
pub(crate) struct Conn {
    conn: Option<Pooled>,
    lent_by: Option<u64>,
}

impl std::ops::Deref for Conn {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.conn.as_deref().expect("connection present until drop")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Db {
        self.conn
            .as_deref_mut()
            .expect("connection present until drop")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let (Some(id), Some(conn)) = (self.lent_by, self.conn.take()) {
            LENT.with(|l| *l.borrow_mut() = Some((id, conn)));
        }
    }
}

/// Takes back the lent connection when the closure of [`Store::read`] or [`Store::write`]
/// returns or unwinds.
struct LendGuard;

impl Drop for LendGuard {
    fn drop(&mut self) {
        LENT.with(|l| l.borrow_mut().take());
    }
}

/// A write transaction open on the in-place writer, which the [`Store::write`] calls made
/// before it commits join, each in a savepoint (group commit).
struct Batch {
    /// The in-place writer, with the transaction open; `None` once lost (a member's work
    /// unwound with it: the transaction is gone, and the commit fails).
    conn: Option<Pooled>,
    /// Told whether the transaction committed: every member but the one that opened it.
    members: Vec<tokio::sync::oneshot::Sender<bool>>,
}

/// What [`Store::write`] did with its work while it held the batch slot.
enum Step<R, F> {
    /// Ran it in the open transaction; told on the receiver whether that committed.
    Joined(StoreResult<R>, tokio::sync::oneshot::Receiver<bool>),
    /// Ran it in a transaction it opened, which it commits.
    Opened(StoreResult<R>),
    /// Ran it, and the transaction was lost with its connection.
    Lost,
    /// Did not run it: it goes to the blocking pool.
    Elsewhere(F),
}

/// Held by the [`Store::write`] call that opened the store's [`Batch`]: commits it (once) and
/// tells every member, when asked to or when dropped.
struct CommitBatch<'a> {
    store: &'a Store,
    done: bool,
}

impl CommitBatch<'_> {
    /// Closes the batch to newcomers, commits it and tells its members; whether it committed.
    fn commit(mut self) -> bool {
        self.finish()
    }

    fn finish(&mut self) -> bool {
        if self.done {
            return false;
        }
        self.done = true;
        let mut slot = self.store.lock_batch();
        let Some(batch) = slot.take() else {
            return false;
        };
        let committed = match batch.conn {
            Some(mut conn) => {
                match <Db as Connection>::TransactionManager::commit_transaction(&mut *conn) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "SQLite commit failed; the writes in it are refused");
                        false
                    }
                }
            }
            None => false,
        };
        drop(slot);
        self.store
            .write_stats
            .record(batch.members.len() as u64 + 1);
        for member in batch.members {
            let _ = member.send(committed);
        }
        committed
    }
}

impl Drop for CommitBatch<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Writes grouped, and how many groups: on SQLite [`Store::write`]'s transactions (committed
/// or not) and the writes they held (group commit); on PostgreSQL the refresh rotation
/// batches and the rotations they held ([`rotation`]).
#[derive(Debug, Default)]
pub struct WriteStats {
    transactions: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
}

impl WriteStats {
    fn record(&self, writes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.transactions.fetch_add(1, Relaxed);
        self.writes.fetch_add(writes, Relaxed);
    }

    /// `(transactions, writes)` so far.
    pub fn get(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.transactions.load(Relaxed), self.writes.load(Relaxed))
    }
}

static NEXT_STORE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Runs `f` in one write transaction: `BEGIN IMMEDIATE` on SQLite (the write lock is taken
/// up front, so a read-then-write cannot fail half-way with `SQLITE_BUSY`), a plain
/// transaction on PostgreSQL, where methods lock the rows they decide on (see
/// [`grants::lock_row`]).
///
/// Inside a transaction already open on the connection (the one [`Store::write`] runs its
/// work in), it is a savepoint of that transaction: `f`'s writes are undone on error, and
/// committed with the outer transaction.
pub(crate) fn write_tx<T, E>(conn: &mut Db, f: impl FnOnce(&mut Db) -> Result<T, E>) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match conn {
        Db::Sqlite(c) => {
            if in_transaction(c)? {
                AnsiTransactionManager::begin_transaction(c)?
            } else {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
            }
        }
        Db::Pg(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            <Db as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => match <Db as Connection>::TransactionManager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

fn in_transaction(c: &mut SqliteConnection) -> Result<bool, diesel::result::Error> {
    Ok(AnsiTransactionManager::transaction_manager_status_mut(c)
        .transaction_depth()?
        .is_some())
}

#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    /// SQLite: one more connection, with no busy timeout, on which [`Store::write`] runs
    /// write transactions in place when it is idle and the write lock is free.
    in_place_writer: Option<Pool<Manager>>,
    backend: Backend,
    /// Tells this store's lent connection from another store's on the same thread.
    id: u64,
    /// Shared with the pool's [`Manager`]: see `Manager::suspect_since`.
    suspect_since: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// PostgreSQL servers: the clients requests authenticate as (see [`client_cache`]).
    clients: Option<std::sync::Arc<client_cache::ClientCache>>,
    /// SQLite: the in-place write transactions and the writes they held.
    write_stats: std::sync::Arc<WriteStats>,
    /// SQLite: the write transaction open for group commit, shared by every worker.
    batch: std::sync::Arc<std::sync::Mutex<Option<Batch>>>,
    /// PostgreSQL: refresh rotations waiting for their batch (see [`rotation`]).
    rotations: std::sync::Arc<std::sync::Mutex<rotation::Queue>>,
    /// PostgreSQL: rotation batches run, and the rotations they held.
    rotation_stats: std::sync::Arc<WriteStats>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database named by `database_url` and runs pending
    /// migrations. Blocking: call at start-up or from the CLI.
    pub fn open(database_url: &str, pool_size: u32) -> anyhow::Result<Store> {
        Self::open_pool(database_url, pool_size, Some(1))
    }

    /// For one-shot commands (the CLI): one connection, opened on first use and never
    /// replenished in the background, so no pool thread is still inside libpq (and its
    /// OpenSSL) when the process exits — which crashed `exit()` about once in 30 runs.
    pub fn open_single(database_url: &str) -> anyhow::Result<Store> {
        Self::open_pool(database_url, 1, Some(0))
    }

    fn open_pool(
        database_url: &str,
        pool_size: u32,
        min_idle: Option<u32>,
    ) -> anyhow::Result<Store> {
        let url =
            DatabaseUrl::parse(database_url).map_err(|e| anyhow::anyhow!("database_url: {e}"))?;
        if let DatabaseUrl::Sqlite(path) = &url
            && let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                anyhow::anyhow!(
                    "database_url: cannot create directory {}: {e}",
                    parent.display()
                )
            })?;
        }
        let backend = url.backend();
        let shown = redact_url(database_url);
        let manager = Manager::new(url.clone(), BUSY_TIMEOUT_MS);
        let suspect_since = manager.suspect_since.clone();
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(min_idle)
            // A SQLite connection is a handle on a local file: nothing on the other end can
            // go away, so checking it out needs no `SELECT 1` (which SQLite parsed afresh on
            // every checkout: ~10 % of the server's CPU on the client_credentials path).
            // A PostgreSQL connection is checked by `Store::conn` only when it has been idle
            // or may have been lost (`PgHealth`), so one cut by a restart is replaced.
            .test_on_check_out(false)
            // A request waits at most this long for a connection before answering 503.
            .connection_timeout(Duration::from_secs(3))
            .build(manager)
            .map_err(|e| anyhow::anyhow!("database_url: cannot connect to {shown}: {e}"))?;
        let id = NEXT_STORE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut store = Store {
            pool,
            in_place_writer: None,
            backend,
            id,
            suspect_since,
            clients: None,
            write_stats: Default::default(),
            batch: Default::default(),
            rotations: Default::default(),
            rotation_stats: Default::default(),
        };
        drop(
            store
                .conn()
                .map_err(|e| anyhow::anyhow!("database_url: cannot connect to {shown}: {e}"))?,
        );
        store
            .migrate()
            .map_err(|e| anyhow::anyhow!("database migrations failed on {shown}: {e}"))?;
        // Servers only: a one-shot CLI command (`min_idle` 0) writes on its one connection.
        if backend == Backend::Sqlite && min_idle != Some(0) {
            let writer = Pool::builder()
                .max_size(1)
                .min_idle(Some(1))
                .test_on_check_out(false)
                .connection_timeout(Duration::from_secs(3))
                .build(Manager::new(url.clone(), 0))
                .map_err(|e| anyhow::anyhow!("database_url: cannot connect to {shown}: {e}"))?;
            store.in_place_writer = Some(writer);
        }
        if let DatabaseUrl::Postgres(pg) = &url
            && min_idle != Some(0)
        {
            store.clients = Some(
                client_cache::ClientCache::start(pg)
                    .map_err(|e| anyhow::anyhow!("cannot start the client cache: {e}"))?,
            );
        }
        Ok(store)
    }

    fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self.conn().map_err(|e| anyhow::anyhow!("{e}"))?;
        match &mut *conn {
            Db::Sqlite(c) => {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            Db::Pg(c) => {
                c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
                let result = c
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}"));
                c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
                result?;
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// SQLite: `(transactions, writes)` of [`write`](Self::write)'s in-place transactions so
    /// far (group commit: one transaction holds one write or more).
    pub fn write_stats(&self) -> (u64, u64) {
        self.write_stats.get()
    }

    /// PostgreSQL: `(batches, rotations)` of the refresh rotations batched so far (see
    /// [`rotation`]).
    pub fn rotation_stats(&self) -> (u64, u64) {
        self.rotation_stats.get()
    }

    fn lock_rotations(&self) -> std::sync::MutexGuard<'_, rotation::Queue> {
        self.rotations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a rotation for the batch runner, starting it (on the blocking pool) unless it
    /// runs already.
    fn queue_rotation(&self, r: Box<dyn rotation::Rotation>) {
        let start = {
            let mut q = self.lock_rotations();
            q.waiting.push(r);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.run_rotations());
        }
    }

    /// The batch runner: takes everything queued, runs it as one batch, until nothing is left.
    /// What a batch leaves to the locked path (a retry or reuse) goes back to the blocking
    /// pool, a task and a connection each, so that it never holds up the next batch. A panic
    /// in a batch (a bug) fails that batch's requests, whose answers are dropped, and not the
    /// ones after it.
    fn run_rotations(&self) {
        loop {
            let batch = {
                let mut q = self.lock_rotations();
                if q.waiting.is_empty() {
                    q.running = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            self.rotation_stats.record(batch.len() as u64);
            let run = std::panic::AssertUnwindSafe(|| match self.conn() {
                Ok(mut conn) => rotation::run_batch(&mut conn, batch),
                Err(e) => {
                    for r in batch {
                        r.failed(e.clone());
                    }
                    Vec::new()
                }
            });
            match std::panic::catch_unwind(run) {
                Ok(locked) => {
                    for r in locked {
                        let store = self.clone();
                        tokio::task::spawn_blocking(move || {
                            store.run_blocking(|s| match s.conn() {
                                Ok(mut conn) => r.locked(&mut conn),
                                Err(e) => r.failed(e),
                            })
                        });
                    }
                }
                Err(_) => {
                    tracing::error!("a batch of refresh rotations panicked; its requests failed")
                }
            }
        }
    }

    fn lock_batch(&self) -> std::sync::MutexGuard<'_, Option<Batch>> {
        self.batch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn conn(&self) -> StoreResult<Conn> {
        let lent = LENT.with(|l| {
            let mut l = l.borrow_mut();
            match l.take() {
                Some((id, conn)) if id == self.id => Some(conn),
                other => {
                    *l = other;
                    None
                }
            }
        });
        if let Some(conn) = lent {
            return Ok(Conn {
                conn: Some(conn),
                lent_by: Some(self.id),
            });
        }
        Ok(Conn {
            conn: Some(self.checked_out()?),
            lent_by: None,
        })
    }

    /// A connection from the pool. A PostgreSQL connection that has been idle, or may have
    /// been lost ([`PgHealth::needs_check`]), is checked with `SELECT 1` first; one that fails
    /// is discarded and the next one tried.
    fn checked_out(&self) -> StoreResult<Pooled> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut last_error = None;
        for _ in 0..=self.pool.max_size() {
            let mut conn = self
                .pool
                .get()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let Db::Pg(c) = &mut *conn else {
                return Ok(conn);
            };
            let suspect_since = self.suspect_since.load(Relaxed);
            if !PgHealth::of(c).is_some_and(|h| h.needs_check(suspect_since, mono_ms())) {
                return Ok(conn);
            }
            match c.batch_execute("SELECT 1") {
                Ok(()) => return Ok(conn),
                Err(e) => {
                    if let Some(h) = PgHealth::of(c) {
                        h.lost = true;
                    }
                    last_error = Some(e.to_string());
                    // Dropped: `has_broken` sees `lost` and the pool closes it.
                }
            }
        }
        Err(StoreError::Unavailable(
            last_error.unwrap_or_else(|| "no usable connection".into()),
        ))
    }

    /// Runs read-only store work. On SQLite, when a connection is idle, `f` runs right here
    /// on the async worker: a WAL reader never waits for a writer, and a point read costs a
    /// few microseconds, less than the two thread switches of a trip through the blocking
    /// pool (~20 % of the server's CPU on the client_credentials path). The in-place writer
    /// ([`write`](Self::write)) is tried first: as the connection that wrote last, its page
    /// cache is still valid, while every other connection's is emptied by each commit it did
    /// not make (a client lookup after a refresh rotation re-read its pages: ~20 µs instead of
    /// ~4 µs). Should that connection, which has no busy timeout, ever report the database
    /// busy, `f` (a clone of it: it must be repeatable) runs again on the blocking pool.
    /// Otherwise (PostgreSQL, whose round trip can stall on the network, or no idle
    /// connection) it is [`blocking`](Self::blocking). `f` must not write: use `write`.
    pub async fn read<F, R>(&self, f: F) -> StoreResult<R>
    where
        F: FnOnce(&Store) -> StoreResult<R> + Clone + Send + 'static,
        R: Send + 'static,
    {
        if self.backend == Backend::Sqlite {
            if let Some(conn) = self.in_place_writer.as_ref().and_then(|p| p.try_get()) {
                match self.run_lent(conn, f.clone()) {
                    Err(StoreError::Unavailable(_)) => return self.blocking(f).await,
                    done => return done,
                }
            }
            if let Some(conn) = self.pool.try_get() {
                return self.run_lent(conn, f);
            }
        }
        self.blocking(f).await
    }

    /// Runs `f` here with `conn` lent to the store methods it calls (see [`Store::conn`]).
    fn run_lent<R>(
        &self,
        conn: Pooled,
        f: impl FnOnce(&Store) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let _guard = LendGuard;
        LENT.with(|l| *l.borrow_mut() = Some((self.id, conn)));
        f(self)
    }

    /// Runs store work that writes, all of `f` or nothing of it. On SQLite, when the in-place
    /// writer connection is idle and `BEGIN IMMEDIATE` takes the database's write lock at once
    /// (that connection has no busy timeout: it fails instead of waiting), `f` runs right here
    /// on the async worker inside that transaction. Holding the write lock, nothing in it can
    /// wait for another connection, and a rotation or code redemption is ~50-100 µs of CPU:
    /// less than the two thread switches of a trip through the blocking pool. And being
    /// (almost) the only writer, that connection keeps its page cache from one transaction to
    /// the next. When the lock is held (a writer on the blocking pool, another process such as
    /// the CLI) or the connection is busy (another worker), and always on PostgreSQL, `f` goes
    /// to [`blocking`](Self::blocking) untouched.
    ///
    /// Group commit: the transaction is left open for one turn of this worker's scheduler, and
    /// the writes that other requests make meanwhile, on this worker or another, join it, each
    /// in a savepoint of its own (so one's failure undoes only its own work), before one `COMMIT`
    /// for all ([`Batch`]). No call returns before that commit: a write is acknowledged only
    /// once it is durable, and if the commit fails, every write in it fails. Store methods
    /// called from `f` open savepoints ([`write_tx`]).
    pub async fn write<F, R>(&self, f: F) -> StoreResult<R>
    where
        F: FnOnce(&Store) -> StoreResult<R> + Send + 'static,
        R: Send + 'static,
    {
        if self.in_place_writer.is_none() {
            return self.blocking(f).await;
        }
        // The slot is held while `f` runs: a write on another worker waits for it the few
        // tens of µs that work takes (CPU, and page writes to the OS's cache; never a lock
        // wait), as it would for the write lock.
        let step = {
            let mut slot = self.lock_batch();
            match slot.as_mut() {
                // Join the transaction open.
                Some(batch) => match batch.conn.take() {
                    Some(conn) => {
                        let (result, conn) = self.run_in_savepoint(conn, f);
                        batch.conn = conn;
                        let (done, committed) = tokio::sync::oneshot::channel();
                        batch.members.push(done);
                        Step::Joined(result, committed)
                    }
                    // Lost, with the transaction: wait for the write lock elsewhere.
                    None => Step::Elsewhere(f),
                },
                None => match self.begin_in_place() {
                    Some(conn) => match self.run_in_savepoint(conn, f) {
                        // The transaction is gone with its connection: nothing of `f` was kept.
                        (_, None) => Step::Lost,
                        (result, conn) => {
                            *slot = Some(Batch {
                                conn,
                                members: Vec::new(),
                            });
                            Step::Opened(result)
                        }
                    },
                    None => Step::Elsewhere(f),
                },
            }
        };
        let not_committed =
            || StoreError::Unavailable("the write transaction could not commit".into());
        match step {
            // (A sender dropped unsent reads as "not committed".)
            Step::Joined(result, committed) => match committed.await {
                Ok(true) => result,
                _ => Err(not_committed()),
            },
            Step::Opened(result) => {
                // Commits when dropped, should this future be dropped while it yields.
                let batch = CommitBatch {
                    store: self,
                    done: false,
                };
                tokio::task::yield_now().await;
                if batch.commit() {
                    result
                } else {
                    Err(not_committed())
                }
            }
            Step::Lost => Err(not_committed()),
            Step::Elsewhere(f) => self.blocking(f).await,
        }
    }

    /// The in-place writer with `BEGIN IMMEDIATE` done, if it is idle and the write lock free.
    fn begin_in_place(&self) -> Option<Pooled> {
        let mut conn = self.in_place_writer.as_ref()?.try_get()?;
        let Db::Sqlite(c) = &mut *conn else {
            return None;
        };
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE").ok()?;
        Some(conn)
    }

    /// Runs `f` in a savepoint of the transaction open on `conn` (lent to the store methods
    /// `f` calls): released when `f` returns `Ok`, rolled back when it returns `Err`. Gives
    /// the connection back, or `None` if it was lost (the savepoint could not be closed; the
    /// connection then goes back to its pool with its transaction open, which discards it and
    /// so rolls back the whole transaction).
    fn run_in_savepoint<R>(
        &self,
        conn: Pooled,
        f: impl FnOnce(&Store) -> StoreResult<R>,
    ) -> (StoreResult<R>, Option<Pooled>) {
        let mut out = None;
        let result = self.run_lent(conn, |s| {
            let mut conn = s.conn()?;
            <Db as Connection>::TransactionManager::begin_transaction(&mut *conn)?;
            drop(conn);
            let result = f(s);
            // The lent connection again (`f` gave it back when its `Conn`s were dropped).
            let mut conn = s.conn()?;
            let closed = match &result {
                Ok(_) => <Db as Connection>::TransactionManager::commit_transaction(&mut *conn),
                Err(_) => <Db as Connection>::TransactionManager::rollback_transaction(&mut *conn),
            };
            // Only the lent connection, which holds the transaction, goes back to the batch.
            if closed.is_ok()
                && conn.lent_by.is_some()
                && let Some(lent) = conn.conn.take()
            {
                conn.lent_by = None;
                out = Some(lent);
            }
            closed?;
            result
        });
        (result, out)
    }

    /// Runs store work here, on a blocking-pool thread; once it has committed, this
    /// process's own revocations in it are in force here at once.
    fn run_blocking<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        let result = f(self);
        if client_cache::take_revocation() {
            self.forget_live_tokens();
        }
        result
    }

    /// Runs blocking store work on the blocking thread pool, off the async executor.
    pub async fn blocking<F, R>(&self, f: F) -> StoreResult<R>
    where
        F: FnOnce(&Store) -> StoreResult<R> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.run_blocking(f))
            .await
            .map_err(|e| StoreError::Other(format!("blocking task failed: {e}")))?
    }

    /// SQLite: copies the WAL's committed frames into the database file (a PASSIVE
    /// checkpoint: it neither waits for nor blocks readers and writers), so the WAL can start
    /// over. PostgreSQL: nothing to do (`None`).
    pub fn checkpoint(&self) -> StoreResult<Option<WalCheckpoint>> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let mut conn = self.conn()?;
        let Db::Sqlite(c) = &mut *conn else {
            return Ok(None);
        };
        Ok(Some(
            diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<WalCheckpoint>(c)?,
        ))
    }

    pub fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn()?;
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }

    // ---- clients -------------------------------------------------------------------------

    pub fn client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        let mut conn = self.conn()?;
        let row = on_backend!(&mut *conn, |db| clients::table
            .find(client_id)
            .get_result::<ClientRow>(db))
        .optional()?;
        row.map(ClientRow::into_client).transpose()
    }

    /// For the request paths (token, introspection, revocation, authorization): the client
    /// from memory when the cache holds it (PostgreSQL servers), or `Err` with the ticket to
    /// pass to [`remember_client`](Self::remember_client) with what is then read by
    /// [`client`](Self::client). Administrative paths read with `client` alone.
    pub fn cached_client(&self, client_id: &str) -> Result<Client, Option<Ticket>> {
        match &self.clients {
            Some(cache) => cache.get(client_id),
            None => Err(None),
        }
    }

    /// Keeps a client read after [`cached_client`](Self::cached_client) missed.
    pub fn remember_client(&self, ticket: Option<Ticket>, client: &Client) {
        if let (Some(cache), Some(ticket)) = (&self.clients, ticket) {
            cache.remember(ticket, client);
        }
    }

    /// The client a request names: [`cached_client`](Self::cached_client), else read
    /// ([`read`](Self::read)) and remembered.
    pub async fn request_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        let ticket = match self.cached_client(client_id) {
            Ok(client) => return Ok(Some(client)),
            Err(ticket) => ticket,
        };
        let id = client_id.to_owned();
        let client = self.read(move |s| s.client(&id)).await?;
        if let Some(c) = &client {
            self.remember_client(ticket, c);
        }
        Ok(client)
    }

    /// Drops a client this process just changed from the cache (see `ClientCache::forget`).
    pub(crate) fn forget_client(&self, client_id: &str) {
        if let Some(cache) = &self.clients {
            cache.forget(client_id);
        }
    }

    /// For the request paths: whether the access token `jti` (of `family`) is known live
    /// from memory (PostgreSQL servers), else `Err` with the ticket to pass to
    /// [`remember_live_token`](Self::remember_live_token) once the database says it is.
    pub fn cached_token_live(&self, jti: &str, family: Option<&str>) -> Result<(), Option<Ticket>> {
        match &self.clients {
            Some(cache) => cache.token_live(jti, family),
            None => Err(None),
        }
    }

    /// Keeps a "not revoked" answer read after [`cached_token_live`](Self::cached_token_live)
    /// missed.
    pub fn remember_live_token(&self, ticket: Option<Ticket>, jti: &str, family: Option<&str>) {
        if let (Some(cache), Some(ticket)) = (&self.clients, ticket) {
            cache.remember_live(ticket, jti, family);
        }
    }

    fn forget_live_tokens(&self) {
        if let Some(cache) = &self.clients {
            cache.forget_live_tokens();
        }
    }

    pub fn clients(&self) -> StoreResult<Vec<Client>> {
        let mut conn = self.conn()?;
        let rows = clients::table
            .order(clients::created_at.asc())
            .load::<ClientRow>(&mut *conn)?;
        rows.into_iter().map(ClientRow::into_client).collect()
    }

    /// Every enabled client's CORS `allowed_origins`, merged (what `http::cors` allows).
    pub fn allowed_origins(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.conn()?;
        let lists = clients::table
            .filter(clients::disabled.eq(false))
            .filter(clients::allowed_origins.ne("[]"))
            .select(clients::allowed_origins)
            .load::<String>(&mut *conn)?;
        let mut all = Vec::new();
        for l in lists {
            let l: Vec<String> =
                serde_json::from_str(&l).map_err(|_| corrupt("allowed_origins"))?;
            all.extend(l);
        }
        Ok(all)
    }

    pub fn insert_client(&self, client: &Client) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::insert_into(clients::table)
            .values(ClientRow::from_client(client)?)
            .execute(db))?;
        Ok(())
    }

    /// Returns false when no such client exists.
    pub fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::update(
            clients::table.find(client_id)
        )
        .set((clients::disabled.eq(disabled), clients::updated_at.eq(now)))
        .execute(db))?;
        self.forget_client(client_id);
        Ok(n == 1)
    }

    pub fn set_client_secret_hash(
        &self,
        client_id: &str,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::update(
            clients::table.find(client_id)
        )
        .set((
            clients::secret_hash.eq(Some(hash)),
            clients::updated_at.eq(now),
        ))
        .execute(db))?;
        self.forget_client(client_id);
        Ok(n == 1)
    }

    // ---- users ---------------------------------------------------------------------------

    pub fn insert_user(&self, user: &User) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::insert_into(users::table)
            .values(UserRow::from(user))
            .execute(db))?;
        Ok(())
    }

    pub fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let mut conn = self.conn()?;
        Ok(on_backend!(&mut *conn, |db| users::table
            .filter(users::username.eq(username))
            .get_result::<UserRow>(db))
        .optional()?
        .map(User::from))
    }

    /// Grants or takes away the admin role (the console); `false` if there is no such user.
    pub fn set_user_admin(&self, user_id: &str, admin: bool, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::update(users::table.find(user_id))
            .set((users::is_admin.eq(admin), users::updated_at.eq(now)))
            .execute(db))?;
        Ok(n == 1)
    }

    pub fn user(&self, user_id: &str) -> StoreResult<Option<User>> {
        let mut conn = self.conn()?;
        Ok(on_backend!(&mut *conn, |db| users::table
            .find(user_id)
            .get_result::<UserRow>(db))
        .optional()?
        .map(User::from))
    }

    pub fn users(&self) -> StoreResult<Vec<User>> {
        let mut conn = self.conn()?;
        Ok(users::table
            .order(users::created_at.asc())
            .load::<UserRow>(&mut *conn)?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// How many users there are (the console's overview).
    pub fn count_users(&self) -> StoreResult<i64> {
        let mut conn = self.conn()?;
        Ok(users::table.count().get_result(&mut *conn)?)
    }

    /// Users whose username or email contains `q` (any case), by username, after `after`:
    /// one page of the console's user list.
    pub fn search_users(&self, q: &str, after: Option<&str>, limit: i64) -> StoreResult<Vec<User>> {
        diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);
        let mut conn = self.conn()?;
        let mut query = users::table.into_boxed();
        let q = q.trim().to_lowercase();
        if !q.is_empty() {
            let pattern = format!("%{}%", admin::like_escape(&q));
            query = query.filter(
                lower(users::username.nullable())
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(users::email).like(pattern).escape('\\')),
            );
        }
        if let Some(after) = after {
            query = query.filter(users::username.gt(after.to_owned()));
        }
        Ok(query
            .order(users::username.asc())
            .limit(limit.clamp(1, 1000))
            .load::<UserRow>(&mut *conn)?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// A user's own name and email (the account pages).
    pub fn set_user_profile(
        &self,
        user_id: &str,
        name: Option<&str>,
        email: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::update(users::table.find(user_id))
            .set((
                users::name.eq(name),
                users::email.eq(email),
                users::updated_at.eq(now),
            ))
            .execute(db))?;
        Ok(n == 1)
    }

    pub fn set_user_disabled(&self, username: &str, disabled: bool, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::update(
            users::table.filter(users::username.eq(username))
        )
        .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
        .execute(db))?;
        // "Live" introspection answers include the user's state: drop this process's at once
        // (other replicas hear of it from the `users` trigger).
        self.forget_live_tokens();
        Ok(n == 1)
    }

    // ---- signing keys --------------------------------------------------------------------

    pub fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let mut conn = self.conn()?;
        Ok(signing_keys::table
            .order((signing_keys::alg.asc(), signing_keys::activates_at.asc()))
            .load::<KeyRow>(&mut *conn)?
            .into_iter()
            .map(SigningKeyRecord::from)
            .collect())
    }

    /// Inserts a first key for an algorithm that has none usable (start-up).
    pub fn insert_signing_key(&self, new: &SigningKeyRecord) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::insert_into(signing_keys::table)
            .values(KeyRow::from(new))
            .execute(db))?;
        Ok(())
    }

    /// Key rotation, one replica at a time: under the `key_rotation` lock, `decide` sees every
    /// key of `alg` and returns the new key and when the older ones stop being published, or
    /// `None` when no rotation is due after all (another replica just did it). Returns the
    /// inserted key.
    pub fn rotate_signing_key(
        &self,
        alg: &str,
        holder: &str,
        now: i64,
        decide: impl FnOnce(&[SigningKeyRecord]) -> Option<(SigningKeyRecord, i64)>,
    ) -> StoreResult<Option<SigningKeyRecord>> {
        use schema::locks;
        let mut conn = self.conn()?;
        let inserted = write_tx(&mut conn, |conn| {
            if let Db::Pg(pg) = conn {
                locks::table
                    .find("key_rotation")
                    .select(locks::name)
                    .for_update()
                    .get_result::<String>(pg)
                    .optional()?;
            }
            let existing: Vec<SigningKeyRecord> = signing_keys::table
                .filter(signing_keys::alg.eq(alg))
                .order(signing_keys::activates_at.asc())
                .load::<KeyRow>(conn)?
                .into_iter()
                .map(SigningKeyRecord::from)
                .collect();
            let Some((new, retire_older_at)) = decide(&existing) else {
                return Ok::<_, diesel::result::Error>(None);
            };
            on_backend!(conn, |db| diesel::update(
                signing_keys::table
                    .filter(signing_keys::alg.eq(alg))
                    .filter(signing_keys::expires_at.is_null()),
            )
            .set(signing_keys::expires_at.eq(Some(retire_older_at)))
            .execute(db))?;
            on_backend!(conn, |db| diesel::insert_into(signing_keys::table)
                .values(KeyRow::from(&new))
                .execute(db))?;
            on_backend!(conn, |db| diesel::update(locks::table.find("key_rotation"))
                .set((locks::holder.eq(Some(holder)), locks::updated_at.eq(now)))
                .execute(db))?;
            Ok(Some(new))
        })?;
        Ok(inserted)
    }

    /// Stores the sealed private half of a key created before keys lived in the database.
    pub fn set_sealed_private_key(&self, kid: &str, sealed: &str) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::update(
            signing_keys::table
                .find(kid)
                .filter(signing_keys::private_key.is_null()),
        )
        .set(signing_keys::private_key.eq(Some(sealed)))
        .execute(db))?;
        Ok(())
    }

    /// Deletes keys whose publication ended before `now`; returns their kids.
    pub fn delete_expired_signing_keys(&self, now: i64) -> StoreResult<Vec<String>> {
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            let expired = signing_keys::table
                .filter(signing_keys::expires_at.lt(now))
                .select(signing_keys::kid)
                .load::<String>(conn)?;
            on_backend!(conn, |db| diesel::delete(
                signing_keys::table.filter(signing_keys::kid.eq_any(&expired))
            )
            .execute(db))?;
            Ok::<_, diesel::result::Error>(expired)
        })
        .map_err(Into::into)
    }
}

// ---- row types (private: diesel stays in this module) -------------------------------------

#[derive(Queryable, Insertable)]
#[diesel(table_name = clients)]
struct ClientRow {
    client_id: String,
    client_name: String,
    client_type: String,
    secret_hash: Option<String>,
    redirect_uris: String,
    grant_types: String,
    scope: String,
    audiences: String,
    first_party: bool,
    is_admin: bool,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
    post_logout_redirect_uris: String,
    dpop_bound_access_tokens: bool,
    allowed_origins: String,
    require_pushed_authorization_requests: bool,
    jwks: Option<String>,
    require_signed_request_object: bool,
    jwks_uri: Option<String>,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    tls_client_auth: Option<String>,
    tls_client_auth_name: Option<String>,
    tls_bound_access_tokens: bool,
    require_mfa: bool,
    attestation: Option<String>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Other(format!("corrupt row: {what}"))
}

impl ClientRow {
    fn into_client(self) -> StoreResult<Client> {
        let client_type =
            ClientType::parse(&self.client_type).ok_or_else(|| corrupt("client_type"))?;
        let redirect_uris: Vec<String> =
            serde_json::from_str(&self.redirect_uris).map_err(|_| corrupt("redirect_uris"))?;
        let grants: Vec<String> =
            serde_json::from_str(&self.grant_types).map_err(|_| corrupt("grant_types"))?;
        let grant_types = grants
            .iter()
            .map(|g| GrantType::parse(g).ok_or_else(|| corrupt("grant_types")))
            .collect::<StoreResult<Vec<_>>>()?;
        let audiences: Vec<String> =
            serde_json::from_str(&self.audiences).map_err(|_| corrupt("audiences"))?;
        Ok(Client {
            client_id: self.client_id,
            client_name: self.client_name,
            client_type,
            secret_hash: self.secret_hash,
            redirect_uris,
            post_logout_redirect_uris: serde_json::from_str(&self.post_logout_redirect_uris)
                .map_err(|_| corrupt("post_logout_redirect_uris"))?,
            grant_types,
            scope: self.scope,
            audiences,
            first_party: self.first_party,
            is_admin: self.is_admin,
            disabled: self.disabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            allowed_origins: serde_json::from_str(&self.allowed_origins)
                .map_err(|_| corrupt("allowed_origins"))?,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            backchannel_logout_uri: self.backchannel_logout_uri,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            require_signed_request_object: self.require_signed_request_object,
            tls_client_auth: match &self.tls_client_auth {
                Some(kind) => Some(
                    crate::model::TlsClientAuth::from_columns(
                        kind,
                        self.tls_client_auth_name.as_deref(),
                    )
                    .ok_or_else(|| corrupt("tls_client_auth"))?,
                ),
                None => None,
            },
            tls_client_certificate_bound_access_tokens: self.tls_bound_access_tokens,
            require_mfa: self.require_mfa,
            attestation: match &self.attestation {
                Some(json) => Some(
                    crate::protocol::attestation::Policy::from_json(json)
                        .map_err(|_| corrupt("attestation"))?,
                ),
                None => None,
            },
        })
    }

    fn from_client(c: &Client) -> StoreResult<ClientRow> {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        Ok(ClientRow {
            client_id: c.client_id.clone(),
            client_name: c.client_name.clone(),
            client_type: c.client_type.as_str().to_owned(),
            secret_hash: c.secret_hash.clone(),
            redirect_uris: to_json(&c.redirect_uris)?,
            grant_types: to_json(&grants)?,
            scope: c.scope.clone(),
            audiences: to_json(&c.audiences)?,
            first_party: c.first_party,
            is_admin: c.is_admin,
            disabled: c.disabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
            post_logout_redirect_uris: to_json(&c.post_logout_redirect_uris)?,
            dpop_bound_access_tokens: c.dpop_bound_access_tokens,
            allowed_origins: to_json(&c.allowed_origins)?,
            require_pushed_authorization_requests: c.require_pushed_authorization_requests,
            jwks: c.jwks.clone(),
            require_signed_request_object: c.require_signed_request_object,
            jwks_uri: c.jwks_uri.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            tls_client_auth: c
                .tls_client_auth
                .as_ref()
                .map(|t| t.to_columns().0.to_owned()),
            tls_client_auth_name: c
                .tls_client_auth
                .as_ref()
                .and_then(|t| t.to_columns().1.map(str::to_owned)),
            tls_bound_access_tokens: c.tls_client_certificate_bound_access_tokens,
            require_mfa: c.require_mfa,
            attestation: c.attestation.as_ref().map(to_json).transpose()?,
        })
    }
}

/// `database_url` with any password replaced, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(e.to_string()))
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    user_id: String,
    username: String,
    email: Option<String>,
    name: Option<String>,
    password_hash: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
    is_admin: bool,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User {
            user_id: r.user_id,
            username: r.username,
            email: r.email,
            name: r.name,
            password_hash: r.password_hash,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            is_admin: r.is_admin,
        }
    }
}

impl From<&User> for UserRow {
    fn from(u: &User) -> UserRow {
        UserRow {
            user_id: u.user_id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
            is_admin: u.is_admin,
        }
    }
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = signing_keys)]
struct KeyRow {
    kid: String,
    alg: String,
    public_jwk: String,
    created_at: i64,
    activates_at: i64,
    expires_at: Option<i64>,
    private_key: Option<String>,
}

impl From<KeyRow> for SigningKeyRecord {
    fn from(r: KeyRow) -> Self {
        SigningKeyRecord {
            kid: r.kid,
            alg: r.alg,
            public_jwk: r.public_jwk,
            created_at: r.created_at,
            activates_at: r.activates_at,
            expires_at: r.expires_at,
            sealed_private_key: r.private_key,
        }
    }
}

impl From<&SigningKeyRecord> for KeyRow {
    fn from(k: &SigningKeyRecord) -> Self {
        KeyRow {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            public_jwk: k.public_jwk.clone(),
            created_at: k.created_at,
            activates_at: k.activates_at,
            expires_at: k.expires_at,
            private_key: k.sealed_private_key.clone(),
        }
    }
}
