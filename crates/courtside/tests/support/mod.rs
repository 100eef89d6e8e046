//! What the black-box cluster tests share: the skip-or-fail rule for missing services, a fresh
//! PostgreSQL database per test, a private `redis-server` the test may kill and restart, a TCP
//! proxy that makes PostgreSQL unreachable on demand, `courtside serve` child processes (killed
//! when dropped, logs kept for diagnosis), and a small WebSocket protocol-v1 client.
//!
//! The skip-or-fail rule and the test databases come from `courtside-testkit`, shared with the
//! other crates' tests.

#![allow(dead_code)] // each test uses a different part of this module

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_courtside");

// ---------------------------------------------------------------------------------------------
// Skipping and PostgreSQL: the workspace's one rule and test databases (`courtside-testkit`)

#[allow(unused_imports)] // each test binary uses a different part
pub use courtside_testkit::postgres::{TestDatabase, database_url, fresh_database, server_address as postgres_address};
#[allow(unused_imports)]
pub use courtside_testkit::{is_ci, skip_or_fail};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("courtside-{label}-{}-{:08x}", std::process::id(), rand::rng().random::<u32>()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy in front of PostgreSQL

/// A TCP proxy to `upstream` on a loopback port, which the test can stop, freeze and restart,
/// or have it lose the answer to the next `COMMIT`.
pub struct Proxy {
    pub port: u16,
    upstream: SocketAddr,
    /// The accept loop and every forwarding task, so `stop` can end them all.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    frozen: watch::Sender<bool>,
    lose_commit_reply: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on `port` (0: any free port) and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr, port: u16) -> Proxy {
        // A stopped proxy's listener closes once its aborted task is dropped: retry briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener: TcpListener = loop {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("reuseaddr");
            match socket.bind(SocketAddr::from(([127, 0, 0, 1], port))).and_then(|()| socket.listen(64)) {
                Ok(listener) => break listener,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("proxy cannot listen on port {port}: {error}"),
            }
        };
        let port = listener.local_addr().expect("address").port();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (frozen, watching) = watch::channel(false);
        let lose_commit_reply = Arc::new(AtomicBool::new(false));
        let forwarding = tasks.clone();
        let losing = lose_commit_reply.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let task = tokio::spawn(forward(client, upstream, watching.clone(), losing.clone()));
                forwarding.lock().unwrap().push(task.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accepting.abort_handle());
        Proxy { port, upstream, tasks, frozen, lose_commit_reply }
    }

    /// The next `COMMIT` (a simple query) is forwarded, so the database commits, but that
    /// connection then goes silent: its client never learns the outcome.
    pub fn lose_next_commit_reply(&self) {
        self.lose_commit_reply.store(true, Ordering::SeqCst);
    }

    /// Frozen: connections stay open but nothing is forwarded, and new ones are never answered.
    pub fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    /// Closes the listener and every connection: the database refuses connections.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        *self = Proxy::start(self.upstream, self.port).await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Forwards one connection until either side closes, or holds it silent while frozen (for
/// good: a frozen connection never speaks again), or once it lost a `COMMIT`'s answer.
async fn forward(client: TcpStream, upstream: SocketAddr, mut frozen: watch::Receiver<bool>, lose_commit_reply: Arc<AtomicBool>) {
    if *frozen.borrow() {
        let _thawed = frozen.wait_for(|frozen| !*frozen).await.is_ok();
        std::future::pending::<()>().await;
    }
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let silenced = AtomicBool::new(false);
    let upstream_direction = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // A simple-query message `Q`, length, "COMMIT\0".
            if buffer[..n].windows(7).any(|w| w == b"COMMIT\0") && lose_commit_reply.swap(false, Ordering::SeqCst) {
                silenced.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream_direction = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if silenced.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream_direction => {}
        _ = downstream_direction => {}
        _ = async { frozen.wait_for(|frozen| *frozen).await.is_ok() } => std::future::pending::<()>().await,
    }
}

// ---------------------------------------------------------------------------------------------
// A private Redis

/// `PING` over a plain TCP connection (no client library needed).
pub fn redis_ping(port: u16) -> Result<(), String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| e.to_string())?;
    stream.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).map_err(|e| e.to_string())?;
    if &answer == b"+PONG\r\n" { Ok(()) } else { Err(format!("answered {:?}", String::from_utf8_lossy(&answer))) }
}

