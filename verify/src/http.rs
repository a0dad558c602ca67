//! HTTP: client construction, URL policy, bounded fetches.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Client, StatusCode, Url, header};

use crate::error::SetupError;

/// Largest discovery or JWKS document accepted.
const MAX_BODY: usize = 1024 * 1024;

/// A fetched document.
pub(crate) struct Fetched {
    pub(crate) body: Vec<u8>,
    pub(crate) cache_control: Option<String>,
}

/// Parses `url` and applies the transport policy: https always; plain http only on a loopback
/// host unless `allow_insecure_http`.
pub(crate) fn checked_url(url: &str, allow_insecure_http: bool) -> Result<Url, SetupError> {
    let parsed = Url::parse(url).map_err(|e| SetupError::InvalidUrl(format!("{url}: {e}")))?;
    match parsed.scheme() {
        "https" => {
            if cfg!(feature = "tls") {
                Ok(parsed)
            } else {
                Err(SetupError::TlsDisabled(url.to_owned()))
            }
        }
        "http" if allow_insecure_http || is_loopback(&parsed) => Ok(parsed),
        "http" => Err(SetupError::InsecureUrl(url.to_owned())),
        _ => Err(SetupError::InvalidUrl(format!(
            "{url}: scheme must be https or http"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The default client: no redirects (the issuer's URLs are exact), bounded timeouts, no idle
/// connections kept, and for
/// https rustls with the aws-lc-rs provider and the operating system's root certificates.
pub(crate) fn default_client(timeout: Duration) -> Result<Client, SetupError> {
    let builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        // JWKS fetches are minutes apart: a pooled connection would only go stale, or outlive
        // the runtime (e.g. an actix worker) it was opened on.
        .pool_max_idle_per_host(0)
        .user_agent(concat!("latchkey-verify/", env!("CARGO_PKG_VERSION")));
    #[cfg(feature = "tls")]
    let builder = builder.use_preconfigured_tls(tls_config()?);
    builder
        .build()
        .map_err(|e| SetupError::HttpClient(e.to_string()))
}

#[cfg(feature = "tls")]
fn tls_config() -> Result<rustls::ClientConfig, SetupError> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "could not load some system root certificates");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: https fetches will fail");
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::HttpClient(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// GETs `url`, requiring 200 and at most [`MAX_BODY`] bytes.
pub(crate) async fn fetch(client: &Client, url: &Url) -> Result<Fetched, SetupError> {
    let fail = |reason: String| SetupError::Fetch {
        url: url.to_string(),
        reason,
    };
    let mut resp = client
        .get(url.clone())
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if resp.status() != StatusCode::OK {
        return Err(fail(format!("HTTP status {}", resp.status())));
    }
    if resp.content_length().is_some_and(|l| l > MAX_BODY as u64) {
        return Err(fail("response too large".into()));
    }
    let cache_control = resp
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let cache_control = (!cache_control.is_empty()).then_some(cache_control);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(fail("response too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        body,
        cache_control,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_policy() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3/jwks",
            "http://[::1]:8080/",
            "http://localhost:8080",
            "http://LOCALHOST",
        ] {
            assert!(checked_url(ok, false).is_ok(), "{ok}");
        }
        for insecure in [
            "http://login.example.com",
            "http://localhost.example.com",
            "http://10.0.0.1",
            "http://[::2]",
        ] {
            assert!(
                matches!(
                    checked_url(insecure, false),
                    Err(SetupError::InsecureUrl(_))
                ),
                "{insecure}"
            );
            assert!(checked_url(insecure, true).is_ok(), "{insecure}");
        }
        let https = checked_url("https://login.example.com", false);
        if cfg!(feature = "tls") {
            assert!(https.is_ok());
        } else {
            assert!(matches!(https, Err(SetupError::TlsDisabled(_))));
        }
        assert!(matches!(
            checked_url("file:///etc/passwd", true),
            Err(SetupError::InvalidUrl(_))
        ));
        assert!(matches!(
            checked_url("not a url", true),
            Err(SetupError::InvalidUrl(_))
        ));
    }

    #[test]
    fn default_client_builds_without_a_process_wide_tls_provider() {
        assert!(default_client(Duration::from_secs(1)).is_ok());
    }
}
