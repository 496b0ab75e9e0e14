#!/usr/bin/env bash
# Syscall cost inside a job under brig's `restricted` seccomp filters vs none:
# a getpid loop (brig-probe), best of several runs each, side by side.
#
# Three rows: no filter; the floor (one allow-all `RET ALLOW` instruction,
# which is what any seccomp filter costs at minimum: with a filter attached,
# every syscall takes the kernel's slow entry path); brig's restricted
# filters. The figure brig answers for is restricted / floor: what its
# filters add beyond the price of having seccomp at all.
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
b_floor=$WORK/bundle-seccomp-floor
mkdir -p "$b_floor"
sed 's/"getpid-loop"/"getpid-loop-floor"/' "$b/config.json" >"$b_floor/config.json"
run() { "$BRIG" --root "$WORK/roots/brig" --config "$WORK/config-$1/config.toml" run --bundle "$2" "seccomp-$1" \
  | sed -n 's/.*ns_per_call=//p'; }
# Interleaved, best of 7 each: the machine's noise hits all three alike.
plain=999999 floor=999999 filtered=999999
for _ in 1 2 3 4 5 6 7; do
  plain=$(python3 -c "print(min($plain, $(run permissive "$b")))")
  floor=$(python3 -c "print(min($floor, $(run permissive "$b_floor")))")
  filtered=$(python3 -c "print(min($filtered, $(run restricted "$b")))")
done
python3 - "$plain" "$floor" "$filtered" <<'PY'
import sys
p, fl, f = (float(a) for a in sys.argv[1:4])
print(f"getpid, no filter:                 {p:6.1f} ns/call")
print(f"getpid, floor (1 allow-all insn):  {fl:6.1f} ns/call   ({100 * (fl / p - 1):+.1f}% vs none: the kernel's price for any filter)")
print(f"getpid, restricted filters:        {f:6.1f} ns/call   ({100 * (f / p - 1):+.1f}% vs none)")
print(f"brig's filters beyond the floor: {100 * (f / fl - 1):+.1f}%   (target <= 5%)")
PY
