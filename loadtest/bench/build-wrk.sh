#!/usr/bin/env bash
# Builds wrk 4.1 (Debian's source package) into target/bench/wrk with one line added: the
# latencies as recorded, before wrk's coordinated-omission correction. Stock wrk reports
# only corrected figures: every request slower than twice the mean (50 connections /
# requests per second) is counted again once per mean interval it took, as if an open loop
# had kept sending. One 200 ms disk stall thus turns into thousands of samples and a p99 of
# 100 ms or more, while redis-benchmark and pgbench report what they recorded. The bench
# scripts use this build when it is there and print both p99s, so holdfast's p99 can be
# set beside Redis's on the same terms. Needs: apt-get install luajit libluajit-5.1-dev
# libssl-dev dpkg-dev curl.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out="$root/target/bench/wrk"
pool=http://deb.debian.org/debian/pool/main/w/wrk
version=4.1.0-3
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
for file in "wrk_$version.dsc" wrk_4.1.0.orig.tar.gz "wrk_$version.debian.tar.xz"; do
  curl -sSfO "$pool/$file"
done
sha256sum -c --quiet <<'EOF'
c72a9c679a9baeabd02ad3c1f7b29628943908bdb4ee093e208876910db8f1c4  wrk_4.1.0-3.dsc
d8f1ba8b70ae5e10aef63ef4d5b6520bc0da103f7f1c59c79f50e2efd6810f8f  wrk_4.1.0.orig.tar.gz
29a120ffc5789cbdc2afebe02223c56aee38c6e1c6f16901736617d51301f2bd  wrk_4.1.0-3.debian.tar.xz
EOF
dpkg-source --no-check -x "wrk_$version.dsc" src >/dev/null
cd src
patch -p1 --quiet <<'EOF'
--- a/src/wrk.c
+++ b/src/wrk.c
@@ -165,6 +165,12 @@
     long double req_per_s   = complete   / runtime_s;
     long double bytes_per_s = bytes      / runtime_s;
 
+    printf("  Recorded latency: 50%% %s 90%% %s 99%% %s 99.9%% %s max %s\n",
+        format_time_us(stats_percentile(statistics.latency, 50.0)),
+        format_time_us(stats_percentile(statistics.latency, 90.0)),
+        format_time_us(stats_percentile(statistics.latency, 99.0)),
+        format_time_us(stats_percentile(statistics.latency, 99.9)),
+        format_time_us(statistics.latency->max));
     if (complete / cfg.connections > 0) {
         int64_t interval = runtime_us / (complete / cfg.connections);
         stats_correct(statistics.latency, interval);
EOF
make -s -j2 WITH_LUAJIT=/usr WITH_OPENSSL=/usr VER="debian/$version+recorded" >/dev/null
mkdir -p "$(dirname "$out")"
cp wrk "$out"
echo "built $out"
