//! A user's signed-in devices (issue 20): one entry per live refresh-token family — an app
//! on a device — and per browser session at this server; signing one family out, or the user
//! out everywhere. Shared by the admin API (`/admin/v1/users/{id}/sessions`, `/signout`) and
//! the CLI (`latchkey user sessions`, `latchkey user signout`); both audit every sign-out.

use serde_json::{Value, json};

use crate::store::{GrantsRevoked, SignIns};

/// The JSON view of what a user is signed in to: never a token or a session cookie hash.
pub fn view(s: &SignIns) -> Value {
    json!({
        "apps": s.apps,
        "sessions": s.sessions.iter().map(|x| json!({
            "sid": x.sid,
            "signed_in_at": x.auth_time,
            "created_at": x.created_at,
            "expires_at": x.expires_at,
            "ip": x.seen.ip,
            "user_agent": x.seen.user_agent,
        })).collect::<Vec<_>>(),
    })
}

/// The JSON (and audit) view of a sign-out.
pub fn signed_out(family_id: Option<&str>, r: GrantsRevoked) -> Value {
    match family_id {
        Some(f) => json!({ "family_id": f, "token_families": r.token_families }),
        None => json!({
            "token_families": r.token_families,
            "authorization_codes": r.authorization_codes,
            "sessions": r.sessions,
        }),
    }
}
