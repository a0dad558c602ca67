//! One file per grant. Adding a grant: one file, one `GrantType` variant, one match arm in
//! [`crate::protocol::token::exchange`], one test file.

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod refresh_token;
pub mod user_tokens;
