use clap::Args;

use super::print_json;
use crate::store::{AuditQuery, Store};

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
}

pub fn run(store: &Store, args: AuditArgs, as_json: bool) -> anyhow::Result<()> {
    if !(1..=1000).contains(&args.limit) {
        anyhow::bail!("--limit must be 1 to 1000");
    }
    let entries = store.audit(&AuditQuery {
        after: args.after,
        event: args.event,
        limit: args.limit,
    })?;
    if as_json {
        print_json(&serde_json::to_value(&entries)?)?;
    } else {
        for e in &entries {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                e.id,
                e.at,
                e.event,
                e.outcome,
                e.actor,
                e.target.as_deref().unwrap_or("-"),
                e.ip.as_deref().unwrap_or("-"),
                e.details
            );
        }
    }
    Ok(())
}
