#!/usr/bin/env bash
# Runs Go benchmarks against a throwaway redis-server, as the test command does.
# Usage: scripts/bench.sh PACKAGE BENCH_REGEX [COUNT]   e.g. scripts/bench.sh ./presence/ ToggleHTTP 6
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/redis-for-tests.sh
go test -run '^$' -bench "${2:-.}" -benchmem -count "${3:-6}" "${1:-./...}"
