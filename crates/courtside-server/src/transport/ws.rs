//! The WebSocket transport: one task per connection drives its [`Session`], reading client
//! messages, draining the connection's bounded outbox into one write per batch, pinging, and
//! closing with a documented code (slow consumer, idle, token expiry, bad input, shutdown).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use courtside_core::hub::{self, Inbox};
use tokio::time::{sleep_until, Instant};

use crate::http::ApiError;
use crate::protocol::{ClientError, Disconnect};
use crate::state::{Maintenance, ServerState};
use crate::session::Session;

/// Bytes of queued frames written in one WebSocket message, at most.
const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024;
/// Messages over `message_bytes_max` are read whole and answered with a clean 3501 close; only
/// past this many times the limit does the WebSocket layer stop reading mid-message, which
/// resets the connection.
const HARD_LIMIT_FACTOR: usize = 4;
/// Time allowed for the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn upgrade(State(state): State<Arc<ServerState>>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if origin.is_some_and(|o| !state.config.allows_origin(o)) {
        return ApiError(ClientError::PermissionDenied).into_response();
    }
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
    let (outbox, mut inbox) = hub::bounded_outbox(state.config.client.send_queue_len_max, state.config.client.send_queue_bytes_max);
    let mut session = Session::new(state.clone(), outbox);
    let reason = drive(&mut socket, &mut session, &mut inbox, &state).await;
    Box::pin(session.close()).await;
    if let Some(reason) = reason {
        state.metrics.disconnected(reason);
        close(&mut socket, reason).await;
    }
    state.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Runs the connection until it ends; returns why the server closes it (`None`: the client left).
///
/// The long-lived waits (shutdown, overflow, ping, connect and token timers) are created once and
/// polled across iterations: one publication per iteration is the common case, and re-arming
/// timers and cancellation waits per delivery would cost more than the delivery itself.
async fn drive(socket: &mut WebSocket, session: &mut Session, inbox: &mut Inbox, state: &ServerState) -> Option<Disconnect> {
    let limits = &state.config.client;
    let ping_interval = Duration::from_secs(limits.ping_interval_secs);
    let idle_timeout = Duration::from_secs(limits.idle_timeout_secs);
    let mut last_heard = Instant::now();
    let overflow = inbox.overflow_signal();
    let shutdown = state.shutdown.cancelled();
    let overflowed = overflow.overflowed();
    let ping = sleep_until(Instant::now() + ping_interval);
    let connect_timer = sleep_until(Instant::now() + Duration::from_secs(limits.connect_timeout_secs));
    let token_timer = sleep_until(Instant::now());
    // With `write_coalesce_ms`, pushes wait up to that long for company, so one write carries
    // several; replies never wait.
    let coalesce = Duration::from_millis(limits.write_coalesce_ms);
    let flush_timer = sleep_until(Instant::now());
    // A maintenance notice: told at once (also one announced before this connection opened),
    // then the connection closes at its cut.
    let mut maintenance = state.maintenance.subscribe();
    maintenance.mark_changed();
    let mut told: Option<Arc<Maintenance>> = None;
    let opened_at = Instant::now();
    let cut_timer = sleep_until(Instant::now());
    tokio::pin!(shutdown, overflowed, ping, connect_timer, token_timer, flush_timer, cut_timer);
    let mut token_expiry: Option<u64> = None;
    let mut flush_pending = false;
    loop {
        let mut send_ping = false;
        let mut write_now = true;
        let step: Result<(), Disconnect> = tokio::select! {
            biased;
            _ = &mut shutdown => {
                // A notice announced just before the shutdown still goes out first.
                let untold = Maintenance::untold(&state.maintenance.borrow(), &told, opened_at);
                if let Some(untold) = untold {
                    session.push_notice(&untold.notice);
                }
                Err(Disconnect::Shutdown)
            }
            _ = &mut overflowed => Err(Disconnect::SlowConsumer),
            Ok(()) = maintenance.changed() => {
                let untold = Maintenance::untold(&maintenance.borrow_and_update(), &told, opened_at);
                if let Some(untold) = untold {
                    session.push_notice(&untold.notice);
                    if let Some(cut) = untold.cut_at {
                        cut_timer.as_mut().reset(cut);
                    }
                    told = Some(untold);
                }
                Ok(())
            }
            _ = &mut cut_timer, if Maintenance::cut(&told).is_some() => Err(Disconnect::Maintenance),
            message = socket.recv() => {
                last_heard = Instant::now();
                match message {
                    None => return None,
                    Some(Ok(Message::Close(_))) => {
                        answer_close(socket).await;
                        return None;
                    }
                    Some(Ok(Message::Text(text))) if text.len() > limits.message_bytes_max => Err(Disconnect::MessageTooBig),
                    // Boxed: commands are rare next to deliveries, and their futures are large;
                    // inline they would make every connection's task larger.
                    Some(Ok(Message::Text(text))) => Box::pin(session.handle_message(text.as_str())).await,
                    Some(Ok(Message::Binary(_))) => Err(Disconnect::InvalidFrame),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Err(error)) => return classify_read_error(&error),
                }
            }
            Some(item) = inbox.recv() => {
                let mut next = Some(item);
                let mut handled = Ok(());
                while let Some(item) = next {
                    handled = match session.handle_outbound(item) {
                        Ok(None) => Ok(()),
                        Ok(Some(gap)) => Box::pin(session.deliver_after_gap(gap)).await,
                        Err(reason) => Err(reason),
                    };
                    if handled.is_err() || session.out.len() >= WRITE_BATCH_BYTES_MAX {
                        break;
                    }
                    next = inbox.try_recv();
                }
                if !coalesce.is_zero() && session.out.len() < WRITE_BATCH_BYTES_MAX {
                    write_now = false;
                    if !flush_pending {
                        flush_pending = true;
                        flush_timer.as_mut().reset(Instant::now() + coalesce);
                    }
                }
                handled
            }
            _ = &mut flush_timer, if flush_pending => Ok(()),
            _ = &mut ping => {
                ping.as_mut().reset(Instant::now() + ping_interval);
                if last_heard.elapsed() > idle_timeout {
                    Err(Disconnect::IdleTimeout)
                } else {
                    send_ping = true;
                    Ok(())
                }
            }
            _ = &mut token_timer, if token_expiry.is_some() => Err(Disconnect::TokenExpired),
            _ = &mut connect_timer, if !session.is_connected() => Err(Disconnect::ConnectRequired),
        };
        if session.token_expires_at_secs() != token_expiry {
            token_expiry = session.token_expires_at_secs();
            if let Some(deadline) = session.token_deadline() {
                token_timer.as_mut().reset(Instant::from_std(deadline));
            }
        }
        if let Err(reason) = step {
            // Replies written before the failure still go out, then the close.
            if reason != Disconnect::SlowConsumer && !session.out.is_empty() {
                let frames = std::mem::take(&mut session.out);
                if let Ok(text) = String::from_utf8(frames) {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(Message::Text(text.into()))).await;
                }
            }
            return Some(reason);
        }
        if send_ping && socket.send(Message::Ping(Default::default())).await.is_err() {
            return None;
        }
        if session.out.is_empty() || !write_now {
            continue;
        }
        flush_pending = false;
        // One WebSocket message for everything queued. A write that stalls until the outbox
        // overflows, or through a whole ping interval, marks a slow consumer. (The ping timer
        // may already be due when the write starts; only its next firing means a stall.)
        let frames = std::mem::take(&mut session.out);
        let Ok(text) = String::from_utf8(frames) else { return Some(Disconnect::InternalError) };
        let send = socket.send(Message::Text(text.into()));
        tokio::pin!(send);
        let mut ping_ticks = 0;
        loop {
            tokio::select! {
                written = &mut send => match written {
                    Ok(()) => break,
                    Err(_) => return None,
                },
                _ = &mut overflowed => return Some(Disconnect::SlowConsumer),
                _ = &mut ping => {
                    ping.as_mut().reset(Instant::now() + ping_interval);
                    ping_ticks += 1;
                    if ping_ticks > 1 {
                        return Some(Disconnect::SlowConsumer);
                    }
                }
            }
        }
    }
}

