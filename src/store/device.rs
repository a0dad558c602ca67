//! RFC 8628 device authorizations (`device_codes`). The decisions are in
//! `protocol::device` and `protocol::grants::device_code`; this is only their storage.

use diesel::prelude::*;

use super::schema::device_codes as dc;
use super::{Store, StoreError, StoreResult, on_backend, to_json};
use crate::model::{AuthCode, DeviceGrant, DeviceStatus};

type Row = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    String,
    Option<String>,
);

const COLUMNS: (
    dc::device_hash,
    dc::user_code,
    dc::client_id,
    dc::scope,
    dc::audiences,
    dc::created_at,
    dc::expires_at,
    dc::poll_interval,
    dc::last_poll_at,
    dc::status,
    dc::code_hash,
) = (
    dc::device_hash,
    dc::user_code,
    dc::client_id,
    dc::scope,
    dc::audiences,
    dc::created_at,
    dc::expires_at,
    dc::poll_interval,
    dc::last_poll_at,
    dc::status,
    dc::code_hash,
);

fn from_row(r: Row) -> StoreResult<DeviceGrant> {
    let corrupt = |what: &str| StoreError::Other(format!("corrupt row: device_codes.{what}"));
    Ok(DeviceGrant {
        device_hash: r.0,
        user_code: r.1,
        client_id: r.2,
        scope: r.3,
        audiences: serde_json::from_str(&r.4).map_err(|_| corrupt("audiences"))?,
        created_at: r.5,
        expires_at: r.6,
        interval: r.7,
        last_poll_at: r.8,
        status: DeviceStatus::parse(&r.9).ok_or_else(|| corrupt("status"))?,
        code_hash: r.10,
    })
}

impl Store {
    /// Stores a new device authorization. `false` when its user code is taken (the caller
    /// draws another).
    pub fn insert_device_grant(&self, g: &DeviceGrant) -> StoreResult<bool> {
        let audiences = to_json(&g.audiences)?;
        let mut conn = self.conn()?;
        match on_backend!(&mut *conn, |db| diesel::insert_into(dc::table)
            .values((
                dc::device_hash.eq(&g.device_hash),
                dc::user_code.eq(&g.user_code),
                dc::client_id.eq(&g.client_id),
                dc::scope.eq(&g.scope),
                dc::audiences.eq(&audiences),
                dc::created_at.eq(g.created_at),
                dc::expires_at.eq(g.expires_at),
                dc::poll_interval.eq(g.interval),
                dc::last_poll_at.eq(g.last_poll_at),
                dc::status.eq(g.status.as_str()),
                dc::code_hash.eq(&g.code_hash),
            ))
            .execute(db))
        .map_err(StoreError::from)
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The pending, unexpired authorization a person's user code names.
    pub fn pending_device_grant(
        &self,
        user_code: &str,
        now: i64,
    ) -> StoreResult<Option<DeviceGrant>> {
        let mut conn = self.conn()?;
        let row = on_backend!(&mut *conn, |db| dc::table
            .filter(dc::user_code.eq(user_code))
            .filter(dc::status.eq(DeviceStatus::Pending.as_str()))
            .filter(dc::expires_at.gt(now))
            .select(COLUMNS)
            .first::<Row>(db)
            .optional())?;
        row.map(from_row).transpose()
    }

    /// Approves a pending authorization for the user of `code` (an authorization code made
    /// for it): `false` if it is no longer pending (decided in another tab, expired).
    pub fn approve_device_grant(
        &self,
        user_code: &str,
        code: &AuthCode,
        now: i64,
    ) -> StoreResult<bool> {
        let n = {
            let mut conn = self.conn()?;
            on_backend!(&mut *conn, |db| diesel::update(
                dc::table
                    .filter(dc::user_code.eq(user_code))
                    .filter(dc::status.eq(DeviceStatus::Pending.as_str()))
                    .filter(dc::expires_at.gt(now))
            )
            .set((
                dc::status.eq(DeviceStatus::Approved.as_str()),
                dc::code_hash.eq(Some(&code.code_hash)),
            ))
            .execute(db))?
        };
        if n != 1 {
            return Ok(false);
        }
        self.insert_code(code)?;
        Ok(true)
    }

    /// Denies a pending authorization: `false` if it is no longer pending.
    pub fn deny_device_grant(&self, user_code: &str, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::update(
            dc::table
                .filter(dc::user_code.eq(user_code))
                .filter(dc::status.eq(DeviceStatus::Pending.as_str()))
                .filter(dc::expires_at.gt(now))
        )
        .set(dc::status.eq(DeviceStatus::Denied.as_str()))
        .execute(db))?;
        Ok(n == 1)
    }

    /// A poll by the device: the authorization as it was before this poll, and this poll
    /// recorded as the last one. When `too_soon` says so, the interval grows by `penalty`
    /// seconds (RFC 8628 §3.5 `slow_down`). The record is a compare-and-set on the previous poll time, so of two polls that race
    /// (two replicas, no row lock) exactly one is recorded; the other comes back with
    /// `Polled::raced` set, and the interval grows for it as for a poll that came too soon.
    pub fn poll_device_grant(
        &self,
        device_hash: &str,
        now: i64,
        penalty: i64,
        too_soon: impl FnOnce(&DeviceGrant) -> bool,
    ) -> StoreResult<Option<Polled>> {
        let mut conn = self.conn()?;
        let row = on_backend!(&mut *conn, |db| dc::table
            .find(device_hash)
            .select(COLUMNS)
            .first::<Row>(db)
            .optional())?;
        let Some(g) = row.map(from_row).transpose()? else {
            return Ok(None);
        };
        let interval = g.interval + if too_soon(&g) { penalty } else { 0 };
        let n = match g.last_poll_at {
            Some(at) => on_backend!(&mut *conn, |db| diesel::update(
                dc::table
                    .find(device_hash)
                    .filter(dc::last_poll_at.eq(Some(at)))
            )
            .set((
                dc::last_poll_at.eq(Some(now)),
                dc::poll_interval.eq(interval),
            ))
            .execute(db))?,
            None => on_backend!(&mut *conn, |db| diesel::update(
                dc::table
                    .find(device_hash)
                    .filter(dc::last_poll_at.is_null())
            )
            .set((
                dc::last_poll_at.eq(Some(now)),
                dc::poll_interval.eq(interval),
            ))
            .execute(db))?,
        };
        let raced = n == 0;
        if raced {
            on_backend!(&mut *conn, |db| diesel::update(dc::table.find(device_hash))
                .set(dc::poll_interval.eq(dc::poll_interval + penalty))
                .execute(db))?;
        }
        Ok(Some(Polled { grant: g, raced }))
    }

    /// Deletes device authorizations that expired; returns how many.
    pub fn prune_device_grants(&self, now: i64) -> StoreResult<usize> {
        let mut conn = self.conn()?;
        Ok(on_backend!(&mut *conn, |db| diesel::delete(
            dc::table.filter(dc::expires_at.le(now))
        )
        .execute(db))?)
    }
}

/// What a poll found (see [`Store::poll_device_grant`]).
pub struct Polled {
    /// The authorization as it was before this poll.
    pub grant: DeviceGrant,
    /// Another poll was recorded between this one's read and write: answer `slow_down`.
    pub raced: bool,
}
