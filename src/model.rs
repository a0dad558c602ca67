//! Domain records shared by the protocol, the store and the CLI. Plain data: no SQL, no HTTP.

use serde::Serialize;

/// RFC 6749 §2.1 client types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    Public,
    Confidential,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Public => "public",
            ClientType::Confidential => "confidential",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(ClientType::Public),
            "confidential" => Some(ClientType::Confidential),
            _ => None,
        }
    }
}

/// The grants Latchkey implements (RFC 6749; no implicit, no password grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 8628 device authorization grant.
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::DeviceCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub client_name: String,
    pub client_type: ClientType,
    /// base64url(SHA-256(secret)); `None` for public clients.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    /// Allowed scopes, space-separated.
    pub scope: String,
    /// Resource indicators (RFC 8707) the client may obtain tokens for.
    pub audiences: Vec<String>,
    pub first_party: bool,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// RFC 9449 §5.2 `dpop_bound_access_tokens`: every token request must carry a DPoP proof.
    pub dpop_bound_access_tokens: bool,
    /// Browser-based clients: origins (`https://app.example`) allowed to call the token, JWKS,
    /// discovery, userinfo and revocation endpoints with CORS. None by default.
    pub allowed_origins: Vec<String>,
    /// RFC 9126 §6: authorization requests only through the pushed authorization request
    /// endpoint (`request_uri`); a plain one is refused.
    pub require_pushed_authorization_requests: bool,
    /// `private_key_jwt` (RFC 7523): the client's public keys, a JWK set as JSON. Such a
    /// (confidential) client has no secret.
    pub jwks: Option<String>,
    /// RFC 7591 `jwks_uri`: where the client publishes those keys instead (fetched, cached;
    /// `protocol::client_keys`). Never set together with `jwks`.
    pub jwks_uri: Option<String>,
    /// OpenID Connect Back-Channel Logout 1.0: where the server POSTs a `logout_token` when
    /// one of the client's users signs out.
    pub backchannel_logout_uri: Option<String>,
    /// The logout token must carry `sid`.
    pub backchannel_logout_session_required: bool,
    /// RFC 9101 §10.5: authorization requests only as request objects signed with `jwks`.
    pub require_signed_request_object: bool,
    /// RFC 8705 §2: the client authenticates with a TLS client certificate (and only so).
    pub tls_client_auth: Option<TlsClientAuth>,
    /// RFC 8705 §3.4 `tls_client_certificate_bound_access_tokens`: every token request must
    /// present a certificate, and the access tokens are bound to it (`cnf.x5t#S256`).
    pub tls_client_certificate_bound_access_tokens: bool,
    /// A password alone is not enough to sign in to this client: a passkey, or a password and
    /// a second factor (issue 19; `require_mfa` in the admin API, `--require-mfa` in the CLI).
    pub require_mfa: bool,
    /// App attestation (issue 23; `protocol::attestation`): whether and how this public client
    /// authenticates with `attest_jwt_client_auth`. `None`: off.
    pub attestation: Option<crate::protocol::attestation::Policy>,
}

/// RFC 8705 §2: how a client proves itself with its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsClientAuth {
    /// `tls_client_auth`: a certificate from a CA in `tls_client_ca` carrying this name.
    Pki(CertName),
    /// `self_signed_tls_client_auth`: a certificate registered in the client's `jwks` or
    /// `jwks_uri` (`x5c`).
    SelfSigned,
}

impl TlsClientAuth {
    /// RFC 8705 §2.1 / §2.2 `token_endpoint_auth_method` values.
    pub fn method(&self) -> &'static str {
        match self {
            TlsClientAuth::Pki(_) => "tls_client_auth",
            TlsClientAuth::SelfSigned => "self_signed_tls_client_auth",
        }
    }

    /// How it is stored: (kind, name).
    pub fn to_columns(&self) -> (&'static str, Option<&str>) {
        match self {
            TlsClientAuth::Pki(n) => (n.kind(), Some(n.value())),
            TlsClientAuth::SelfSigned => ("self_signed", None),
        }
    }

    pub fn from_columns(kind: &str, name: Option<&str>) -> Option<TlsClientAuth> {
        if kind == "self_signed" {
            return Some(TlsClientAuth::SelfSigned);
        }
        CertName::from_kind(kind, name?.to_owned()).map(TlsClientAuth::Pki)
    }
}

/// RFC 8705 §2.1.2: the one name a `tls_client_auth` client's certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertName {
    /// RFC 4514 string, e.g. `CN=payments,O=Example`.
    SubjectDn(String),
    SanDns(String),
    SanUri(String),
    SanIp(String),
    SanEmail(String),
}

