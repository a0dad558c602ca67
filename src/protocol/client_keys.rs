//! A client's public keys (RFC 7591 §2): registered by value (`jwks`) or by reference
//! (`jwks_uri`), used by `private_key_jwt` (RFC 7523) and signed request objects (RFC 9101).
//!
//! A `jwks_uri` is fetched through [`crate::outbound`] (https, public addresses only, no
//! redirects, 5 s, [`MAX_BYTES`]), must hold a JWK set that passes the same checks as `jwks`
//! metadata, and is cached per replica for [`TTL`]. A JWT whose key is not in the cached set
//! (the client rotated its keys) fetches the set again, at most once per [`MIN_REFETCH`]; a
//! failed fetch is not retried for [`FAILURE_TTL`]. So however many assertions an attacker
//! sends, one URI costs at most one outbound request per [`MIN_REFETCH`], and concurrent
//! requests for one URI share one fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};

use super::client_assertion;
use crate::model::Client;
use crate::outbound::Fetcher;

/// How long a fetched key set is used before it is fetched again.
pub const TTL: Duration = Duration::from_secs(300);
/// A JWT naming a key the cached set lacks refetches the set at most this often.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// A failed fetch is not retried sooner than this.
pub const FAILURE_TTL: Duration = Duration::from_secs(10);
/// Largest `jwks_uri` document accepted.
pub const MAX_BYTES: usize = 64 * 1024;
/// Distinct URIs cached; beyond it the cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
struct Slot {
    fetched_at: Option<Instant>,
    /// The checked JWK set as JSON, or why it could not be had.
    result: Option<Result<Arc<str>, String>>,
}

pub struct ClientKeys {
    fetcher: Fetcher,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl ClientKeys {
    pub fn new(fetcher: Fetcher) -> ClientKeys {
        ClientKeys {
            fetcher,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The registered key that must have signed `jwt` for `client`, and its algorithm (see
    /// [`client_assertion::client_key`]); the error is a cause for the log.
    pub async fn key_for(
        &self,
        client: &Client,
        jwt: &str,
    ) -> Result<(DecodingKey, Algorithm), String> {
        self.find(client, |set| client_assertion::client_key(jwt, set))
            .await
    }

    /// RFC 8705 §2.2 `self_signed_tls_client_auth`: whether `leaf` (DER) is one of the
    /// certificates the client registered (`x5c` of a key in its `jwks` or `jwks_uri`).
    pub async fn has_certificate(&self, client: &Client, leaf: &[u8]) -> Result<(), String> {
        self.find(client, |set| super::mtls::registered_certificate(set, leaf))
            .await
    }

    /// Applies `pick` to the client's key set: registered, or fetched from its `jwks_uri`
    /// (cached; fetched again once, at most every [`MIN_REFETCH`], when `pick` finds nothing
    /// in the cached set: perhaps the client added a key since).
    async fn find<T>(
        &self,
        client: &Client,
        pick: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Result<T, String> {
        if let Some(jwks) = &client.jwks {
            return pick(jwks).map_err(String::from);
        }
        let Some(uri) = &client.jwks_uri else {
            return Err("the client has no registered keys".into());
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() >= MAX_ENTRIES && !slots.contains_key(uri) {
                slots.clear();
            }
            slots.entry(uri.clone()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        let fresh = match (&slot.fetched_at, &slot.result) {
            (Some(at), Some(Ok(_))) => at.elapsed() < TTL,
            (Some(at), Some(Err(_))) => at.elapsed() < FAILURE_TTL,
            _ => false,
        };
        if !fresh {
            self.refetch(uri, &mut slot).await;
        }
        let first = match &slot.result {
            Some(Ok(set)) => pick(set),
            Some(Err(cause)) => return Err(format!("jwks_uri: {cause}")),
            None => return Err("jwks_uri: not fetched".into()),
        };
        match first {
            Ok(k) => Ok(k),
            Err(e)
                if slot
                    .fetched_at
                    .is_some_and(|at| at.elapsed() >= MIN_REFETCH) =>
            {
                self.refetch(uri, &mut slot).await;
                match &slot.result {
                    Some(Ok(set)) => pick(set).map_err(String::from),
                    Some(Err(cause)) => Err(format!("jwks_uri: {cause}")),
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn refetch(&self, uri: &str, slot: &mut Slot) {
        let result = match self.fetcher.get_json(uri, MAX_BYTES).await {
            Ok(body) => match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) => client_assertion::check_jwks(&v)
                    .map(Arc::from)
                    .map_err(String::from),
                Err(_) => Err("the document is not JSON".into()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(cause) = &result {
            tracing::warn!(%uri, %cause, "could not fetch a client's jwks_uri");
        }
        slot.fetched_at = Some(Instant::now());
        slot.result = Some(result);
    }
}
