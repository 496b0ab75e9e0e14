#!/usr/bin/env bash
# Installs the Debian packages brig needs to build and test (idempotent).
# Build: libseccomp-dev and pkg-config (libcontainer's seccomp support for the
# filters clients send). Tests: busybox-static (test root filesystems), runc
# and crun (side-by-side tests and benchmarks), hyperfine, nftables, iproute2,
# uidmap, strace, util-linux (script), jq.
set -euo pipefail
packages=(libseccomp-dev pkg-config busybox-static tini runc crun hyperfine nftables iptables iproute2 uidmap strace util-linux jq procps python3 python3-venv openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
