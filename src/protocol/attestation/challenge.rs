//! Attestation challenges (the draft's challenge endpoint and `OAuth-Client-Attestation-
//! Challenge`): stateless values every replica can check (`slot_token`), accepted for
//! [`ACCEPTED_SLOTS`] minutes. Freshness only: a platform statement is used once
//! (`attest.rs` records it) and a PoP once (its `jti`).

use aws_lc_rs::hmac;

use crate::protocol::Ctx;
use crate::protocol::error::{OAuthError, OAuthResult};
use crate::protocol::slot_token;

/// The response header and body member naming a challenge.
pub const HEADER: &str = "oauth-client-attestation-challenge";
/// Slot length, seconds.
const WINDOW: i64 = 60;
/// A challenge is accepted in its slot and the next four (4 to 5 minutes): an App Attest
/// `attestKey` or an Android key generation in StrongBox can take seconds on a slow phone.
pub const ACCEPTED_SLOTS: i64 = 5;
/// HKDF purpose of the challenge MAC key.
const KEY_PURPOSE: &[u8] = b"latchkey attestation-challenge v1";
const LABEL: &[u8] = b"attestation-challenge";

fn key(ctx: &Ctx) -> OAuthResult<hmac::Key> {
    ctx.keys
        .kek()
        .mac_key(KEY_PURPOSE)
        .ok_or_else(|| OAuthError::server_error("cannot derive the attestation challenge key"))
}

/// A fresh challenge.
pub fn new(ctx: &Ctx, now: i64) -> OAuthResult<String> {
    Ok(slot_token::make(&key(ctx)?, LABEL, now.div_euclid(WINDOW)))
}

/// Whether `challenge` is one this server made and still accepts.
pub fn is_current(ctx: &Ctx, challenge: &str, now: i64) -> OAuthResult<bool> {
    Ok(slot_token::slot_of(&key(ctx)?, LABEL, challenge, now, WINDOW, ACCEPTED_SLOTS).is_some())
}

/// Seconds a challenge made at `now` is still accepted, at least.
pub fn lifetime() -> i64 {
    (ACCEPTED_SLOTS - 1) * WINDOW
}
