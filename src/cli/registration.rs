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
    },
}

pub fn run(store: &Store, cmd: RegistrationTokenCommand, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        RegistrationTokenCommand::Create {
            expires_in,
            max_uses,
        } => {
            let (token, record) =
                registration::new_initial_access_token(expires_in, max_uses, &Actor::Cli, now())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            store.insert_registration_token(&record)?;
            let id = registration::initial_token_id(&record.token_hash);
            super::record(
                store,
                event::REGISTRATION_TOKEN_CREATED,
                format!("registration_token:{id}"),
                serde_json::json!({ "expires_at": record.expires_at, "max_uses": record.max_uses }),
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
                println!("(the token is shown only now)");
            }
        }
    }
    Ok(())
}
