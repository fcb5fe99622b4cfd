#!/usr/bin/env bash
# The long fuzz run: every native fuzz target for a number of executions (default 1,000,000), one
# target at a time, printing each one's executions and duration. Usage: scripts/fuzz-long.sh [COUNT [TARGET]]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000000}
only=${2:-}   # a target name to run alone
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    if [ -n "$only" ] && [ "$target" != "$only" ]; then continue; fi
    start=$(date +%s)
    if ! go test -timeout 60m -run '^$' -fuzz "^${target}\$" -fuzztime "${count}x" "$pkg" >"$log" 2>&1; then
      cat "$log" >&2
      echo "fuzz: $pkg $target FAILED" >&2
      exit 1
    fi
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    echo "fuzz: $pkg $target: ${execs:-?} executions in $(( $(date +%s) - start )) s, no failure"
  done
done