impl CertName {
    /// The short kinds, as stored and as `latchkey client add --tls-client-auth KIND=VALUE`.
    pub const KINDS: [&'static str; 5] =
        ["subject_dn", "san_dns", "san_uri", "san_ip", "san_email"];

    pub fn kind(&self) -> &'static str {
        match self {
            CertName::SubjectDn(_) => "subject_dn",
            CertName::SanDns(_) => "san_dns",
            CertName::SanUri(_) => "san_uri",
            CertName::SanIp(_) => "san_ip",
            CertName::SanEmail(_) => "san_email",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            CertName::SubjectDn(v)
            | CertName::SanDns(v)
            | CertName::SanUri(v)
            | CertName::SanIp(v)
            | CertName::SanEmail(v) => v,
        }
    }

    pub fn from_kind(kind: &str, value: String) -> Option<CertName> {
        Some(match kind {
            "subject_dn" => CertName::SubjectDn(value),
            "san_dns" => CertName::SanDns(value),
            "san_uri" => CertName::SanUri(value),
            "san_ip" => CertName::SanIp(value),
            "san_email" => CertName::SanEmail(value),
            _ => return None,
        })
    }

    /// The RFC 8705 §2.1.2 metadata name (`tls_client_auth_subject_dn`, ...).
    pub fn metadata_name(&self) -> String {
        format!("tls_client_auth_{}", self.kind())
    }
}

impl Client {
    /// Whether the client proves itself with keys (`jwks` or `jwks_uri`) rather than a secret.
    pub fn has_keys(&self) -> bool {
        self.jwks.is_some() || self.jwks_uri.is_some()
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn allowed_scopes(&self) -> impl Iterator<Item = &str> + Clone {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// May use the admin console (`/console`).
    pub is_admin: bool,
}

/// One row of the signing key schedule, with its private half sealed under the KEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub expires_at: Option<i64>,
    /// The private key sealed under the key-encryption key (`keys::kek`); `None` for a key
    /// whose private half is a legacy file in `keys_dir` or is not known here.
    pub sealed_private_key: Option<String>,
}

/// A browser login session.
#[derive(Debug, Clone)]
pub struct Session {
    pub session_hash: String,
    pub sid: String,
    pub user_id: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// Where the sign-in came from (the Devices page shows it).
    pub seen: Seen,
    /// RFC 8176 methods this sign-in used, space-separated (`protocol::login::Amr`).
    pub amr: String,
}

/// An issued authorization code (stored by hash), bound to everything the token request must match.
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub redirect_uri_explicit: bool,
    pub code_challenge: String,
    pub scope: String,
    pub audiences: Vec<String>,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub sid: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// RFC 9449 §10: the `dpop_jkt` of the authorization request; the code is redeemed only
    /// with a DPoP proof by that key.
    pub dpop_jkt: Option<String>,
    /// The session's RFC 8176 methods, space-separated.
    pub amr: String,
}

#[derive(Debug, Clone)]
pub struct TokenFamily {
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub created_at: i64,
    /// Absolute lifetime of every token in the family.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// RFC 9449 §5: the thumbprint of the DPoP key every refresh of this family must prove
    /// possession of (public clients that used DPoP); `None`: not bound.
    pub dpop_jkt: Option<String>,
    /// The RFC 8176 methods of the sign-in that started the family, space-separated.
    pub amr: String,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub token_hash: String,
    pub family_id: String,
    pub scope: String,
    pub audiences: Vec<String>,
    pub auth_time: i64,
    pub sid: String,
    pub created_at: i64,
    /// Idle lifetime: a token unused past this is dead.
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub successor_hash: Option<String>,
    /// Where the request that made it came from (written with it, never read on the token
    /// paths; the Devices page shows the current token's).
    pub seen: Seen,
}

/// Where a token request came from: the client address (proxy-aware) and its User-Agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Seen {
    /// From the request's address and `User-Agent` (cut to 200 characters, printable only).
    pub fn new(ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Seen {
        let user_agent = user_agent
            .map(|u| {
                u.chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            })
            .filter(|u| !u.is_empty() && crate::text::printable(u, 800));
        Seen {
            ip: ip.map(|i| i.to_string()),
            user_agent,
        }
    }
}

impl RefreshToken {
    /// The token that replaces this one at rotation: same family, grant and session, new
    /// hash, created `now` by a request `seen`, idle until `expires_at`.
    pub fn successor(
        &self,
        token_hash: String,
        now: i64,
        expires_at: i64,
        seen: Seen,
    ) -> RefreshToken {
        RefreshToken {
            token_hash,
            family_id: self.family_id.clone(),
            scope: self.scope.clone(),
            audiences: self.audiences.clone(),
            auth_time: self.auth_time,
            sid: self.sid.clone(),
            created_at: now,
            expires_at,
            rotated_at: None,
            successor_hash: None,
            seen,
        }
    }
}

