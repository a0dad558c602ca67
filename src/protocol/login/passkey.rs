//! Passkeys (WebAuthn Level 3) through `webauthn-rs`: registration from the account page or an
//! invitation, and sign-in with a discoverable credential (no username, no password).
//!
//! Every check of an attestation or assertion (RP ID hash, origin, challenge, user
//! verification, signature, counter) is webauthn-rs's; this file decides who may register
//! what, keeps ceremony state, and maps a credential back to its user.
//!
//! A ceremony's state travels **sealed** in the page (AES-256-GCM under the KEK, bound to its
//! purpose and, for a registration, to the user): any replica can finish it and showing a
//! login page writes nothing. Finishing records the challenge (`webauthn_used_challenges`),
//! so an answer is accepted once, across replicas.
//!
//! RP ID: the issuer's host (passkeys are off when it is an IP address, which WebAuthn does not
//! allow). Origins: the issuer's, plus `webauthn_origins` for native apps using the platform
//! passkey APIs under associated domains.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::amr;
use crate::config::Config;
use crate::model::User;
use crate::protocol::Ctx;
use crate::secret;
use crate::store::PasskeyRow;

/// How long a ceremony may take (WebAuthn's recommended timeout is 5 minutes).
pub const CEREMONY_TTL: i64 = 300;
/// Most passkeys one user may register. The registration state lists them (WebAuthn
/// `excludeCredentials`) and travels sealed in a form field of at most 4 KiB
/// (`params::MAX_VALUE_LEN`): ten 64-byte credential ids fit with room to spare.
pub const MAX_PER_USER: usize = 10;
const SIGN_IN: &str = "webauthn:sign-in";

/// The relying party, or `None` when passkeys cannot work with this issuer.
pub struct Passkeys {
    webauthn: Option<Webauthn>,
}

/// Why a ceremony failed. `Refused` is the user's or an attacker's doing (a clear page);
/// `Unavailable` is the server's (the store).
#[derive(Debug)]
pub enum PasskeyError {
    Off,
    Refused(&'static str),
    Unavailable,
}

impl Passkeys {
    /// The relying party for this configuration; `Err` names what is wrong in
    /// `webauthn_origins`. An issuer whose host is not a domain name (an IP address) turns
    /// passkeys off with a warning.
    pub fn new(config: &Config) -> anyhow::Result<Passkeys> {
        let issuer = Url::parse(&config.issuer)?;
        let Some(rp_id) = rp_id(&issuer).map(str::to_owned) else {
            tracing::warn!(
                issuer = %config.issuer,
                "passkeys are off: WebAuthn needs the issuer's host to be a domain name, not an IP address"
            );
            return Ok(Passkeys { webauthn: None });
        };
        let origin = Url::parse(&issuer.origin().ascii_serialization())?;
        let mut b = WebauthnBuilder::new(&rp_id, &origin)
            .map_err(|e| anyhow::anyhow!("passkeys: {e}"))?
            .rp_name("Latchkey")
            .timeout(std::time::Duration::from_secs(CEREMONY_TTL as u64));
        for o in &config.webauthn_origins {
            let u = Url::parse(o).map_err(|e| {
                anyhow::anyhow!("invalid configuration: webauthn_origins: {o:?} is not a URL ({e})")
            })?;
            b = b.append_allowed_origin(&u);
        }
        let webauthn = b.build().map_err(|e| anyhow::anyhow!("passkeys: {e}"))?;
        Ok(Passkeys {
            webauthn: Some(webauthn),
        })
    }

    pub fn enabled(&self) -> bool {
        self.webauthn.is_some()
    }

