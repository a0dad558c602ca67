//! Apple App Attest keys (issue 23): attested once per app installation by `POST /attest`, then
//! proved by assertions whose counter must grow. The decisions are in
//! `protocol::attestation::attest`; this is only their storage.

use diesel::prelude::*;

use super::schema::attested_keys as ak;
use super::{Store, StoreError, StoreResult, on_backend};

/// An attested App Attest key of a client's app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedKey {
    pub client_id: String,
    /// base64url of the key identifier.
    pub key_id: String,
    /// base64url of the uncompressed P-256 point.
    pub public_key: String,
    pub app_id: String,
    /// `production` or `development`.
    pub environment: String,
    pub counter: i64,
    pub created_at: i64,
    pub last_used_at: i64,
}

type Row = (String, String, String, String, String, i64, i64, i64);

impl Store {
    /// Records a newly attested key; `false` if the client already has it (the app retried an
    /// attestation whose answer it lost: the stored counter stays).
    pub fn insert_attested_key(&self, k: &AttestedKey) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let done = on_backend!(&mut *conn, |db| diesel::insert_into(ak::table)
            .values((
                ak::client_id.eq(&k.client_id),
                ak::key_id.eq(&k.key_id),
                ak::public_key.eq(&k.public_key),
                ak::app_id.eq(&k.app_id),
                ak::environment.eq(&k.environment),
                ak::counter.eq(k.counter),
                ak::created_at.eq(k.created_at),
                ak::last_used_at.eq(k.last_used_at),
            ))
            .execute(db))
        .map_err(StoreError::from);
        match done {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn attested_key(&self, client_id: &str, key_id: &str) -> StoreResult<Option<AttestedKey>> {
        let mut conn = self.conn()?;
        let row = on_backend!(&mut *conn, |db| ak::table
            .filter(ak::client_id.eq(client_id))
            .filter(ak::key_id.eq(key_id))
            .select((
                ak::client_id,
                ak::key_id,
                ak::public_key,
                ak::app_id,
                ak::environment,
                ak::counter,
                ak::created_at,
                ak::last_used_at,
            ))
            .first::<Row>(db)
            .optional())?;
        Ok(row.map(|r| AttestedKey {
            client_id: r.0,
            key_id: r.1,
            public_key: r.2,
            app_id: r.3,
            environment: r.4,
            counter: r.5,
            created_at: r.6,
            last_used_at: r.7,
        }))
    }

    /// Moves a key's counter to `counter` if it is greater than the stored one. `false`: another
    /// assertion with this or a greater counter came first (a replay, on any replica).
    pub fn advance_attested_counter(
        &self,
        client_id: &str,
        key_id: &str,
        counter: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = on_backend!(&mut *conn, |db| diesel::update(
            ak::table
                .filter(ak::client_id.eq(client_id))
                .filter(ak::key_id.eq(key_id))
                .filter(ak::counter.lt(counter))
        )
        .set((ak::counter.eq(counter), ak::last_used_at.eq(now)))
        .execute(db))?;
        Ok(n == 1)
    }
}
