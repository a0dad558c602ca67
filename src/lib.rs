//! Latchkey: an OAuth 2.1 / OpenID Connect authorization server for mobile apps and the APIs
//! they call. See ARCHITECTURE.md for the map.

pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod protocol;
pub mod secret;
pub mod store;
pub mod text;
pub mod tls;
