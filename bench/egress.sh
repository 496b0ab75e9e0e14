#!/usr/bin/env bash
# Egress rules (docs/egress.md), two measurements side by side:
#
# 1. Launch latency of busybox `true` with `brig run` under three profiles
#    that differ only in their [network] section (all derived from
#    `permissive`, so nothing else is measured): `client` (no ruleset at all),
#    `none` (the loopback-only ruleset), and `allow` with 100 rules. One
#    hyperfine run; target: 100-rule allowlist - none <= 2 ms (median).
# 2. TCP throughput of iperf3 from a brig job to a server in another network
#    namespace over one veth pair: the job under the 100-rule allowlist (which
#    includes the server) vs the same job under `client` (no rules), in the
#    same namespace, runs alternated. Target: >= 95%.
#
#   sudo bench/egress.sh [RUNS] [SECONDS] [TRANSFERS]
#                    (default 40 launches and installs, 5 x 5 s transfers each)
#
# BRIG=path/to/brig selects the binary (default target/release/brig). Every
# network namespace and veth it creates lives only inside the namespaces it
# made (198.18.0.0/15, the benchmarking range) and is removed on exit.
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
cleanup() {
  ip netns del "$NS_JOB" 2>/dev/null || true
  ip netns del "$NS_SRV" 2>/dev/null || true
  [[ -n ${SRV_PID:-} ]] && kill "$SRV_PID" 2>/dev/null || true
}
trap cleanup EXIT

# ------------------------------------------------------------- profiles
# permissive + a [network] section; 100 allow rules (10.<i>.0.0/16:443/tcp),
# plus the iperf3 server for the throughput run.
profile() { # NAME NETWORK-TOML
  local dir=$E/config-$1
  mkdir -p "$dir/profiles"
  sed -e "s/^name = .*/name = \"$1\"/" -e '/^\[network\]/,/^\[/{/^\[network\]/d;/^mode/d}' \
    "$REPO/profiles/builtin/permissive.toml" >"$dir/profiles/$1.toml"
  printf '\n[network]\n%s\n' "$2" >>"$dir/profiles/$1.toml"
  printf '[auth]\nmode = "off"\n[profiles]\ndefault = "%s"\ndir = "%s"\n' "$1" "$dir/profiles" >"$dir/config.toml"
}
rules=$(python3 -c 'print(", ".join(f"\"10.{i}.0.0/16:443/tcp\"" for i in range(99)) + ", \"198.18.1.1/32:5201/tcp\"")')
profile bench-client 'mode = "client"'
profile bench-none 'mode = "none"'
profile bench-allow100 "mode = \"allow\"
allow = [$rules]"

# ------------------------------------------------------------- latency
B=$WORK/bundle
lat=$E/latency.json
run_cmd() { echo "$BRIG --root $E/roots/$1 --config $E/config-$1/config.toml run --bundle $B egress-$1"; }
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$lat" \
  -n "client (no ruleset)" "$(run_cmd bench-client)" \
  -n "none (loopback only)" "$(run_cmd bench-none)" \
  -n "allow, 100 rules" "$(run_cmd bench-allow100)"

# The installation alone, as `create` timed it (brig-egress.json: from the
# start of the installation to nft's commit), alternating the two profiles:
# the part of the launch the ruleset adds, without the rest of a run's noise.
: >"$E/install.txt"
for ((i = 0; i < RUNS; i++)); do
  for p in bench-none bench-allow100; do
    "$BRIG" --root "$E/roots/$p" --config "$E/config-$p/config.toml" create --bundle "$B" "inst-$p" >/dev/null
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], d["install_us"], d["rules"], d["set_elements"])' \
      "$E/roots/$p/inst-$p/brig-egress.json" "$p" >>"$E/install.txt"
    "$BRIG" --root "$E/roots/$p" delete --force "inst-$p"
  done
done

# ------------------------------------------------------------- throughput
ip netns add "$NS_JOB"
ip netns add "$NS_SRV"
ip -n "$NS_JOB" link add eth0 type veth peer name eth0 netns "$NS_SRV"
ip -n "$NS_JOB" addr add 198.18.1.2/24 dev eth0
ip -n "$NS_SRV" addr add 198.18.1.1/24 dev eth0
for ns in "$NS_JOB" "$NS_SRV"; do ip -n "$ns" link set eth0 up; ip -n "$ns" link set lo up; done

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
ip netns exec "$NS_SRV" timeout 600 iperf3 -s -B 198.18.1.1 >/dev/null 2>&1 &
SRV_PID=$!
sleep 0.5
tput() { # PROFILE -> received bits/s
  "$BRIG" --root "$E/roots/$1" --config "$E/config-$1/config.toml" run --bundle "$TB" "iperf-$1" \
    | python3 -c '
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

python3 - "$lat" "$E/install.txt" "$E/throughput.txt" <<'PY'
import json, statistics, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print("\nbrig run busybox true (hyperfine; wall median, and CPU user+system mean):")
for k, r in res.items():
    print(f"  {k:24s} {r['median'] * 1000:7.2f} ms   cpu {(r['user'] + r['system']) * 1000:6.2f} ms")
med = {k: v["median"] * 1000 for k, v in res.items()}
cpu = {k: (v["user"] + v["system"]) * 1000 for k, v in res.items()}
n, a, c = "none (loopback only)", "allow, 100 rules", "client (no ruleset)"
print(f"  100-rule allowlist - none: wall {med[a] - med[n]:+.2f} ms, cpu {cpu[a] - cpu[n]:+.2f} ms")
print(f"  none - client (a ruleset at all): wall {med[n] - med[c]:+.2f} ms, cpu {cpu[n] - cpu[c]:+.2f} ms")
inst = {}
for line in open(sys.argv[2]):
    p, us, rules, elems = line.split()
    inst.setdefault(p, []).append(int(us) / 1000)
    inst.setdefault(p + "/size", (rules, elems))
ni, ai = statistics.median(inst["bench-none"]), statistics.median(inst["bench-allow100"])
print(f"\nruleset installation in create (median of {len(inst['bench-none'])} each, alternated):")
print(f"  none             {ni:6.2f} ms   ({inst['bench-none/size'][0]} rules, {inst['bench-none/size'][1]} set elements)")
print(f"  allow, 100 rules {ai:6.2f} ms   ({inst['bench-allow100/size'][0]} rules, {inst['bench-allow100/size'][1]} set elements)")
print(f"  added by the 100-rule allowlist = {ai - ni:+.2f} ms   (target <= 2 ms)")
t = {}
for line in open(sys.argv[3]):
    p, bps = line.split()
    t.setdefault(p, []).append(float(bps))
cl, al = t["bench-client"], t["bench-allow100"]
print(f"\nTCP throughput (iperf3, one veth pair, {len(cl)} alternated transfers each):")
print(f"  no rules            median {statistics.median(cl) / 1e9:6.2f}  best {max(cl) / 1e9:6.2f} Gbit/s")
print(f"  100-rule allowlist  median {statistics.median(al) / 1e9:6.2f}  best {max(al) / 1e9:6.2f} Gbit/s")
print(f"  ratio: median {statistics.median(al) / statistics.median(cl):.3f}, best {max(al) / max(cl):.3f}   (target >= 0.95)")
PY
