//! The WebSocket transport: one task per connection drives its [`Session`], reading client
//! messages, draining the connection's bounded outbox into one write per batch, pinging, and
//! closing with a documented code (slow consumer, idle, token expiry, bad input, shutdown).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use courtside_core::hub::{self, Inbox, OverflowSignal};
use tokio::time::{sleep_until, Instant};

use crate::protocol::Disconnect;
use crate::server::ServerState;
use crate::session::Session;

/// Bytes of queued frames written in one WebSocket message, at most.
const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024;
/// A write that takes longer than this marks the client as a slow consumer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages over `message_bytes_max` are read whole and answered with a clean 3501 close; only
/// past this many times the limit does the WebSocket layer stop reading mid-message, which
/// resets the connection.
const HARD_LIMIT_FACTOR: usize = 4;
/// Time allowed for the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn upgrade(State(state): State<Arc<ServerState>>, ws: WebSocketUpgrade) -> Response {
    let limits = &state.config.client;
    let token = state.tasks.token();
    ws.read_buffer_size(limits.read_buffer_bytes)
        .write_buffer_size(0)
        .max_message_size(limits.message_bytes_max * HARD_LIMIT_FACTOR)
        .max_frame_size(limits.message_bytes_max * HARD_LIMIT_FACTOR)
        .on_upgrade(move |socket| async move {
            run(socket, state).await;
            drop(token);
        })
}

async fn run(mut socket: WebSocket, state: Arc<ServerState>) {
    state.metrics.connections.fetch_add(1, Ordering::Relaxed);
    state.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
    let (outbox, mut inbox) = hub::outbox(state.config.client.send_queue_len_max);
    let mut session = Session::new(state.clone(), outbox);
    let reason = drive(&mut socket, &mut session, &mut inbox, &state).await;
    session.close().await;
    if let Some(reason) = reason {
        state.metrics.disconnected(reason);
        close(&mut socket, reason).await;
    }
    state.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Runs the connection until it ends; returns why the server closes it (`None`: the client left).
async fn drive(socket: &mut WebSocket, session: &mut Session, inbox: &mut Inbox, state: &ServerState) -> Option<Disconnect> {
    let limits = &state.config.client;
    let ping_interval = Duration::from_secs(limits.ping_interval_secs);
    let idle_timeout = Duration::from_secs(limits.idle_timeout_secs);
    let connect_deadline = Instant::now() + Duration::from_secs(limits.connect_timeout_secs);
    let mut next_ping = Instant::now() + ping_interval;
    let mut last_heard = Instant::now();
    let overflow = inbox.overflow_signal();
    loop {
        let token_deadline = session.token_deadline().map(Instant::from_std);
        let mut send_ping = false;
        let step: Result<bool, Disconnect> = tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => Err(Disconnect::Shutdown),
            _ = overflow.overflowed() => Err(Disconnect::SlowConsumer),
            message = socket.recv() => {
                last_heard = Instant::now();
                match message {
                    None | Some(Ok(Message::Close(_))) => return None,
                    Some(Ok(Message::Text(text))) if text.len() > limits.message_bytes_max => Err(Disconnect::MessageTooBig),
                    Some(Ok(Message::Text(text))) => session.handle_message(text.as_str()).await.map(|()| true),
                    Some(Ok(Message::Binary(_))) => Err(Disconnect::InvalidFrame),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(true),
                    Some(Err(error)) => return classify_read_error(&error),
                }
            }
            Some(item) = inbox.recv() => {
                let mut handled = session.handle_outbound(item).await;
                while handled.is_ok() && session.out.len() < WRITE_BATCH_BYTES_MAX {
                    let Some(item) = inbox.try_recv() else { break };
                    handled = session.handle_outbound(item).await;
                }
                handled.map(|()| true)
            }
            _ = sleep_until(next_ping) => {
                next_ping = Instant::now() + ping_interval;
                if last_heard.elapsed() > idle_timeout {
                    Err(Disconnect::IdleTimeout)
                } else {
                    send_ping = true;
                    Ok(true)
                }
            }
            _ = sleep_until(token_deadline.unwrap_or(connect_deadline)), if token_deadline.is_some() => Err(Disconnect::TokenExpired),
            _ = sleep_until(connect_deadline), if !session.is_connected() => Err(Disconnect::ConnectRequired),
        };
        if let Err(reason) = step {
            // Replies written before the failure still go out, then the close.
            if reason != Disconnect::SlowConsumer {
                let _ = write_pending(socket, session, &overflow).await;
            }
            return Some(reason);
        }
        if send_ping && socket.send(Message::Ping(Default::default())).await.is_err() {
            return None;
        }
        if let Err(reason) = write_pending(socket, session, &overflow).await {
            return reason;
        }
    }
}

/// Writes everything the session has queued as one WebSocket message. A write that stalls
/// while the outbox overflows, or past the write timeout, ends the connection.
async fn write_pending(socket: &mut WebSocket, session: &mut Session, overflow: &OverflowSignal) -> Result<(), Option<Disconnect>> {
    if session.out.is_empty() {
        return Ok(());
    }
    let frames = std::mem::take(&mut session.out);
    let Ok(text) = String::from_utf8(frames) else { return Err(Some(Disconnect::InternalError)) };
    tokio::select! {
        written = socket.send(Message::Text(text.into())) => written.map_err(|_| None),
        _ = overflow.overflowed() => Err(Some(Disconnect::SlowConsumer)),
        _ = tokio::time::sleep(WRITE_TIMEOUT) => Err(Some(Disconnect::SlowConsumer)),
    }
}

fn classify_read_error(error: &axum::Error) -> Option<Disconnect> {
    let text = error.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") || text.contains("capacity") {
        Some(Disconnect::MessageTooBig)
    } else if text.contains("UTF-8") || text.contains("utf-8") || text.contains("Utf8") {
        Some(Disconnect::InvalidFrame)
    } else {
        None
    }
}

/// Sends the disconnect push and the close frame, then reads until the client closes too (or
/// the close timeout passes): closing a socket with unread input makes the kernel reset the
/// connection, and the client would lose the close frame.
async fn close(socket: &mut WebSocket, reason: Disconnect) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        socket.send(Message::Text(reason.push_frame().into())).await?;
        socket
            .send(Message::Close(Some(CloseFrame { code: reason.code(), reason: reason.reason().into() })))
            .await?;
        while let Some(Ok(_)) = socket.recv().await {}
        Ok::<(), axum::Error>(())
    })
    .await;
}
