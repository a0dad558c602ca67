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
        /// Also a desktop build: the RFC 8252 §7.3 loopback redirect (any port).
        desktop: bool,
    },
    /// A backend service (confidential, client_credentials) for these API audiences.
    Service {
        name: &'a str,
        audiences: Vec<&'a str>,
    },
    /// A resource API: its audience (the URI access tokens name in `aud`) and the scopes it
    /// defines. Registered as a confidential client of its own, for token introspection.
    ResourceApi {
        name: &'a str,
        audience: &'a str,
        scopes: Vec<&'a str>,
    },
    /// A browser app (public, code + PKCE, no secret): its https redirect, and the origins
    /// whose pages call the token endpoint (CORS).
    Spa {
        name: &'a str,
        redirect_uri: &'a str,
        origins: Vec<&'a str>,
    },
}

/// The loopback redirect of a desktop build (any port is accepted, RFC 8252 §7.3).
pub const LOOPBACK_REDIRECT: &str = "http://127.0.0.1/oauth2redirect";

/// An API scope: `api:read`, `notes.write` (letters, digits and `:._-`, 1 to 64 bytes).
fn valid_scope(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'))
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
            desktop,
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
            if *desktop {
                redirects.push(LOOPBACK_REDIRECT.to_owned());
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
        NewApp::ResourceApi {
            name,
            audience,
            scopes,
        } => {
            if scopes.is_empty() || !scopes.iter().all(|s| valid_scope(s)) {
                return Err(OAuthError::invalid_request(
                    "name the API's scopes, like api:read api:write",
                ));
            }
            Ok(json!({
                "client_name": name,
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
                "audience": [audience],
                "scope": scopes.join(" "),
            }))
        }
        NewApp::Spa {
            name,
            redirect_uri,
            origins,
        } => Ok(json!({
            "client_name": name,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [redirect_uri],
            "allowed_origins": origins,
            "scope": "openid profile email offline_access",
        })),
    }
}

/// Whether the console may change or delete this client: not the server's own clients (the
/// console and the account pages), which it re-creates at start-up.
pub fn built_in(client_id: &str) -> bool {
    client_id == CLIENT_ID || client_id == super::account::CLIENT_ID
}

/// The edit form's fields applied to a client's RFC 7591 metadata (the rest is kept: an
/// update replaces the whole registration, RFC 7592 §2.2).
pub struct Edit<'a> {
    pub name: &'a str,
    /// One per line.
    pub redirect_uris: &'a str,
    pub scope: &'a str,
    /// Space- or line-separated.
    pub audiences: &'a str,
    pub allowed_origins: &'a str,
    pub dpop: bool,
    pub require_mfa: bool,
}

pub fn edited(current: &Value, e: &Edit<'_>) -> Value {
    let list = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let mut m = current.clone();
    m["client_name"] = json!(e.name.trim());
    m["redirect_uris"] = json!(list(e.redirect_uris));
    m["scope"] = json!(e.scope.split_whitespace().collect::<Vec<_>>().join(" "));
    m["audience"] = json!(list(e.audiences));
    m["allowed_origins"] = json!(list(e.allowed_origins));
    m["dpop_bound_access_tokens"] = json!(e.dpop);
    m["require_mfa"] = json!(e.require_mfa);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wizard_kinds_register_what_they_say() {
        let native = metadata(&NewApp::Native {
            name: "Notes",
            bundle_id: "com.example.notes",
            https_redirect: Some("https://notes.example.com/cb"),
            desktop: true,
        })
        .expect("native");
        assert_eq!(
            native["redirect_uris"],
            json!([
                "com.example.notes:/oauth2redirect",
                "https://notes.example.com/cb",
                LOOPBACK_REDIRECT
            ])
        );
        assert_eq!(native["token_endpoint_auth_method"], "none");
        assert_eq!(native["dpop_bound_access_tokens"], true);
        let api = NewApp::ResourceApi {
            name: "Notes API",
            audience: "https://api.example.com",
            scopes: vec!["notes:read", "notes:write"],
        };
        let api = metadata(&api).expect("api");
        assert_eq!(api["audience"], json!(["https://api.example.com"]));
        assert_eq!(api["scope"], "notes:read notes:write");
        for bad in [vec![], vec!["has space"], vec!["a\"b"]] {
            let r = metadata(&NewApp::ResourceApi {
                name: "x",
                audience: "https://api.example.com",
                scopes: bad,
            });
            assert!(r.is_err());
        }
        let spa = metadata(&NewApp::Spa {
            name: "Web",
            redirect_uri: "https://web.example.com/cb",
            origins: vec!["https://web.example.com"],
        })
        .expect("spa");
        assert_eq!(spa["allowed_origins"], json!(["https://web.example.com"]));
        assert!(built_in(CLIENT_ID) && built_in("latchkey-account") && !built_in("x"));
    }

    #[test]
    fn an_edit_keeps_what_the_form_does_not_show() {
        let current = json!({ "client_name": "a", "grant_types": ["client_credentials"], "jwks_uri": "https://k" });
        let e = Edit {
            name: " b ",
            redirect_uris: "https://x/cb\r\n  https://y/cb ",
            scope: " api:read   api:write ",
            audiences: "https://api",
            allowed_origins: "",
            dpop: false,
            require_mfa: true,
        };
        let m = edited(&current, &e);
        assert_eq!(m["client_name"], "b");
        assert_eq!(m["redirect_uris"], json!(["https://x/cb", "https://y/cb"]));
        assert_eq!(m["scope"], "api:read api:write");
        assert_eq!(m["grant_types"], json!(["client_credentials"]));
        assert_eq!(m["jwks_uri"], "https://k");
        assert_eq!(m["require_mfa"], true);
    }

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
