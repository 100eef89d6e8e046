//! [`ServerState`]: what every request handler, connection and background task of a running
//! server shares — the node, the sports, leaderboard and account services, the limiters, the configuration,
//! the metrics, and the shutdown signal. The bottom of the server's HTTP layers: routes and
//! transports use it, it uses none of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
use crate::protocol::ClientError;
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
    /// The Socket.IO event maps of the configuration, compiled.
    pub socketio_map: Arc<EventMap>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Connections and streams still running; shutdown waits for them.
    pub tasks: TaskTracker,
    /// Names this node among its peers (random per start); qualifies client ids in presence.
    pub node_id: String,
    pub(crate) next_connection_id: AtomicU64,
}

impl ServerState {
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

