//! The broker's receiving connection: a Redis connection in subscribed mode, spoken directly in
//! RESP2 ([`crate::resp`]) so the same code serves plain (`SUBSCRIBE`/`message`) and sharded
//! (`SSUBSCRIBE`/`smessage`, Redis ≥ 7) pub/sub. The `redis` crate's async pub/sub offers sharded
//! subscriptions only through its cluster client.
//!
//! The connection is read through [`PubSubConnection::next_push`], which is cancel-safe (bytes
//! read are kept in the connection's buffer), so a task can `select!` on it.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use redis::ConnectionAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::resp::{Frame, parse_frame};
use crate::tls::PubSubTarget;

/// Bytes read from the socket at a time (more when a message is larger).
const READ_CHUNK: usize = 16 * 1024;

/// Which pub/sub the broker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PubSubMode {
    /// `PUBLISH`/`SUBSCRIBE`: every Redis version.
    Plain,
    /// `SPUBLISH`/`SSUBSCRIBE`: Redis ≥ 7 (one standalone server or primary; Redis Cluster, where
    /// a channel's messages would stay within the shard owning its slot, is not supported yet).
    Sharded,
}

impl PubSubMode {
    pub fn publish_command(self) -> &'static str {
        match self {
            PubSubMode::Plain => "PUBLISH",
            PubSubMode::Sharded => "SPUBLISH",
        }
    }

    fn subscribe_command(self) -> &'static str {
        match self {
            PubSubMode::Plain => "SUBSCRIBE",
            PubSubMode::Sharded => "SSUBSCRIBE",
        }
    }

    fn unsubscribe_command(self) -> &'static str {
        match self {
            PubSubMode::Plain => "UNSUBSCRIBE",
            PubSubMode::Sharded => "SUNSUBSCRIBE",
        }
    }
}

impl std::fmt::Display for PubSubMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PubSubMode::Plain => "plain",
            PubSubMode::Sharded => "sharded",
        })
    }
}

/// What a subscribed connection receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Message { channel: Bytes, payload: Bytes },
    Subscribed { channel: Bytes },
    Unsubscribed { channel: Bytes },
    Pong,
    /// The server refused a command.
    Error(String),
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One subscribed connection.
pub struct PubSubConnection {
    io: Pin<Box<dyn Io>>,
    buffer: BytesMut,
    mode: PubSubMode,
}

impl PubSubConnection {
    /// Connects to the server `target` names (over TLS for `rediss://`) and authenticates;
    /// `limit` bounds the whole setup.
    pub async fn open(target: &PubSubTarget, mode: PubSubMode, limit: Duration) -> Result<Self, String> {
        match tokio::time::timeout(limit, Self::open_unbounded(target, mode)).await {
            Ok(result) => result,
            Err(_) => Err(format!("connecting timed out after {limit:?}")),
        }
    }

