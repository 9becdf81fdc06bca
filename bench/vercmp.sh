#!/usr/bin/env bash
# Version-comparison throughput: patchwarden vs the C implementations on the same pairs, same run.
# usage: bench/vercmp.sh [N]
# needs: python3-apt python3-rpm (Python bindings), libapt-pkg-dev librpm-dev g++ (the C baselines)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
work="${TMPDIR:-/var/tmp}/patchwarden-bench-vercmp"
cargo build --release -q -p patchwarden-cli
bin="${CARGO_TARGET_DIR:-target}/release/patchwarden"
python3 bench/vercmp_pairs.py "$work" "$n"
g++ -O2 -o "$work/apt_vercmp" bench/apt_vercmp.cc -lapt-pkg
gcc -O2 -o "$work/rpm_vercmp" bench/rpm_vercmp.c -lrpmio -lrpm
for scheme in deb rpm apk; do
  start=$(date +%s.%N)
  "$bin" vercmp --scheme "$scheme" --batch < "$work/$scheme.tsv" > "$work/$scheme.out"
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n="$n" -v sc="$scheme" \
    'BEGIN { printf "patchwarden vercmp --batch (%s, end to end: read, parse, compare, print): %d pairs in %.3f s = %.2f M comparisons/s\n", sc, n, e-s, n/(e-s)/1e6 }'
  case "$scheme" in
    deb|rpm)
      "$work/${scheme/deb/apt}_vercmp" "$work/$scheme.tsv"
      /usr/bin/python3 bench/vercmp_oracles.py "$scheme" "$work/$scheme.tsv"
      start=$(date +%s.%N)
      /usr/bin/python3 bench/vercmp_oracle_batch.py "$scheme" < "$work/$scheme.tsv" > "$work/$scheme.oracle.out"
      end=$(date +%s.%N)
      awk -v s="$start" -v e="$end" -v n="$n" -v sc="$scheme" \
        'BEGIN { printf "python oracle, same batch interface (%s, end to end): %d pairs in %.3f s = %.2f M comparisons/s\n", sc, n, e-s, n/(e-s)/1e6 }'
      if cmp -s "$work/$scheme.out" "$work/$scheme.oracle.out"; then echo "answers identical to the oracle's"; else echo "ANSWERS DIFFER from the oracle's"; fi
      ;;
  esac
done
echo "in-process, same pairs (direct = parse + compare; sort_key = memcmp of prebuilt keys):"
PATCHWARDEN_BENCH_PAIRS="$work" cargo bench -q -p patchwarden-version --bench compare
