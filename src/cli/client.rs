use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::{now, print_json};
use crate::model::ClientType;
use crate::protocol::audit::event;
use crate::protocol::clients::{self, ClientSpec};
use crate::secret;
use crate::store::Store;
use crate::text::escape;

#[derive(Clone, Copy, ValueEnum)]
pub enum TypeArg {
    Public,
    Confidential,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Off,
    Optional,
    Required,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LevelArg {
    Software,
    Tee,
    Strongbox,
}

/// App attestation (issue 23; docs/attestation.md): whether the app must prove it is the
/// genuine app with Apple App Attest or Android Key Attestation.
#[derive(Args, Default)]
pub struct AttestationArgs {
    /// `optional`: attested requests get `att` in their tokens; `required`: every token and
    /// PAR request must carry a client attestation (`attest_jwt_client_auth`).
    #[arg(long = "attestation", value_enum, value_name = "MODE")]
    mode: Option<ModeArg>,
    /// An Apple App ID (`TEAMID.bundle.identifier`) whose App Attest keys are accepted;
    /// repeatable.
    #[arg(long = "attest-apple-app-id", value_name = "APP_ID")]
    apple_app_ids: Vec<String>,
    /// An Android package accepted in a Key Attestation; repeatable (with
    /// `--attest-android-cert-digest`).
    #[arg(long = "attest-android-package", value_name = "PACKAGE")]
    android_packages: Vec<String>,
    /// The SHA-256 of the app's signing certificate (hex, colons allowed); repeatable.
    #[arg(long = "attest-android-cert-digest", value_name = "SHA256")]
    android_cert_digests: Vec<String>,
    /// The weakest Android key storage accepted (default tee).
    #[arg(long = "attest-android-min-level", value_enum, value_name = "LEVEL")]
    android_min_level: Option<LevelArg>,
    /// Accept development builds (App Attest development environment, software keys,
    /// unverified boot). Never in production.
    #[arg(long = "attest-allow-development")]
    allow_development: bool,
    /// PEM file of roots that replace Apple's App Attestation Root CA (a private test PKI).
    #[arg(long = "attest-apple-roots", value_name = "PEM")]
    apple_roots: Option<std::path::PathBuf>,
    /// PEM file of roots that replace Google's hardware attestation roots.
    #[arg(long = "attest-android-roots", value_name = "PEM")]
    android_roots: Option<std::path::PathBuf>,
}

impl AttestationArgs {
    /// The policy these flags describe, or `None` when `--attestation` was not given.
    fn policy(self) -> anyhow::Result<Option<crate::protocol::attestation::Policy>> {
        use crate::protocol::attestation::{Mode, Policy, policy::AndroidLevel};
        let Some(mode) = self.mode else {
            let any = !self.apple_app_ids.is_empty()
                || !self.android_packages.is_empty()
                || !self.android_cert_digests.is_empty()
                || self.android_min_level.is_some()
                || self.allow_development
                || self.apple_roots.is_some()
                || self.android_roots.is_some();
            if any {
                anyhow::bail!("the --attest-* options need --attestation optional|required|off");
            }
            return Ok(None);
        };
        let read = |p: Option<std::path::PathBuf>| -> anyhow::Result<Option<String>> {
            p.map(|p| {
                std::fs::read_to_string(&p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
            })
            .transpose()
        };
        Ok(Some(Policy {
            mode: match mode {
                ModeArg::Off => Mode::Off,
                ModeArg::Optional => Mode::Optional,
                ModeArg::Required => Mode::Required,
            },
            apple_app_ids: self.apple_app_ids,
            android_packages: self.android_packages,
            android_signing_cert_digests: self.android_cert_digests,
            allow_development: self.allow_development,
            android_min_security_level: match self.android_min_level {
                Some(LevelArg::Software) => AndroidLevel::Software,
                Some(LevelArg::Strongbox) => AndroidLevel::Strongbox,
                Some(LevelArg::Tee) | None => AndroidLevel::Tee,
            },
            apple_roots_pem: read(self.apple_roots)?,
            android_roots_pem: read(self.android_roots)?,
        }))
    }
}

#[derive(Subcommand)]
// Parsed once per process: the size of `Add` does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ClientCommand {
    /// Register a client application. A confidential client's secret is printed once.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long = "type", value_enum)]
        client_type: TypeArg,
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may send the browser afterwards.
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        #[arg(long = "grant", value_name = "GRANT")]
        grants: Vec<String>,
        /// Allowed scopes, space-separated.
        #[arg(long)]
        scope: Option<String>,
        /// Resource indicator(s) (RFC 8707) tokens may be issued for.
        #[arg(long = "audience", value_name = "URI")]
        audiences: Vec<String>,
        /// Skip the consent page for this client.
        #[arg(long)]
        first_party: bool,
        /// Allow the client to obtain the latchkey:admin scope via client_credentials.
        #[arg(long)]
        admin: bool,
        /// Require a DPoP proof (RFC 9449) on every token request: the client only ever gets
        /// sender-constrained tokens (metadata `dpop_bound_access_tokens`).
        #[arg(long)]
        dpop_bound: bool,
        /// A browser-based client's origin (`https://app.example`), allowed CORS access to the
        /// token, JWKS, discovery, userinfo and revocation endpoints; repeatable.
        #[arg(long = "allowed-origin", value_name = "ORIGIN")]
        allowed_origins: Vec<String>,
        /// Accept this client's authorization requests only through the pushed authorization
        /// request endpoint (RFC 9126; metadata `require_pushed_authorization_requests`).
        #[arg(long)]
        require_par: bool,
        /// A JWK set file (public keys): the confidential client authenticates with
        /// `private_key_jwt` (RFC 7523) and gets no secret.
        #[arg(long, value_name = "PATH")]
        jwks_file: Option<std::path::PathBuf>,
        /// Or the https URL where the client publishes that JWK set (RFC 7591 `jwks_uri`;
        /// fetched by the server, cached 5 minutes, refetched when an unknown key signs).
        #[arg(long, value_name = "URL", conflicts_with = "jwks_file")]
        jwks_uri: Option<String>,
        /// OpenID Connect Back-Channel Logout: the server POSTs a signed `logout_token` here
        /// when one of this app's users signs out (https; loopback http for development).
        #[arg(long, value_name = "URL")]
        backchannel_logout_uri: Option<String>,
        /// The logout token must name the session (`sid`).
        #[arg(long, requires = "backchannel_logout_uri")]
        backchannel_logout_session_required: bool,
        /// Accept authorization requests only as request objects signed with those keys
        /// (RFC 9101; metadata `require_signed_request_object`).
        #[arg(long)]
        require_signed_request: bool,
        /// Authenticate with a TLS client certificate (RFC 8705) instead of a secret:
        /// `subject_dn=CN=payments,O=Example` (or `san_dns=`, `san_uri=`, `san_ip=`,
        /// `san_email=`) for a certificate from a CA in `tls_client_ca`, or `self_signed` for
        /// one of the certificates (`x5c`) in `--jwks-file` / `--jwks-uri`.
        #[arg(long, value_name = "KIND=NAME|self_signed")]
        tls_client_auth: Option<String>,
        /// Bind this client's access tokens to its TLS client certificate (`cnf.x5t#S256`;
        /// metadata `tls_client_certificate_bound_access_tokens`).
        #[arg(long)]
        mtls_bound: bool,
        /// A password alone is not enough to sign in to this app: users need a passkey, or a
        /// password and an authenticator app code.
        #[arg(long)]
        require_mfa: bool,
        #[command(flatten)]
        attestation: AttestationArgs,
    },
    /// Set (or turn off) an existing public client's app attestation policy; the policy
    /// given replaces the current one.
    Attestation {
        client_id: String,
        #[command(flatten)]
        attestation: AttestationArgs,
    },
    /// List clients (never secrets).
    List,
    /// Show one client (never its secret).
    Show { client_id: String },
    /// Disable a client: its credentials and tokens stop working for new requests.
    Disable { client_id: String },
    /// Issue a new secret for a confidential client; the old one stops working at once.
    RotateSecret { client_id: String },
}

