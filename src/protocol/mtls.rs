//! RFC 8705: mutual-TLS client authentication (§2) and certificate-bound access tokens (§3).
//!
//! A [`ClientCertificate`] reaches a request from the server's own TLS handshake (which proved
//! that the peer holds its private key; `crate::tls`) or from a trusted proxy's header
//! (`tls_client_cert_header`, read only from `trusted_proxies`; the proxy did the proving).
//! Nothing is trusted because of the certificate alone:
//! - `tls_client_auth` (§2.1): the chain must verify against `tls_client_ca` (rustls-webpki:
//!   validity, clientAuth usage, signatures), and the certificate must carry the one name the
//!   client registered (subject DN, or a DNS / URI / IP / email SAN);
//! - `self_signed_tls_client_auth` (§2.2): the certificate must be one the client registered
//!   (`x5c` of a key in its `jwks` or `jwks_uri`);
//! - binding (§3): `cnf.x5t#S256` = base64url(SHA-256(DER)) of the certificate.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::model::CertName;

/// Largest certificate chain accepted (a proxy header, a handshake).
pub const MAX_CHAIN_BYTES: usize = 32 * 1024;

/// A client certificate presented with a request: the chain, leaf first (DER).
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    chain: Vec<Vec<u8>>,
    thumbprint: String,
}

impl ClientCertificate {
    /// `None` for an empty or oversized chain.
    pub fn new(chain: Vec<Vec<u8>>) -> Option<ClientCertificate> {
        let leaf = chain.first()?;
        if chain.iter().map(Vec::len).sum::<usize>() > MAX_CHAIN_BYTES {
            return None;
        }
        let thumbprint = thumbprint(leaf);
        Some(ClientCertificate { chain, thumbprint })
    }

    /// From PEM text (what a proxy forwards); `None` if it holds no certificate.
    pub fn from_pem(pem: &str) -> Option<ClientCertificate> {
        if pem.len() > 2 * MAX_CHAIN_BYTES {
            return None;
        }
        let chain: Vec<Vec<u8>> = pem::parse_many(pem)
            .ok()?
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(|p| p.into_contents())
            .collect();
        ClientCertificate::new(chain)
    }

    pub fn leaf(&self) -> &[u8] {
        &self.chain[0]
    }

    /// RFC 8705 §3.1 `x5t#S256` of the leaf certificate.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

/// base64url(SHA-256(der)).
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// The CAs of `tls_client_ca`, as a chain verifier.
#[derive(Clone, Default)]
pub struct Trust {
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl Trust {
    pub fn new(cas: Vec<CertificateDer<'static>>) -> anyhow::Result<Trust> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| anyhow::anyhow!("tls_client_ca: unusable CA certificate: {e}"))?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
                .build()
                .map_err(|e| anyhow::anyhow!("tls_client_ca: {e}"))?;
        Ok(Trust {
            verifier: Some(verifier),
        })
    }

    /// RFC 8705 §2.1: the chain verifies against `tls_client_ca` at `now`, and the leaf
    /// carries `name`. The error is a cause for the log.
    pub fn check(
        &self,
        cert: &ClientCertificate,
        name: &CertName,
        now: i64,
    ) -> Result<(), &'static str> {
        let verifier = self
            .verifier
            .as_ref()
            .ok_or("tls_client_auth needs tls_client_ca, which is not configured")?;
        let leaf = CertificateDer::from(cert.leaf());
        let intermediates: Vec<CertificateDer<'_>> = cert.chain[1..]
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let at = UnixTime::since_unix_epoch(Duration::from_secs(now.max(0) as u64));
        verifier
            .verify_client_cert(&leaf, &intermediates, at)
            .map_err(|_| "the certificate does not verify against tls_client_ca")?;
        if names(cert.leaf(), name) {
            Ok(())
        } else {
            Err("the certificate does not carry the client's registered name")
        }
    }
}

/// RFC 8705 §2.2: whether `leaf` is the first `x5c` certificate of a key in `jwks` (JSON).
pub fn registered_certificate(jwks: &str, leaf: &[u8]) -> Result<(), &'static str> {
    let set: serde_json::Value =
        serde_json::from_str(jwks).map_err(|_| "stored jwks unreadable")?;
    let registered = set["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["x5c"].get(0)?.as_str())
        .filter_map(|c| STANDARD.decode(c).ok());
    for der in registered {
        if aws_lc_rs::constant_time::verify_slices_are_equal(&der, leaf).is_ok() {
            return Ok(());
        }
    }
    Err("the certificate is not one the client registered")
}

/// Whether a `jwks` (JSON) registers at least one certificate (`x5c`).
pub fn has_registered_certificates(jwks: &serde_json::Value) -> bool {
    jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|k| k["x5c"].get(0).and_then(|c| c.as_str()).is_some())
}

/// Whether `dn` is an RFC 4514 string this module can compare.
pub fn valid_dn(dn: &str) -> bool {
    parse_dn(dn).is_some()
}

