# Sourced by bench/outbound.sh and bench/campaign.sh: the throwaway Redis, a work folder whose
# processes stop on exit, the gateway's configuration (bench_config) and the fake Cloud API on it
# (start_fake).
. scripts/redis-for-tests.sh
bin=$(mktemp -d)
pids=()
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
stop() { for p in "${pids[@]}"; do stop_pid "$p"; done; rm -rf "$bin"; }
trap 'stop; cleanup' EXIT
# BASE=<commit>: chatgate built at that commit too, as $bin/chatgate-base.
build_base() {
  [ -n "${BASE:-}" ] || return 0
  mkdir "$bin/base-src" && git archive "$BASE" | tar -x -C "$bin/base-src"
  (cd "$bin/base-src" && go build -o "$bin/chatgate-base" ./cmd/chatgate)
}
redis_port=${CHATGATE_TEST_REDIS_ADDR##*:}
fake_port=$(go run ./scripts/freeport); gw_port=$(go run ./scripts/freeport)

# bench_config AGENTS NUMBER_LINES: agents a1…aN in sales (WhatsApp capacity 1000), 20 workers, the
# numbers given as YAML lines, one template; development mode (production refuses the placeholders).
bench_config() {
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
$(for a in $(seq 1 "$1"); do echo "  - { id: a$a, queues: [sales], channels: { whatsapp: { capacity: 1000 } } }"; done)
whatsapp:
  app_secret: bench-app-secret
  verify_token: bench-verify
  api_base_url: "http://127.0.0.1:$fake_port"
  api_version: v21.0
  numbers:
$2
  templates:
    - { name: order_update, language: pt_BR, body_params: 2, text: "Olá {{1}}, seu pedido {{2}} foi atualizado." }
YAML
}

wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
start_fake() {
  "$bin/chatgate" fake-whatsapp --listen "127.0.0.1:$fake_port" --config "$bin/bench.yaml" 2>"$bin/fake.log" & pids+=($!)
  wait_http "http://127.0.0.1:$fake_port/_fake/rules" || { cat "$bin/fake.log" >&2; exit 1; }
}
