//! Sign-in factors beyond the password (issue 19): passkeys, answered WebAuthn challenges,
//! TOTP authenticators, recovery codes and enrolment invitations. The decisions are in
//! `protocol::login::{passkey, totp, invite}`; this is only their storage.

use diesel::prelude::*;

use super::schema::{
    invitations as inv, passkeys as pk, recovery_codes as rc, totp_factors as tf,
    webauthn_used_challenges as wc,
};
use super::{Store, StoreError, StoreResult, on_backend};

/// A registered passkey. `passkey`: webauthn-rs's credential as JSON (public key, counter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    pub credential_id: String,
    pub user_id: String,
    pub user_handle: String,
    pub name: String,
    pub passkey: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

type Row = (String, String, String, String, String, i64, Option<i64>);

fn from_row(r: Row) -> PasskeyRow {
    PasskeyRow {
        credential_id: r.0,
        user_id: r.1,
        user_handle: r.2,
        name: r.3,
        passkey: r.4,
        created_at: r.5,
        last_used_at: r.6,
    }
}

/// A confirmed TOTP authenticator: the sealed secret and the newest time step used.
#[derive(Debug, Clone)]
pub struct TotpRow {
    pub sealed_secret: String,
    pub last_step: i64,
    pub created_at: i64,
}

/// What a user has besides a password (the CLI, the admin API and the account page list it).
#[derive(Debug, Clone, Default)]
pub struct Factors {
    pub passkeys: Vec<PasskeyRow>,
    pub totp: Option<TotpRow>,
    pub recovery_codes_left: i64,
}

impl Store {
    // ---- passkeys ------------------------------------------------------------------------

