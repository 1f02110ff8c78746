#!/usr/bin/env bash
# `make test-stress`: the test suite RUNS times in a row (default 3) while HOGS CPU-bound
# processes (default 2) run beside it, as on a busy CI machine. Stops at the first failure.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
hogs=${HOGS:-2}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 "$hogs"); do
  python3 -c 'while True: pass' &
  pids+=("$!")
done
for run in $(seq 1 "$runs"); do
  started=$(date +%s)
  echo "== stress run $run of $runs, $hogs CPU hogs beside it, load $(cut -d' ' -f1-3 /proc/loadavg)"
  make test PYTEST_ARGS="${PYTEST_ARGS:-}" || { echo "== stress run $run FAILED"; exit 1; }
  echo "== stress run $run passed in $(( $(date +%s) - started )) s"
done
echo "== $runs of $runs runs passed with $hogs CPU hogs"
