//! The `courtside` command: `serve` runs the server; `config` prints the effective
//! configuration; `token` mints a development token (with the key the server generated, never a
//! new one); `sub`/`pub` are command-line clients; `bench` measures a running server; the store
//! tools (`user`, `export`, `import`, `migrate`) print only their result. `main` only parses,
//! sets up logging and dispatches.

mod bench;
mod client;
mod demo;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use courtside_core::Role;
use courtside_core::store::{NoSink, StreamStore};
use courtside_domain::service::{Actor, SportsService};
use courtside_server::accounts::Accounts;
use courtside_server::auth::{Authenticator, Secrets, parse_roles};
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
    /// Run the server with a sample tournament and simulated scorekeepers updating live scores.
    Demo(ServerArgs),
    /// Print one tournament as JSON (to move it to another server: `courtside import`).
    Export(ExportArgs),
    /// Recreate a tournament from `courtside export`'s JSON (refused if its id exists).
    Import(ImportArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (as served at /openapi.json), or with
    /// --markdown the REST reference rendered from it.
    Openapi {
        #[arg(long)]
        markdown: bool,
    },
    /// Manage users who sign in with a password (POST /api/auth/login).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The tournament (event) id.
    event: String,
}

#[derive(Args)]
struct ImportArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The file `courtside export` wrote (`-` for standard input).
    file: PathBuf,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user to the store (the server's own, from the same config and --data-dir).
    Add(UserAddArgs),
    /// List users and their roles.
    List(ServerArgs),
}

