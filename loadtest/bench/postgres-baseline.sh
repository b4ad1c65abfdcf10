#!/usr/bin/env bash
# The row-locked database baseline: PostgreSQL on one hot row. Each pgbench transaction
# takes one unit if available (UPDATE ... WHERE available >= 1) and inserts a hold row,
# with synchronous_commit on (the commit is fsynced before it is answered).
# Usage: postgres-baseline.sh [seconds] [clients]  -> prints "tps p99_ms"
# Needs the PostgreSQL server binaries (apt-get install postgresql); run as root or postgres.
set -euo pipefail
secs=${1:-10}; clients=${2:-50}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d); port=$((20000 + RANDOM % 20000))
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses='' -c max_connections=100" start >/dev/null
psql=(psql -q -h "$dir" -p "$port" -U postgres)
"${psql[@]}" -c "CREATE TABLE stock (sku text PRIMARY KEY, available bigint NOT NULL);
  INSERT INTO stock VALUES ('hot', 1000000000000);
  CREATE TABLE holds (id bigserial PRIMARY KEY, sku text NOT NULL, qty int NOT NULL,
                      expires_at timestamptz NOT NULL);"
cat >"$dir/reserve.sql" <<'SQL'
BEGIN;
UPDATE stock SET available = available - 1 WHERE sku = 'hot' AND available >= 1;
INSERT INTO holds (sku, qty, expires_at) VALUES ('hot', 1, now() + interval '15 minutes');
END;
SQL
chmod a+r "$dir/reserve.sql"
tps=$(cd "$dir" && as_pg pgbench -h "$dir" -p "$port" -U postgres -n -c "$clients" -j 2 -T "$secs" \
  -f "$dir/reserve.sql" --log --log-prefix="$dir/tx" postgres 2>/dev/null |
  awk '/^tps/ { print $3 }')
# Column 3 of pgbench's per-transaction log is the latency in microseconds.
p99=$(cat "$dir"/tx.* | awk '{ print $3 }' | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int(NR * 0.99)] / 1000 }')
printf "%.0f %s\n" "$tps" "$p99"
