//! The only module that makes outbound HTTP requests: fetching a client's `jwks_uri` (RFC 7591
//! §2, private_key_jwt and signed request objects) and delivering back-channel logout tokens
//! (OpenID Connect Back-Channel Logout 1.0).
//!
//! Anyone who can register a client chooses the URL, so every request is treated as an SSRF
//! attempt until proven otherwise:
//! - `https` only, with rustls on the aws-lc-rs provider (our one crypto backend) and the
//!   operating system's root certificates;
//! - the host must resolve only to public unicast addresses: loopback, private (RFC 1918,
//!   RFC 4193), link-local (cloud metadata at 169.254.169.254), shared (100.64/10),
//!   documentation, multicast and reserved ranges are refused, checked on the addresses the
//!   connection will actually use (our own resolver, so a DNS answer cannot change between the
//!   check and the connect) and on IP literals in the URL;
//! - no redirects followed, a connect timeout and a total timeout, a response size cap, no
//!   credentials in the URL, no cookies.
//!
//! `outbound_allow_private_addresses = true` lifts the address rule and allows plain `http`
//! (development against services on this machine, and the tests); never in production.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{StatusCode, Url, header};

/// Why a fetch failed: safe to log, never sent to the client that caused it.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("URL not allowed: {0}")]
    Url(&'static str),
    #[error("address not allowed (loopback, private, link-local or reserved)")]
    Address,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("request failed: {0}")]
    Transport(String),
}

/// A shared outbound HTTP client; cheap to clone. The client itself (and the system's root
/// certificates it loads, a few MiB) is built on first use: most servers never make an
/// outbound request, and their idle footprint stays as it was.
#[derive(Clone)]
pub struct Fetcher {
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
    allow_private: bool,
}

/// Connect timeout of every outbound request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request timeout (connect, TLS, headers and body).
pub const TIMEOUT: Duration = Duration::from_secs(5);

impl Fetcher {
    pub fn new(allow_private: bool) -> anyhow::Result<Fetcher> {
        // The process-wide rustls provider, for any TLS client built without an explicit
        // config: aws-lc-rs, our one crypto backend (reqwest would otherwise panic, having
        // no ring). Already installed is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        Ok(Fetcher {
            client: Arc::new(OnceLock::new()),
            allow_private,
        })
    }

    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        let allow_private = self.allow_private;
        self.client
            .get_or_init(|| {
                let tls = tls_config().map_err(|e| e.to_string())?;
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(TIMEOUT)
                    // Requests come from several actix workers (each its own runtime) and
                    // are rare: a pooled connection would only go stale or outlive the
                    // runtime it was opened on.
                    .pool_max_idle_per_host(0)
                    .dns_resolver(Arc::new(Resolver { allow_private }))
                    .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
                    .use_preconfigured_tls(tls)
                    .build()
                    .map_err(|e| format!("outbound HTTP client: {e}"))
            })
            .as_ref()
            .map_err(|e| FetchError::Transport(e.clone()))
    }

    /// Checks `url` against the transport rules (scheme, credentials, IP literals). Also what
    /// registration uses, so that a URL that can never be fetched is refused up front.
    pub fn check_url(url: &str, allow_private: bool) -> Result<Url, FetchError> {
        if url.len() > 2000 {
            return Err(FetchError::Url("longer than 2000 characters"));
        }
        let parsed = Url::parse(url).map_err(|_| FetchError::Url("not an absolute URL"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if allow_private => {}
            "http" => return Err(FetchError::Url("must be https")),
            _ => return Err(FetchError::Url("must be https")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(FetchError::Url("must not hold credentials"));
        }
        if parsed.fragment().is_some() {
            return Err(FetchError::Url("must not have a fragment"));
        }
        let literal = match parsed.host() {
            None => return Err(FetchError::Url("has no host")),
            Some(url::Host::Domain(_)) => None,
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        };
        if let Some(ip) = literal
            && !allow_private
            && !is_public(ip)
        {
            return Err(FetchError::Address);
        }
        Ok(parsed)
    }

    /// GETs `url` as JSON: status 200 and at most `max` bytes, else an error.
    pub async fn get_json(&self, url: &str, max: usize) -> Result<Vec<u8>, FetchError> {
        let url = Self::check_url(url, self.allow_private)?;
        let resp = self
            .client()?
            .get(url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        read_body(resp, max).await
    }
}

impl Fetcher {
    /// POSTs `form` (`application/x-www-form-urlencoded`) to `url`: Ok for a 2xx answer (its
    /// body, at most `max` bytes, is read and dropped), else an error.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        max: usize,
    ) -> Result<u16, FetchError> {
        let url = Self::check_url(url, self.allow_private)?;
        let mut resp = self
            .client()?
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let mut read = 0;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            read += chunk.len();
            if read > max {
                return Err(FetchError::TooLarge(max));
            }
        }
        Ok(status.as_u16())
    }
}

fn transport(e: reqwest::Error) -> FetchError {
    // Our resolver's refusal arrives wrapped in the connect error.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.downcast_ref::<AddressRefused>().is_some() {
            return FetchError::Address;
        }
        source = s.source();
    }
    if e.is_timeout() {
        return FetchError::Transport("timed out".into());
    }
    FetchError::Transport(e.without_url().to_string())
}

async fn read_body(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, FetchError> {
    if resp.status() != StatusCode::OK {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(FetchError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max {
            return Err(FetchError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "could not load some system root certificates");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: outbound https requests will fail");
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("outbound TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[derive(Debug, thiserror::Error)]
#[error("the host resolves to no public address")]
struct AddressRefused;

/// DNS through the system resolver, keeping only the addresses we may connect to.
struct Resolver {
    allow_private: bool,
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is a public unicast address (IANA special-purpose registries: anything
/// special is refused).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10 shared address space (carrier-grade NAT)
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        // 198.18.0.0/15 benchmarking
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4 reserved
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        // 2001:db8::/32 documentation
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        // 64:ff9b::/96 and 64:ff9b:1::/48 NAT64: they reach IPv4 addresses we cannot check
        || (s[0] == 0x0064 && s[1] == 0xff9b)
        // ::/96 IPv4-compatible (deprecated), 100::/64 discard
        || (s[0..6] == [0, 0, 0, 0, 0, 0])
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])
        // 2002::/16 6to4 embeds an IPv4 address
        || s[0] == 0x2002)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "2002:7f00:1::1",
            "ff02::1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "1.1.1.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        let bad = [
            "http://keys.example/jwks",
            "ftp://keys.example/jwks",
            "https://user:pw@keys.example/jwks",
            "https://keys.example/jwks#frag",
            "https://127.0.0.1/jwks",
            "https://[::1]/jwks",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:10.0.0.1]/",
            "/relative",
        ];
        for u in bad {
            assert!(Fetcher::check_url(u, false).is_err(), "{u}");
        }
        assert!(Fetcher::check_url("https://keys.example/jwks", false).is_ok());
        assert!(Fetcher::check_url("http://127.0.0.1:8080/jwks", true).is_ok());
    }
}