#[derive(Args)]
struct UserAddArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Login name (letters, digits, `_.@+-`; an email address fits).
    #[arg(long)]
    username: String,
    /// Password (8 to 1024 bytes). Prefer --password-file or COURTSIDE_USER_PASSWORD: a flag
    /// shows in the process list.
    #[arg(long, env = "COURTSIDE_USER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// File whose first line is the password.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// A role (repeatable): spectator, media, coach, scorekeeper, staff, director.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
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
    /// A role held in one tournament only, as TOURNAMENT=ROLE (repeatable).
    #[arg(long = "tournament-role", value_name = "TOURNAMENT=ROLE")]
    tournament_roles: Vec<String>,
    /// Lifetime in seconds (default: auth.token_ttl_secs).
    #[arg(long)]
    ttl_secs: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; a tool prints only its own result (its store's INFO lines
    // are noise), unless COURTSIDE_LOG asks for more.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Demo(_) => "info",
        _ => "warn",
    };
    // Colour only for a person at a terminal, never into a file or a pipe (and not with NO_COLOR).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COURTSIDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_ansi(colour)
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
            let roles = parse_roles(&args.roles, &config.auth.roles)?;
            let mut tournament_roles: std::collections::BTreeMap<String, Vec<Role>> = Default::default();
            for entry in &args.tournament_roles {
                let (tournament, role) =
                    entry.split_once('=').ok_or_else(|| format!("--tournament-role {entry:?}: write TOURNAMENT=ROLE"))?;
                tournament_roles.entry(tournament.to_string()).or_default().extend(parse_roles(&[role.to_string()], &config.auth.roles)?);
            }
            // Minting never creates a secret: a token signed with a key the server does not
            // have would only be refused later, with no hint why.
            let auth = Authenticator::load(&config, Secrets::ExistingOnly).map_err(|e| e.to_string())?;
            let token = auth
                .mint_scoped(&args.sub, &roles, &tournament_roles, args.ttl_secs.unwrap_or(config.auth.token_ttl_secs))
                .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
        Command::Sub(args) => client::sub(args).await,
        Command::Pub(args) => client::publish(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Demo(args) => {
            let config = args.load()?;
            let server = courtside_server::start(config).await.map_err(|e| e.to_string())?;
            demo::seed(&server.state.sports).await?;
            demo::start_scorekeepers(&server.state.sports);
            let addr = server.addr;
            eprintln!("courtside demo: tournament `demo` is being played on 4 courts at http://{addr}");
            eprintln!("  watch the scoreboard:  courtside sub tournament:demo:scores --snapshot --server http://{addr}");
            eprintln!("  one match:             courtside sub match:demo:r1-c1 --server http://{addr}");
            eprintln!("  over HTTP:             curl -H \"authorization: apikey $(cat <data-dir>/api-key)\" http://{addr}/api/events/demo/scores");
            courtside_server::server::wait_for_signal().await;
            server.stop_after_notice().await;
            Ok(())
        }
        Command::Openapi { markdown } => {
            if markdown {
                print!("{}", courtside_server::openapi::document_markdown());
            } else {
                println!("{}", courtside_server::openapi::document_json());
            }
            Ok(())
        }
        Command::Export(args) => {
            let config = args.server.load()?;
            let (sports, store) = open_sports(&config).await?;
            let exported = sports.export(&tool_director(), &args.event).await;
            store.close().await;
            let exported = exported.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&exported).map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::Import(args) => {
            let config = args.server.load()?;
            let text = if args.file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read standard input: {e}"))?
            } else {
                std::fs::read_to_string(&args.file).map_err(|e| format!("cannot read {}: {e}", args.file.display()))?
            };
            let export = serde_json::from_str(&text).map_err(|e| format!("{} is not a tournament export: {e}", args.file.display()))?;
            let (sports, store) = open_sports(&config).await?;
            let imported = sports.import(&tool_director(), export).await;
            store.close().await;
            let tournament = imported.map_err(|e| e.to_string())?;
            eprintln!("courtside: imported tournament {} ({})", tournament.id, tournament.name);
            Ok(())
        }
        Command::User(UserCommand::Add(args)) => {
            let config = args.server.load()?;
            let roles = parse_roles(&args.roles, &config.auth.roles)?;
            let password = match (&args.password, &args.password_file) {
                (Some(password), None) => password.clone(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                _ => return Err("give the password with exactly one of --password, --password-file or COURTSIDE_USER_PASSWORD".into()),
            };
            let accounts = open_accounts(&config).await?;
            let added = accounts.0.add_user(&args.username, &password, &roles).await;
            accounts.1.close().await;
            let user = added.map_err(|e| e.to_string())?;
            let roles: Vec<&str> = user.roles.iter().map(|role| role.as_str()).collect();
            eprintln!("courtside: added user {} ({})", user.username, roles.join(", "));
            Ok(())
        }
        Command::User(UserCommand::List(args)) => {
            let config = args.load()?;
            let accounts = open_accounts(&config).await?;
            let users = accounts.0.users().await;
            accounts.1.close().await;
            for user in users.map_err(|e| e.to_string())? {
                let roles: Vec<&str> = user.roles.iter().map(|role| role.as_str()).collect();
                println!("{}\t{}", user.username, roles.join(","));
            }
            Ok(())
        }
    }
}


/// The command line acts as a director on its own store.
fn tool_director() -> Actor {
    Actor::new("courtside-cli", vec![Role::Director])
}

async fn open_sports(config: &courtside_server::Config) -> Result<(SportsService, Arc<dyn StreamStore>), String> {
    let store = open_tool_store(config).await?;
    let sports = courtside_server::server::sports_service_on(config, store.clone()).map_err(|e| e.to_string())?;
    Ok((sports, store))
}

async fn open_tool_store(config: &courtside_server::Config) -> Result<Arc<dyn StreamStore>, String> {
    courtside_server::server::open_store(config, Arc::new(NoSink)).await.map_err(|error| {
        format!("{error}\n(if a server is running on this data dir, use its HTTP API instead, with the API key)")
    })
}

/// The configured store, opened for a tool (nothing is delivered to live subscribers from here).
async fn open_accounts(config: &courtside_server::Config) -> Result<(Accounts, Arc<dyn StreamStore>), String> {
    let store = open_tool_store(config).await?;
    Ok((Accounts::new(store.clone()), store))
}
