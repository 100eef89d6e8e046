//! App hooks: the app's own backend decides over HTTP (what Centrifugo calls proxies). When
//! configured (`[hooks]`), the server asks `POST {url}/connect` before admitting a connection,
//! `{url}/subscribe` before a client reads a channel of a hooked namespace (subscribe, history,
//! presence), `{url}/publish` before storing a client's publication in one (the answer may
//! rewrite the payload), and forwards `rpc` calls to `{url}/rpc`. Each request has a timeout,
//! failures (no answer, a 5xx) are retried, and a circuit breaker stops asking a backend that
//! keeps failing: while it is open, hooked calls fail at once with "unavailable" (111 / 503), so
//! clients back off and retry — a hook never fails open. The request and answer JSON are in
//! docs/hooks.md; [`breaker`] holds the breaker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use courtside_core::access::Principal;
use courtside_core::ChannelName;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::histogram::Histogram;
use crate::protocol::ClientError;

mod breaker;
use breaker::Breaker;

/// `[hooks]`: where the app's backend listens and what it decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// The backend's base URL (`http://` or `https://`); empty: no hooks.
    pub url: String,
    /// Sent as `Authorization: Bearer …` so the backend knows the call is the server's.
    pub secret: String,
    /// Milliseconds one attempt may take.
    pub timeout_ms: u64,
    /// Attempts after the first when the backend did not answer or answered 5xx.
    pub retries: u32,
    /// Failed calls in a row that open the circuit breaker.
    pub breaker_failures: u32,
    /// Seconds the breaker stays open before one call probes the backend again.
    pub breaker_open_secs: u64,
    /// Ask before admitting a connection (WebSocket, SSE, Socket.IO).
    pub connect: bool,
    /// Forward `rpc` calls.
    pub rpc: bool,
    /// Namespaces whose channel reads (subscribe, history, presence) the backend decides.
    pub subscribe: Vec<String>,
    /// Namespaces whose client publications the backend decides (and may rewrite).
    pub publish: Vec<String>,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            secret: String::new(),
            timeout_ms: 1000,
            retries: 2,
            breaker_failures: 5,
            breaker_open_secs: 10,
            connect: false,
            rpc: false,
            subscribe: Vec::new(),
            publish: Vec::new(),
        }
    }
}

impl HooksConfig {
    /// Whether anything is hooked.
    pub fn enabled(&self) -> bool {
        self.connect || self.rpc || !self.subscribe.is_empty() || !self.publish.is_empty()
    }

    /// The first key that is wrong, and why; `namespaces` are the configured ones.
    pub fn validate(&self, namespaces: &[&str]) -> Result<(), (String, String)> {
        let invalid = |key: &str, message: String| Err((format!("hooks.{key}"), message));
        if self.url.is_empty() {
            if self.enabled() {
                return invalid("url", "is required when a hook is on".into());
            }
            return Ok(());
        }
        match reqwest::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => return invalid("url", format!("{:?} is not an http:// or https:// URL", self.url)),
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return invalid("timeout_ms", "must be between 1 and 60000".into());
        }
        if self.retries > 10 {
            return invalid("retries", "must be at most 10".into());
        }
        if self.breaker_failures == 0 {
            return invalid("breaker_failures", "must be at least 1".into());
        }
        if self.breaker_open_secs == 0 {
            return invalid("breaker_open_secs", "must be at least 1".into());
        }
        for (key, listed) in [("subscribe", &self.subscribe), ("publish", &self.publish)] {
            if let Some(unknown) = listed.iter().find(|namespace| !namespaces.contains(&namespace.as_str())) {
                return invalid(key, format!("names {unknown:?}, which is no configured namespace"));
            }
        }
        Ok(())
    }
}

/// How the client reached the server, as the backend is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Websocket,
    Sse,
    Socketio,
    Http,
}

/// A connection as the cluster names it, `{node}-{connection}` (presence's client ids too):
/// written out only where the name is needed.
#[derive(Debug, Clone, Copy)]
pub struct ClientRef<'a> {
    pub node: &'a str,
    pub connection: u64,
}

impl std::fmt::Display for ClientRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.node, self.connection)
    }
}

