#!/usr/bin/env bash
# The test command: starts a throwaway redis-server on a free loopback port, runs go vet and the whole
# test suite with the race detector against it, a short fuzz pass, and stops that Redis by its PID.
# Usage: scripts/test.sh [packages…]   (default ./...)
set -euo pipefail
cd "$(dirname "$0")/.."

. "$(dirname "$0")/redis-for-tests.sh"
. "$(dirname "$0")/chromium-for-tests.sh"

pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

# go vet has just looked at every package with its tests: the subset go test would run again is off.
go vet "${pkgs[@]}"
go test -race -count=1 -vet=off -timeout 15m "${pkgs[@]}"

# A short pass of every native fuzz target (the long run is documented in README.md). The budget is
# a count, not a duration: a time budget can end while the engine minimizes a new input, and Go then
# reports "context deadline exceeded" as a failure although nothing failed. It runs beside the
# cluster pass below, which spends much of its time waiting for crashed workers' leases to run out.
fuzz_all() {
  for pkg in $(go list ./...); do
    dir=$(go list -f '{{.Dir}}' "$pkg")
    for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
      echo "test: fuzz $pkg $target (${FUZZTIME:-2000x})"
      if ! go test -vet=off -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-2000x}" "$pkg" >"$workdir/fuzz-$target.log" 2>&1; then
        cat "$workdir/fuzz-$target.log"
        return 1
      fi
    done
  done
}

# The end-to-end suite once more on a local three-master Redis Cluster (the scenarios that restart a
# single redis-server skip there). The long form: go test ./test/e2e -e2e.long [-e2e.cluster].
if [ $# -eq 0 ]; then
  fuzz_all >"$workdir/fuzz-all.log" 2>&1 &
  fuzz_pid=$!
  echo "test: end-to-end suite on a Redis Cluster"
  cluster_status=0
  go test -count=1 -vet=off -timeout 10m ./test/e2e -e2e.cluster || cluster_status=$?
  fuzz_status=0
  wait "$fuzz_pid" || fuzz_status=$?
  cat "$workdir/fuzz-all.log"
  [ "$fuzz_status" -eq 0 ] || echo "test: a fuzz target failed (above)" >&2
  [ "$cluster_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ] || exit 1
fi
