#!/usr/bin/env bash
# The fleet server under load (docs/benchmarks.md, "Fleet server"): a server on DB with the shipped
# real-data snapshot as its knowledge base, then patchwarden-loadgen: HOSTS enrollments, a burst of
# HOSTS first inventories (~1,000 packages each, synthetic from a real inventory and real package
# names), three steady-state rounds (ROUNDS) with 1 % of inventories changing, optionally after a pause
# (PAUSE_SECS) in which the server finishes the burst's findings.
# usage: bench/fleet.sh DB HOSTS BASE_INVENTORY.json NAMES.txt [WORK_DIR]
#   DB: a SQLite file (removed first) or a postgres:// URL (its schema should be empty)
# The real-scale case from one command: REAL_SCALE_ROOT=DIR (a Debian 12 root, e.g. the mmdebstrap
# test root) makes BASE_INVENTORY.json (the root's inventory) and NAMES.txt (written, not read)
# and loads, after the snapshot, a SYNTHETIC tracker of REAL_SCALE_CVES (45000) CVEs over the root's
# source packages and 6,000 other real names (bench/synthetic_tracker.py; it replaces the
# snapshot's Debian tracker): every host then carries thousands of findings, as real hosts do.
# PATCHWARDEN_TIMINGS=1 makes the server print where its findings workers spend their time;
# SERVERS=N runs N servers on the one store (the load spread over them; queries go to the first).
set -euo pipefail
db=${1:?usage}; hosts=${2:?usage}; base=${3:?usage}; names=${4:?usage}; work=${5:-/var/tmp/pwload}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PATCHWARDEN_BIN_DIR:-$here/target/release}
mkdir -p "$work"; cd "$work"; rm -rf state
case "$db" in
  postgres*)
    # A fleet's host rows are rewritten at every check-in: without autovacuum the host table
    # bloats and every phase after the load slows (docs/fleet.md).
    if [ "$(psql "$db" -Atc 'show autovacuum')" != on ]; then
      echo "warning: autovacuum is off on this PostgreSQL: the figures after the load will suffer (docs/fleet.md)"
    fi ;;
  *) rm -f "$db" "$db-wal" "$db-shm" ;;
esac
"$bin/patchwarden" --db "$db" feeds import "$here/data/snapshot" >/dev/null
if [ -n "${REAL_SCALE_ROOT:-}" ]; then
  "$bin/patchwarden" inventory --root "$REAL_SCALE_ROOT" --format json > "$base"
  python3 "$here/bench/synthetic_tracker.py" "$REAL_SCALE_ROOT" synthetic-tracker.json "${REAL_SCALE_CVES:-45000}" "$names"
  "$bin/patchwarden" --db "$db" feeds import synthetic-tracker.json >/dev/null
