#!/usr/bin/env bash
# Webhook intake, costs that do not depend on the machine's load: the gateway at a fixed request rate
# (bench/loadgen -rate) on its own throwaway Redis, then CPU per request of the gateway (/proc) and of
# redis-server (INFO cpu), Redis commands per request and the intake script's µs per call (INFO
# commandstats), all over the measured window only (after a warm-up).
# Usage: bench/intake-cpu.sh [rate] [duration] [rounds]      e.g. bench/intake-cpu.sh 4000 5s 3
# PPROF_OUT=file also takes a CPU profile of the gateway over the last round (built with -tags benchpprof).
# CHATGATE_BIN=path measures that binary instead of building this tree (e.g. another commit's).
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-4000}; dur=${2:-5s}; rounds=${3:-3}
. scripts/redis-for-tests.sh
bin=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$bin"; }
trap 'stop; cleanup' EXIT
if [ -n "${CHATGATE_BIN:-}" ]; then cp "$CHATGATE_BIN" "$bin/chatgate"; else go build -tags benchpprof -o "$bin/chatgate" ./cmd/chatgate; fi
go build -o "$bin/loadgen" ./bench/loadgen
gw_port=$(go run ./scripts/freeport); pp_port=$(go run ./scripts/freeport)
rp=${CHATGATE_TEST_REDIS_ADDR##*:}
CHATGATE_LISTEN=127.0.0.1:$gw_port CHATGATE_REDIS_URL=redis://$CHATGATE_TEST_REDIS_ADDR/0 CHATGATE_CONFIG=${BENCH_CONFIG:-configs/chatgate.yaml} \
  CHATGATE_PPROF=127.0.0.1:$pp_port "$bin/chatgate" serve 2>"$bin/gateway.log" & gw=$!; pids+=($gw)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$gw_port/webhooks/whatsapp
"$bin/loadgen" -url "$url" -d 3s -c 32 -rate "$rate" >/dev/null   # warm-up: the 1,000 customers' conversations exist
ticks=$(getconf CLK_TCK)
cpu_gw() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$gw/stat"; }
cpu_redis() { redis-cli -p "$rp" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { print s }'; }
calls() { redis-cli -p "$rp" info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ && !/cmdstat_(info|ping|evalsha|eval)/ { c += $3 } END { print c+0 }'; }
script() { redis-cli -p "$rp" info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_evalsha:/ { print $3, $5 }'; }
for r in $(seq 1 "$rounds"); do
  g0=$(cpu_gw); r0=$(cpu_redis); c0=$(calls); read -r e0 u0 < <(script)
  if [ "$r" = "$rounds" ] && [ -n "${PPROF_OUT:-}" ]; then
    curl -s "http://127.0.0.1:$pp_port/debug/pprof/profile?seconds=${dur%s}" -o "$PPROF_OUT" & prof=$!
  fi
  out=$("$bin/loadgen" -url "$url" -d "$dur" -c 32 -rate "$rate")
  [ -n "${prof:-}" ] && wait "$prof"
  g1=$(cpu_gw); r1=$(cpu_redis); c1=$(calls); read -r e1 u1 < <(script)
  n=$(echo "$out" | grep -o '2xx=[0-9]*' | cut -d= -f2)
  echo "round $r  $out"
  awk -v n="$n" -v g="$(echo "$g0 $g1")" -v rr="$(echo "$r0 $r1")" -v c="$c0 $c1" -v e="$e0 $e1" -v u="$u0 $u1" 'BEGIN {
    split(g, G, " "); split(rr, R, " "); split(c, C, " "); split(e, E, " "); split(u, U, " ")
    printf "  gateway %.1f µs CPU/req  redis %.1f µs CPU/req  %.2f Redis calls in scripts/req  %.2f scripts/req at %.1f µs/call\n",
      (G[2]-G[1])*1e6/n, (R[2]-R[1])*1e6/n, (C[2]-C[1])/n, (E[2]-E[1])/n, (U[2]-U[1])/(E[2]-E[1]) }'
done
