//! Prometheus metrics in text format. Counters are plain atomics bumped on the hot path and
//! rendered at scrape time; the hub's own counters are read from [`courtside_core::hub::HubStats`].
//! Kept per server (no global registry), so several servers in one process stay apart.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use courtside_core::hub::Hub;
use courtside_core::node::Node;

use crate::protocol::Disconnect;
pub use crate::histogram::Histogram;

/// What became of the leaderboard's rank pushes (see `leaderboard_feed`).
#[derive(Default)]
pub struct PushCounters {
    pub written: AtomicU64,
    /// Not queued: the push queue was full.
    pub dropped: AtomicU64,
    /// Queued but not written (the store refused or failed).
    pub failed: AtomicU64,
}

/// Connections and subscriptions refused by a per-user quota (see `quotas`).
#[derive(Default)]
pub struct QuotaRefusals {
    pub connections_per_user: AtomicU64,
    pub subscriptions_per_user: AtomicU64,
}

/// Reloads of the TLS listener's certificate (see `transport::tls::certificate`).
#[derive(Debug, Default)]
pub struct TlsReloads {
    pub succeeded: AtomicU64,
    /// The files could not be used; the previous certificate stayed.
    pub failed: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    pub connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub commands_total: AtomicU64,
    pub command_errors_total: AtomicU64,
    pub client_publications_total: AtomicU64,
    pub gaps_filled_total: AtomicU64,
    pub duplicates_dropped_total: AtomicU64,
    pub sse_connections: AtomicI64,
    /// Open Socket.IO sockets (on either Engine.IO transport).
    pub socketio_connections: AtomicI64,
    pub socketio_connections_total: AtomicU64,
    disconnects: [AtomicU64; Disconnect::ALL.len()],
    /// From the hub receiving a committed publication to its bytes being handed to the socket.
    pub deliver_latency: Histogram,
    pub leaderboard_pushes: Arc<PushCounters>,
    pub quota_refusals: Arc<QuotaRefusals>,
    /// Channels removed from the store by this node's idle-channel expiry.
    pub channels_expired_total: AtomicU64,
    /// Users' sign-in records removed because every refresh-token family in them expired.
    pub sign_ins_expired_total: AtomicU64,
    pub hooks: Arc<crate::hooks::HookStats>,
    /// Decisions the shared rate-limit backend failed to give (counted locally instead).
    pub rate_limit_backend_errors: Arc<AtomicU64>,
    pub tls_reloads: Arc<TlsReloads>,
}

