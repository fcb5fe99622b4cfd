#!/usr/bin/env bash
# Outbound benchmark: sends per second through the whole path — HTTP 202 → queue → worker → the fake
# Cloud API → "sent" — for chatgate (asynq) and for the same sends through BullMQ (bench/bullmq), on
# the same throwaway Redis and the same fake provider, alternating rounds. Loopback only.
# Usage: bench/outbound.sh [requests per round] [rounds] [concurrency] [per customer]   e.g. bench/outbound.sh 5000 3 32 5
# per customer > 1 sends that many templates to each customer: they join one conversation, which
# chatgate sends in order (the BullMQ side has no such order and sends them as they come).
# Environment: SIDES="chatgate bullmq" (which sides to run, in that order each round);
# MONITOR=dir writes each round's redis-cli MONITOR there (diagnosis only: it slows Redis);
# BASE=<commit> also builds chatgate at that commit, run as the side "base" (SIDES="chatgate base bullmq"),
# to compare two versions in one run;
# PPROF=seconds takes a CPU profile of the gateway (built with -tags benchpprof) into $PROFILE_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}; rounds=${2:-3}; conns=${3:-32}; per=${4:-1}
. bench/fake-provider.sh
(cd bench/bullmq && [ -d node_modules ] || npm ci --no-audit --no-fund --silent)
sides=${SIDES:-chatgate bullmq}
if [ -n "${PPROF:-}" ]; then go build -tags benchpprof -o "$bin/chatgate" ./cmd/chatgate; else go build -o "$bin/chatgate" ./cmd/chatgate; fi
build_base
go build -o "$bin/sendload" ./bench/sendload
node_port=$(go run ./scripts/freeport)
agents=$(seq -s, -f 'a%g' 1 10)
# Sending numbers (NUMBERS, default 4), each at Meta's highest rate, 1,000 messages a second: with
# two, the numbers' own limit (2,000/s) would be what the benchmark measures.
numbers=$(seq -s, 100200300 $((100200300 + ${NUMBERS:-4} - 1)))
bench_config 10 "$(for id in ${numbers//,/ }; do echo "    - { phone_number_id: \"$id\", queue: sales, access_token: bench-token, rate_per_second: 1000 }"; done)"
start_fake

# CPU seconds a process has used (user + system), and Redis's own.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
redis_cpu() { redis-cli -p "$redis_port" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.2f", s}'; }
report_cpu() { # pid, redis cpu at the start of the round
  echo "  cpu seconds: server $(cpu_of "$1"), redis $(awk -v a="$(redis_cpu)" -v b="$2" 'BEGIN {printf "%.2f", a - b}'), load average $(cut -d' ' -f1 /proc/loadavg)"
  # Commands Redis ran in the round (those inside scripts included), per send, the most frequent first.
  redis-cli -p "$redis_port" info commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$n" '
    /^cmdstat_/ {sub("cmdstat_", "", $1); c[$1] = $3; t += $3}
    END {printf "  redis commands per send: %.1f (", t / n; k = 0
      while (k < 8) {m = ""; for (x in c) if (m == "" || c[x] > c[m]) m = x; if (m == "") break
        printf "%s%s %.2f", (k ? ", " : ""), m, c[m] / n; delete c[m]; k++}
      print ")"}'
}
start_monitor() { # side, round
  [ -n "${MONITOR:-}" ] || return 0
  mkdir -p "$MONITOR"; redis-cli -p "$redis_port" monitor >"$MONITOR/$1-$2.log" & mon=$!
}
stop_monitor() { [ -n "${MONITOR:-}" ] && stop_pid "$mon" || true; }

run_chatgate() { # customer offset, round[, binary, side]
  local exe=${3:-$bin/chatgate} side=${4:-chatgate}
  redis-cli -p "$redis_port" flushall >/dev/null
  local pprof_port=""
  [ -n "${PPROF:-}" ] && pprof_port=$(go run ./scripts/freeport)
  CHATGATE_PPROF=${pprof_port:+127.0.0.1:$pprof_port} "$exe" serve --config "$bin/bench.yaml" 2>>"$bin/gateway.log" & local pid=$!; pids+=($pid)
  wait_http "http://127.0.0.1:$gw_port/readyz"
  if [ -n "$pprof_port" ]; then
    mkdir -p "${PROFILE_DIR:-/tmp}"
    curl -s -o "${PROFILE_DIR:-/tmp}/chatgate-$2.pprof" "http://127.0.0.1:$pprof_port/debug/pprof/profile?seconds=$PPROF" & prof=$!
  fi
  local redis0; redis0=$(redis_cpu)
  redis-cli -p "$redis_port" config resetstat >/dev/null; start_monitor "$side" "$2"
  "$bin/sendload" -url "http://127.0.0.1:$gw_port/v1/conversations" -fake "http://127.0.0.1:$fake_port" \
    -n "$n" -c "$conns" -per-customer "$per" -secret bench-secret-of-enough-length -agents "$agents" -numbers "$numbers" -offset "$1"
  stop_monitor; report_cpu "$pid" "$redis0"
  [ -n "$pprof_port" ] && wait "$prof"
  echo "  messages sent in Redis: $(redis-cli -p "$redis_port" eval "local n=0 for _,k in ipairs(redis.call('KEYS','cg:{bench}:msg:*')) do if redis.call('HGET',k,'status')=='sent' then n=n+1 end end return n" 0)"
  stop_pid "$pid"
}
run_bullmq() {
  redis-cli -p "$redis_port" flushall >/dev/null
  node bench/bullmq/server.mjs --listen "127.0.0.1:$node_port" --redis "127.0.0.1:$redis_port" \
    --api "http://127.0.0.1:$fake_port" --token bench-token --concurrency 20 >>"$bin/bullmq.log" 2>&1 & local pid=$!; pids+=($pid)
  wait_http "http://127.0.0.1:$node_port/send"
  local redis0; redis0=$(redis_cpu)
  redis-cli -p "$redis_port" config resetstat >/dev/null; start_monitor bullmq "$2"
  "$bin/sendload" -url "http://127.0.0.1:$node_port/send" -fake "http://127.0.0.1:$fake_port" \
    -n "$n" -c "$conns" -per-customer "$per" -numbers "$numbers" -offset "$1"
  stop_monitor; report_cpu "$pid" "$redis0"
  echo "  completed jobs: $(redis-cli -p "$redis_port" zcard bull:templates:completed)"
  stop_pid "$pid"
}
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  for side in $sides; do
    case $side in
      chatgate) echo " chatgate:"; run_chatgate $((round * 3 * n)) "$round" ;;
      base) echo " chatgate at $BASE:"; run_chatgate $((round * 3 * n + 2 * n)) "$round" "$bin/chatgate-base" base ;;
      bullmq) echo " bullmq:"; run_bullmq $((round * 3 * n + n)) "$round" ;;
    esac
  done
done
