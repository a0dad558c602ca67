//! The Back-Channel Logout queue (OpenID Connect Back-Channel Logout 1.0): one row per logout
//! token to deliver to one client. Queued by whatever signs a user out (a request on any
//! replica, or the CLI); claimed, delivered and retried by the running servers.

use diesel::prelude::*;

use super::schema::{
    authorization_codes as ac, clients, logout_notices as ln, refresh_tokens as rt,
};
use super::{Store, StoreResult};

/// A logout token to deliver: `client_id` is told that `sub` (in session `sid`, or in every
/// session when `None`) signed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutNotice {
    pub notice_id: String,
    pub client_id: String,
    pub sub: String,
    pub sid: Option<String>,
    pub created_at: i64,
    pub attempts: i64,
}

/// notice_id, client_id, sub, sid, created_at, attempts, next_at.
type NoticeRow = (String, String, String, Option<String>, i64, i64, i64);

/// Most sessions one user-wide sign-out names, per client that requires `sid`.
const MAX_SIDS: i64 = 20;

/// Which sign-out to queue notices for.
#[derive(Debug, Clone)]
pub enum SignedOut {
    /// One browser session (RP-initiated logout): every client that got a code in it.
    Session { user_id: String, sid: String },
    /// One app on one device (a refresh family): that client, for the family's session.
    Family {
        user_id: String,
        client_id: String,
        family_id: String,
    },
    /// Everywhere (sign out everywhere, password change, revoked grants): every client that
    /// ever got a code for the user.
    User { user_id: String },
}

impl Store {
    /// Queues a notice for every client with a `backchannel_logout_uri` that `what` concerns;
    /// returns how many. Never fails the sign-out that calls it: the caller logs an error.
    pub fn queue_logout_notices(&self, what: &SignedOut, now: i64) -> StoreResult<usize> {
        let mut conn = self.conn()?;
        let listening: Vec<(String, bool)> = clients::table
            .filter(clients::backchannel_logout_uri.is_not_null())
            .filter(clients::disabled.eq(false))
            .select((
                clients::client_id,
                clients::backchannel_logout_session_required,
            ))
            .load(&mut *conn)?;
        if listening.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = listening.iter().map(|c| c.0.as_str()).collect();
        let (user_id, targets): (&str, Vec<(String, Option<String>)>) = match what {
            SignedOut::Session { user_id, sid } => {
                let got: Vec<String> = ac::table
                    .filter(ac::sid.eq(sid))
                    .filter(ac::user_id.eq(user_id))
                    .filter(ac::client_id.eq_any(&ids))
                    .select(ac::client_id)
                    .distinct()
                    .load(&mut *conn)?;
                (
                    user_id,
                    got.into_iter().map(|c| (c, Some(sid.to_owned()))).collect(),
                )
            }
            SignedOut::Family {
                user_id,
                client_id,
                family_id,
            } => {
                let sid: Option<String> = if ids.contains(&client_id.as_str()) {
                    rt::table
                        .filter(rt::family_id.eq(family_id))
                        .select(rt::sid)
                        .first(&mut *conn)
                        .optional()?
                } else {
                    None
                };
                (
                    user_id,
                    sid.map(|s| (client_id.to_owned(), Some(s)))
                        .into_iter()
                        .collect(),
                )
            }
            SignedOut::User { user_id } => {
                let got: Vec<String> = ac::table
                    .filter(ac::user_id.eq(user_id))
                    .filter(ac::client_id.eq_any(&ids))
                    .select(ac::client_id)
                    .distinct()
                    .load(&mut *conn)?;
                let mut targets = vec![];
                for c in got {
                    let needs_sid = listening.iter().any(|l| l.0 == c && l.1);
                    if !needs_sid {
                        // §2.4: a token without `sid` ends every session of `sub` at the RP.
                        targets.push((c, None));
                        continue;
                    }
                    let sids: Vec<String> = ac::table
                        .filter(ac::user_id.eq(user_id))
                        .filter(ac::client_id.eq(&c))
                        .select(ac::sid)
                        .distinct()
                        .limit(MAX_SIDS)
                        .load(&mut *conn)?;
                    targets.extend(sids.into_iter().map(|s| (c.clone(), Some(s))));
                }
                (user_id, targets)
            }
        };
        for (client_id, sid) in &targets {
            diesel::insert_into(ln::table)
                .values((
                    ln::notice_id.eq(crate::secret::random_id()),
                    ln::client_id.eq(client_id),
                    ln::sub.eq(user_id),
                    ln::sid.eq(sid.as_deref()),
                    ln::created_at.eq(now),
                    ln::attempts.eq(0i64),
                    ln::next_at.eq(now),
                ))
                .execute(&mut *conn)?;
        }
        Ok(targets.len())
    }

    /// Claims up to `limit` notices due by `now` for delivery: each claimed one is not due
    /// again for `lease` seconds (another replica leaves it alone meanwhile; a server that
    /// dies mid-delivery has it retried after the lease).
    pub fn claim_logout_notices(
        &self,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> StoreResult<Vec<LogoutNotice>> {
        let mut conn = self.conn()?;
        let due: Vec<NoticeRow> = ln::table
            .filter(ln::next_at.le(now))
            .order(ln::next_at.asc())
            .limit(limit)
            .select((
                ln::notice_id,
                ln::client_id,
                ln::sub,
                ln::sid,
                ln::created_at,
                ln::attempts,
                ln::next_at,
            ))
            .load(&mut *conn)?;
        let mut claimed = vec![];
        for (notice_id, client_id, sub, sid, created_at, attempts, next_at) in due {
            // Compare-and-set on `next_at`: of two replicas, one claims it.
            let n = diesel::update(
                ln::table
                    .filter(ln::notice_id.eq(&notice_id))
                    .filter(ln::next_at.eq(next_at)),
            )
            .set(ln::next_at.eq(now + lease))
            .execute(&mut *conn)?;
            if n == 1 {
                claimed.push(LogoutNotice {
                    notice_id,
                    client_id,
                    sub,
                    sid,
                    created_at,
                    attempts,
                });
            }
        }
        Ok(claimed)
    }

    /// A notice delivered, or given up on: gone.
    pub fn finish_logout_notice(&self, notice_id: &str) -> StoreResult<()> {
        let mut conn = self.conn()?;
        diesel::delete(ln::table.filter(ln::notice_id.eq(notice_id))).execute(&mut *conn)?;
        Ok(())
    }

    /// A failed delivery: tried again at `next_at`.
    pub fn retry_logout_notice(&self, notice_id: &str, next_at: i64) -> StoreResult<()> {
        let mut conn = self.conn()?;
        diesel::update(ln::table.filter(ln::notice_id.eq(notice_id)))
            .set((ln::attempts.eq(ln::attempts + 1), ln::next_at.eq(next_at)))
            .execute(&mut *conn)?;
        Ok(())
    }

    /// Notices still queued (for tests and metrics).
    pub fn logout_notices_queued(&self) -> StoreResult<i64> {
        let mut conn = self.conn()?;
        Ok(ln::table.count().get_result(&mut *conn)?)
    }
}
