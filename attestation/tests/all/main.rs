//! Tests of latchkey-attestation: real device fixtures, synthetic chains and tokens, garbage.
//! One test binary (one link) with a module per area.

mod android_real;
mod android_synthetic;
mod apple_real;
mod apple_synthetic;
mod common;
mod garbage;
mod play_integrity;
mod refusal;