/// Who asks: what the backend is told about the caller.
#[derive(Debug, Clone, Copy)]
pub struct HookCaller<'a> {
    pub principal: &'a Principal,
    pub transport: Transport,
    /// The connection (none for an HTTP request).
    pub client: Option<ClientRef<'a>>,
}

/// The four hooks, each a path under the base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Connect,
    Subscribe,
    Publish,
    Rpc,
}

impl Hook {
    const ALL: [Hook; 4] = [Hook::Connect, Hook::Subscribe, Hook::Publish, Hook::Rpc];

    fn name(self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::Subscribe => "subscribe",
            Hook::Publish => "publish",
            Hook::Rpc => "rpc",
        }
    }
}

/// What became of a hook call, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied,
    /// No usable answer after every attempt.
    Failed,
    /// Not asked: the breaker is open.
    ShortCircuited,
}

impl Outcome {
    const ALL: [Outcome; 4] = [Outcome::Allowed, Outcome::Denied, Outcome::Failed, Outcome::ShortCircuited];

    fn name(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
            Outcome::ShortCircuited => "short_circuited",
        }
    }
}

/// Hook calls by hook and outcome, their latency and the breaker's state, for `/metrics`.
#[derive(Default)]
pub struct HookStats {
    calls: [[AtomicU64; Outcome::ALL.len()]; Hook::ALL.len()],
    pub latency: Histogram,
    breaker_opened: AtomicU64,
    breaker_open: std::sync::atomic::AtomicBool,
}

impl HookStats {
    fn count(&self, hook: Hook, outcome: Outcome) {
        let (h, o) = (hook as usize, outcome as usize);
        self.calls[h][o].fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the hook metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP courtside_hook_calls_total App hook calls, by hook and outcome.\n# TYPE courtside_hook_calls_total counter");
        for hook in Hook::ALL {
            for outcome in Outcome::ALL {
                let value = self.calls[hook as usize][outcome as usize].load(Ordering::Relaxed);
                let _ = writeln!(out, "courtside_hook_calls_total{{hook=\"{}\",outcome=\"{}\"}} {value}", hook.name(), outcome.name());
            }
        }
        let open = i32::from(self.breaker_open.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP courtside_hook_breaker_open Whether the app hooks' circuit breaker is open (1) or closed (0).\n# TYPE courtside_hook_breaker_open gauge\ncourtside_hook_breaker_open {open}");
        let opened = self.breaker_opened.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP courtside_hook_breaker_opened_total Times the app hooks' circuit breaker opened.\n# TYPE courtside_hook_breaker_opened_total counter\ncourtside_hook_breaker_opened_total {opened}");
        self.latency.render(out, "courtside_hook_latency_seconds", "Time an app hook call took, retries included.");
    }
}

/// The backend's answer: allowed or not, why not, and a payload (publish: the rewritten one;
/// rpc: the result).
#[derive(Debug, Deserialize)]
pub struct Answer {
    pub allow: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

impl Answer {
    /// Reads an answer's body: `{"allow": …}` or why it is not one.
    pub fn parse(body: &[u8]) -> Result<Answer, String> {
        if body.len() > ANSWER_BYTES_MAX {
            return Err(format!("the answer is {} bytes, more than {ANSWER_BYTES_MAX}", body.len()));
        }
        crate::json::decode_object(std::str::from_utf8(body).map_err(|error| format!("the answer is not UTF-8: {error}"))?)
            .map_err(|error| format!("the answer is not {{\"allow\": …}}: {error}"))
    }
}

/// What the backend is sent (one shape for every hook; fields a hook has no use for are absent).
#[derive(Serialize)]
struct HookRequest<'a> {
    hook: Hook,
    transport: Transport,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    /// The signed-in user (absent: anonymous).
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    roles: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tournament_roles: Option<&'a std::collections::BTreeMap<String, Vec<courtside_core::Role>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

impl<'a> HookRequest<'a> {
    fn new(hook: Hook, caller: &HookCaller<'a>) -> Self {
        let (user, roles, tournament_roles) = match caller.principal {
            Principal::User { id, roles, tournament_roles } => {
                (Some(id.as_str()), roles.iter().map(|role| role.as_str()).collect(), (!tournament_roles.is_empty()).then_some(&**tournament_roles))
            }
            Principal::Server | Principal::Anonymous => (None, Vec::new(), None),
        };
        Self { hook, transport: caller.transport, client: caller.client.map(|client| client.to_string()), user, roles, tournament_roles, channel: None, key: None, event: None, method: None, data: None }
    }
}

/// A publication as the publish hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct HookedPublication<'a> {
    pub channel: &'a ChannelName,
    pub key: Option<&'a str>,
    pub event: Option<&'a str>,
    pub data: &'a RawValue,
}

/// The app's backend, as the server calls it.
pub struct AppHooks {
    config: HooksConfig,
    http: reqwest::Client,
    breaker: Mutex<Breaker>,
    pub stats: Arc<HookStats>,
}

impl AppHooks {
    /// Checks the configuration (`namespaces`: the configured ones) and sets up the client.
    pub fn new(config: &HooksConfig, namespaces: &[&str], stats: Arc<HookStats>) -> Result<Self, HooksError> {
        config.validate(namespaces).map_err(|(key, message)| HooksError::Invalid { key, message })?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).build().map_err(HooksError::Client)?;
        let breaker = Breaker::new(config.breaker_failures, Duration::from_secs(config.breaker_open_secs), timeout * (config.retries + 1));
        Ok(Self { config: config.clone(), http, breaker: Mutex::new(breaker), stats })
    }

