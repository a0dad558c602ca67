//! Offline verification of Latchkey access tokens (RFC 9068 JWTs) for resource servers.
//!
//! See the README for the JWKS caching rules, the RFC 6750 error mapping and the features
//! (`actix`, on by default; `tls`, opt-in).
//!
//! ```no_run
//! # async fn run() -> Result<(), latchkey_verify::SetupError> {
//! use latchkey_verify::Verifier;
//!
//! // Discovery, JWKS fetch and key parsing happen once, here.
//! let verifier = Verifier::from_issuer("https://login.example.com", "https://api.example.com").await?;
//!
//! # let token = "";
//! match verifier.verify(token).await {
//!     Ok(claims) if claims.has_scope("api:read") => println!("hello {}", claims.sub),
//!     Ok(_) => println!("403: insufficient_scope"),
//!     Err(e) => println!("{}: WWW-Authenticate: {}", e.status(), e.www_authenticate()),
//! }
//! # Ok(()) }
//! ```
//!
//! What a token must satisfy, in order (the first failure is reported):
//! 1. compact JWS with three parts, at most [`MAX_TOKEN_LEN`] bytes;
//! 2. header `alg` is an asymmetric algorithm (never `none`, never HMAC); no `crit`;
//!    `typ` is `at+jwt` (or `application/at+jwt`) unless [`TokenType::AllowJwt`] is configured;
//! 3. header `kid` names a key of the JWKS, and the key's algorithm equals the header `alg`
//!    (the algorithm always comes from the key, never from the token);
//! 4. the signature verifies;
//! 5. claims `iss sub aud exp iat jti client_id` are present with the right types, `iss` equals the
//!    issuer exactly, `aud` (string or array) contains the audience, `exp`/`nbf`/`iat` hold with
//!    the configured leeway;
//! 6. the token carries no `cnf` (a DPoP- or mTLS-bound token presented as a bearer token is
//!    refused with [`VerifyError::SenderConstrained`]).
//!
//! DPoP-bound tokens (RFC 9449) are checked with their proof by [`Verifier::verify_dpop`]
//! (and by the actix-web extractor for `Authorization: DPoP`): the token as above but carrying
//! `cnf.jkt`, and a proof for this method and URL, signed by that key, with `ath`, recent, and
//! never seen before (a bounded, lock-free replay cache).
//!
//! Scopes are checked by the caller: [`Claims::require_scopes`], or the actix-web
//! [`actix::RequireScope`] guard.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![warn(missing_docs)]

mod bearer;
mod claims;
mod dpop;
mod error;
mod http;
mod jwks;
mod replay;
mod verifier;

#[cfg(feature = "actix")]
pub mod actix;

pub use bearer::{Scheme, access_token, bearer_token, token_from_authorization};
pub use claims::{Attestation, Audience, Claims, Confirmation};
pub use dpop::{DEFAULT_DPOP_ALGORITHMS, DpopRequest, normalize_htu};
pub use error::{SetupError, VerifyError};
pub use verifier::{
    DEFAULT_DPOP_MAX_AGE, DEFAULT_DPOP_REPLAY_CAPACITY, DEFAULT_LEEWAY, DEFAULT_REFETCH_COOLDOWN,
    MAX_TOKEN_LEN, TokenType, Verifier, VerifierBuilder,
};
