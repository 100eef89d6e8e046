//! The `courtside` binary as a user runs it: `serve` (and what it logs), `config`, `token`,
//! `pub`, `sub`, `user`, `export`/`import`, `demo`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_courtside");

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("courtside-cli-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn courtside(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("COURTSIDE_SERVER").env_remove("COURTSIDE_TOKEN").env_remove("COURTSIDE_API_KEY").env("COURTSIDE_LOG", "warn");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("courtside runs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

struct Served {
    child: Child,
    url: String,
    data_dir: PathBuf,
}

impl Served {
    fn start(label: &str) -> Served {
        Self::start_at(temp_dir(label), free_port())
    }

    fn start_at(data_dir: PathBuf, port: u16) -> Served {
        Self::start_logging(data_dir, port, Stdio::null())
    }

    /// Starts `serve` with its log (stderr) going to `log`, at the default level (`info`).
    fn start_logging(data_dir: PathBuf, port: u16, log: Stdio) -> Served {
        let listen = format!("127.0.0.1:{port}");
        let child = courtside(&["serve", "--listen", &listen, "--data-dir", data_dir.to_str().expect("utf-8")])
            .env_remove("COURTSIDE_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serve starts");
        let url = format!("http://{listen}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(Instant::now() < deadline, "server did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Served { child, url, data_dir }
    }

    /// SIGTERM, then wait for the exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.child.wait().expect("wait")
    }

    fn token(&self, sub: &str, role: &str) -> String {
        let output = run(&mut courtside(&["token", "--data-dir", self.data_dir.to_str().expect("utf-8"), "--sub", sub, "--role", role]));
        stdout(&output).trim().to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn config_layers_env_and_flags_and_names_a_wrong_key() {
    let dir = temp_dir("config");
    let printed = stdout(&run(courtside(&["config", "--data-dir", dir.to_str().expect("utf-8"), "--listen", "127.0.0.1:9999"])
        .env("COURTSIDE_LISTEN", "127.0.0.1:7777")
        .env("COURTSIDE_CLIENT__PING_INTERVAL_SECS", "7")));
    assert!(printed.contains("listen = \"127.0.0.1:9999\""), "flags win over env:\n{printed}");
    assert!(printed.contains("ping_interval_secs = 7"), "env applies:\n{printed}");
    assert!(printed.contains("[namespaces.match]"), "built-in namespaces are shown");

    let output = run(&mut courtside(&["config"]).env("COURTSIDE_CLIENT__PING_INTERVAL_SECS", "soon"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ping_interval_secs"), "names the key");

    let file = dir.with_extension("toml");
    std::fs::write(&file, "[client]\nsend_queue_len_max = 0\n").expect("write");
    let output = run(&mut courtside(&["config", "--config", file.to_str().expect("utf-8")]));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("client.send_queue_len_max"));
}

#[test]
fn pub_and_sub_round_trip_with_resume() {
    let served = Served::start("pubsub");
    let token = served.token("kim", "scorekeeper");
    let mut epoch = String::new();
    for n in 1..=3 {
        let printed = stdout(&run(&mut courtside(&["pub", "match:42", &format!("{{\"home\":{n}}}"), "--key", "score", "--server", &served.url, "--token", &token])));
        let reply: serde_json::Value = serde_json::from_str(printed.trim()).expect("JSON line");
        assert_eq!(reply["offset"], n);
        assert_eq!(reply["channel"], "match:42");
        epoch = reply["epoch"].as_str().expect("epoch").to_string();
    }
    let printed = stdout(&run(&mut courtside(&["sub", "match:42", "--from", &format!("{epoch}:1"), "--count", "2", "--server", &served.url])));
    let lines: Vec<serde_json::Value> = printed.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["offset"].as_u64(), lines[1]["offset"].as_u64()), (Some(2), Some(3)));
    assert_eq!(lines[1]["data"]["home"], 3);
    assert_eq!(lines[0]["channel"], "match:42");
    assert_eq!(lines[0]["epoch"], epoch.as_str());

    let api_key = std::fs::read_to_string(served.data_dir.join("api-key")).expect("generated api key");
    let by_backend = stdout(&run(&mut courtside(&["pub", "match:42", "4", "--server", &served.url, "--api-key", api_key.trim()])));
    assert!(by_backend.contains("\"offset\":4"), "{by_backend}");
    let refused = run(&mut courtside(&["pub", "match:42", "1", "--server", &served.url]));
    assert!(!refused.status.success(), "anonymous may not publish on match:");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("permission denied"));
    let bad_json = run(&mut courtside(&["pub", "match:42", "{nope", "--server", &served.url, "--token", &token]));
    assert!(!bad_json.status.success());
}

#[test]
fn sub_prints_live_publications_until_its_count() {
    let served = Served::start("live");
    let token = served.token("staff1", "staff");
    let subscriber = courtside(&["sub", "tournament:t1:announcements", "--count", "2", "--server", &served.url])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sub starts");
    std::thread::sleep(Duration::from_millis(500));
    for text in ["courts open", "finals at 3pm"] {
        stdout(&run(&mut courtside(&["pub", "tournament:t1:announcements", &format!("{{\"text\":\"{text}\"}}"), "--server", &served.url, "--token", &token])));
    }
    let output = subscriber.wait_with_output().expect("sub ends after its count");
    let printed = stdout(&output);
    assert_eq!(printed.lines().count(), 2, "{printed}");
    assert!(printed.contains("finals at 3pm"));
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut served = Served::start("sigterm");
    let started = Instant::now();
    let status = served.terminate();
    assert!(status.success(), "exits cleanly: {status}");
    assert!(started.elapsed() < Duration::from_secs(12), "stops before the 10 s deadline");
}

#[test]
fn sub_resumes_across_a_server_restart_without_loss_or_repeats() {
    let served = Served::start("restart");
    let token = served.token("staff1", "staff");
    let publish = |url: &str, n: u32| {
        stdout(&run(&mut courtside(&["pub", "court:c1", &n.to_string(), "--server", url, "--token", &token])));
    };
    let subscriber = courtside(&["sub", "court:c1", "--count", "4", "--server", &served.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sub starts");
    std::thread::sleep(Duration::from_millis(500));
    publish(&served.url, 1);
    publish(&served.url, 2);
    std::thread::sleep(Duration::from_millis(300));
    let (data_dir, port, url) = (served.data_dir.clone(), served.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port"), served.url.clone());
    let mut served = served;
    served.terminate();
    drop(served);
    let restarted = Served::start_at(data_dir, port);
    publish(&url, 3);
    publish(&url, 4);
    let output = subscriber.wait_with_output().expect("sub ends after its count");
    let printed = stdout(&output);
    let offsets: Vec<u64> = printed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON")["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![1, 2, 3, 4], "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("reconnecting"));
    drop(restarted);
}

#[test]
fn users_added_on_the_command_line_sign_in_to_the_server() {
    let data_dir = temp_dir("users");
    let dir = data_dir.to_str().expect("utf-8");
    let password_file = std::env::temp_dir().join(format!("courtside-cli-password-{}", std::process::id()));
    std::fs::write(&password_file, "correct horse\n").expect("write password");
    let added = run(&mut courtside(&[
        "user", "add", "--data-dir", dir, "--username", "kim", "--password-file",
        password_file.to_str().expect("utf-8"), "--role", "scorekeeper",
    ]));
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(String::from_utf8_lossy(&added.stderr).contains("added user kim (scorekeeper)"));
    let again = run(&mut courtside(&["user", "add", "--data-dir", dir, "--username", "kim", "--password", "another one", "--role", "staff"]));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"), "{}", String::from_utf8_lossy(&again.stderr));
    let bad_role = run(&mut courtside(&["user", "add", "--data-dir", dir, "--username", "lee", "--password", "long enough", "--role", "king"]));
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role \"king\""));
    assert_eq!(stdout(&run(&mut courtside(&["user", "list", "--data-dir", dir]))), "kim\tscorekeeper\n");

    let served = Served::start_at(data_dir.clone(), free_port());
    let while_running = run(&mut courtside(&["user", "list", "--data-dir", dir]));
    assert!(!while_running.status.success(), "the store is the running server's");
    assert!(String::from_utf8_lossy(&while_running.stderr).contains("HTTP API"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let body: serde_json::Value = runtime.block_on(async {
        let login = serde_json::json!({ "username": "kim", "password": "correct horse" });
        let response = reqwest::Client::new().post(format!("{}/api/auth/login", served.url)).json(&login).send().await;
        response.expect("login request").json().await.expect("JSON")
    });
    assert_eq!(body["user"]["username"], "kim", "{body}");
    let _ = std::fs::remove_file(password_file);
}

#[test]
fn the_demo_plays_a_tournament_whose_scores_move_within_seconds() {
    let data_dir = temp_dir("demo");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut demo = courtside(&["demo", "--listen", &listen, "--data-dir", data_dir.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let url = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "the demo did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let output = run(&mut courtside(&["sub", "tournament:demo:scores", "--count", "4", "--server", &url]));
    let printed = stdout(&output);
    let scores: Vec<serde_json::Value> = printed.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect();
    assert_eq!(scores.len(), 4);
    assert!(started.elapsed() < Duration::from_secs(30), "the demo keeps producing scores (a liveness guard, not a speed test)");
    for score in &scores {
        assert_eq!(score["data"]["type"], "score", "{score}");
        assert_eq!(score["data"]["score"]["tournamentId"], "demo");
    }
    unsafe { libc::kill(demo.id() as i32, libc::SIGTERM) };
    let status = demo.wait().expect("demo exits");
    assert!(status.success(), "SIGTERM stops the demo cleanly");
}

#[test]
fn a_tournament_exported_from_one_data_dir_imports_exactly_into_another() {
    let source = Served::start("export-source");
    let key = format!("apikey {}", std::fs::read_to_string(source.data_dir.join("api-key")).expect("api key").trim());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let send = |method: reqwest::Method, path: &str, body: serde_json::Value| {
            client.request(method, format!("{}{path}", source.url)).header("authorization", &key).json(&body).send()
        };
        use serde_json::json;
        for (method, path, body) in [
            (reqwest::Method::POST, "/api/events", json!({ "id": "cup", "name": "Cup" })),
            (reqwest::Method::PUT, "/api/events/cup/divisions/u18", json!({ "id": "u18", "name": "U18" })),
            (reqwest::Method::PUT, "/api/events/cup/teams/red", json!({ "id": "red", "name": "Red" })),
            (reqwest::Method::PUT, "/api/events/cup/teams/blue", json!({ "id": "blue", "name": "Blue" })),
            (reqwest::Method::POST, "/api/events/cup/matches", json!({ "id": "m1", "divisionId": "u18", "homeTeamId": "red", "awayTeamId": "blue" })),
            (reqwest::Method::POST, "/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": 25, "away": 20 }], "status": "in_progress" })),
        ] {
            let response = send(method, path, body).await.expect("request");
            assert!(response.status().is_success(), "{path}: {}", response.text().await.unwrap_or_default());
        }
    });
    let source_dir = source.data_dir.clone();
    drop(source);
    let exported = stdout(&run(&mut courtside(&["export", "cup", "--data-dir", source_dir.to_str().expect("utf-8")])));
    assert!(exported.contains("\"formatVersion\": 1"), "{exported}");
    let file = std::env::temp_dir().join(format!("courtside-cli-export-{}.json", std::process::id()));
    std::fs::write(&file, &exported).expect("write export");
    let target = temp_dir("export-target");
    let target_dir = target.to_str().expect("utf-8");
    let imported = run(&mut courtside(&["import", file.to_str().expect("utf-8"), "--data-dir", target_dir]));
    assert!(String::from_utf8_lossy(&imported.stderr).contains("imported tournament cup"), "{}", String::from_utf8_lossy(&imported.stderr));
    assert_eq!(stdout(&run(&mut courtside(&["export", "cup", "--data-dir", target_dir]))), exported, "round trip is exact");
    let again = run(&mut courtside(&["import", file.to_str().expect("utf-8"), "--data-dir", target_dir]));
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let missing = run(&mut courtside(&["export", "nope", "--data-dir", target_dir]));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("tournament nope not found"));
    let _ = std::fs::remove_file(file);
}

