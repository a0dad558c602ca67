//! RFC 6238 one-time codes as a second factor after a password (`totp-rs`: HMAC-SHA-1, six
//! digits, 30-second steps, one step of clock skew each way), and recovery codes.
//!
//! - Enrolment: a random 160-bit secret (RFC 4226 §4) is shown as a QR code and travels sealed
//!   in the form until the user confirms one code; only then is it stored, sealed under the KEK.
//! - A code is accepted once: the newest step used is stored, and a code for that step or an
//!   earlier one is refused (RFC 6238 §5.2), decided in the UPDATE itself so two replicas
//!   cannot both accept it.
//! - Ten recovery codes (50 bits each) are made with the authenticator, shown once, stored as
//!   SHA-256 hashes; each works once in place of a code.
//! - Every check is charged to the sign-in throttle like a password guess (`Throttle::begin`),
//!   and only a right code gives the charge back.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::Throttle;
use crate::model::User;
use crate::protocol::Ctx;
use crate::secret;

/// How long the enrolment page may wait for the first code.
pub const ENROL_TTL: i64 = 900;
pub const RECOVERY_CODES: usize = 10;
const SECRET_BYTES: usize = 20;
/// Recovery code characters: 32 of them (5 bits each), without 0/o and 1/l.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

#[derive(Debug, PartialEq, Eq)]
pub enum TotpRefused {
    /// Not the code of this step (or the one before or after), nor a recovery code.
    Wrong,
    /// The code of a step used already.
    Replayed,
    Throttled(u64),
    /// The enrolment page expired, or was not made for this user.
    Expired,
    /// The user has no authenticator.
    NotEnrolled,
    Unavailable,
}

/// What the enrolment page shows: the QR code (SVG), the secret for typing in, and the sealed
/// secret the confirmation posts back.
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_url: String,
    pub qr_svg: String,
    pub sealed: String,
}

#[derive(Serialize, Deserialize)]
struct Pending {
    exp: i64,
    secret: String,
}

fn enrol_purpose(user_id: &str) -> String {
    format!("totp:enrol\0{user_id}")
}

fn stored_purpose(user_id: &str) -> String {
    format!("totp:secret\0{user_id}")
}

fn totp(secret: &[u8], account: &str, issuer: &str) -> Result<Totp, TotpRefused> {
    // otpauth labels cannot hold ':'.
    let clean = |s: &str| s.replace(':', " ");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .with_account_name(clean(account))
        .with_issuer(Some(clean(issuer)))
        .build()
        .map_err(|_| TotpRefused::Unavailable)
}

/// The name authenticator apps show: the issuer's host.
fn issuer_label(ctx: &Ctx) -> String {
    url::Url::parse(&ctx.config.issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "Latchkey".into())
}

/// A new secret for `user`, not stored until [`confirm_enrolment`].
pub fn start_enrolment(ctx: &Ctx, user: &User, now: i64) -> Result<Enrolment, TotpRefused> {
    let raw = secret::random_bytes(SECRET_BYTES);
    let t = totp(&raw, &user.username, &issuer_label(ctx))?;
    let otpauth_url = t.to_url().map_err(|_| TotpRefused::Unavailable)?;
    let body = serde_json::to_vec(&Pending {
        exp: now + ENROL_TTL,
        secret: URL_SAFE_NO_PAD.encode(&raw),
    })
    .map_err(|_| TotpRefused::Unavailable)?;
    let sealed = ctx
        .keys
        .kek()
        .seal(&enrol_purpose(&user.user_id), &body)
        .map_err(|_| TotpRefused::Unavailable)?;
    Ok(Enrolment {
        secret_base32: t.secret().to_base32(),
        qr_svg: qr_svg(&otpauth_url),
        otpauth_url,
        sealed,
    })
}

/// The step a code is right for at `now` (this one, the one before or after), if any.
fn matching_step(t: &Totp, code: &str, now: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.check(&code, u64::try_from(now).ok()?)
        .and_then(|s| i64::try_from(s).ok())
}

