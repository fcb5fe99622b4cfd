#!/usr/bin/env bash
# Every performance figure of BENCHMARKS.md in one go, one after the other (each on its own throwaway
# Redis and loopback ports, each bounded and stopping by itself), with the commit and the machine's
# load printed before each. About 25 minutes on 2 cores; run it on a quiet machine, nothing else
# running, and read each benchmark's own section in BENCHMARKS.md for what it measures.
# Usage: bench/all.sh [streams]     e.g. bench/all.sh 50000   (the event-stream count; default 50000)
# ONLY="intake offered" runs those parts alone (names: intake offered streams outbound campaign
# integrations).
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${1:-50000}
parts=${ONLY:-"intake offered streams outbound campaign integrations"}
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!BENCHMARKS.md' || echo "+changes")
head() { printf '\n== %s — commit %s, %s, load average %s\n' "$1" "$commit" "$(date -u +%H:%M:%S)" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
for part in $parts; do
  case $part in
  intake) # intake against a bare fiber handler, and the same with 2,000,000 messages already stored
    head "intake: A empty Redis, B 2,000,000 stored messages, against bare fiber (ratios; targets A ≥ 0.5, B/A ≥ 0.9)"
    FILL_B=2000000 bench/intake-ab.sh HEAD HEAD 6 5s
    head "intake in proportion: bare, bare storing each body in Redis (alone, pipelined), the gateway"
    bench/floor.sh 6 4s ;;
  offered) # webhook → card.offered on an agent's stream at 2,000 messages/s (target p99 ≤ 5 ms)
    head "webhook → card.offered at 2,000/s, 100 agents (target p99 ≤ 5 ms)"
    bench/offered.sh 2000 5s 100 3 ;;
  streams) # open agent event streams: resident memory, and one event per agent delivered to all
    head "$streams open event streams (targets ≤ 1 GB resident, p99 delivery ≤ 1 s)"
    bench/streams.sh "$streams" ;;
  outbound) # ordered outbound against BullMQ on the same Redis and fake provider (target ≥ 2×)
    head "outbound, 1 message per conversation, against BullMQ (target ≥ 2×)"
    bench/outbound.sh 3000 3 32 1
    head "outbound, 5 messages per conversation in order, against BullMQ"
    bench/outbound.sh 3000 3 32 5 ;;
  campaign) # replies' delay from 202 to the provider during a 10,000-template campaign
    head "replies during a campaign of 10,000 templates"
    bench/campaign.sh 10000 2 32 20ms ;;
  integrations) # integration events to a local receiver, in order per conversation (target ≥ 5,000/s)
    head "integration events delivered to a local receiver (target ≥ 5,000/s)"
    BENCHTIME=1x scripts/bench.sh ./integrations/ DeliveryToLocalReceiver 3 ;;
  *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
