#!/usr/bin/env bash
# Replies during a campaign: the time from a reply's 202 to the fake Cloud API, alone and while a
# campaign of templates is sent through the same gateway (bench/campaign). Loopback only.
# Usage: bench/campaign.sh [templates] [rounds] [concurrency] [reply interval]   e.g. bench/campaign.sh 10000 3 32 20ms
# The two campaign numbers send at most CAMPAIGN_RATE/s each (default 250, so the campaign is held by
# the numbers' rate, as a real one is: its sends wait for their turn); the replied conversations use a
# third number.
# BASE=<commit> also runs chatgate built at that commit, alternating rounds with this one.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}; rounds=${2:-3}; conns=${3:-32}; interval=${4:-20ms}; rate=${CAMPAIGN_RATE:-250}
. scripts/redis-for-tests.sh
bin=$(mktemp -d)
pids=()
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
stop() { for p in "${pids[@]}"; do stop_pid "$p"; done; rm -rf "$bin"; }
trap 'stop; cleanup' EXIT
go build -o "$bin/chatgate" ./cmd/chatgate
go build -o "$bin/campaign" ./bench/campaign
if [ -n "${BASE:-}" ]; then
  mkdir "$bin/base-src" && git archive "$BASE" | tar -x -C "$bin/base-src"
  (cd "$bin/base-src" && go build -o "$bin/chatgate-base" ./cmd/chatgate)
fi
redis_port=${CHATGATE_TEST_REDIS_ADDR##*:}
fake_port=$(go run ./scripts/freeport); gw_port=$(go run ./scripts/freeport)
agents=$(seq -s, -f 'a%g' 1 20)  # 20 × capacity 1000: room for the campaign's conversations

cat >"$bin/bench.yaml" <<YAML
listen: "127.0.0.1:$gw_port"
tenant: bench
env: development
log: { level: warn }
redis: { url: "redis://127.0.0.1:$redis_port/0" }
auth: { jwt_secret: "bench-secret-of-enough-length" }
presence: { disconnect_grace: 1h }
outbound: { concurrency: 20, max_retry: 10, recipient_interval: 1ms, send_timeout: 15s }
pause_reasons: [{ id: lunch, label: Lunch }, { id: no_answer, label: No answer }]
queues: [{ id: sales, channels: [whatsapp] }]
agents:
$(for a in $(seq 1 20); do echo "  - { id: a$a, queues: [sales], channels: { whatsapp: { capacity: 1000 } } }"; done)
whatsapp:
  app_secret: bench-app-secret
  verify_token: bench-verify
  api_base_url: "http://127.0.0.1:$fake_port"
  api_version: v21.0
  numbers:
    - { phone_number_id: "100200300", queue: sales, access_token: bench-token, rate_per_second: $rate }
    - { phone_number_id: "100200301", queue: sales, access_token: bench-token, rate_per_second: $rate }
    - { phone_number_id: "100200302", queue: sales, access_token: bench-token, rate_per_second: 1000 }
  templates:
    - { name: order_update, language: pt_BR, body_params: 2, text: "Olá {{1}}, seu pedido {{2}} foi atualizado." }
YAML

"$bin/chatgate" fake-whatsapp --listen "127.0.0.1:$fake_port" --config "$bin/bench.yaml" 2>"$bin/fake.log" & pids+=($!)
wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
wait_http "http://127.0.0.1:$fake_port/_fake/rules" || { cat "$bin/fake.log" >&2; exit 1; }

run() { # binary, customer offset
  redis-cli -p "$redis_port" flushall >/dev/null
  curl -s -X DELETE "http://127.0.0.1:$fake_port/_fake/calls" >/dev/null
  "$1" serve --config "$bin/bench.yaml" 2>>"$bin/gateway.log" & local pid=$!; pids+=($pid)
  wait_http "http://127.0.0.1:$gw_port/readyz"
  "$bin/campaign" -url "http://127.0.0.1:$gw_port" -fake "http://127.0.0.1:$fake_port" -secret bench-secret-of-enough-length \
    -app-secret bench-app-secret -agents "$agents" -numbers 100200300,100200301 -reply-number 100200302 \
    -n "$n" -c "$conns" -interval "$interval" -offset "$2"
  echo "  load average $(cut -d' ' -f1 /proc/loadavg)"
  stop_pid "$pid"
}
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  echo " chatgate:"; run "$bin/chatgate" $((round * 2 * n))
  if [ -n "${BASE:-}" ]; then echo " chatgate at $BASE:"; run "$bin/chatgate-base" $((round * 2 * n + n)); fi
done
