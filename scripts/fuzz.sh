#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for SECONDS each (default 600), one after another, seeded
# from tests/data; prints a line per target: executions, corpus size, crashes. Needs the nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz`); exits 1 if any target crashed (its
# reproducer is under $FUZZ_WORK/artifacts/<target>/) and 2 when the tools are missing.
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]
#
# FUZZ_WORK (default /var/tmp/patchwarden-fuzz) keeps the corpora between runs; CARGO_TARGET_DIR
# defaults to $FUZZ_WORK/target. FUZZ_JOBS runs that many targets at once (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
work="${FUZZ_WORK:-/var/tmp/patchwarden-fuzz}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_FUZZ:-$work/target}"
if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz)" >&2
  exit 2
fi
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
data=tests/data

# Seeds: small real inputs per target (copied once; the corpus grows from them).
seed() {
  local target="$1" dir="$work/corpus/$1"
  [ -d "$dir" ] && return 0
  mkdir -p "$dir"
  case "$target" in
    version_deb) tsv=("$data"/versions/dpkg.tsv "$data"/versions/osv-scalibr-debian*.tsv) ;;
    version_rpm) tsv=("$data"/versions/rpm*.tsv "$data"/versions/osv-scalibr-redhat*.tsv) ;;
    version_apk) tsv=("$data"/versions/apk.tsv "$data"/versions/osv-scalibr-alpine.tsv) ;;
    *) tsv=() ;;
  esac
  if [ "${#tsv[@]}" -gt 0 ]; then
    # "left\nright" pairs from the first two columns of the version vectors (400 at most).
    awk -F'\t' 'FNR > 1 && NF >= 2 { n++; f = sprintf("'"$dir"'/%05d", n); print $1 "\n" $2 > f; close(f) } n >= 400 { exit }' "${tsv[@]}" 2>/dev/null || true
    return 0
  fi
  case "$target" in
    dpkg_status) cp "$data"/inventory/dpkg-distroless/status.d/foo "$dir"/
                 [ -r /var/lib/dpkg/status ] && head -c 65536 /var/lib/dpkg/status > "$dir"/status ;;
    apk_installed) cp "$data"/inventory/apk/installed "$dir"/ ;;
    rpm_header) python3 - "$data"/inventory/rpmdb/cbl-mariner-2.0/rpmdb.sqlite "$dir" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?immutable=1", uri=True)
for i, (blob,) in enumerate(c.execute("SELECT blob FROM Packages LIMIT 50")):
    open(f"{sys.argv[2]}/{i:03d}", "wb").write(blob)
PY
    ;;
    osv) find "$data"/osv -name '*.json' -size -64k | sed -n 1,200p | xargs -r cp -t "$dir" ;;  # sed, not head: no SIGPIPE under pipefail
    nvd) cp "$data"/nvd/api2.0/*.json "$dir"/ ;;
    kev) cp "$data"/kev/known_exploited_vulnerabilities.json "$data"/kev-fixtures/*.json "$dir"/ ;;
    epss) cp "$data"/epss/fixtures/*.csv "$dir"/; head -c 16384 "$data"/epss/*.csv > "$dir"/rows.csv ;;
    debian_tracker) cp "$data"/debian-tracker/*.json "$dir"/ ;;
    alpine_secdb) cp "$data"/alpine-secdb/*.json "$data"/alpine-secdb/*.yaml "$dir"/ ;;
    csaf_vex) cp "$data"/redhat/csaf-vex/*.json "$data"/redhat/csaf-advisories/*.json "$dir"/ ;;
    feed_detect) cp "$data"/kev-fixtures/*.json "$data"/redhat/csaf-vex/cve-2023-4154.json "$data"/alpine-secdb/*.json "$dir"/ ;;
    inventory_report|checkin_body)
      # A real inventory of the test root of apk (made by this build's CLI when it is built).
      cli="${CARGO_TARGET_DIR_MAIN:-/var/tmp/patchwarden-target}/debug/patchwarden"
      if [ -x "$cli" ]; then
        root="$work/apk-root"; mkdir -p "$root/lib/apk/db" "$root/etc"
        cp "$data"/inventory/apk/installed "$root/lib/apk/db/installed"
        printf 'ID=alpine\nVERSION_ID=3.19.1\n' > "$root/etc/os-release"
        "$cli" inventory --root "$root" --format json > "$dir/inventory.json" || true
        if [ "$target" = checkin_body ] && [ -s "$dir/inventory.json" ]; then
          printf '{"idempotency_key":"k1","digest":"d","agent_version":"0.1.0","inventory":%s}' \
            "$(cat "$dir/inventory.json")" > "$dir/checkin.json"
          rm "$dir/inventory.json"
          printf '{"idempotency_key":"k2","digest":"d","agent_version":"0.1.0"}' > "$dir/heartbeat.json"
        fi
      fi ;;
    deploy_config) cp dist/windows.example.toml "$dir"/
                   # The TOML examples of docs/deployment.md, one seed each.
                   awk '/^```toml/ { n++; on = 1; next } /^```/ { on = 0 } on { print > sprintf("'"$dir"'/doc-%02d.toml", n) }' docs/deployment.md ;;
  esac
}

cargo +nightly fuzz build --fuzz-dir fuzz -O >/dev/null
failed=0
run_one() {
  local target="$1"
  seed "$target"
  mkdir -p "$work/artifacts/$target"
  local log="$work/$target.log"
  local status=0
  cargo +nightly fuzz run --fuzz-dir fuzz -O "$target" "$work/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$target/" >"$log" 2>&1 || status=$?
  local execs corpus crashes
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  corpus=$(find "$work/corpus/$target" -type f | wc -l)
  crashes=$(find "$work/artifacts/$target" -type f | wc -l)
  printf '%-18s %6ss  %12s execs  corpus %6s  crashes %s\n' "$target" "$seconds" "$execs" "$corpus" "$crashes"
  [ "$status" -eq 0 ] && [ "$crashes" -eq 0 ]
}
jobs_at_once="${FUZZ_JOBS:-1}"
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=("$!")
  if [ "${#pids[@]}" -ge "$jobs_at_once" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit "$failed"
