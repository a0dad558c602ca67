//! Where a user is signed in: live refresh-token families (one per app on one device) and
//! browser sessions at this server, and signing them out one by one or all at once.
//!
//! "Last used" of a family is when its current refresh token was issued (its last refresh, or
//! the sign-in): read from the rows rotation writes anyway, so the refresh path records nothing
//! more.

use diesel::prelude::*;

use super::admin::sign_out_user;
use super::grants::{SessionRow, session_from_row};
use super::schema::{clients, refresh_tokens as rt, sessions, token_families as tf};
use super::{GrantsRevoked, Store, StoreResult, write_tx};
use crate::model::Session;

/// One app signed in on one device: a live refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedInApp {
    pub family_id: String,
    pub client_id: String,
    pub client_name: String,
    /// The sign-in that started the family (unix seconds).
    pub signed_in_at: i64,
    /// The family's last refresh, or the sign-in.
    pub last_used_at: i64,
    /// The family ends then, whatever its use.
    pub expires_at: i64,
    /// The browser session it was signed in from (`sid` of its ID tokens).
    pub sid: String,
    /// RFC 9449: its refresh token works only with the device's DPoP key.
    pub dpop_bound: bool,
    /// The address and User-Agent of its last use (the request that made its current token).
    pub last_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What a user is signed in to.
#[derive(Debug, Clone, Default)]
pub struct SignIns {
    pub apps: Vec<SignedInApp>,
    /// Live browser sessions at this server (the login page's cookie).
    pub sessions: Vec<Session>,
}

impl Store {
    /// Every live family and browser session of `user_id`, newest use first.
    pub fn user_sign_ins(&self, user_id: &str, now: i64) -> StoreResult<SignIns> {
        let mut conn = self.conn()?;
        let families: Vec<(String, String, i64, i64, Option<String>)> = tf::table
            .filter(tf::user_id.eq(user_id))
            .filter(tf::revoked_at.is_null())
            .filter(tf::expires_at.gt(now))
            .select((
                tf::family_id,
                tf::client_id,
                tf::created_at,
                tf::expires_at,
                tf::dpop_jkt,
            ))
            .load(&mut *conn)?;
        let ids: Vec<&str> = families.iter().map(|f| f.0.as_str()).collect();
        // The current (unrotated, unexpired) token of each family: an idle family whose last
        // token expired is signed out already.
        type Current = (String, i64, String, Option<String>, Option<String>);
        let current: Vec<Current> = if ids.is_empty() {
            vec![]
        } else {
            rt::table
                .filter(rt::family_id.eq_any(&ids))
                .filter(rt::rotated_at.is_null())
                .filter(rt::expires_at.gt(now))
                .select((
                    rt::family_id,
                    rt::created_at,
                    rt::sid,
                    rt::client_ip,
                    rt::user_agent,
                ))
                .load(&mut *conn)?
        };
        let client_ids: Vec<&str> = families.iter().map(|f| f.1.as_str()).collect();
        let names: Vec<(String, String)> = if client_ids.is_empty() {
            vec![]
        } else {
            clients::table
                .filter(clients::client_id.eq_any(&client_ids))
                .select((clients::client_id, clients::client_name))
                .load(&mut *conn)?
        };
        let mut apps: Vec<SignedInApp> = families
            .iter()
            .filter_map(|(family_id, client_id, created_at, expires_at, jkt)| {
                let (_, last_used_at, sid, last_ip, user_agent) =
                    current.iter().find(|c| &c.0 == family_id)?;
                let client_name = names
                    .iter()
                    .find(|n| &n.0 == client_id)
                    .map(|n| n.1.clone())?;
                Some(SignedInApp {
                    family_id: family_id.clone(),
                    client_id: client_id.clone(),
                    client_name,
                    signed_in_at: *created_at,
                    last_used_at: *last_used_at,
                    expires_at: *expires_at,
                    sid: sid.clone(),
                    dpop_bound: jkt.is_some(),
                    last_ip: last_ip.clone(),
                    user_agent: user_agent.clone(),
                })
            })
            .collect();
        apps.sort_by(|a, b| {
            b.last_used_at
                .cmp(&a.last_used_at)
                .then(a.family_id.cmp(&b.family_id))
        });
        let mut live: Vec<Session> = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::expires_at.gt(now))
            .load::<SessionRow>(&mut *conn)?
            .into_iter()
            .map(session_from_row)
            .collect();
        live.sort_by_key(|s| std::cmp::Reverse(s.auth_time));
        Ok(SignIns {
            apps,
            sessions: live,
        })
    }

    /// Signs one app out on one device: revokes `family_id` if it is a live family of
    /// `user_id` (its refresh token, and its access tokens at introspection and userinfo).
    /// The family's client, or `None` if there is no such family.
    pub fn sign_out_family(
        &self,
        user_id: &str,
        family_id: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let mut conn = self.conn()?;
        let client_id: Option<String> = tf::table
            .filter(tf::family_id.eq(family_id))
            .filter(tf::user_id.eq(user_id))
            .filter(tf::revoked_at.is_null())
            .select(tf::client_id)
            .first(&mut *conn)
            .optional()?;
        let Some(client_id) = client_id else {
            return Ok(None);
        };
        super::client_cache::note_revocation();
        let n = diesel::update(
            tf::table
                .filter(tf::family_id.eq(family_id))
                .filter(tf::user_id.eq(user_id))
                .filter(tf::revoked_at.is_null()),
        )
        .set((
            tf::revoked_at.eq(Some(now)),
            tf::revoked_reason.eq(Some("signed out")),
        ))
        .execute(&mut *conn)?;
        Ok((n == 1).then_some(client_id))
    }

    /// Ends one browser session of `user_id` (by its `sid`); `false` if there is none.
    pub fn end_user_session(&self, user_id: &str, sid: &str) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let n = diesel::delete(
            sessions::table
                .filter(sessions::user_id.eq(user_id))
                .filter(sessions::sid.eq(sid)),
        )
        .execute(&mut *conn)?;
        Ok(n > 0)
    }

    /// Signs `user_id` out everywhere: every refresh family, every unused code and every
    /// browser session, in one transaction. Consents stay (they are decisions, not
    /// credentials).
    pub fn sign_out_everywhere(&self, user_id: &str, now: i64) -> StoreResult<GrantsRevoked> {
        let mut conn = self.conn()?;
        write_tx(&mut conn, |conn| {
            sign_out_user(conn, user_id, "signed out everywhere", now)
                .map_err(super::StoreError::from)
        })
    }
}
