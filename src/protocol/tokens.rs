//! JWT claim sets Latchkey signs (RFC 9068 access tokens) and the token response (RFC 6749 §5.1).

use serde::{Serialize, Serializer};

use crate::secret;

/// `aud`: a single string when there is one audience (RFC 7519 §4.1.3), else an array.
#[derive(Debug, Clone)]
pub struct Audience(pub Vec<String>);

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

/// RFC 7800 `cnf`: RFC 9449 §6.1 `jkt`, the thumbprint of the DPoP key the token is bound to;
/// RFC 8705 §3.1 `x5t#S256`, the thumbprint of the client certificate it is bound to.
#[derive(Debug, Serialize)]
pub struct Confirmation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// `None` when the token is bound to nothing (a bearer token).
    pub fn new(jkt: Option<&str>, x5t_s256: Option<&str>) -> Option<Confirmation> {
        (jkt.is_some() || x5t_s256.is_some()).then(|| Confirmation {
            jkt: jkt.map(str::to_owned),
            x5t_s256: x5t_s256.map(str::to_owned),
        })
    }
}

/// RFC 9449 §5: `DPoP` for a token bound to a proof key, else `Bearer`.
pub fn token_type(dpop_jkt: Option<&str>) -> &'static str {
    if dpop_jkt.is_some() { "DPoP" } else { "Bearer" }
}

/// RFC 9068 §2.2 claims.
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: &'a str,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// RFC 9068 §2.2.1 / RFC 9470 §3: how the user signed in (`login::amr`), so a resource
    /// server can ask for more (`insufficient_user_authentication`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// [`CLIENT_TOKEN_GTY`] on tokens a client obtained for itself (client_credentials),
    /// absent on tokens for a user: a resource server tells a client's `sub` (its client_id)
    /// from a user's by this claim, never by the shape of `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gty: Option<&'static str>,
    /// How the client was attested for this request (issue 23; docs/attestation.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub att: Option<&'a crate::protocol::attestation::Att>,
}

/// What the client proved with the request beyond its identity and DPoP key: its TLS client
/// certificate (RFC 8705 §3, `cnf.x5t#S256`) and a client attestation (`att`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Proofs<'a> {
    pub cert_x5t: Option<&'a str>,
    pub att: Option<&'a crate::protocol::attestation::Att>,
}

/// The `gty` ("grant type") claim of a client's own access token; the name and value are the
/// ones Auth0 and others use, documented for resource servers in docs/tokens.md.
pub const CLIENT_TOKEN_GTY: &str = "client_credentials";

pub fn new_jti() -> String {
    secret::random_token(16)
}

/// RFC 6749 §5.1 successful response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
