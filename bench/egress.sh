#!/usr/bin/env bash
# Egress rules (docs/egress.md), measured side by side:
#
# 1. Launch latency of busybox `true` with `brig run` under three profiles
#    that differ only in their [network] section (all derived from
#    `permissive`, so nothing else is measured): `client` (no ruleset at all),
#    `none` (the loopback-only ruleset), and `allow` with 100 rules. One
#    hyperfine run.
# 2. The ruleset installation alone, as `create` times it (brig-egress.json:
#    wall time, and nft's CPU time), `none` vs the 100-rule allowlist,
#    alternated. Target: the 100-rule allowlist adds <= 2 ms.
# 3. TCP throughput of iperf3 from a brig job to a server in another network
#    namespace over one veth pair: the job under the 100-rule allowlist (which
#    includes the server) vs the same job under `client` (no rules), in the
#    same namespace, transfers alternated. Target: >= 95%.
#
#   sudo bench/egress.sh [RUNS] [SECONDS] [TRANSFERS]
#        (default 40 launches and 40 installations each, 5 transfers of 5 s each)
#
# BRIG=path/to/brig selects the binary (default target/release/brig). The
# network namespaces and the veth pair it creates live only inside those
# namespaces (198.18.0.0/15, the benchmarking range) and are removed on exit.
# On a loaded machine wall times spread widely: compare the p10 and CPU
# columns, and run it twice.
source "$(dirname "$0")/lib.sh"
RUNS=${1:-40}
SECS=${2:-5}
TRANSFERS=${3:-5}
bench_setup
if ! command -v iperf3 >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iperf3 >/dev/null
fi

E=$WORK/egress
mkdir -p "$E/roots"
NS_JOB=brig-bench-egress-$$-job
NS_SRV=brig-bench-egress-$$-srv
SRV_PID=""
cleanup() {
  [[ -n $SRV_PID ]] && kill "$SRV_PID" 2>/dev/null
  ip netns del "$NS_JOB" 2>/dev/null
  ip netns del "$NS_SRV" 2>/dev/null
  return 0
}
trap cleanup EXIT

# ------------------------------------------------------------- profiles
# permissive + a [network] section; 100 allow rules: 99 x 10.<i>.0.0/16:443/tcp
# and the iperf3 server of the throughput run.
profile() { # NAME NETWORK-TOML
  local dir=$E/config-$1
  mkdir -p "$dir/profiles"
  python3 - "$REPO/profiles/builtin/permissive.toml" "$dir/profiles/$1.toml" "$1" "$2" <<'PY'
import re, sys
src, dst, name, network = sys.argv[1:]
text = open(src).read()
text = re.sub(r'(?m)^name = .*$', f'name = "{name}"', text)
text = re.sub(r'(?ms)^\[network\]\n.*?(?=^\[)', '', text)
open(dst, "w").write(text + f"\n[network]\n{network}\n")
PY
  printf '[auth]\nmode = "off"\n[profiles]\ndefault = "%s"\ndir = "%s"\n' "$1" "$dir/profiles" >"$dir/config.toml"
}
rules=$(python3 -c 'print(", ".join([f"\"10.{i}.0.0/16:443/tcp\"" for i in range(99)] + ["\"198.18.1.1/32:5201/tcp\""]))')
profile bench-client 'mode = "client"'
profile bench-none 'mode = "none"'
profile bench-allow100 "mode = \"allow\"
allow = [$rules]"

# ------------------------------------------------------------- network
# The job namespace has an eth0 and a route out, as Docker's, Podman's and a
# pod's have: a namespace with loopback only gets no ruleset at all (nothing
# can leave it), which the "private namespace" line shows.
ip netns add "$NS_JOB"
ip netns add "$NS_SRV"
ip -n "$NS_JOB" link add eth0 type veth peer name eth0 netns "$NS_SRV"
ip -n "$NS_JOB" addr add 198.18.1.2/24 dev eth0
ip -n "$NS_SRV" addr add 198.18.1.1/24 dev eth0
for ns in "$NS_JOB" "$NS_SRV"; do
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

ip -n "$NS_JOB" route add default via 198.18.1.1

# ------------------------------------------------------------- latency
B=$WORK/bundle
# The benchmark bundle, joining the job namespace.
JB=$E/bundle-joined
mkdir -p "$JB"
python3 - "$B/config.json" "$JB/config.json" "/run/netns/$NS_JOB" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
ns = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
ns.append({"type": "network", "path": sys.argv[3]})
c["linux"]["namespaces"] = ns
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
lat=$E/latency.json
run_cmd() { echo "$BRIG --root $E/roots/$1 --config $E/config-$1/config.toml run --bundle $2 egress-$1"; }
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$lat" \
  -n "client (no ruleset)" "$(run_cmd bench-client "$JB")" \
  -n "none (loopback only)" "$(run_cmd bench-none "$JB")" \
  -n "allow, 100 rules" "$(run_cmd bench-allow100 "$JB")" \
  -n "none, private namespace" "$(run_cmd bench-none "$B")"

