use clap::Subcommand;

use super::{now, print_json};
use crate::protocol::audit::{Actor, event};
use crate::protocol::registration;
use crate::store::Store;

#[derive(Subcommand)]
pub enum RegistrationTokenCommand {
    /// Create an initial access token for RFC 7591 registration (`POST /register` with
    /// `Authorization: Bearer TOKEN`). The token is printed once and stored only as a hash.
    Create {
        /// Seconds until the token expires (default 86400, at most 31622400).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
        /// How many clients it may register (default: any number until it expires).
        #[arg(long, value_name = "N")]
        max_uses: Option<u64>,
        /// A scope a client registered with this token may hold, beyond the sign-in scopes
        /// (openid profile email offline_access) that every registered client may hold;
        /// repeat it, or give a space-separated list. Default: none.
        #[arg(long, value_name = "SCOPE")]
        scope: Vec<String>,
        /// An audience (API resource indicator) such a client may hold; repeatable. Default:
        /// none, so a registered client cannot get tokens for any API.
        #[arg(long, value_name = "URI")]
        audience: Vec<String>,
        /// A grant type such a client may hold; repeatable. Default: authorization_code and
        /// refresh_token (client_credentials only when named here).
        #[arg(long = "grant", value_name = "GRANT")]
        grants: Vec<String>,
        /// Only this client type may register (as in `client add --type`). Default: either.
        #[arg(long = "type", value_name = "public|confidential")]
        client_type: Option<String>,
    },
    /// List initial access tokens: id, limits, uses and state (never the tokens themselves).
    List,
    /// Revoke an initial access token by its id: `POST /register` refuses it from now on.
    Revoke {
        /// The token's id, as printed by `create` or `list` (base64url: it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

pub fn run(store: &Store, cmd: RegistrationTokenCommand, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        RegistrationTokenCommand::Create {
            expires_in,
            max_uses,
            scope,
            audience,
            grants,
            client_type,
        } => {
            let policy =
                registration::Policy::new(&scope, &audience, &grants, client_type.as_deref())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (token, record) = registration::new_initial_access_token(
                expires_in,
                max_uses,
                &policy,
                &Actor::Cli,
                now(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            store.insert_registration_token(&record)?;
            let id = registration::initial_token_id(&record.token_hash);
            super::record(
                store,
                event::REGISTRATION_TOKEN_CREATED,
                format!("registration_token:{id}"),
                serde_json::json!({ "expires_at": record.expires_at, "max_uses": record.max_uses, "policy": policy }),
            );
            if as_json {
                print_json(&registration::initial_access_token_view(&token, &record))?;
            } else {
                println!("initial_access_token: {token}");
                println!("expires_at:           {}", record.expires_at);
                match record.max_uses {
                    Some(n) => println!("max_uses:             {n}"),
                    None => println!("max_uses:             unlimited"),
                }
                println!("policy:               {}", policy.to_json());
                println!("(the token is shown only now)");
            }
        }
        RegistrationTokenCommand::List => {
            let now = now();
            let tokens = store.registration_tokens()?;
            if as_json {
                let views: Vec<_> = tokens
                    .iter()
                    .map(|t| registration::registration_token_view(t, now))
                    .collect();
                print_json(&serde_json::json!({ "registration_tokens": views }))?;
            } else if tokens.is_empty() {
                println!("no registration tokens");
            } else {
                println!(
                    "{:<12}  {:<8}  {:>6}  {:>8}  {:>12}  created_by",
                    "id", "status", "uses", "max_uses", "expires_at"
                );
                for t in &tokens {
                    let max = t.max_uses.map_or("-".to_owned(), |m| m.to_string());
                    println!(
                        "{:<12}  {:<8}  {:>6}  {:>8}  {:>12}  {}",
                        registration::initial_token_id(&t.token_hash),
                        t.status(now).as_str(),
                        t.uses,
                        max,
                        t.expires_at,
                        crate::text::escape(&t.created_by)
                    );
                }
            }
        }
        RegistrationTokenCommand::Revoke { id } => {
            let now = now();
            let Some(t) = store.revoke_registration_token(&id, now)? else {
                anyhow::bail!(
                    "no registration token with id {id:?} (see `latchkey registration-token list`)"
                );
            };
            super::record(
                store,
                event::REGISTRATION_TOKEN_REVOKED,
                format!("registration_token:{id}"),
                serde_json::json!({}),
            );
            let view = registration::registration_token_view(&t, now);
            if as_json {
                print_json(&view)?;
            } else {
                println!("revoked registration token {id}; POST /register refuses it from now on");
            }
        }
    }
    Ok(())
}
