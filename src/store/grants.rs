//! Sessions, consents, authorization codes, refresh token families and revocations.
//! Code redemption and refresh rotation each run in one write transaction that first locks
//! what it decides on — the whole database on SQLite (`BEGIN IMMEDIATE`), the code row or the
//! refresh family row on PostgreSQL (`SELECT ... FOR UPDATE`) — so two concurrent
//! redemptions of one code or token, on one replica or two, cannot both succeed.

use diesel::prelude::*;

use super::rotation::{self, Pending};
use super::schema::{
    authorization_codes as ac, clients, consents, refresh_tokens as rt,
    revoked_access_tokens as rat, sessions, token_families as tf, users,
};
use super::{Db, Store, StoreError, StoreResult, UserRow, on_backend, to_json, write_tx};
use crate::model::{AuthCode, Issuance, RefreshToken, Session, TokenFamily, User};

/// Outcome of presenting an authorization code.
#[allow(clippy::large_enum_variant)]
pub enum Redeemed<E> {
    /// No such code.
    NotFound,
    /// The code was already used: what it issued has now been revoked.
    Replayed,
    /// The caller's checks refused it; the code is burnt anyway.
    Rejected(E),
    Issued(AuthCode),
}

/// Outcome of presenting a refresh token.
#[allow(clippy::large_enum_variant)]
pub enum Rotated<E> {
    NotFound,
    /// The family was already revoked.
    Revoked,
    /// A rotated token presented outside the retry grace window: `family` is now revoked.
    Reused {
        family: TokenFamily,
    },
    Rejected(E),
    /// New token stored; `retry` is true when this replaced the successor of a token that was
    /// presented again within the grace window.
    Rotated {
        old: RefreshToken,
        family: TokenFamily,
        retry: bool,
    },
}

fn json_vec(s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|_| StoreError::Other("corrupt row: audiences".into()))
}

type CodeRow = (
    String,
    String,
    String,
    String,
    bool,
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    i64,
    i64,
    Option<String>,
    String,
);

fn code_from_row(r: CodeRow) -> StoreResult<AuthCode> {
    Ok(AuthCode {
        code_hash: r.0,
        client_id: r.1,
        user_id: r.2,
        redirect_uri: r.3,
        redirect_uri_explicit: r.4,
        code_challenge: r.5,
        scope: r.6,
        audiences: json_vec(&r.7)?,
        nonce: r.8,
        auth_time: r.9,
        sid: r.10,
        created_at: r.11,
        expires_at: r.12,
        dpop_jkt: r.13,
        amr: r.14,
    })
}

pub(super) type RtRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

pub(super) fn rt_from_row(r: RtRow) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        token_hash: r.0,
        family_id: r.1,
        scope: r.2,
        audiences: json_vec(&r.3)?,
        auth_time: r.4,
        sid: r.5,
        created_at: r.6,
        expires_at: r.7,
        rotated_at: r.8,
        successor_hash: r.9,
        seen: Default::default(),
    })
}

pub(super) type FamRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    String,
);

pub(super) fn fam_from_row(r: FamRow) -> TokenFamily {
    TokenFamily {
        family_id: r.0,
        client_id: r.1,
        user_id: r.2,
        created_at: r.3,
        expires_at: r.4,
        revoked_at: r.5,
        dpop_jkt: r.6,
        amr: r.7,
    }
}

/// The refresh token columns the token paths read ([`RtRow`]); `client_ip` and `user_agent`
/// are written with the token and read only by the Devices page.
pub(super) const RT_COLS: (
    rt::token_hash,
    rt::family_id,
    rt::scope,
    rt::audiences,
    rt::auth_time,
    rt::sid,
    rt::created_at,
    rt::expires_at,
    rt::rotated_at,
    rt::successor_hash,
) = (
    rt::token_hash,
    rt::family_id,
    rt::scope,
    rt::audiences,
    rt::auth_time,
    rt::sid,
    rt::created_at,
    rt::expires_at,
    rt::rotated_at,
    rt::successor_hash,
);

