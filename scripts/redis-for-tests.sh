# Sourced by test.sh and bench.sh: starts a throwaway redis-server on a free loopback port, exports
# CHATGATE_TEST_REDIS_ADDR, and stops it (by its PID) when the calling script exits.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing redis-server with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2
  else
    echo "test: redis-server is missing; install it (Debian/Ubuntu: apt-get install redis-server)" >&2
    exit 1
  fi
fi

workdir=$(mktemp -d)
redis_pid=""
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT

free_port() {
  go run ./scripts/freeport
}

for attempt in 1 2 3 4 5; do
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" \
    --databases 1024 --daemonize no --logfile "$workdir/redis.log" &
  redis_pid=$!
  for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    if ! kill -0 "$redis_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
  kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=""
done
if [ -z "$redis_pid" ]; then echo "test: could not start redis-server" >&2; exit 1; fi
export CHATGATE_TEST_REDIS_ADDR="127.0.0.1:$port"
echo "test: redis-server pid $redis_pid on $CHATGATE_TEST_REDIS_ADDR"

