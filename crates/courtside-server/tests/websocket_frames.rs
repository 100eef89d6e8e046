//! The WebSocket layer as RFC 6455 has it, spoken over raw TCP where a client library would not
//! misbehave: a client's close is answered with a close frame, and protocol violations (an
//! unmasked frame, reserved bits or opcodes, a fragmented control frame) close with 1002 — on
//! the native endpoint and on Socket.IO's WebSocket alike — and a close reaches a client that is
//! still sending.

mod common;

use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NATIVE: &str = "/ws";
const SOCKET_IO: &str = "/socket.io/?EIO=4&transport=websocket";

/// Opens a WebSocket on `path` by hand: the stream right after the 101 response.
async fn handshake(server: &TestServer, path: &str) -> TcpStream {
    let addr = server.server.addr;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("handshake response");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// A client frame: `first` holds FIN, the reserved bits and the opcode; masked unless told.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37u8, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads the server's frames until its close frame and returns the close code; `None` if the
/// connection ended (or stalled) without one.
async fn close_code(stream: &mut TcpStream) -> Option<u16> {
    let read = async {
        loop {
            let mut head = [0u8; 2];
            stream.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    stream.read_exact(&mut n).await.ok()?;
                    u64::from(u16::from_be_bytes(n))
                }
                127 => {
                    let mut n = [0u8; 8];
                    stream.read_exact(&mut n).await.ok()?;
                    u64::from_be_bytes(n)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).ok()?];
            stream.read_exact(&mut payload).await.ok()?;
            if head[0] & 0x0f == 0x8 {
                return Some(payload.get(..2).map_or(1005, |code| u16::from_be_bytes([code[0], code[1]])));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.ok().flatten()
}

/// After the server's close frame, the server ends the TCP connection too.
async fn ends(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await, Ok(Ok(_)))
}

#[tokio::test]
async fn a_clients_close_is_answered_with_a_close_frame() {
    let server = TestServer::start().await;
    for path in [NATIVE, SOCKET_IO] {
        let mut stream = handshake(&server, path).await;
        stream.write_all(&frame(0x88, &1000u16.to_be_bytes(), true)).await.expect("send close");
        assert_eq!(close_code(&mut stream).await, Some(1000), "{path}: the close handshake completes");
        assert!(ends(&mut stream).await, "{path}: then the server closes the connection");
    }
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let server = TestServer::start().await;
    let violations = [
        ("an unmasked frame", frame(0x81, b"{}", false)),
        ("a reserved bit", frame(0xc1, b"{}", true)),
        ("a reserved data opcode", frame(0x83, b"{}", true)),
        ("a reserved control opcode", frame(0x8b, b"", true)),
        ("a fragmented control frame", frame(0x09, b"", true)),
        ("a continuation of nothing", frame(0x80, b"{}", true)),
    ];
    for (what, bytes) in &violations {
        let mut stream = handshake(&server, NATIVE).await;
        stream.write_all(bytes).await.expect("send");
        assert_eq!(close_code(&mut stream).await, Some(1002), "{what}");
    }
    let mut stream = handshake(&server, SOCKET_IO).await;
    stream.write_all(&frame(0x81, b"40", false)).await.expect("send");
    assert_eq!(close_code(&mut stream).await, Some(1002), "Socket.IO: an unmasked frame");
    // Everyone else is still served.
    let mut client = server.connected("", &[]).await;
    common::result(&client.request("ping", serde_json::json!({})).await);
}

#[tokio::test]
async fn an_oversize_messages_close_reaches_a_client_that_keeps_sending() {
    let server = TestServer::start().await;
    let mut stream = handshake(&server, NATIVE).await;
    // 8 MiB in one frame: far past `client.message_bytes_max` (64 KiB), past the point where
    // the server stops reading mid-message. The client sends all of it before it reads.
    let huge = frame(0x81, &vec![b' '; 8 << 20], true);
    stream.write_all(&huge).await.expect("the server reads and discards what the client still sends");
    assert_eq!(close_code(&mut stream).await, Some(3501), "the close is not lost to a reset");
    assert!(ends(&mut stream).await);
}
