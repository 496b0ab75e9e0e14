#!/usr/bin/env bash
# Launch latency of busybox `true`: `brig run` (plain = permissive, and under
# `restricted`, with and without its per-job user namespace and idmapped
# rootfs) vs `runc run` vs `crun run`, side by side in one hyperfine run,
# printed as ratios; then the same five interleaved round by round (the
# figures to quote: see below); and peak RSS of `brig create` vs `runc create`.
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
# `restricted` with the spec's namespaces (none of user) instead of a per-job
# user namespace: what the user namespace and the idmapped rootfs cost.
H=$WORK/config-restricted-hostids
mkdir -p "$H/profiles"
sed 's/^mode = "per_job"$/mode = "spec"/' "$REPO/profiles/builtin/restricted.toml" > "$H/profiles/restricted.toml"
grep -q '^mode = "spec"$' "$H/profiles/restricted.toml" || { echo "bench: cannot derive restricted without userns" >&2; exit 1; }
printf '[auth]\nmode = "off"\n[profiles]\ndefault = "restricted"\ndir = "%s"\n' "$H/profiles" > "$H/config.toml"
# Two passes. "warm": launches back to back, as hyperfine does by default.
# "cold": a pause before each launch, as when jobs arrive one at a time. The
# difference is the kernel's cgroup_threadgroup_rwsem: the first cgroup.procs
# write after a quiet spell waits for an RCU grace period (10-15 ms here),
# while a write soon after another one does not. brig's launch never takes
# that lock on cgroup v1 (third_party/README.md); runc and crun do.
for pass in warm cold; do
out=$WORK/launch-$pass.json
prepare=()
[[ $pass == cold ]] && prepare=(--prepare "sleep 0.2")
hyperfine -N --warmup 5 --runs "$RUNS" "${prepare[@]}" --export-json "$out" \
  -n "brig run (permissive)" "$BRIG --root $R/brig --config $WORK/config-permissive/config.toml run --bundle $B bench-brig" \
  -n "brig run (restricted)" "$BRIG --root $R/brig --config $WORK/config-restricted/config.toml run --bundle $B bench-brig-r" \
  -n "brig run (restricted, no userns)" "$BRIG --root $R/brig --config $H/config.toml run --bundle $B bench-brig-h" \
  -n "runc run" "runc --root $R/runc run --bundle $B bench-runc" \
  -n "crun run" "crun --root $R/crun run --bundle $B bench-crun"
python3 - "$out" "$pass" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in res.items()}
print(f"\n[{sys.argv[2]}] median launch latency (ms):")
for k, v in med.items():
    print(f"  {k:34s} {v:7.2f}")
p, r = med["brig run (permissive)"], med["brig run (restricted)"]
print(f"\n  brig/runc  = {p / med['runc run']:.2f}   (target <= 0.50)")
print(f"  brig/crun  = {p / med['crun run']:.2f}")
print(f"  restricted/plain = {r / p:.3f}   (restricted adds {100 * (r / p - 1):.1f}%, target <= 10%)")
h = med["brig run (restricted, no userns)"]
print(f"  per-job userns   = {r / h:.3f}   (user namespace + idmapped rootfs add {100 * (r / h - 1):.1f}%, target <= 15%)")
PY
done

# Interleaved: hyperfine runs each command's series back to back, and this
# VM's launch latency drifts by more than restricted's cost between series
# (runc's median moved 22 -> 37 ms between two runs here). Every round runs
# the five commands once, in a random order, back to back; the ratios come
# from the same rounds, with the spread of medians over random half-samples.
# The launcher is posix_spawn + waitpid (no shell), as hyperfine -N.
python3 - "$RUNS" "$BRIG" "$R" "$B" "$WORK" "$H" <<'PY'
import os, random, shutil, statistics, sys, time
runs, brig, r, b, work, h = int(sys.argv[1]), *sys.argv[2:]
cmds = {
    "brig run (permissive)": [brig, "--root", f"{r}/brig", "--config", f"{work}/config-permissive/config.toml", "run", "--bundle", b, "il-p"],
    "brig run (restricted)": [brig, "--root", f"{r}/brig", "--config", f"{work}/config-restricted/config.toml", "run", "--bundle", b, "il-r"],
    "brig run (restricted, no userns)": [brig, "--root", f"{r}/brig", "--config", f"{h}/config.toml", "run", "--bundle", b, "il-h"],
    "runc run": ["runc", "--root", f"{r}/runc", "run", "--bundle", b, "il-runc"],
    "crun run": ["crun", "--root", f"{r}/crun", "run", "--bundle", b, "il-crun"],
}
for argv in cmds.values():
    argv[0] = shutil.which(argv[0]) or sys.exit(f"bench: {argv[0]} not found")
null = os.open(os.devnull, os.O_RDWR)
def once(argv):
    t = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
    _, status = os.waitpid(pid, 0)
    dt = (time.perf_counter() - t) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(argv)} failed")
    return dt
times = {k: [] for k in cmds}
for k in cmds:  # warm-up
    once(cmds[k])
for _ in range(runs):
    order = list(cmds)
    random.shuffle(order)
    for k in order:
        times[k].append(once(cmds[k]))
med = {k: statistics.median(v) for k, v in times.items()}
print(f"\n[interleaved, {runs} rounds] median launch latency (ms):")
for k, v in med.items():
    print(f"  {k:34s} {v:7.2f}")
def ratio(a, b, target):
    halves = []
    for _ in range(300):
        idx = random.sample(range(runs), runs // 2)
        halves.append(statistics.median(times[a][i] for i in idx) / statistics.median(times[b][i] for i in idx))
    q = statistics.quantiles(halves, n=20)
    return f"{med[a] / med[b]:.3f}  (half-sample range {q[0]:.3f}..{q[-1]:.3f}; target {target})"
print(f"\n  brig/runc        = {ratio('brig run (permissive)', 'runc run', '<= 0.50')}")
print(f"  brig/crun        = {ratio('brig run (permissive)', 'crun run', '-')}")
print(f"  restricted/plain = {ratio('brig run (restricted)', 'brig run (permissive)', '<= 1.10')}")
print(f"  per-job userns   = {ratio('brig run (restricted)', 'brig run (restricted, no userns)', '<= 1.15')}")
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
