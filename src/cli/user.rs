use clap::Subcommand;
use serde_json::json;

use super::{now, print_json, read_password_stdin};
use crate::model::User;
use crate::protocol::audit::event;
use crate::secret;
use crate::store::{SignedOut, Store, StoreError};
use crate::text::{escape, printable};

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
        /// A human admin: may use the admin console (`/console`).
        #[arg(long)]
        admin: bool,
    },
    /// Give a user the admin role (the admin console, `/console`).
    GrantAdmin { username: String },
    /// Take the admin role away.
    RevokeAdmin { username: String },
    /// List users (never their password hashes).
    List,
    /// Disable a user: no new logins or refreshes.
    Disable { username: String },
    /// Set a new password, read from stdin. Ends the user's browser sessions and revokes their
    /// refresh tokens and unused codes: every device signs in again with the new password.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Revoke every grant of a user: refresh tokens (and the access tokens issued with them),
    /// unused codes, remembered consents and browser sessions.
    RevokeGrants { username: String },
    /// Where a user is signed in: each app on a device (a live refresh-token family, with its
    /// id for `signout --family`) and each browser session.
    Sessions { username: String },
    /// Sign a user out everywhere (every refresh family, unused code and browser session;
    /// consents stay), or with `--family ID` one app on one device only. Audited.
    Signout {
        username: String,
        /// A family id from `user sessions`.
        #[arg(long, value_name = "ID", allow_hyphen_values = true)]
        family: Option<String>,
    },
    /// Print a single-use link (valid `invitation_ttl`) where the user creates a passkey.
    /// With `--create`, a new user with no password: a passkey-only account.
    Invite {
        username: String,
        #[arg(long)]
        create: bool,
        /// The new user's email (with --create).
        #[arg(long, requires = "create")]
        email: Option<String>,
    },
    /// A user's sign-in factors: password or not, passkeys (with their ids), the
    /// authenticator app and how many recovery codes are left.
    Factors { username: String },
    /// Remove one passkey (an id from `user factors`).
    RemovePasskey {
        username: String,
        #[arg(allow_hyphen_values = true)]
        credential_id: String,
    },
    /// Remove every passkey, the authenticator app and the recovery codes (a lost phone);
    /// then `user invite` for a new passkey.
    ResetFactors { username: String },
}

/// Queues the back-channel logout notices of a sign-out; a running server delivers them.
fn queue_logouts(store: &Store, what: SignedOut) {
    if let Err(e) = store.queue_logout_notices(&what, now()) {
        eprintln!("warning: could not queue back-channel logout notices: {e}");
    }
}

fn when(t: i64) -> String {
    crate::text::ago(t, now())
}

fn view(u: &User) -> serde_json::Value {
    json!({
        "sub": u.user_id, "username": u.username, "email": u.email, "name": u.name,
        "disabled": u.disabled, "created_at": u.created_at,
    })
}

fn set_admin(store: &Store, username: &str, admin: bool) -> anyhow::Result<()> {
    let Some(user) = store.user_by_username(username)? else {
        anyhow::bail!("no user named {username:?}");
    };
    store.set_user_admin(&user.user_id, admin, now())?;
    super::record(
        store,
        if admin {
            event::USER_ADMIN_GRANTED
        } else {
            event::USER_ADMIN_REVOKED
        },
        format!("user:{}", user.user_id),
        json!({ "username": user.username }),
    );
    if admin {
        println!("{} may now use the admin console", escape(username));
    } else {
        println!("{} is no longer an admin", escape(username));
    }
    Ok(())
}

