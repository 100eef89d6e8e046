//! Keeps docs/configuration.md equal to the code: every key of the configuration has a row with
//! its default and environment variable, and every error message the document quotes is the one
//! the loader gives today.

use std::path::PathBuf;

use figment::providers::Env;

use super::Config;

fn configuration_md() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// The document's table rows whose first cell is `` `key` ``.
fn rows_for<'a>(document: &'a str, key: &str) -> Vec<&'a str> {
    let cell = format!("| `{key}` |");
    document.lines().filter(|line| line.starts_with(&cell)).collect()
}

/// Dotted paths of every leaf of the default configuration, except what the namespace tables and
/// the rate-limit class table document as a whole.
fn leaf_keys(value: &toml::Value, prefix: &str, keys: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (name, value) in table {
                let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                if path == "namespaces" || path == "sports.rate_limits" || path == "leaderboards" {
                    keys.push(path);
                    continue;
                }
                leaf_keys(value, &path, keys);
            }
        }
        _ => keys.push(prefix.to_string()),
    }
}

#[test]
fn every_configuration_key_has_a_documented_row_with_its_environment_variable() {
    let document = configuration_md();
    let defaults = toml::Value::try_from(Config::default()).expect("the defaults serialise");
    let mut keys = Vec::new();
    leaf_keys(&defaults, "", &mut keys);
    // Keys whose default is unset do not appear in the serialised defaults.
    keys.extend(["auth.jwt_secret_file", "auth.jwt_public_key_file", "tls.cert_file", "tls.key_file", "redis_ca_file"].map(String::from));
    // No board is declared by default; each board's keys are documented under `leaderboards.<id>`.
    keys.retain(|key| key != "leaderboards");
    keys.extend(["order", "operator", "top_n", "reset", "rating.k_factor", "rating.initial"].map(|key| format!("leaderboards.<id>.{key}")));
    // No client event is mapped by default; each rule's keys are documented under `on.<event>`.
    keys.extend(["arg_is_user", "unfollow", "follow", "reply"].map(|key| format!("socketio.on.<event>.{key}")));
    // No schema is configured by default; each namespace's keys are documented under `<namespace>`.
    keys.extend(["file", "inline"].map(|key| format!("schemas.<namespace>.{key}")));
    let mut missing = Vec::new();
    for key in keys.iter().filter(|key| key.as_str() != "namespaces") {
        let (row_key, env) = match key.as_str() {
            "sports.rate_limits" => ("rate_limits.<class>".to_string(), "COURTSIDE_SPORTS__RATE_LIMITS__".to_string()),
            rule if rule.starts_with("socketio.on.<event>.") => {
                let name = &rule["socketio.".len()..];
                (name.to_string(), format!("COURTSIDE_SOCKETIO__ON__<EVENT>__{}", rule["socketio.on.<event>.".len()..].to_uppercase()))
            }
            schema if schema.starts_with("schemas.<namespace>.") => {
                let name = &schema["schemas.<namespace>.".len()..];
                (format!("<namespace>.{name}"), format!("COURTSIDE_SCHEMAS__<NAMESPACE>__{}", name.to_uppercase()))
            }
            board if board.starts_with("leaderboards.<id>.") => {
                let name = &board["leaderboards.<id>.".len()..];
                (name.to_string(), format!("COURTSIDE_LEADERBOARDS__<ID>__{}", name.replace('.', "__").to_uppercase()))
            }
            _ => {
                let name = key.rsplit('.').next().unwrap_or(key);
                (name.to_string(), format!("COURTSIDE_{}", key.replace('.', "__").to_uppercase()))
            }
        };
        let rows = rows_for(&document, &row_key);
        if !rows.iter().any(|row| row.contains(&env)) {
            missing.push(format!("{key} (a row for `{row_key}` naming {env})"));
        }
    }
    assert!(missing.is_empty(), "docs/configuration.md lacks: {missing:#?}");
}

