//! The `latchkey` command line. Every subcommand reads the same configuration and opens (and
//! migrates) the same database; `--json` prints machine-readable output on stdout; errors go
//! to stderr with a non-zero exit code.

mod audit;
mod client;
mod factors;
mod keys;
mod registration;
mod serve;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::store::Store;

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "OAuth 2.1 / OpenID Connect authorization server"
)]
struct Cli {
    /// Configuration file (default: ./latchkey.toml if present). LATCHKEY_<KEY> env vars override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once per process: the size of `Client` (its `add` flags) does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the server.
    Serve,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Manage client applications.
    Client {
        #[command(subcommand)]
        command: client::ClientCommand,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// RFC 7591 initial access tokens for dynamic client registration.
    RegistrationToken {
        #[command(subcommand)]
        command: registration::RegistrationTokenCommand,
    },
    /// Read the audit log (admin actions and security events), oldest first.
    Audit(audit::AuditArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("latchkey: {e}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, Command::Serve);
    init_logging(&config, serving);
    let result = match cli.command {
        Command::Serve => serve::run(config),
        Command::User { command } => {
            with_store(&config).and_then(|s| user::run(&s, &config, command, cli.json))
        }
        Command::Client { command } => {
            with_store(&config).and_then(|s| client::run(&s, command, cli.json))
        }
        Command::Keys { command } => {
            with_store(&config).and_then(|s| keys::run(&s, &config, command, cli.json))
        }
        Command::RegistrationToken { command } => {
            with_store(&config).and_then(|s| registration::run(&s, command, cli.json))
        }
        Command::Audit(args) => with_store(&config).and_then(|s| audit::run(&s, args, cli.json)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn with_store(config: &Config) -> anyhow::Result<Store> {
    Store::open_single(&config.database_url)
}

fn init_logging(config: &Config, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match config.log_format {
        // JSON escapes control characters itself.
        LogFormat::Json => builder.json().with_writer(std::io::stderr).try_init(),
        // No colours: every control character in a text line is escaped, so none can forge
        // a line or drive the terminal (text.rs).
        LogFormat::Text => builder
            .with_ansi(false)
            .with_writer(|| crate::text::EscapingWriter(std::io::stderr()))
            .try_init(),
    };
}

/// Reads a password from standard input: the whole input, minus one trailing newline.
fn read_password_stdin() -> anyhow::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut s)
        .map_err(|e| anyhow::anyhow!("cannot read the password from stdin: {e}"))?;
    let s = s.strip_suffix('\n').unwrap_or(&s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    if s.chars().count() < 8 {
        anyhow::bail!("the password must be at least 8 characters");
    }
    Ok(s.to_owned())
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn now() -> i64 {
    crate::http::unix_now()
}

/// Records an operator's action in the audit log (actor `cli:<os user>`).
fn record(store: &Store, event: &str, target: String, details: serde_json::Value) {
    use crate::protocol::audit;
    let e = audit::entry(
        event,
        &audit::Actor::Cli,
        None,
        Some(target),
        audit::SUCCESS,
        details,
        now(),
    );
    audit::record_blocking(store, e);
}
