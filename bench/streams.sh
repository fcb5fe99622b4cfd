#!/usr/bin/env bash
# Many agents' event streams on one gateway process (loopback only, bounded): memory and goroutines
# with them open, then one presence change per agent through the API and its delivery per stream.
# Usage: bench/streams.sh [streams]     e.g. bench/streams.sh 10000
#   CHATGATE_BIN=path  runs that gateway binary instead of building this tree's (an A/B reference)
#   PPROF=dir          builds with -tags benchpprof and saves heap and goroutine profiles into dir
# The configuration is the shipped one with n agents (a00000…), sized as an operator would: the
# open-files limit raised as far as allowed, http.max_connections set to it (streams may take three
# quarters), http.max_streams_per_ip left at its default (256). Streams come from 127.0.0.2,
# 127.0.0.3, … 250 each, so no address is over its bound or out of ephemeral ports.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
files=$(ulimit -n)
budget=$((files / 4 * 3))
if [ "$n" -gt "$budget" ]; then
  echo "streams: $n streams need an open-files limit of at least $((n * 4 / 3 + 1)) (ulimit -n is $files, hard $(ulimit -Hn)); measuring $budget" >&2
  n=$budget
fi
. scripts/redis-for-tests.sh
bin=$(mktemp -d)
gw_pid=""
trap '[ -n "$gw_pid" ] && { kill $gw_pid 2>/dev/null; wait $gw_pid 2>/dev/null; }; rm -rf "$bin"; cleanup' EXIT
if [ -n "${CHATGATE_BIN:-}" ]; then cp "$CHATGATE_BIN" "$bin/chatgate"
elif [ -n "${PPROF:-}" ]; then go build -tags benchpprof -o "$bin/chatgate" ./cmd/chatgate
else go build -o "$bin/chatgate" ./cmd/chatgate; fi
go build -o "$bin/streams" ./bench/streams
port=$(go run ./scripts/freeport)
pprof_flags=()
if [ -n "${PPROF:-}" ]; then
  mkdir -p "$PPROF"
  pprof_port=$(go run ./scripts/freeport)
  export CHATGATE_PPROF=127.0.0.1:$pprof_port
  pprof_flags=(-pprof "127.0.0.1:$pprof_port" -profile-dir "$PPROF")
fi
# The shipped configuration with n agents in place of the demo's three, and max_connections sized.
awk -v n="$n" -v files="$files" '
  /^agents:/ { print; for (i = 0; i < n; i++) printf "  - { id: a%05d, name: A%d, queues: [support], channels: { webchat: { capacity: 1 } } }\n", i, i; skip = 1; next }
  skip && /^[a-z]/ { skip = 0 }
  skip { next }
  /# max_connections:/ { sub(/# max_connections: [0-9]+/, "max_connections: " files) }
  { print }' configs/chatgate.yaml > "$bin/chatgate.yaml"
CHATGATE_LISTEN=127.0.0.1:$port CHATGATE_REDIS_URL=redis://$CHATGATE_TEST_REDIS_ADDR/0 CHATGATE_CONFIG="$bin/chatgate.yaml" \
  "$bin/chatgate" serve 2>"$bin/gateway.log" & gw_pid=$!
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
grep -m1 "event streams bounded" "$bin/gateway.log" >&2 || true
"$bin/streams" -url "http://127.0.0.1:$port" -n "$n" -pid "$gw_pid" -hold 5s "${pprof_flags[@]}"
