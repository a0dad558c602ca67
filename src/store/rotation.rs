//! PostgreSQL: refresh-token rotations from concurrent requests, decided in batches.
//!
//! Alone, a rotation costs a trip through the blocking pool and two round trips (read, then
//! rotate), each a few thread switches on the server's CPU. So requests queue their rotation
//! ([`Store::rotate_refresh_async`]) and one blocking task at a time takes everything queued
//! and, on one pooled connection:
//!
//! 1. reads every presented token, its family and the family's user, in one statement;
//! 2. runs each request's own checks on what it read — the same closures, in the same order,
//!    as the locked path ([`rotate_locked`]): `precheck`, then (a current token of a live
//!    family only) `check`;
//! 3. rotates, in one statement, every token that passed: it locks their families (in
//!    `family_id` order, so two batches, on two replicas, cannot deadlock), marks each token
//!    rotated only if it is still current and its family live, inserts its successor, and
//!    returns the successors it inserted.
//!
//! A refusal by the checks, an unknown token or a revoked family is answered at once, with
//! nothing written. Everything else — a rotated token (a retry or reuse), a token presented
//! twice in one batch, one that another request rotated between the read and the write — is
//! decided by the locked path, in a transaction of its own on the blocking pool (so that it
//! never holds up the next batch), which locks the family and reads everything again. A
//! database error fails every request of the statement that met it, as a single rotation's
//! error fails it. Both statements are planned on every execution ([`Planned`]).
//!
//! SQLite never comes here: its rotations run in place, in the shared write transaction
//! ([`Store::write`]).

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use tokio::sync::oneshot;

use super::grants::{
    FAM_COLS, FamRow, RT_COLS, Rotated, RtRow, fam_from_row, rotate_locked, rt_from_row,
};
use super::schema::{refresh_tokens as rt, token_families as tf, users};
use super::{Db, StoreError, StoreResult, UserRow};
use crate::model::{RefreshToken, TokenFamily, User};

/// Rotations waiting for the batch runner, and whether it runs.
#[derive(Default)]
pub(super) struct Queue {
    pub waiting: Vec<Box<dyn Rotation>>,
    pub running: bool,
}

/// What a batch read for one presented token.
pub(super) enum Found<'a> {
    No,
    /// A row that could not be decoded: the locked path reports it.
    Unreadable,
    Yes(&'a RefreshToken, &'a TokenFamily, Option<&'a User>),
}

/// What a request's checks made of what the batch read.
pub(super) enum Step<'a> {
    Answered,
    /// Rotate to this successor.
    Write(Box<dyn Rotation + 'a>, Box<RefreshToken>),
    /// Decide under the family lock.
    Locked(Box<dyn Rotation + 'a>),
}

/// One request's rotation: its token, checks and answer.
pub(super) trait Rotation: Send {
    fn token_hash(&self) -> &str;
    fn now(&self) -> i64;
    fn decide<'a>(self: Box<Self>, found: Found<'_>) -> Step<'a>
    where
        Self: 'a;
    /// The batch rotated the token.
    fn rotated(self: Box<Self>);
    fn locked(self: Box<Self>, conn: &mut Db);
    fn failed(self: Box<Self>, e: StoreError);
}

pub(super) struct Pending<E, P, C> {
    token_hash: String,
    now: i64,
    grace: i64,
    precheck: P,
    check: C,
    /// The token and family the checks passed, when the batch is to rotate it.
    passed: Option<(RefreshToken, TokenFamily)>,
    reply: oneshot::Sender<StoreResult<Rotated<E>>>,
}

pub(super) type Answer<E> = oneshot::Receiver<StoreResult<Rotated<E>>>;

impl<E, P, C> Pending<E, P, C>
where
    E: Send,
    P: FnMut(&RefreshToken, &TokenFamily, Option<&User>) -> Result<(), E> + Send,
    C: FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, E> + Send,
{
    pub fn new(token_hash: &str, now: i64, grace: i64, precheck: P, check: C) -> (Self, Answer<E>) {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            token_hash: token_hash.to_owned(),
            now,
            grace,
            precheck,
            check,
            passed: None,
            reply,
        };
        (pending, answer)
    }

    fn answer<'a>(self, outcome: StoreResult<Rotated<E>>) -> Step<'a> {
        // The request may have gone (its client hung up): nothing to tell it.
        let _ = self.reply.send(outcome);
        Step::Answered
    }
}