pub fn run(
    store: &Store,
    config: &crate::config::Config,
    cmd: UserCommand,
    as_json: bool,
) -> anyhow::Result<()> {
    let cost = config.password_cost();
    match cmd {
        UserCommand::Invite {
            username,
            create,
            email,
        } => super::factors::invite(store, config, &username, create, email, as_json)?,
        UserCommand::GrantAdmin { username } => set_admin(store, &username, true)?,
        UserCommand::RevokeAdmin { username } => set_admin(store, &username, false)?,
        UserCommand::Factors { username } => super::factors::list(store, &username, as_json)?,
        UserCommand::RemovePasskey {
            username,
            credential_id,
        } => super::factors::remove_passkey(store, &username, &credential_id)?,
        UserCommand::ResetFactors { username } => super::factors::reset(store, &username)?,
        UserCommand::Add {
            username,
            email,
            name,
            password_stdin,
            admin,
        } => {
            if !password_stdin {
                anyhow::bail!("pass --password-stdin and give the password on standard input");
            }
            let username = username.trim().to_owned();
            if !printable(&username, 200) {
                anyhow::bail!(
                    "--username must be 1 to 200 characters, with no control or bidi formatting characters"
                );
            }
            if email
                .as_deref()
                .is_some_and(|e| !printable(e, 320) || !e.contains('@'))
            {
                anyhow::bail!("--email is not an email address");
            }
            if name.as_deref().is_some_and(|n| !printable(n, 200)) {
                anyhow::bail!(
                    "--name must be 1 to 200 characters, with no control or bidi formatting characters"
                );
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
                is_admin: admin,
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
                        escape(&u.username),
                        u.user_id,
                        escape(u.email.as_deref().unwrap_or("-")),
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
            let Some(user) = store.user_by_username(&username)? else {
                anyhow::bail!("no user named {username:?}");
            };
            let hash = secret::hash_password_with(&read_password_stdin()?, cost)?;
            let Some(ended) = store.change_user_password(&user.user_id, &hash, now())? else {
                anyhow::bail!("no user named {username:?}");
            };
            queue_logouts(
                store,
                SignedOut::User {
                    user_id: user.user_id.clone(),
                },
            );
            super::record(
                store,
                event::USER_PASSWORD_RESET,
                format!("user:{}", user.user_id),
                json!({
                    "username": username,
                    "sessions_ended": ended.sessions,
                    "token_families_revoked": ended.token_families,
                }),
            );
            if as_json {
                print_json(&json!({
                    "username": username,
                    "password_changed": true,
                    "sessions_ended": ended.sessions,
                    "token_families_revoked": ended.token_families,
                    "authorization_codes_burnt": ended.authorization_codes,
                }))?;
            } else {
                println!(
                    "password changed for {username}; ended {} browser session(s), revoked {} refresh token famil{}",
                    ended.sessions,
                    ended.token_families,
                    if ended.token_families == 1 {
                        "y"
                    } else {
                        "ies"
                    }
                );
            }
        }
        UserCommand::Sessions { username } => {
            let Some(user) = store.user_by_username(&username)? else {
                anyhow::bail!("no user named {username:?}");
            };
            let s = store.user_sign_ins(&user.user_id, now())?;
            if as_json {
                print_json(&crate::protocol::signins::view(&s))?;
            } else {
                if s.apps.is_empty() && s.sessions.is_empty() {
                    println!("{username} is not signed in anywhere");
                }
                for a in &s.apps {
                    println!(
                        "app      {}  {}  signed in {}, last used {}{}{}{}",
                        a.family_id,
                        escape(&a.client_name),
                        when(a.signed_in_at),
                        when(a.last_used_at),
                        a.last_ip
                            .as_deref()
                            .map(|ip| format!(" from {ip}"))
                            .unwrap_or_default(),
                        if a.dpop_bound { ", DPoP-bound" } else { "" },
                        a.user_agent
                            .as_deref()
                            .map(|u| format!(" ({})", escape(u)))
                            .unwrap_or_default(),
                    );
                }
                for x in &s.sessions {
                    println!(
                        "browser  {}  signed in {}{}{}",
                        x.sid,
                        when(x.auth_time),
                        x.seen
                            .ip
                            .as_deref()
                            .map(|ip| format!(" from {ip}"))
                            .unwrap_or_default(),
                        x.seen
                            .user_agent
                            .as_deref()
                            .map(|u| format!(" ({})", escape(u)))
                            .unwrap_or_default(),
                    );
                }
            }
        }
        UserCommand::Signout { username, family } => {
            let Some(user) = store.user_by_username(&username)? else {
                anyhow::bail!("no user named {username:?}");
            };
            let r = match &family {
                Some(f) => {
                    let Some(client_id) = store.sign_out_family(&user.user_id, f, now())? else {
                        anyhow::bail!(
                            "{username} has no signed-in device {f:?} (see `latchkey user sessions {username}`)"
                        );
                    };
                    queue_logouts(
                        store,
                        SignedOut::Family {
                            user_id: user.user_id.clone(),
                            client_id,
                            family_id: f.clone(),
                        },
                    );
                    crate::store::GrantsRevoked {
                        token_families: 1,
                        ..Default::default()
                    }
                }
                None => {
                    let r = store.sign_out_everywhere(&user.user_id, now())?;
                    queue_logouts(
                        store,
                        SignedOut::User {
                            user_id: user.user_id.clone(),
                        },
                    );
                    r
                }
            };
            let v = crate::protocol::signins::signed_out(family.as_deref(), r);
            super::record(
                store,
                event::USER_SIGNED_OUT,
                format!("user:{}", user.user_id),
                v.clone(),
            );
            if as_json {
                let mut v = v;
                v["username"] = json!(username);
                print_json(&v)?;
            } else if let Some(f) = &family {
                println!("signed {username} out of {f}");
            } else {
                println!(
                    "signed {username} out everywhere: {} app(s), {} browser session(s)",
                    r.token_families, r.sessions
                );
            }
        }
        UserCommand::RevokeGrants { username } => {
            let Some(user) = store.user_by_username(&username)? else {
                anyhow::bail!("no user named {username:?}");
            };
            let r = store.revoke_user_grants(&user.user_id, now())?;
            queue_logouts(
                store,
                SignedOut::User {
                    user_id: user.user_id.clone(),
                },
            );
            let v = serde_json::to_value(r)?;
            super::record(
                store,
                event::GRANTS_REVOKED,
                format!("user:{}", user.user_id),
                v.clone(),
            );
            if as_json {
                let mut v = v;
                v["username"] = json!(username);
                print_json(&v)?;
            } else {
                println!(
                    "revoked the grants of {username}: {} refresh token famil{}, {} code(s), {} consent(s), {} browser session(s)",
                    r.token_families,
                    if r.token_families == 1 { "y" } else { "ies" },
                    r.authorization_codes,
                    r.consents,
                    r.sessions
                );
            }
        }
    }
    Ok(())
}