#[test]
fn documented_defaults_are_the_defaults() {
    let document = configuration_md();
    let defaults = Config::default();
    let client = &defaults.client;
    for (key, value) in [
        ("ping_interval_secs", client.ping_interval_secs.to_string()),
        ("idle_timeout_secs", client.idle_timeout_secs.to_string()),
        ("connect_timeout_secs", client.connect_timeout_secs.to_string()),
        ("send_queue_len_max", client.send_queue_len_max.to_string()),
        ("send_queue_bytes_max", client.send_queue_bytes_max.to_string()),
        ("message_bytes_max", client.message_bytes_max.to_string()),
        ("publication_bytes_max", client.publication_bytes_max.to_string()),
        ("payload_depth_max", client.payload_depth_max.to_string()),
        ("commands_per_sec", client.commands_per_sec.to_string()),
        ("commands_burst", client.commands_burst.to_string()),
        ("subscriptions_max", client.subscriptions_max.to_string()),
        ("connections_per_user_max", client.connections_per_user_max.to_string()),
        ("subscriptions_per_user_max", client.subscriptions_per_user_max.to_string()),
        ("read_buffer_bytes", client.read_buffer_bytes.to_string()),
        ("write_coalesce_ms", client.write_coalesce_ms.to_string()),
        ("shutdown_timeout_secs", defaults.shutdown_timeout_secs.to_string()),
        ("presence_ttl_secs", defaults.presence_ttl_secs.to_string()),
        ("reload_check_secs", defaults.tls.reload_check_secs.to_string()),
        ("token_ttl_secs", defaults.auth.token_ttl_secs.to_string()),
        ("access_token_ttl_secs", defaults.auth.access_token_ttl_secs.to_string()),
        ("refresh_token_ttl_secs", defaults.auth.refresh_token_ttl_secs.to_string()),
        ("claim_ttl_secs", defaults.sports.claim_ttl_secs.to_string()),
        ("claim_ttl_max_secs", defaults.sports.claim_ttl_max_secs.to_string()),
    ] {
        let rows = rows_for(&document, key);
        let default_cell = format!("| `{value}`");
        assert!(
            rows.iter().any(|row| row.contains(&default_cell)),
            "docs/configuration.md: the row of `{key}` must give the default `{value}`: {rows:?}"
        );
    }
}

