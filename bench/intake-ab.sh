#!/usr/bin/env bash
# Webhook intake, two commits in one run: each commit's binary on its own throwaway Redis, the bare
# fiber handler measured just before each, rounds alternating, loopback only. The noise of a shared
# machine moves both sides alike, so the two ratios of one run compare where two runs would not.
# Usage: bench/intake-ab.sh REV_A REV_B [rounds] [duration]     e.g. bench/intake-ab.sh HEAD~3 HEAD 8 5s
# FILL_B=N stores N messages in B's Redis before the rounds (compact inbound message HASHes spread over
# 2,000 conversations' lists, as the intake script writes them), to compare an empty Redis with a full
# one: bench/intake-ab.sh HEAD HEAD 5 5s with FILL_B=2000000.
set -euo pipefail
cd "$(dirname "$0")/.."
rev_a=${1:?REV_A}; rev_b=${2:?REV_B}; rounds=${3:-8}; dur=${4:-5s}
command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for w in a b; do [ -d "$work/src-$w" ] && git worktree remove --force "$work/src-$w" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap stop EXIT
for w in a b; do
  rev=$rev_a; [ $w = b ] && rev=$rev_b
  git worktree add -q --detach "$work/src-$w" "$rev"
  (cd "$work/src-$w" && go build -o "$work/chatgate-$w" ./cmd/chatgate)
done
go build -o "$work/bare" ./bench/bare
go build -o "$work/loadgen" ./bench/loadgen
port() { go run ./scripts/freeport; }
declare -A gw rport
for w in a b; do
  rp=$(port)
  redis-server --port "$rp" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --logfile /dev/null >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$rp" ping >/dev/null 2>&1 && break; sleep 0.05; done
  if [ $w = b ] && [ "${FILL_B:-0}" -gt 0 ]; then
    awk -v n="$FILL_B" 'BEGIN { for (i = 0; i < n; i++) {
      id = sprintf("F%025d", i); conv = sprintf("FC%024d", i % 2000)
      printf "HSET cg:{default}:msg:%s conversation_id %s direction in channel whatsapp provider_message_id wamid.HBgMZmlsbGVk%044d kind text at 1796305490000 text Ola_gostaria_de_saber_o_status_do_meu_pedido x {}\r\n", id, conv, i
      printf "RPUSH cg:{default}:convmsgs:%s %s\r\n", conv, id } }' | redis-cli -p "$rp" --pipe >/dev/null
    echo "B's Redis holds $(redis-cli -p "$rp" dbsize) keys before the rounds" >&2
  fi
  rport[$w]=$rp
  gw[$w]=$(port)
  CHATGATE_LISTEN=127.0.0.1:${gw[$w]} CHATGATE_REDIS_URL=redis://127.0.0.1:$rp/0 CHATGATE_CONFIG="$work/src-$w/configs/chatgate.yaml" \
    "$work/chatgate-$w" serve 2>"$work/gateway-$w.log" &
  pids+=($!)
done
bare=$(port)
"$work/bare" --listen "127.0.0.1:$bare" & pids+=($!)
for w in a b; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:${gw[$w]}/readyz" >/dev/null && break; sleep 0.1; done
done
rps() { "$work/loadgen" -url "http://127.0.0.1:$1/webhooks/whatsapp" -d "$2" -c 32 | grep -o 'rps=[0-9]*' | cut -d= -f2; }
for p in "${gw[a]}" "${gw[b]}" "$bare"; do rps "$p" 1s >/dev/null; done   # warm-up
echo "A=$rev_a B=$rev_b, $rounds rounds of $dur, 32 connections"
for r in $(seq 1 "$rounds"); do
  x=$(rps "$bare" "$dur"); a=$(rps "${gw[a]}" "$dur"); y=$(rps "$bare" "$dur"); b=$(rps "${gw[b]}" "$dur")
  printf 'round %d  bare %6d  A %6d  ratio A %.3f   bare %6d  B %6d  ratio B %.3f\n' "$r" "$x" "$a" \
    "$(echo "$a/$x" | bc -l)" "$y" "$b" "$(echo "$b/$y" | bc -l)"
done
for w in a b; do echo "$w: $(redis-cli -p "${rport[$w]}" dbsize) keys after the rounds, used_memory $(redis-cli -p "${rport[$w]}" info memory | grep -o 'used_memory_human:[^[:space:]]*')"; done
