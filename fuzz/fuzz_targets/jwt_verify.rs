//! latchkey-verify's synchronous verification of an untrusted token string against a fixed
//! JWKS (seeds: real Latchkey access tokens signed by that JWKS's ES256 key).
#![no_main]

use std::sync::OnceLock;

use latchkey_verify::Verifier;
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        Verifier::builder("http://127.0.0.1:18181", "https://api.example.test")
            .build_static(include_bytes!("../seeds/jwks.json"))
            .expect("seed JWKS")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(claims) = verifier().verify_cached(token) {
        // Only an untampered token signed by the seed key can verify.
        assert_eq!(claims.iss, "http://127.0.0.1:18181");
    }
    let _ = latchkey_verify::token_from_authorization(token);
});
