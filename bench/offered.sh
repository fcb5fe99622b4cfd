#!/usr/bin/env bash
# Webhook received → card.offered read on an agent's event stream, at a steady rate: the real binary on
# loopback, a throwaway redis-server, N agents online on WhatsApp with capacity 1000 and their streams
# open, signed notifications each from a new customer. Bounded: rounds × duration × rate messages.
# Usage: bench/offered.sh [rate] [duration] [agents] [rounds]     e.g. bench/offered.sh 2000 5s 100 3
# COMMANDSTATS=1 also prints, per round, the Redis commands run per message (those inside scripts
# included) and their µs per call, the most time-consuming first.
# BASE=<commit> also measures that commit (its gateway and load generator, on a Redis of its own),
# rounds alternating with the working tree's, so that the two compare within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}; dur=${2:-5s}; agents=${3:-100}; rounds=${4:-3}
. scripts/redis-for-tests.sh
bin=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$bin"; }
trap 'stop; cleanup' EXIT
# side NAME SRC REDIS_ADDR REDIS_PID: builds the gateway and load generator from SRC, starts the gateway.
# The example configuration with its queues and agents replaced: offers never time out (no re-offers,
# no no_answer pauses during the run), agents b000… in sales with room for every card of the run.
declare -A gw_port gw_pid rd_pid rd_port
side() {
  local name=$1 src=$2
  (cd "$src" && go build -o "$bin/chatgate-$name" ./cmd/chatgate && go build -o "$bin/offered-$name" ./bench/offered)
  {
    sed -n '1,/^queues:/p' "$src/configs/chatgate.yaml" | sed '$d' | sed 's/^  level: info/  level: warn/'
    echo "queues:"
    echo "  - { id: sales, name: Sales, channels: [whatsapp, webchat], strategy: longest_idle, offer_timeout: 24h }"
    echo "  - { id: support, name: Support, channels: [webchat], strategy: least_busy, offer_timeout: 24h }"
    echo "agents:"
    for i in $(seq 0 $((agents - 1))); do
      printf '  - { id: b%03d, queues: [sales], channels: { whatsapp: { capacity: 1000 } } }\n' "$i"
    done
    sed -n '/^whatsapp:/,$p' "$src/configs/chatgate.yaml"
  } >"$bin/offered-$name.yaml"
  rd_port[$name]=${3##*:}; rd_pid[$name]=$4
  gw_port[$name]=$(go run ./scripts/freeport)
  CHATGATE_LISTEN=127.0.0.1:${gw_port[$name]} CHATGATE_REDIS_URL=redis://$3/0 CHATGATE_CONFIG="$bin/offered-$name.yaml" \
    "$bin/chatgate-$name" serve 2>"$bin/gateway-$name.log" &
  gw_pid[$name]=$!; pids+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:${gw_port[$name]}/readyz" >/dev/null && break; sleep 0.1; done
}
sides=head
side head . "$CHATGATE_TEST_REDIS_ADDR" "$redis_pid"
if [ -n "${BASE:-}" ]; then
  mkdir "$bin/base-src" && git archive "$BASE" | tar -x -C "$bin/base-src"
  base_redis=$(go run ./scripts/freeport)
  redis-server --port "$base_redis" --bind 127.0.0.1 --save "" --appendonly no --dir "$bin" --logfile /dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$base_redis" ping >/dev/null 2>&1 && break; sleep 0.05; done
  side base "$bin/base-src" "127.0.0.1:$base_redis" "$!"
  sides="base head"
fi
run() { # side, then the load generator's flags
  local name=$1; shift
  "$bin/offered-$name" -url "http://127.0.0.1:${gw_port[$name]}" -n "$agents" -pids "gateway=${gw_pid[$name]},redis=${rd_pid[$name]}" "$@"
}
for name in $sides; do run "$name" -rate "$rate" -d 2s >/dev/null; done   # warm-up
commandstats() { # side, messages in the round
  redis-cli -p "${rd_port[$1]}" info commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$2" '
    /^cmdstat_/ {sub("cmdstat_", "", $1); calls[$1] = $3; usec[$1] = $5; total += $5}
    END {k = 0
      while (k < 8) {m = ""; for (x in usec) if (m == "" || usec[x] > usec[m]) m = x; if (m == "") break
        printf "  redis %-10s %5.1f%% of its time, %6.2f calls/message, %6.1f µs/call\n", m, 100 * usec[m] / total, calls[m] / n, usec[m] / calls[m]
        delete usec[m]; k++}}'
}
for round in $(seq 1 "$rounds"); do
  for name in $sides; do
    label=""; [ "$sides" != head ] && label=" $name"
    [ -n "${COMMANDSTATS:-}" ] && redis-cli -p "${rd_port[$name]}" config resetstat >/dev/null
    echo "round $round$label: $(run "$name" -rate "$rate" -d "$dur")"
    [ -n "${COMMANDSTATS:-}" ] && commandstats "$name" "$(( rate * ${dur%s} ))"
    echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
for name in $sides; do
  grep -ciE 'level=(warn|error)' "$bin/gateway-$name.log" | sed "s/^/gateway $name warnings and errors: /" || true
done
