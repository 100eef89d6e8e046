//! The README's "A 2-minute tour", run as a newcomer pastes it: every `sh` block of that section,
//! in order, line by line, in one bash session, in a fresh directory, with the built `courtside`
//! first on PATH. Each line must succeed; each "#  …" comment line is output the session must
//! print; then the things the tour promises are checked one by one (the subscribers saw the
//! publications, the login gave a token, the claim and the score landed on the watched channel,
//! the browser's EventSource URL starts with the match's snapshot).
//!
//! What differs from a person's terminal, and why:
//! - `cargo …` lines (building and installing the binary) are skipped: the test runs the binary
//!   cargo built for it.
//! - The README's address, `127.0.0.1:8080`, becomes a free port: `COURTSIDE_LISTEN` and
//!   `COURTSIDE_SERVER` point `courtside serve` and the clients there, and the text of the lines
//!   (curl, EventSource) is rewritten.
//! - A person pastes the next line after a background `courtside sub … &` is up; the test waits
//!   for its "following … live from …" line.
//! - Pipelines run with `set -o pipefail`, so a failing command before `| tee` fails its line.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_courtside");
const README: &str = include_str!("../../../README.md");
/// The address the README uses.
const README_ADDR: &str = "127.0.0.1:8080";
/// One line's time limit (a debug binary on a busy machine).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// One line (or one command continued with `\`) of the tour, and the output it shows after it.
#[derive(Debug)]
struct Step {
    command: String,
    shown: Vec<String>,
}

/// The tour: its steps, the number of `cargo` lines skipped, and the browser's EventSource URL.
struct Tour {
    steps: Vec<Step>,
    skipped: usize,
    event_source_url: String,
}

/// Reads the tour section of the README, with the address rewritten to `addr`.
fn tour(readme: &str, addr: &str) -> Tour {
    let start = readme.find("## A 2-minute tour").expect("README has the tour");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let section = section.replace(README_ADDR, addr);
    assert!(!section.contains(":8080"), "every address in the tour is README_ADDR:\n{section}");
    let (mut steps, mut skipped, mut block, mut pending) = (Vec::<Step>::new(), 0, None::<String>, String::new());
    for line in section.lines() {
        if let Some(fence) = line.strip_prefix("```") {
            block = if block.is_some() { None } else { Some(fence.to_string()) };
            continue;
        }
        if block.as_deref() != Some("sh") {
            continue;
        }
        if let Some(shown) = line.strip_prefix("#  ") {
            steps.last_mut().expect("output follows a command").shown.push(shown.to_string());
            continue;
        }
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        let command = std::mem::take(&mut pending) + line;
        if command.starts_with("cargo ") {
            skipped += 1;
        } else {
            steps.push(Step { command, shown: Vec::new() });
        }
    }
    let event_source_url = section
        .split("new EventSource(\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the tour opens an EventSource")
        .to_string();
    Tour { steps, skipped, event_source_url }
}

/// What the session printed so far.
#[derive(Default)]
struct Transcript {
    stdout: String,
    stderr: String,
}

/// A bash session fed line by line; its process group is ended when dropped.
struct Session {
    child: Child,
    stdin: ChildStdin,
    transcript: Arc<(Mutex<Transcript>, Condvar)>,
}

