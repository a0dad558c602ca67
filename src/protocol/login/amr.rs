//! What a sign-in proved: the RFC 8176 `amr` values a session records, and the `acr` level
//! (OIDC Core §2) derived from them, which `acr_values`, a client's `require_mfa` and the
//! server's `require_mfa` ask for.
//!
//! | sign-in | `amr` | `acr` |
//! |---|---|---|
//! | password | `pwd` | `pwd` |
//! | password + authenticator app code | `pwd otp mfa` | `mfa` |
//! | password + recovery code | `pwd otp mfa` | `mfa` |
//! | passkey (user verified) | `hwk user mfa` (device-bound) or `swk user mfa` (synced) | `phr` |
//!
//! `phr` is the OpenID EAP ACR value "phishing-resistant"; the levels are ordered
//! `pwd` < `mfa` < `phr`, and a higher one satisfies a request for a lower one.

/// The password alone.
pub const PASSWORD: &str = "pwd";
/// A password and a one-time code (authenticator app or recovery code).
pub const PASSWORD_OTP: &str = "pwd otp mfa";

/// A passkey with user verification: `hwk` when the key cannot leave the device (not backup
/// eligible), `swk` when it is a synced passkey.
pub fn passkey(backup_eligible: bool) -> &'static str {
    if backup_eligible {
        "swk user mfa"
    } else {
        "hwk user mfa"
    }
}

/// The `acr_values_supported` of discovery, weakest first.
pub const ACR_VALUES: [&str; 3] = ["pwd", "mfa", "phr"];

/// An authentication level; the order is the strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Acr {
    Pwd,
    Mfa,
    Phr,
}

impl Acr {
    pub fn as_str(self) -> &'static str {
        ACR_VALUES[self as usize]
    }

    pub fn parse(s: &str) -> Option<Acr> {
        match s {
            "pwd" => Some(Acr::Pwd),
            "mfa" => Some(Acr::Mfa),
            "phr" => Some(Acr::Phr),
            _ => None,
        }
    }

    /// The level a sign-in with these `amr` values (space-separated) reached.
    pub fn of(amr: &str) -> Acr {
        let has = |m: &str| amr.split(' ').any(|a| a == m);
        if has("hwk") || has("swk") {
            Acr::Phr
        } else if has("mfa") {
            Acr::Mfa
        } else {
            Acr::Pwd
        }
    }

    /// The least level that satisfies `acr_values` (OIDC Core §3.1.2.1, space-separated, in
    /// order of preference): the weakest one this server knows; `None` when it names none
    /// of ours (the request is then not constrained by it).
    pub fn requested(acr_values: &str) -> Option<Acr> {
        acr_values.split(' ').filter_map(Acr::parse).min()
    }
}

/// The `amr` claim: the space-separated values as a JSON array.
pub fn claim(amr: &str) -> Vec<&str> {
    amr.split(' ').filter(|a| !a.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_methods() {
        assert_eq!(Acr::of(PASSWORD), Acr::Pwd);
        assert_eq!(Acr::of(PASSWORD_OTP), Acr::Mfa);
        assert_eq!(Acr::of(passkey(true)), Acr::Phr);
        assert_eq!(Acr::of(passkey(false)), Acr::Phr);
        // A value that only looks like one of ours is not one.
        assert_eq!(Acr::of("pwdmfa"), Acr::Pwd);
        assert!(Acr::Phr > Acr::Mfa && Acr::Mfa > Acr::Pwd);
    }

    #[test]
    fn requested_takes_the_weakest_known_value() {
        assert_eq!(Acr::requested("phr mfa"), Some(Acr::Mfa));
        assert_eq!(Acr::requested("urn:other phr"), Some(Acr::Phr));
        assert_eq!(Acr::requested("urn:other"), None);
        assert_eq!(Acr::requested(""), None);
        assert_eq!(claim("pwd otp mfa"), vec!["pwd", "otp", "mfa"]);
    }
}
