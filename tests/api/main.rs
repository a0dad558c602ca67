//! Latchkey's HTTP and CLI integration tests: one binary, each test with its own server on
//! port 0 and its own temporary database and keys (see `helpers.rs`).

mod admin_api;
mod audit;
mod authorize;
mod bad_input;
mod browser;
mod browser_clients;
mod chromium;
mod cli;
mod client_credentials;
mod code_exchange;
mod deploy;
mod disabled;
mod discovery;
mod dpop;
mod hardening;
mod helpers;
mod independent_verifier;
mod jwks;
mod keys;
mod login;
mod logout;
mod metrics;
mod native_app;
mod oidc_client;
mod openid_client;
mod password_change;
mod pg;
mod properties;
mod refresh;
mod registration;
mod replicas;
mod storage;
mod throttling;
mod token_readback;
mod verify_live;