    async fn open_unbounded(target: &PubSubTarget, mode: PubSubMode) -> Result<Self, String> {
        let info = &target.info;
        let io: Pin<Box<dyn Io>> = match info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|error| format!("cannot connect to {host}:{port}: {error}"))?;
                let _ = stream.set_nodelay(true);
                match target.tls() {
                    Some(connector) => Box::pin(crate::tls::handshake(connector, host, stream).await?),
                    None => Box::pin(stream),
                }
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => Box::pin(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|error| format!("cannot connect to {}: {error}", path.display()))?,
            ),
            other => return Err(format!("unsupported Redis address {other}")),
        };
        let mut connection = Self { io, buffer: BytesMut::with_capacity(READ_CHUNK), mode };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(username) = settings.username() {
                auth.arg(username);
            }
            auth.arg(password);
            connection.send(auth.get_packed_command()).await?;
            match connection.next_frame().await? {
                Frame::Simple(_) => {}
                Frame::Error(error) => return Err(format!("AUTH refused: {error}")),
                other => return Err(format!("unexpected answer to AUTH: {other:?}")),
            }
        }
        Ok(connection)
    }

    pub fn mode(&self) -> PubSubMode {
        self.mode
    }

    /// Sends `SUBSCRIBE` (or `SSUBSCRIBE`) for `channels`; confirmations arrive as pushes.
    pub async fn subscribe(&mut self, channels: &[String]) -> Result<(), String> {
        self.send(redis::cmd(self.mode.subscribe_command()).arg(channels).get_packed_command()).await
    }

    /// Sends `UNSUBSCRIBE` (or `SUNSUBSCRIBE`) for `channels`; confirmations arrive as pushes.
    pub async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), String> {
        self.send(redis::cmd(self.mode.unsubscribe_command()).arg(channels).get_packed_command()).await
    }

    /// Sends `PING`; the answer arrives as [`Push::Pong`].
    pub async fn ping(&mut self) -> Result<(), String> {
        self.send(redis::cmd("PING").get_packed_command()).await
    }

    async fn send(&mut self, command: Vec<u8>) -> Result<(), String> {
        self.io.write_all(&command).await.map_err(|error| format!("writing to Redis failed: {error}"))
    }

    /// The next thing the server sent. Cancel-safe.
    pub async fn next_push(&mut self) -> Result<Push, String> {
        let frame = self.next_frame().await?;
        push(frame)
    }

    async fn next_frame(&mut self) -> Result<Frame, String> {
        loop {
            match parse_frame(&self.buffer) {
                Ok(Some((frame, used))) => {
                    self.buffer.advance(used);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(error) => return Err(format!("unreadable reply from Redis: {error}")),
            }
            self.buffer.reserve(READ_CHUNK);
            match self.io.read_buf(&mut self.buffer).await {
                Ok(0) => return Err("Redis closed the connection".into()),
                Ok(_) => {}
                Err(error) => return Err(format!("reading from Redis failed: {error}")),
            }
        }
    }
}

/// Reads a frame as what a subscribed connection receives.
fn push(frame: Frame) -> Result<Push, String> {
    let elements = match frame {
        Frame::Error(error) => return Ok(Push::Error(error)),
        Frame::Simple(text) if text.eq_ignore_ascii_case("PONG") => return Ok(Push::Pong),
        Frame::Array(elements) => elements,
        other => return Err(format!("unexpected reply in subscribed mode: {other:?}")),
    };
    let mut elements = elements.into_iter();
    let kind = match elements.next() {
        Some(Frame::Bulk(kind)) => kind,
        other => return Err(format!("unexpected push kind {other:?}")),
    };
    let mut bulk = || match elements.next() {
        Some(Frame::Bulk(bytes)) => Ok(bytes),
        other => Err(format!("unexpected push element {other:?}")),
    };
    match kind.as_ref() {
        b"message" | b"smessage" => {
            let channel = bulk()?;
            let payload = bulk()?;
            Ok(Push::Message { channel, payload })
        }
        b"subscribe" | b"ssubscribe" => Ok(Push::Subscribed { channel: bulk()? }),
        b"unsubscribe" | b"sunsubscribe" => Ok(Push::Unsubscribed { channel: bulk()? }),
        b"pong" => Ok(Push::Pong),
        other => Err(format!("unexpected push kind {:?}", String::from_utf8_lossy(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &[u8]) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(text))
    }

    #[test]
    fn pushes_of_both_kinds_read_alike() {
        for (message, confirm) in [(&b"message"[..], &b"subscribe"[..]), (b"smessage", b"ssubscribe")] {
            let frame = Frame::Array(vec![bulk(message), bulk(b"cs:ch:a:b"), bulk(b"\x01payload")]);
            assert_eq!(
                push(frame),
                Ok(Push::Message { channel: Bytes::from_static(b"cs:ch:a:b"), payload: Bytes::from_static(b"\x01payload") })
            );
            let frame = Frame::Array(vec![bulk(confirm), bulk(b"cs:ch:a:b"), Frame::Integer(1)]);
            assert_eq!(push(frame), Ok(Push::Subscribed { channel: Bytes::from_static(b"cs:ch:a:b") }));
        }
        assert_eq!(push(Frame::Array(vec![bulk(b"pong"), bulk(b"")])), Ok(Push::Pong));
        assert_eq!(push(Frame::Error("ERR nope".into())), Ok(Push::Error("ERR nope".into())));
        assert!(push(Frame::Array(vec![bulk(b"message"), Frame::Integer(3)])).is_err());
        assert!(push(Frame::Integer(3)).is_err());
    }
}