    fn rp(&self) -> Result<&Webauthn, PasskeyError> {
        self.webauthn.as_ref().ok_or(PasskeyError::Off)
    }
}

/// The WebAuthn RP ID for an issuer: its host, when that is a domain name (WebAuthn forbids IP
/// addresses); `None` turns passkeys off.
pub fn rp_id(issuer: &Url) -> Option<&str> {
    issuer.domain()
}

/// The WebAuthn user handle of a user: 16 bytes derived from the user id, so it names the
/// account without being its id, and is the same for all of the user's passkeys.
pub fn user_handle(user_id: &str) -> Uuid {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("latchkey webauthn user handle\0{user_id}").as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    Uuid::from_bytes(b)
}

/// What the page hands the browser: `options` for `navigator.credentials.create/get` (WebAuthn
/// JSON, base64url) and `ceremony`, the sealed state to post back with the answer.
#[derive(Debug, Serialize)]
pub struct Challenge {
    pub options: serde_json::Value,
    pub ceremony: String,
}

#[derive(Serialize, Deserialize)]
struct Sealed<S> {
    exp: i64,
    challenge: String,
    state: S,
}

fn seal<S: Serialize>(
    ctx: &Ctx,
    purpose: &str,
    challenge: &str,
    state: S,
    now: i64,
) -> Result<String, PasskeyError> {
    let body = serde_json::to_vec(&Sealed {
        exp: now + CEREMONY_TTL,
        challenge: challenge.to_owned(),
        state,
    })
    .map_err(|_| PasskeyError::Unavailable)?;
    ctx.keys
        .kek()
        .seal(purpose, &body)
        .map_err(|_| PasskeyError::Unavailable)
}

fn open<S: for<'de> Deserialize<'de>>(
    ctx: &Ctx,
    purpose: &str,
    sealed: &str,
    now: i64,
) -> Result<Sealed<S>, PasskeyError> {
    let stale = PasskeyError::Refused("This page expired. Reload it and try again.");
    let body = ctx.keys.kek().open(purpose, sealed).map_err(|_| {
        PasskeyError::Refused("This page expired or was not made here. Reload it and try again.")
    })?;
    let s: Sealed<S> = serde_json::from_slice(&body).map_err(|_| PasskeyError::Unavailable)?;
    if s.exp < now {
        return Err(stale);
    }
    Ok(s)
}

/// The challenge of the options (`publicKey.challenge`), to record once answered.
fn challenge_of(options: &serde_json::Value) -> String {
    options["publicKey"]["challenge"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The challenge is used up by this answer; a second answer to it is a replay.
async fn use_challenge(ctx: &Ctx, challenge: &str, now: i64) -> Result<(), PasskeyError> {
    let hash = secret::hash_token(challenge);
    let fresh = ctx
        .store
        .write(move |s| s.record_webauthn_challenge(&hash, now + CEREMONY_TTL))
        .await
        .map_err(|_| PasskeyError::Unavailable)?;
    if fresh {
        Ok(())
    } else {
        Err(PasskeyError::Refused(
            "This passkey answer was used already. Reload the page and try again.",
        ))
    }
}

fn registration_purpose(user_id: &str) -> String {
    format!("webauthn:register\0{user_id}")
}

/// Starts adding a passkey to `user`'s account. The options ask for a discoverable
/// credential (a passkey signs in without a username) with user verification.
pub async fn start_registration(
    ctx: &Ctx,
    user: &User,
    now: i64,
) -> Result<Challenge, PasskeyError> {
    let rp = ctx.passkeys.rp()?;
    let id = user.user_id.clone();
    let existing = ctx
        .store
        .blocking(move |s| s.passkeys_of_user(&id))
        .await
        .map_err(|_| PasskeyError::Unavailable)?;
    if existing.len() >= MAX_PER_USER {
        return Err(PasskeyError::Refused(
            "You have as many passkeys as an account may have. Remove one first.",
        ));
    }
    let exclude = existing
        .iter()
        .filter_map(|p| serde_json::from_str::<Passkey>(&p.passkey).ok())
        .map(|p| p.cred_id().clone())
        .collect::<Vec<_>>();
    let display = user.name.as_deref().unwrap_or(&user.username);
    let (ccr, state) = rp
        .start_passkey_registration(
            user_handle(&user.user_id),
            &user.username,
            display,
            Some(exclude),
        )
        .map_err(|e| {
            tracing::error!(error = %e, "passkey registration could not start");
            PasskeyError::Unavailable
        })?;
    let mut options = serde_json::to_value(&ccr).map_err(|_| PasskeyError::Unavailable)?;
    // A passkey is a discoverable credential: it must be stored on the authenticator.
    options["publicKey"]["authenticatorSelection"]["residentKey"] = "required".into();
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = true.into();
    let challenge = challenge_of(&options);
    let ceremony = seal(
        ctx,
        &registration_purpose(&user.user_id),
        &challenge,
        state,
        now,
    )?;
    Ok(Challenge { options, ceremony })
}

/// Finishes adding a passkey named `name` to `user`'s account.
pub async fn finish_registration(
    ctx: &Ctx,
    user: &User,
    ceremony: &str,
    credential: &str,
    name: &str,
    now: i64,
) -> Result<PasskeyRow, PasskeyError> {
    let rp = ctx.passkeys.rp()?;
    let sealed: Sealed<PasskeyRegistration> =
        open(ctx, &registration_purpose(&user.user_id), ceremony, now)?;
    let reg: RegisterPublicKeyCredential = serde_json::from_str(credential)
        .map_err(|_| PasskeyError::Refused("The browser's answer could not be read. Try again."))?;
    let passkey = rp
        .finish_passkey_registration(&reg, &sealed.state)
        .map_err(|e| {
            tracing::info!(user_id = %user.user_id, error = %e, "passkey registration refused");
            PasskeyError::Refused("That passkey could not be registered. Try again.")
        })?;
    use_challenge(ctx, &sealed.challenge, now).await?;
    let name = clean_name(name);
    let row = PasskeyRow {
        credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id().as_ref()),
        user_id: user.user_id.clone(),
        user_handle: URL_SAFE_NO_PAD.encode(user_handle(&user.user_id).as_bytes()),
        name,
        passkey: serde_json::to_string(&passkey).map_err(|_| PasskeyError::Unavailable)?,
        created_at: now,
        last_used_at: None,
    };
    let r = row.clone();
    let inserted = ctx
        .store
        .write(move |s| s.insert_passkey(&r))
        .await
        .map_err(|_| PasskeyError::Unavailable)?;
    if !inserted {
        // WebAuthn §7.1 step 25: a credential id registered already (to anyone) is refused.
        return Err(PasskeyError::Refused("That passkey is registered already."));
    }
    Ok(row)
}

/// A passkey's display name: printable, at most 64 characters, "Passkey" when empty.
pub fn clean_name(name: &str) -> String {
    let n: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    if n.is_empty() || !crate::text::printable(&n, 256) {
        "Passkey".into()
    } else {
        n
    }
}

/// Starts a sign-in with any of this site's passkeys (discoverable credentials; the page uses
/// conditional mediation, and a button for the modal prompt).
pub fn start_sign_in(ctx: &Ctx, now: i64) -> Result<Challenge, PasskeyError> {
    let rp = ctx.passkeys.rp()?;
    let (rcr, state) = rp.start_discoverable_authentication().map_err(|e| {
        tracing::error!(error = %e, "passkey sign-in could not start");
        PasskeyError::Unavailable
    })?;
    let mut options = serde_json::to_value(&rcr).map_err(|_| PasskeyError::Unavailable)?;
    // The page decides between conditional and modal mediation itself.
    if let Some(o) = options.as_object_mut() {
        o.remove("mediation");
    }
    let challenge = challenge_of(&options);
    let ceremony = seal(ctx, SIGN_IN, &challenge, state, now)?;
    Ok(Challenge { options, ceremony })
}

/// A passkey sign-in that worked: the user and the `amr` of the session to start.
pub struct SignedIn {
    pub user: User,
    pub amr: &'static str,
    pub passkey_name: String,
}

/// Finishes a passkey sign-in: the credential must be one registered to the user its user
/// handle names, and webauthn-rs must accept the assertion (RP ID, origin, challenge, user
/// verification, signature, and a counter that went forward).
pub async fn finish_sign_in(
    ctx: &Ctx,
    ceremony: &str,
    credential: &str,
    now: i64,
) -> Result<SignedIn, PasskeyError> {
    let rp = ctx.passkeys.rp()?;
    let sealed: Sealed<DiscoverableAuthentication> = open(ctx, SIGN_IN, ceremony, now)?;
    let unknown = PasskeyError::Refused(
        "That passkey is not registered here, or was removed. Sign in another way.",
    );
    let cred: PublicKeyCredential = serde_json::from_str(credential)
        .map_err(|_| PasskeyError::Refused("The browser's answer could not be read. Try again."))?;
    let (handle, cred_id) = rp
        .identify_discoverable_authentication(&cred)
        .map_err(|_| PasskeyError::Refused("That passkey did not say whose it is."))?;
    let handle = URL_SAFE_NO_PAD.encode(handle.as_bytes());
    let cred_id = URL_SAFE_NO_PAD.encode(cred_id);
    let rows = ctx
        .store
        .blocking(move |s| s.passkeys_by_handle(&handle))
        .await
        .map_err(|_| PasskeyError::Unavailable)?;
    // The credential must be this user's: another user's credential with this user's handle
    // is not found here, and an unknown one fails webauthn-rs's allow list below.
    let Some(row) = rows.iter().find(|r| r.credential_id == cred_id).cloned() else {
        tracing::info!("passkey sign-in: unknown credential");
        return Err(unknown);
    };
    let keys: Vec<Passkey> = rows
        .iter()
        .filter_map(|r| serde_json::from_str::<Passkey>(&r.passkey).ok())
        .collect();
    let discoverable: Vec<DiscoverableKey> = keys.iter().map(DiscoverableKey::from).collect();
    let result = rp
        .finish_discoverable_authentication(&cred, sealed.state, &discoverable)
        .map_err(|e| {
            tracing::info!(user_id = %row.user_id, error = %e, "passkey assertion refused");
            PasskeyError::Refused("That passkey answer was not accepted. Try again.")
        })?;
    use_challenge(ctx, &sealed.challenge, now).await?;
    let user_id = row.user_id.clone();
    let user = ctx
        .store
        .blocking(move |s| s.user(&user_id))
        .await
        .map_err(|_| PasskeyError::Unavailable)?
        .filter(|u| !u.disabled)
        .ok_or(unknown)?;
    // The new counter and backup flags.
    if let Some(mut pk) = keys
        .into_iter()
        .find(|k| URL_SAFE_NO_PAD.encode(k.cred_id().as_ref()) == row.credential_id)
    {
        pk.update_credential(&result);
        if let Ok(json) = serde_json::to_string(&pk) {
            let id = row.credential_id.clone();
            let saved = ctx
                .store
                .write(move |s| s.passkey_used(&id, &json, now))
                .await;
            if let Err(e) = saved {
                tracing::warn!(error = %e, "passkey sign-in: counter not saved");
            }
        }
    }
    Ok(SignedIn {
        user,
        amr: amr::passkey(result.backup_eligible()),
        passkey_name: row.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_handles_are_stable_and_distinct() {
        assert_eq!(user_handle("u1"), user_handle("u1"));
        assert_ne!(user_handle("u1"), user_handle("u2"));
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  Work laptop "), "Work laptop");
        assert_eq!(clean_name(""), "Passkey");
        assert_eq!(clean_name("\u{202e}evil"), "Passkey");
        assert_eq!(clean_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn an_ip_issuer_turns_passkeys_off() {
        let c = Config {
            issuer: "http://127.0.0.1:8080".into(),
            ..Config::default()
        };
        assert!(!Passkeys::new(&c).unwrap().enabled());
        let c = Config {
            issuer: "https://id.example.com".into(),
            webauthn_origins: vec!["https://app.example.com".into()],
            ..Config::default()
        };
        assert!(Passkeys::new(&c).unwrap().enabled());
    }
}