impl Metrics {
    pub fn disconnected(&self, reason: Disconnect) {
        if let Some(i) = Disconnect::ALL.iter().position(|d| *d == reason) {
            self.disconnects[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, node: &Node) -> String {
        let hub: &Hub = &node.hub;
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(&mut out, "courtside_connections", "Open WebSocket connections.", self.connections.load(Ordering::Relaxed));
        gauge(&mut out, "courtside_sse_connections", "Open SSE streams.", self.sse_connections.load(Ordering::Relaxed));
        gauge(&mut out, "courtside_socketio_connections", "Open Socket.IO sockets (long-polling or WebSocket).", self.socketio_connections.load(Ordering::Relaxed));
        gauge(&mut out, "courtside_subscriptions", "Channel subscriptions on this node.", hub.subscription_count() as i64);
        counter(&mut out, "courtside_connections_total", "WebSocket connections accepted.", load(&self.connections_total));
        counter(&mut out, "courtside_socketio_connections_total", "Socket.IO sessions opened.", load(&self.socketio_connections_total));
        counter(&mut out, "courtside_commands_total", "Client commands handled.", load(&self.commands_total));
        let pushes = &self.leaderboard_pushes;
        counter(&mut out, "courtside_leaderboard_pushes_total", "Rank pushes written to players' personal channels.", load(&pushes.written));
        counter(&mut out, "courtside_leaderboard_pushes_dropped_total", "Rank pushes dropped because the push queue was full.", load(&pushes.dropped));
        counter(&mut out, "courtside_leaderboard_pushes_failed_total", "Rank pushes the store did not take.", load(&pushes.failed));
        counter(&mut out, "courtside_command_errors_total", "Client commands answered with an error.", load(&self.command_errors_total));
        counter(&mut out, "courtside_client_publications_total", "Publish requests accepted from clients and the API (idempotent repeats included).", load(&self.client_publications_total));
        counter(&mut out, "courtside_publications_total", "Publications fanned out by the hub.", load(&hub.stats.publications));
        counter(&mut out, "courtside_deliveries_total", "Items (publications and presence events) queued to subscriber connections.", load(&hub.stats.deliveries));
        counter(&mut out, "courtside_queue_overflows_total", "Deliveries refused by a full connection queue (slow consumers).", load(&hub.stats.overflows));
        counter(&mut out, "courtside_gaps_filled_total", "Gaps in a connection's live stream filled from history.", load(&self.gaps_filled_total));
        counter(&mut out, "courtside_duplicates_dropped_total", "Live publications a connection dropped as already delivered.", load(&self.duplicates_dropped_total));
        let sequencer = &node.sequencer.stats;
        counter(&mut out, "courtside_broker_gaps_repaired_total", "Gaps in the broker's stream filled from the store before delivery.", load(&sequencer.gaps_repaired));
        counter(&mut out, "courtside_broker_duplicates_dropped_total", "Publications the broker delivered more than once.", load(&sequencer.duplicates_dropped));
        counter(&mut out, "courtside_broker_repairs_abandoned_total", "Gap repairs given up because the store could not be read.", load(&sequencer.repairs_abandoned));
        for broker_counter in node.broker.counters() {
            counter(&mut out, &format!("courtside_broker_{}_total", broker_counter.name), &broker_counter.help, broker_counter.value);
        }
        counter(
            &mut out,
            "courtside_rate_limit_backend_errors_total",
            "Rate-limit decisions the shared backend (Redis or PostgreSQL) failed to give; this node counted them itself.",
            load(&self.rate_limit_backend_errors),
        );
        let _ = writeln!(out, "# HELP courtside_quota_refusals_total Requests refused by a quota: per-user connections and subscriptions, channels per namespace.\n# TYPE courtside_quota_refusals_total counter");
        let refusals = &self.quota_refusals;
        for (quota, count) in [
            ("connections_per_user", load(&refusals.connections_per_user)),
            ("subscriptions_per_user", load(&refusals.subscriptions_per_user)),
            ("channels_per_namespace", node.channel_limit_refusals()),
        ] {
            let _ = writeln!(out, "courtside_quota_refusals_total{{quota=\"{quota}\"}} {count}");
        }
        counter(&mut out, "courtside_channels_expired_total", "Idle channels removed from the store by this node (their history, state and epoch).", load(&self.channels_expired_total));
        counter(&mut out, "courtside_sign_ins_expired_total", "Users' sign-in records removed once every refresh-token family in them had expired.", load(&self.sign_ins_expired_total));
        self.hooks.render(&mut out);
        let _ = writeln!(out, "# HELP courtside_tls_reloads_total Reloads of the TLS listener's certificate, by result.\n# TYPE courtside_tls_reloads_total counter");
        for (result, count) in [("ok", &self.tls_reloads.succeeded), ("failed", &self.tls_reloads.failed)] {
            let _ = writeln!(out, "courtside_tls_reloads_total{{result=\"{result}\"}} {}", load(count));
        }
        let _ = writeln!(out, "# HELP courtside_disconnects_total Connections closed by the server, by code.\n# TYPE courtside_disconnects_total counter");
        for (reason, count) in Disconnect::ALL.iter().zip(&self.disconnects) {
            let _ = writeln!(out, "courtside_disconnects_total{{code=\"{}\",reason=\"{}\"}} {}", reason.code(), reason.reason(), load(count));
        }
        self.deliver_latency.render(
            &mut out,
            "courtside_deliver_latency_seconds",
            "Time from the hub receiving a committed publication to writing it to a subscriber's socket.",
        );
        out
    }
}
