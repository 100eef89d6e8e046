//! [`ServerState`]: what every request handler, connection and background task of a running
//! server shares — the node, the sports, leaderboard and account services, the limiters, the configuration,
//! the metrics, and the shutdown signal. The bottom of the server's HTTP layers: routes and
//! transports use it, it uses none of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use courtside_core::access::Principal;
use courtside_core::hub::ConnectionId;
use courtside_core::node::Node;
use courtside_domain::service::SportsService;
use courtside_leaderboard::{BoardSpec, LeaderboardError, LeaderboardService};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::Accounts;
use crate::auth::Authenticator;
use crate::config::{Config, StoreChoice};
use crate::event_map::EventMap;
use crate::metrics::Metrics;
use crate::protocol::{ClientError, SystemNotice};
use crate::quotas::UserQuotas;
use crate::rate_limit::HttpRateLimiter;

/// Everything a request handler or connection needs.
pub struct ServerState {
    pub node: Arc<Node>,
    /// Tournaments, claims and scores, kept in the node's store.
    pub sports: SportsService,
    /// Leaderboards and ratings, kept in the node's store.
    pub leaderboards: LeaderboardService,
    /// Per-caller limits of the sports API.
    pub http_limits: HttpRateLimiter,
    /// Users and sign-in sessions, kept in the node's store.
    pub accounts: Accounts,
    pub auth: Authenticator,
    pub config: Config,
    pub metrics: Metrics,
    /// Live connections and subscriptions per user on this node, and their limits.
    pub quotas: Arc<UserQuotas>,
    /// The Socket.IO event maps of the configuration, compiled.
    pub socketio_map: Arc<EventMap>,
    /// The app's backend, deciding what `[hooks]` names.
    pub hooks: crate::hooks::AppHooks,
    /// Publication payload schemas by namespace, compiled.
    pub payload_schemas: crate::payload_schema::PayloadSchemas,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// The maintenance announced, if any: every connection sends its notice and closes at
    /// its `cut_at` (see [`ServerState::announce_maintenance`]).
    pub maintenance: tokio::sync::watch::Sender<Option<Arc<Maintenance>>>,
    /// Connections and streams still running; shutdown waits for them.
    pub tasks: TaskTracker,
    /// Names this node among its peers (random per start); qualifies client ids in presence.
    pub node_id: String,
    pub(crate) next_connection_id: AtomicU64,
}

/// An announced maintenance: the notice, and when connections are closed (`None`: the notice of
/// a shutdown, which closes them itself).
#[derive(Debug)]
pub struct Maintenance {
    pub notice: SystemNotice,
    pub cut_at: Option<tokio::time::Instant>,
}

impl Maintenance {
    /// The maintenance a connection opened at `opened_at` has not told its client about yet:
    /// the current one, unless it is `told`, or its cut came before the connection opened (the
    /// node serves as before after a cut; the last notice stays in the watch).
    pub fn untold(current: &Option<Arc<Maintenance>>, told: &Option<Arc<Maintenance>>, opened_at: tokio::time::Instant) -> Option<Arc<Maintenance>> {
        let current = current.as_ref()?;
        if told.as_ref().is_some_and(|told| Arc::ptr_eq(current, told)) || current.cut_at.is_some_and(|cut| cut < opened_at) {
            return None;
        }
        Some(current.clone())
    }

    /// When the connection that was told closes, if the notice closes it.
    pub fn cut(told: &Option<Arc<Maintenance>>) -> Option<tokio::time::Instant> {
        told.as_ref()?.cut_at
    }
}

impl ServerState {
    /// Tells every connection of this node (native, SSE, Socket.IO) that it closes in
    /// `duration`; with `cut`, closes each then (with a code that says to reconnect) —
    /// connections opened meanwhile too — and serves as before afterwards. Without `cut` the
    /// caller closes them (a shutdown).
    pub fn announce_maintenance(&self, message: String, duration: Duration, cut: bool) -> Arc<Maintenance> {
        let notice = SystemNotice {
            kind: "MAINTENANCE",
            message,
            severity: "warning",
            timestamp: crate::event_map::template::iso_time(courtside_core::stream::now_ms()),
            duration: duration.as_millis() as u64,
        };
        let cut_at = cut.then(|| tokio::time::Instant::now() + duration);
        let maintenance = Arc::new(Maintenance { notice, cut_at });
        self.maintenance.send_replace(Some(maintenance.clone()));
        maintenance
    }

    /// Whether other nodes write to this node's store (a PostgreSQL store), so reads must
    /// catch up with what they committed.
    pub fn shares_store(&self) -> bool {
        matches!(self.config.store_choice(), Ok(StoreChoice::Postgres(_)))
    }

    /// A board's spec; a board created on another node is loaded on first use.
    pub async fn known_board(&self, board: &str) -> Result<BoardSpec, LeaderboardError> {
        match self.leaderboards.board(board) {
            Ok(spec) => Ok(spec),
            Err(_) => {
                self.leaderboards.load_boards().await?;
                self.leaderboards.board(board)
            }
        }
    }

    /// A board ready to be read: known (a board created on another node is loaded on first
    /// use) and, when nodes share the store, its `season` (`None`: the current one) caught up.
    pub async fn fresh_board(&self, board: &str, season: Option<&str>) -> Result<BoardSpec, LeaderboardError> {
        let spec = self.known_board(board).await?;
        if self.shares_store() {
            self.leaderboards.catch_up(board, season).await?;
        }
        Ok(spec)
    }
    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Who a client presenting `token` (or none) is, and when its token expires: the one rule
    /// for the HTTP API, SSE and Socket.IO (a JWT is verified; no token is anonymous where
    /// `allow_anonymous` allows it).
    pub fn admit(&self, token: Option<&str>) -> Result<(Principal, Option<u64>), ClientError> {
        match token {
            Some(token) => self.auth.verify(token).map(|v| (v.principal, Some(v.expires_at_secs))).map_err(ClientError::from),
            None if self.config.allow_anonymous => Ok((Principal::Anonymous, None)),
            None => Err(ClientError::Unauthorized("this server needs a token".into())),
        }
    }
}

