//! PKCE challenge and verifier handling, and scope parsing/narrowing.
#![no_main]

use latchkey::protocol::{pkce, scope::Scope};
use libfuzzer_sys::fuzz_target;

// base64url(SHA-256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")), RFC 7636 appendix B.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = pkce::validate_challenge(Some(s), Some("S256"));
    assert!(pkce::validate_challenge(Some(s), Some("plain")).is_err());
    if pkce::verify(s, CHALLENGE) {
        assert_eq!(s, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    }
    let _ = Scope::parse(s);
    let allowed = ["openid", "profile", "api:read"];
    if let Ok(granted) = Scope::narrow(Some(s), allowed.iter().copied()) {
        for g in granted.iter() {
            assert!(allowed.contains(&g), "scope {g:?} widened");
        }
    }
});
