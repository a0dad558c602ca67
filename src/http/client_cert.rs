//! The TLS client certificate of a request (RFC 8705): from this server's own handshake
//! (`crate::tls`, which checked that the peer holds its key), or — only when the TCP peer is
//! one of `trusted_proxies` — from the `tls_client_cert_header` the proxy sets (URL-escaped
//! PEM, as nginx's `$ssl_client_escaped_cert`). The header from anyone else is ignored, so a
//! client cannot claim a certificate it does not hold.

use std::any::Any;
use std::sync::Arc;

use actix_web::dev::Extensions;
use actix_web::{HttpRequest, web};

use super::AppState;
use crate::protocol::client_auth::Credentials;
use crate::protocol::mtls::ClientCertificate;

/// The certificate of a TLS connection, kept with the connection's data.
#[derive(Clone)]
struct PeerCertificate(Arc<ClientCertificate>);

type TlsStream = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;

/// `HttpServer::on_connect`: remembers the peer's certificate chain, if it sent one.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(tls) = connection.downcast_ref::<TlsStream>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    let Some(chain) = session.peer_certificates() else {
        return;
    };
    let chain: Vec<Vec<u8>> = chain.iter().map(|c| c.as_ref().to_vec()).collect();
    if let Some(cert) = ClientCertificate::new(chain) {
        data.insert(PeerCertificate(Arc::new(cert)));
    }
}

/// The client certificate this request was made with (see the module documentation).
pub fn client_certificate(req: &HttpRequest) -> Option<Arc<ClientCertificate>> {
    if let Some(PeerCertificate(c)) = req.conn_data::<PeerCertificate>() {
        return Some(c.clone());
    }
    let state = req.app_data::<web::Data<AppState>>()?;
    let name = state.ctx.config.tls_client_cert_header.as_deref()?;
    let value = req.headers().get(name)?;
    let peer = req.peer_addr()?.ip();
    if !state.trusted_proxies.contains(peer) {
        tracing::debug!(%peer, header = name, "client certificate header from an untrusted peer ignored");
        return None;
    }
    let escaped = value.to_str().ok()?;
    let pem = percent_encoding::percent_decode_str(escaped)
        .decode_utf8()
        .ok()?;
    ClientCertificate::from_pem(&pem).map(Arc::new)
}

/// The `Authorization` header value and client certificate of a client-authenticated POST.
/// draft-ietf-oauth-attestation-based-client-auth §5.1 request headers.
pub const CLIENT_ATTESTATION: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("oauth-client-attestation");
pub const CLIENT_ATTESTATION_POP: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("oauth-client-attestation-pop");

pub struct ClientCredentials<'r> {
    pub authorization: Option<&'r [u8]>,
    pub certificate: Option<Arc<ClientCertificate>>,
    pub attestation: crate::protocol::attestation::Presented<'r>,
}

impl<'r> ClientCredentials<'r> {
    pub fn of(req: &'r HttpRequest) -> ClientCredentials<'r> {
        ClientCredentials {
            authorization: req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
            certificate: client_certificate(req),
            attestation: crate::protocol::attestation::Presented::from_values(
                req.headers()
                    .get_all(CLIENT_ATTESTATION)
                    .map(|v| v.as_bytes()),
                req.headers()
                    .get_all(CLIENT_ATTESTATION_POP)
                    .map(|v| v.as_bytes()),
            ),
        }
    }

    pub fn get(&self) -> Credentials<'_> {
        Credentials {
            authorization: self.authorization,
            certificate: self.certificate.as_deref(),
            attestation: self.attestation,
        }
    }
}