# ------------------------------------------------------------- installation
: >"$E/install.txt"
for ((i = 0; i < RUNS; i++)); do
  for p in bench-none bench-allow100; do
    "$BRIG" --root "$E/roots/$p" --config "$E/config-$p/config.toml" create --bundle "$JB" "inst-$p" >/dev/null
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sys.argv[2], d["install_us"], d.get("nft_cpu_us", 0), d["rules"], d["set_elements"])' \
      "$E/roots/$p/inst-$p/brig-egress.json" "$p" >>"$E/install.txt"
    "$BRIG" --root "$E/roots/$p" delete --force "inst-$p"
  done
done

# ------------------------------------------------------------- throughput
# iperf3 (and its libraries) in the benchmark rootfs.
ROOTFS=$WORK/rootfs
IPERF=$(command -v iperf3)
mkdir -p "$ROOTFS/usr/bin" && cp "$IPERF" "$ROOTFS/usr/bin/iperf3"
for lib in $(ldd "$IPERF" | grep -o '/[^ ]*'); do
  mkdir -p "$ROOTFS$(dirname "$lib")" && cp -n "$lib" "$ROOTFS$lib" 2>/dev/null || true
done
TB=$E/bundle-iperf
mkdir -p "$TB"
python3 - "$B/config.json" "$TB/config.json" "/run/netns/$NS_JOB" "$SECS" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/usr/bin/iperf3", "-c", "198.18.1.1", "-t", sys.argv[4], "-J"]
# iperf3 creates its send buffer file in /tmp.
c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=64m"]})
ns = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
ns.append({"type": "network", "path": sys.argv[3]})
c["linux"]["namespaces"] = ns
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
ip netns exec "$NS_SRV" timeout 900 iperf3 -s -B 198.18.1.1 >/dev/null 2>&1 &
SRV_PID=$!
sleep 0.5
tput() { # PROFILE -> received bits/s
  "$BRIG" --root "$E/roots/$1" --config "$E/config-$1/config.toml" run --bundle "$TB" "iperf-$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r:
    sys.exit("iperf3: " + r["error"])
print(r["end"]["sum_received"]["bits_per_second"])'
}
: >"$E/throughput.txt"
for ((i = 0; i < TRANSFERS; i++)); do
  for p in bench-client bench-allow100; do
    echo "$p $(tput "$p")" >>"$E/throughput.txt"
  done
done

# ------------------------------------------------------------- report
python3 - "$lat" "$E/install.txt" "$E/throughput.txt" <<'PY'
import json, statistics, sys

def q(v, f):
    v = sorted(v)
    return v[int(f * (len(v) - 1))]

res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print("\nbrig run busybox true (hyperfine): wall median / p10, CPU user+system mean")
for k, r in res.items():
    print(f"  {k:22s} {r['median'] * 1000:7.2f} / {q(r['times'], 0.1) * 1000:6.2f} ms   cpu {(r['user'] + r['system']) * 1000:6.2f} ms")
cpu = {k: (v["user"] + v["system"]) * 1000 for k, v in res.items()}
p10 = {k: q(v["times"], 0.1) * 1000 for k, v in res.items()}
n, a, c = "none (loopback only)", "allow, 100 rules", "client (no ruleset)"
print(f"  100-rule allowlist - none: p10 {p10[a] - p10[n]:+.2f} ms, cpu {cpu[a] - cpu[n]:+.2f} ms")
print(f"  none - client (any ruleset): p10 {p10[n] - p10[c]:+.2f} ms, cpu {cpu[n] - cpu[c]:+.2f} ms")

inst, ncpu, size = {}, {}, {}
for line in open(sys.argv[2]):
    p, us, cpu_us, rules, elems = line.split()
    inst.setdefault(p, []).append(int(us) / 1000)
    ncpu.setdefault(p, []).append(int(cpu_us) / 1000)
    size[p] = (rules, elems)
n, a = "bench-none", "bench-allow100"
print(f"\nruleset installation in create ({len(inst[n])} each, alternated): wall median / p10 / min, nft CPU median")
for p, label in ((n, "none"), (a, "allow, 100 rules")):
    print(f"  {label:17s} {statistics.median(inst[p]):6.2f} / {q(inst[p], 0.1):5.2f} / {min(inst[p]):5.2f} ms"
          f"   cpu {statistics.median(ncpu[p]):5.2f} ms   ({size[p][0]} rules, {size[p][1]} set elements)")
print(f"  added by the 100-rule allowlist: wall median {statistics.median(inst[a]) - statistics.median(inst[n]):+.2f} ms,"
      f" p10 {q(inst[a], 0.1) - q(inst[n], 0.1):+.2f} ms, nft CPU {statistics.median(ncpu[a]) - statistics.median(ncpu[n]):+.2f} ms"
      "   (target <= 2 ms)")

t = {}
for line in open(sys.argv[3]):
    p, bps = line.split()
    t.setdefault(p, []).append(float(bps))
cl, al = t["bench-client"], t["bench-allow100"]
print(f"\nTCP throughput (iperf3, one veth pair, {len(cl)} alternated transfers each)")
print(f"  no rules            median {statistics.median(cl) / 1e9:6.2f}  best {max(cl) / 1e9:6.2f} Gbit/s")
print(f"  100-rule allowlist  median {statistics.median(al) / 1e9:6.2f}  best {max(al) / 1e9:6.2f} Gbit/s")
print(f"  ratio: median {statistics.median(al) / statistics.median(cl):.3f}, best {max(al) / max(cl):.3f}   (target >= 0.95)")
PY
