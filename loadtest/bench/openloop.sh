#!/usr/bin/env bash
# Hold latency in an open loop: shoppers arrive at a fixed rate whatever the server does, and
# each latency counts from the arrival (no coordinated omission, unlike wrk's closed loop).
# For each durability mode in MODES (default "fsync none") and rate in RATES (default
# "5000 10000 20000"): RUNS fresh servers (default 3), SECS seconds (default 8) of 1-unit
# holds on one SKU over 64 connections, one round of every mode and rate after another;
# prints each run to stderr and the medians: holds/s answered, the harness's p50/p99 and the
# server's own p99 (a bucket bound of its histogram). `none` shows what the disk adds.
# Usage: loadtest/bench/openloop.sh
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-3}; secs=${SECS:-8}; rates=(${RATES:-5000 10000 20000}); modes=(${MODES:-fsync none})
cargo build --release -q --manifest-path "$root/Cargo.toml"
loadtest="$root/target/release/loadtest"
declare -A results
for round in $(seq "$runs"); do
  for mode in "${modes[@]}"; do for rate in "${rates[@]}"; do
    start_holdfast --durability "$mode"
    # The TTL outlasts the run, so no expiry work competes with the holds; the audit then
    # waits for it before checking that every abandoned hold expired.
    out=$("$loadtest" --target "$hf_url" --quiet --arrival-rate-per-s "$rate" \
      --duration-s "$secs" --concurrency 64 --skus 1 --stock 1000000000 \
      --customers 1000000000 --cart-lines-max 1 --read-ratio 0 --pay-ratio 0 \
      --cancel-ratio 0 --retries-max 0 --hold-ttl-s $((secs + 2)))
    stop_holdfast
    if grep -q '^FAIL' <<<"$out"; then echo "$out" >&2; echo "audit failed" >&2; exit 1; fi
    # "rps p50 p99 server_p99" from the hold row and the server's own line.
    line=$(awk '$1 == "hold" { r = $3; p50 = $4; p99 = $6 }
                /server.s own time/ { s = $(NF - 5) }
                END { print r, p50, p99, s }' <<<"$out")
    results[$mode $rate]+="$line"$'\n'
    echo "  $mode $rate/s: $line" >&2
  done; done
  echo "round $round of $runs done" >&2
done
printf "%-8s %10s %10s %10s %10s %16s\n" "mode" "offered/s" "holds/s" "p50 ms" "p99 ms" "server p99 ms <="
for mode in "${modes[@]}"; do for rate in "${rates[@]}"; do
  read -r rps p50 p99 server < <(printf "%s" "${results[$mode $rate]}" | awk 'NF' | medians)
  printf "%-8s %10s %10s %10s %10s %16s\n" "$mode" "$rate" "$rps" "$p50" "$p99" "$server"
done; done
