#!/usr/bin/env bash
# Webhook intake, two commits in one run: each commit's binary on its own throwaway Redis, the bare
# fiber handler measured just before each, rounds alternating, loopback only. The noise of a shared
# machine moves both sides alike, so the two ratios of one run compare where two runs would not.
# Usage: bench/intake-ab.sh REV_A REV_B [rounds] [duration]     e.g. bench/intake-ab.sh HEAD~3 HEAD 8 5s
# FILL_B=N stores N messages in B's Redis before the rounds with what real traffic leaves beside them
# (closed conversations are kept 7 days: 2,000,000 is a week at about 290,000 a day): per 8 messages (compact inbound HASHes, as the intake script writes them) a contact, its phone's index
# entry and identifier set, a closed conversation with its message list, its card and its retention
# entry (2,000,000 messages: about 3.5M keys); the load generator's customers are none of them. To
# compare an empty Redis with a full one: FILL_B=2000000 bench/intake-ab.sh HEAD HEAD 6 5s. FILL_A=N
# does the same for A's (two commits on a full Redis each).
# Each gateway round also prints the intake script's µs per call (INFO commandstats, EVALSHA).
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
  fill=${FILL_A:-0}; [ $w = b ] && fill=${FILL_B:-0}
  if [ "$fill" -gt 0 ]; then
    # Opened over the last 6 days (closed ones are kept 7) and scheduled for retention as its sweep
    # leaves them (score: closed + 7 days), so that the gateway's sweeper has nothing to do in the rounds.
    awk -v n="$fill" -v now="$(date +%s%3N)" 'BEGIN { P = "cg:{default}:"; step = int(518400000 / (n / 8)); for (j = 0; j < n / 8; j++) {
      t = now - 518400000 + j * step; k = sprintf("01FK%022d", j); c = sprintf("01FC%022d", j); d = sprintf("01FD%022d", j)
      ph = sprintf("5521%09d", j)
      printf "HSET %scontact:%s id %s channel whatsapp created_at %d phone %s name Cliente_%d convs 1\r\n", P, k, k, t, ph, j
      printf "SET %sident:whatsapp:phone:%s %s\r\nSADD %scontactids:%s phone:%s\r\n", P, ph, k, P, k, ph
      printf "HSET %sconv:%s id %s channel whatsapp entry_point 100200300 queue sales state closed agent agent-%d card %s opened_at %d last_customer_message_at %d contact_id %s contact_phone +%s contact_name Cliente_%d entry_point_display Loja window_expires_at %d first_offered_at %d offers 1 accepted_at %d closed_at %d closed_by agent\r\n", P, c, c, j % 100, d, t, t + 600000, k, ph, j, t + 86400000, t, t + 5000, t + 900000
      printf "HSET %scard:%s id %s conversation_id %s queue sales channel whatsapp state closed agent agent-%d created_at %d preview Ola_gostaria_de_saber_o_status offered_at %d expires_at \"\" accepted_at %d closed_at %d closed_by agent\r\n", P, d, d, c, j % 100, t, t, t + 5000, t + 900000
      printf "ZADD %sretention %d %s\r\n", P, t + 900000 + 604800000, c
      for (i = 0; i < 8; i++) {
        id = sprintf("01FM%022d", j * 8 + i)
        printf "HSET %smsg:%s conversation_id %s direction in channel whatsapp provider_message_id wamid.HBgMZmlsbGVk%044d kind text at %d text Ola_gostaria_de_saber_o_status_do_meu_pedido x {}\r\n", P, id, c, j * 8 + i, t + i * 60000
        printf "RPUSH %sconvmsgs:%s %s\r\n", P, c, id } } }' | redis-cli -p "$rp" --pipe >/dev/null
    echo "$w's Redis holds $(redis-cli -p "$rp" dbsize) keys, used_memory $(redis-cli -p "$rp" info memory | grep -o 'used_memory_human:[^[:space:]]*' | cut -d: -f2) before the rounds" >&2
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
# the intake script's µs per call over the last round (nearly every EVALSHA of these runs is it)
usec() { redis-cli -p "$1" info commandstats | grep -o 'cmdstat_evalsha:.*usec_per_call=[0-9.]*' | grep -o '[0-9.]*$'; }
for p in "${gw[a]}" "${gw[b]}" "$bare"; do rps "$p" 1s >/dev/null; done   # warm-up
echo "A=$rev_a B=$rev_b, $rounds rounds of $dur, 32 connections"
for r in $(seq 1 "$rounds"); do
  for w in a b; do redis-cli -p "${rport[$w]}" config resetstat >/dev/null; done
  x=$(rps "$bare" "$dur"); a=$(rps "${gw[a]}" "$dur"); y=$(rps "$bare" "$dur"); b=$(rps "${gw[b]}" "$dur")
  printf 'round %d  bare %6d  A %6d  ratio A %.3f   bare %6d  B %6d  ratio B %.3f   script µs/call A %s B %s   load %s\n' "$r" "$x" "$a" \
    "$(echo "$a/$x" | bc -l)" "$y" "$b" "$(echo "$b/$y" | bc -l)" "$(usec "${rport[a]}")" "$(usec "${rport[b]}")" "$(cut -d' ' -f1-3 /proc/loadavg)"
done
for w in a b; do echo "$w: $(redis-cli -p "${rport[$w]}" dbsize) keys after the rounds, used_memory $(redis-cli -p "${rport[$w]}" info memory | grep -o 'used_memory_human:[^[:space:]]*')"; done
