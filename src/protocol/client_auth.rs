//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` (RFC 7523, checks in `client_assertion.rs`) and
//! `none` (a public client naming itself with `client_id`), and RFC 8705 `tls_client_auth` /
//! `self_signed_tls_client_auth` (a client naming itself with `client_id` over a connection
//! with its certificate; checks in `mtls.rs`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::Ctx;
use super::error::{AuthScheme, ErrorCode, OAuthError, OAuthResult};
use super::params::Params;
use crate::model::{Client, ClientType};
use crate::secret;

/// What the request presented, before any lookup.
#[derive(Debug)]
pub enum Presented {
    Basic {
        client_id: String,
        secret: String,
    },
    Post {
        client_id: String,
        secret: String,
    },
    /// Public client: `client_id` only.
    None {
        client_id: String,
    },
    /// `private_key_jwt`: the client id the assertion names, and the assertion.
    Assertion {
        client_id: String,
        jwt: String,
    },
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Basic { client_id, .. }
            | Presented::Post { client_id, .. }
            | Presented::None { client_id }
            | Presented::Assertion { client_id, .. } => client_id,
        }
    }

    pub fn scheme(&self) -> Option<AuthScheme> {
        matches!(self, Presented::Basic { .. }).then_some(AuthScheme::Basic)
    }
}

/// What a request carries that can authenticate its client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The `Authorization` header value.
    pub authorization: Option<&'a [u8]>,
    /// The TLS client certificate (RFC 8705), from the handshake or a trusted proxy.
    pub certificate: Option<&'a super::mtls::ClientCertificate>,
    /// `OAuth-Client-Attestation` and `-PoP` (`attest_jwt_client_auth`; token and PAR only).
    pub attestation: super::attestation::Presented<'a>,
}

fn invalid_client(scheme: Option<AuthScheme>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, "client authentication failed").with_challenge(scheme)
}