    /// `false` when that credential id is registered already (to anyone).
    pub fn insert_passkey(&self, p: &PasskeyRow) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let done = on_backend!(&mut *conn, |db| diesel::insert_into(pk::table)
            .values((
                pk::credential_id.eq(&p.credential_id),
                pk::user_id.eq(&p.user_id),
                pk::user_handle.eq(&p.user_handle),
                pk::name.eq(&p.name),
                pk::passkey.eq(&p.passkey),
                pk::created_at.eq(p.created_at),
                pk::last_used_at.eq(p.last_used_at),
            ))
            .execute(db))
        .map_err(StoreError::from);
        match done {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn passkeys_of_user(&self, user_id: &str) -> StoreResult<Vec<PasskeyRow>> {
        let mut conn = self.conn()?;
        let rows = on_backend!(&mut *conn, |db| pk::table
            .filter(pk::user_id.eq(user_id))
            .order(pk::created_at.asc())
            .load::<Row>(db))?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// The passkeys of the user a discoverable credential names by its user handle.
    pub fn passkeys_by_handle(&self, user_handle: &str) -> StoreResult<Vec<PasskeyRow>> {
        let mut conn = self.conn()?;
        let rows = on_backend!(&mut *conn, |db| pk::table
            .filter(pk::user_handle.eq(user_handle))
            .load::<Row>(db))?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// After a sign-in: the credential's new counter and flags, and when it was used.
    pub fn passkey_used(&self, credential_id: &str, passkey: &str, now: i64) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::update(
            pk::table.find(credential_id)
        )
        .set((pk::passkey.eq(passkey), pk::last_used_at.eq(Some(now))))
        .execute(db))?;
        Ok(())
    }

    /// Removes one of the user's passkeys; `false` if the user has none by that id.
    pub fn delete_passkey(&self, user_id: &str, credential_id: &str) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::delete(
            pk::table
                .filter(pk::credential_id.eq(credential_id))
                .filter(pk::user_id.eq(user_id))
        )
        .execute(db))?;
        Ok(n == 1)
    }

    // ---- WebAuthn challenges -------------------------------------------------------------

    /// Records an answered challenge; `false` if it was answered before (a replay).
    pub fn record_webauthn_challenge(&self, hash: &str, expires_at: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let done = on_backend!(&mut *conn, |db| diesel::insert_into(wc::table)
            .values((wc::challenge_hash.eq(hash), wc::expires_at.eq(expires_at)))
            .execute(db))
        .map_err(StoreError::from);
        match done {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ---- TOTP ----------------------------------------------------------------------------

    pub fn totp(&self, user_id: &str) -> StoreResult<Option<TotpRow>> {
        let mut conn = self.conn()?;
        let row = on_backend!(&mut *conn, |db| tf::table
            .find(user_id)
            .select((tf::sealed_secret, tf::last_step, tf::created_at))
            .get_result::<(String, i64, i64)>(db))
        .optional()?;
        Ok(row.map(|r| TotpRow {
            sealed_secret: r.0,
            last_step: r.1,
            created_at: r.2,
        }))
    }

    /// A confirmed authenticator (replacing any earlier one) and a fresh set of recovery codes
    /// (replacing any earlier set), in one transaction.
    pub fn set_totp(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: i64,
        recovery_hashes: &[String],
        now: i64,
    ) -> StoreResult<()> {
        let mut conn = self.conn()?;
        super::write_tx(&mut conn, |conn| {
            on_backend!(conn, |db| diesel::delete(tf::table.find(user_id))
                .execute(db))?;
            on_backend!(conn, |db| diesel::insert_into(tf::table)
                .values((
                    tf::user_id.eq(user_id),
                    tf::sealed_secret.eq(sealed_secret),
                    tf::last_step.eq(step),
                    tf::created_at.eq(now),
                ))
                .execute(db))?;
            replace_recovery_codes(conn, user_id, recovery_hashes, now)
        })?;
        Ok(())
    }

    /// Moves `last_step` forward to `step`; `false` if that step (or a later one) was used
    /// already. The condition is in the statement, so two replicas cannot both accept a code.
    pub fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::update(
            tf::table
                .filter(tf::user_id.eq(user_id))
                .filter(tf::last_step.lt(step))
        )
        .set(tf::last_step.eq(step))
        .execute(db))?;
        Ok(n == 1)
    }

    /// Removes the authenticator and the recovery codes; `false` if there was none.
    pub fn delete_totp(&self, user_id: &str) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        super::write_tx(&mut conn, |conn| {
            let n = on_backend!(conn, |db| diesel::delete(tf::table.find(user_id))
                .execute(db))?;
            on_backend!(conn, |db| diesel::delete(
                rc::table.filter(rc::user_id.eq(user_id))
            )
            .execute(db))?;
            Ok::<_, diesel::result::Error>(n == 1)
        })
        .map_err(Into::into)
    }

    /// Uses up one recovery code; `false` if the user has no such code (or used it).
    pub fn use_recovery_code(&self, user_id: &str, code_hash: &str) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::delete(
            rc::table
                .filter(rc::code_hash.eq(code_hash))
                .filter(rc::user_id.eq(user_id))
        )
        .execute(db))?;
        Ok(n == 1)
    }

    pub fn set_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[String],
        now: i64,
    ) -> StoreResult<()> {
        let mut conn = self.conn()?;
        super::write_tx(&mut conn, |conn| {
            replace_recovery_codes(conn, user_id, hashes, now)
        })?;
        Ok(())
    }

    /// Everything a user has besides a password.
    pub fn factors(&self, user_id: &str) -> StoreResult<Factors> {
        let passkeys = self.passkeys_of_user(user_id)?;
        let totp = self.totp(user_id)?;
        let mut conn = self.conn()?;
        let left = on_backend!(&mut *conn, |db| rc::table
            .filter(rc::user_id.eq(user_id))
            .count()
            .get_result::<i64>(db))?;
        Ok(Factors {
            passkeys,
            totp,
            recovery_codes_left: left,
        })
    }

    /// Removes every passkey, the authenticator and the recovery codes (an admin's reset).
    pub fn reset_factors(&self, user_id: &str) -> StoreResult<usize> {
        let mut conn = self.conn()?;
        super::write_tx(&mut conn, |conn| {
            let a = on_backend!(conn, |db| diesel::delete(
                pk::table.filter(pk::user_id.eq(user_id))
            )
            .execute(db))?;
            let b = on_backend!(conn, |db| diesel::delete(tf::table.find(user_id))
                .execute(db))?;
            on_backend!(conn, |db| diesel::delete(
                rc::table.filter(rc::user_id.eq(user_id))
            )
            .execute(db))?;
            Ok::<_, diesel::result::Error>(a + b)
        })
        .map_err(Into::into)
    }

    // ---- invitations ---------------------------------------------------------------------

    pub fn insert_invitation(
        &self,
        token_hash: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        let mut conn = self.conn()?;
        on_backend!(&mut *conn, |db| diesel::insert_into(inv::table)
            .values((
                inv::token_hash.eq(token_hash),
                inv::user_id.eq(user_id),
                inv::created_at.eq(now),
                inv::expires_at.eq(expires_at),
            ))
            .execute(db))?;
        Ok(())
    }

    /// The user a live invitation is for (the invitation stays until used).
    pub fn invitation(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
        let mut conn = self.conn()?;
        Ok(on_backend!(&mut *conn, |db| inv::table
            .find(token_hash)
            .filter(inv::expires_at.gt(now))
            .select(inv::user_id)
            .get_result::<String>(db))
        .optional()?)
    }

    /// Uses up an invitation for `user_id`; `false` if it was used, expired or is another's.
    pub fn take_invitation(&self, token_hash: &str, user_id: &str, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::delete(
            inv::table
                .filter(inv::token_hash.eq(token_hash))
                .filter(inv::user_id.eq(user_id))
                .filter(inv::expires_at.gt(now))
        )
        .execute(db))?;
        Ok(n == 1)
    }

    /// Expired invitations and answered challenges past their window; returns how many.
    pub fn prune_factor_records(&self, now: i64) -> StoreResult<usize> {
        let mut conn = self.conn()?;
        let a = on_backend!(&mut *conn, |db| diesel::delete(
            wc::table.filter(wc::expires_at.lt(now))
        )
        .execute(db))?;
        let b = on_backend!(&mut *conn, |db| diesel::delete(
            inv::table.filter(inv::expires_at.lt(now))
        )
        .execute(db))?;
        Ok(a + b)
    }
}

fn replace_recovery_codes(
    conn: &mut super::Db,
    user_id: &str,
    hashes: &[String],
    now: i64,
) -> Result<(), diesel::result::Error> {
    on_backend!(conn, |db| diesel::delete(
        rc::table.filter(rc::user_id.eq(user_id))
    )
    .execute(db))?;
    for h in hashes {
        on_backend!(conn, |db| diesel::insert_into(rc::table)
            .values((
                rc::code_hash.eq(h),
                rc::user_id.eq(user_id),
                rc::created_at.eq(now),
            ))
            .execute(db))?;
    }
    Ok(())
}
