//! Between a right password and a session: the ticket that carries "this user's password was
//! right" to the one-time-code form, and what level of sign-in an app needs.
//!
//! The ticket is sealed (AES-256-GCM under the KEK, bound to this purpose), lives five
//! minutes, and is only half a sign-in: it starts no session and opens nothing without a right
//! code, which is throttled like a password.

use serde::{Deserialize, Serialize};

use super::amr::Acr;
use crate::config::Config;
use crate::model::Client;
use crate::protocol::Ctx;

pub const TICKET_TTL: i64 = 300;
const PURPOSE: &str = "login:second-factor";

#[derive(Serialize, Deserialize)]
struct Ticket {
    user_id: String,
    exp: i64,
}

/// The ticket for `user_id`, whose password was right `now`.
pub fn ticket(ctx: &Ctx, user_id: &str, now: i64) -> Option<String> {
    let body = serde_json::to_vec(&Ticket {
        user_id: user_id.to_owned(),
        exp: now + TICKET_TTL,
    })
    .ok()?;
    ctx.keys.kek().seal(PURPOSE, &body).ok()
}

/// The user a live ticket is for; `None` if expired, forged or from another server.
pub fn open_ticket(ctx: &Ctx, ticket: &str, now: i64) -> Option<String> {
    let body = ctx.keys.kek().open(PURPOSE, ticket).ok()?;
    let t: Ticket = serde_json::from_slice(&body).ok()?;
    (t.exp >= now).then_some(t.user_id)
}

/// The least level a sign-in for `client` must reach: `mfa` when the client (or the server,
/// `require_mfa`) asks for more than a password, raised by the request's `acr_values`. The
/// account pages are exempt from the server-wide default, so that users can enrol a factor
/// (a user who has one is still asked for it there).
pub fn required(config: &Config, client: &Client, acr_values: Option<&str>) -> Acr {
    let by_policy = if client.require_mfa
        || (config.require_mfa && client.client_id != crate::protocol::account::CLIENT_ID)
    {
        Acr::Mfa
    } else {
        Acr::Pwd
    };
    let asked = acr_values.and_then(Acr::requested).unwrap_or(Acr::Pwd);
    by_policy.max(asked)
}