impl Session {
    fn start(dir: &Path, addr: &str) -> Session {
        let bin_dir = Path::new(BIN).parent().expect("binary directory");
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new("bash");
        command.arg("-s").current_dir(dir).env("PATH", path).env("TMPDIR", dir);
        command.env("COURTSIDE_LISTEN", addr).env("COURTSIDE_SERVER", format!("http://{addr}"));
        for inherited in ["COURTSIDE_TOKEN", "COURTSIDE_API_KEY", "COURTSIDE_CONFIG", "COURTSIDE_DATA_DIR", "COURTSIDE_LOG"] {
            command.env_remove(inherited);
        }
        let mut child = command
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash starts");
        let transcript: Arc<(Mutex<Transcript>, Condvar)> = Arc::default();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (reader, is_stdout) in [(Box::new(stdout) as Box<dyn Read + Send>, true), (Box::new(stderr), false)] {
            let transcript = transcript.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(reader);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let (lock, changed) = &*transcript;
                    let mut printed = lock.lock().expect("transcript");
                    if is_stdout { &mut printed.stdout } else { &mut printed.stderr }.push_str(&line);
                    changed.notify_all();
                    line.clear();
                }
            });
        }
        let stdin = child.stdin.take().expect("stdin");
        let mut session = Session { child, stdin, transcript };
        session.send("set -o pipefail");
        session
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("bash reads its input");
    }

    /// Runs one step; returns its exit status and what it wrote to stderr (with what background
    /// jobs wrote meanwhile) once the shell is back at its "prompt". The marker goes to both
    /// streams, so each is read up to the end of the step.
    fn run(&mut self, number: usize, command: &str) -> (i32, String) {
        let marker = format!("::tour step {number} exit ");
        let stderr_before = self.stderr().len();
        self.send(command);
        self.send(&format!("tour_status=$?; printf '\\n{marker}%s::\\n' \"$tour_status\"; printf '{marker}::\\n' >&2"));
        let printed = self.wait_for(|t| t.stdout.contains(&marker) && t.stderr.contains(&marker), STEP_TIMEOUT, command);
        let status = printed.split(&marker).nth(1).and_then(|rest| rest.split("::").next()).unwrap_or_default();
        let stderr = self.stderr();
        let step_stderr = stderr[stderr_before..].split(&marker).next().unwrap_or_default().to_string();
        (status.parse().unwrap_or(-1), step_stderr)
    }

    /// Waits until `done` holds for the transcript; returns stdout then.
    fn wait_for(&self, done: impl Fn(&Transcript) -> bool, timeout: Duration, what: &str) -> String {
        assert!(self.wait_until(&done, timeout), "timed out on `{what}`\n{}", self.transcript());
        self.stdout()
    }

    /// Waits until `done` holds for the transcript, at most `timeout`; whether it does.
    fn wait_until(&self, done: impl Fn(&Transcript) -> bool, timeout: Duration) -> bool {
        let (lock, changed) = &*self.transcript;
        let deadline = Instant::now() + timeout;
        let mut printed = lock.lock().expect("transcript");
        while !done(&printed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            printed = changed.wait_timeout(printed, left).expect("transcript").0;
        }
        true
    }

    fn transcript(&self) -> String {
        render(&self.transcript.0.lock().expect("transcript"))
    }

    fn stdout(&self) -> String {
        self.transcript.0.lock().expect("transcript").stdout.clone()
    }

    fn stderr(&self) -> String {
        self.transcript.0.lock().expect("transcript").stderr.clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The session's process group: bash, the server and any subscriber still running.
        // SAFETY: signalling the process group this test created.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn render(transcript: &Transcript) -> String {
    format!("--- stdout ---\n{}\n--- stderr ---\n{}", transcript.stdout, transcript.stderr)
}

/// Whether `line` shows `pattern`: its pieces around each `…` in order (epochs vary, so every
/// `"epoch":"…"` value in the pattern is one).
fn shows(line: &str, pattern: &str) -> bool {
    let mut pattern = pattern.to_string();
    let mut from = 0;
    while let Some(at) = pattern[from..].find("\"epoch\":\"").map(|at| from + at + "\"epoch\":\"".len()) {
        let end = pattern[at..].find('"').map_or(pattern.len(), |end| at + end);
        pattern.replace_range(at..end, "…");
        from = at;
    }
    let mut rest = line;
    pattern.split('…').all(|piece| match rest.find(piece) {
        Some(at) => {
            rest = &rest[at + piece.len()..];
            true
        }
        None => false,
    })
}

/// Every JSON value the session printed on stdout, one or more a line (a reply curl prints
/// without a newline may have a background subscriber's line after it).
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .flat_map(|line| serde_json::Deserializer::from_str(line).into_iter::<Value>().map_while(Result::ok))
        .filter(Value::is_object)
        .collect()
}

