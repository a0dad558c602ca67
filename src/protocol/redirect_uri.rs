//! Redirect URIs: what may be registered (RFC 8252 native apps, RFC 9700 §2.1) and how a
//! requested URI matches a registered one (exactly, except the loopback port, RFC 8252 §7.3).

use url::{Host, Url};

use super::error::{ErrorCode, OAuthError, OAuthResult};

/// Checks a URI for registration: absolute, no fragment, and one of
/// `https://…`, `http://` on a loopback IP literal (or `localhost`), or a private-use scheme in
/// reverse-domain form (`com.example.app:/cb`, RFC 8252 §7.1).
pub fn validate_for_registration(uri: &str) -> OAuthResult<()> {
    let bad = |why: &str| {
        OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            format!("redirect URI {uri:?}: {why}"),
        )
    };
    if uri.len() > 2000 {
        return Err(bad("too long"));
    }
    let url = Url::parse(uri).map_err(|_| bad("not an absolute URI"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    if url.username() != "" || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host() {
            Some(Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(Host::Domain("localhost")) => Ok(()),
            _ => Err(bad(
                "http is allowed only for loopback redirects (127.0.0.1 or [::1])",
            )),
        },
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" => {
            Err(bad("scheme not allowed"))
        }
        scheme => {
            if !scheme.contains('.') {
                return Err(bad(
                    "a private-use scheme must be in reverse-domain form, e.g. com.example.app",
                ));
            }
            Ok(())
        }
    }
}

/// Whether `requested` matches one of `registered`: byte-for-byte, or — for an `http` loopback
/// IP literal — equal in everything but the port.
pub fn matches(registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Ok(req) = Url::parse(requested) else {
        return false;
    };
    if req.scheme() != "http" || !is_loopback_ip(&req) {
        return false;
    }
    registered.iter().any(|r| {
        let Ok(reg) = Url::parse(r) else { return false };
        reg.scheme() == "http"
            && is_loopback_ip(&reg)
            && reg.host() == req.host()
            && reg.path() == req.path()
            && reg.query() == req.query()
            && req.fragment().is_none()
            && req.username().is_empty()
            && req.password().is_none()
            // Compare the rest of the string too, so no normalisation difference slips by.
            && strip_port(r) == strip_port(requested)
    })
}

fn is_loopback_ip(u: &Url) -> bool {
    match u.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// `http://127.0.0.1:1234/cb` → `http://127.0.0.1/cb` (string-level, for the loopback rule).
fn strip_port(s: &str) -> String {
    let Some(rest) = s.strip_prefix("http://") else {
        return s.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|i| &authority[..=i])
            .unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    format!("http://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn registration_rules() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app:/cb?x=1",
        ] {
            validate_for_registration(ok).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        }
        for bad in [
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "myapp:/cb",
            "/relative",
            "https://user:pw@app.example.com/cb",
            "",
        ] {
            let e = validate_for_registration(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRedirectUri, "{bad}");
        }
    }

    #[test]
    fn exact_match_except_loopback_port() {
        let r = reg(&[
            "https://app.example.com/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:9/cb",
            "com.example.app:/cb",
        ]);
        assert!(matches(&r, "https://app.example.com/cb"));
        assert!(matches(&r, "com.example.app:/cb"));
        assert!(matches(&r, "http://127.0.0.1:51234/cb"));
        assert!(matches(&r, "http://127.0.0.1/cb"));
        assert!(matches(&r, "http://[::1]:4000/cb"));
        for no in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com:8443/cb",
            "https://APP.example.com/cb",
            "http://127.0.0.1:51234/cb/extra",
            "http://127.0.0.1:51234/cb?x=1",
            "http://127.0.0.2:51234/cb",
            "http://[::1]:4000/other",
            "http://localhost:4000/cb",
            "com.example.app:/cb2",
            "https://app.example.com/cb#x",
            "http://127.0.0.1:1/cb#x",
            "http://user@127.0.0.1:1/cb",
        ] {
            assert!(!matches(&r, no), "{no}");
        }
    }
}
