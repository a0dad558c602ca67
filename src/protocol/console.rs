//! The admin console's rules (issue 21): `/console` is a first-party client of this server
//! (`latchkey-console`, created at start-up) that signs admins in through `/authorize` with
//! code + PKCE like any app. Who may use it: an enabled user with the admin role
//! (`latchkey user add --admin`, `latchkey user grant-admin NAME`), re-checked on every
//! request. What it does goes through the same functions as `/admin/v1` (`protocol::admin`),
//! so there is one set of rules; its audit entries name the admin user
//! (`admin:latchkey-console/user:<username>`).

use serde_json::{Value, json};

use super::error::{OAuthError, OAuthResult};
use crate::model::{Client, User};

pub const CLIENT_ID: &str = "latchkey-console";
pub const CALLBACK_PATH: &str = "/console/callback";

/// The built-in client, for `issuer`.
pub fn client(issuer: &str, now: i64) -> Client {
    Client {
        client_id: CLIENT_ID.into(),
        client_name: "Latchkey console".into(),
        redirect_uris: vec![format!("{issuer}{CALLBACK_PATH}")],
        ..super::account::client(issuer, now)
    }
}

/// The admin acting through the console, for `protocol::admin` (its audit actor).
pub fn admin(user: &User, ip: Option<std::net::IpAddr>) -> super::admin::Admin {
    super::admin::Admin {
        client_id: CLIENT_ID.into(),
        ip,
        user: Some(user.username.clone()),
    }
}

/// What the "new app" wizard asks for, per kind.
pub enum NewApp<'a> {
    /// An iOS or Android app (public, code + PKCE, DPoP on): its name and bundle id or
    /// package name, and an optional claimed https redirect.
    Native {
        name: &'a str,
        bundle_id: &'a str,
        https_redirect: Option<&'a str>,
    },
    /// A backend service (confidential, client_credentials) for these API audiences.
    Service {
        name: &'a str,
        audiences: Vec<&'a str>,
    },
}

/// A bundle id or package name: dot-separated, letters, digits, `-` and `_`, at least two parts.
pub fn valid_bundle_id(id: &str) -> bool {
    id.len() <= 200
        && id.split('.').count() >= 2
        && id.split('.').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// The private-use redirect RFC 8252 §7.1 suggests for a bundle id: the reversed domain as the
/// scheme (`com.example.app:/oauth2redirect`). Schemes are lower case.
pub fn private_use_redirect(bundle_id: &str) -> String {
    format!(
        "{}:/oauth2redirect",
        bundle_id.to_ascii_lowercase().replace('_', "-")
    )
}

/// The RFC 7591 metadata the wizard registers (through `admin::create_client`).
pub fn metadata(app: &NewApp<'_>) -> OAuthResult<Value> {
    match app {
        NewApp::Native {
            name,
            bundle_id,
            https_redirect,
        } => {
            if !valid_bundle_id(bundle_id) {
                return Err(OAuthError::invalid_request(
                    "the bundle id must look like com.example.app",
                ));
            }
            let mut redirects = vec![private_use_redirect(bundle_id)];
            if let Some(h) = https_redirect.filter(|h| !h.is_empty()) {
                redirects.push((*h).to_owned());
            }
            Ok(json!({
                "client_name": name,
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": redirects,
                "scope": "openid profile email offline_access",
                "dpop_bound_access_tokens": true,
            }))
        }
        NewApp::Service { name, audiences } => Ok(json!({
            "client_name": name,
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "audience": audiences,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_ids_and_their_redirects() {
        assert!(valid_bundle_id("com.example.App"));
        assert!(!valid_bundle_id("example"));
        assert!(!valid_bundle_id("com..app"));
        assert!(!valid_bundle_id("com.example/app"));
        assert_eq!(
            private_use_redirect("com.Example.my_app"),
            "com.example.my-app:/oauth2redirect"
        );
    }
}