#[test]
fn token_never_creates_a_secret_and_names_the_data_dir_it_looked_in() {
    let elsewhere = temp_dir("token-elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("create");
    // Run where no server ever ran, as a newcomer in the wrong directory does.
    let refused = run(courtside(&["token", "--sub", "kim", "--role", "scorekeeper"]).current_dir(&elsewhere));
    assert!(!refused.status.success(), "no key, no token");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("no signing key in ./data") && said.contains("--data-dir") && said.contains("--config"), "{said}");
    assert!(!elsewhere.join("data").exists(), "nothing was created");
    let missing = elsewhere.join("nowhere");
    let refused = run(&mut courtside(&["token", "--sub", "kim", "--data-dir", missing.to_str().expect("utf-8")]));
    assert!(String::from_utf8_lossy(&refused.stderr).contains(missing.to_str().expect("utf-8")), "names the directory");
    assert!(!missing.exists());

    // With the server's data dir, the token is one the server accepts.
    let served = Served::start("token-served");
    let token = served.token("kim", "scorekeeper");
    stdout(&run(&mut courtside(&["pub", "match:7", "1", "--server", &served.url, "--token", &token])));
}

#[test]
fn the_first_start_logs_where_the_keys_went_in_plain_text() {
    let data_dir = temp_dir("first-start");
    let log = data_dir.with_extension("log");
    let port = free_port();
    let mut served = Served::start_logging(data_dir.clone(), port, std::fs::File::create(&log).expect("log file").into());
    served.terminate();
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(!logged.contains('\u{1b}'), "no ANSI colour codes in a log file:\n{logged:?}");
    let canonical = data_dir.canonicalize().expect("data dir");
    for (what, file) in [("token signing key", "jwt-secret"), ("API key", "api-key")] {
        let line = format!("first start: generated the {what} into {}", canonical.join(file).display());
        assert_eq!(logged.matches(&line).count(), 1, "one line for the {what}:\n{logged}");
    }
    drop(served);
    let mut again = Served::start_logging(data_dir, port, std::fs::File::create(&log).expect("log file").into());
    again.terminate();
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("courtside listening") && !logged.contains("first start"), "a restart generates nothing:\n{logged}");
}

