use clap::Args;

use super::print_json;
use crate::store::{AuditQuery, Store};
use crate::text::escape;

#[derive(Args)]
pub struct AuditArgs {
    /// At most this many entries (1 to 1000); without --after, the newest ones.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Only entries with an id greater than this (page forwards).
    #[arg(long, value_name = "ID")]
    after: Option<i64>,
    /// Only this event (`client.created`) or events under a prefix (`client`, `login`).
    #[arg(long)]
    event: Option<String>,
    /// Only entries whose actor starts with this (`admin:latchkey-console/user:root`, `user:alice`).
    #[arg(long)]
    actor: Option<String>,
    /// Only entries by or about this client id.
    #[arg(long)]
    client: Option<String>,
}

pub fn run(store: &Store, args: AuditArgs, as_json: bool) -> anyhow::Result<()> {
    if !(1..=1000).contains(&args.limit) {
        anyhow::bail!("--limit must be 1 to 1000");
    }
    let entries = store.audit(&AuditQuery {
        after: args.after,
        event: args.event,
        limit: args.limit,
        actor: args.actor,
        client: args.client,
        ..Default::default()
    })?;
    if as_json {
        print_json(&serde_json::to_value(&entries)?)?;
    } else {
        // Text a user typed (a username at the login page) is stored as typed: escaped here so
        // it cannot forge a row or drive the terminal.
        for e in &entries {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                e.id,
                e.at,
                escape(&e.event),
                escape(&e.outcome),
                escape(&e.actor),
                escape(e.target.as_deref().unwrap_or("-")),
                escape(e.ip.as_deref().unwrap_or("-")),
                escape(&e.details.to_string())
            );
        }
    }
    Ok(())
}
