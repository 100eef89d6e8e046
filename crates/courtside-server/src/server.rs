//! The server: builds the node from the configuration (and on it the sports, leaderboard and
//! account services), serves HTTP, WebSocket and SSE on one listener, sweeps expired history,
//! and shuts down gracefully (refuse new work, tell clients to reconnect, drain them while
//! `/health` and `/ready` (503) still answer, flush the store, exit before the deadline). Logs where a first start put the secrets it generated.
//! With `tls.*` set the one listener speaks TLS only, its certificate reloaded without a restart.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use courtside_core::broker::{Broker, InProcessBroker};
use courtside_core::presence::PresenceStore;
use courtside_core::store::CommitSink;
use courtside_postgres::{PostgresBroker, PostgresLimiter, PostgresPresence, PostgresStore};
use courtside_redis::{RedisBroker, RedisEndpoint, RedisLimiter, RedisPresence};
use courtside_core::hub::Hub;
use courtside_core::node::{Node, NodeParts};
use courtside_core::sequencer::Sequencer;
use courtside_core::stream::now_ms;
use courtside_core::{ChannelName, Epoch, NamespaceOptions};
use courtside_domain::claim::ClaimPolicy;
use courtside_domain::service::SportsService;
use courtside_leaderboard::{LeaderboardError, LeaderboardService, UpdateSink};
use courtside_core::presence::MemoryPresence;
use courtside_core::store::StreamStore;
use courtside_sqlite::SqliteStore;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthSetupError, Authenticator};
use crate::config::{BrokerChoice, Config, StoreChoice};
use crate::accounts::Accounts;
use crate::hooks::AppHooks;
use crate::http::ApiError;
use crate::leaderboard_feed::{ListenerWatch, PersonalPushes, Ticker, pushes_enabled};
use crate::metrics::{Metrics, PushCounters};
use crate::quotas::UserQuotas;
use crate::protocol::ClientError;
use crate::rate_limit::{HttpRateLimiter, SharedLimits};
use crate::state::ServerState;
use crate::transport::linger::LingeringListener;
use crate::transport::tls::certificate::{CertificateFiles, ReloadingCertificate};
use crate::transport::tls::{self, TlsListener};

