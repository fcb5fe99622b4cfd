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

go vet "${pkgs[@]}"
go test -race -count=1 -timeout 15m "${pkgs[@]}"

# The end-to-end suite once more on a local three-master Redis Cluster (the scenarios that restart a
# single redis-server skip there). The long form: go test ./test/e2e -e2e.long [-e2e.cluster].
if [ $# -eq 0 ]; then
  echo "test: end-to-end suite on a Redis Cluster"
  go test -count=1 -timeout 10m ./test/e2e -e2e.cluster
fi

# A short pass of every native fuzz target (the long run is documented in README.md). The budget is
# a count, not a duration: a time budget can end while the engine minimizes a new input, and Go then
# reports "context deadline exceeded" as a failure although nothing failed.
if [ $# -eq 0 ]; then
  for pkg in $(go list ./...); do
    dir=$(go list -f '{{.Dir}}' "$pkg")
    for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
      echo "test: fuzz $pkg $target (${FUZZTIME:-2000x})"
      if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-2000x}" "$pkg" >"$workdir/fuzz.log" 2>&1; then
        cat "$workdir/fuzz.log" >&2
        exit 1
      fi
    done
  done
fi
