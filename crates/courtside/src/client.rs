//! `courtside sub` and `courtside pub`: command-line clients in the spirit of `nats sub`/`nats
//! pub`. `sub` speaks protocol v1 over WebSocket, says on stderr where its live stream starts
//! and resumes from `--from EPOCH:OFFSET`; `pub`
//! uses the HTTP API and prints where the publication landed (and `"duplicate":true` for a
//! retried idempotency key).

use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Args)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(long, env = "COURTSIDE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// A token (JWT) from `courtside token`; without it the client is anonymous.
    #[arg(long, env = "COURTSIDE_TOKEN")]
    pub token: Option<String>,
}

#[derive(Args)]
pub struct SubArgs {
    pub channel: String,
    /// Resume after this position; `EPOCH:0` is the start of the history.
    #[arg(long)]
    pub from: Option<String>,
    /// Stop after printing this many publications.
    #[arg(long)]
    pub count: Option<u64>,
    /// Start from the channel's keyed state (printed first, one line per key).
    #[arg(long)]
    pub snapshot: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct PubArgs {
    pub channel: String,
    /// The payload: one JSON value.
    pub data: String,
    /// Keyed-state key.
    #[arg(long)]
    pub key: Option<String>,
    /// Event name it is delivered as to Socket.IO clients (`socket.on(NAME, …)`).
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
    /// Idempotency key: a retry with the same key returns the first result.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Publish as the app backend with the server API key (instead of a token).
    #[arg(long, env = "COURTSIDE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `http://host:port` → `ws://host:port/ws`.
pub fn websocket_url(server: &str) -> Result<String, String> {
    let base = server.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .or_else(|| (base.starts_with("ws://") || base.starts_with("wss://")).then(|| base.to_string()))
        .ok_or_else(|| format!("--server must be an http:// or ws:// URL, got {server:?}"))?;
    Ok(format!("{rest}/ws"))
}

fn parse_from(from: &str) -> Result<(String, u64), String> {
    let (epoch, offset) = from.rsplit_once(':').ok_or("--from must be EPOCH:OFFSET")?;
    let offset = offset.parse().map_err(|_| "--from: OFFSET must be a number".to_string())?;
    Ok((epoch.to_string(), offset))
}

fn line(channel: &str, epoch: &str, publication: &Value) -> String {
    let mut out = json!({
        "channel": channel,
        "epoch": publication.get("epoch").and_then(Value::as_str).unwrap_or(epoch),
        "offset": publication["offset"],
        "data": publication["data"],
    });
    if let Some(key) = publication.get("key") {
        out["key"] = key.clone();
    }
    if let Some(event) = publication.get("event") {
        out["event"] = event.clone();
    }
    out.to_string()
}

/// How one connection of `sub` ended.
enum SubEnd {
    /// `--count` reached or interrupted: stop.
    Done,
    /// The connection dropped or the server asked us to reconnect: resume from `position`.
    Reconnect(String),
}

/// Follows a channel, printing each publication once. After a dropped connection or a server
/// restart it reconnects with backoff and resumes after the last printed offset.
pub async fn sub(args: SubArgs) -> Result<(), String> {
    let url = websocket_url(&args.client.server)?;
    let mut position: Option<(String, u64)> = args.from.as_deref().map(parse_from).transpose()?;
    let mut printed = 0u64;
    let mut backoff = Duration::from_millis(250);
    let mut first = true;
    loop {
        match follow(&args, &url, &mut position, &mut printed, first).await? {
            SubEnd::Done => return Ok(()),
            SubEnd::Reconnect(why) => {
                eprintln!("courtside: {why}; reconnecting in {} ms", backoff.as_millis());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        first = false;
    }
}

async fn follow(
    args: &SubArgs,
    url: &str,
    position: &mut Option<(String, u64)>,
    printed: &mut u64,
    first: bool,
) -> Result<SubEnd, String> {
    let mut socket = match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => socket,
        Err(e) if first => return Err(format!("cannot connect to {url}: {e}")),
        Err(e) => return Ok(SubEnd::Reconnect(format!("cannot connect: {e}"))),
    };
    let mut subscribe = json!({ "channel": args.channel });
    if let Some((epoch, offset)) = position.as_ref() {
        subscribe["since"] = json!({ "epoch": epoch, "offset": offset });
    }
    if args.snapshot && first {
        subscribe["snapshot"] = json!(true);
    }
    let connect = json!({ "id": 1, "connect": { "token": args.client.token } });
    let frames = format!("{connect}\n{}", json!({ "id": 2, "subscribe": subscribe }));
    if let Err(e) = socket.send(Message::text(frames)).await {
        return Ok(SubEnd::Reconnect(e.to_string()));
    }
    let done = |printed: u64| args.count.is_some_and(|n| printed >= n);
    let mut epoch = String::new();
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = tokio::signal::ctrl_c() => return Ok(SubEnd::Done),
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1000);
                let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                if (3500..4000).contains(&code) {
                    return Err(format!("server closed the connection: {code} {reason}"));
                }
                return Ok(SubEnd::Reconnect(format!("server closed the connection ({code} {reason})")));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Ok(SubEnd::Reconnect(e.to_string())),
            None => return Ok(SubEnd::Reconnect("connection closed".into())),
        };
        for frame in text.as_str().split('\n').filter(|f| !f.is_empty()) {
            let value: Value = serde_json::from_str(frame).map_err(|e| format!("bad frame from server: {e}"))?;
            if let Some(error) = value.get("error") {
                return Err(format!("server refused: {} {}", error["code"], error["message"].as_str().unwrap_or_default()));
            }
            let mut snapshot: &[Value] = &[];
            let stream: Vec<&Value> = if value["id"] == 2 {
                let result = &value["result"];
                epoch = result["epoch"].as_str().unwrap_or_default().to_string();
                if position.is_some() && result["recovered"] == false {
                    eprintln!(
                        "courtside: the position asked for is no longer in the history; continuing from {epoch}:{}",
                        result["offset"]
                    );
                }
                let replayed: Vec<&Value> = result["publications"].as_array().into_iter().flatten().collect();
                let start = result["offset"].as_u64().unwrap_or(0).saturating_sub(replayed.len() as u64);
                *position = Some((epoch.clone(), start));
                snapshot = result["snapshot"].as_array().map(Vec::as_slice).unwrap_or_default();
                replayed
            } else {
                value["push"].get("pub").into_iter().collect()
            };
            // Snapshot entries carry their key's latest offset, not a stream position: they are
            // printed but do not move the resume point; replayed and live publications do.
            for (publication, moves) in snapshot.iter().map(|p| (p, false)).chain(stream.into_iter().map(|p| (p, true))) {
                println!("{}", line(&args.channel, &epoch, publication));
                *printed += 1;
                if let (true, Some(offset)) = (moves, publication["offset"].as_u64()) {
                    *position = Some((epoch.clone(), offset));
                }
                if done(*printed) {
                    return Ok(SubEnd::Done);
                }
            }
            if value["id"] == 2 {
                // Caught up: say where the live stream starts (the position to resume from).
                let (epoch, offset) = position.clone().unwrap_or_default();
                eprintln!("courtside: following {} live from {epoch}:{offset}", args.channel);
            }
        }
    }
}

