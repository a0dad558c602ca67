//! Protocol logic (RFC 6749, 7636, 8707, 9068, OIDC): decides; never touches HTTP or SQL.
//! Functions take `now` (unix seconds) from the caller.

pub mod account;
pub mod admin;
pub mod attestation;
pub mod audience;
pub mod audit;
pub mod authorize;
pub mod backchannel;
pub mod client_assertion;
pub mod client_auth;
pub mod client_keys;
pub mod clients;
pub mod console;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod grants;
pub mod introspect;
pub mod login;
pub mod mtls;
pub mod par;
pub mod params;
pub mod pkce;
pub mod redirect_uri;
pub mod registration;
pub mod request_object;
pub mod scope;
pub mod signins;
pub mod slot_token;
pub mod token;

pub mod tokens;

use std::sync::Arc;

use crate::config::Config;
use crate::keys::KeyRing;
use crate::store::Store;

/// What protocol code needs from the rest of the server.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: Arc<KeyRing>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Caps on audit entries that anyone can cause at will.
    pub audit_limits: Arc<audit::Limits>,
    /// The outbound HTTP client (SSRF-guarded): `jwks_uri` fetches, back-channel logout.
    pub outbound: crate::outbound::Fetcher,
    /// Clients' public keys fetched from their `jwks_uri`, cached.
    pub client_keys: Arc<client_keys::ClientKeys>,
    /// RFC 8705 `tls_client_auth`: the CAs of `tls_client_ca` (none: no PKI client can
    /// authenticate).
    pub mtls: mtls::Trust,
    /// The WebAuthn relying party (off when the issuer's host is an IP address).
    pub passkeys: Arc<login::passkey::Passkeys>,
    /// App attestation's platform roots and Android revocation list.
    pub attestation: Arc<attestation::Trust>,
}
