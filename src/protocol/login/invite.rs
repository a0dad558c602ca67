//! Enrolment links (`latchkey user invite`, the admin API): a single-use link to register a
//! passkey for one user — a new user with no password at all, or one whose factors an admin
//! reset. The token is 256 random bits, stored as a SHA-256 hash, valid `invitation_ttl`.

use crate::model::User;
use crate::protocol::Ctx;
use crate::secret;
use crate::store::{Store, StoreResult};

pub const PATH: &str = "/invite";

/// A new link for `user_id` (blocking: the CLI and the admin API's blocking task call it).
/// Why no link can be made on this server: its passkeys are off.
pub const PASSKEYS_OFF: &str = "passkeys are off on this server (its issuer is an IP address, which WebAuthn does not allow), so an invitation link could not be used: set a password instead";

/// Whether a link made for `issuer` can be used: a passkey needs a domain name as RP ID.
pub fn usable(issuer: &str) -> bool {
    url::Url::parse(issuer).is_ok_and(|u| super::passkey::rp_id(&u).is_some())
}

pub fn create(
    store: &Store,
    issuer: &str,
    user_id: &str,
    ttl: u64,
    now: i64,
) -> StoreResult<String> {
    let token = secret::new_secret();
    store.insert_invitation(&secret::hash_token(&token), user_id, now, now + ttl as i64)?;
    Ok(format!("{issuer}{PATH}/{token}"))
}

/// The enabled user a live link is for.
pub async fn find(ctx: &Ctx, token: &str, now: i64) -> StoreResult<Option<User>> {
    if token.len() > 100 {
        return Ok(None);
    }
    let hash = secret::hash_token(token);
    ctx.store
        .blocking(move |s| {
            let Some(user_id) = s.invitation(&hash, now)? else {
                return Ok(None);
            };
            Ok(s.user(&user_id)?.filter(|u| !u.disabled))
        })
        .await
}

/// Uses the link up; `false` if it was used (or expired) meanwhile.
pub async fn take(ctx: &Ctx, token: &str, user_id: &str, now: i64) -> StoreResult<bool> {
    let (hash, id) = (secret::hash_token(token), user_id.to_owned());
    ctx.store
        .write(move |s| s.take_invitation(&hash, &id, now))
        .await
}