    pub fn hooks_connect(&self) -> bool {
        self.config.connect
    }

    fn hooks_reads_of(&self, channel: &ChannelName) -> bool {
        self.config.subscribe.iter().any(|namespace| namespace == channel.namespace())
    }

    fn hooks_publications_to(&self, channel: &ChannelName) -> bool {
        self.config.publish.iter().any(|namespace| namespace == channel.namespace())
    }

    /// Asks whether a connection is admitted (when the connect hook is on).
    pub async fn connect(&self, caller: &HookCaller<'_>) -> Result<(), ClientError> {
        if !self.config.connect {
            return Ok(());
        }
        self.call(HookRequest::new(Hook::Connect, caller)).await.map(drop)
    }

    /// Asks whether `caller` may read `channel` (when its namespace is hooked).
    pub async fn subscribe(&self, caller: &HookCaller<'_>, channel: &ChannelName) -> Result<(), ClientError> {
        if !self.hooks_reads_of(channel) || matches!(caller.principal, Principal::Server) {
            return Ok(());
        }
        self.call(HookRequest { channel: Some(channel.as_str()), ..HookRequest::new(Hook::Subscribe, caller) }).await.map(drop)
    }

    /// Asks whether `caller` may publish `publication` (when its namespace is hooked); `Some`:
    /// the payload the backend wants stored instead.
    pub async fn publish(&self, caller: &HookCaller<'_>, publication: HookedPublication<'_>) -> Result<Option<Box<RawValue>>, ClientError> {
        if !self.hooks_publications_to(publication.channel) || matches!(caller.principal, Principal::Server) {
            return Ok(None);
        }
        let request = HookRequest {
            channel: Some(publication.channel.as_str()),
            key: publication.key,
            event: publication.event,
            data: Some(publication.data),
            ..HookRequest::new(Hook::Publish, caller)
        };
        self.call(request).await
    }

    /// Forwards an RPC call; the backend's `data` is the result (`null` when it sent none).
    pub async fn rpc(&self, caller: &HookCaller<'_>, method: &str, data: &RawValue) -> Result<Box<RawValue>, ClientError> {
        if !self.config.rpc {
            return Err(ClientError::UnknownMethod("rpc".into()));
        }
        let request = HookRequest { method: Some(method), data: Some(data), ..HookRequest::new(Hook::Rpc, caller) };
        let result = self.call(request).await?;
        Ok(result.unwrap_or_else(|| RawValue::NULL.to_owned()))
    }