impl<E, P, C> Rotation for Pending<E, P, C>
where
    E: Send,
    P: FnMut(&RefreshToken, &TokenFamily, Option<&User>) -> Result<(), E> + Send,
    C: FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, E> + Send,
{
    fn token_hash(&self) -> &str {
        &self.token_hash
    }

    fn now(&self) -> i64 {
        self.now
    }

    fn decide<'a>(mut self: Box<Self>, found: Found<'_>) -> Step<'a>
    where
        Self: 'a,
    {
        let (old, family, user) = match found {
            Found::No => return (*self).answer(Ok(Rotated::NotFound)),
            Found::Unreadable => return Step::Locked(self),
            Found::Yes(old, family, user) => (old, family, user),
        };
        if let Err(e) = (self.precheck)(old, family, user) {
            return (*self).answer(Ok(Rotated::Rejected(e)));
        }
        // Revocation is final: the locked path would answer the same.
        if family.revoked_at.is_some() {
            return (*self).answer(Ok(Rotated::Revoked));
        }
        // A retry or a reuse: decided under the family lock.
        if old.rotated_at.is_some() {
            return Step::Locked(self);
        }
        match (self.check)(old, family) {
            Err(e) => (*self).answer(Ok(Rotated::Rejected(e))),
            Ok(next) => {
                self.passed = Some((old.clone(), family.clone()));
                Step::Write(self, Box::new(next))
            }
        }
    }

    fn rotated(self: Box<Self>) {
        let outcome = match self.passed {
            Some((old, family)) => Ok(Rotated::Rotated {
                old,
                family,
                retry: false,
            }),
            None => Err(StoreError::Other("a rotation without its checks".into())),
        };
        let _ = self.reply.send(outcome);
    }

    fn locked(self: Box<Self>, conn: &mut Db) {
        let this = *self;
        let outcome = rotate_locked(
            conn,
            &this.token_hash,
            this.now,
            this.grace,
            this.precheck,
            this.check,
        );
        let _ = this.reply.send(outcome);
    }

    fn failed(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(e));
    }
}

/// The answer a batch sent (run on this thread, so it is there).
pub(super) fn answered<E>(mut answer: Answer<E>) -> StoreResult<Rotated<E>> {
    answer
        .try_recv()
        .map_err(|_| StoreError::Other("a rotation went unanswered".into()))?
}

/// Decides and carries out one batch of rotations on `conn`. Every rotation is answered,
/// except those returned: they are to be decided by the locked path (`Rotation::locked`),
/// each in a transaction of its own, on any connection.
#[must_use]
pub(super) fn run_batch<'a>(
    conn: &mut Db,
    batch: Vec<Box<dyn Rotation + 'a>>,
) -> Vec<Box<dyn Rotation + 'a>> {
    let Db::Pg(pg) = conn else {
        return batch;
    };
    let hashes: Vec<&str> = batch.iter().map(|r| r.token_hash()).collect();
    let rows = match read(pg, &hashes) {
        Ok(rows) => rows,
        Err(e) => {
            let e = StoreError::from(e);
            for r in batch {
                r.failed(e.clone());
            }
            return Vec::new();
        }
    };
    drop(hashes);
    let mut writes = Vec::new();
    let mut locked = Vec::new();
    let mut presented = HashSet::new();
    for r in batch {
        let found = match rows.get(r.token_hash()) {
            None => Found::No,
            Some(None) => Found::Unreadable,
            Some(Some((old, family, user))) => Found::Yes(old, family, user.as_ref()),
        };
        match r.decide(found) {
            Step::Answered => {}
            Step::Locked(r) => locked.push(r),
            // The same token twice: the second is a retry or a reuse, decided once the first
            // is committed.
            Step::Write(r, next) if !presented.insert(r.token_hash().to_owned()) => {
                drop(next);
                locked.push(r);
            }
            Step::Write(r, next) => writes.push((r, *next)),
        }
    }
    if !writes.is_empty() {
        match Planned(RotateMany::new(&writes)).load::<String>(pg) {
            Ok(inserted) => {
                let inserted: HashSet<String> = inserted.into_iter().collect();
                for (r, next) in writes {
                    if inserted.contains(&next.token_hash) {
                        r.rotated();
                    } else {
                        // Rotated or revoked since the read: decided again, under the lock.
                        locked.push(r);
                    }
                }
            }
            Err(e) => {
                let e = StoreError::from(e);
                for (r, _) in writes {
                    r.failed(e.clone());
                }
            }
        }
    }
    locked
}

type Read = Option<(RefreshToken, TokenFamily, Option<User>)>;

/// The presented tokens, their families and users, in one statement; `None` for a row that
/// cannot be decoded.
fn read(pg: &mut PgConnection, hashes: &[&str]) -> QueryResult<HashMap<String, Read>> {
    let query = rt::table
        .inner_join(tf::table)
        .left_join(users::table.on(users::user_id.eq(tf::user_id)))
        .filter(rt::token_hash.eq_any(hashes))
        .select((RT_COLS, FAM_COLS, users::all_columns.nullable()));
    let rows = Planned(query).load::<(RtRow, FamRow, Option<UserRow>)>(pg)?;
    Ok(rows
        .into_iter()
        .map(|(row, fam, user)| {
            let hash = row.0.clone();
            let read = rt_from_row(row)
                .ok()
                .map(|old| (old, fam_from_row(fam), user.map(User::from)));
            (hash, read)
        })
        .collect())
}

