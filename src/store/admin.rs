//! Storage for the admin API and dynamic client registration: the audit log, RFC 7591 initial
//! access tokens, RFC 7592 registration access tokens, client updates and deletion, and bulk
//! grant revocation. Read-then-write decisions run in [`write_tx`], locking the row they decide
//! on with `SELECT ... FOR UPDATE` on PostgreSQL.

use diesel::prelude::*;

use super::schema::{
    audit_log, authorization_codes as ac, client_registrations as cr, clients, consents,
    registration_tokens as regt, sessions, token_families as tf,
};
use super::{ClientRow, Db, Store, StoreError, StoreResult, write_tx};
use crate::model::{AuditEntry, Client, REGISTRATION_TOKEN_ID_LEN, RegistrationToken};

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries with an id greater than this (paging forwards); without it, the newest.
    pub after: Option<i64>,
    /// Only this event, or events under it: `client` matches `client.created`, `client.disabled`...
    pub event: Option<String>,
    /// At most this many entries (clamped to 1..=1000).
    pub limit: i64,
    /// Only entries with an id lower than this (paging backwards from the newest).
    pub before: Option<i64>,
    /// Only entries whose actor starts with this (`admin:latchkey-console`, `user:alice`).
    pub actor: Option<String>,
    /// Only entries about this client: its own actions or actions on it.
    pub client: Option<String>,
    /// Only entries at or after, and before, these unix times.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// What revoking every grant of a user or a client did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GrantsRevoked {
    /// Refresh token families revoked (and every access token descending from them).
    pub token_families: usize,
    /// Unused authorization codes burnt.
    pub authorization_codes: usize,
    /// Remembered consents forgotten.
    pub consents: usize,
    /// Browser sessions ended (user only).
    pub sessions: usize,
}

/// Outcome of registering a client with an initial access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    Registered,
    /// No such token, or it cannot be used (the reason is client-safe).
    Refused(&'static str),
}

type AuditRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn audit_from_row(r: AuditRow) -> AuditEntry {
    AuditEntry {
        id: r.0,
        at: r.1,
        event: r.2,
        actor: r.3,
        ip: r.4,
        target: r.5,
        outcome: r.6,
        details: serde_json::from_str(&r.7).unwrap_or(serde_json::Value::Null),
    }
}

type RegTokenRow = (
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    String,
    Option<i64>,
    Option<String>,
);

fn regtoken_from_row(r: RegTokenRow) -> RegistrationToken {
    RegistrationToken {
        token_hash: r.0,
        created_at: r.1,
        expires_at: r.2,
        max_uses: r.3,
        uses: r.4,
        created_by: r.5,
        revoked_at: r.6,
        policy: r.7,
    }
}

