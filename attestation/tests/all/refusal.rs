//! The refusal codes are stable, unique, snake_case, and their texts ASCII.

use latchkey_attestation::Refusal;

#[test]
fn codes_are_unique_snake_case_and_texts_ascii() {
    let mut codes = std::collections::HashSet::new();
    for r in Refusal::ALL {
        let code = r.as_str();
        assert!(codes.insert(code), "duplicate {code}");
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
        let text = r.to_string();
        assert!(!text.is_empty() && text.is_ascii(), "{code}: {text}");
        // Usable as an OAuth error_description (RFC 6749: %x20-21 / %x23-5B / %x5D-7E).
        assert!(
            text.bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
            "{text}"
        );
    }
    assert_eq!(Refusal::ALL.len(), 37);
}

#[test]
fn some_codes_are_as_documented() {
    assert_eq!(Refusal::BadCbor.as_str(), "bad_cbor");
    assert_eq!(Refusal::ChainUntrusted.as_str(), "chain_untrusted");
    assert_eq!(
        Refusal::CounterNotIncreasing.as_str(),
        "counter_not_increasing"
    );
    assert_eq!(Refusal::Revoked.as_str(), "revoked");
    assert_eq!(Refusal::VerdictTooOld.as_str(), "verdict_too_old");
}
