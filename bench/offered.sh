#!/usr/bin/env bash
# Webhook received → card.offered read on an agent's event stream, at a steady rate: the real binary on
# loopback, a throwaway redis-server, N agents online on WhatsApp with capacity 1000 and their streams
# open, signed notifications each from a new customer. Bounded: rounds × duration × rate messages.
# Usage: bench/offered.sh [rate] [duration] [agents] [rounds]     e.g. bench/offered.sh 2000 5s 100 3
# COMMANDSTATS=1 also prints, per round, the Redis commands run per message (those inside scripts
# included) and their µs per call, the most time-consuming first.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}; dur=${2:-5s}; agents=${3:-100}; rounds=${4:-3}
. scripts/redis-for-tests.sh
bin=$(mktemp -d)
gw_pid=""
trap '[ -n "$gw_pid" ] && { kill $gw_pid 2>/dev/null; wait $gw_pid 2>/dev/null; }; rm -rf "$bin"; cleanup' EXIT
go build -o "$bin/chatgate" ./cmd/chatgate
go build -o "$bin/offered" ./bench/offered
# The example configuration with its queues and agents replaced: offers never time out (no re-offers,
# no no_answer pauses during the run), agents b000… in sales with room for every card of the run.
{
  sed -n '1,/^queues:/p' configs/chatgate.yaml | sed '$d' | sed 's/^  level: info/  level: warn/'
  echo "queues:"
  echo "  - { id: sales, name: Sales, channels: [whatsapp, webchat], strategy: longest_idle, offer_timeout: 24h }"
  echo "  - { id: support, name: Support, channels: [webchat], strategy: least_busy, offer_timeout: 24h }"
  echo "agents:"
  for i in $(seq 0 $((agents - 1))); do
    printf '  - { id: b%03d, queues: [sales], channels: { whatsapp: { capacity: 1000 } } }\n' "$i"
  done
  sed -n '/^whatsapp:/,$p' configs/chatgate.yaml
} >"$bin/offered.yaml"
port=$(go run ./scripts/freeport)
CHATGATE_LISTEN=127.0.0.1:$port CHATGATE_REDIS_URL=redis://$CHATGATE_TEST_REDIS_ADDR/0 CHATGATE_CONFIG="$bin/offered.yaml" \
  "$bin/chatgate" serve 2>"$bin/gateway.log" & gw_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
run() { "$bin/offered" -url "http://127.0.0.1:$port" -n "$agents" -pids "gateway=$gw_pid,redis=$redis_pid" "$@"; }
run -rate "$rate" -d 2s >/dev/null   # warm-up
redis_port=${CHATGATE_TEST_REDIS_ADDR##*:}
commandstats() { # messages in the round
  redis-cli -p "$redis_port" info commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$1" '
    /^cmdstat_/ {sub("cmdstat_", "", $1); calls[$1] = $3; usec[$1] = $5; total += $5}
    END {k = 0
      while (k < 8) {m = ""; for (x in usec) if (m == "" || usec[x] > usec[m]) m = x; if (m == "") break
        printf "  redis %-10s %5.1f%% of its time, %6.2f calls/message, %6.1f µs/call\n", m, 100 * usec[m] / total, calls[m] / n, usec[m] / calls[m]
        delete usec[m]; k++}}'
}
for round in $(seq 1 "$rounds"); do
  [ -n "${COMMANDSTATS:-}" ] && redis-cli -p "$redis_port" config resetstat >/dev/null
  echo "round $round: $(run -rate "$rate" -d "$dur")"
  [ -n "${COMMANDSTATS:-}" ] && commandstats "$(( rate * ${dur%s} ))"
  echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
grep -ciE 'level=(warn|error)' "$bin/gateway.log" | sed 's/^/gateway warnings and errors: /' || true