/// The first `subscribed` event of an SSE stream at `url`.
fn first_sse_event(url: &str) -> Value {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (addr, path) = rest.split_at(rest.find('/').expect("path"));
    let mut stream = std::net::TcpStream::connect(addr).expect("connect for SSE");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").expect("request");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).expect("SSE line") > 0, "the stream ended before an event");
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            return serde_json::from_str(data).expect("event data is JSON");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("courtside-readme-tour-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_readme_tour_runs_as_written() {
    let dir = temp_dir();
    let addr = format!("127.0.0.1:{}", free_port());
    let tour = tour(README, &addr);
    assert_eq!(tour.skipped, 1, "only the install line is skipped");
    let mut session = Session::start(&dir, &addr);
    let mut user_add_stderr = None;
    for (number, step) in tour.steps.iter().enumerate() {
        let without_comment = step.command.split(" #").next().unwrap_or_default().trim_end();
        let is_subscriber = step.command.starts_with("courtside sub ") && without_comment.ends_with('&');
        let following = |t: &Transcript| t.stderr.matches("courtside: following ").count();
        let subscribed = following(&session.transcript.0.lock().expect("transcript"));
        let (status, stderr) = session.run(number, &step.command);
        assert_eq!(status, 0, "`{}` failed\n{}", step.command, session.transcript());
        if step.command.starts_with("courtside user add") {
            user_add_stderr = Some(stderr);
        }
        if is_subscriber {
            session.wait_for(|t| following(t) > subscribed, STEP_TIMEOUT, &step.command);
        }
    }
    // Everything the README shows appears (the background subscribers print when they do).
    let shown: Vec<&String> = tour.steps.iter().flat_map(|step| &step.shown).collect();
    assert!(shown.len() >= 10, "the tour shows its outputs");
    let missing = |t: &Transcript| {
        let printed = format!("{}\n{}", t.stdout, t.stderr);
        shown.iter().filter(|pattern| !printed.lines().any(|line| shows(line, pattern))).cloned().collect::<Vec<_>>()
    };
    session.wait_until(|t| missing(t).is_empty(), Duration::from_secs(20));
    let (stdout, stderr) = (session.stdout(), session.stderr());
    let transcript = session.transcript();
    let not_printed = missing(&Transcript { stdout: stdout.clone(), stderr: stderr.clone() });
    assert!(not_printed.is_empty(), "the README shows what the tour did not print: {not_printed:#?}\n{transcript}");

    // A tool prints only its own result; nothing is coloured when written to a pipe.
    assert_eq!(user_add_stderr.as_deref(), Some("courtside: added user kim (scorekeeper)\n"));
    assert!(!transcript.contains('\u{1b}'), "no ANSI colour codes in logs to a pipe\n{transcript}");
    assert!(!stdout.contains("{\"error\""), "no request was refused\n{transcript}");
    // The first start says where the keys went.
    for (what, file) in [("token signing key", "jwt-secret"), ("API key", "api-key")] {
        let said = stderr.lines().find(|line| line.contains(&format!("first start: generated the {what} into ")));
        assert!(said.is_some_and(|line| line.ends_with(&format!("/data/{file}"))), "{what} logged with its path\n{stderr}");
    }

    let lines = json_lines(&stdout);
    let on = |channel: &'static str| lines.iter().filter(move |line| line["channel"] == channel && line.get("data").is_some());
    // match:42: the background subscriber saw 1, 2, 3; the resume 2 and 3; the snapshot 3.
    let mut offsets: Vec<u64> = on("match:42").filter_map(|line| line["offset"].as_u64()).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, [1, 2, 2, 3, 3, 3], "{transcript}");
    // The login gave a token, which claimed the match and scored; the watcher saw both.
    let claim = lines.iter().find(|line| line.get("claim").is_some()).expect("the claim's reply");
    assert_eq!((&claim["claim"]["holder"], &claim["claim"]["fencingToken"]), (&Value::from("kim"), &Value::from(1)));
    let score = lines.iter().find(|line| line.get("score").is_some()).expect("the score's reply");
    assert_eq!(score["score"]["updatedBy"], "kim");
    let watched: Vec<&Value> = on("match:cup:m1").collect();
    assert_eq!(watched.iter().map(|line| line["data"]["type"].clone()).collect::<Vec<_>>(), ["claim", "score"], "{transcript}");
    assert_eq!(watched[1]["data"]["score"]["sets"], serde_json::json!([{ "home": 25, "away": 21 }]));

    // A page opened now gets the match's state at once, not a blank until the next point.
    let subscribed = first_sse_event(&tour.event_source_url);
    let snapshot = subscribed["snapshot"].as_array().expect("the EventSource URL asks for the snapshot");
    let latest = snapshot.iter().find(|publication| publication["key"] == "score").expect("the score is in the snapshot");
    assert_eq!(latest["data"]["score"]["sets"], serde_json::json!([{ "home": 25, "away": 21 }]));

    drop(session);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_matcher_takes_ellipses_and_any_epoch() {
    assert!(shows(r#"{"channel":"m","epoch":"ab12cd34","offset":1}"#, r#"{"channel":"m","epoch":"k3v9q2xa","offset":1}"#));
    assert!(!shows(r#"{"channel":"m","epoch":"ab12cd34","offset":2}"#, r#"{"channel":"m","epoch":"k3v9q2xa","offset":1}"#));
    assert!(shows("2026 INFO x: first start: generated it", "… INFO x: first start: …"));
    assert!(!shows("ready", "not ready"));
}