fi
# SERVERS=N (default 1) servers on one store, ports 18443…, one state directory (one CA); the load
# generator spreads the hosts over them.
start_server() {
  "$bin/patchwarden" --db "$db" server --listen "127.0.0.1:$((18443 + $1))" --state-dir state --sync-interval-secs 0 --knowledge-poll-secs 1 --findings-workers "${FINDINGS_WORKERS:-2}" > "server$1.out" 2> "server$1.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^listening' "server$1.out" 2>/dev/null && break; sleep 0.1; done
}
pids=(); urls=()
for k in $(seq 0 $((${SERVERS:-1} - 1))); do start_server "$k"; urls+=(--server "https://127.0.0.1:$((18443 + k))"); done
ln -sf server0.out server.out; ln -sf server0.err server.err
server=${pids[0]}
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
rss() { for p in "${pids[@]}"; do printf '%s ' "$(ps -o rss= -p "$p")"; done; echo KB; }
# CPU seconds the servers used so far (user + system).
cpu() { local t=0; for p in "${pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; python3 -c "print($t / $(getconf CLK_TCK))"; }
cpu_before=$(cpu)
# The servers' CPU per load phase (a machine-speed-robust figure: CPU milliseconds per request),
# read each time the load generator ends a phase.
phase_cpu() {
  local seen=0 last n now line
  last=$(cpu)
  while kill -0 "$server" 2>/dev/null; do
    n=$(grep -c ' requests (' loadgen.out 2>/dev/null || true)
    if [ "${n:-0}" -gt "$seen" ]; then
      now=$(cpu); line=$(grep ' requests (' loadgen.out | sed -n "${n}p")
      python3 -c "import sys; p, c = sys.argv[1], $now - $last; k = int(sys.argv[2].split(' requests')[0].split(': ')[-1]); print(f'{p}: server CPU {c:.1f} s, {1000 * c / k:.2f} ms per request')" "${line%%:*}" "$line"
      last=$now; seen=$n
    fi
    sleep 0.1
  done
}
: > loadgen.out
phase_cpu &
token=$("$bin/patchwarden" --db "$db" enroll-token create --uses $((hosts + 10)) 2>/dev/null)
/usr/bin/time -f 'loadgen: %e s, CPU %U s user + %S s system, peak RSS %M KB' "$bin/patchwarden-loadgen" "${urls[@]}" \
  --ca state/ca.pem --token "$token" --inventory "$base" --names "$names" --hosts "$hosts" \
  --packages 1000 --concurrency 64 --rounds "${ROUNDS:-3}" --pause-secs "${PAUSE_SECS:-0}" | tee loadgen.out
echo "server RSS after the load: $(rss); server CPU during the load: $(python3 -c "print(round($(cpu) - $cpu_before, 1))") s"
admin=$(sed -n 's/^admin token (shown once): //p' server.out)
client=("$bin/patchwarden" --server https://127.0.0.1:18443 --token "$admin" --ca state/ca.pem)
# Hosts whose findings are not computed yet, asked of the store (a listing of every host through
# the server would load it at 100,000 hosts).
pending_sql="SELECT COUNT(*) FROM host WHERE findings_version IS NULL OR findings_version < inventory_version"
pending() { case "$db" in
  postgres*) psql "$db" -Atc "$pending_sql" ;;
  *) python3 -c 'import sqlite3,sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute(sys.argv[2]).fetchone()[0])' "$db" "$pending_sql" ;;
esac; }
# Optional: WAIT_FINDINGS=1 waits until every host's findings are computed and says how long that
# took after the load ended, the server's RSS then, and the store's size.
if [ -n "${WAIT_FINDINGS:-}" ]; then
  start=$(date +%s.%N)
  until [ "$(pending)" = 0 ]; do sleep 0.5; done
  echo "every host's findings computed $(python3 -c "import time; print(round(time.time() - $start, 1))") s after the load ended; server RSS $(rss)"
  case "$db" in
    postgres*) echo "store: $(psql "$db" -Atc 'select pg_database_size(current_database())') bytes" ;;
    *) echo "store: $(du -cb "$db" "$db"-wal "$db"-shm 2>/dev/null | tail -1 | cut -f1) bytes (file, WAL and shm)" ;;
  esac
fi
# Optional, with the server still up: query timings through the CLI client, then a knowledge-base
# change written by another process (KB_CHANGE: a feed file, e.g. one SYNTHETIC advisory from
# bench/synthetic_advisory.py, or `tenth`: see below) and how long the server took to find the hosts it touches (its log
# line) and to recompute them.
# KB_CHANGE=tenth: one SYNTHETIC advisory on the packages only a tenth of the hosts hold at their
# version (the load generator names them).
if [ "${KB_CHANGE:-}" = tenth ]; then
  KB_CHANGE=$PWD/tenth-advisory.json
  python3 "$here/bench/synthetic_advisory.py" "$(sed -n 's/^a tenth of the hosts hold \([^ ]*\) at.*/\1/p' loadgen.out)" "$KB_CHANGE" PW-SYNTHETIC-2026-0010 1.0-1+lg0
fi
if [ -n "${KB_CHANGE:-}" ]; then
  # Each query 20 times through the CLI client (a process, TLS included): median and p95.
  cve=$("${client[@]}" host 1 --format json | python3 -c 'import json,sys; print(next(c for f in json.load(sys.stdin)["findings"] for c in f["cves"]))')
  for q in "host 1 --format json" "affected $cve" "summary" "hosts --format csv" "findings --limit 100 --format json" \
           "findings --severity high --limit 100 --format json" "findings --state no_fix_yet --due-within-days 30 --limit 100 --format json"; do
    python3 - "$q" "${client[@]}" <<'PY'
import subprocess, sys, time
q, client = sys.argv[1], sys.argv[2:]
times = []
for _ in range(20):
    t = time.time(); subprocess.run(client + q.split(), stdout=subprocess.DEVNULL, check=True); times.append(time.time() - t)
times.sort()
print(f"query {q}: median {times[10]*1000:.0f} ms, p95 {times[18]*1000:.0f} ms")
PY
  done
  # Whichever server applies the journal first logs what it marked.
  changed() { cat server*.err | grep -c 'knowledge base changed' || true; }
  before=$(changed)
  start=$(date +%s.%N)
  /usr/bin/time -f 'feeds import of the change: %e s' "$bin/patchwarden" --db "$db" feeds import "$KB_CHANGE" > /dev/null
  until [ "$(changed)" -gt "$before" ]; do sleep 0.2; done
  cat server*.err | grep 'knowledge base changed' | tail -1
  until [ "$(pending)" = 0 ]; do sleep 0.5; done
  echo "marked hosts recomputed $(python3 -c "import time; print(round(time.time() - $start, 1))") s after the import started"
fi
