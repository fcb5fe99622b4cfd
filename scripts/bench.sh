#!/usr/bin/env bash
# Runs Go benchmarks against a throwaway redis-server, as the test command does.
# Usage: scripts/bench.sh PACKAGE BENCH_REGEX [COUNT]   e.g. scripts/bench.sh ./presence/ ToggleHTTP 6
# BENCHTIME=1x (or 2s…) is passed to go test -benchtime.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/redis-for-tests.sh
go test -run '^$' -bench "${2:-.}" -benchmem ${BENCHTIME:+-benchtime "$BENCHTIME"} -count "${3:-6}" "${1:-./...}"
