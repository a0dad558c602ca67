//! Token/introspection/revocation request parsing: the form body (duplicates, limits,
//! percent-decoding) and client authentication from the `Authorization` header (Basic with
//! form-urlencoded credentials, or none) combined with body credentials.
//! Input: first byte = length of the Authorization header value, then the header, then the body.
#![no_main]

use latchkey::protocol::client_auth;
use latchkey::protocol::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize).min(rest.len());
    let (header, body) = rest.split_at(n);
    let Ok(params) = Params::parse(body) else {
        return;
    };
    // Known parameters are never repeated in what the parser accepted.
    for key in ["grant_type", "code", "client_id", "client_secret", "refresh_token"] {
        assert!(params.get_all(key).count() <= 1, "{key} repeated");
    }
    let header = if header.is_empty() { None } else { Some(header) };
    if let Ok(presented) = client_auth::presented(header, &params) {
        assert!(!presented.client_id().is_empty());
    }
});
