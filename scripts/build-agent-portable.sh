#!/usr/bin/env bash
# Builds patchwarden-agent for old servers in the field: linked against glibc 2.28 symbols (RHEL 8;
# Ubuntu 20.04 has 2.31), with zig as the linker through cargo-zigbuild (Rust's own gnu target, no
# extra toolchain download). Checks the result: no symbol newer than the requested glibc.
# usage: scripts/build-agent-portable.sh [GLIBC_VERSION]   (default 2.28) → prints the binary's path
set -euo pipefail
glibc=${1:-2.28}
cd "$(dirname "$0")/.."
if ! python3 -c 'import ziglang' 2>/dev/null; then pip install --quiet ziglang; fi
zig_dir=$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')
export PATH="$PATH:$zig_dir"
command -v cargo-zigbuild >/dev/null || cargo install --locked --quiet cargo-zigbuild
target_dir=${CARGO_TARGET_DIR:-target}
cargo zigbuild --release -p patchwarden-agent --target "x86_64-unknown-linux-gnu.$glibc" >&2
bin="$target_dir/x86_64-unknown-linux-gnu/release/patchwarden-agent"
strip "$bin"
newest=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
if [ "$(printf '%s\n%s\n' "$newest" "$glibc" | sort -V | tail -1)" != "$glibc" ]; then
  echo "error: $bin needs glibc $newest, more than $glibc" >&2; exit 1
fi
echo "$bin (stripped, $(stat -c %s "$bin") bytes, needs glibc $newest)" >&2
echo "$bin"
