//! Random tokens from the OS CSPRNG, SHA-256 token hashes and argon2id password hashes.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng;
use rand::rngs::SysRng;

/// `n` bytes from the operating system's CSPRNG, base64url without padding.
/// `n` bytes from the OS CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // As in `random_token`: no predictable fallback.
    #[allow(clippy::expect_used)]
    SysRng
        .try_fill_bytes(&mut buf)
        .expect("operating system RNG failed");
    buf
}

pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The OS RNG failing is not recoverable: refusing to mint a predictable token is the only
    // safe answer, and it never depends on request input.
    #[allow(clippy::expect_used)]
    SysRng
        .try_fill_bytes(&mut buf)
        .expect("operating system RNG failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A 128-bit identifier (client ids, user ids) as 32 lowercase hex digits.
///
/// Identifiers are typed into shells (`latchkey client disable <id>`), so unlike
/// [`random_token`] they never start with `-` and contain no characters a shell or an
/// argument parser treats specially.
pub fn random_id() -> String {
    let mut buf = [0u8; 16];
    #[allow(clippy::expect_used)]
    SysRng
        .try_fill_bytes(&mut buf)
        .expect("operating system RNG failed");
    let mut out = String::with_capacity(32);
    for b in buf {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// 256-bit secrets and tokens (client secrets, codes, refresh tokens).
pub fn new_secret() -> String {
    random_token(32)
}

/// base64url(SHA-256(value)): how high-entropy secrets and tokens are stored.
pub fn hash_token(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, value.as_bytes()))
}

/// Compares `presented` with a stored [`hash_token`] value in constant time.
pub fn verify_token_hash(presented: &str, stored_hash: &str) -> bool {
    use subtle::ConstantTimeEq;
    let h = hash_token(presented);
    h.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// OWASP password storage recommendation: argon2id, m = 19 MiB, t = 2, p = 1.
pub const OWASP_ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const OWASP_ARGON2_ITERATIONS: u32 = 2;

/// The argon2id cost of new password hashes (`password_hash_memory_kib`,
/// `password_hash_iterations`); verification always uses the cost recorded in the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost {
            memory_kib: OWASP_ARGON2_MEMORY_KIB,
            iterations: OWASP_ARGON2_ITERATIONS,
        }
    }
}

impl PasswordCost {
    /// The argon2 parameters, or why these values are not valid ones.
    pub fn params(self) -> Result<argon2::Params, String> {
        argon2::Params::new(self.memory_kib, self.iterations, 1, None).map_err(|e| e.to_string())
    }
}

fn argon2() -> Argon2<'static> {
    argon2_with(PasswordCost::default()).unwrap_or_default()
}

fn argon2_with(cost: PasswordCost) -> anyhow::Result<Argon2<'static>> {
    let params = cost
        .params()
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

/// argon2id PHC string for a user password, at OWASP's cost.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    hash_password_with(password, PasswordCost::default())
}

/// argon2id PHC string for a user password, at the configured cost.
pub fn hash_password_with(password: &str, cost: PasswordCost) -> anyhow::Result<String> {
    argon2_with(cost)?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

/// Verifies a password against a PHC string. A malformed stored hash verifies as false.
pub fn verify_password(password: &str, phc: &str) -> bool {
    argon2().verify_password(password.as_bytes(), phc).is_ok()
}

/// A PHC string for a random password: verifying against it costs what a real check costs,
/// so an unknown username takes as long as a wrong password.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&new_secret()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_hex_and_never_look_like_an_option() {
        for _ in 0..2000 {
            let id = super::random_id();
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        assert_ne!(super::random_id(), super::random_id());
    }

    use super::*;

    #[test]
    fn secrets_are_256_bits_and_distinct() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn token_hash_verifies_only_the_same_value() {
        let s = new_secret();
        let h = hash_token(&s);
        assert!(verify_token_hash(&s, &h));
        assert!(!verify_token_hash(&new_secret(), &h));
        assert!(!verify_token_hash("", &h));
    }

    #[test]
    fn password_round_trip_and_wrong_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a phc string"));
    }
}
