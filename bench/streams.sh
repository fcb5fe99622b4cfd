#!/usr/bin/env bash
# Memory of many open event streams on one gateway process (loopback only, bounded).
# Usage: bench/streams.sh [streams]     e.g. bench/streams.sh 10000
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
. scripts/redis-for-tests.sh
bin=$(mktemp -d)
gw_pid=""
trap '[ -n "$gw_pid" ] && { kill $gw_pid 2>/dev/null; wait $gw_pid 2>/dev/null; }; rm -rf "$bin"; cleanup' EXIT
go build -o "$bin/chatgate" ./cmd/chatgate
go build -o "$bin/streams" ./bench/streams
port=$(go run ./scripts/freeport)
# Every stream comes from 127.0.0.1: lift the per-address bound above n for this measurement.
sed "s/max_streams_per_ip: [0-9]*/max_streams_per_ip: $((n + 10))/" configs/chatgate.yaml > "$bin/chatgate.yaml"
CHATGATE_LISTEN=127.0.0.1:$port CHATGATE_REDIS_URL=redis://$CHATGATE_TEST_REDIS_ADDR/0 CHATGATE_CONFIG="$bin/chatgate.yaml" \
  "$bin/chatgate" serve 2>"$bin/gateway.log" & gw_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
token=$("$bin/chatgate" token --agent ana --config configs/chatgate.yaml)
"$bin/streams" -url "http://127.0.0.1:$port/v1/agents/me/events" -token "$token" -n "$n" -pid "$gw_pid" -hold 5s
