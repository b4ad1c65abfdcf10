#!/usr/bin/env bash
# Interleaved A/B of two holdfast variants on wrk's hot-SKU load (50 connections, new
# 1-unit holds): two builds (A_BIN, B_BIN; default target/release/holdfast) and/or two
# sets of server flags (A_ARGS, B_ARGS). RUNS pairs (default 8) of SECS-second runs
# (default 10), a fresh server per run, the order alternating so drift favours neither.
# Prints each pair (with each run's count of journal flushes over 50 ms), then the medians
# of the per-pair ratios B/A: holds/s, wrk's p99, the recorded p99 (see build-wrk.sh) and
# server CPU per hold: over the pairs in which neither run had a journal flush over 50 ms
# (a disk stall: such pairs measure the disk, and on this kind of VM they come in phases of
# minutes), and over all pairs.
# A_LISTENERS / B_LISTENERS="3:2" attach 3 availability-stream subscribers and 2 webhook
# endpoints (a local receiver) to that variant's server before its run (the broadcast's cost).
# Usage: A_BIN=/tmp/holdfast-main B_ARGS="--durability none" loadtest/bench/ab.sh
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-8}; secs=${SECS:-10}
default_bin=$bin

# run VARIANT -> "holds/s p99_ms recorded_p99_ms cpu_us_per_hold slow_flushes"
run() {
  local bin_var="${1}_BIN" args_var="${1}_ARGS" listeners_var="${1}_LISTENERS" ticks placed measured args
  bin=${!bin_var:-$default_bin}
  read -r -a args <<<"${!args_var:---durability fsync}"
  if [ -n "${!listeners_var:-}" ]; then
    start_holdfast "${args[@]}" --webhook-allow-cidr 127.0.0.1/32
    attach_listeners "${!listeners_var%%:*}" "${!listeners_var##*:}"
  else
    start_holdfast "${args[@]}"
  fi
  ticks=$(server_ticks); placed=$(holds_placed)
  measured=$(wrk_holds "$secs" 50)
  ticks=$(( $(server_ticks) - ticks )); placed=$(( $(holds_placed) - placed ))
  echo "$measured $(awk -v t="$ticks" -v n="$placed" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }') $(slow_flushes)"
  stop_holdfast
}

clean=""; all=""; stalled=0
printf "%-4s %-38s %-38s\n" "pair" "A: holds/s p99 rec.p99 µs/hold stalls" "B: holds/s p99 rec.p99 µs/hold stalls"
for pair in $(seq "$runs"); do
  if (( pair % 2 )); then a=$(run A); b=$(run B); else b=$(run B); a=$(run A); fi
  read -r a_rps a_p99 a_rec a_cpu a_slow <<<"$a"; read -r b_rps b_p99 b_rec b_cpu b_slow <<<"$b"
  ratio="$(awk -v ar="$a_rps" -v br="$b_rps" -v ap="$a_p99" -v bp="$b_p99" -v ac="$a_cpu" -v bc="$b_cpu" \
    -v aq="$a_rec" -v bq="$b_rec" 'BEGIN { printf "%.3f %.3f %s %.3f", br / ar, bp / ap,
      (aq == "-" || bq == "-") ? "-" : sprintf("%.3f", bq / aq), bc / ac }')"$'\n'
  all+=$ratio; note=""
  if (( a_slow + b_slow > 0 )); then
    note="disk stall"; stalled=$((stalled + 1))
  else
    clean+=$ratio
  fi
  printf "%-4s %-38s %-38s %s\n" "$pair" "$a_rps $a_p99 $a_rec $a_cpu $a_slow" "$b_rps $b_p99 $b_rec $b_cpu $b_slow" "$note"
done
# medians_line LABEL RATIOS
medians_line() {
  read -r rps p99 recorded cpu < <(printf "%s" "$2" | awk 'NF' | medians)
  echo "B/A, $1: holds/s ${rps}x, p99 ${p99}x, recorded p99 ${recorded}x, CPU per hold ${cpu}x"
}
if [ -n "$clean" ]; then
  medians_line "median of the $((runs - stalled)) pairs without a disk stall" "$clean"
else
  echo "every pair had a disk stall"
fi
# The recorded p99 barely moves with a stall (50 slow requests in 300,000); wrk's p99 and
# holds/s do. In a phase of the disk where every pair has one, this line still compares.
medians_line "median of all $runs pairs" "$all"
