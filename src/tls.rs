//! Native TLS: rustls on aws-lc-rs (the one crypto provider), TLS 1.3 and 1.2 only, HTTP/2 by
//! ALPN (actix adds `h2` and `http/1.1`).
//!
//! - The server's certificate and key (`tls_cert`, `tls_key`, PEM) are re-read when either
//!   file changes ([`RELOAD_INTERVAL`]); a pair that does not load (half written, key not
//!   matching) is logged and the previous one kept, so a renewal never takes the server down
//!   and open connections are never dropped.
//! - Client certificates (RFC 8705) are asked for and never required: a handshake with one
//!   proves possession of its private key (rustls checks the signature), and nothing more is
//!   decided here. Whether the certificate authenticates a client (`tls_client_auth` against
//!   `tls_client_ca`, `self_signed_tls_client_auth` against the client's registered keys) or
//!   binds a token is decided per request in `protocol::mtls`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::config::Config;

/// How often the certificate and key files are checked for a change.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server's certificate, swapped in place when its files change.
#[derive(Debug)]
pub struct ServerCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The files' (modified, length) when last read, successfully or not.
    seen: Mutex<Option<Stamp>>,
}

type Stamp = [(SystemTime, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(cert)?, one(key)?])
}

fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<CertifiedKey> {
    let certs = read_certificates("tls_cert", cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| anyhow::anyhow!("tls_key: cannot read {}: {e}", key_path.display()))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
        anyhow::anyhow!(
            "tls_cert / tls_key: {} and {} do not make a usable pair: {e}",
            cert_path.display(),
            key_path.display()
        )
    })
}

impl ServerCert {
    pub fn open(cert_path: &Path, key_path: &Path) -> anyhow::Result<ServerCert> {
        let seen = stamp(cert_path, key_path);
        let current = load(cert_path, key_path)?;
        Ok(ServerCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(current),
            seen: Mutex::new(seen),
        })
    }

    /// Re-reads the pair if either file changed since the last look; returns whether a new
    /// certificate is now served.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.cert_path, &self.key_path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if now.is_none() || *seen == now {
                return false;
            }
            *seen = now;
        }
        match load(&self.cert_path, &self.key_path) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate files changed but do not load; still serving the previous certificate");
                false
            }
        }
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Asks every client for a certificate, accepts any (or none), and checks the handshake
/// signature with the certificate's key: what a request then carries is a certificate whose
/// private key the peer holds.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
    /// The `tls_client_ca` subjects, so that clients holding several certificates pick one
    /// of ours (a self-signed one is still accepted).
    hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Trust is decided per client, per request (protocol::mtls); see the module docs.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificates in a PEM file (`tls_client_ca`).
pub fn read_certificates(key: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{key}: cannot read {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{key}: {} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// The rustls configuration of the HTTPS listener, serving `cert`.
pub fn server_config(config: &Config, cert: Arc<ServerCert>) -> anyhow::Result<ServerConfig> {
    let provider = provider();
    let mut hints = Vec::new();
    if let Some(ca) = &config.tls_client_ca {
        for c in read_certificates("tls_client_ca", ca)? {
            let parsed = webpki_subject(&c)
                .ok_or_else(|| anyhow::anyhow!("tls_client_ca: a certificate does not parse"))?;
            hints.push(parsed);
        }
    }
    let verifier = Arc::new(AnyClientCert {
        provider: provider.clone(),
        hints,
    });
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow::anyhow!("TLS set-up: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    // Stateless session tickets: a phone coming back within their lifetime resumes without a
    // full handshake, on any worker.
    server.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| anyhow::anyhow!("TLS session tickets: {e}"))?;
    Ok(server)
}

/// The DER subject of a certificate, as a `certificate_authorities` hint.
fn webpki_subject(cert: &CertificateDer<'_>) -> Option<DistinguishedName> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(DistinguishedName::from(parsed.subject().as_raw().to_vec()))
}