pub async fn publish(args: PubArgs) -> Result<(), String> {
    let data: Value = serde_json::from_str(&args.data).map_err(|e| format!("the payload must be JSON: {e}"))?;
    let url = format!("{}/api/publish", args.client.server.trim_end_matches('/'));
    let mut body = json!({ "channel": args.channel, "data": data });
    if let Some(key) = args.key {
        body["key"] = json!(key);
    }
    if let Some(event) = args.event {
        body["event"] = json!(event);
    }
    if let Some(key) = args.idempotency_key {
        body["idempotency_key"] = json!(key);
    }
    let mut request = reqwest::Client::new().post(&url).json(&body);
    if let Some(key) = &args.api_key {
        request = request.header("authorization", format!("apikey {key}"));
    } else if let Some(token) = &args.client.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let reply: Value = response.json().await.map_err(|e| format!("bad reply from server: {e}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {}", reply["error"]["message"].as_str().unwrap_or("request refused")));
    }
    let mut landed = json!({ "channel": reply["channel"], "epoch": reply["epoch"], "offset": reply["offset"] });
    // A retry with the same idempotency key: nothing new was stored, this is where the first landed.
    if reply["duplicate"] == true {
        landed["duplicate"] = json!(true);
    }
    println!("{landed}");
    Ok(())
}
