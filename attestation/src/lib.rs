//! Verification of app attestation for Latchkey: proof that a request comes from a genuine
//! copy of an app, on a genuine device, holding a hardware-backed key.
//!
//! Three verifiers, all pure functions of their input, their policy and `now` (unix seconds;
//! the clock is never read here):
//!
//! - [`apple`]: Apple App Attest attestation objects ([`apple::verify_attestation`]) and
//!   assertions ([`apple::verify_assertion`]).
//! - [`android`]: Android Key Attestation certificate chains
//!   ([`android::verify_key_attestation`]).
//! - [`play_integrity`]: Play Integrity verdict tokens, decrypted and verified locally
//!   ([`play_integrity::verify`]).
//!
//! Every refusal is a [`Refusal`] with a stable code ([`Refusal::as_str`]); no input, however
//! malformed, makes a verifier panic. All cryptography is aws-lc-rs (ECDSA, RSA PKCS #1,
//! SHA-256, AES key wrap, AES-GCM); certificates and the Android KeyDescription are parsed
//! with x509-parser and its DER layer (asn1-rs); App Attest objects with ciborium.
//!
//! ```no_run
//! use latchkey_attestation::apple::{self, ApplePolicy};
//!
//! # fn run(attestation: &[u8], client_data_hash: &[u8], key_id: &[u8], now: i64)
//! #     -> Result<(), latchkey_attestation::Refusal> {
//! let policy = ApplePolicy::new(["ABCDE12345.com.example.app"]);
//! let key = apple::verify_attestation(attestation, client_data_hash, key_id, &policy, now)?;
//! // Store key.public_key and key.counter (0) under key.key_id for later assertions.
//! # Ok(()) }
//! ```
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![warn(missing_docs)]

pub mod android;
pub mod apple;
mod cert;
mod der;
pub mod play_integrity;
mod refusal;

pub use cert::{KeyAlgorithm, MAX_CERT_LEN, MAX_CHAIN_LEN, TrustAnchor};
pub use refusal::{ConfigError, Refusal};
