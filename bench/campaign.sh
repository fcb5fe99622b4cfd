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
. bench/fake-provider.sh
go build -o "$bin/chatgate" ./cmd/chatgate
go build -o "$bin/campaign" ./bench/campaign
build_base
agents=$(seq -s, -f 'a%g' 1 20)  # 20 × capacity 1000: room for the campaign's conversations
bench_config 20 "    - { phone_number_id: \"100200300\", queue: sales, access_token: bench-token, rate_per_second: $rate }
    - { phone_number_id: \"100200301\", queue: sales, access_token: bench-token, rate_per_second: $rate }
    - { phone_number_id: \"100200302\", queue: sales, access_token: bench-token, rate_per_second: 1000 }"
start_fake

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