/// `%`, `_` and `\` escaped for a LIKE pattern with `ESCAPE '\'`.
pub(super) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn revoke_families_where(
    conn: &mut Db,
    user_id: Option<&str>,
    client_id: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<usize, diesel::result::Error> {
    let mut q = diesel::update(tf::table)
        .filter(tf::revoked_at.is_null())
        .into_boxed();
    if let Some(u) = user_id {
        q = q.filter(tf::user_id.eq(u));
    }
    if let Some(c) = client_id {
        q = q.filter(tf::client_id.eq(c));
    }
    super::client_cache::note_revocation();
    q.set((
        tf::revoked_at.eq(Some(now)),
        tf::revoked_reason.eq(Some(reason)),
    ))
    .execute(conn)
}

/// Ends what lets a user in anywhere: every refresh family (and the access tokens descending
/// from them), every unused code and every browser session. Consents stay.
pub(super) fn sign_out_user(
    conn: &mut Db,
    user_id: &str,
    reason: &str,
    now: i64,
) -> Result<GrantsRevoked, diesel::result::Error> {
    Ok(GrantsRevoked {
        token_families: revoke_families_where(conn, Some(user_id), None, reason, now)?,
        authorization_codes: burn_codes_where(conn, Some(user_id), None, now)?,
        consents: 0,
        sessions: diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
            .execute(conn)?,
    })
}

/// Burns unused codes, so none can be redeemed into a new grant afterwards (a burnt code
/// presented later is a replay, which revokes nothing more).
pub(super) fn burn_codes_where(
    conn: &mut Db,
    user_id: Option<&str>,
    client_id: Option<&str>,
    now: i64,
) -> Result<usize, diesel::result::Error> {
    let mut q = diesel::update(ac::table)
        .filter(ac::used_at.is_null())
        .into_boxed();
    if let Some(u) = user_id {
        q = q.filter(ac::user_id.eq(u));
    }
    if let Some(c) = client_id {
        q = q.filter(ac::client_id.eq(c));
    }
    q.set(ac::used_at.eq(Some(now))).execute(conn)
}

impl Store {
    // ---- audit log -----------------------------------------------------------------------

    pub fn insert_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        let mut conn = self.conn()?;
        let details =
            serde_json::to_string(&e.details).map_err(|e| StoreError::Other(e.to_string()))?;
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::at.eq(e.at),
                audit_log::event.eq(&e.event),
                audit_log::actor.eq(&e.actor),
                audit_log::ip.eq(&e.ip),
                audit_log::target.eq(&e.target),
                audit_log::outcome.eq(&e.outcome),
                audit_log::details.eq(details),
            ))
            .execute(&mut *conn)?;
        Ok(())
    }

    /// Audit entries in ascending id order: after `q.after` if given, else the newest `q.limit`.
    pub fn audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut conn = self.conn()?;
        let limit = q.limit.clamp(1, 1000);
        let mut query = audit_log::table.into_boxed();
        if let Some(ev) = &q.event {
            query = query.filter(
                audit_log::event.eq(ev.clone()).or(audit_log::event
                    .like(format!("{}.%", like_escape(ev)))
                    .escape('\\')),
            );
        }
        if let Some(actor) = &q.actor {
            query = query.filter(
                audit_log::actor
                    .like(format!("{}%", like_escape(actor)))
                    .escape('\\'),
            );
        }
        if let Some(client) = &q.client {
            let label = format!("client:{client}");
            query = query.filter(
                audit_log::target
                    .eq(label.clone())
                    .or(audit_log::actor.eq(label))
                    .or(audit_log::actor.eq(format!("admin:{client}"))),
            );
        }
        if let Some(since) = q.since {
            query = query.filter(audit_log::at.ge(since));
        }
        if let Some(until) = q.until {
            query = query.filter(audit_log::at.lt(until));
        }
        if let Some(before) = q.before {
            query = query.filter(audit_log::id.lt(before));
        }
        let rows: Vec<AuditRow> = match q.after {
            Some(after) => query
                .filter(audit_log::id.gt(after))
                .order(audit_log::id.asc())
                .limit(limit)
                .load(&mut *conn)?,
            None => {
                let mut rows: Vec<AuditRow> = query
                    .order(audit_log::id.desc())
                    .limit(limit)
                    .load(&mut *conn)?;
                rows.reverse();
                rows
            }
        };
        Ok(rows.into_iter().map(audit_from_row).collect())
    }

    /// Deletes at most `batch` audit entries older than `before`, oldest first (one short
    /// statement: retention never holds a lock for long); returns how many.
    pub fn prune_audit(&self, before: i64, batch: i64) -> StoreResult<usize> {
        let mut conn = self.conn()?;
        let ids: Vec<i64> = audit_log::table
            .filter(audit_log::at.lt(before))
            .order(audit_log::id.asc())
            .select(audit_log::id)
            .limit(batch.clamp(1, 10_000))
            .load(&mut *conn)?;
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(0);
        };
        Ok(diesel::delete(
            audit_log::table
                .filter(audit_log::id.between(*first, *last))
                .filter(audit_log::at.lt(before)),
        )
        .execute(&mut *conn)?)
    }

    // ---- RFC 7591 initial access tokens --------------------------------------------------

    pub fn insert_registration_token(&self, t: &RegistrationToken) -> StoreResult<()> {
        let mut conn = self.conn()?;
        diesel::insert_into(regt::table)
            .values((
                regt::token_hash.eq(&t.token_hash),
                regt::created_at.eq(t.created_at),
                regt::expires_at.eq(t.expires_at),
                regt::max_uses.eq(t.max_uses),
                regt::uses.eq(t.uses),
                regt::created_by.eq(&t.created_by),
                regt::revoked_at.eq(t.revoked_at),
                regt::policy.eq(&t.policy),
            ))
            .execute(&mut *conn)?;
        Ok(())
    }

    pub fn registration_token(&self, token_hash: &str) -> StoreResult<Option<RegistrationToken>> {
        let mut conn = self.conn()?;
        Ok(regt::table
            .find(token_hash)
            .get_result::<RegTokenRow>(&mut *conn)
            .optional()?
            .map(regtoken_from_row))
    }

    /// Every initial access token (live, expired, used up or revoked), newest first.
    pub fn registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>> {
        let mut conn = self.conn()?;
        Ok(regt::table
            .order((regt::created_at.desc(), regt::token_hash.asc()))
            .load::<RegTokenRow>(&mut *conn)?
            .into_iter()
            .map(regtoken_from_row)
            .collect())
    }

    /// Revokes the initial access token with this id (the first
    /// `REGISTRATION_TOKEN_ID_LEN` characters of its hash). `None` when no token has that id. Revoking twice keeps the
    /// first revocation time.
    pub fn revoke_registration_token(
        &self,
        id: &str,
        now: i64,
    ) -> StoreResult<Option<RegistrationToken>> {
        if id.len() != REGISTRATION_TOKEN_ID_LEN {
            return Ok(None);
        }
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            let hashes: Vec<String> = regt::table
                .filter(
                    regt::token_hash
                        .like(format!("{}%", like_escape(id)))
                        .escape('\\'),
                )
                .select(regt::token_hash)
                .load::<String>(conn)?;
            // 72 bits of hash: two tokens sharing an id would need ~2^36 tokens; refuse anyway.
            let [hash] = hashes.as_slice() else {
                return Ok(None);
            };
            diesel::update(regt::table.find(hash).filter(regt::revoked_at.is_null()))
                .set(regt::revoked_at.eq(Some(now)))
                .execute(conn)?;
            Ok(regt::table
                .find(hash)
                .get_result::<RegTokenRow>(conn)
                .optional()?
                .map(regtoken_from_row))
        })
    }

    /// RFC 7591 registration: in one transaction, checks the initial access token again under
    /// a row lock (so `max_uses` holds across concurrent requests and replicas), counts one
    /// use, and stores the client with the hash of its registration access token and the
    /// policy (JSON) it was registered under.
    pub fn register_client(
        &self,
        token_hash: &str,
        client: &Client,
        registration_token_hash: &str,
        policy: &str,
        now: i64,
    ) -> StoreResult<Registered> {
        let row = ClientRow::from_client(client)?;
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            if let Db::Pg(pg) = conn {
                regt::table
                    .find(token_hash)
                    .select(regt::token_hash)
                    .for_update()
                    .get_result::<String>(pg)
                    .optional()?;
            }
            let Some(token) = regt::table
                .find(token_hash)
                .get_result::<RegTokenRow>(conn)
                .optional()?
                .map(regtoken_from_row)
            else {
                return Ok(Registered::Refused("the initial access token is invalid"));
            };
            if let Some(why) = token.refusal(now) {
                return Ok(Registered::Refused(why));
            }
            diesel::update(regt::table.find(token_hash))
                .set(regt::uses.eq(token.uses + 1))
                .execute(conn)?;
            diesel::insert_into(clients::table)
                .values(&row)
                .execute(conn)?;
            diesel::insert_into(cr::table)
                .values((
                    cr::client_id.eq(&client.client_id),
                    cr::access_token_hash.eq(registration_token_hash),
                    cr::created_at.eq(now),
                    cr::updated_at.eq(now),
                    cr::policy.eq(Some(policy)),
                ))
                .execute(conn)?;
            Ok::<_, StoreError>(Registered::Registered)
        })
    }

    // ---- RFC 7592 registration access tokens ---------------------------------------------

    /// The hash of the registration access token of a dynamically registered client, and the
    /// policy of the initial access token it was registered with (`None`: registered before
    /// policies existed).
    pub fn registration_access_token_hash(
        &self,
        client_id: &str,
    ) -> StoreResult<Option<(String, Option<String>)>> {
        let mut conn = self.conn()?;
        Ok(cr::table
            .find(client_id)
            .select((cr::access_token_hash, cr::policy))
            .get_result::<(String, Option<String>)>(&mut *conn)
            .optional()?)
    }

    // ---- clients -------------------------------------------------------------------------

    /// Replaces every stored field of an existing client (same `client_id`); false if none.
    pub fn replace_client(&self, client: &Client) -> StoreResult<bool> {
        let row = ClientRow::from_client(client)?;
        let mut conn = self.conn()?;
        let replaced = write_tx(&mut conn, |conn| {
            // Delete and insert the whole row: every column of `clients` (including ones
            // added later) goes through the one row mapping in `store::ClientRow`.
            let n = diesel::delete(clients::table.find(&client.client_id)).execute(conn)?;
            if n != 1 {
                return Ok(false);
            }
            diesel::insert_into(clients::table)
                .values(&row)
                .execute(conn)?;
            Ok::<_, StoreError>(true)
        });
        self.forget_client(&client.client_id);
        replaced
    }

    /// Deletes a client and everything that lets it act: its registration, consents, unused
    /// codes; its refresh families are revoked. False if no such client.
    pub fn delete_client(&self, client_id: &str, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let deleted = write_tx(&mut conn, |conn| {
            let n = diesel::delete(clients::table.find(client_id)).execute(conn)?;
            if n == 0 {
                return Ok(false);
            }
            diesel::delete(cr::table.find(client_id)).execute(conn)?;
            diesel::delete(consents::table.filter(consents::client_id.eq(client_id)))
                .execute(conn)?;
            {
                use super::schema::attested_keys as ak;
                diesel::delete(ak::table.filter(ak::client_id.eq(client_id))).execute(conn)?;
            }
            burn_codes_where(conn, None, Some(client_id), now)?;
            revoke_families_where(conn, None, Some(client_id), "client deleted", now)?;
            Ok::<_, StoreError>(true)
        });
        self.forget_client(client_id);
        deleted
    }

    // ---- bulk revocation -----------------------------------------------------------------

    /// Revokes every grant of a user: refresh families (and the access tokens descending from
    /// them), unused codes, consents and browser sessions.
    pub fn revoke_user_grants(&self, user_id: &str, now: i64) -> StoreResult<GrantsRevoked> {
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            Ok::<_, StoreError>(GrantsRevoked {
                token_families: revoke_families_where(
                    conn,
                    Some(user_id),
                    None,
                    "revoked by an administrator",
                    now,
                )?,
                authorization_codes: burn_codes_where(conn, Some(user_id), None, now)?,
                consents: diesel::delete(consents::table.filter(consents::user_id.eq(user_id)))
                    .execute(conn)?,
                sessions: diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
                    .execute(conn)?,
            })
        })
    }

    /// Sets a user's password hash only: sessions and devices stay signed in (the account
    /// page's "keep my other devices signed in"). `false` if there is no such user.
    pub fn set_user_password(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<bool> {
        use super::schema::users;
        let mut conn = self.conn()?;
        let n = diesel::update(users::table.find(user_id))
            .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
            .execute(&mut *conn)?;
        Ok(n == 1)
    }

    /// Sets a user's password hash and, in the same transaction, ends what the old password
    /// may have opened: every browser session, every refresh family (and the access tokens
    /// descending from them) and every unused code. Consents stay: they are the user's
    /// decisions, not credentials. `None` if there is no such user.
    pub fn change_user_password(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> StoreResult<Option<GrantsRevoked>> {
        use super::schema::users;
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            let n = diesel::update(users::table.find(user_id))
                .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
                .execute(conn)?;
            if n == 0 {
                return Ok::<_, StoreError>(None);
            }
            Ok(Some(sign_out_user(conn, user_id, "password changed", now)?))
        })
    }

    /// Revokes every grant made to a client: refresh families, unused codes and consents.
    pub fn revoke_client_grants(&self, client_id: &str, now: i64) -> StoreResult<GrantsRevoked> {
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            Ok::<_, StoreError>(GrantsRevoked {
                token_families: revoke_families_where(
                    conn,
                    None,
                    Some(client_id),
                    "revoked by an administrator",
                    now,
                )?,
                authorization_codes: burn_codes_where(conn, None, Some(client_id), now)?,
                consents: diesel::delete(consents::table.filter(consents::client_id.eq(client_id)))
                    .execute(conn)?,
                sessions: 0,
            })
        })
    }
}
