use clap::Subcommand;
use serde_json::json;

use super::{now, print_json, read_password_stdin};
use crate::model::User;
use crate::protocol::audit::event;
use crate::secret;
use crate::store::{Store, StoreError};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (never their password hashes).
    List,
    /// Disable a user: no new logins or refreshes.
    Disable { username: String },
    /// Set a new password, read from stdin.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn view(u: &User) -> serde_json::Value {
    json!({
        "sub": u.user_id, "username": u.username, "email": u.email, "name": u.name,
        "disabled": u.disabled, "created_at": u.created_at,
    })
}

pub fn run(
    store: &Store,
    cmd: UserCommand,
    as_json: bool,
    cost: secret::PasswordCost,
) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            username,
            email,
            name,
            password_stdin,
        } => {
            if !password_stdin {
                anyhow::bail!("pass --password-stdin and give the password on standard input");
            }
            let username = username.trim().to_owned();
            if username.is_empty() || username.len() > 200 || username.chars().any(char::is_control)
            {
                anyhow::bail!("--username must be 1 to 200 printable characters");
            }
            let password = read_password_stdin()?;
            let t = now();
            let user = User {
                user_id: secret::random_id(),
                username,
                email,
                name,
                password_hash: secret::hash_password_with(&password, cost)?,
                disabled: false,
                created_at: t,
                updated_at: t,
            };
            match store.insert_user(&user) {
                Err(StoreError::Conflict(_)) => {
                    anyhow::bail!("user {:?} already exists", user.username)
                }
                r => r?,
            }
            super::record(
                store,
                event::USER_CREATED,
                format!("user:{}", user.user_id),
                json!({ "username": user.username }),
            );
            if as_json {
                print_json(&view(&user))?;
            } else {
                println!("created user {} (sub {})", user.username, user.user_id);
            }
        }
        UserCommand::List => {
            let users = store.users()?;
            if as_json {
                print_json(&json!(users.iter().map(view).collect::<Vec<_>>()))?;
            } else {
                for u in users {
                    let state = if u.disabled { "disabled" } else { "active" };
                    println!(
                        "{}\t{}\t{}\t{}",
                        u.username,
                        u.user_id,
                        u.email.as_deref().unwrap_or("-"),
                        state
                    );
                }
            }
        }
        UserCommand::Disable { username } => {
            if !store.set_user_disabled(&username, true, now())? {
                anyhow::bail!("no user named {username:?}");
            }
            super::record(
                store,
                event::USER_DISABLED,
                format!(
                    "user:{}",
                    store
                        .user_by_username(&username)?
                        .map(|u| u.user_id)
                        .unwrap_or_default()
                ),
                json!({ "username": username }),
            );
            if as_json {
                print_json(&json!({ "username": username, "disabled": true }))?;
            } else {
                println!("disabled user {username}");
            }
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            if !password_stdin {
                anyhow::bail!("pass --password-stdin and give the password on standard input");
            }
            if store.user_by_username(&username)?.is_none() {
                anyhow::bail!("no user named {username:?}");
            }
            let hash = secret::hash_password_with(&read_password_stdin()?, cost)?;
            store.set_user_password_hash(&username, &hash, now())?;
            super::record(
                store,
                event::USER_PASSWORD_RESET,
                format!(
                    "user:{}",
                    store
                        .user_by_username(&username)?
                        .map(|u| u.user_id)
                        .unwrap_or_default()
                ),
                json!({ "username": username }),
            );
            if as_json {
                print_json(&json!({ "username": username, "password_changed": true }))?;
            } else {
                println!("password changed for {username}");
            }
        }
    }
    Ok(())
}
