//! The bench's Socket.IO subscribers (`courtside bench --socketio`): the same measurement as the
//! native ones, over `/socket.io/` on the WebSocket transport, speaking just enough Engine.IO and
//! Socket.IO to subscribe, read `publication` events and answer the server's pings.

use tokio::net::TcpStream;

use super::{find, parse_u64, read_offset_ts_seq, Target, WsConn};

/// An Engine.IO ping from the server; the bench answers with [`PONG`].
pub(super) const PING: &[u8] = b"2";
pub(super) const PONG: &[u8] = b"3";

/// The Socket.IO endpoint of `target`'s server, on the WebSocket transport.
pub(super) fn target(native: &Target) -> Target {
    Target { path: "/socket.io/?EIO=4&transport=websocket".into(), ..native.clone() }
}

/// Opens a socket, joins the namespace anonymously and subscribes (with an ack); returns the
/// first live offset.
pub(super) async fn open_subscription(target: &Target, channel: &str) -> Result<(WsConn<TcpStream>, u64), String> {
    let mut conn = WsConn::open(target).await?;
    await_packet(&mut conn, b"0{").await?;
    conn.send_text(b"40").await?;
    await_packet(&mut conn, b"40{").await?;
    let subscribe = format!("421[\"subscribe\",{}]", serde_json::json!({ "channel": channel }));
    conn.send_text(subscribe.as_bytes()).await?;
    let ack = await_packet(&mut conn, b"431[").await?;
    let at = find(&ack, b"\"offset\":").ok_or_else(|| format!("unexpected subscribe ack {}", String::from_utf8_lossy(&ack)))?;
    let (offset, _) = parse_u64(&ack[at + b"\"offset\":".len()..]).ok_or("subscribe ack without an offset")?;
    Ok((conn, offset + 1))
}

/// Reads until a message starting with `prefix`; returns it. An error packet (`44…`) fails.
/// What is already buffered is looked at first: the open packet often arrives with the
/// handshake's response.
async fn await_packet(conn: &mut WsConn<TcpStream>, prefix: &[u8]) -> Result<Vec<u8>, String> {
    let mut first = true;
    loop {
        if !first {
            conn.fill().await?;
        }
        first = false;
        let mut found = None;
        conn.process(|message| {
            if found.is_none() && (message.starts_with(prefix) || message.starts_with(b"44")) {
                found = Some(message.to_vec());
            }
        })?;
        conn.flush_pending().await?;
        if let Some(message) = found {
            if message.starts_with(b"44") {
                return Err(format!("refused: {}", String::from_utf8_lossy(&message)));
            }
            return Ok(message);
        }
    }
}

/// A `publication` event → (offset, the payload's `ts`, its `seq` when `with_seq`). Relies on the
/// server's layout `42["publication",{"channel":"…","epoch":"…","offset":N,"time":…,"data":{"ts":T,"seq":I,…}},"…"]`.
pub(super) fn read_publication(frame: &[u8], with_seq: bool) -> Option<(u64, Option<u64>, Option<u64>)> {
    let rest = frame.strip_prefix(br#"42["publication",{"channel":""#)?;
    read_offset_ts_seq(rest, with_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_publication_event() {
        let frame = br#"42["publication",{"channel":"match:b-1","epoch":"e1","offset":42,"time":9,"data":{"ts":123456,"seq":7,"pad":"x"}},"match:b-1=e1:42"]"#;
        assert_eq!(read_publication(frame, true), Some((42, Some(123456), Some(7))));
        assert_eq!(read_publication(frame, false), Some((42, Some(123456), None)));
        assert_eq!(read_publication(b"42[\"subscribed\",{}]", false), None);
        assert_eq!(read_publication(PING, false), None);
    }
}
