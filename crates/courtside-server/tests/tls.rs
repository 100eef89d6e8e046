//! The TLS listener with certificates from a test CA made at run time: every transport (HTTP
//! API, WebSocket, SSE, Socket.IO) over it, a client that does not trust the CA refused at the
//! handshake, plain HTTP refused, the certificate reloaded without a restart (file change and
//! SIGHUP: new handshakes get the new certificate, open connections go on, a broken file keeps
//! the old one), unusable files refused at start naming their key, and two nodes whose store
//! (PostgreSQL, `sslmode=verify-full`) and broker (`rediss://`, `redis_ca_file`) are reached over
//! TLS too.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{TIMEOUT, TestServer, temp_dir};
use courtside_core::Role;
use courtside_testkit::tls::{IssuedFiles, TestCa};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A client TLS configuration trusting `ca` only.
fn trusting(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let certificate = rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("CA PEM");
    roots.add(certificate).expect("CA certificate");
    let config = rustls::ClientConfig::builder_with_provider(courtside_server::transport::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

async fn start_tls(files: &IssuedFiles, reload_check_secs: u64) -> TestServer {
    TestServer::start_with(|config| {
        config.tls.cert_file = Some(files.cert.clone());
        config.tls.key_file = Some(files.key.clone());
        config.tls.reload_check_secs = reload_check_secs;
    })
    .await
}

/// Sends `request` (an HTTP/1.1 request, `Connection: close`) over TLS; the whole answer, or the
/// handshake's error.
async fn https(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, request: &str) -> Result<String, String> {
    https_until(addr, tls, request, None).await
}

/// As [`https`], reading only until the answer contains `until` (for streams that stay open).
async fn https_until(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, request: &str, until: Option<&str>) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|error| error.to_string())?;
    let name = ServerName::try_from("localhost").expect("server name");
    let mut stream = tokio::time::timeout(TIMEOUT, TlsConnector::from(tls).connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|error| error.to_string())?;
    stream.write_all(request.as_bytes()).await.map_err(|error| error.to_string())?;
    let mut answer = Vec::new();
    let reading = async {
        let mut chunk = [0u8; 4096];
        while let Ok(read @ 1..) = stream.read(&mut chunk).await {
            answer.extend_from_slice(&chunk[..read]);
            if until.is_some_and(|until| String::from_utf8_lossy(&answer).contains(until)) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(TIMEOUT, reading).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Publishes `data` on `channel` through the HTTP API over TLS.
async fn publish(server: &TestServer, tls: Arc<rustls::ClientConfig>, channel: &str, data: Value) {
    let body = json!({ "channel": channel, "data": data }).to_string();
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: apikey {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.api_key(),
        body.len()
    );
    let answer = https(server.server.addr, tls, &request).await.expect("HTTPS publish");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

/// The leaf certificate's common name the server presents to a client trusting `tls`.
async fn served_common_name(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|error| error.to_string())?;
    let name = ServerName::try_from("localhost").expect("server name");
    let stream = TlsConnector::from(tls).connect(name, tcp).await.map_err(|error| error.to_string())?;
    let (_, connection) = stream.get_ref();
    let leaf = connection.peer_certificates().and_then(|chain| chain.first()).ok_or("no certificate")?;
    // The label is in the DER as plain text; enough to tell two test certificates apart.
    let der = String::from_utf8_lossy(leaf.as_ref()).into_owned();
    ["first-server", "second-server", "third-server"].iter().find(|label| der.contains(**label)).map(|label| label.to_string()).ok_or("unknown".into())
}

#[tokio::test]
async fn every_transport_is_served_over_tls_to_clients_trusting_the_ca() {
    let ca = TestCa::new("courtside test CA");
    let dir = temp_dir("tls-serve");
    let files = ca.issue("first-server", &[]).write(&dir, "server");
    let server = start_tls(&files, 10).await;
    let addr = server.server.addr;
    let tls = trusting(&ca);

    let health = https(addr, tls.clone(), &get("/health")).await.expect("HTTPS request");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let mut watcher = common::Client::open_tls(&format!("wss://localhost:{}/ws", addr.port()), tls.clone()).await;
    let reply = watcher.request("connect", json!({})).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let reply = watcher.request("subscribe", json!({ "channel": "match:tls" })).await;
    assert!(reply.get("result").is_some(), "{reply}");

    publish(&server, tls.clone(), "match:tls", json!({ "over": "tls" })).await;
    let publication = watcher.next_publication().await;
    assert_eq!(publication["data"], json!({ "over": "tls" }));

    // SSE: the stream opens, and a publication arrives on it.
    let sse_tls = tls.clone();
    let sse = tokio::spawn(async move { https_until(addr, sse_tls, &get("/sse?channel=match:tls"), Some("sse-event")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&server, tls.clone(), "match:tls", json!({ "via": "sse-event" })).await;
    let sse = sse.await.expect("task").expect("HTTPS SSE");
    assert!(sse.starts_with("HTTP/1.1 200") && sse.contains("text/event-stream") && sse.contains("sse-event"), "{sse}");
    assert_eq!(watcher.next_publication().await["data"], json!({ "via": "sse-event" }));

    // Socket.IO: the Engine.IO long-polling handshake.
    let handshake = https(addr, tls.clone(), &get("/socket.io/?EIO=4&transport=polling")).await.expect("HTTPS Socket.IO");
    assert!(handshake.starts_with("HTTP/1.1 200") && handshake.contains("\"sid\""), "{handshake}");

    // A client trusting another CA, and a plain HTTP client, get nothing.
    let stranger = TestCa::new("another CA");
    let refused = https(addr, trusting(&stranger), &get("/health")).await;
    assert!(refused.as_ref().is_err_and(|error| error.contains("certificate")), "{refused:?}");
    let mut plain = TcpStream::connect(addr).await.expect("tcp");
    plain.write_all(get("/health").as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"), "plain HTTP is not served on the TLS port");

    // The subscriber is still served after all that.
    let keeper = server.token("kim", &[Role::Scorekeeper]);
    let mut publisher = common::Client::open_tls(&format!("wss://127.0.0.1:{}/ws", addr.port()), tls).await;
    let reply = publisher.request("connect", json!({ "token": keeper })).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let reply = publisher.request("publish", json!({ "channel": "match:tls", "data": { "n": 2 } })).await;
    assert!(reply.get("result").is_some(), "{reply}");
    assert_eq!(watcher.next_publication().await["data"], json!({ "n": 2 }));
}

/// Replaces the certificate files the way a renewal does: new files renamed over the old.
fn replace(files: &IssuedFiles, cert_pem: &str, key_pem: &str) {
    let dir = files.cert.parent().expect("dir");
    let (cert, key) = (dir.join("next.crt"), dir.join("next.key"));
    std::fs::write(&cert, cert_pem).expect("write");
    std::fs::write(&key, key_pem).expect("write");
    std::fs::rename(&key, &files.key).expect("rename");
    std::fs::rename(&cert, &files.cert).expect("rename");
}

async fn wait_for_common_name(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, expected: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let served = served_common_name(addr, tls.clone()).await;
        if served.as_deref() == Ok(expected) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still served {served:?}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metric_line(server: &TestServer, tls: Arc<rustls::ClientConfig>, result: &str) -> f64 {
    let metrics = https(server.server.addr, tls, &get("/metrics")).await.expect("metrics");
    let line = format!("courtside_tls_reloads_total{{result=\"{result}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&line)).and_then(|value| value.trim().parse().ok()).unwrap_or(-1.0)
}

#[tokio::test]
async fn a_changed_certificate_is_served_to_new_connections_while_open_ones_go_on() {
    let (first_ca, second_ca) = (TestCa::new("first CA"), TestCa::new("second CA"));
    let dir = temp_dir("tls-reload");
    let files = first_ca.issue("first-server", &[]).write(&dir, "server");
    let server = start_tls(&files, 1).await;
    let addr = server.server.addr;
    let mut open = common::Client::open_tls(&format!("wss://localhost:{}/ws", addr.port()), trusting(&first_ca)).await;
    assert!(open.request("connect", json!({})).await.get("result").is_some());
    assert!(open.request("subscribe", json!({ "channel": "match:reload" })).await.get("result").is_some());

    let second = second_ca.issue("second-server", &[]);
    replace(&files, &second.cert_pem, &second.key_pem);
    wait_for_common_name(addr, trusting(&second_ca), "second-server").await;
    assert!(served_common_name(addr, trusting(&first_ca)).await.is_err(), "the old certificate is no longer served");
    // At least one: another test's SIGHUP reaches every server of this process.
    assert!(metric_line(&server, trusting(&second_ca), "ok").await >= 1.0);

    // The connection opened before the reload still works both ways.
    publish(&server, trusting(&second_ca), "match:reload", json!({ "after": "reload" })).await;
    assert_eq!(open.next_publication().await["data"], json!({ "after": "reload" }));
    assert!(open.request("presence_stats", json!({ "channel": "match:reload" })).await.get("result").is_some());

    // A broken file is refused and the current certificate stays.
    std::fs::write(&files.cert, "not a certificate").expect("write");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while metric_line(&server, trusting(&second_ca), "failed").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the broken file was not noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_common_name(addr, trusting(&second_ca)).await.as_deref(), Ok("second-server"));
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let ca = TestCa::new("courtside test CA");
    let dir = temp_dir("tls-sighup");
    let files = ca.issue("first-server", &[]).write(&dir, "server");
    // File checks far apart: only the signal can reload within the test.
    let server = start_tls(&files, 3600).await;
    let third = ca.issue("third-server", &[]);
    replace(&files, &third.cert_pem, &third.key_pem);
    assert_eq!(served_common_name(server.server.addr, trusting(&ca)).await.as_deref(), Ok("first-server"));
    let status = std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().expect("kill");
    assert!(status.success());
    wait_for_common_name(server.server.addr, trusting(&ca), "third-server").await;
}

async fn start_error(cert: &Path, key: &Path) -> String {
    let config = courtside_server::Config {
        data_dir: temp_dir("tls-refused"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: courtside_server::config::TlsConfig { cert_file: Some(cert.into()), key_file: Some(key.into()), reload_check_secs: 10 },
        ..Default::default()
    };
    match courtside_server::start(config).await {
        Ok(_) => panic!("the server started with {} and {}", cert.display(), key.display()),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start_naming_their_key() {
    let ca = TestCa::new("courtside test CA");
    let dir = temp_dir("tls-files");
    let files = ca.issue("first-server", &[]).write(&dir, "server");
    let other = ca.issue("second-server", &[]).write(&dir, "other");
    let missing = dir.join("missing.pem");

    let error = start_error(&missing, &files.key).await;
    assert!(error.starts_with("tls.cert_file: cannot read the certificate file"), "{error}");
    let error = start_error(&files.cert, &missing).await;
    assert!(error.starts_with("tls.key_file: cannot read the key file"), "{error}");
    let error = start_error(&files.key, &files.key).await;
    assert!(error.starts_with("tls.cert_file:") && error.contains("holds no PEM certificate"), "{error}");
    let error = start_error(&files.cert, &files.cert).await;
    assert!(error.starts_with("tls.key_file:") && error.contains("holds no PEM private key"), "{error}");
    let error = start_error(&files.cert, &other.key).await;
    assert!(error.starts_with("tls.cert_file:") && error.contains("cannot be used with the certificate"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_tls_postgres_and_rediss_serve_over_tls() {
    let ca = TestCa::new("courtside cluster test CA");
    let dir = temp_dir("tls-cluster");
    let ca_file = ca.write_cert(&{
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join("ca.pem")
    });
    let redis_files = ca.issue("redis-server", &[]).write(&dir, "redis");
    let Some(redis) = courtside_testkit::tls_services::TlsRedis::start_or_skip(&redis_files, &ca_file, &dir) else { return };
    let postgres_files = ca.issue("postgres-server", &[]).write(&dir.join("postgres-issued"), "server");
    let Some(postgres) = courtside_testkit::tls_services::TlsPostgres::start_or_skip(&postgres_files, &dir.join("postgres")) else { return };
    let store = postgres.url(&format!("sslmode=verify-full&sslrootcert={}", ca_file.display()));
    let listener = ca.issue("first-server", &[]).write(&dir, "listener");
    let prefix = format!("courtside-tls-{}", std::process::id());
    let start = || {
        TestServer::start_with(|config| {
            config.store = store.clone();
            config.broker = redis.url();
            config.redis_ca_file = Some(ca_file.clone());
            config.redis_prefix = prefix.clone();
            config.tls.cert_file = Some(listener.cert.clone());
            config.tls.key_file = Some(listener.key.clone());
        })
    };
    let (first, second) = (start().await, start().await);
    let tls = trusting(&ca);
    let mut watcher = common::Client::open_tls(&format!("wss://localhost:{}/ws", second.server.addr.port()), tls.clone()).await;
    assert!(watcher.request("connect", json!({})).await.get("result").is_some());
    assert!(watcher.request("subscribe", json!({ "channel": "match:cluster-tls" })).await.get("result").is_some());
    publish(&first, tls, "match:cluster-tls", json!({ "from": "the first node" })).await;
    let publication = watcher.next_publication().await;
    assert_eq!((publication["offset"].as_u64(), &publication["data"]), (Some(1), &json!({ "from": "the first node" })));
}
