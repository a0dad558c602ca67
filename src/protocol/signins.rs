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

/// What to sign a user out of.
#[derive(Debug, Clone)]
pub enum Which {
    /// One app on one device (a refresh family).
    Family(String),
    /// One browser session, by its `sid`.
    Session(String),
    /// Every family, unused code and browser session (consents stay).
    Everywhere,
}

/// Signs `user_id` out of `which` and queues the back-channel logout notices it causes; the
/// one path the admin API and the account pages take (the CLI, synchronous, calls the same
/// store functions). `None` when `which` names nothing of this user's that is signed in.
pub async fn sign_out(
    ctx: &super::Ctx,
    user_id: &str,
    which: Which,
    now: i64,
) -> super::error::OAuthResult<Option<GrantsRevoked>> {
    use crate::store::SignedOut;
    let uid = user_id.to_owned();
    let done = ctx
        .store
        .blocking(move |s| {
            Ok(match which {
                Which::Family(f) => s.sign_out_family(&uid, &f, now)?.map(|client_id| {
                    let r = GrantsRevoked {
                        token_families: 1,
                        ..Default::default()
                    };
                    let what = SignedOut::Family {
                        user_id: uid.clone(),
                        client_id,
                        family_id: f,
                    };
                    (r, what)
                }),
                Which::Session(sid) => s.end_user_session(&uid, &sid)?.then(|| {
                    let r = GrantsRevoked {
                        sessions: 1,
                        ..Default::default()
                    };
                    (
                        r,
                        SignedOut::Session {
                            user_id: uid.clone(),
                            sid,
                        },
                    )
                }),
                Which::Everywhere => {
                    let r = s.sign_out_everywhere(&uid, now)?;
                    Some((
                        r,
                        SignedOut::User {
                            user_id: uid.clone(),
                        },
                    ))
                }
            })
        })
        .await?;
    let Some((revoked, what)) = done else {
        return Ok(None);
    };
    super::backchannel::signed_out(ctx, what, now).await;
    Ok(Some(revoked))
}