/// A `redis-server` child process on a free port (no persistence), killed when dropped. The
/// machine's shared Redis (used by other tests) is never touched.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl PrivateRedis {
    /// Starts one if `redis-server` is installed; otherwise [`skip_or_fail`] and `None`.
    pub fn start_or_skip(log: PathBuf) -> Option<Self> {
        let mut redis = Self { port: free_port(), child: None, log };
        match redis.spawn() {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                skip_or_fail("redis-server is not installed (the cluster test needs a private one it may restart)");
                return None;
            }
            Err(error) => panic!("redis-server could not be started: {error}"),
        }
        redis.wait_until_up();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(error) = redis_ping(self.port) {
            assert!(Instant::now() < deadline, "private redis-server on port {} did not start: {error}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL, as a crash: nothing is saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn start_again(&mut self) {
        self.kill();
        self.spawn().expect("redis-server restarts");
        self.wait_until_up();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// `courtside` processes

/// Mints a token with `courtside token` (HS256, the shared secret file).
pub fn mint_token(secret_file: &Path, scratch_dir: &Path, sub: &str, role: &str) -> String {
    let output = Command::new(BIN)
        .args(["token", "--jwt-secret-file"])
        .arg(secret_file)
        .arg("--data-dir")
        .arg(scratch_dir)
        .args(["--sub", sub, "--role", role, "--ttl-secs", "3600"])
        .env("COURTSIDE_LOG", "warn")
        .output()
        .expect("courtside token runs");
    assert!(output.status.success(), "courtside token failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Writes a fresh random HS256 secret to `path`.
pub fn write_secret(path: &Path) {
    let secret: String = (0..32).map(|_| format!("{:02x}", rand::rng().random::<u8>())).collect();
    std::fs::write(path, secret).expect("write secret");
}

/// One `courtside serve` child process; its stderr goes (appended) to `log`. Killed on drop.
pub struct ServeProcess {
    pub name: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub starts: u32,
}

impl ServeProcess {
    /// Spawns `courtside serve --listen 127.0.0.1:port --data-dir … <args>` with `env` added.
    pub fn spawn(name: &str, dir: &Path, args: Vec<String>, env: Vec<(String, String)>) -> ServeProcess {
        let data_dir = dir.join(name);
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let mut process = ServeProcess {
            name: name.to_string(),
            port: free_port(),
            log: dir.join(format!("{name}.log")),
            data_dir,
            args,
            env,
            child: None,
            starts: 0,
        };
        process.start();
        process
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// (Re)starts the process on the same port and data directory.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let _ = writeln!(log, "===== start #{} of {} =====", self.starts, self.name);
        let child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("COURTSIDE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("courtside serve starts");
        self.child = Some(child);
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no graceful shutdown, no flush, sockets reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a signal to our own child process, which has not been reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful shutdown: clients are told 3000), then waits for the exit (SIGKILL
    /// after `limit`). Returns the exit status, if it exited by itself in time.
    pub async fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: a signal to our own child process, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Has the process exited by itself? (Then its log says why.)
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until `GET /ready` answers 200 (panics with the log tail after `limit`).
    pub async fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                panic!("{} exited during start ({status}):\n{}", self.name, tail(&self.log, 30));
            }
            if let Some((200, _)) = http_get(self.port, "/ready") {
                return;
            }
            assert!(Instant::now() < deadline, "{} not ready within {limit:?}:\n{}", self.name, tail(&self.log, 30));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of a counter or gauge on `/metrics` (summed over its label sets).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.port, "/metrics")?;
        Some(metric_value(&body, name))
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sum of the samples of `name` in a Prometheus text body.
pub fn metric_value(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A blocking `GET` on 127.0.0.1 (short timeouts; usable from `Drop`): status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

// ---------------------------------------------------------------------------------------------
// A WebSocket client for protocol v1

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct Ended {
    /// The code of the `disconnect` push, if one arrived.
    pub push_code: Option<u64>,
    /// The close frame's code, if one arrived.
    pub close_code: Option<u16>,
    /// A transport error (a reset, a dead node), if that is how it ended.
    pub error: Option<String>,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "push {:?}, close {:?}, error {:?}", self.push_code, self.close_code, self.error)
    }
}

/// What reading gave.
pub enum Incoming {
    Frame(Value),
    /// Nothing within the time asked for; the connection is still open.
    Idle,
    Ended(Ended),
}

/// One WebSocket connection: sends frames, yields the server's frames one by one.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    frames: VecDeque<Value>,
    push_code: Option<u64>,
    next_id: u64,
}

impl WsClient {
    pub async fn open(url: &str, limit: Duration) -> Result<WsClient, String> {
        match tokio::time::timeout(limit, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((socket, _))) => Ok(WsClient { socket, frames: VecDeque::new(), push_code: None, next_id: 1 }),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no handshake within {limit:?}")),
        }
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends `frames` in one WebSocket message, separated by `\n`.
    pub async fn send(&mut self, frames: &[Value]) -> Result<(), String> {
        let text = frames.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
        self.socket.send(Message::text(text)).await.map_err(|e| e.to_string())
    }

    /// The next frame, waiting at most `limit`.
    pub async fn read(&mut self, limit: Duration) -> Incoming {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(frame) = self.frames.pop_front() {
                if let Some(code) = frame["push"]["disconnect"]["code"].as_u64() {
                    self.push_code = Some(code);
                }
                return Incoming::Frame(frame);
            }
            let message = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Incoming::Idle,
                Ok(message) => message,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    for line in text.as_str().split('\n').filter(|l| !l.trim().is_empty()) {
                        match serde_json::from_str(line) {
                            Ok(frame) => self.frames.push_back(frame),
                            Err(error) => {
                                return Incoming::Ended(Ended {
                                    error: Some(format!("server sent a line that is not JSON ({error}): {line}")),
                                    push_code: self.push_code,
                                    close_code: None,
                                });
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Incoming::Ended(Ended {
                        push_code: self.push_code,
                        close_code: frame.map(|f| u16::from(f.code)),
                        error: None,
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    return Incoming::Ended(Ended { push_code: self.push_code, close_code: None, error: Some(error.to_string()) });
                }
                None => {
                    return Incoming::Ended(Ended { push_code: self.push_code, close_code: None, error: Some("stream ended".into()) });
                }
            }
        }
    }

    /// Sends one command and waits (at most `limit`) for its reply; other frames are dropped
    /// (use only on connections that subscribe to nothing). `Err` says why there is no reply.
    pub async fn request(&mut self, method: &str, params: Value, limit: Duration) -> Result<Value, String> {
        let id = self.next_id();
        let mut command = serde_json::Map::new();
        command.insert("id".into(), id.into());
        command.insert(method.into(), params);
        self.send(&[Value::Object(command)]).await?;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Incoming::Frame(frame) if frame["id"] == id => return Ok(frame),
                Incoming::Frame(_) => {}
                Incoming::Idle => return Err(format!("no reply to {method} within {limit:?}")),
                Incoming::Ended(ended) => return Err(format!("connection ended before the reply to {method}: {ended}")),
            }
        }
    }
}
