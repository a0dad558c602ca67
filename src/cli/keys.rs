use clap::Subcommand;
use serde_json::json;

use super::{now, print_json};
use crate::config::{Config, SigningAlg};
use crate::keys;
use crate::store::Store;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their state (active, pending, retiring).
    List,
    /// Generate new signing keys: published at once, signing after `key_publish_ahead` seconds;
    /// the old keys stay published until the tokens they signed have expired.
    Rotate {
        /// Rotate only this algorithm (ES256, RS256, EdDSA); default: every configured one.
        #[arg(long)]
        alg: Option<String>,
    },
}

pub fn run(store: &Store, config: &Config, cmd: KeysCommand, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List => {
            let t = now();
            let all = store.signing_keys()?;
            let rows: Vec<_> = all
                .iter()
                .map(|k| {
                    json!({
                        "kid": k.kid, "alg": k.alg, "state": keys::key_state(k, &all, t),
                        "published_at": k.created_at, "activates_at": k.activates_at, "expires_at": k.expires_at,
                    })
                })
                .collect();
            if as_json {
                print_json(&json!(rows))?;
            } else {
                for k in &all {
                    println!("{}\t{}\t{}", k.kid, k.alg, keys::key_state(k, &all, t));
                }
            }
        }
        KeysCommand::Rotate { alg } => {
            let algs = match alg {
                Some(a) => vec![SigningAlg::parse(&a).ok_or_else(|| {
                    anyhow::anyhow!("--alg: unknown algorithm {a:?} (ES256, RS256, EdDSA)")
                })?],
                None => config.signing_algs(),
            };
            let kek = keys::Kek::load(&config.keys_dir)?;
            let mut out = Vec::new();
            for alg in algs {
                let rec =
                    keys::rotate(store, &kek, config, alg, now(), false)?.ok_or_else(|| {
                        anyhow::anyhow!("rotation of {} did not happen", alg.as_str())
                    })?;
                let actor = crate::protocol::audit::Actor::Cli;
                crate::protocol::audit::record_blocking(
                    store,
                    crate::protocol::audit::key_rotated(&actor, None, &rec, now()),
                );
                out.push(json!({ "kid": rec.kid, "alg": rec.alg, "published_at": rec.created_at, "activates_at": rec.activates_at }));
            }
            if as_json {
                print_json(&json!(out))?;
            } else {
                for k in &out {
                    println!(
                        "new key {} ({}) published; signs from {}",
                        k["kid"], k["alg"], k["activates_at"]
                    );
                }
            }
        }
    }
    Ok(())
}
