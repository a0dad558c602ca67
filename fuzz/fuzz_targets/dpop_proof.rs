//! DPoP proof checks (RFC 9449 §4.3) as the token endpoint runs them, minus storage: header,
//! `typ`, `alg`, the public `jwk` (private members refused), signature, `htm`, `htu`, `iat`,
//! `ath`; and `htu` normalization on its own, which must agree with latchkey-verify's.
#![no_main]

use latchkey::protocol::dpop::{Expect, check, normalize_htu};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_900_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let expect = Expect {
        method: "POST",
        htu: "http://127.0.0.1:8080/token",
        htu_alias: None,
        access_token: None,
    };
    if let Ok(proof) = check(s, &expect, 60, None, NOW) {
        // Only a correctly signed proof for this request gets here: its key thumbprint is a
        // 43-character base64url SHA-256.
        assert_eq!(proof.jkt.len(), 43);
        assert!(proof.expires_at > NOW);
    }
    let with_token = Expect {
        method: "GET",
        htu: "http://127.0.0.1:8080/userinfo",
        htu_alias: Some("https://mtls.example.com/userinfo"),
        access_token: Some("token"),
    };
    let _ = check(s, &with_token, 60, None, NOW);
    // The token endpoint and latchkey-verify normalize with separate copies: they must agree.
    let n = normalize_htu(s);
    assert_eq!(n, latchkey_verify::normalize_htu(s), "server and latchkey-verify differ");
    if let Some(n) = n {
        assert!(!n.contains('#') && !n.contains('?'), "{n:?}");
        assert_eq!(normalize_htu(&n).as_deref(), Some(n.as_str()), "idempotent");
    }
});