/// The message `toml` (as a configuration file) fails with.
fn load_error(toml: &str) -> String {
    let dir = std::env::temp_dir().join(format!("courtside-config-docs-{}-{}", std::process::id(), toml.len()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("courtside.toml");
    std::fs::write(&file, toml).expect("write");
    let loaded = Config::load_from(Some(&file), Env::prefixed("COURTSIDE_TEST_UNUSED_"), &Default::default());
    let _ = std::fs::remove_dir_all(&dir);
    match loaded {
        Ok(_) => panic!("{toml:?} was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn quoted_error_messages_are_the_loaders() {
    let document = configuration_md();
    let mut unquoted = Vec::new();
    for toml in [
        "[client]\nping_interval_secs = \"soon\"\n",
        "lisen = \"127.0.0.1:1\"\n",
        "[namespaces.x]\ncolour = \"red\"\n",
        "[namespaces.x]\npublish = [\"referee\"]\n",
        "listen = \"localhost:80\"\n",
        "allowed_origins = \"https://ok.example\"\n",
        "[client]\nping_interval_secs = 0\n",
        "[client]\nidle_timeout_secs = 1\n",
        "[client]\nsend_queue_len_max = 0\n",
        "[client]\nsend_queue_bytes_max = 1000\n",
        "[client]\nmessage_bytes_max = 10\n",
        "[client]\ncommands_per_sec = 0\n",
        "[client]\ncommands_burst = 0\n",
        "[client]\nconnect_timeout_secs = 0\n",
        "[client]\nsubscriptions_max = 0\n",
        "[client]\npublication_bytes_max = 100000\n",
        "[client]\npayload_depth_max = 0\n",
        "[client]\nread_buffer_bytes = 10\n",
        "[client]\nwrite_coalesce_ms = 5000\n",
        "allowed_origins = [\"scores.example\"]\n",
        "[auth]\njwt_algorithm = \"HS512\"\n",
        "[auth]\njwt_algorithm = \"RS256\"\n",
        "[namespaces.\"bad:name\"]\n",
        "[namespaces._mine]\n",
        "[namespaces.x]\njoin_leave = true\n",
        "[namespaces.x]\nkeyed = true\nhistory_size = 0\n",
        "[[namespaces.x.rules]]\nchannel = \"y:{t}\"\n",
        "[[namespaces.x.rules]]\nchannel = \"x:a\"\nscope = \"t\"\n",
        "[auth]\nroles = [\"staff\"]\n",
        "[schemas.nowhere]\ninline = {}\n",
        "[schemas.match]\ninline = { type = 7 }\n",
        "[schemas.match]\n",
        "[hooks]\nconnect = true\n",
        "[hooks]\nurl = \"ftp://x\"\n",
        "[hooks]\nurl = \"http://app\"\ntimeout_ms = 0\n",
        "[hooks]\nurl = \"http://app\"\nretries = 11\n",
        "[hooks]\nurl = \"http://app\"\nbreaker_failures = 0\n",
        "[hooks]\nurl = \"http://app\"\nbreaker_open_secs = 0\n",
        "[hooks]\nurl = \"http://app\"\nsubscribe = [\"nowhere\"]\n",
        "presence_ttl_secs = 1\n",
        "[tls]\ncert_file = \"server.crt\"\n",
        "[tls]\nkey_file = \"server.key\"\n",
        "[tls]\nreload_check_secs = 0\n",
        "redis_ca_file = \"ca.pem\"\n",
        "redis_prefix = \"\"\n",
        "store = \"mysql://x\"\n",
        "broker = \"kafka://x\"\n",
        "broker = \"redis://127.0.0.1:6379\"\n",
        "[sports]\nclaim_ttl_secs = 0\n",
        "[sports]\nclaim_ttl_max_secs = 5000000\n",
        "[sports.rate_limits.everything]\nrequests = 1\nper_secs = 1\n",
        "[sports.rate_limits.score_update]\nrequests = 0\nper_secs = 1\n",
        "[sports]\nrate_limit_backend = \"redis\"\n",
        "[auth]\naccess_token_ttl_secs = 0\n",
        "[leaderboards.\"bad:id\"]\n",
        "[leaderboards.weekly]\ntop_n = 0\n",
        "[leaderboards.weekly]\noperator = \"max\"\n",
        "[leaderboards.weekly]\nreset = \"hourly\"\n",
        "[leaderboards.elo.rating]\nk_factor = 0\n",
        "[leaderboards.elo.rating]\ninitial = 9007199254740992\n",
        "leaderboard_push_interval_ms = 0\n",
        "maintenance_notice_secs = 3601\n",
        "[socketio.on.subscribe]\nfollow = [\"a:b\"]\n",
        "[socketio.on.x]\nreply = { event = \"connect\" }\n",
        "[socketio.on.x]\nfollow = [\"a b\"]\n",
        "[[socketio.emit]]\nchannel = \"a:*\"\nevent = \"e\"\ndata = { at = \"$tomorrow\" }\n",
        "[[socketio.emit]]\nchannel = \"a:*\"\nevent = \"e\"\ndata = { me = \"$user\" }\n",
        "[socketio.on.x]\nreply = { event = \"y\", source = { leaderboard = \"b\" } }\n",
    ] {
        let message = load_error(toml);
        if !document.contains(&message) {
            unquoted.push(format!("{toml:?}:\n    {message}"));
        }
    }
    assert!(unquoted.is_empty(), "docs/configuration.md must quote these messages exactly:\n{}", unquoted.join("\n"));
}

#[test]
fn the_printed_configuration_example_is_what_courtside_config_prints() {
    let document = configuration_md();
    let start = document.find("$ COURTSIDE_CLIENT__PING_INTERVAL_SECS=5 courtside config").expect("the example");
    let example: Vec<&str> = document[start..].lines().skip(1).take_while(|line| *line != "…").collect();
    let mut config = Config::default();
    config.listen = "0.0.0.0:8080".parse().expect("address");
    config.client.ping_interval_secs = 5;
    let printed = config.to_toml();
    assert!(
        printed.lines().take(example.len()).eq(example.iter().copied()),
        "docs/configuration.md's `courtside config` example must begin as the real output does:\n{printed}"
    );
}