/// A query PostgreSQL plans on every execution, for the values bound and the tables as they
/// are then (diesel sends it with `PQsendQueryParams`: still one round trip), instead of a
/// prepared statement. A batch's statements take arrays; a prepared statement's generic
/// plan, made while the tables were nearly empty, kept a sequential scan (of the tokens for
/// `token_hash = ANY($1)`, of a family's whole chain for the update) that grew with the
/// tables: 3-20 ms per statement after a minute of load. Planning once per batch costs far
/// less.
struct Planned<Q>(Q);

impl<Q> diesel::query_builder::QueryId for Planned<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Planned<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> diesel::query_builder::QueryFragment<diesel::pg::Pg> for Planned<Q>
where
    Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        self.0.walk_ast(out)
    }
}

impl<Q, Conn> RunQueryDsl<Conn> for Planned<Q> {}

/// One statement: lock the families (live ones, in order), mark each presented token rotated
/// (if still current and its family locked), insert the successors of those marked;
/// returns the successors inserted. The family lock comes first, as in every other decision
/// on a family, so it serializes with them.
struct RotateMany {
    presented: Vec<String>,
    token_hash: Vec<String>,
    family_id: Vec<String>,
    scope: Vec<String>,
    audiences: Vec<String>,
    auth_time: Vec<i64>,
    sid: Vec<String>,
    created_at: Vec<i64>,
    expires_at: Vec<i64>,
    rotated_at: Vec<i64>,
    client_ip: Vec<Option<String>>,
    user_agent: Vec<Option<String>>,
}

impl RotateMany {
    fn new(writes: &[(Box<dyn Rotation + '_>, RefreshToken)]) -> Self {
        let n = writes.len();
        let mut q = RotateMany {
            presented: Vec::with_capacity(n),
            token_hash: Vec::with_capacity(n),
            family_id: Vec::with_capacity(n),
            scope: Vec::with_capacity(n),
            audiences: Vec::with_capacity(n),
            auth_time: Vec::with_capacity(n),
            sid: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            expires_at: Vec::with_capacity(n),
            rotated_at: Vec::with_capacity(n),
            client_ip: Vec::with_capacity(n),
            user_agent: Vec::with_capacity(n),
        };
        for (r, t) in writes {
            q.presented.push(r.token_hash().to_owned());
            q.token_hash.push(t.token_hash.clone());
            q.family_id.push(t.family_id.clone());
            q.scope.push(t.scope.clone());
            q.audiences
                .push(serde_json::to_string(&t.audiences).unwrap_or_else(|_| "[]".into()));
            q.auth_time.push(t.auth_time);
            q.sid.push(t.sid.clone());
            q.created_at.push(t.created_at);
            q.expires_at.push(t.expires_at);
            q.rotated_at.push(r.now());
            q.client_ip.push(t.seen.ip.clone());
            q.user_agent.push(t.seen.user_agent.clone());
        }
        q
    }
}

impl diesel::query_builder::Query for RotateMany {
    type SqlType = diesel::sql_types::Text;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for RotateMany {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text};
        out.push_sql("WITH req AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<Text>, _>(&self.presented)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.token_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.family_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.scope)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.audiences)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.auth_time)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.sid)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.rotated_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_ip)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.user_agent)?;
        out.push_sql(
            ") AS r(presented, token_hash, family_id, scope, audiences, auth_time, sid, \
             created_at, expires_at, rotated_at, client_ip, user_agent)), \
             family AS (SELECT family_id FROM token_families \
             WHERE family_id IN (SELECT family_id FROM req) AND revoked_at IS NULL \
             ORDER BY family_id FOR UPDATE), \
             marked AS (UPDATE refresh_tokens AS t \
             SET rotated_at = req.rotated_at, successor_hash = req.token_hash FROM req \
             WHERE t.token_hash = req.presented AND t.rotated_at IS NULL \
             AND t.family_id IN (SELECT family_id FROM family) \
             RETURNING req.token_hash, req.family_id, req.scope, req.audiences, req.auth_time, \
             req.sid, req.created_at, req.expires_at, req.client_ip, req.user_agent) \
             INSERT INTO refresh_tokens (token_hash, family_id, scope, audiences, auth_time, \
             sid, created_at, expires_at, client_ip, user_agent) \
             SELECT token_hash, family_id, scope, audiences, auth_time, sid, created_at, \
             expires_at, client_ip, user_agent FROM marked RETURNING token_hash",
        );
        Ok(())
    }
}
