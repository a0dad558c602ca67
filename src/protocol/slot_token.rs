//! Stateless, time-slotted server values that every replica can make and check: DPoP nonces
//! (RFC 9449 §8) and attestation challenges. `base64url(slot ‖ HMAC-SHA256(key, label ‖ slot))`,
//! where `slot` is `now / window` as 8 bytes big-endian and the key is derived from the KEK
//! that all replicas share, one key per purpose.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The value of `slot` for `label`.
pub fn make(key: &hmac::Key, label: &[u8], slot: i64) -> String {
    let slot = slot.to_be_bytes();
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(label);
    ctx.update(&slot);
    let tag = ctx.sign();
    let mut raw = Vec::with_capacity(8 + tag.as_ref().len());
    raw.extend_from_slice(&slot);
    raw.extend_from_slice(tag.as_ref());
    URL_SAFE_NO_PAD.encode(raw)
}

/// The slot of a value made with `key` and `label`, if it is authentic and one of the
/// `accepted` newest slots of `window` seconds at `now` (1: the current slot only).
pub fn slot_of(
    key: &hmac::Key,
    label: &[u8],
    value: &str,
    now: i64,
    window: i64,
    accepted: i64,
) -> Option<i64> {
    if value.len() > 128 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
    if raw.len() != 8 + 32 {
        return None;
    }
    let (slot_bytes, tag) = raw.split_at(8);
    let slot = i64::from_be_bytes(slot_bytes.try_into().ok()?);
    let current = now.div_euclid(window);
    if slot > current || slot <= current - accepted {
        return None;
    }
    let mut msg = Vec::with_capacity(label.len() + 8);
    msg.extend_from_slice(label);
    msg.extend_from_slice(slot_bytes);
    hmac::verify(key, &msg, tag).ok()?;
    Some(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_to_key_label_and_slot() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]);
        let other = hmac::Key::new(hmac::HMAC_SHA256, &[8; 32]);
        let v = make(&key, b"a", 100);
        assert_eq!(slot_of(&key, b"a", &v, 100 * 60, 60, 2), Some(100));
        assert_eq!(slot_of(&key, b"a", &v, 101 * 60 + 59, 60, 2), Some(100));
        assert_eq!(slot_of(&key, b"a", &v, 102 * 60, 60, 2), None, "too old");
        assert_eq!(
            slot_of(&key, b"a", &v, 99 * 60, 60, 2),
            None,
            "from the future"
        );
        assert_eq!(
            slot_of(&key, b"b", &v, 100 * 60, 60, 2),
            None,
            "another label"
        );
        assert_eq!(
            slot_of(&other, b"a", &v, 100 * 60, 60, 2),
            None,
            "another key"
        );
        assert_eq!(slot_of(&key, b"a", "garbage", 100 * 60, 60, 2), None);
    }
}
