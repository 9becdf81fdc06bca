#!/usr/bin/env bash
# One host beside debsecan on the same data (docs/benchmarks.md): a SYNTHETIC tracker at real-world
# scale (bench/synthetic_tracker.py) imported into patchwarden, exported as a debsecan feed, then both
# tools scan the same Debian root. Checks that they report the same (CVE, package) pairs, then times
# each (best of RUNS) and reports peak memory.
# usage: bench/debsecan.sh ROOT [WORK_DIR] [RUNS]
set -euo pipefail
root=${1:?usage: bench/debsecan.sh ROOT [WORK_DIR] [RUNS]}
work=${2:-/var/tmp/patchwarden-debsecan-bench}
runs=${3:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
pw=${PATCHWARDEN_BIN:-$here/target/release/patchwarden}
mkdir -p "$work"
rm -f "$work/kb.db"
/usr/bin/python3 "$here/bench/synthetic_tracker.py" "$root" "$work/tracker.json"
"$pw" --db "$work/kb.db" feeds import "$work/tracker.json" >/dev/null
"$pw" --db "$work/kb.db" feeds export-debsecan --suite bookworm "$work/feed"
debsecan_cmd=(debsecan --suite bookworm --source "file://$work/feed/" --status "$root/var/lib/dpkg/status" --format simple)
pw_cmd=("$pw" --db "$work/kb.db" scan --root "$root" --format json --no-history)
"${debsecan_cmd[@]}" | sort > "$work/debsecan.txt"
"${pw_cmd[@]}" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
for f in r["findings"]:
    if f["state"] != "eol":
        print(f["advisory_id"], f["package"])' | sort > "$work/patchwarden.txt"
if ! diff -q "$work/debsecan.txt" "$work/patchwarden.txt" >/dev/null; then
  echo "DIFFERENT results:"; diff "$work/debsecan.txt" "$work/patchwarden.txt" | head -20; exit 1
fi
echo "same results: $(wc -l < "$work/debsecan.txt") (CVE, package) pairs"
measure() {
  local name=$1; shift
  # Wall time from Python's perf_counter around the command itself (finer than /usr/bin/time's 10 ms;
  # the time wrapper would add its own fork and exec, ~1 ms, to every run); peak RSS from separate
  # runs under /usr/bin/time -f %M.
  /usr/bin/python3 - "$runs" "$name" "$@" <<'PY'
import subprocess, sys, time, statistics
runs, name, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
times, rss = [], 0
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    times.append((time.perf_counter() - t) * 1000)
for _ in range(3):
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", "/tmp/.pw-bench-rss"] + cmd, stdout=subprocess.DEVNULL, check=True)
    rss = max(rss, int(open("/tmp/.pw-bench-rss").read().split()[-1]))
print(f"{name}: best {min(times):.1f} ms, median {statistics.median(times):.1f} ms of {runs}, peak RSS {rss // 1024} MB")
PY
}
measure debsecan "${debsecan_cmd[@]}"
measure "patchwarden (json report)" "${pw_cmd[@]}"
measure "patchwarden (csv)" "${pw_cmd[@]/json/csv}"
