//! RFC 7591 client metadata as `/register` and the admin API receive it: JSON into
//! `ClientMetadataRequest`, then the shared client rules (`clients::create`: redirect URIs,
//! grant types, scopes, audiences). Never a panic; a client that passes has only valid
//! redirect URIs and is never an admin client when registered dynamically.
#![no_main]

use latchkey::protocol::clients;
use latchkey::protocol::redirect_uri::validate_for_registration;
use latchkey::protocol::registration::{ClientMetadataRequest, Registrar};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<ClientMetadataRequest>(data) else {
        return;
    };
    for by in [Registrar::Dynamic, Registrar::Admin] {
        let Ok(spec) = req.to_spec(by, None) else {
            continue;
        };
        if let Ok(new) = clients::create(spec, 1_900_000_000) {
            let c = &new.client;
            for uri in &c.redirect_uris {
                assert!(validate_for_registration(uri).is_ok(), "{uri:?} registered");
            }
            if by == Registrar::Dynamic {
                assert!(!c.is_admin && !c.first_party);
            }
        }
    }
});
