#!/usr/bin/env bash
# Webhook intake benchmark: the running chatgate binary (signed request → verified → parsed → recorded
# and routed in Redis) against a bare fiber handler, same load generator, same run, loopback only.
# Usage: bench/intake.sh [duration] [connections]     e.g. bench/intake.sh 10s 32
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}; conns=${2:-32}
. scripts/redis-for-tests.sh
bin=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$bin"; }
trap 'stop; cleanup' EXIT
go build -o "$bin/chatgate" ./cmd/chatgate
go build -o "$bin/bare" ./bench/bare
go build -o "$bin/loadgen" ./bench/loadgen
gw_port=$(go run ./scripts/freeport); bare_port=$(go run ./scripts/freeport)
CHATGATE_LISTEN=127.0.0.1:$gw_port CHATGATE_REDIS_URL=redis://$CHATGATE_TEST_REDIS_ADDR/0 CHATGATE_CONFIG=${BENCH_CONFIG:-configs/chatgate.yaml} \
  "$bin/chatgate" serve 2>"$bin/gateway.log" & pids+=($!)
"$bin/bare" --listen 127.0.0.1:$bare_port & pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null && break; sleep 0.1; done
"$bin/loadgen" -url "http://127.0.0.1:$bare_port/webhooks/whatsapp" -d 2s -c "$conns" >/dev/null   # warm-up
"$bin/loadgen" -url "http://127.0.0.1:$gw_port/webhooks/whatsapp" -d 2s -c "$conns" >/dev/null
for round in 1 2 3; do
  echo "round $round"
  "$bin/loadgen" -url "http://127.0.0.1:$bare_port/webhooks/whatsapp" -d "$dur" -c "$conns"
  "$bin/loadgen" -url "http://127.0.0.1:$gw_port/webhooks/whatsapp" -d "$dur" -c "$conns"
done
echo "messages recorded in Redis: $(redis-cli -p "${CHATGATE_TEST_REDIS_ADDR##*:}" --scan --pattern 'cg:{default}:msg:*' | wc -l)"
