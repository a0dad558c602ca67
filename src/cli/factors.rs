//! `latchkey user invite | factors | remove-passkey | reset-factors`: enrolment links and the
//! sign-in factors of a user (passkeys, the authenticator app, recovery codes).

use serde_json::json;

use super::{now, print_json, record};
use crate::config::Config;
use crate::model::User;
use crate::protocol::audit::event;
use crate::protocol::login::invite;
use crate::store::Store;
use crate::text::escape;

fn find(store: &Store, username: &str) -> anyhow::Result<User> {
    store
        .user_by_username(username)?
        .ok_or_else(|| anyhow::anyhow!("no user named {username:?}"))
}

/// `user invite NAME [--create]`: a single-use link to create a passkey; with `--create`, a new
/// user with no password (a passkey-only account).
pub fn invite(
    store: &Store,
    config: &Config,
    username: &str,
    create: bool,
    email: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    if !invite::usable(&config.issuer) {
        anyhow::bail!("{}", invite::PASSKEYS_OFF);
    }
    let t = now();
    let user = match store.user_by_username(username)? {
        Some(u) => u,
        None if create => {
            if !crate::text::printable(username, 200) {
                anyhow::bail!(
                    "the username must be 1 to 200 characters, with no control or bidi formatting characters"
                );
            }
            let u = User {
                user_id: crate::secret::random_id(),
                username: username.to_owned(),
                email,
                name: None,
                // No password: an empty hash never verifies (a passkey-only account).
                password_hash: String::new(),
                disabled: false,
                created_at: t,
                updated_at: t,
                is_admin: false,
            };
            store.insert_user(&u)?;
            record(
                store,
                event::USER_CREATED,
                format!("user:{}", u.user_id),
                json!({ "username": u.username, "password": false }),
            );
            u
        }
        None => anyhow::bail!(
            "no user named {username:?} (add --create to make one without a password)"
        ),
    };
    if user.disabled {
        anyhow::bail!("user {username:?} is disabled");
    }
    let url = invite::create(
        store,
        &config.issuer,
        &user.user_id,
        config.invitation_ttl,
        t,
    )?;
    let expires_at = t + config.invitation_ttl as i64;
    record(
        store,
        event::USER_INVITED,
        format!("user:{}", user.user_id),
        json!({ "expires_at": expires_at }),
    );
    if as_json {
        print_json(
            &json!({ "sub": user.user_id, "username": user.username, "url": url, "expires_at": expires_at }),
        )?;
    } else {
        println!("{url}");
        eprintln!(
            "single-use passkey enrolment link for {} (valid {} hours); send it to the user over a channel you trust",
            escape(&user.username),
            config.invitation_ttl / 3600
        );
    }
    Ok(())
}

pub fn list(store: &Store, username: &str, as_json: bool) -> anyhow::Result<()> {
    let user = find(store, username)?;
    let f = store.factors(&user.user_id)?;
    if as_json {
        return print_json(&crate::protocol::admin::factors_view(&f));
    }
    let password = if user.password_hash.is_empty() {
        "no"
    } else {
        "yes"
    };
    println!("password        {password}");
    match &f.totp {
        Some(t) => println!(
            "authenticator   yes (since {}), {} recovery codes left",
            crate::text::ago(t.created_at, now()),
            f.recovery_codes_left
        ),
        None => println!("authenticator   no"),
    }
    for p in &f.passkeys {
        println!(
            "passkey         {}  {}  added {}{}",
            p.credential_id,
            escape(&p.name),
            crate::text::ago(p.created_at, now()),
            p.last_used_at
                .map(|u| format!(", last used {}", crate::text::ago(u, now())))
                .unwrap_or_default()
        );
    }
    if f.passkeys.is_empty() {
        println!("passkeys        none");
    }
    Ok(())
}

pub fn remove_passkey(store: &Store, username: &str, credential_id: &str) -> anyhow::Result<()> {
    let user = find(store, username)?;
    if !store.delete_passkey(&user.user_id, credential_id)? {
        anyhow::bail!(
            "{username:?} has no passkey {credential_id:?} (see `latchkey user factors {username}`)"
        );
    }
    record(
        store,
        event::PASSKEY_REMOVED,
        format!("user:{}", user.user_id),
        json!({ "credential_id": credential_id }),
    );
    println!("removed passkey {credential_id} of {}", escape(username));
    Ok(())
}

pub fn reset(store: &Store, username: &str) -> anyhow::Result<()> {
    let user = find(store, username)?;
    let n = store.reset_factors(&user.user_id)?;
    record(
        store,
        event::USER_FACTORS_RESET,
        format!("user:{}", user.user_id),
        json!({ "removed": n }),
    );
    println!(
        "removed every passkey, the authenticator app and the recovery codes of {}; `latchkey user invite {}` makes an enrolment link",
        escape(username),
        escape(username)
    );
    Ok(())
}
