//! What every Redis test shares: where Redis is, a private key prefix per test, skipping (or,
//! under CI, failing) when Redis is not there, and a private `redis-server` that a test may
//! kill and restart without disturbing the tests that share the machine's Redis.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::Rng;

pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The Redis the tests use: `COURTSIDE_TEST_REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("COURTSIDE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_string())
}

/// A key prefix no other test (or test run) uses.
pub fn unique_key_prefix() -> String {
    format!("courtside-test:{}:{:016x}", std::process::id(), rand::rng().random::<u64>())
}

pub use courtside_testkit::skip_or_fail;

async fn ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let attempt = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut connection).await
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

/// The shared Redis URL if it answers; otherwise [`skip_or_fail`] and `None`.
pub async fn reachable_redis() -> Option<String> {
    let url = redis_url();
    match ping(&url).await {
        Ok(()) => Some(url),
        Err(error) => {
            skip_or_fail(&format!("Redis not reachable at {url} ({error})"));
            None
        }
    }
}

/// The server's major version (`INFO server`); 0 if it cannot be read.
pub async fn redis_major_version(url: &str) -> u32 {
    let info: Result<String, String> = async {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut connection = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
        redis::cmd("INFO").arg("server").query_async(&mut connection).await.map_err(|e| e.to_string())
    }
    .await;
    info.ok()
        .and_then(|info| {
            let version = info.lines().find_map(|line| line.strip_prefix("redis_version:"))?.to_string();
            version.split('.').next()?.trim().parse().ok()
        })
        .unwrap_or(0)
}

/// A `redis-server` child process on a free port, killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one if `redis-server` is installed; otherwise [`skip_or_fail`] and `None`.
    pub async fn start_or_skip() -> Option<Self> {
        let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(address) => address.port(),
            Err(error) => panic!("no free port: {error}"),
        };
        let mut redis = Self { port, child: None };
        match redis.spawn() {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                skip_or_fail("redis-server is not installed (needed for a private server this test may restart)");
                return None;
            }
            Err(error) => panic!("redis-server could not be started: {error}"),
        }
        redis.wait_until_up().await;
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_until_up(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ping(&self.url()).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "private redis-server on port {} did not start", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (as a crash would: nothing is saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server restarts");
        self.wait_until_up().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