/// How often expired history is swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error("cannot open the store ({store}): {message}")]
    Store { store: String, message: String },
    #[error("cannot connect the broker: {0}")]
    Broker(String),
    #[error("cannot open the shared rate limits: {0}")]
    RateLimits(String),
    #[error("sports settings: {0}")]
    Sports(String),
    #[error("leaderboards: {0}")]
    Leaderboards(String),
    #[error(transparent)]
    EventMap(#[from] crate::event_map::MapError),
    #[error(transparent)]
    PayloadSchema(#[from] crate::payload_schema::SchemaError),
    #[error(transparent)]
    Hooks(#[from] crate::hooks::HooksError),
    #[error("{key}: {source}")]
    Certificate { key: &'static str, source: crate::transport::tls::certificate::CertificateError },
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A started server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
    serve: JoinHandle<()>,
}

impl RunningServer {
    /// Starts the shutdown; [`RunningServer::stopped`] resolves when it is complete.
    pub fn shutdown(&self) {
        self.state.shutdown.cancel();
    }

    /// After a stop signal: every connection gets the maintenance notice, the server waits
    /// `maintenance_notice_secs` (cut short by another signal), then shuts down and waits for
    /// that to complete.
    pub async fn stop_after_notice(self) {
        let secs = self.state.config.maintenance_notice_secs;
        let message = if secs == 0 { "The server is restarting now".to_string() } else { format!("The server restarts in {secs} s") };
        self.state.announce_maintenance(message, Duration::from_secs(secs), false);
        if secs > 0 {
            tracing::info!(secs, "maintenance notice sent; shutting down when it is up (another signal: now)");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                _ = wait_for_signal() => {}
            }
        }
        tracing::info!("shutting down");
        self.shutdown();
        self.stopped().await;
    }

    /// Waits for the server to stop (after [`RunningServer::shutdown`]).
    pub async fn stopped(self) {
        let _ = self.serve.await;
    }
}

/// Opens the store, binds the listener and starts serving in the background.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    let auth = Authenticator::from_config(&config)?;
    for secret in auth.generated() {
        let path = std::fs::canonicalize(&secret.path).unwrap_or_else(|_| secret.path.clone());
        tracing::info!("first start: generated the {} into {}", secret.what, path.display());
    }
    // Unusable certificate files stop the start before any backend is opened.
    let metrics = Metrics::default();
    let tls = tls_listener_config(&config, &metrics)?;
    let namespaces: Vec<&str> = config.namespaces.keys().map(String::as_str).collect();
    let hooks = AppHooks::new(&config.hooks, &namespaces, metrics.hooks.clone())?;
    let node_id = Epoch::new_random().to_string();
    // Critical announcements overtake whatever each connection has queued.
    let hub = Arc::new(Hub::with_urgency(Arc::new(courtside_domain::layout::is_urgent)));
    let sequencer = Sequencer::new(hub.clone());
    let (broker, presence) = open_broker(&config, &node_id, sequencer.clone()).await?;
    let store = open_store(&config, broker.clone()).await?;
    let node = Arc::new(Node::new(NodeParts {
        hub,
        sequencer,
        store,
        broker,
        presence,
        namespaces: config.namespace_map(),
    }));
    let sports = sports_service(&config, &node)?;
    let accounts = Accounts::new(node.writer());
    let socketio_map = Arc::new(config.socketio.compile()?);
    let payload_schemas = config.payload_schemas()?;
    let leaderboards = leaderboard_service(&config, &node, metrics.leaderboard_pushes.clone()).await?;
    if pushes_enabled(&config) {
        node.watch_subscriptions(Arc::new(ListenerWatch { leaderboards: leaderboards.clone() }));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Listen { addr: config.listen, source })?;
    let shared_limits = open_shared_limits(&config).await?;
    let http_limits =
        HttpRateLimiter::with_backend(config.sports.rate_limits_by_class(), shared_limits, metrics.rate_limit_backend_errors.clone());
    let quotas = UserQuotas::new(
        config.client.connections_per_user_max,
        config.client.subscriptions_per_user_max,
        metrics.quota_refusals.clone(),
    );
    let state = Arc::new(ServerState {
        node,
        sports,
        leaderboards,
        http_limits,
        accounts,
        auth,
        config,
        metrics,
        quotas,
        socketio_map,
        payload_schemas,
        hooks,
        shutdown: CancellationToken::new(),
        maintenance: tokio::sync::watch::Sender::new(None),
        tasks: TaskTracker::new(),
        node_id,
        next_connection_id: AtomicU64::new(1),
    });
    Ticker::spawn(state.clone());
    let tls = tls.map(|(certificate, server_config)| {
        let check_every = Duration::from_secs(state.config.tls.reload_check_secs);
        certificate.spawn_watcher(check_every, state.shutdown.clone());
        server_config
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let serve = tokio::spawn(serve(listener, addr, tls, state.clone()));
    tracing::info!(%addr, scheme, "courtside listening");
    Ok(RunningServer { addr, state, serve })
}

/// The TLS listener's certificate (reloadable) and server settings, when `tls.*` is set; a file
/// that cannot be used stops the start, naming its key.
fn tls_listener_config(config: &Config, metrics: &Metrics) -> Result<Option<(Arc<ReloadingCertificate>, Arc<rustls::ServerConfig>)>, ServerError> {
    use crate::transport::tls::certificate::CertificateError;
    let Some((cert, key)) = config.tls.files() else { return Ok(None) };
    let files = CertificateFiles { cert: cert.to_path_buf(), key: key.to_path_buf() };
    let certificate = ReloadingCertificate::load(files, tls::crypto_provider(), metrics.tls_reloads.clone()).map_err(|source| {
        let key = match &source {
            CertificateError::Unreadable { what: "key", .. } | CertificateError::NoKey { .. } | CertificateError::NotPem { what: "key", .. } => "tls.key_file",
            _ => "tls.cert_file",
        };
        ServerError::Certificate { key, source }
    })?;
    let server_config = tls::server_config(certificate.clone()).map_err(|error| ServerError::Tls(error.to_string()))?;
    Ok(Some((certificate, server_config)))
}

/// The sports service on the node's store: public channels keep what their namespace says.
fn sports_service(config: &Config, node: &Node) -> Result<SportsService, ServerError> {
    sports_service_on(config, node.writer())
}

/// The sports service on `store` as `config` sets it up (also for tools that open the store
/// themselves, like `courtside export`).
pub fn sports_service_on(config: &Config, store: Arc<dyn StreamStore>) -> Result<SportsService, ServerError> {
    let claims = &config.sports;
    let policy = ClaimPolicy::new(claims.claim_ttl_secs.saturating_mul(1000), claims.claim_ttl_max_secs.saturating_mul(1000))
        .map_err(|error| ServerError::Sports(error.to_string()))?;
    let namespaces = config.namespace_map();
    let retention_for = move |channel: &ChannelName| {
        namespaces.get(channel.namespace()).map_or_else(|| NamespaceOptions::default().retention(), |options| options.retention())
    };
    let now = || i64::try_from(now_ms()).unwrap_or(i64::MAX);
    Ok(SportsService::new(store, retention_for, policy, now))
}

/// The leaderboard service on the node's store, with the configured boards declared and the
/// boards created through the API loaded (a configured board and a created one under the same
/// id with other specs stop the start).
async fn leaderboard_service(config: &Config, node: &Node, counters: Arc<PushCounters>) -> Result<LeaderboardService, ServerError> {
    let now = || i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let sink = PersonalPushes::start(config, node.writer(), counters).map(|sink| sink as Arc<dyn UpdateSink>);
    let mut service = LeaderboardService::new(node.writer(), now, sink);
    if let Some(public) = config.namespaces.get(courtside_leaderboard::layout::PUBLIC_NAMESPACE) {
        service = service.with_public_channels(public.retention());
    }
    let failed = |error: LeaderboardError| ServerError::Leaderboards(error.to_string());
    for (id, board) in &config.leaderboards {
        service.declare(board.spec(id)).map_err(failed)?;
    }
    service.load_boards().await.map_err(failed)?;
    Ok(service)
}

/// The Redis at `url`, trusting `redis_ca_file` when one is set (a `rediss://` server).
fn redis_endpoint(config: &Config, url: String) -> Result<RedisEndpoint, String> {
    let endpoint = RedisEndpoint::new(url);
    match &config.redis_ca_file {
        Some(ca_file) => endpoint.with_ca_file(ca_file).map_err(|e| format!("redis_ca_file: {e}")),
        None => Ok(endpoint),
    }
}

/// The broker (and the presence store that goes with it) the configuration names.
async fn open_broker(
    config: &Config,
    node_id: &str,
    sequencer: Arc<Sequencer>,
) -> Result<(Arc<dyn Broker>, Arc<dyn PresenceStore>), ServerError> {
    match config.broker_choice().map_err(ServerError::Broker)? {
        BrokerChoice::InProcess => Ok((Arc::new(InProcessBroker::new(sequencer)), Arc::new(MemoryPresence::default()))),
        BrokerChoice::Redis(url) => {
            let endpoint = redis_endpoint(config, url).map_err(ServerError::Broker)?;
            let broker = RedisBroker::connect(&endpoint, &config.redis_prefix, node_id, sequencer)
                .await
                .map_err(|e| ServerError::Broker(e.to_string()))?;
            let ttl = Duration::from_secs(config.presence_ttl_secs);
            let presence = RedisPresence::connect(&endpoint, &config.redis_prefix, ttl)
                .await
                .map_err(|e| ServerError::Broker(e.to_string()))?;
            Ok((broker, presence))
        }
        BrokerChoice::Postgres => {
            let Ok(StoreChoice::Postgres(url)) = config.store_choice() else {
                return Err(ServerError::Broker("broker = \"postgres\" needs a postgres:// store".into()));
            };
            let broker = PostgresBroker::connect(&url, node_id, sequencer)
                .await
                .map_err(|e| ServerError::Broker(e.to_string()))?;
            let ttl = Duration::from_secs(config.presence_ttl_secs);
            let presence = PostgresPresence::connect(&url, ttl).await.map_err(|e| ServerError::Broker(e.to_string()))?;
            Ok((broker, presence))
        }
    }
}

/// Where the per-caller rate limits are counted (`sports.rate_limit_backend`): with `"auto"`, in
/// Redis when the broker is Redis, else in PostgreSQL when the store is; `None`: this node's
/// memory (a single node, or `"local"`).
async fn open_shared_limits(config: &Config) -> Result<Option<SharedLimits>, ServerError> {
    if config.sports.rate_limit_backend == "local" {
        return Ok(None);
    }
    let failed = |error: String| ServerError::RateLimits(error);
    if let Ok(BrokerChoice::Redis(url)) = config.broker_choice() {
        let endpoint = redis_endpoint(config, url).map_err(&failed)?;
        let limiter = RedisLimiter::connect(&endpoint, &config.redis_prefix).await.map_err(|e| failed(e.to_string()))?;
        return Ok(Some(SharedLimits { name: "redis", backend: Arc::new(limiter) }));
    }
    if let Ok(StoreChoice::Postgres(url)) = config.store_choice() {
        let limiter = PostgresLimiter::connect(&url).await.map_err(|e| failed(e.to_string()))?;
        return Ok(Some(SharedLimits { name: "postgres", backend: limiter }));
    }
    Ok(None)
}

/// The stream store the configuration names, handing commits to `sink`; runs migrations.
pub async fn open_store(config: &Config, sink: Arc<dyn CommitSink>) -> Result<Arc<dyn StreamStore>, ServerError> {
    match config.store_choice().map_err(|message| ServerError::Store { store: config.store.clone(), message })? {
        StoreChoice::Sqlite => {
            let path = config.data_dir.join("courtside.db");
            let store = SqliteStore::open(&path, sink)
                .map_err(|e| ServerError::Store { store: path.display().to_string(), message: e.to_string() })?;
            Ok(Arc::new(store))
        }
        StoreChoice::Postgres(url) => {
            let store = PostgresStore::connect(&url, sink)
                .await
                .map_err(|e| ServerError::Store { store: "PostgreSQL".into(), message: e.to_string() })?;
            Ok(Arc::new(store))
        }
    }
}

/// Brings the configured store's schema up to date without serving.
pub async fn migrate(config: &Config) -> Result<(), ServerError> {
    match config.store_choice().map_err(|message| ServerError::Store { store: config.store.clone(), message })? {
        StoreChoice::Postgres(url) => courtside_postgres::migrate(&url)
            .await
            .map_err(|e| ServerError::Store { store: "PostgreSQL".into(), message: e.to_string() }),
        StoreChoice::Sqlite => {
            let store = open_store(config, Arc::new(courtside_core::store::NoSink)).await?;
            store.close().await;
            Ok(())
        }
    }
}

async fn serve(listener: TcpListener, addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>, state: Arc<ServerState>) {
    let sweeper = tokio::spawn(sweep_expired(state.clone()));
    let claim_sweeper = tokio::spawn(expire_claims(state.clone()));
    let idle_sweeper = tokio::spawn(crate::expiry::run(state.clone()));
    let app = crate::router::router(state.clone()).layer(axum::middleware::from_fn_with_state(state.clone(), refuse_while_draining));
    // The listener stays open until the connections have drained, so probes get their 503.
    let stop_listening = CancellationToken::new();
    let drained = stop_listening.clone();
    // Replies and pushes are small and latency-bound: no Nagle delay on accepted sockets.
    // Closed connections linger: what the client still sends is read and discarded, so the
    // last close frame or response is not lost to a reset.
    let listener = LingeringListener(listener);
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let serving = match tls {
        Some(server_config) => tokio::spawn(
            // An empty tap: axum gives `ConnectInfo<SocketAddr>` for any tapped listener (TCP's
            // no-delay is already set before the handshake).
            axum::serve(TlsListener::new(listener, addr, server_config).tap_io(|_| ()), make_service)
                .with_graceful_shutdown(async move { drained.cancelled().await })
                .into_future(),
        ),
        None => tokio::spawn(
            axum::serve(listener.tap_io(|tcp| drop(tcp.set_nodelay(true))), make_service)
                .with_graceful_shutdown(async move { drained.cancelled().await })
                .into_future(),
        ),
    };
    state.shutdown.cancelled().await;
    sweeper.abort();
    claim_sweeper.abort();
    idle_sweeper.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(state.config.shutdown_timeout_secs);
    state.tasks.close();
    if tokio::time::timeout_at(deadline, state.tasks.wait()).await.is_err() {
        tracing::warn!(remaining = state.tasks.len(), "shutdown deadline passed with connections still open");
    }
    // Now close the listener; requests in flight get what is left of the deadline.
    stop_listening.cancel();
    let abort = serving.abort_handle();
    match tokio::time::timeout_at(deadline, serving).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::error!(%error, "server stopped with an error"),
        Ok(Err(error)) => tracing::error!(%error, "server task failed"),
        Err(_) => {
            tracing::warn!("shutdown deadline passed with HTTP requests still in flight");
            abort.abort();
        }
    }
    state.node.store.close().await;
    tracing::info!("courtside stopped");
}

/// Once shutdown has begun, only `/health` and `/ready` (which then answers 503) are served
/// while connections drain; any other request is refused with 503 `unavailable`.
async fn refuse_while_draining(State(state): State<Arc<ServerState>>, request: Request, next: Next) -> Response {
    if state.shutdown.is_cancelled() && !matches!(request.uri().path(), "/health" | "/ready") {
        return ApiError(ClientError::Unavailable("the server is shutting down".into())).into_response();
    }
    next.run(request).await
}

/// How often expired claims are released (and their release published).
const CLAIM_SWEEP_INTERVAL: Duration = Duration::from_secs(5);

async fn expire_claims(state: Arc<ServerState>) {
    let mut interval = tokio::time::interval(CLAIM_SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        match state.sports.expire_claims().await {
            Ok(0) => {}
            Ok(released) => tracing::debug!(released, "expired claims released"),
            Err(error) => tracing::warn!(%error, "claim sweep failed"),
        }
    }
}

async fn sweep_expired(state: Arc<ServerState>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        match state.node.store.sweep_expired(courtside_core::stream::now_ms()).await {
            Ok(0) => {}
            Ok(dropped) => tracing::debug!(dropped, "expired history swept"),
            Err(error) => tracing::warn!(%error, "history sweep failed"),
        }
    }
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run_until_signal(config: Config) -> Result<(), ServerError> {
    let server = start(config).await?;
    wait_for_signal().await;
    server.stop_after_notice().await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