/// Whether the certificate `der` carries `name` (RFC 8705 §2.1.2).
fn names(der: &[u8], name: &CertName) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    if let CertName::SubjectDn(dn) = name {
        let Some(want) = parse_dn(dn) else {
            return false;
        };
        let Some(mut have) = cert_dn(cert.subject()) else {
            return false;
        };
        // RFC 4514 writes the last RDN first; `openssl x509 -subject` the first. Either.
        if dn_eq(&want, &have) {
            return true;
        }
        have.reverse();
        return dn_eq(&want, &have);
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    use x509_parser::extensions::GeneralName;
    san.value.general_names.iter().any(|g| match (name, g) {
        (CertName::SanDns(want), GeneralName::DNSName(have)) => want.eq_ignore_ascii_case(have),
        (CertName::SanUri(want), GeneralName::URI(have)) => want == have,
        (CertName::SanEmail(want), GeneralName::RFC822Name(have)) => want == have,
        (CertName::SanIp(want), GeneralName::IPAddress(have)) => {
            let have = match have.len() {
                4 => <[u8; 4]>::try_from(*have).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(*have).ok().map(IpAddr::from),
                _ => None,
            };
            want.parse::<IpAddr>().ok().is_some_and(|w| Some(w) == have)
        }
        _ => false,
    })
}

/// One attribute of a relative distinguished name: (type, value), type in upper case.
type Rdn = Vec<(String, String)>;

const NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "EMAILADDRESS"),
];

fn attribute_type(t: &str) -> String {
    let t = t.trim();
    let upper = t.to_ascii_uppercase();
    let upper = match upper.as_str() {
        "E" | "EMAIL" => "EMAILADDRESS".to_owned(),
        "S" => "ST".to_owned(),
        _ => upper,
    };
    NAMES
        .iter()
        .find(|(oid, _)| *oid == t)
        .map(|(_, n)| (*n).to_owned())
        .unwrap_or(upper)
}

/// The subject as RDNs in certificate order; `None` if an attribute is not a string.
fn cert_dn(name: &x509_parser::x509::X509Name<'_>) -> Option<Vec<Rdn>> {
    name.iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let value = atv.as_str().ok()?;
                    Some((
                        attribute_type(&atv.attr_type().to_id_string()),
                        value.to_owned(),
                    ))
                })
                .collect()
        })
        .collect()
}

/// An RFC 4514 string (`CN=app,O=Example\, Inc.`, also `CN = app, O = ...`), RDNs as written.
fn parse_dn(s: &str) -> Option<Vec<Rdn>> {
    let mut rdns: Vec<Rdn> = vec![Vec::new()];
    let mut typ = String::new();
    let mut value = String::new();
    let mut in_value = false;
    let mut chars = s.chars().peekable();
    let push = |rdns: &mut Vec<Rdn>, typ: &mut String, value: &mut String| -> Option<()> {
        if typ.trim().is_empty() {
            return None;
        }
        rdns.last_mut()?
            .push((attribute_type(typ), value.trim().to_owned()));
        typ.clear();
        value.clear();
        Some(())
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_value => {
                let a = chars.next()?;
                if a.is_ascii_hexdigit() && chars.peek().is_some_and(char::is_ascii_hexdigit) {
                    let b = chars.next()?;
                    let byte = u8::from_str_radix(&format!("{a}{b}"), 16).ok()?;
                    value.push(char::from(byte));
                } else {
                    value.push(a);
                }
            }
            '=' if !in_value => in_value = true,
            ',' | ';' | '+' if in_value => {
                push(&mut rdns, &mut typ, &mut value)?;
                in_value = false;
                if c != '+' {
                    rdns.push(Vec::new());
                }
            }
            c if in_value => value.push(c),
            c => typ.push(c),
        }
    }
    if !in_value {
        return None;
    }
    push(&mut rdns, &mut typ, &mut value)?;
    Some(rdns)
}

/// Same RDNs in the same order; attributes within an RDN in any order; types exactly, values
/// ignoring ASCII case (LDAP `caseIgnoreMatch`).
fn dn_eq(a: &[Rdn], b: &[Rdn]) -> bool {
    let norm = |r: &Rdn| {
        let mut r: Vec<(String, String)> = r
            .iter()
            .map(|(t, v)| (t.clone(), v.to_ascii_lowercase()))
            .collect();
        r.sort();
        r
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| norm(x) == norm(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_strings_parse_with_escapes_and_multivalued_rdns() {
        let dn = parse_dn(r"CN=app one+UID=7, O=Example\, Inc.,C=DE").expect("parses");
        assert_eq!(
            dn,
            vec![
                vec![("CN".into(), "app one".into()), ("UID".into(), "7".into())],
                vec![("O".into(), "Example, Inc.".into())],
                vec![("C".into(), "DE".into())],
            ]
        );
        assert_eq!(
            parse_dn(r"2.5.4.3=a\2Cb"),
            Some(vec![vec![("CN".into(), "a,b".into())]])
        );
        for bad in ["", "CN", "=x", "CN=a,", "CN=a,=b", r"CN=a\"] {
            assert_eq!(parse_dn(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dn_comparison_is_exact_in_structure() {
        let a = parse_dn("CN=app,O=Example").unwrap();
        assert!(dn_eq(&a, &parse_dn("cn=APP, o=example").unwrap()));
        assert!(!dn_eq(&a, &parse_dn("CN=app,O=Example,C=DE").unwrap()));
        assert!(!dn_eq(&a, &parse_dn("CN=app+O=Example").unwrap()));
        assert!(!dn_eq(&a, &parse_dn("CN=app2,O=Example").unwrap()));
        assert!(!dn_eq(&a, &parse_dn("OU=app,O=Example").unwrap()));
    }

    #[test]
    fn a_certificate_chain_needs_a_leaf_and_stays_small() {
        assert!(ClientCertificate::new(vec![]).is_none());
        assert!(ClientCertificate::new(vec![vec![0; MAX_CHAIN_BYTES + 1]]).is_none());
        assert!(ClientCertificate::from_pem("not pem").is_none());
        let c = ClientCertificate::new(vec![b"der".to_vec()]).unwrap();
        assert_eq!(c.thumbprint(), thumbprint(b"der"));
    }
}
