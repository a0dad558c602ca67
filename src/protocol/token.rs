//! The token endpoint (RFC 6749 §3.2): authenticate the client, check the DPoP proof if any
//! (RFC 9449 §5), then dispatch on `grant_type`.

use super::Ctx;
use super::client_auth;
use super::discovery::TOKEN_PATH;
use super::dpop;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::grants;
use super::params::Params;
use super::tokens::TokenResponse;
use crate::model::GrantType;

pub async fn exchange(
    ctx: &Ctx,
    credentials: client_auth::Credentials<'_>,
    dpop_header: dpop::Header<'_>,
    params: Params,
    seen: &crate::model::Seen,
    now: i64,
) -> OAuthResult<TokenResponse> {
    let grant_type = params.require("grant_type")?;
    let Some(grant) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "unsupported grant_type",
        ));
    };
    let (client, attested) =
        client_auth::authenticate_attested(ctx, credentials, &params, now).await?;
    // RFC 8705 §3: such a client's access tokens are bound to its certificate.
    let cert_x5t = match (
        client.tls_client_certificate_bound_access_tokens,
        credentials.certificate,
    ) {
        (false, _) => None,
        (true, Some(c)) => Some(c.thumbprint()),
        (true, None) => {
            return Err(OAuthError::invalid_request(
                "this client must present its TLS client certificate with every token request",
            ));
        }
    };
    if client.dpop_bound_access_tokens && dpop_header.is_absent() {
        // RFC 9449 §5.2: such a client gets sender-constrained tokens or none.
        return Err(OAuthError::invalid_dpop_proof(
            "this client must send a DPoP proof with every token request",
        ));
    }
    let htu = format!("{}{TOKEN_PATH}", ctx.config.issuer);
    let alias = ctx.config.mtls_base().map(|b| format!("{b}{TOKEN_PATH}"));
    let proof = dpop::verify(
        ctx,
        dpop_header,
        dpop::Expect {
            method: "POST",
            htu: &htu,
            htu_alias: alias.as_deref(),
            access_token: None,
        },
        now,
    )
    .await?;
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let proofs = super::tokens::Proofs {
        cert_x5t,
        att: attested.as_ref().map(|a| &a.att),
    };
    let issued = match grant {
        GrantType::ClientCredentials => {
            grants::client_credentials::grant(ctx, &client, &params, jkt, proofs, now)
        }
        GrantType::AuthorizationCode => {
            grants::authorization_code::grant(ctx, &client, &params, jkt, proofs, seen, now).await
        }
        GrantType::RefreshToken => {
            grants::refresh_token::grant(ctx, &client, &params, jkt, proofs, seen, now).await
        }
        GrantType::DeviceCode => {
            grants::device_code::grant(ctx, &client, &params, jkt, proofs, seen, now).await
        }
    };
    if issued.is_ok() {
        ctx.metrics.token_issued(grant);
    }
    issued
}
