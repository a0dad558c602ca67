//! Scope values (RFC 6749 §3.3): space-delimited, case-sensitive tokens of NQCHAR.

use super::error::{ErrorCode, OAuthError, OAuthResult};

/// A validated, de-duplicated scope set in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    pub fn parse(s: &str) -> OAuthResult<Scope> {
        let mut out: Vec<String> = Vec::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            // scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "scope contains invalid characters",
                ));
            }
            if !out.iter().any(|t| t == token) {
                out.push(token.to_owned());
            }
        }
        Ok(Scope(out))
    }

    /// The requested scope if every value is allowed; otherwise `invalid_scope`.
    /// No requested scope means the whole allowed set (RFC 6749 §3.3 default).
    pub fn narrow<'a>(
        requested: Option<&str>,
        allowed: impl Iterator<Item = &'a str> + Clone,
    ) -> OAuthResult<Scope> {
        let Some(requested) = requested else {
            return Ok(Scope(allowed.map(str::to_owned).collect()));
        };
        let scope = Scope::parse(requested)?;
        // The description never repeats the value: it is the caller's raw input, and an
        // authorization error carries it to the redirect URI and the user's browser.
        if scope
            .0
            .iter()
            .any(|s| !allowed.clone().any(|a| a == s.as_str()))
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "a requested scope is not allowed for this client",
            ));
        }
        Ok(scope)
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.iter().any(|t| t == s)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_refuses_widening() {
        let allowed = ["a", "b"];
        assert_eq!(
            Scope::narrow(Some("b"), allowed.iter().copied())
                .unwrap()
                .to_string(),
            "b"
        );
        assert_eq!(
            Scope::narrow(None, allowed.iter().copied())
                .unwrap()
                .to_string(),
            "a b"
        );
        let e = Scope::narrow(Some("a c"), allowed.iter().copied()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
    }

    #[test]
    fn invalid_characters_are_refused() {
        assert_eq!(
            Scope::parse("a\"b").unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            Scope::parse("a\\b").unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert_eq!(Scope::parse("é").unwrap_err().code, ErrorCode::InvalidScope);
        assert_eq!(Scope::parse("  a  a b ").unwrap().to_string(), "a b");
    }
}
