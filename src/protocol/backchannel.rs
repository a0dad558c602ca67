//! OpenID Connect Back-Channel Logout 1.0: when a user signs out, every client that registered
//! a `backchannel_logout_uri` and is concerned gets a signed `logout_token` POSTed to it, so it
//! can end its own session for that user.
//!
//! Who is told what: RP-initiated logout ends one browser session, and every client that got a
//! code in that session hears of it with that `sid`; signing one app on one device out tells
//! that app (the family's `sid`); signing a user out everywhere (the CLI, the admin API, a
//! password change, revoked grants) tells every client that ever got a code for the user, with
//! `sub` only (§2.4: all of the user's sessions there), or once per session for a client that
//! set `backchannel_logout_session_required`; a refresh token reused (stolen) tells the
//! family's app.
//!
//! Never in the user's request: a sign-out only queues rows (`logout_notices`, shared by
//! replicas and the CLI); [`deliver_due`], run every second by each server, claims due rows
//! (a lease, so two replicas never send one row twice at once), signs the token at delivery
//! (`typ: logout+jwt`, `aud` = the client, `events`, `sub`/`sid`, `iat`, `exp` in 2 minutes, a
//! fresh `jti`, never a `nonce`), and POSTs it through `crate::outbound` (https, public
//! addresses only, no redirects, 5 s, 16 KiB answer cap). A failure is retried after 2, 10 and
//! 30 s, then dropped with a warning.

use serde_json::json;

use super::Ctx;
use crate::keys::TYP_LOGOUT_TOKEN;
use crate::store::{LogoutNotice, SignedOut};

/// The `events` member of a logout token (§2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Seconds before each retry of a failed delivery; after the last, the notice is dropped.
pub const RETRY_AFTER: [i64; 3] = [2, 10, 30];
/// A claimed notice is not claimed again for this long (a delivery takes at most 5 s).
const LEASE: i64 = 30;
/// Most notices one tick delivers (concurrently).
const BATCH: i64 = 32;
/// Lifetime of a logout token.
const TOKEN_TTL: i64 = 120;
/// Largest answer read from a receiver.
const MAX_ANSWER: usize = 16 * 1024;

/// Queues the logout notices a sign-out causes. Never fails the sign-out: an error is logged.
pub async fn signed_out(ctx: &Ctx, what: SignedOut, now: i64) {
    let queued = ctx
        .store
        .blocking(move |s| s.queue_logout_notices(&what, now))
        .await;
    if let Err(e) = queued {
        tracing::error!(error = %e, "could not queue back-channel logout notices");
    }
}

/// Starts delivering the notices that are due, each in its own task: a slow receiver holds up
/// neither the others nor the next tick (its lease keeps it from being claimed twice).
pub async fn deliver_due(ctx: &Ctx, now: i64) {
    let due = match ctx
        .store
        .blocking(move |s| s.claim_logout_notices(now, LEASE, BATCH))
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the back-channel logout queue; will retry");
            return;
        }
    };
    for n in due {
        let ctx = ctx.clone();
        actix_web::rt::spawn(async move { deliver(&ctx, n, now).await });
    }
}

async fn deliver(ctx: &Ctx, n: LogoutNotice, now: i64) {
    let started = std::time::Instant::now();
    let client = match ctx.store.request_client(&n.client_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "back-channel logout: cannot read the client; will retry");
            return;
        }
    };
    let uri = client
        .as_ref()
        .filter(|c| !c.disabled)
        .and_then(|c| c.backchannel_logout_uri.clone());
    let outcome = match uri {
        // The client went away, was disabled or stopped listening: nobody to tell.
        None => Ok(()),
        Some(uri) => match token(ctx, &n, now) {
            Ok(jwt) => ctx
                .outbound
                .post_form(&uri, &[("logout_token", &jwt)], MAX_ANSWER)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot sign the logout token: {e}")),
        },
    };
    let id = n.notice_id.clone();
    let step = match outcome {
        Ok(()) => {
            tracing::info!(client_id = %n.client_id, "back-channel logout delivered");
            ctx.store
                .blocking(move |s| s.finish_logout_notice(&id))
                .await
        }
        Err(cause) => match RETRY_AFTER.get(n.attempts as usize) {
            Some(wait) => {
                tracing::info!(client_id = %n.client_id, %cause, attempt = n.attempts + 1, "back-channel logout failed; will retry");
                // From when this attempt ended (a timeout takes 5 s).
                let at = now + started.elapsed().as_secs() as i64 + wait;
                ctx.store
                    .blocking(move |s| s.retry_logout_notice(&id, at))
                    .await
            }
            None => {
                tracing::warn!(client_id = %n.client_id, %cause, "back-channel logout failed on every attempt; dropped");
                ctx.store
                    .blocking(move |s| s.finish_logout_notice(&id))
                    .await
            }
        },
    };
    if let Err(e) = step {
        tracing::warn!(error = %e, "back-channel logout: cannot update the queue");
    }
}

/// The signed logout token of `n` (§2.4).
fn token(ctx: &Ctx, n: &LogoutNotice, now: i64) -> Result<String, crate::keys::KeyError> {
    let mut claims = json!({
        "iss": ctx.config.issuer,
        "aud": n.client_id,
        "iat": now,
        "exp": now + TOKEN_TTL,
        "jti": crate::secret::random_id(),
        "sub": n.sub,
        "events": { EVENT: {} },
    });
    if let Some(sid) = &n.sid {
        claims["sid"] = json!(sid);
    }
    ctx.keys
        .sign(ctx.config.id_token_alg, TYP_LOGOUT_TOKEN, &claims, now)
}
