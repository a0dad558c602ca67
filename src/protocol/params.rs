//! Request parameters from an `application/x-www-form-urlencoded` body or query string.
//! RFC 6749 §3.1/§3.2: parameters sent without a value are treated as omitted, and a
//! parameter must not be included more than once (except those the RFCs let repeat).

use super::error::{OAuthError, OAuthResult};

/// Parameters that may legitimately repeat (RFC 8707 `resource`).
const REPEATABLE: &[&str] = &["resource"];
/// Parameters Latchkey understands: only these are checked for repetition; unknown ones are
/// ignored, as RFC 6749 §3.1/§3.2 require.
const KNOWN: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "refresh_token",
    "scope",
    "token",
    "token_type_hint",
    "response_type",
    "response_mode",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "acr_values",
    "request",
    "request_uri",
    "username",
    "password",
    "csrf",
    "decision",
    "id_token_hint",
    "post_logout_redirect_uri",
];
/// Longest value accepted for any single parameter.
pub const MAX_VALUE_LEN: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(input: &[u8]) -> OAuthResult<Params> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        // Keys seen so far: the duplicate check stays linear in the number of parameters
        // (a body of thousands of tiny parameters must not cost quadratic time).
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(input) {
            if v.is_empty() {
                continue;
            }
            if v.len() > MAX_VALUE_LEN || k.len() > 256 {
                return Err(OAuthError::invalid_request(
                    "a request parameter is too long",
                ));
            }
            if !REPEATABLE.contains(&k.as_ref()) && !seen.insert(k.clone().into_owned()) {
                match KNOWN.iter().find(|known| **known == k) {
                    Some(known) => {
                        return Err(OAuthError::invalid_request(format!(
                            "parameter '{known}' is repeated"
                        )));
                    }
                    // Unknown parameters are ignored (RFC 6749 §3.2), repeated or not.
                    None => continue,
                }
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params { pairs })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn require(&self, key: &'static str) -> OAuthResult<&str> {
        self.get(key)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter '{key}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::ErrorCode;

    #[test]
    fn empty_values_are_omitted() {
        let p = Params::parse(b"a=&b=1&a=2").unwrap();
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), Some("1"));
    }

    #[test]
    fn duplicates_are_refused_except_resource() {
        let e = Params::parse(b"grant_type=x&grant_type=y").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let p = Params::parse(b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb").unwrap();
        assert_eq!(
            p.get_all("resource").collect::<Vec<_>>(),
            ["https://a", "https://b"]
        );
    }

    #[test]
    fn repeated_unknown_parameters_are_ignored() {
        let p = Params::parse(b"foo=1&foo=2&grant_type=x").unwrap();
        assert_eq!(p.get("foo"), Some("1"));
        assert_eq!(p.get("grant_type"), Some("x"));
    }

    #[test]
    fn bad_encoding_does_not_panic() {
        let p = Params::parse(b"a=%zz%&b=%FF%FE&&=&c").unwrap();
        assert!(p.get("a").is_some());
        let e =
            Params::parse(format!("a={}", "x".repeat(MAX_VALUE_LEN + 1)).as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }
}
