#!/usr/bin/env bash
# Syscall cost inside a job under brig's `restricted` seccomp filters vs none:
# a getpid loop (brig-probe), best of several runs each, side by side.
#
#   sudo bench/seccomp.sh [CALLS]    (default 20,000,000 calls per run)
source "$(dirname "$0")/lib.sh"
CALLS=${1:-20000000}
bench_setup
PROBE=${PROBE:-$REPO/target/release/brig-probe}
[[ -x $PROBE ]] || (cd "$REPO" && cargo build --release -p brig-tests --bin brig-probe)
# The probe is a glibc binary: bring its libraries into the rootfs.
cp "$PROBE" "$WORK/rootfs/bin/brig-probe"
for lib in $(ldd "$PROBE" | grep -o '/[^ ]*'); do
  mkdir -p "$WORK/rootfs$(dirname "$lib")" && cp -n "$lib" "$WORK/rootfs$lib" 2>/dev/null || true
done
b=$WORK/bundle-seccomp
mkdir -p "$b"
python3 - "$WORK/bundle/config.json" "$b/config.json" "$CALLS" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/bin/brig-probe", "getpid-loop", sys.argv[3]]
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
run() { "$BRIG" --root "$WORK/roots/brig" --config "$WORK/config-$1/config.toml" run --bundle "$b" "seccomp-$1" \
  | sed -n 's/.*ns_per_call=//p'; }
best() { local m=999999; for _ in 1 2 3 4 5; do v=$(run "$1"); m=$(python3 -c "print(min($m, $v))"); done; echo "$m"; }
plain=$(best permissive)
filtered=$(best restricted)
python3 - "$plain" "$filtered" <<'PY'
import sys
p, f = float(sys.argv[1]), float(sys.argv[2])
print(f"getpid under no filter:          {p:6.1f} ns/call")
print(f"getpid under restricted filters: {f:6.1f} ns/call")
print(f"overhead: {100 * (f / p - 1):+.1f}%   (target <= 5%)")
PY
