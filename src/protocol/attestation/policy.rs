//! A client's attestation policy (stored as JSON in `clients.attestation`), its validation, and
//! the verifier policies of `latchkey-attestation` it becomes.

use latchkey_attestation::TrustAnchor;
use latchkey_attestation::android::{AndroidPolicy, SecurityLevel};
use latchkey_attestation::apple::ApplePolicy;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Trust;

/// Most entries in each list of a policy.
const MAX_ENTRIES: usize = 20;
/// Longest PEM text of private trust roots.
const MAX_ROOTS_PEM: usize = 32 * 1024;

/// `attestation.mode`: whether the client authenticates with a client attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No attestation: `OAuth-Client-Attestation` headers are refused.
    #[default]
    Off,
    /// Token and PAR requests may carry a client attestation; tokens then say so (`att`).
    Optional,
    /// Every token and PAR request must carry a client attestation (`invalid_client` without).
    Required,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Optional => "optional",
            Mode::Required => "required",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Off, Mode::Optional, Mode::Required]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The weakest Android key storage accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AndroidLevel {
    Software,
    #[default]
    Tee,
    Strongbox,
}

impl AndroidLevel {
    fn security_level(self) -> SecurityLevel {
        match self {
            AndroidLevel::Software => SecurityLevel::Software,
            AndroidLevel::Tee => SecurityLevel::TrustedEnvironment,
            AndroidLevel::Strongbox => SecurityLevel::StrongBox,
        }
    }
}

/// What a client's attestation must show (admin API member `attestation`; CLI
/// `--attestation*`). Set only by an administrator, never through `/register`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `off`, `optional` or `required`.
    pub mode: Mode,
    /// Apple App IDs (`TEAMID.bundle.identifier`) whose App Attest keys are accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apple_app_ids: Vec<String>,
    /// Android package names accepted in a Key Attestation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub android_packages: Vec<String>,
    /// SHA-256 digests of the app's signing certificate, hex (colons allowed), as the Play
    /// Console shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub android_signing_cert_digests: Vec<String>,
    /// Accept development builds: App Attest's development environment, Android keys in
    /// software, and Android devices whose boot is not verified. Never in production.
    #[serde(default)]
    pub allow_development: bool,
    /// The weakest Android key storage accepted: `software`, `tee` (default) or `strongbox`.
    #[serde(default)]
    pub android_min_security_level: AndroidLevel,
    /// PEM certificates that replace Apple's App Attestation Root CA (a private test PKI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_roots_pem: Option<String>,
    /// PEM certificates that replace Google's hardware attestation roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_roots_pem: Option<String>,
}

