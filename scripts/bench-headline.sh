#!/usr/bin/env bash
# Runs the headline scenarios of docs/benchmarks.md on the current checkout, one after the other,
# each against a fresh `courtside serve` and data directory, and prints each report (one JSON
# object per scenario, labelled) to stdout. Progress goes to stderr.
#
#   scripts/bench-headline.sh > headline.jsonl
#
# Run it on a quiet machine: the server and the bench share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p courtside >&2
cargo build --release --locked -p courtside-sqlite --example sqlite_append_throughput >&2
BIN=./target/release/courtside
ulimit -n "$(ulimit -Hn)"   # the server and the bench each need one file per connection

# shellcheck source=bench-server.sh
source scripts/bench-server.sh

run_scenario() { # label, write_coalesce_ms, bench arguments…
  local label=$1 coalesce=$2
  shift 2
  start_courtside "[client]\nwrite_coalesce_ms = $coalesce\n"
  echo "== $label" >&2
  local report
  report=$("$BIN" bench --server "http://127.0.0.1:$port" --server-pid "$server" --token "$token" "$@")
  printf '{"scenario":"%s","commit":"%s","report":%s}\n' "$label" "$(git rev-parse --short HEAD)" "$report"
  stop_server
}

run_scenario "1: 2,000 subscribers x 1 channel, coalesce 0" 0 \
  --subscribers 2000 --channels 1 --rate 100 --duration 20 --payload-bytes 200
run_scenario "1: 2,000 subscribers x 1 channel, coalesce 20" 20 \
  --subscribers 2000 --channels 1 --rate 100 --duration 20 --payload-bytes 200
run_scenario "2: 10,000 subscribers x 100 channels" 0 \
  --subscribers 10000 --channels 100 --rate 10 --duration 20 --payload-bytes 200
run_scenario "3: 19,000 idle subscribers" 0 \
  --subscribers 19000 --channels 1 --idle

echo "== 4: SQLite store appends" >&2
for args in "" "2000 50"; do
  # shellcheck disable=SC2086 # the arguments are two words on purpose
  printf '{"scenario":"4: store appends %s","commit":"%s","report":%s}\n' "${args:-10 channels}" \
    "$(git rev-parse --short HEAD)" "$(./target/release/examples/sqlite_append_throughput $args)"
done
