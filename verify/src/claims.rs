//! The verified claims of an access token (RFC 9068 §2.2).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::VerifyError;

/// The claims of a verified access token.
///
/// A value of this type only comes out of [`crate::Verifier`] after every check passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// Issuer; equals the verifier's issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for client_credentials tokens.
    pub sub: String,
    /// Audience(s); contains the verifier's audience.
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Not before, seconds since the Unix epoch, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Unique token id.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes (empty when the claim is absent). Use [`Claims::scopes`] /
    /// [`Claims::has_scope`] rather than substring tests.
    #[serde(default)]
    pub scope: String,
    /// Time of the end-user authentication, for user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// How strongly the user signed in (OIDC `acr`; Latchkey: `pwd`, `mfa`, `phr`), for user
    /// tokens. Use [`Claims::require_user_authentication`] for RFC 9470 step-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// RFC 8176 methods the sign-in used (`pwd`, `otp`, `mfa`, `hwk`, `swk`, `user`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Confirmation (RFC 7800): present on sender-constrained tokens. Tokens with a `cnf` are
    /// refused by bearer verification, so on a [`Claims`] returned by it this is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// `client_credentials` on a token a client obtained for itself (no user); absent on user
    /// tokens. Use [`Claims::is_client_token`] / [`Claims::user_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gty: Option<String>,
    /// What the calling app proved about itself by platform attestation
    /// (docs/attestation.md): present only when the client authenticated with a client
    /// attestation. Use [`Claims::require_attested`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub att: Option<Attestation>,
}

/// The `att` claim: how the app that holds the token was attested when it got it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Attestation {
    /// `ios` or `android`.
    pub platform: String,
    /// `app_attest` (Apple App Attest), `key_attestation` (Android Key Attestation) or
    /// `play_integrity` (a Play Integrity verdict).
    pub method: String,
    /// The verdict's level: `production` or `development` (App Attest), `strongbox`, `tee` or
    /// `software` (Key Attestation), `strong`, `device` or `basic` (Play Integrity).
    pub level: String,
}

impl Attestation {
    /// Whether this attests an app built for development (an App Attest `development`
    /// environment, or an Android key in software only): not the genuine app from a store.
    pub fn is_development(&self) -> bool {
        matches!(self.level.as_str(), "development" | "software" | "basic")
    }
}

impl Claims {
    /// Whether this token was issued to a client for itself (client_credentials): `sub` is then
    /// the client's id, not a user's. Latchkey marks such tokens with `gty:
    /// "client_credentials"` and `sub` equal to `client_id`; both must hold.
    pub fn is_client_token(&self) -> bool {
        self.gty.as_deref() == Some("client_credentials") && self.sub == self.client_id
    }

    /// The user the token acts for, or `None` for a client's own token: the one safe way to
    /// read `sub` as a user id.
    pub fn user_id(&self) -> Option<&str> {
        (!self.is_client_token()).then_some(self.sub.as_str())
    }

    /// The scopes, split on spaces (RFC 6749 §3.3).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token carries exactly this scope token (no prefix or substring matching).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Whether the token carries every one of these scopes.
    pub fn has_scopes<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required.iter().all(|r| self.has_scope(r.as_ref()))
    }

    /// `Ok` if the token carries every one of these scopes, otherwise
    /// [`VerifyError::InsufficientScope`] (403, `insufficient_scope`) naming them.
    pub fn require_scopes<S: AsRef<str>>(&self, required: &[S]) -> Result<(), VerifyError> {
        if self.has_scopes(required) {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope {
                required: required.iter().map(|s| s.as_ref().to_owned()).collect(),
            })
        }
    }

    /// `Ok` if the token carries this scope, otherwise [`VerifyError::InsufficientScope`].
    pub fn require_scope(&self, required: &str) -> Result<(), VerifyError> {
        self.require_scopes(&[required])
    }

    /// `Ok` with the attestation if the app holding this token proved itself by platform
    /// attestation at a production level (not a development build, not a software-only key,
    /// not a basic Play Integrity verdict); otherwise [`VerifyError::NotAttested`] (403). For
    /// calls that only the genuine app from the store may make. The claim comes from the
    /// signed token, so it cannot be added by the caller.
    pub fn require_attested(&self) -> Result<&Attestation, VerifyError> {
        match &self.att {
            Some(a) if !a.is_development() => Ok(a),
            _ => Err(VerifyError::NotAttested),
        }
    }

    /// RFC 9470 step-up: `Ok` if the user signed in with one of `acr_values` (any, when empty)
    /// and, with `max_age`, at most that many seconds before `now` (Unix seconds); otherwise
    /// [`VerifyError::InsufficientUserAuthentication`], whose `www_authenticate()` tells the
    /// app what to ask the authorization server for. List every level you accept: with
    /// Latchkey, `&["mfa", "phr"]` for "more than a password" (`phr`, a passkey, is stronger
    /// than `mfa`). A client's own token (no user) never passes.
    pub fn require_user_authentication<S: AsRef<str>>(
        &self,
        acr_values: &[S],
        max_age: Option<u64>,
        now: u64,
    ) -> Result<(), VerifyError> {
        let refused = || VerifyError::InsufficientUserAuthentication {
            acr_values: acr_values
                .iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join(" "),
            max_age,
        };
        if self.is_client_token() {
            return Err(refused());
        }
        let level_ok = acr_values.is_empty()
            || self
                .acr
                .as_deref()
                .is_some_and(|a| acr_values.iter().any(|v| v.as_ref() == a));
        let recent = match (max_age, self.auth_time) {
            (None, _) => true,
            (Some(m), Some(t)) => now.saturating_sub(t) <= m,
            (Some(_), None) => false,
        };
        if level_ok && recent {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// Whether `audience` is one of the values.
    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }

    /// The values.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(a) => Audience(vec![a]),
            OneOrMany::Many(v) => Audience(v),
        })
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