/// Confirms an enrolment with the first code: the authenticator is stored (replacing an
/// earlier one) with a fresh set of recovery codes, which are returned to be shown once.
pub async fn confirm_enrolment(
    ctx: &Ctx,
    throttle: &Throttle,
    user: &User,
    sealed: &str,
    code: &str,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Vec<String>, TotpRefused> {
    let body = ctx
        .keys
        .kek()
        .open(&enrol_purpose(&user.user_id), sealed)
        .map_err(|_| TotpRefused::Expired)?;
    let p: Pending = serde_json::from_slice(&body).map_err(|_| TotpRefused::Expired)?;
    if p.exp < now {
        return Err(TotpRefused::Expired);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(&p.secret)
        .map_err(|_| TotpRefused::Expired)?;
    let attempt = throttle
        .begin(&user.username, ip, now)
        .map_err(TotpRefused::Throttled)?;
    let t = totp(&raw, &user.username, &issuer_label(ctx))?;
    let Some(step) = matching_step(&t, code, now) else {
        drop(attempt);
        return Err(TotpRefused::Wrong);
    };
    throttle.succeeded(attempt, now);
    let stored = ctx
        .keys
        .kek()
        .seal(&stored_purpose(&user.user_id), &raw)
        .map_err(|_| TotpRefused::Unavailable)?;
    let codes = new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
    let id = user.user_id.clone();
    ctx.store
        .write(move |s| s.set_totp(&id, &stored, step, &hashes, now))
        .await
        .map_err(|_| TotpRefused::Unavailable)?;
    Ok(codes)
}

/// What a second-factor check used.
#[derive(Debug, PartialEq, Eq)]
pub enum Used {
    Code,
    RecoveryCode,
}

/// Checks a code from the user's authenticator, or one of their recovery codes.
pub async fn verify(
    ctx: &Ctx,
    throttle: &Throttle,
    user: &User,
    code: &str,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Used, TotpRefused> {
    let attempt = throttle
        .begin(&user.username, ip, now)
        .map_err(TotpRefused::Throttled)?;
    let id = user.user_id.clone();
    let row = ctx
        .store
        .blocking(move |s| s.totp(&id))
        .await
        .map_err(|_| TotpRefused::Unavailable)?
        .ok_or(TotpRefused::NotEnrolled)?;
    let trimmed = code.trim();
    if trimmed.len() > 6 {
        // A recovery code (digits alone are never one: the alphabet has letters).
        if trimmed.len() > 32 {
            return Err(TotpRefused::Wrong);
        }
        let (id, h) = (user.user_id.clone(), recovery_hash(trimmed));
        let used = ctx
            .store
            .write(move |s| s.use_recovery_code(&id, &h))
            .await
            .map_err(|_| TotpRefused::Unavailable)?;
        if !used {
            drop(attempt);
            return Err(TotpRefused::Wrong);
        }
        throttle.succeeded(attempt, now);
        return Ok(Used::RecoveryCode);
    }
    let raw = ctx
        .keys
        .kek()
        .open(&stored_purpose(&user.user_id), &row.sealed_secret)
        .map_err(|_| TotpRefused::Unavailable)?;
    let t = totp(&raw, &user.username, &issuer_label(ctx))?;
    let Some(step) = matching_step(&t, trimmed, now) else {
        drop(attempt);
        return Err(TotpRefused::Wrong);
    };
    let id = user.user_id.clone();
    let fresh = ctx
        .store
        .write(move |s| s.use_totp_step(&id, step))
        .await
        .map_err(|_| TotpRefused::Unavailable)?;
    if !fresh {
        // Right code, used before: a replay (charged, like a wrong code).
        drop(attempt);
        return Err(TotpRefused::Replayed);
    }
    throttle.succeeded(attempt, now);
    Ok(Used::Code)
}

/// Replaces the user's recovery codes with a new set, returned to be shown once.
pub async fn regenerate_recovery_codes(
    ctx: &Ctx,
    user: &User,
    now: i64,
) -> Result<Vec<String>, TotpRefused> {
    let codes = new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
    let id = user.user_id.clone();
    ctx.store
        .write(move |s| s.set_recovery_codes(&id, &hashes, now))
        .await
        .map_err(|_| TotpRefused::Unavailable)?;
    Ok(codes)
}

fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let b = secret::random_bytes(10);
            let s: String = b
                .iter()
                .map(|x| ALPHABET[(x & 31) as usize] as char)
                .collect();
            format!("{}-{}", &s[..5], &s[5..])
        })
        .collect()
}

/// The stored form of a recovery code: case, spaces and dashes do not matter.
fn recovery_hash(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    secret::hash_token(&format!("recovery:{norm}"))
}

/// The QR code of `text` as an SVG image (one path; no scripts, no text from the user).
pub fn qr_svg(text: &str) -> String {
    use qrcodegen::{QrCode, QrCodeEcc};
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Medium) else {
        return String::new();
    };
    let border = 4;
    let size = qr.size() + 2 * border;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="220" height="220" role="img" aria-label="QR code for your authenticator app" shape-rendering="crispEdges"><rect width="100%" height="100%" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B (SHA-1 column, last six digits): the library computes the codes
    /// the RFC lists, so any authenticator app agrees with us.
    #[test]
    fn rfc_6238_test_vectors() {
        let t = totp(b"12345678901234567890", "a", "b").unwrap();
        for (time, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(t.generate(time).to_string(), code, "at {time}");
            assert_eq!(matching_step(&t, code, time as i64), Some(time as i64 / 30));
        }
    }

    #[test]
    fn codes_outside_the_window_or_malformed_are_refused() {
        let t = totp(b"12345678901234567890", "a", "b").unwrap();
        // The 59 s code, a minute and a half later: two steps away.
        assert_eq!(matching_step(&t, "287082", 59 + 90), None);
        // One step later is still accepted (clock skew).
        assert_eq!(matching_step(&t, "287082", 59 + 30), Some(1));
        for bad in ["", "28708", "2870822", "28708a", "２８７０８２"] {
            assert_eq!(matching_step(&t, bad, 59), None, "{bad:?}");
        }
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalized() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        );
        assert_eq!(recovery_hash("ABCDE-fghij"), recovery_hash(" abcdefghij "));
        assert_ne!(recovery_hash("abcdefghij"), recovery_hash("abcdefghik"));
    }

    #[test]
    fn qr_is_an_svg_of_modules() {
        let svg = qr_svg("otpauth://totp/x?secret=ABC");
        assert!(svg.starts_with("<svg") && svg.contains("<path d=\"M"));
    }
}
