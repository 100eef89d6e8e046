#!/usr/bin/env bash
# The Socket.IO figures of docs/benchmarks.md, on the current checkout, one run after the other,
# each against a fresh server; prints one labelled JSON report per run to stdout (progress on
# stderr).
#
#   scripts/bench-socketio.sh > socketio.jsonl
#
# 1. Courtside's own bench (the Rust load generator), scenario 1's shape, over the native
#    protocol and over /socket.io/: the server's CPU per delivery on each path.
# 2. One Node load generator (clients/js/tools/socketio-bench, socket.io-client 4.8) against a
#    plain Socket.IO 4.8 server and against Courtside, at rising publish rates: deliveries per
#    second and server CPU per delivery, the generator being the same for both.
#
# Needs Node 20+ and `npm ci` in clients/js. Run it on a quiet machine: servers and generators
# share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p courtside >&2
BIN=./target/release/courtside
NODE_BENCH=clients/js/tools/socketio-bench
ulimit -n "$(ulimit -Hn)"
COMMIT=$(git rev-parse --short HEAD)

# shellcheck source=bench-server.sh
source scripts/bench-server.sh

label() { printf '{"run":"%s","commit":"%s","report":%s}\n' "$1" "$COMMIT" "$2"; }

for transport in native socketio; do
  start_courtside
  echo "== courtside bench, $transport" >&2
  flag=""
  [ "$transport" = socketio ] && flag="--socketio"
  report=$("$BIN" bench --server "http://127.0.0.1:$port" --server-pid "$server" --token "$token" $flag \
    --subscribers 2000 --channels 1 --rate 100 --duration 20 --payload-bytes 200)
  label "courtside bench, 2,000 subscribers, 100 msg/s, $transport" "$report"
  stop_server
done

for rate in 50 100 200; do
  port=$((20000 + RANDOM % 20000))
  node "$NODE_BENCH/reference-server.mjs" "$port" >/dev/null &
  server=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "== node generator, Socket.IO 4.8, $rate msg/s" >&2
  report=$(node "$NODE_BENCH/bench.mjs" --url "http://127.0.0.1:$port" --pid "$server" --subscribers 1000 --rate "$rate" --duration 20 --payload-bytes 200)
  label "node generator, Socket.IO 4.8 server, 1,000 subscribers, $rate msg/s" "$report"
  stop_server

  start_courtside
  echo "== node generator, Courtside, $rate msg/s" >&2
  report=$(node "$NODE_BENCH/bench.mjs" --url "http://127.0.0.1:$port" --pid "$server" --token "$token" --subscribers 1000 --rate "$rate" --duration 20 --payload-bytes 200)
  label "node generator, Courtside, 1,000 subscribers, $rate msg/s" "$report"
  stop_server
done
