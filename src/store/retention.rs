//! Retention (issue 26): rows that can no longer change any answer are deleted by
//! housekeeping in small batches, so tables stay near their live size and no statement holds
//! the write lock for long. Each batch is one `SELECT` of at most `batch` keys and one `DELETE`
//! of those keys.
//!
//! What goes, and why it is safe:
//! - browser sessions past `expires_at` (a cookie for them is refused already);
//! - revocation records of access tokens past their `exp` (the token is refused as expired);
//! - authorization codes a day past their expiry: a code replayed within that day still
//!   revokes what it issued (RFC 6749 §4.1.2); later it is simply unknown;
//! - refresh-token families a day past their absolute end, with their refresh tokens: a
//!   family's tokens are refused once it has ended, so reuse detection has nothing left to do.

use diesel::prelude::*;

use super::schema::{
    authorization_codes as ac, refresh_tokens as rt, revoked_access_tokens as rat, sessions,
    token_families as tf,
};
use super::{Store, StoreResult, on_backend};

/// How long codes and families are kept past their end (for replay and reuse detection).
pub const KEEP_AFTER_END: i64 = 86400;

/// Rows deleted by one [`Store::prune_expired`] pass, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: usize,
    pub revoked_access_tokens: usize,
    pub authorization_codes: usize,
    pub token_families: usize,
    pub refresh_tokens: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.sessions
            + self.revoked_access_tokens
            + self.authorization_codes
            + self.token_families
            + self.refresh_tokens
    }
}

impl Store {
    /// One batch per table of what can go at `now` (see the module documentation).
    pub fn prune_expired(&self, now: i64, batch: i64) -> StoreResult<Pruned> {
        let batch = batch.clamp(1, 10_000);
        let mut conn = self.conn()?;
        let mut out = Pruned::default();
        let keys: Vec<String> = on_backend!(&mut *conn, |db| sessions::table
            .filter(sessions::expires_at.lt(now))
            .select(sessions::session_hash)
            .limit(batch)
            .load(db))?;
        if !keys.is_empty() {
            out.sessions = on_backend!(&mut *conn, |db| diesel::delete(
                sessions::table
                    .filter(sessions::session_hash.eq_any(&keys))
                    .filter(sessions::expires_at.lt(now))
            )
            .execute(db))?;
        }
        let keys: Vec<String> = on_backend!(&mut *conn, |db| rat::table
            .filter(rat::expires_at.lt(now))
            .select(rat::jti)
            .limit(batch)
            .load(db))?;
        if !keys.is_empty() {
            out.revoked_access_tokens = on_backend!(&mut *conn, |db| diesel::delete(
                rat::table
                    .filter(rat::jti.eq_any(&keys))
                    .filter(rat::expires_at.lt(now))
            )
            .execute(db))?;
        }
        let ended = now - KEEP_AFTER_END;
        let keys: Vec<String> = on_backend!(&mut *conn, |db| ac::table
            .filter(ac::expires_at.lt(ended))
            .select(ac::code_hash)
            .limit(batch)
            .load(db))?;
        if !keys.is_empty() {
            out.authorization_codes = on_backend!(&mut *conn, |db| diesel::delete(
                ac::table
                    .filter(ac::code_hash.eq_any(&keys))
                    .filter(ac::expires_at.lt(ended))
            )
            .execute(db))?;
        }
        let families: Vec<String> = on_backend!(&mut *conn, |db| tf::table
            .filter(tf::expires_at.lt(ended))
            .select(tf::family_id)
            .limit(batch)
            .load(db))?;
        if !families.is_empty() {
            // Tokens first: a family is never gone while a token of it remains.
            out.refresh_tokens = on_backend!(&mut *conn, |db| diesel::delete(
                rt::table.filter(rt::family_id.eq_any(&families))
            )
            .execute(db))?;
            out.token_families = on_backend!(&mut *conn, |db| diesel::delete(
                tf::table
                    .filter(tf::family_id.eq_any(&families))
                    .filter(tf::expires_at.lt(ended))
            )
            .execute(db))?;
        }
        Ok(out)
    }
}