/// The `cnf` (confirmation) claim, RFC 7800.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Confirmation {
    /// RFC 9449 (DPoP): SHA-256 JWK thumbprint of the key the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705 (mTLS): SHA-256 thumbprint of the client certificate.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(scope: &str) -> Claims {
        Claims {
            iss: "i".into(),
            sub: "s".into(),
            aud: Audience(vec!["a".into()]),
            exp: 0,
            iat: 0,
            nbf: None,
            jti: "j".into(),
            client_id: "c".into(),
            scope: scope.into(),
            auth_time: None,
            acr: None,
            amr: None,
            cnf: None,
            gty: None,
            att: None,
        }
    }

    #[test]
    fn only_a_production_attestation_passes_require_attested() {
        let none = claims("");
        assert_eq!(none.require_attested(), Err(VerifyError::NotAttested));
        let att = |level: &str| Claims {
            att: Some(Attestation {
                platform: "ios".into(),
                method: "app_attest".into(),
                level: level.into(),
            }),
            ..claims("")
        };
        for level in ["production", "tee", "strongbox", "device", "strong"] {
            assert!(att(level).require_attested().is_ok(), "{level}");
        }
        for level in ["development", "software", "basic"] {
            assert_eq!(
                att(level).require_attested(),
                Err(VerifyError::NotAttested),
                "{level}"
            );
        }
        let e = VerifyError::NotAttested;
        assert_eq!(e.status(), 403);
        assert_eq!(e.error_code(), Some("invalid_client_attestation"));
        assert!(
            e.www_authenticate()
                .contains("error=\"invalid_client_attestation\"")
        );
    }

    #[test]
    #[allow(clippy::panic)]
    fn step_up_needs_the_level_and_a_recent_sign_in() {
        let c = Claims {
            acr: Some("pwd".into()),
            auth_time: Some(1000),
            ..claims("openid")
        };
        let Err(e) = c.require_user_authentication(&["mfa", "phr"], None, 1000) else {
            panic!("a password is not mfa");
        };
        assert_eq!(e.status(), 401);
        assert_eq!(e.error_code(), Some("insufficient_user_authentication"));
        assert_eq!(
            e.www_authenticate(),
            "Bearer error=\"insufficient_user_authentication\", error_description=\"a stronger or more recent sign-in is required\", acr_values=\"mfa phr\""
        );
        let strong = Claims {
            acr: Some("phr".into()),
            ..c.clone()
        };
        assert!(
            strong
                .require_user_authentication(&["mfa", "phr"], None, 5000)
                .is_ok()
        );
        // Too long ago for max_age: refused, and the challenge says max_age.
        let Err(e) = strong.require_user_authentication(&["mfa", "phr"], Some(300), 5000) else {
            panic!("too long ago");
        };
        assert!(
            e.www_authenticate().ends_with("max_age=300"),
            "{}",
            e.www_authenticate()
        );
        assert!(
            strong
                .require_user_authentication::<&str>(&[], Some(300), 1200)
                .is_ok()
        );
        // No acr, or no auth_time with max_age: refused. A client's own token: refused.
        assert!(
            claims("x")
                .require_user_authentication(&["pwd"], None, 0)
                .is_err()
        );
        assert!(
            claims("x")
                .require_user_authentication::<&str>(&[], Some(10), 0)
                .is_err()
        );
        let client = Claims {
            sub: "c".into(),
            gty: Some("client_credentials".into()),
            ..claims("x")
        };
        assert!(
            client
                .require_user_authentication::<&str>(&[], None, 0)
                .is_err()
        );
    }

    #[test]
    fn client_tokens_are_told_from_user_tokens() {
        let user = claims("openid");
        assert!(!user.is_client_token());
        assert_eq!(user.user_id(), Some("s"));
        let client = Claims {
            sub: "c".into(),
            gty: Some("client_credentials".into()),
            ..claims("api:read")
        };
        assert!(client.is_client_token());
        assert_eq!(client.user_id(), None);
        // The marker alone, with a sub that is not the client's, is not a client token.
        let odd = Claims {
            gty: Some("client_credentials".into()),
            ..claims("api:read")
        };
        assert!(!odd.is_client_token());
    }

    #[test]
    fn scope_matching_is_exact() {
        let c = claims("api:readonly  openid api:write");
        assert!(!c.has_scope("api:read"));
        assert!(c.has_scope("api:write"));
        assert!(c.has_scopes(&["openid", "api:write"]));
        assert_eq!(
            c.require_scopes(&["openid", "api:read"]),
            Err(VerifyError::InsufficientScope {
                required: vec!["openid".into(), "api:read".into()]
            })
        );
        assert!(!claims("").has_scope(""));
    }

    #[test]
    fn audience_forms() {
        let one: Audience = serde_json::from_str("\"x\"").unwrap_or_default();
        assert_eq!(one, Audience(vec!["x".into()]));
        let many: Audience = serde_json::from_str("[\"x\",\"y\"]").unwrap_or_default();
        assert!(many.contains("y"));
        assert!(serde_json::from_str::<Audience>("3").is_err());
    }
}