/// A `sessions` row, all columns in schema order.
pub(super) type SessionRow = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
);

pub(super) fn session_from_row(r: SessionRow) -> Session {
    Session {
        session_hash: r.0,
        sid: r.1,
        user_id: r.2,
        auth_time: r.3,
        created_at: r.4,
        expires_at: r.5,
        seen: crate::model::Seen {
            ip: r.6,
            user_agent: r.7,
        },
        amr: r.8,
    }
}

pub(super) const FAM_COLS: (
    tf::family_id,
    tf::client_id,
    tf::user_id,
    tf::created_at,
    tf::expires_at,
    tf::revoked_at,
    tf::dpop_jkt,
    tf::amr,
) = (
    tf::family_id,
    tf::client_id,
    tf::user_id,
    tf::created_at,
    tf::expires_at,
    tf::revoked_at,
    tf::dpop_jkt,
    tf::amr,
);

fn insert_refresh(conn: &mut Db, t: &RefreshToken) -> Result<(), diesel::result::Error> {
    let aud = serde_json::to_string(&t.audiences).unwrap_or_else(|_| "[]".into());
    on_backend!(conn, |db| diesel::insert_into(rt::table)
        .values((
            rt::token_hash.eq(&t.token_hash),
            rt::family_id.eq(&t.family_id),
            rt::scope.eq(&t.scope),
            rt::audiences.eq(aud),
            rt::auth_time.eq(t.auth_time),
            rt::sid.eq(&t.sid),
            rt::created_at.eq(t.created_at),
            rt::expires_at.eq(t.expires_at),
            rt::client_ip.eq(&t.seen.ip),
            rt::user_agent.eq(&t.seen.user_agent),
        ))
        .execute(db))?;
    Ok(())
}

/// `UPDATE refresh_tokens SET rotated_at = ?, successor_hash = ? WHERE token_hash = ?`, as a
/// statement diesel caches. diesel marks every `UpdateStatement` unsafe to cache (a changeset
/// may skip `None` fields, so its SQL can vary), which made SQLite parse and plan this update
/// again on every rotation (~12 µs of a refresh's CPU); this statement's SQL never varies, so
/// it is cached by type like the selects and inserts.
struct MarkRotated<'a> {
    token_hash: &'a str,
    rotated_at: i64,
    successor_hash: Option<&'a str>,
}

impl diesel::query_builder::QueryId for MarkRotated<'_> {
    type QueryId = MarkRotated<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for MarkRotated<'_>
