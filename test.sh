#!/usr/bin/env bash
# brig's whole test suite, as CI runs it (.ci/run calls this). Run as root on
# Debian 12: it installs what it needs, builds, and runs the unit tests, the
# integration tests (real containers), and the end-to-end tests with real
# Docker, Podman and containerd, containerd's CRI (as the kubelet drives it),
# rootless Podman, and a pure cgroup v2 virtual machine.
#
#   sudo ./test.sh            everything
#   sudo ./test.sh --quick    skip the client end-to-end tests
set -euo pipefail
cd "$(dirname "$0")"
quick=0
[[ ${1:-} == --quick ]] && quick=1
if [[ $(id -u) != 0 ]]; then
  echo "test.sh: the tests run real containers and must run as root" >&2
  exit 1
fi
step() { printf '\n==> %s\n' "$*"; }
# One build from scratch: incremental caches would only take disk (1.8 GB).
export CARGO_INCREMENTAL=0

step "dependencies"
scripts/deps.sh

step "disk space"
# A whole run from a fresh clone took 3.6 GiB of disk at its peak (the build,
# the clients' images, the VM): too little ends in an out-of-space error in
# the middle of a build, so say so first.
need_gb=4
need_kb=$((need_gb * 1024 * 1024))
df -h . /var/lib
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if ((free_kb < need_kb)); then
  echo "test.sh: warning: $((free_kb / 1024)) MiB free on $(df -P . | awk 'NR == 2 { print $6 }'); the run needs about ${need_gb} GiB" >&2
fi

step "format and lints"
cargo fmt --all -- --check
(cd supervisor && cargo fmt -- --check)
(cd vm-tests/cri && cargo fmt -- --check)
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd supervisor && cargo clippy --release --locked -- -D warnings)

step "build"
cargo build --workspace --all-targets --locked

step "unit and integration tests"
cargo test --workspace --locked --no-fail-fast

# The benchmarks run once each (criterion's test mode), and the
# authorization bench's timing loop with one or two iterations per figure:
# a benchmark that no longer runs (a context the schema outgrew) fails here,
# not on the day its figures are needed.
step "benchmarks, once each"
BRIG_BENCH_SMOKE=1 cargo test --workspace --benches --locked

if ((quick == 0)); then
  step "end to end with Docker, Podman and containerd"
  vm-tests/clients/e2e.sh "$PWD/target/debug/brig"

  step "Kubernetes' CRI through containerd (one pod per profile)"
  vm-tests/cri/run.sh "$PWD/target/debug/brig"

  step "rootless Podman, as an unprivileged user"
  vm-tests/rootless/run.sh "$PWD/target/debug/brig"

  step "pure cgroup v2 in a virtual machine (QEMU)"
  BRIG_VM_NO_BUILD=1 vm-tests/qemu/run.sh

  step "the README's install command: install, configure, sample job"
  ./install.sh
fi
step "all tests passed"
