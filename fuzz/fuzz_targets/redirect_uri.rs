//! Redirect URI registration rules and matching (RFC 8252 loopback port rule).
#![no_main]

use latchkey::protocol::redirect_uri::{matches, validate_for_registration};
use libfuzzer_sys::fuzz_target;

const REGISTERED: &[&str] = &[
    "http://127.0.0.1/cb",
    "http://[::1]:8080/cb",
    "com.example.app:/cb",
    "https://app.example.com/cb?x=1",
];

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    let registered: Vec<String> = REGISTERED.iter().map(|s| (*s).to_owned()).collect();
    if matches(&registered, uri) {
        // A match is the registered string itself or a loopback URI differing only by port.
        let exact = REGISTERED.contains(&uri);
        assert!(
            exact || uri.starts_with("http://127.0.0.1:") || uri.starts_with("http://[::1]"),
            "{uri:?} matched"
        );
        assert!(!uri.contains('#'), "{uri:?} with a fragment matched");
    }
    if validate_for_registration(uri).is_ok() {
        assert!(!uri.contains('#'));
        // Anything registrable matches itself.
        assert!(matches(&[uri.to_owned()], uri));
    }
});