/// What a successful code redemption records, atomically with burning the code.
#[derive(Debug, Clone)]
pub struct Issuance {
    pub access_jti: String,
    pub access_expires_at: i64,
    /// A new refresh family and its first token, when refresh tokens are issued.
    pub family: Option<(TokenFamily, RefreshToken)>,
}

/// One audit log entry: who did what, when, from where. Never holds a secret or a token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Assigned by the database (ascending); 0 before the entry is stored.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// What happened, e.g. `client.created`, `login.failed`, `refresh_token.reuse_detected`.
    pub event: String,
    /// Who: `admin:<client_id>`, `cli:<os user>`, `system`, `client:<client_id>`,
    /// `user:<username>`, `registration:<client_id>` or `anonymous`.
    pub actor: String,
    /// From where: the peer address of the HTTP request, if the event came over HTTP.
    pub ip: Option<String>,
    /// What was acted on, e.g. `client:<client_id>`, `user:<user_id>`, `key:<kid>`.
    pub target: Option<String>,
    /// `success`, `failure` or `detected`.
    pub outcome: String,
    /// Event-specific, non-secret details.
    pub details: serde_json::Value,
}

/// An RFC 7591 initial access token (stored only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// `None`: any number of registrations until it expires.
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub created_by: String,
    pub revoked_at: Option<i64>,
    /// What a client registered with this token may get (`protocol::registration::Policy`, as
    /// JSON); `None`: the default policy.
    pub policy: Option<String>,
}

/// Characters of its hash that name an initial access token (a non-secret id for listings,
/// revocation and audit entries).
pub const REGISTRATION_TOKEN_ID_LEN: usize = 12;

/// Where an initial access token stands; the first that applies, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationTokenStatus {
    Revoked,
    Expired,
    UsedUp,
    Active,
}

impl RegistrationTokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::UsedUp => "used_up",
            Self::Active => "active",
        }
    }
}

impl RegistrationToken {
    pub fn status(&self, now: i64) -> RegistrationTokenStatus {
        if self.revoked_at.is_some() {
            RegistrationTokenStatus::Revoked
        } else if self.expires_at <= now {
            RegistrationTokenStatus::Expired
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            RegistrationTokenStatus::UsedUp
        } else {
            RegistrationTokenStatus::Active
        }
    }

    /// Why the token cannot register a client at `now`, if it cannot.
    pub fn refusal(&self, now: i64) -> Option<&'static str> {
        match self.status(now) {
            RegistrationTokenStatus::Revoked => Some("the initial access token has been revoked"),
            RegistrationTokenStatus::Expired => Some("the initial access token has expired"),
            RegistrationTokenStatus::UsedUp => Some("the initial access token has been used up"),
            RegistrationTokenStatus::Active => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RegistrationToken, RegistrationTokenStatus as S};

    #[test]
    fn a_registration_tokens_status_is_the_first_reason_that_applies() {
        let t = RegistrationToken {
            token_hash: "h".repeat(43),
            created_at: 0,
            expires_at: 100,
            max_uses: Some(1),
            uses: 0,
            created_by: "cli".into(),
            revoked_at: None,
            policy: None,
        };
        assert_eq!(t.status(50), S::Active);
        assert_eq!(t.refusal(50), None);
        let used = RegistrationToken {
            uses: 1,
            ..t.clone()
        };
        assert_eq!(used.status(50), S::UsedUp);
        // Expiry wins over use count, revocation over both; every non-active state refuses.
        assert_eq!(used.status(100), S::Expired);
        let revoked = RegistrationToken {
            revoked_at: Some(10),
            ..used
        };
        assert_eq!(revoked.status(100), S::Revoked);
        for (tok, now) in [(&revoked, 100), (&t, 100)] {
            assert!(tok.refusal(now).is_some());
        }
        assert_eq!(S::UsedUp.as_str(), "used_up");
    }
}

/// RFC 8628: a device authorization, from the device's request to the token it polls for.
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    /// SHA-256 of the `device_code` (the code itself is never stored).
    pub device_hash: String,
    /// Normalized: eight letters of the user-code alphabet, no separator.
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub audiences: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Seconds the device must wait between polls (raised by `slow_down`).
    pub interval: i64,
    pub last_poll_at: Option<i64>,
    pub status: DeviceStatus,
    /// Once approved: the hash of the authorization code the poll redeems.
    pub code_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeviceStatus::Pending,
            DeviceStatus::Approved,
            DeviceStatus::Denied,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}