/// Why a failed read ends the connection; `None` when the connection itself is gone.
pub(crate) fn classify_read_error(error: &axum::Error) -> Option<Disconnect> {
    let text = error.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") || text.contains("capacity") {
        Some(Disconnect::MessageTooBig)
    } else if text.contains("UTF-8") || text.contains("utf-8") || text.contains("Utf8") {
        Some(Disconnect::InvalidFrame)
    } else if text.contains("protocol error") && !text.contains("without closing handshake") && !text.contains("after having closed") {
        // An unmasked frame, reserved bits or opcodes, a fragmented or oversized control frame,
        // a stray continuation: RFC 6455 closes with 1002. (A client that vanished is no
        // violation, and one that already closed is answered by then.)
        Some(Disconnect::ProtocolError)
    } else {
        None
    }
}

/// Completes the close handshake the client started: the reply close frame, queued by the
/// WebSocket layer when the client's arrived, goes out with this flush.
pub(crate) async fn answer_close(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, futures_util::SinkExt::flush(socket)).await;
}

/// Sends the disconnect push and the close frame, then reads until the client closes too (or
/// the close timeout passes): closing a socket with unread input makes the kernel reset the
/// connection, and the client would lose the close frame.
async fn close(socket: &mut WebSocket, reason: Disconnect) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        socket.send(Message::Text(reason.push_frame().into())).await?;
        socket.send(close_frame(reason)).await?;
        while let Some(Ok(_)) = socket.recv().await {}
        Ok::<(), axum::Error>(())
    })
    .await;
}

/// The close frame of `reason`: its code and reason text.
fn close_frame(reason: Disconnect) -> Message {
    Message::Close(Some(CloseFrame { code: reason.code(), reason: reason.reason().into() }))
}

/// Sends only the close frame of `reason` (transports without the disconnect push).
pub(crate) async fn send_close_frame(socket: &mut WebSocket, reason: Disconnect) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(close_frame(reason))).await;
}