pub fn run(store: &Store, cmd: ClientCommand, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            name,
            client_type,
            redirect_uris,
            post_logout_redirect_uris,
            grants,
            scope,
            audiences,
            first_party,
            admin,
            dpop_bound,
            allowed_origins,
            require_par,
            jwks_file,
            jwks_uri,
            backchannel_logout_uri,
            backchannel_logout_session_required,
            require_signed_request,
            tls_client_auth,
            mtls_bound,
            require_mfa,
            attestation,
        } => {
            let attestation = attestation.policy()?;
            let tls_client_auth = match tls_client_auth.as_deref() {
                None => None,
                Some("self_signed") => Some(crate::model::TlsClientAuth::SelfSigned),
                Some(v) => {
                    let name = v.split_once('=').and_then(|(kind, name)| {
                        crate::model::CertName::from_kind(kind, name.to_owned())
                    });
                    match name {
                        Some(n) => Some(crate::model::TlsClientAuth::Pki(n)),
                        None => anyhow::bail!(
                            "--tls-client-auth: expected self_signed or KIND=NAME with KIND one of {}",
                            crate::model::CertName::KINDS.join(", ")
                        ),
                    }
                }
            };
            let jwks = match jwks_file {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
                    Some(
                        serde_json::from_str::<serde_json::Value>(&text)
                            .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", p.display()))?,
                    )
                }
                None => None,
            };
            let spec = ClientSpec {
                client_name: name,
                client_type: Some(match client_type {
                    TypeArg::Public => ClientType::Public,
                    TypeArg::Confidential => ClientType::Confidential,
                }),
                redirect_uris,
                post_logout_redirect_uris,
                grant_types: grants,
                scope,
                audiences,
                first_party,
                is_admin: admin,
                dpop_bound_access_tokens: dpop_bound,
                allowed_origins,
                require_pushed_authorization_requests: require_par,
                jwks,
                jwks_uri,
                backchannel_logout_uri,
                backchannel_logout_session_required,
                require_signed_request_object: require_signed_request,
                tls_client_auth,
                tls_client_certificate_bound_access_tokens: mtls_bound,
                require_mfa,
                attestation,
            };
            let new = clients::create(spec, now())
                .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.description))?;
            store.insert_client(&new.client)?;
            super::record(
                store,
                event::CLIENT_CREATED,
                format!("client:{}", new.client.client_id),
                json!({ "client_name": new.client.client_name, "admin": new.client.is_admin }),
            );
            let mut view = clients::metadata(&new.client);
            view["client_secret"] = json!(new.secret);
            view["client_secret_expires_at"] = json!(0);
            if as_json {
                print_json(&view)?;
            } else {
                println!("client_id:     {}", new.client.client_id);
                if let Some(s) = &new.secret {
                    println!("client_secret: {s}");
                    println!("(the secret is shown only now; store it safely)");
                }
            }
        }
        ClientCommand::Attestation {
            client_id,
            attestation,
        } => {
            let policy = attestation
                .policy()?
                .ok_or_else(|| anyhow::anyhow!("--attestation off|optional|required is needed"))?;
            let mut c = store
                .client(&client_id)?
                .ok_or_else(|| anyhow::anyhow!("no client {client_id:?}"))?;
            let policy = clients::check_attestation(policy, c.client_type)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.description))?;
            let mode = policy.mode.as_str();
            c.attestation = Some(policy);
            c.updated_at = now();
            if !store.replace_client(&c)? {
                anyhow::bail!("no client {client_id:?}");
            }
            super::record(
                store,
                event::CLIENT_UPDATED,
                format!("client:{client_id}"),
                json!({ "attestation": mode }),
            );
            if as_json {
                print_json(&clients::metadata(&c))?;
            } else {
                println!("client {client_id}: attestation {mode}");
            }
        }
        ClientCommand::List => {
            let all = store.clients()?;
            if as_json {
                print_json(&json!(
                    all.iter().map(clients::metadata).collect::<Vec<_>>()
                ))?;
            } else {
                for c in all {
                    let state = if c.disabled { "disabled" } else { "active" };
                    println!(
                        "{}\t{}\t{}\t{}",
                        escape(&c.client_id),
                        c.client_type.as_str(),
                        escape(&c.client_name),
                        state
                    );
                }
            }
        }
        ClientCommand::Show { client_id } => {
            let c = store
                .client(&client_id)?
                .ok_or_else(|| anyhow::anyhow!("no client {client_id:?}"))?;
            if as_json {
                print_json(&clients::metadata(&c))?;
            } else {
                println!("{}", serde_json::to_string_pretty(&clients::metadata(&c))?);
            }
        }
        ClientCommand::Disable { client_id } => {
            if !store.set_client_disabled(&client_id, true, now())? {
                anyhow::bail!("no client {client_id:?}");
            }
            super::record(
                store,
                event::CLIENT_DISABLED,
                format!("client:{client_id}"),
                json!({}),
            );
            if as_json {
                print_json(&json!({ "client_id": client_id, "disabled": true }))?;
            } else {
                println!("disabled client {client_id}");
            }
        }
        ClientCommand::RotateSecret { client_id } => {
            let c = store
                .client(&client_id)?
                .ok_or_else(|| anyhow::anyhow!("no client {client_id:?}"))?;
            if c.client_type != ClientType::Confidential {
                anyhow::bail!("client {client_id:?} is public: it has no secret");
            }
            if c.has_keys() {
                anyhow::bail!(
                    "client {client_id:?} authenticates with its keys (private_key_jwt): it has no secret"
                );
            }
            let new_secret = secret::new_secret();
            store.set_client_secret_hash(&client_id, &secret::hash_token(&new_secret), now())?;
            super::record(
                store,
                event::CLIENT_SECRET_ROTATED,
                format!("client:{client_id}"),
                json!({}),
            );
            if as_json {
                print_json(&json!({ "client_id": client_id, "client_secret": new_secret }))?;
            } else {
                println!("client_secret: {new_secret}");
                println!("(the secret is shown only now; the previous one no longer works)");
            }
        }
    }
    Ok(())
}
