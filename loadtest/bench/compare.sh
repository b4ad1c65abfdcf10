#!/usr/bin/env bash
# holdfast vs the classic flash-sale stacks, measured side by side on this machine in one
# run: Redis 7 + Lua atomic reserve (redis-benchmark, 50 clients, one hot key), PostgreSQL
# on one hot row (pgbench, 50 clients), and holdfast (wrk, 50 connections, new 1-unit
# holds, counted by the server). Median of RUNS (default 3) each, SECS (default 10) long.
# Needs: apt-get install wrk redis-server postgresql; ../shared/bench beside the repo.
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-3}; secs=${SECS:-10}
cargo build --release -q --manifest-path "$root/Cargo.toml" -p holdfast
row() { printf "%-52s %10s %10s\n" "$1" "$2" "$3"; }
row "system" "ops/s" "p99 ms"
for fsync in always no; do
  read -r rps p99 < <(for _ in $(seq "$runs"); do redis_reserve "$fsync"; done | medians)
  label="appendfsync always"; [ "$fsync" = no ] && label="no persistence"
  row "Redis 7 + Lua, $label" "$rps" "$p99"
done
if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  read -r rps p99 < <(for _ in $(seq "$runs"); do "$root/loadtest/bench/postgres-baseline.sh" "$secs" 50; done | medians)
  row "PostgreSQL hot row, synchronous commit" "$rps" "$p99"
else
  row "PostgreSQL (not installed: apt-get install postgresql)" "-" "-"
fi
for mode in "holdfast, fsync (default), 1 hot SKU|fsync|hot" \
            "holdfast, no flush, 1 hot SKU|none|hot" \
            "holdfast, fsync, 1,000 SKUs Zipf(1.1)|fsync|zipf"; do
  IFS='|' read -r label durability shape <<<"$mode"
  read -r rps p99 < <(for _ in $(seq "$runs"); do
    start_holdfast --durability "$durability"
    if [ "$shape" = hot ]; then wrk_holds "$secs" 50; else wrk_holds_zipf "$secs" 50 1000; fi
    stop_holdfast
  done | medians)
  row "$label" "$rps" "$p99"
done
