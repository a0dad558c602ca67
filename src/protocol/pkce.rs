//! RFC 7636 PKCE, S256 only (`plain` is refused: OAuth 2.1, RFC 9700 §2.1.1).

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::error::{OAuthError, OAuthResult};

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Checks `code_challenge` and `code_challenge_method` from an authorization request.
pub fn validate_challenge(challenge: Option<&str>, method: Option<&str>) -> OAuthResult<String> {
    let challenge = challenge.ok_or_else(|| {
        OAuthError::invalid_request("code_challenge is required (PKCE with S256)")
    })?;
    match method {
        Some("S256") => {}
        Some("plain") => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method plain is not allowed: use S256",
            ));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method is required and must be S256",
            ));
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "unsupported code_challenge_method: use S256",
            ));
        }
    }
    // base64url(SHA-256) without padding is exactly 43 characters.
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok(challenge.to_owned())
}

/// Whether `verifier` (43-128 unreserved characters) hashes to `challenge`, in constant time.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert!(verify(VERIFIER, CHALLENGE));
        assert_eq!(
            validate_challenge(Some(CHALLENGE), Some("S256")).unwrap(),
            CHALLENGE
        );
    }

    #[test]
    fn wrong_or_malformed_verifiers_fail() {
        assert!(!verify(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            CHALLENGE
        ));
        assert!(!verify("short", CHALLENGE));
        assert!(!verify(&"a".repeat(129), CHALLENGE));
        assert!(!verify(&format!("{VERIFIER} "), CHALLENGE));
        assert!(!verify(CHALLENGE, CHALLENGE));
    }

    #[test]
    fn plain_and_missing_are_refused() {
        assert!(validate_challenge(Some(CHALLENGE), Some("plain")).is_err());
        assert!(validate_challenge(Some(CHALLENGE), None).is_err());
        assert!(validate_challenge(None, Some("S256")).is_err());
        assert!(validate_challenge(Some("abc"), Some("S256")).is_err());
    }
}
