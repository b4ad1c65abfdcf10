#!/usr/bin/env bash
# Durable hold throughput and p99: group commit vs one flush per event vs no flush.
# Each mode: RUNS fresh servers (default 3), wrk with 50 connections for SECS seconds
# (default 10) making 1-unit holds on one hot SKU; prints the medians.
# Usage: loadtest/bench/durability.sh      (needs wrk: apt-get install wrk)
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-3}; secs=${SECS:-10}
cargo build --release -q --manifest-path "$root/Cargo.toml"
printf "%-34s %10s %10s\n" "mode" "holds/s" "p99 ms"
for mode in "group commit, fsync|--durability fsync" \
            "group commit, flush|--durability flush" \
            "one fsync per event|--durability fsync --journal-batch-events-max 1" \
            "no flush|--durability none"; do
  label=${mode%%|*}; read -r -a args <<<"${mode#*|}"
  results=()
  for _ in $(seq "$runs"); do
    start_holdfast "${args[@]}"
    results+=("$(wrk_holds "$secs" 50)")
    stop_holdfast
  done
  read -r rps p99 < <(printf "%s\n" "${results[@]}" | medians)
  printf "%-34s %10s %10s\n" "$label" "$rps" "$p99"
done
