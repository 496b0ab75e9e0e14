#!/usr/bin/env bash
# Installs brig on a fresh Debian 12 machine (as root) and runs a sample
# hardened job end to end.
#
#   sudo ./install.sh            build, install to /usr/local/bin, run the demo
#   sudo ./install.sh --no-demo  build and install only
set -euo pipefail
cd "$(dirname "$0")"
[[ $(id -u) == 0 ]] || { echo "install.sh: run as root (it installs to /usr/local and runs containers)" >&2; exit 1; }
scripts/deps.sh
command -v cargo >/dev/null || { echo "install.sh: cargo (Rust) is required" >&2; exit 1; }
cargo build --release --locked -p brig
install -m 0755 target/release/brig /usr/local/bin/brig
echo "installed /usr/local/bin/brig: $(/usr/local/bin/brig --version | head -1)"
[[ ${1:-} == --no-demo ]] && exit 0
exec scripts/demo.sh /usr/local/bin/brig
