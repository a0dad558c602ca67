//! latchkey-verify's JWKS parsing: any bytes as a JWKS document must give a verifier or an
//! error, never a panic; a verifier built from garbage never accepts a token.
#![no_main]

use latchkey_verify::Verifier;
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = include_str!("../corpus/jwt_verify/token1");

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Verifier::builder("http://127.0.0.1:18181", "https://api.example.test")
        .build_static(data)
    {
        let _ = v.verify_cached(TOKEN);
    }
});