where
    DB: diesel::backend::Backend,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable, Text};
        out.push_sql("UPDATE refresh_tokens SET rotated_at = ");
        out.push_bind_param::<BigInt, _>(&self.rotated_at)?;
        out.push_sql(", successor_hash = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.successor_hash)?;
        out.push_sql(" WHERE token_hash = ");
        out.push_bind_param::<Text, _>(self.token_hash)?;
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for MarkRotated<'_> {}

fn revoke_family_in(
    conn: &mut Db,
    family_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), diesel::result::Error> {
    on_backend!(conn, |db| diesel::update(
        tf::table.find(family_id).filter(tf::revoked_at.is_null())
    )
    .set((
        tf::revoked_at.eq(Some(now)),
        tf::revoked_reason.eq(Some(reason)),
    ))
    .execute(db))?;
    super::client_cache::note_revocation();
    Ok(())
}

fn revoke_jti_in(conn: &mut Db, jti: &str, expires_at: i64) -> Result<(), diesel::result::Error> {
    super::client_cache::note_revocation();
    let exists = on_backend!(conn, |db| rat::table
        .find(jti)
        .select(rat::jti)
        .get_result::<String>(db))
    .optional()?;
    if exists.is_none() {
        on_backend!(conn, |db| diesel::insert_into(rat::table)
            .values((rat::jti.eq(jti), rat::expires_at.eq(expires_at)))
            .execute(db))?;
    }
    Ok(())
}

/// On PostgreSQL, locks the code row until the transaction ends; a concurrent redemption
/// waits here and then reads the committed `used_at`. (On SQLite the IMMEDIATE transaction
/// already holds the database's write lock.)
fn lock_code(conn: &mut Db, code_hash: &str) -> Result<(), diesel::result::Error> {
    if let Db::Pg(pg) = conn {
        ac::table
            .find(code_hash)
            .select(ac::code_hash)
            .for_update()
            .get_result::<String>(pg)
            .optional()?;
    }
    Ok(())
}

/// The token, its family and the family's user, in one statement.
fn token_family_user(
    conn: &mut Db,
    token_hash: &str,
) -> Result<Option<(RtRow, FamRow, Option<UserRow>)>, diesel::result::Error> {
    on_backend!(conn, |db| rt::table
        .inner_join(tf::table)
        .left_join(users::table.on(users::user_id.eq(tf::user_id)))
        .filter(rt::token_hash.eq(token_hash))
        .select((RT_COLS, FAM_COLS, users::all_columns.nullable()))
        .get_result::<(RtRow, FamRow, Option<UserRow>)>(db))
    .optional()
}

/// On PostgreSQL, locks the family of the refresh token `token_hash` until the transaction
/// ends: every rotation, retry and reuse decision of one family is serialized, across replicas.
/// Returns false when no such token (or family) exists. On SQLite the write transaction
/// (`BEGIN IMMEDIATE`) already excludes every other writer: no lock, `true`.
fn lock_family_of_token(conn: &mut Db, token_hash: &str) -> Result<bool, diesel::result::Error> {
    if let Db::Pg(pg) = conn {
        return Ok(tf::table
            .filter(
                tf::family_id.eq_any(
                    rt::table
                        .filter(rt::token_hash.eq(token_hash))
                        .select(rt::family_id),
                ),
            )
            .select(tf::family_id)
            .for_update()
            .get_result::<String>(pg)
            .optional()?
            .is_some());
    }
    Ok(true)
}

/// The rotation decided under the family lock, in a transaction of its own (on SQLite, every
/// rotation; on PostgreSQL, every one the batch did not rotate: see [`rotation`]). The
/// checks run in order: `precheck`, the revocation and reuse decisions, then `check`.
pub(super) fn rotate_locked<E>(
    conn: &mut Db,
    token_hash: &str,
    now: i64,
    grace: i64,
    mut precheck: impl FnMut(&RefreshToken, &TokenFamily, Option<&User>) -> Result<(), E>,
    mut check: impl FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, E>,
) -> StoreResult<Rotated<E>> {
    write_tx(conn, |conn| {
        // PostgreSQL: the family is locked first, found through the token (whose family
        // never changes), so the read below already sees the outcome of any concurrent
        // rotation it waited for (under READ COMMITTED each statement reads what was
        // committed when it began). On SQLite the write transaction excludes every other
        // writer already.
        if !lock_family_of_token(conn, token_hash)? {
            return Ok(Ok(Rotated::NotFound));
        }
        let Some((row, fam, user)) = token_family_user(conn, token_hash)? else {
            return Ok(Ok(Rotated::NotFound));
        };
        let old = match rt_from_row(row) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        let family = fam_from_row(fam);
        let user = user.map(User::from);
        if let Err(e) = precheck(&old, &family, user.as_ref()) {
            return Ok(Ok(Rotated::Rejected(e)));
        }
        if family.revoked_at.is_some() {
            return Ok(Ok(Rotated::Revoked));
        }
        let mut retry = false;
        if let Some(rotated_at) = old.rotated_at {
            let successor_unused = match &old.successor_hash {
                Some(s) => on_backend!(conn, |db| rt::table
                    .find(s)
                    .select(rt::rotated_at)
                    .get_result::<Option<i64>>(db))
                .optional()?
                .is_some_and(|r| r.is_none()),
                None => false,
            };
            let in_window = grace > 0 && now - rotated_at <= grace;
            if !in_window || !successor_unused {
                revoke_family_in(conn, &family.family_id, "refresh token reuse", now)?;
                return Ok(Ok(Rotated::Reused { family }));
            }
            retry = true;
        }
        let next = match check(&old, &family) {
            Ok(n) => n,
            Err(e) => return Ok(Ok(Rotated::Rejected(e))),
        };
        if retry && let Some(s) = &old.successor_hash {
            // The superseded successor is kept, marked rotated with no successor: if it
            // ever shows up (someone did receive it), that is reuse and revokes the family.
            let superseded = MarkRotated {
                token_hash: s,
                rotated_at: now,
                successor_hash: None,
            };
            on_backend!(conn, |db| superseded.execute(db))?;
        }
        let rotated = MarkRotated {
            token_hash,
            rotated_at: old.rotated_at.unwrap_or(now),
            successor_hash: Some(&next.token_hash),
        };
        insert_refresh(conn, &next)?;
        on_backend!(conn, |db| rotated.execute(db))?;
        Ok::<_, diesel::result::Error>(Ok(Rotated::Rotated { old, family, retry }))
    })?
}

impl Store {
    // ---- sessions ------------------------------------------------------------------------

    pub fn insert_session(&self, s: &Session) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::insert_into(sessions::table)
            .values((
                sessions::session_hash.eq(&s.session_hash),
                sessions::sid.eq(&s.sid),
                sessions::user_id.eq(&s.user_id),
                sessions::auth_time.eq(s.auth_time),
                sessions::created_at.eq(s.created_at),
                sessions::expires_at.eq(s.expires_at),
                sessions::client_ip.eq(&s.seen.ip),
                sessions::user_agent.eq(&s.seen.user_agent),
                sessions::amr.eq(&s.amr),
            ))
            .execute(db))?;
        Ok(())
    }

    /// The live session with this cookie hash, if any.
    pub fn session(&self, session_hash: &str, now: i64) -> StoreResult<Option<Session>> {
        let mut conn = self.conn()?;
        let row = on_backend!(&mut *conn, |db| sessions::table
            .find(session_hash)
            .filter(sessions::expires_at.gt(now))
            .get_result::<SessionRow>(db))
        .optional()?;
        Ok(row.map(session_from_row))
    }

    pub fn delete_session(&self, session_hash: &str) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::delete(
            sessions::table.find(session_hash)
        )
        .execute(db))?;
        Ok(())
    }

    // ---- consent -------------------------------------------------------------------------

    /// The remembered consent of `user_id` to `client_id`: `(scope, audience)`, each
    /// space-separated.
    pub fn consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<(String, String)>> {
        let mut conn = self.conn()?;
        Ok(on_backend!(&mut *conn, |db| consents::table
            .find((user_id, client_id))
            .select((consents::scope, consents::audience))
            .get_result::<(String, String)>(db))
        .optional()?)
    }

    pub fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        audience: &str,
        now: i64,
    ) -> StoreResult<()> {
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            on_backend!(conn, |db| diesel::delete(
                consents::table.find((user_id, client_id))
            )
            .execute(db))?;
            on_backend!(conn, |db| diesel::insert_into(consents::table)
                .values((
                    consents::user_id.eq(user_id),
                    consents::client_id.eq(client_id),
                    consents::scope.eq(scope),
                    consents::created_at.eq(now),
                    consents::audience.eq(audience),
                ))
                .execute(db))?;
            Ok::<_, diesel::result::Error>(())
        })?;
        Ok(())
    }

    // ---- authorization codes -------------------------------------------------------------

    pub fn insert_code(&self, c: &AuthCode) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::insert_into(ac::table)
            .values((
                ac::code_hash.eq(&c.code_hash),
                ac::client_id.eq(&c.client_id),
                ac::user_id.eq(&c.user_id),
                ac::redirect_uri.eq(&c.redirect_uri),
                ac::redirect_uri_explicit.eq(c.redirect_uri_explicit),
                ac::code_challenge.eq(&c.code_challenge),
                ac::scope.eq(&c.scope),
                ac::audiences.eq(to_json(&c.audiences)?),
                ac::nonce.eq(&c.nonce),
                ac::auth_time.eq(c.auth_time),
                ac::sid.eq(&c.sid),
                ac::created_at.eq(c.created_at),
                ac::expires_at.eq(c.expires_at),
                ac::dpop_jkt.eq(&c.dpop_jkt),
                ac::amr.eq(&c.amr),
            ))
            .execute(db))?;
        Ok(())
    }

    /// Burns the code and, if `check` accepts it, records what it issues — all in one
    /// transaction. A code presented a second time revokes what the first use issued, and that
    /// revocation is committed even though the request fails.
    pub fn redeem_code<E>(
        &self,
        code_hash: &str,
        now: i64,
        check: impl FnOnce(&AuthCode) -> Result<Issuance, E>,
    ) -> StoreResult<Redeemed<E>> {
        self.redeem_code_for_user(code_hash, now, |c, _| check(c))
    }

    /// As [`redeem_code`](Self::redeem_code), with the code's user (`None` if deleted) read in
    /// the same transaction and handed to `check`: the code grant needs one round trip.
    pub fn redeem_code_for_user<E>(
        &self,
        code_hash: &str,
        now: i64,
        check: impl FnOnce(&AuthCode, Option<&User>) -> Result<Issuance, E>,
    ) -> StoreResult<Redeemed<E>> {
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            lock_code(conn, code_hash)?;
            let row = on_backend!(conn, |db| ac::table
                .find(code_hash)
                .select((
                    (
                        ac::code_hash,
                        ac::client_id,
                        ac::user_id,
                        ac::redirect_uri,
                        ac::redirect_uri_explicit,
                        ac::code_challenge,
                        ac::scope,
                        ac::audiences,
                        ac::nonce,
                        ac::auth_time,
                        ac::sid,
                        ac::created_at,
                        ac::expires_at,
                        ac::dpop_jkt,
                        ac::amr,
                    ),
                    ac::used_at,
                    ac::family_id,
                    ac::access_jti,
                    ac::access_expires_at,
                ))
                .get_result::<(
                    CodeRow,
                    Option<i64>,
                    Option<String>,
                    Option<String>,
                    Option<i64>,
                )>(db))
            .optional()?;
            let Some((row, used_at, family_id, access_jti, access_exp)) = row else {
                return Ok(Ok(Redeemed::NotFound));
            };
            if used_at.is_some() {
                if let Some(f) = family_id {
                    revoke_family_in(conn, &f, "authorization code replayed", now)?;
                }
                if let (Some(j), Some(e)) = (access_jti, access_exp) {
                    revoke_jti_in(conn, &j, e)?;
                }
                return Ok(Ok(Redeemed::Replayed));
            }
            on_backend!(conn, |db| diesel::update(ac::table.find(code_hash))
                .set(ac::used_at.eq(Some(now)))
                .execute(db))?;
            let code = match code_from_row(row) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let user = on_backend!(conn, |db| users::table
                .find(&code.user_id)
                .get_result::<UserRow>(db))
            .optional()?
            .map(User::from);
            let issuance = match check(&code, user.as_ref()) {
                Ok(i) => i,
                Err(e) => return Ok(Ok(Redeemed::Rejected(e))),
            };
            let mut family_id = None;
            if let Some((fam, first)) = &issuance.family {
                on_backend!(conn, |db| diesel::insert_into(tf::table)
                    .values((
                        tf::family_id.eq(&fam.family_id),
                        tf::client_id.eq(&fam.client_id),
                        tf::user_id.eq(&fam.user_id),
                        tf::created_at.eq(fam.created_at),
                        tf::expires_at.eq(fam.expires_at),
                        tf::dpop_jkt.eq(&fam.dpop_jkt),
                        tf::amr.eq(&fam.amr),
                    ))
                    .execute(db))?;
                insert_refresh(conn, first)?;
                family_id = Some(fam.family_id.clone());
            }
            on_backend!(conn, |db| diesel::update(ac::table.find(code_hash))
                .set((
                    ac::family_id.eq(family_id),
                    ac::access_jti.eq(Some(&issuance.access_jti)),
                    ac::access_expires_at.eq(Some(issuance.access_expires_at)),
                ))
                .execute(db))?;
            Ok::<_, diesel::result::Error>(Ok(Redeemed::Issued(code)))
        })?
    }

    // ---- refresh tokens ------------------------------------------------------------------

    pub fn refresh_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(RefreshToken, TokenFamily)>> {
        let mut conn = self.conn()?;
        let Some(row) = on_backend!(&mut *conn, |db| rt::table
            .find(token_hash)
            .select(RT_COLS)
            .get_result::<RtRow>(db))
        .optional()?
        else {
            return Ok(None);
        };
        let t = rt_from_row(row)?;
        let fam = on_backend!(&mut *conn, |db| tf::table
            .find(&t.family_id)
            .select(FAM_COLS)
            .get_result::<FamRow>(db))
        .optional()?;
        Ok(fam.map(|f| (t, fam_from_row(f))))
    }

    /// Exchanges a refresh token for `next` (built by `check` from the old token and family).
    /// A token already rotated is a retry if presented within `grace` seconds of its rotation
    /// and its successor has not been used: the successor is replaced, so one stays valid.
    /// Otherwise reuse revokes the whole family, committed even though the request fails.
    pub fn rotate_refresh<E: Send>(
        &self,
        token_hash: &str,
        now: i64,
        grace: i64,
        check: impl FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, E> + Send,
    ) -> StoreResult<Rotated<E>> {
        self.rotate_refresh_checked(token_hash, now, grace, |_, _, _| Ok(()), check)
    }

    /// [`rotate_refresh_checked`](Self::rotate_refresh_checked) for a request handler. On
    /// PostgreSQL, rotations from concurrent requests are batched (see [`rotation`]): one
    /// trip through the blocking pool and two round trips for all of them, with the same
    /// outcomes as one at a time. On SQLite, a write in the shared transaction
    /// ([`Store::write`]).
    pub async fn rotate_refresh_async<E, P, C>(
        &self,
        token_hash: String,
        now: i64,
        grace: i64,
        precheck: P,
        check: C,
    ) -> StoreResult<Rotated<E>>
    where
        E: Send + 'static,
        P: FnMut(&RefreshToken, &TokenFamily, Option<&User>) -> Result<(), E> + Send + 'static,
        C: FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, E> + Send + 'static,
    {
        if self.backend() != super::Backend::Postgres {
            return self
                .write(move |s| s.rotate_refresh_checked(&token_hash, now, grace, precheck, check))
                .await;
        }
        let (pending, answer) = Pending::new(&token_hash, now, grace, precheck, check);
        self.queue_rotation(Box::new(pending));
        answer
            .await
            .map_err(|_| StoreError::Other("the rotation failed".into()))?
    }

    /// Several rotations as one batch, on this thread (PostgreSQL; on SQLite one after the
    /// other, each in its own transaction): what a batch decides when these requests arrive
    /// together. Answers in the order given.
    #[doc(hidden)]
    pub fn rotate_refresh_batch<E, P, C>(
        &self,
        requests: Vec<(String, i64, i64, P, C)>,
    ) -> StoreResult<Vec<StoreResult<Rotated<E>>>>
    where
        E: Send,
        P: FnMut(&RefreshToken, &TokenFamily, Option<&User>) -> Result<(), E> + Send,
        C: FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, E> + Send,
    {
        let mut conn = self.conn()?;
        let mut answers = Vec::with_capacity(requests.len());
        let mut batch: Vec<Box<dyn rotation::Rotation + '_>> = Vec::with_capacity(requests.len());
        for (token_hash, now, grace, precheck, check) in requests {
            let (pending, answer) = Pending::new(&token_hash, now, grace, precheck, check);
            batch.push(Box::new(pending));
            answers.push(answer);
        }
        for r in rotation::run_batch(&mut conn, batch) {
            r.locked(&mut conn);
        }
        Ok(answers.into_iter().map(rotation::answered).collect())
    }

    /// As [`rotate_refresh`](Self::rotate_refresh), with `precheck` run first, under the lock,
    /// on the presented token, its family and the family's user (`None` if deleted) — before
    /// the revocation and reuse decisions, and without writing anything when it refuses
    /// (`Rotated::Rejected`): the refresh grant's checks that must not consume the token or
    /// revoke the family, in the same round trip as the rotation.
    pub fn rotate_refresh_checked<E: Send>(
        &self,
        token_hash: &str,
        now: i64,
        grace: i64,
        precheck: impl FnMut(&RefreshToken, &TokenFamily, Option<&User>) -> Result<(), E> + Send,
        check: impl FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, E> + Send,
    ) -> StoreResult<Rotated<E>> {
        if self.backend() != super::Backend::Postgres {
            let mut conn = self.conn()?;
            return rotate_locked(&mut conn, token_hash, now, grace, precheck, check);
        }
        // A batch of one: the same statements as under load (see `rotation`).
        self.rotate_refresh_batch(vec![(token_hash.to_owned(), now, grace, precheck, check)])?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Other("a rotation went unanswered".into())))
    }

    // ---- Pushed authorization requests (RFC 9126) ------------------------------------------

    /// Stores a pushed request under the SHA-256 of its `request_uri`.
    pub fn insert_pushed_request(
        &self,
        request_hash: &str,
        client_id: &str,
        params: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        use super::schema::pushed_requests as pr;
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::insert_into(pr::table)
            .values((
                pr::request_hash.eq(request_hash),
                pr::client_id.eq(client_id),
                pr::params.eq(params),
                pr::created_at.eq(now),
                pr::expires_at.eq(expires_at),
            ))
            .execute(db))?;
        Ok(())
    }

    /// The `(client_id, params)` of an unexpired, unused pushed request.
    pub fn pushed_request(
        &self,
        request_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(String, String)>> {
        use super::schema::pushed_requests as pr;
        let mut conn = self.conn()?;
        Ok(on_backend!(&mut *conn, |db| pr::table
            .find(request_hash)
            .filter(pr::expires_at.ge(now))
            .select((pr::client_id, pr::params))
            .first::<(String, String)>(db)
            .optional())?)
    }

    /// Uses a pushed request up: true for exactly one caller, while it is unexpired.
    pub fn take_pushed_request(&self, request_hash: &str, now: i64) -> StoreResult<bool> {
        use super::schema::pushed_requests as pr;
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::delete(
            pr::table.find(request_hash).filter(pr::expires_at.ge(now))
        )
        .execute(db))?;
        Ok(n == 1)
    }

    /// Deletes expired pushed requests; returns how many.
    pub fn prune_pushed_requests(&self, now: i64) -> StoreResult<usize> {
        use super::schema::pushed_requests as pr;
        let mut conn = self.conn()?;
        Ok(on_backend!(&mut *conn, |db| diesel::delete(
            pr::table.filter(pr::expires_at.lt(now))
        )
        .execute(db))?)
    }

    // ---- DPoP proofs (RFC 9449 §11.1) ----------------------------------------------------

    /// Records an accepted DPoP proof by its replay key. Returns false when the key is
    /// already recorded (a replay, on this replica or another): the primary key decides, so
    /// of two concurrent presentations exactly one is fresh.
    pub fn record_dpop_proof(&self, replay_key: &str, expires_at: i64) -> StoreResult<bool> {
        use super::schema::dpop_proofs as dp;
        let mut conn = self.conn()?;
        match on_backend!(&mut *conn, |db| diesel::insert_into(dp::table)
            .values((dp::replay_key.eq(replay_key), dp::expires_at.eq(expires_at)))
            .execute(db))
        .map_err(StoreError::from)
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes replay records of proofs that can no longer be accepted; returns how many.
    pub fn prune_dpop_proofs(&self, now: i64) -> StoreResult<usize> {
        use super::schema::dpop_proofs as dp;
        let mut conn = self.conn()?;
        Ok(on_backend!(&mut *conn, |db| diesel::delete(
            dp::table.filter(dp::expires_at.lt(now))
        )
        .execute(db))?)
    }

    pub fn revoke_family(&self, family_id: &str, reason: &str, now: i64) -> StoreResult<()> {
        let mut conn = self.conn()?;
        revoke_family_in(&mut conn, family_id, reason, now)?;
        Ok(())
    }

    pub fn revoke_access_token(&self, jti: &str, expires_at: i64) -> StoreResult<()> {
        let mut conn = self.conn()?;
        revoke_jti_in(&mut conn, jti, expires_at)?;
        Ok(())
    }

    /// For a protected resource: `None` when the access token is revoked (as
    /// [`access_token_revoked`](Self::access_token_revoked)), else the user `user_id` names
    /// (`None` if there is no such user, or none was asked for) — read in the same statement
    /// as the revocation state.
    pub fn live_token_user(
        &self,
        jti: &str,
        family_id: Option<&str>,
        user_id: Option<&str>,
    ) -> StoreResult<Option<Option<User>>> {
        use diesel::dsl::exists;
        let Some(uid) = user_id else {
            return Ok((!self.access_token_revoked(jti, family_id)?).then_some(None));
        };
        let row = {
            let mut conn = self.conn()?;
            match family_id {
                Some(f) => on_backend!(&mut *conn, |db| users::table
                    .find(uid)
                    .select((
                        users::all_columns,
                        exists(rat::table.find(jti)),
                        exists(tf::table.find(f).filter(tf::revoked_at.is_null())),
                    ))
                    .get_result::<(UserRow, bool, bool)>(db))
                .optional()?
                .map(|(u, revoked, family_live)| (u, revoked || !family_live)),
                None => on_backend!(&mut *conn, |db| users::table
                    .find(uid)
                    .select((users::all_columns, exists(rat::table.find(jti))))
                    .get_result::<(UserRow, bool)>(db))
                .optional()?,
            }
        };
        match row {
            Some((user, revoked)) => Ok((!revoked).then(|| Some(User::from(user)))),
            // No such user: the revocation state alone.
            None => Ok((!self.access_token_revoked(jti, family_id)?).then_some(None)),
        }
    }

    /// Whether the client an access token was issued to is enabled, and (for a user token) its
    /// user: one statement. `active` means "usable now" (RFC 7662 §2.2), and a disabled or
    /// deleted client or user makes its tokens unusable until re-enabled.
    pub fn token_holders_enabled(
        &self,
        client_id: &str,
        user_id: Option<&str>,
    ) -> StoreResult<bool> {
        use diesel::dsl::exists;
        let mut conn = self.conn()?;
        let client_ok = clients::table
            .find(client_id)
            .filter(clients::disabled.eq(false));
        Ok(match user_id {
            None => on_backend!(&mut *conn, |db| diesel::select(exists(client_ok))
                .get_result::<bool>(db))?,
            Some(u) => {
                let (c, u) = on_backend!(&mut *conn, |db| diesel::select((
                    exists(client_ok),
                    exists(users::table.find(u).filter(users::disabled.eq(false))),
                ))
                .get_result::<(bool, bool)>(db))?;
                c && u
            }
        })
    }

    /// Whether an access token was revoked by `jti`, or through its refresh family: one
    /// statement (one round trip on PostgreSQL).
    pub fn access_token_revoked(&self, jti: &str, family_id: Option<&str>) -> StoreResult<bool> {
        use diesel::dsl::exists;
        let mut conn = self.conn()?;
        let Some(f) = family_id else {
            return Ok(on_backend!(&mut *conn, |db| diesel::select(exists(
                rat::table.find(jti)
            ))
            .get_result::<bool>(db))?);
        };
        let (revoked, family_live) = on_backend!(&mut *conn, |db| diesel::select((
            exists(rat::table.find(jti)),
            exists(tf::table.find(f).filter(tf::revoked_at.is_null())),
        ))
        .get_result::<(bool, bool)>(db))?;
        // An unknown family counts as revoked: the token cannot be traced to a grant.
        Ok(revoked || !family_live)
    }
}
