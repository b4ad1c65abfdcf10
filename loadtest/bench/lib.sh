# Shared helpers for the bench scripts: start a release holdfast on a free port and a temp
# data dir, drive it with wrk, parse wrk's figures, take medians.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# HOLDFAST_BIN picks another build, for A/B runs of two builds in one session.
bin=${HOLDFAST_BIN:-"$root/target/release/holdfast"}
# wrk-hold.lua: one new idempotency key per request (see the comment in it).
wrk_script="$root/loadtest/bench/wrk-hold.lua"
# WRK picks the wrk; by default the one build-wrk.sh makes (it also prints the latencies as
# recorded, before wrk's coordinated-omission correction), else the system's.
wrk_bin=${WRK:-"$root/target/bench/wrk"}
[ -x "$wrk_bin" ] || wrk_bin=wrk

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_holdfast ARGS... : sets $hf_pid, $hf_url, $hf_dir
start_holdfast() {
  hf_dir=$(mktemp -d); local port; port=$(free_port)
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$hf_dir/data" "$@" >"$hf_dir/log" 2>&1 &
  hf_pid=$!; hf_url="http://127.0.0.1:$port"
  # A script that stops early (set -e, Ctrl-C, timeout) must not leave a server running:
  # an orphan still burns CPU and writes to disk, skewing every later measurement.
  trap stop_holdfast EXIT; trap 'stop_holdfast; exit 130' INT TERM
  for _ in $(seq 100); do curl -sf "$hf_url/health/ready" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "holdfast did not become ready: $(tail -3 "$hf_dir/log")" >&2; return 1
}

# attach_listeners SUBSCRIBERS WEBHOOKS: SSE subscribers reading the whole availability
# stream, and webhook endpoints (every event type) on a local receiver that answers 204;
# the server must allow loopback (--webhook-allow-cidr 127.0.0.1/32). Sets $listener_pids.
# The listeners run at nice 19: in production they are other machines, and here they would
# otherwise take the server's cores (three curls reading every event of a hot SKU).
attach_listeners() {
  local port i; listener_pids=""
  for i in $(seq "$1"); do
    nice -n 19 curl -sN "$hf_url/v1/availability/stream" >/dev/null 2>&1 &
    listener_pids+=" $!"
  done
  [ "$2" -gt 0 ] || return 0
  port=$(free_port)
  nice -n 19 python3 -c '
import http.server, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()' "$port" &
  listener_pids+=" $!"
  sleep 0.3
  for i in $(seq "$2"); do
    curl -sf -X PUT "$hf_url/v1/webhooks/bench-$i" -H 'content-type: application/json' \
      -d "{\"url\": \"http://127.0.0.1:$port/hook\", \"events\": [\"availability.changed\", \"sku.sold_out\", \"sku.back_in_stock\", \"sku.low_stock\"]}" >/dev/null
  done
}

detach_listeners() {
  [ -n "${listener_pids:-}" ] || return 0
  # shellcheck disable=SC2086
  kill $listener_pids 2>/dev/null || true; wait $listener_pids 2>/dev/null || true
  listener_pids=""
}

stop_holdfast() {
  detach_listeners
  [ -n "${hf_pid:-}" ] || return 0
  kill -TERM "$hf_pid" 2>/dev/null || true; wait "$hf_pid" 2>/dev/null || true; rm -rf "$hf_dir"
  hf_pid=
}

# Holds the server placed so far (idempotent replays and refusals not counted).
holds_placed() {
  curl -sf "$hf_url/metrics" | awk '/^holdfast_hold_outcomes_total\{outcome="held"\}/ { n = $2 } END { print n + 0 }'
}

