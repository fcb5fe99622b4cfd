#!/usr/bin/env bash
# The intake in proportion: in one run, rounds alternating, the same load generator against (1) the bare
# fiber handler, (2) the same handler storing each body in Redis before answering (one SET: the least
# an intake that records a message before its 2xx must do), (3) the same with the SETs of concurrent
# requests pipelined together as the gateway's intake batches its script calls, and (4) the gateway's
# /webhooks/whatsapp, each with its own throwaway Redis on loopback. Prints each round's requests per
# second and the ratios to bare, then their medians: (2) and (3) bound what an intake that records each
# message in Redis before its 2xx can reach on this machine.
# Usage: bench/floor.sh [rounds] [duration]      e.g. bench/floor.sh 6 4s
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}; dur=${2:-4s}
command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap stop EXIT
go build -o "$work/chatgate" ./cmd/chatgate
go build -o "$work/bare" ./bench/bare
go build -o "$work/loadgen" ./bench/loadgen
port() { go run ./scripts/freeport; }
# redis starts a throwaway redis-server and sets rp to its port (not in a $(…) subshell: its PID must
# reach pids, for stop).
redis() {
  rp=$(port)
  redis-server --port "$rp" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --logfile /dev/null >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$rp" ping >/dev/null 2>&1 && break; sleep 0.05; done
}
bare=$(port); stored=$(port); batched=$(port); gw=$(port)
redis; r1=$rp; redis; r2=$rp; redis; r3=$rp
"$work/bare" --listen "127.0.0.1:$bare" & pids+=($!)
"$work/bare" --listen "127.0.0.1:$stored" --redis "redis://127.0.0.1:$r1/0" & pids+=($!)
"$work/bare" --listen "127.0.0.1:$batched" --redis "redis://127.0.0.1:$r3/0" --batch & pids+=($!)
CHATGATE_LISTEN=127.0.0.1:$gw CHATGATE_REDIS_URL=redis://127.0.0.1:$r2/0 CHATGATE_CONFIG=configs/chatgate.yaml \
  "$work/chatgate" serve 2>"$work/gateway.log" & pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$gw/readyz" >/dev/null && break; sleep 0.1; done
rps() { "$work/loadgen" -url "http://127.0.0.1:$1/webhooks/whatsapp" -d "$2" -c 32 | grep -o 'rps=[0-9]*' | cut -d= -f2; }
for p in "$bare" "$stored" "$batched" "$gw"; do rps "$p" 1s >/dev/null; done   # warm-up
echo "commit $(git rev-parse --short HEAD), $rounds rounds of $dur, 32 connections"
: >"$work/ratios"
for r in $(seq 1 "$rounds"); do
  x=$(rps "$bare" "$dur"); s=$(rps "$stored" "$dur"); b=$(rps "$batched" "$dur"); g=$(rps "$gw" "$dur")
  rs=$(echo "$s/$x" | bc -l); rb=$(echo "$b/$x" | bc -l); rg=$(echo "$g/$x" | bc -l)
  echo "$rs $rb $rg" >>"$work/ratios"
  printf 'round %d  bare %6d  bare+SET %6d (%.3f)  bare+batched SET %6d (%.3f)  gateway %6d (%.3f)   load %s\n' "$r" "$x" "$s" "$rs" "$b" "$rb" "$g" "$rg" "$(cut -d' ' -f1-3 /proc/loadavg)"
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf 'medians: bare+SET / bare %.3f   bare+batched SET / bare %.3f   gateway / bare %.3f\n' "$(cut -d' ' -f1 "$work/ratios" | median)" \
  "$(cut -d' ' -f2 "$work/ratios" | median)" "$(cut -d' ' -f3 "$work/ratios" | median)"