/// Reads the client's credentials from the `Authorization` header value and the body.
/// Using more than one method is refused (RFC 6749 §2.3).
pub fn presented(authorization: Option<&[u8]>, params: &Params) -> OAuthResult<Presented> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    if assertion.is_some() || assertion_type.is_some() {
        if authorization.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use only one client authentication method",
            ));
        }
        if assertion_type != Some(super::client_assertion::ASSERTION_TYPE) {
            return Err(invalid_client(None).with_cause("unsupported client_assertion_type"));
        }
        let jwt = assertion.ok_or_else(|| invalid_client(None).with_cause("no assertion"))?;
        let client_id = super::client_assertion::claimed_client_id(jwt)
            .ok_or_else(|| invalid_client(None).with_cause("assertion names no client"))?;
        if body_id.is_some_and(|id| id != client_id) {
            return Err(invalid_client(None).with_cause("client_id differs from the assertion"));
        }
        return Ok(Presented::Assertion {
            client_id,
            jwt: jwt.to_owned(),
        });
    }
    if let Some(header) = authorization {
        let header =
            std::str::from_utf8(header).map_err(|_| invalid_client(Some(AuthScheme::Basic)))?;
        let Some((scheme, value)) = header.split_once(' ') else {
            return Err(invalid_client(Some(AuthScheme::Basic)));
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(invalid_client(Some(AuthScheme::Basic))
                .with_cause("unsupported authorization scheme"));
        }
        let (client_id, secret) =
            parse_basic(value.trim()).ok_or_else(|| invalid_client(Some(AuthScheme::Basic)))?;
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use only one client authentication method",
            ));
        }
        if body_id.is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
        return Ok(Presented::Basic { client_id, secret });
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Post {
            client_id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        (Some(id), None) => Ok(Presented::None {
            client_id: id.to_owned(),
        }),
        (None, _) => Err(invalid_client(None).with_cause("no client credentials")),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` per RFC 6749 §2.3.1.
fn parse_basic(b64: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(b64).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let decode = |s: &str| -> Option<String> {
        let plus_as_space = s.replace('+', " ");
        let bytes: Vec<u8> = percent_decode(plus_as_space.as_bytes())?;
        String::from_utf8(bytes).ok()
    };
    let (id, secret) = (decode(id)?, decode(secret)?);
    if id.is_empty() {
        return None;
    }
    Some((id, secret))
}

fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Checks the presented credentials against the stored client. The same error, with no hint,
/// for an unknown client, a disabled one, or a wrong secret.
fn authenticate(
    presented: &Presented,
    client: Option<Client>,
    assertion_key: Option<Result<(DecodingKey, Algorithm), String>>,
    issuer: &str,
    now: i64,
) -> OAuthResult<(Client, Option<super::client_assertion::Verified>)> {
    let scheme = presented.scheme();
    let Some(client) = client else {
        // Spend the same hashing work as a real check.
        if let Presented::Basic { secret, .. } | Presented::Post { secret, .. } = presented {
            let _ = secret::verify_token_hash(secret, "");
        }
        return Err(invalid_client(scheme).with_cause("unknown client"));
    };
    if let Presented::Assertion { jwt, .. } = presented {
        let verified = match (assertion_key, client.disabled) {
            (Some(Ok(key)), false) => {
                super::client_assertion::verify(jwt, &client.client_id, key, issuer, now)?
            }
            (Some(Err(cause)), false) => {
                return Err(super::client_assertion::refused(&cause));
            }
            _ => {
                return Err(invalid_client(None)
                    .with_cause("client disabled or without keys (private_key_jwt)"));
            }
        };
        return Ok((client, Some(verified)));
    }
    // A client with registered keys authenticates only with them.
    if client.has_keys() {
        return Err(invalid_client(scheme).with_cause("this client must use private_key_jwt"));
    }
    let ok = match (presented, client.client_type, &client.secret_hash) {
        (
            Presented::Basic { secret, .. } | Presented::Post { secret, .. },
            ClientType::Confidential,
            Some(hash),
        ) => secret::verify_token_hash(secret, hash),
        (Presented::None { .. }, ClientType::Public, _) => true,
        _ => false,
    };
    if !ok {
        return Err(
            invalid_client(scheme).with_cause("bad credentials or wrong authentication method")
        );
    }
    if client.disabled {
        return Err(invalid_client(scheme).with_cause("client disabled"));
    }
    Ok((client, None))
}

/// Reads the presented credentials, loads the client and authenticates it: the one path
/// every client-authenticated endpoint (token, introspection, revocation) takes.
pub async fn authenticate_request(
    ctx: &Ctx,
    credentials: Credentials<'_>,
    params: &Params,
    now: i64,
) -> OAuthResult<Client> {
    let presented = presented(credentials.authorization, params)?;
    let stored = ctx.store.request_client(presented.client_id()).await?;
    check(ctx, &presented, credentials.certificate, stored, now).await
}

/// [`authenticate_request`], then the client's attestation policy
/// (`attestation::client_auth`): the token and PAR endpoints.
pub async fn authenticate_attested(
    ctx: &Ctx,
    credentials: Credentials<'_>,
    params: &Params,
    now: i64,
) -> OAuthResult<(Client, Option<super::attestation::client_auth::Attested>)> {
    let client = authenticate_request(ctx, credentials, params, now).await?;
    let attested =
        super::attestation::client_auth::authenticate(ctx, &client, credentials.attestation, now)
            .await?;
    Ok((client, attested))
}

/// RFC 8705 §2: a client that authenticates with its certificate does so with nothing else
/// (`client_id` in the body names it) and with a certificate that passes its method's checks.
async fn check_certificate(
    ctx: &Ctx,
    presented: &Presented,
    certificate: Option<&super::mtls::ClientCertificate>,
    client: Client,
    now: i64,
) -> OAuthResult<Client> {
    let scheme = presented.scheme();
    let Some(auth) = &client.tls_client_auth else {
        return Err(invalid_client(scheme));
    };
    if !matches!(presented, Presented::None { .. }) {
        return Err(invalid_client(scheme)
            .with_cause("this client must authenticate with its TLS client certificate"));
    }
    if client.disabled {
        return Err(invalid_client(scheme).with_cause("client disabled"));
    }
    let Some(cert) = certificate else {
        return Err(invalid_client(scheme).with_cause("no TLS client certificate presented"));
    };
    let checked = match auth {
        crate::model::TlsClientAuth::Pki(name) => {
            ctx.mtls.check(cert, name, now).map_err(String::from)
        }
        crate::model::TlsClientAuth::SelfSigned => {
            ctx.client_keys.has_certificate(&client, cert.leaf()).await
        }
    };
    match checked {
        Ok(()) => Ok(client),
        Err(cause) => Err(invalid_client(scheme).with_cause(cause)),
    }
}

/// Authenticates `presented` against the stored client; an assertion is then recorded so
/// that it is never accepted again, on any replica (RFC 7523 §3 item 7).
pub async fn check(
    ctx: &Ctx,
    presented: &Presented,
    certificate: Option<&super::mtls::ClientCertificate>,
    stored: Option<Client>,
    now: i64,
) -> OAuthResult<Client> {
    let stored = match stored {
        Some(client) if client.tls_client_auth.is_some() => {
            return check_certificate(ctx, presented, certificate, client, now).await;
        }
        other => other,
    };
    // The key an assertion must be signed with: registered, or from the client's jwks_uri.
    let assertion_key = match (presented, &stored) {
        (Presented::Assertion { jwt, .. }, Some(c)) if !c.disabled && c.has_keys() => {
            Some(ctx.client_keys.key_for(c, jwt).await)
        }
        _ => None,
    };
    let (client, assertion) =
        authenticate(presented, stored, assertion_key, &ctx.config.issuer, now)?;
    if let Some(a) = assertion {
        let fresh = ctx
            .store
            .write(move |s| s.record_dpop_proof(&a.replay_key, a.expires_at))
            .await?;
        if !fresh {
            return Err(invalid_client(None).with_cause("client assertion replayed"));
        }
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_decodes_form_encoded_parts() {
        let v = STANDARD.encode("my%3Aid:s%2Bc+r");
        assert_eq!(parse_basic(&v), Some(("my:id".into(), "s+c r".into())));
    }

    #[test]
    fn malformed_basic_is_refused() {
        for bad in [
            "!!!",
            "",
            &STANDARD.encode("noseparator"),
            &STANDARD.encode(":secret"),
            &STANDARD.encode("a:%G0"),
        ] {
            assert_eq!(parse_basic(bad), None, "{bad}");
        }
    }
}
