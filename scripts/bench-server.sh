# Sourced by the bench scripts: one fresh `courtside serve` per run.
#
#   start_courtside [CONFIG_TOML_TEXT]   sets $dir $port $server $token (a staff token)
#   stop_server                           stops $server and removes $dir
# Needs $BIN (the courtside binary).

start_courtside() {
  dir=$(mktemp -d)
  port=$((20000 + RANDOM % 20000))
  printf '%b' "${1:-}" > "$dir/c.toml"
  COURTSIDE_LOG=warn "$BIN" serve --config "$dir/c.toml" --data-dir "$dir" --listen "127.0.0.1:$port" &
  server=$!
  for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  token=$("$BIN" token --data-dir "$dir" --sub bench --role staff)
}

stop_server() {
  kill "$server"
  wait "$server" 2>/dev/null || true
  [ -n "${dir:-}" ] && rm -rf "$dir"
  dir=""
}
