#!/usr/bin/env bash
# Launch latency of busybox `true`: `brig run` (plain = permissive, and under
# `restricted`) vs `runc run` vs `crun run`, side by side in one hyperfine run,
# printed as ratios; and peak RSS of `brig create` vs `runc create`.
#
#   sudo bench/launch.sh [RUNS]      (default 50 runs, 5 warm-up)
source "$(dirname "$0")/lib.sh"
RUNS=${1:-50}
bench_setup
crun_prepare
trap crun_unprepare EXIT
B=$WORK/bundle
R=$WORK/roots
mkdir -p "$R"/{brig,runc,crun}
out=$WORK/launch.json
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$out" \
  -n "brig run (permissive)" "$BRIG --root $R/brig --config $WORK/config-permissive/config.toml run --bundle $B bench-brig" \
  -n "brig run (restricted)" "$BRIG --root $R/brig --config $WORK/config-restricted/config.toml run --bundle $B bench-brig-r" \
  -n "runc run" "runc --root $R/runc run --bundle $B bench-runc" \
  -n "crun run" "crun --root $R/crun run --bundle $B bench-crun"
python3 - "$out" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in res.items()}
print("\nmedian launch latency (ms):")
for k, v in med.items():
    print(f"  {k:24s} {v:7.2f}")
p, r = med["brig run (permissive)"], med["brig run (restricted)"]
print(f"\n  brig/runc  = {p / med['runc run']:.2f}   (target <= 0.50)")
print(f"  brig/crun  = {p / med['crun run']:.2f}")
print(f"  restricted/plain = {r / p:.3f}   (restricted adds {100 * (r / p - 1):.1f}%, target <= 10%)")
PY

# Peak RSS of `create` (the runtime process itself).
rss() { python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"; }
brig_rss=$(rss "$BRIG" --root "$R/brig" --config "$WORK/config-permissive/config.toml" create --bundle "$B" rss-brig)
"$BRIG" --root "$R/brig" delete --force rss-brig
runc_rss=$(rss runc --root "$R/runc" create --bundle "$B" rss-runc)
runc --root "$R/runc" delete --force rss-runc
python3 -c "b,r=$brig_rss,$runc_rss; print(f'\npeak RSS of create: brig {b} KiB, runc {r} KiB, ratio {b/r:.2f}')"