    /// One hook call: breaker, attempts, outcome.
    async fn call(&self, request: HookRequest<'_>) -> Result<Option<Box<RawValue>>, ClientError> {
        let hook = request.hook;
        if !self.breaker.lock().admit(Instant::now()) {
            self.stats.count(hook, Outcome::ShortCircuited);
            return Err(ClientError::Unavailable("the app's backend is failing: hooks paused".into()));
        }
        let started = Instant::now();
        let answered = self.attempt_all(&request).await;
        self.stats.latency.observe(started.elapsed());
        {
            let mut breaker = self.breaker.lock();
            let was_open = breaker.is_open();
            match &answered {
                Ok(_) => breaker.succeeded(),
                Err(_) => breaker.failed(Instant::now()),
            }
            if breaker.is_open() && !was_open {
                self.stats.breaker_opened.fetch_add(1, Ordering::Relaxed);
            }
            self.stats.breaker_open.store(breaker.is_open(), Ordering::Relaxed);
        }
        match answered {
            Ok(Answer { allow: true, data, .. }) => {
                self.stats.count(hook, Outcome::Allowed);
                Ok(data)
            }
            Ok(Answer { allow: false, reason, .. }) => {
                self.stats.count(hook, Outcome::Denied);
                let reason = reason.map(|reason| reason.chars().take(REASON_CHARS_MAX).collect::<String>());
                Err(ClientError::Denied(reason.unwrap_or_else(|| "the app refused".into())))
            }
            Err(failure) => {
                self.stats.count(hook, Outcome::Failed);
                tracing::warn!(hook = hook.name(), %failure, "app hook failed");
                Err(ClientError::Unavailable(format!("the app's backend did not answer the {} hook", hook.name())))
            }
        }
    }

    /// Sends the request until an attempt gets a usable answer, or none is left.
    async fn attempt_all(&self, request: &HookRequest<'_>) -> Result<Answer, AttemptError> {
        let url = format!("{}/{}", self.config.url.trim_end_matches('/'), request.hook.name());
        let mut attempt = 0;
        loop {
            let failure = match self.attempt(&url, request).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            if !failure.retryable() || attempt >= self.config.retries {
                return Err(failure);
            }
            attempt += 1;
            tokio::time::sleep(RETRY_PAUSE * attempt).await;
        }
    }

    async fn attempt(&self, url: &str, request: &HookRequest<'_>) -> Result<Answer, AttemptError> {
        let mut call = self.http.post(url).json(request);
        if !self.config.secret.is_empty() {
            call = call.bearer_auth(&self.config.secret);
        }
        let response = call.send().await.map_err(AttemptError::NoAnswer)?;
        let status = response.status();
        if !status.is_success() {
            return Err(AttemptError::Status(status.as_u16()));
        }
        let body = response.bytes().await.map_err(AttemptError::NoAnswer)?;
        Answer::parse(&body).map_err(AttemptError::Unusable)
    }
}

/// Why the hooks cannot be used (the server does not start).
#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("app hooks: cannot set up the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// Longest denial reason passed on to the client.
const REASON_CHARS_MAX: usize = 200;
/// Largest answer read from the backend.
const ANSWER_BYTES_MAX: usize = 1 << 20;
/// The pause before a retry, times the attempt's number.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Why one attempt got no usable answer.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("no answer: {0}")]
    NoAnswer(reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("{0}")]
    Unusable(String),
}

impl AttemptError {
    /// No answer and a 5xx may pass; a 4xx or a malformed answer will not.
    fn retryable(&self) -> bool {
        match self {
            AttemptError::NoAnswer(_) => true,
            AttemptError::Status(status) => *status >= 500,
            AttemptError::Unusable(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Answer;

    #[test]
    fn answers_are_objects_with_allow() {
        let allowed = Answer::parse(br#"{"allow":true,"data":{"text":"HI"}}"#).expect("an answer");
        assert!(allowed.allow);
        assert_eq!(allowed.data.map(|data| data.get().to_string()).as_deref(), Some(r#"{"text":"HI"}"#));
        let denied = Answer::parse(br#"{"allow":false,"reason":"banned"}"#).expect("an answer");
        assert_eq!((denied.allow, denied.reason.as_deref()), (false, Some("banned")));
        for unusable in [&b"[true]"[..], b"{}", b"{\"allow\":\"yes\"}", b"not json", b"\xff", b"{\"allow\":true} trailing"] {
            assert!(Answer::parse(unusable).is_err(), "{:?}", String::from_utf8_lossy(unusable));
        }
        assert!(Answer::parse(&vec![b' '; super::ANSWER_BYTES_MAX + 1]).unwrap_err().contains("bytes, more than"));
    }
}