fn valid_app_id(id: &str) -> bool {
    // Team ID (10 upper-case letters or digits), a dot, a bundle identifier.
    let Some((team, bundle)) = id.split_once('.') else {
        return false;
    };
    team.len() == 10
        && team
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && !bundle.is_empty()
        && bundle.len() <= 155
        && bundle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn valid_package(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.contains('.')
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        && !p.starts_with('.')
        && !p.ends_with('.')
}

/// `AB:cd:...` or `abcd...` → 64 lower-case hex digits.
fn normalize_digest(d: &str) -> Option<String> {
    let hex: String = d
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

fn decode_hex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .filter_map(|i| h.get(i..i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

fn roots(pem: &str, what: &str) -> Result<Vec<TrustAnchor>, String> {
    if pem.len() > MAX_ROOTS_PEM {
        return Err(format!("{what} is longer than {MAX_ROOTS_PEM} bytes"));
    }
    match TrustAnchor::from_pem(pem) {
        Ok(r) if !r.is_empty() => Ok(r),
        Ok(_) => Err(format!("{what} holds no certificate")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

impl Policy {
    pub fn from_json(json: &str) -> Result<Policy, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The policy in its stored form: digests normalized, every entry checked. An error names
    /// the member.
    pub fn checked(mut self) -> Result<Policy, String> {
        for (list, what) in [
            (&self.apple_app_ids, "apple_app_ids"),
            (&self.android_packages, "android_packages"),
            (
                &self.android_signing_cert_digests,
                "android_signing_cert_digests",
            ),
        ] {
            if list.len() > MAX_ENTRIES {
                return Err(format!("{what} has more than {MAX_ENTRIES} entries"));
            }
        }
        if let Some(bad) = self.apple_app_ids.iter().find(|i| !valid_app_id(i)) {
            return Err(format!(
                "apple_app_ids: {bad:?} is not an App ID (TEAMID.bundle.identifier)"
            ));
        }
        if let Some(bad) = self.android_packages.iter().find(|p| !valid_package(p)) {
            return Err(format!(
                "android_packages: {bad:?} is not an Android package name"
            ));
        }
        let mut digests = Vec::with_capacity(self.android_signing_cert_digests.len());
        for d in &self.android_signing_cert_digests {
            digests.push(normalize_digest(d).ok_or_else(|| {
                "android_signing_cert_digests: each must be a SHA-256 digest in hex (64 digits)"
                    .to_owned()
            })?);
        }
        self.android_signing_cert_digests = digests;
        if self.android_packages.is_empty() != self.android_signing_cert_digests.is_empty() {
            return Err(
                "android_packages and android_signing_cert_digests go together: a package is \
                 accepted only with its signing certificate"
                    .into(),
            );
        }
        if self.mode != Mode::Off
            && self.apple_app_ids.is_empty()
            && self.android_packages.is_empty()
        {
            return Err(
                "an attestation policy that is on needs apple_app_ids or android_packages".into(),
            );
        }
        if let Some(pem) = &self.apple_roots_pem {
            roots(pem, "apple_roots_pem")?;
        }
        if let Some(pem) = &self.android_roots_pem {
            roots(pem, "android_roots_pem")?;
        }
        Ok(self)
    }

    /// The App Attest verifier policy, or `None` when no App ID is allowed.
    pub fn apple(&self, trust: &Trust) -> Option<ApplePolicy> {
        if self.apple_app_ids.is_empty() {
            return None;
        }
        let mut p = ApplePolicy::new(self.apple_app_ids.iter().cloned());
        p.roots = match &self.apple_roots_pem {
            Some(pem) => roots(pem, "apple_roots_pem").ok()?,
            None => trust.apple_roots.clone(),
        };
        p.allow_development = self.allow_development;
        Some(p)
    }

    /// The Key Attestation verifier policy, or `None` when no package is allowed.
    pub fn android(&self, trust: &Trust) -> Option<AndroidPolicy> {
        if self.android_packages.is_empty() {
            return None;
        }
        let digests = self
            .android_signing_cert_digests
            .iter()
            .map(|d| decode_hex(d))
            .collect();
        let mut p = AndroidPolicy::new(self.android_packages.iter().cloned(), digests);
        p.roots = match &self.android_roots_pem {
            Some(pem) => roots(pem, "android_roots_pem").ok()?,
            None => trust.google_roots.clone(),
        };
        p.min_security_level = if self.allow_development {
            SecurityLevel::Software
        } else {
            self.android_min_security_level.security_level()
        };
        p.allow_unverified_boot = self.allow_development;
        p.revocations = trust.revocations.clone();
        Some(p)
    }

    /// Whether an attestation issued earlier for `app` at `level` still satisfies this policy
    /// (an administrator may have removed the app or turned development builds off since).
    pub fn still_allows(&self, app: &str, level: &str) -> bool {
        let app_ok = self.apple_app_ids.iter().any(|a| a == app)
            || self.android_packages.iter().any(|p| p == app);
        let level_ok = match level {
            "development" | "software" | "basic" => self.allow_development,
            "tee" => {
                self.allow_development || self.android_min_security_level != AndroidLevel::Strongbox
            }
            _ => true,
        };
        app_ok && level_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> Policy {
        Policy {
            mode: Mode::Required,
            apple_app_ids: vec!["ABCDE12345.com.example.app".into()],
            ..Policy::default()
        }
    }

    #[test]
    fn app_ids_packages_and_digests_are_checked() {
        assert!(on().checked().is_ok());
        for bad in [
            "com.example.app",
            "abcde12345.com.example",
            "ABCDE12345.",
            "ABCDE1234.x.y",
        ] {
            let p = Policy {
                apple_app_ids: vec![bad.into()],
                ..on()
            };
            assert!(p.checked().is_err(), "{bad}");
        }
        let android = |pkg: &str, digest: &str| Policy {
            mode: Mode::Optional,
            android_packages: vec![pkg.into()],
            android_signing_cert_digests: vec![digest.into()],
            ..Policy::default()
        };
        let colons = ["AB"; 32].join(":");
        let p = android("com.example.app", &colons)
            .checked()
            .expect("valid");
        assert_eq!(p.android_signing_cert_digests, vec!["ab".repeat(32)]);
        assert!(android("com.example.app", "abcd").checked().is_err());
        assert!(android("no dots", &"ab".repeat(32)).checked().is_err());
        let lone = Policy {
            mode: Mode::Optional,
            android_packages: vec!["com.example.app".into()],
            ..Policy::default()
        };
        assert!(
            lone.checked().is_err(),
            "a package needs its signing digest"
        );
    }

    #[test]
    fn a_policy_that_is_on_names_an_app() {
        let p = Policy {
            mode: Mode::Required,
            ..Policy::default()
        };
        assert!(p.checked().is_err());
        let off = Policy::default();
        assert!(off.checked().is_ok());
    }

    #[test]
    fn bad_roots_are_refused() {
        let p = Policy {
            apple_roots_pem: Some("not a certificate".into()),
            ..on()
        };
        assert!(p.checked().is_err());
    }

    #[test]
    fn unknown_members_are_refused() {
        assert!(Policy::from_json(r#"{"mode":"required","app_ids":["x"]}"#).is_err());
        assert!(Policy::from_json(r#"{"mode":"sometimes"}"#).is_err());
        let p = Policy::from_json(r#"{"mode":"optional"}"#).expect("parses");
        assert_eq!(p.mode, Mode::Optional);
        assert_eq!(p.android_min_security_level, AndroidLevel::Tee);
    }

    #[test]
    fn earlier_attestations_follow_the_current_policy() {
        let p = on();
        assert!(p.still_allows("ABCDE12345.com.example.app", "production"));
        assert!(!p.still_allows("ABCDE12345.com.example.app", "development"));
        assert!(!p.still_allows("ZZZZZ12345.com.other", "production"));
        let strict = Policy {
            mode: Mode::Required,
            android_packages: vec!["com.example.app".into()],
            android_signing_cert_digests: vec!["ab".repeat(32)],
            android_min_security_level: AndroidLevel::Strongbox,
            ..Policy::default()
        };
        assert!(strict.still_allows("com.example.app", "strongbox"));
        assert!(
            !strict.still_allows("com.example.app", "tee"),
            "raised minimum"
        );
        assert!(!strict.still_allows("com.example.app", "software"));
        assert!(!strict.still_allows("com.example.app", "basic"));
    }
}
