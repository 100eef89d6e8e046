//! A real browser as the client: headless Chromium opens an `EventSource` and a `WebSocket`
//! (running the documented resume algorithm) against the server, which is then restarted.
//! Both must end with every publication exactly once, in order.
//!
//! Needs Chromium (`/usr/bin/chromium`, or `COURTSIDE_CHROMIUM`). Without it the test says so
//! and passes, except under `CI=true`, where a skip is a failure.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use common::{temp_dir, TestServer};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>courtside browser test</title>
<script>
const base = "COURTSIDE";
const report = (kind, body) =>
  fetch("/report", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ kind, ...body }) });

// Read-only: EventSource resumes by itself through Last-Event-ID.
const sseOffsets = [];
const events = new EventSource(base + "/sse?channel=match:browser");
events.addEventListener("subscribed", (e) => report("sse-subscribed", { id: e.lastEventId, data: JSON.parse(e.data) }));
events.onmessage = (e) => {
  sseOffsets.push(JSON.parse(e.data).push.pub.offset);
  report("sse", { offsets: sseOffsets });
};

// Protocol v1 over WebSocket: resubscribe with `since` = the last position seen.
const wsOffsets = [];
let position = null;
function take(publication) {
  wsOffsets.push(publication.offset);
  position = { epoch: publication.epoch, offset: publication.offset };
  report("ws", { offsets: wsOffsets });
}
function connect() {
  const socket = new WebSocket(base.replace("http", "ws") + "/ws");
  socket.onopen = () => {
    const subscribe = { channel: "match:browser" };
    if (position) subscribe.since = position;
    socket.send(JSON.stringify({ id: 1, connect: {} }) + "\n" + JSON.stringify({ id: 2, subscribe }));
  };
  socket.onmessage = (e) => {
    for (const line of e.data.split("\n")) {
      const frame = JSON.parse(line);
      if (frame.id === 2) {
        const result = frame.result;
        position = { epoch: result.epoch, offset: result.offset - result.publications.length };
        result.publications.forEach(take);
        report("ws-subscribed", { recovered: result.recovered });
      } else if (frame.push && frame.push.pub) {
        take(frame.push.pub);
      }
    }
  };
  socket.onclose = (e) => {
    report("ws-closed", { code: e.code });
    setTimeout(connect, 300);
  };
}
connect();
</script>
"#;

fn chromium() -> Option<String> {
    let candidates = [std::env::var("COURTSIDE_CHROMIUM").unwrap_or_default(), "/usr/bin/chromium".into(), "/usr/bin/chromium-browser".into()];
    candidates.into_iter().find(|c| !c.is_empty() && std::path::Path::new(c).exists())
}

struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the page reported, in arrival order; each wait takes the first report that matches.
struct Reports {
    incoming: mpsc::UnboundedReceiver<Value>,
    unclaimed: Vec<Value>,
}

async fn wait_for(reports: &mut Reports, kind: &str, done: impl Fn(&Value) -> bool) -> Value {
    let matches = |r: &Value| r["kind"] == kind && done(r);
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(index) = reports.unclaimed.iter().position(matches) {
                return reports.unclaimed.remove(index);
            }
            let report = reports.incoming.recv().await.expect("page server running");
            reports.unclaimed.push(report);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the browser never reported `{kind}` as expected; got {:?}", reports.unclaimed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_and_websocket_in_a_browser_resume_across_a_restart() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must run the browser test: install chromium");
        // Written past the test harness's capture, so a skip is visible in a normal run.
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("SKIPPED browser test: no Chromium found (install the `chromium` package or set COURTSIDE_CHROMIUM)\n"));
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let server = TestServer::start_with(|c| c.listen = SocketAddr::from(([127, 0, 0, 1], port))).await;
    let config = server.config.clone();

    let (report_tx, incoming) = mpsc::unbounded_channel::<Value>();
    let mut reports = Reports { incoming, unclaimed: Vec::new() };
    let page = PAGE.replace("COURTSIDE", &format!("http://127.0.0.1:{port}"));
    let pages = Router::new()
        .route("/", get(move || async move { axum::response::Html(page) }))
        .route(
            "/report",
            post(move |Json(report): Json<Value>| async move {
                let _ = report_tx.send(report);
                "ok"
            }),
        );
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let page_addr = page_listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(page_listener, pages).await });

    let profile = temp_dir("chromium-profile");
    let _browser = Browser(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &format!("--user-data-dir={}", profile.display()),
                &format!("http://{page_addr}/"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts"),
    );

    wait_for(&mut reports, "sse-subscribed", |_| true).await;
    wait_for(&mut reports, "ws-subscribed", |_| true).await;
    for n in 1..=2 {
        server.publish("match:browser", json!({ "n": n })).await;
    }
    wait_for(&mut reports, "sse", |r| r["offsets"] == json!([1, 2])).await;
    wait_for(&mut reports, "ws", |r| r["offsets"] == json!([1, 2])).await;

    // Restart on the same port; publish while the browser is still away.
    server.server.shutdown();
    server.server.stopped().await;
    let server = TestServer::start_config(config).await;
    for n in 3..=4 {
        server.publish("match:browser", json!({ "n": n })).await;
    }
    let closed = wait_for(&mut reports, "ws-closed", |_| true).await;
    assert_eq!(closed["code"], 3000, "the shutdown told the page to reconnect");
    let resumed = wait_for(&mut reports, "ws-subscribed", |_| true).await;
    assert_eq!(resumed["recovered"], true);
    wait_for(&mut reports, "ws", |r| r["offsets"] == json!([1, 2, 3, 4])).await;
    let sse = wait_for(&mut reports, "sse", |r| r["offsets"].as_array().is_some_and(|o| o.len() >= 4)).await;
    assert_eq!(sse["offsets"], json!([1, 2, 3, 4]), "EventSource resumed through Last-Event-ID, nothing twice");
}
