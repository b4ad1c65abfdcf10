#!/usr/bin/env bash
# Durable hold throughput and p99: group commit vs one flush per event vs no flush.
# Each mode: RUNS fresh servers (default 3), wrk with 50 connections for SECS seconds
# (default 10) making 1-unit holds on one hot SKU, one round of every mode after another;
# prints each run to stderr and the medians.
# Usage: loadtest/bench/durability.sh      (needs wrk: apt-get install wrk)
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-3}; secs=${SECS:-10}
cargo build --release -q --manifest-path "$root/Cargo.toml"
modes=("group commit, fsync|--durability fsync"
       "group commit, flush|--durability flush"
       "one fsync per event|--durability fsync --journal-batch-events-max 1"
       "no flush|--durability none")
# Rounds outside, modes inside: a slow phase of the machine (or a stall of its disk) then
# hits every mode alike instead of one mode's every run.
declare -A results
for round in $(seq "$runs"); do
  for mode in "${modes[@]}"; do
    label=${mode%%|*}; read -r -a args <<<"${mode#*|}"
    start_holdfast "${args[@]}"
    out=$(wrk_holds "$secs" 50)
    stop_holdfast
    results[$label]+="$out"$'\n'
    echo "  $label: $out" >&2
  done
  echo "round $round of $runs done" >&2
done
printf "%-34s %10s %14s %16s\n" "mode" "holds/s" "wrk's p99 ms" "recorded p99 ms"
for mode in "${modes[@]}"; do
  label=${mode%%|*}
  read -r rps p99 recorded < <(printf "%s" "${results[$label]}" | awk 'NF' | medians)
  printf "%-34s %10s %14s %16s\n" "$label" "$rps" "$p99" "$recorded"
done
