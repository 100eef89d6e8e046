//! The `courtside` command: `serve` runs the server; `config` prints the effective
//! configuration; `token` mints a development token; `sub`/`pub` are command-line clients;
//! `bench` measures a running server. `main` only parses and dispatches.

mod bench;
mod client;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use courtside_core::Role;
use courtside_server::auth::Authenticator;
use courtside_server::config::AuthOverrides;
use courtside_server::{Config, ConfigOverrides};

#[derive(Parser)]
#[command(name = "courtside", version, about = "A self-hostable real-time sync server for live sports")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (by default: SQLite store under --data-dir, in-process broker).
    Serve(ServerArgs),
    /// Print the effective configuration (defaults < file < COURTSIDE_* env < flags) as TOML.
    Config(ServerArgs),
    /// Create or upgrade the store's schema (also done at every start), then exit.
    Migrate(ServerArgs),
    /// Mint a token the server accepts (HS256, with the server's key).
    Token(TokenArgs),
    /// Subscribe to a channel and print each publication as one JSON line.
    Sub(client::SubArgs),
    /// Publish one JSON payload and print where it landed.
    Pub(client::PubArgs),
    /// Load a running server with subscribers and publishers; print one JSON report.
    Bench(bench::BenchArgs),
}

/// Where the configuration comes from: shared by `serve`, `config` and `token`.
#[derive(Args, Clone)]
struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, env = "COURTSIDE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the store and generated keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Stream store: `sqlite` or a postgres:// URL.
    #[arg(long)]
    store: Option<String>,
    /// Broker between nodes: `memory` or a redis:// URL.
    #[arg(long)]
    broker: Option<String>,
    /// File holding the HS256 token secret, shared by every node (and by `courtside token`).
    #[arg(long)]
    jwt_secret_file: Option<PathBuf>,
}

impl ServerArgs {
    fn load(&self) -> Result<Config, String> {
        let overrides = ConfigOverrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            store: self.store.clone(),
            broker: self.broker.clone(),
            auth: self.jwt_secret_file.clone().map(|file| AuthOverrides { jwt_secret_file: Some(file) }),
        };
        Config::load(self.config.as_deref(), &overrides).map_err(|e| e.to_string())
    }
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The user the token speaks for.
    #[arg(long)]
    sub: String,
    /// A role (repeatable): anonymous, spectator, media, coach, scorekeeper, staff, director.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Lifetime in seconds (default: auth.token_ttl_secs).
    #[arg(long)]
    ttl_secs: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COURTSIDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("courtside: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("courtside: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(args) => {
            let config = args.load()?;
            courtside_server::run_until_signal(config).await.map_err(|e| e.to_string())
        }
        Command::Migrate(args) => {
            let config = args.load()?;
            courtside_server::server::migrate(&config).await.map_err(|e| e.to_string())?;
            eprintln!("courtside: store {} is up to date", config.store_choice().map(|c| c.to_string()).unwrap_or_default());
            Ok(())
        }
        Command::Config(args) => {
            print!("{}", args.load()?.to_toml());
            Ok(())
        }
        Command::Token(args) => {
            let config = args.server.load()?;
            let roles = args
                .roles
                .iter()
                .map(|r| Role::parse(r).ok_or_else(|| format!("unknown role {r:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            let auth = Authenticator::from_config(&config).map_err(|e| e.to_string())?;
            let token = auth
                .mint(&args.sub, &roles, args.ttl_secs.unwrap_or(config.auth.token_ttl_secs))
                .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
        Command::Sub(args) => client::sub(args).await,
        Command::Pub(args) => client::publish(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