#[test]
fn store_tools_print_only_their_result() {
    let data_dir = temp_dir("quiet");
    let dir = data_dir.to_str().expect("utf-8");
    let quiet = |args: &[&str]| {
        let mut command = courtside(args);
        run(command.env_remove("COURTSIDE_LOG"))
    };
    let added = quiet(&["user", "add", "--data-dir", dir, "--username", "kim", "--password", "long enough", "--role", "scorekeeper"]);
    assert!(added.status.success());
    assert_eq!(String::from_utf8_lossy(&added.stderr), "courtside: added user kim (scorekeeper)\n");
    let exported = quiet(&["export", "cup", "--data-dir", dir]);
    assert_eq!(String::from_utf8_lossy(&exported.stderr), "courtside: tournament cup not found\n");
    let listed = quiet(&["user", "list", "--data-dir", dir]);
    assert_eq!((stdout(&listed).as_str(), String::from_utf8_lossy(&listed.stderr).as_ref()), ("kim\tscorekeeper\n", ""));
}

#[test]
fn pub_says_when_a_retry_was_a_duplicate() {
    let served = Served::start("duplicate");
    let token = served.token("staff1", "staff");
    let publish = || {
        let printed = stdout(&run(&mut courtside(&[
            "pub", "court:c9", "{\"n\":1}", "--idempotency-key", "op-1", "--server", &served.url, "--token", &token,
        ])));
        serde_json::from_str::<serde_json::Value>(printed.trim()).expect("JSON line")
    };
    let first = publish();
    assert_eq!((first["offset"].as_u64(), first.get("duplicate")), (Some(1), None), "{first}");
    let retried = publish();
    assert_eq!((retried["offset"].as_u64(), &retried["duplicate"]), (Some(1), &serde_json::Value::Bool(true)), "{retried}");
}
