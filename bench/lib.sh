# shellcheck shell=bash
# Shared setup for brig's benchmarks: a busybox bundle, configs, and crun's
# cgroup workaround on this hybrid host.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-/run/brig-bench}
BRIG_GIVEN=${BRIG:-}
BRIG=${BRIG:-$REPO/target/release/brig}

bench_setup() {
  [[ $(id -u) == 0 ]] || { echo "benchmarks run containers: run as root" >&2; exit 1; }
  "$REPO/scripts/deps.sh"
  # The default binary is always brought up to date (a no-op when it is):
  # a binary left from an older checkout would be measured for this one.
  if [[ -z ${BRIG_GIVEN:-} ]]; then
    (cd "$REPO" && cargo build --release -p brig)
  fi
  mkdir -p "$WORK"
  local rootfs=$WORK/rootfs
  if [[ ! -x $rootfs/bin/busybox ]]; then
    mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp}
    cp /bin/busybox "$rootfs/bin/busybox"
    for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$rootfs/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
    printf 'root:x:0:\n' > "$rootfs/etc/group"
  fi
  # One bundle per runtime (runc and crun read config.json from the bundle).
  local b=$WORK/bundle
  mkdir -p "$b"
  rm -f "$b/config.json"
  "$BRIG" spec --bundle "$b"
  python3 - "$b/config.json" "$rootfs" <<'PY'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open(path, "w"), indent=1)
PY
  for profile in permissive restricted; do
    mkdir -p "$WORK/config-$profile/profiles"
    printf '[auth]\nmode = "off"\n[profiles]\ndefault = "%s"\ndir = "%s"\n' "$profile" "$WORK/config-$profile/profiles" \
      > "$WORK/config-$profile/config.toml"
  done
}

# crun 1.8 refuses cgroup v1 hybrid layouts where hugetlb sits on the v2
# hierarchy; mounting hugetlb as a v1 hierarchy makes it run. brig and runc do
# not need this. Undone by crun_unprepare.
CRUN_MOUNTED=0
crun_prepare() {
  if [[ ! -e /sys/fs/cgroup/cgroup.controllers && ! -d /sys/fs/cgroup/hugetlb ]]; then
    mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && CRUN_MOUNTED=1
  fi
}
crun_unprepare() {
  if ((CRUN_MOUNTED)); then
    umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
  fi
}