# wrk_run WRK_ARGS... -> "rps p99_ms recorded_p99_ms", where rps counts only new holds the
# server placed (from its own counter), so a script that repeats keys or meets errors cannot
# inflate it. p99 is wrk's own (corrected for coordinated omission); the recorded p99 is the
# latency as measured, like redis-benchmark's and pgbench's ("-" with a stock wrk).
wrk_run() {
  local before after out
  before=$(holds_placed)
  out=$("$wrk_bin" "$@")
  after=$(holds_placed)
  awk -v placed=$((after - before)) '
    function ms(v,   unit) { unit = v; gsub(/[0-9.]/, "", unit); sub(/[a-z]+$/, "", v)
                             return (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v + 0 }
    /requests in/ { answered = $1; secs = $4; sub(/,$/, "", secs)
                    secs = (secs ~ /m$/) ? secs * 60 : (secs ~ /h$/) ? secs * 3600 : secs + 0 }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Recorded" { for (i = 3; i < NF; i++) if ($i == "99%") recorded = sprintf("%.2f", ms($(i + 1))) }
    END {
      if (placed < answered * 0.99) printf "warning: %d answers but only %d new holds\n", answered, placed > "/dev/stderr"
      printf "%.0f %.2f %s\n", placed / secs, p99, (recorded == "") ? "-" : recorded }' <<<"$out"
}

# wrk_holds SECONDS CONNS -> "rps p99_ms recorded_p99_ms" (see wrk_run), on a fresh server;
# fails if the audit after the run does (see audit_units)
wrk_holds() {
  curl -sf -X PUT "$hf_url/v1/skus/HOT" -d '{"on_hand": 1000000000000}' >/dev/null
  wrk_run -t2 -c"$2" -d"$1s" --latency -s "$wrk_script" "$hf_url" -- bench-key HOT
  audit_units HOT
}

# audit_units SKU... : checks the server after a run of 1-unit holds that nobody paid or
# released (the TTL outlasts every run) on a fresh server: the SKUs hold exactly one unit per
# hold the server placed, none holds more than its stock, and each adds up (available =
# on_hand - safety_stock - held - committed). Names what failed on stderr and returns 1: a
# speed figure from a run that oversold or lost a hold is worthless.
audit_units() {
  local placed; placed=$(holds_placed)
  printf "%s\n" "$@" | xargs -P 16 -I{} curl -sf "$hf_url/v1/skus/{}" | python3 -c '
import json, sys
placed, held, failures = int(sys.argv[1]), 0, []
# The parallel curls write their answers back to back, in any order.
text, at, decoder = sys.stdin.read(), 0, json.JSONDecoder()
while at < len(text):
    sku, at = decoder.raw_decode(text, at)
    name, usable = sku["sku"], sku["on_hand"] - sku["safety_stock"]
    units_held, units_committed = sku["held"], sku["committed"]
    held += units_held
    if units_held + units_committed > usable:
        failures.append(f"{name} oversold: held {units_held} + committed {units_committed} > {usable}")
    if sku["available"] != usable - units_held - units_committed:
        failures.append(f"{name} does not add up: {json.dumps(sku)}")
if held != placed:
    failures.append(f"the SKUs hold {held} units but the server placed {placed} 1-unit holds")
for failure in failures:
    print("audit failed:", failure, file=sys.stderr)
sys.exit(1 if failures else 0)' "$placed"
}

# median of the numbers on stdin ("-" where there are none)
median() {
  awk '$1 ~ /^[0-9.]+$/' | sort -n |
    awk '{ a[NR] = $1 } END { print NR == 0 ? "-" : (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# wrk_holds_zipf SECONDS CONNS SKUS -> as wrk_holds, over SKUS SKUs with Zipf(1.1) popularity
wrk_holds_zipf() {
  local skus; skus=$(seq -f "Z-%.0f" 0 $(($3 - 1)))
  xargs -P 16 -I{} curl -sf -X PUT "$hf_url/v1/skus/{}" -d '{"on_hand": 1000000000000}' -o /dev/null <<<"$skus"
  wrk_run -t2 -c"$2" -d"$1s" --latency -s "$root/loadtest/bench/wrk-hold-zipf.lua" "$hf_url" -- bench-key "$3" 1.1
  # shellcheck disable=SC2086 # one argument per SKU
  audit_units $skus
}

# redis_reserve FSYNC -> "rps p99_ms" from redis-baseline.sh
redis_reserve() {
  "$root/loadtest/bench/redis-baseline.sh" "$1" "${REDIS_REQUESTS:-300000}" |
    awk -F'","' '/EVALSHA/ { gsub(/"/, "", $2); gsub(/"/, "", $7); printf "%.0f %.2f\n", $2, $7 }'
}

# medians of each column: "rps p99" lines on stdin -> "rps p99" (any number of columns;
# "-" marks a figure a run did not have)
medians() {
  local lines; lines=$(cat)
  local columns; columns=$(awk 'NR == 1 { print NF }' <<<"$lines")
  local out=()
  for i in $(seq "$columns"); do out+=("$(awk -v i="$i" '{ print $i }' <<<"$lines" | median)"); done
  echo "${out[*]}"
}

# Journal flushes over 50 ms so far: the disk stalled. Every durable answer waits for the
# flush, so a run with one measures the disk's bad minute, not the server.
slow_flushes() {
  curl -sf "$hf_url/metrics" | awk '
    /^holdfast_journal_flush_duration_seconds_count / { total = $2 }
    /^holdfast_journal_flush_duration_seconds_bucket\{le="0.05"\}/ { fast = $2 }
    END { print total - fast }'
}

# Server CPU (user + system) so far, in clock ticks.
server_ticks() { awk '{ print $14 + $15 }' "/proc/$hf_pid/stat"; }
