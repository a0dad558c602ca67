//! App attestation (issue 23): Latchkey as the *client attester* of
//! draft-ietf-oauth-attestation-based-client-auth for its own mobile clients.
//!
//! 1. `POST /attest/challenge` ([`challenge`]) hands out a challenge.
//! 2. `POST /attest` ([`attest`]) verifies an Apple App Attest attestation or assertion, or an
//!    Android Key Attestation chain, that carries the challenge, with `latchkey-attestation`
//!    under the client's [`Policy`], and issues a short-lived client attestation JWT
//!    (`typ: oauth-client-attestation+jwt`) whose `cnf.jwk` is the device key it proved.
//! 3. At `/token` and `/par` the app authenticates with `attest_jwt_client_auth`
//!    ([`client_auth`]): the JWT in `OAuth-Client-Attestation` and a PoP JWT signed by that key in
//!    `OAuth-Client-Attestation-PoP` (audience, challenge, `jti` recorded once on any replica).
//! 4. Access tokens then carry [`Att`] (`att`), which introspection returns and
//!    `latchkey-verify`'s `require_attested()` checks.

pub mod attest;
pub mod challenge;
pub mod client_auth;
pub mod policy;

use latchkey_attestation::TrustAnchor;
use latchkey_attestation::android::RevocationList;
use serde::{Deserialize, Serialize};

pub use client_auth::Presented;
pub use policy::{Mode, Policy};

/// `POST /attest`: the attestation endpoint (advertised as `attestation_endpoint`).
pub const ATTEST_PATH: &str = "/attest";
/// `POST /attest/challenge`: the draft's challenge endpoint (`challenge_endpoint`).
pub const CHALLENGE_PATH: &str = "/attest/challenge";
/// The draft's token endpoint authentication method.
pub const AUTH_METHOD: &str = "attest_jwt_client_auth";

/// The `att` claim of a client attestation JWT and of the access tokens it earns
/// (docs/attestation.md; `latchkey_verify::Attestation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Att {
    /// `ios` or `android`.
    pub platform: String,
    /// `app_attest` or `key_attestation`.
    pub method: String,
    /// `production` / `development` (App Attest); `strongbox` / `tee` / `software` (Android).
    pub level: String,
}

/// Server-wide trust: the platform roots (parsed once) and the Android revocation list
/// (`attestation_android_revocation_list`). A client's policy may replace the roots.
#[derive(Debug, Clone)]
pub struct Trust {
    pub apple_roots: Vec<TrustAnchor>,
    pub google_roots: Vec<TrustAnchor>,
    pub revocations: RevocationList,
}

impl Trust {
    pub fn load(config: &crate::config::Config) -> anyhow::Result<Trust> {
        let revocations = match &config.attestation_android_revocation_list {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!(
                        "attestation_android_revocation_list: cannot read {}: {e}",
                        path.display()
                    )
                })?;
                RevocationList::from_json(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "attestation_android_revocation_list: {}: {e}",
                        path.display()
                    )
                })?
            }
            None => RevocationList::new(),
        };
        Ok(Trust {
            apple_roots: latchkey_attestation::apple::apple_roots(),
            google_roots: latchkey_attestation::android::google_roots(),
            revocations,
        })
    }
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            apple_roots: latchkey_attestation::apple::apple_roots(),
            google_roots: latchkey_attestation::android::google_roots(),
            revocations: RevocationList::new(),
        }
    }
}

/// The client's attestation mode (`Off` without a policy).
pub fn mode(client: &crate::model::Client) -> Mode {
    client.attestation.as_ref().map_or(Mode::Off, |p| p.mode)
}
