#!/bin/sh
# cgroup v2 checks run inside the VM after the integration tests (suite.sh).
#
# Each check drives brig directly (no test harness) and reads the container's
# cgroup files: the limits brig (libcontainer's v2 manager) writes, and that
# the kernel enforces them.
#   v2::memory_limits_and_oom     memory.max / memory.low from
#                                 linux.resources.memory; a memory bomb is OOM-killed
#                                 (memory.events oom_kill > 0) and `brig state`
#                                 reports brig.outcome.oom_killed = true, signal 9
#   v2::pids_limit_enforced       pids.max; a fork bomb stops below it (pids.events max > 0)
#   v2::cpu_limits_enforced       cpu.max, cpu.weight (shares 512 -> 59, runc >= 1.3.2's
#                                 mapping), cpuset.cpus; a busy loop is throttled
#                                 (cpu.stat nr_throttled > 0, usage well under wall time)
#   v2::update_on_v2              `brig update` rewrites memory.max, pids.max and
#                                 cpu.max of a running container
#   v2::swap_equal_to_limit_disables_swap
#                                 memory.swap == memory.limit (v1's "no swap") writes
#                                 memory.swap.max 0, as runc does: from the spec, from
#                                 `brig update`, from restricted's ceilings
#   v2::profile_ceilings_on_v2    restricted's cgroup ceilings on a spec without limits:
#                                 memory.max 512 MiB, pids.max 256, cpu.max 1 CPU
#   v2::exec_joins_the_container_cgroup
#                                 a process started by `brig exec` is in the container's
#                                 cgroup (with and without cgroupsPath in the bundle),
#                                 and nothing is left behind after delete
#   v2::io_weight                 linux.resources.blockIO.weight 500 -> io.weight
#                                 "default 4950" (runc's 1 + (w - 10) * 9999 / 990;
#                                 io.bfq.weight 500 where BFQ is the scheduler);
#                                 17 through `brig update` -> 71
#   v2::io_max_enforced           throttleReadBpsDevice on a loop device -> io.max
#                                 "7:N rbps=1048576 ..."; O_DIRECT reads of 3 MiB in
#                                 the container take >= 2 s (unthrottled: well under)
#   v2::devices_filtered          a permissive job with CAP_MKNOD makes a node for
#                                 /dev/kmsg (c 1:11) outside the spec's devices rules
#                                 (Docker's deny-all): opening it fails with EPERM (the
#                                 cgroup v2 device program, libcgroups patch 6), /dev/null
#                                 still works; with c 1:11 w allowed by the spec, it opens,
#                                 also after a `brig update` of the running job
#   v2::rootless_delegated        brig run as uid 1000 with a user namespace, inside a
#                                 cgroup subtree delegated to that user (the systemd
#                                 user@.service model): limits written in the subtree
#                                 and the pids limit enforced; `brig update` as the user
# Output: `BRIG-VMTEST <name> PASS|FAIL|SKIP <seconds>s [why]`, the failing
# check's log between `----` lines. Exit status: the number of failures.
BRIG=/opt/brig/debug/brig
PROBE=/opt/brig/debug/brig-probe
W=/tmp/v2checks
CG=/sys/fs/cgroup
failures=0

now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

rm -rf "$W"
mkdir -p "$W"
chmod 755 "$W"

# ------------------------------------------------------------------- helpers
# A busybox root filesystem with the probe and its libraries.
rootfs=$W/rootfs
mkdir -p "$rootfs"/bin "$rootfs"/dev "$rootfs"/etc "$rootfs"/proc "$rootfs"/sys "$rootfs"/tmp "$rootfs"/data
cp /bin/busybox "$rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
cp "$PROBE" "$rootfs/bin/brig-probe"
for lib in $(/lib64/ld-linux-x86-64.so.2 --list "$PROBE" | grep -o '/[^ ]*'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp "$lib" "$rootfs$lib"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
echo "root:x:0:" >"$rootfs/etc/group"

# brig's configuration: no authorization (recorded), the runc-equivalent profile.
config() { # DIR
  mkdir -p "$1/profiles"
  printf '[auth]\nmode = "off"\n[profiles]\ndefault = "permissive"\ndir = "%s/profiles"\n' "$1" >"$1/config.toml"
}
config "$W"
mkdir -p "$W/restricted/profiles"
printf '[auth]\nmode = "off"\n[profiles]\ndefault = "restricted"\ndir = "%s/restricted/profiles"\n' "$W" >"$W/restricted/config.toml"
brig() { "$BRIG" --root "$W/state" --config "$W/config.toml" "$@"; }

# spec DIR ARGS_JSON RESOURCES_JSON CGROUPS_PATH (empty: none) [EXTRA_LINUX_JSON] [rootless UID GID]
spec() {
  dir=$1 args=$2 res=$3 cgpath=$4 extra=${5:-} mode=${6:-root}
  mkdir -p "$dir"
  cgline=
  [ -n "$cgpath" ] && cgline="    \"cgroupsPath\": \"$cgpath\","
  if [ "$mode" = rootless ]; then
    ns='{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"},{"type":"user"}'
    maps=",\"uidMappings\":[{\"containerID\":0,\"hostID\":$7,\"size\":1}],\"gidMappings\":[{\"containerID\":0,\"hostID\":$8,\"size\":1}]"
    sys='{"destination":"/sys","type":"none","source":"/sys","options":["rbind","nosuid","noexec","nodev","ro"]}'
    pts='"newinstance","ptmxmode=0666","mode=0620"'
  else
    ns='{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}'
    maps=
    sys='{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}'
    pts='"newinstance","ptmxmode=0666","mode=0620","gid=5"'
  fi
  cat >"$dir/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "root": {"path": "$rootfs", "readonly": true},
  "hostname": "v2check",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","strictatime","mode=755","size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid","noexec",$pts]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid","noexec","nodev","mode=1777","size=65536k"]},
    $sys,
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid","noexec","nodev","relatime","ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","nodev","size=16m"]}
  ],
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": $args,
    "env": ["PATH=/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_KILL","CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_KILL","CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_KILL","CAP_NET_BIND_SERVICE"]
    },
    "noNewPrivileges": true
  },
  "linux": {
$cgline
    "resources": $res,
    "namespaces": [$ns]$maps$extra,
    "maskedPaths": ["/proc/kcore","/proc/keys","/sys/firmware"],
    "readonlyPaths": ["/proc/sys","/proc/sysrq-trigger"]
  }
}
EOF
}

# expect FILE WANT: the file's content (trimmed) equals WANT.
expect() {
  got=$(cat "$1" 2>&1)
  if [ "$got" = "$2" ]; then
    echo "ok: $1 = $2"
  else
    echo "MISMATCH: $1: want '$2', got '$got'"
    bad=1
  fi
}
# keyed FILE KEY: the value of KEY in a flat-keyed file (memory.events, cpu.stat).
keyed() { awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null; }
# wait_stopped ID [SECONDS]
wait_stopped() {
  i=0
  while [ $i -lt $((${2:-60} * 10)) ]; do
    brig state "$1" 2>/dev/null | grep -q '"status": *"stopped"' && return 0
    sleep 0.1
    i=$((i + 1))
  done
  echo "container $1 did not stop"
  brig state "$1"
  bad=1
  return 1
}
run_ok() { # log and run a command that must succeed
  echo "+ $*"
  "$@" || { echo "FAILED ($?): $*"; bad=1; return 1; }
}

# note TEXT: a fact worth seeing even when the check passes (summary line).
note() { echo "$*"; echo "$*" >>"$W/notes"; }

# check NAME FUNCTION: runs it with its output in a log; PASS unless it set bad=1.
check() {
  t0=$(now)
  bad=0
  skip=
  : >"$W/notes"
  "$2" >"$W/$1.log" 2>&1
  while IFS= read -r line; do echo "BRIG-VMTEST-INFO v2::$1: $line"; done <"$W/notes"
  if [ -n "$skip" ]; then
    echo "BRIG-VMTEST v2::$1 SKIP $(elapsed "$t0")s ($skip)"
  elif [ "$bad" = 0 ]; then
    echo "BRIG-VMTEST v2::$1 PASS $(elapsed "$t0")s"
  else
    echo "BRIG-VMTEST v2::$1 FAIL $(elapsed "$t0")s"
    echo "---- log of v2::$1"
    cat "$W/$1.log"
    echo "----"
    failures=$((failures + 1))
  fi
}

# -------------------------------------------------------------------- checks
memory_limits_and_oom() {
  spec "$W/mem" '["/bin/brig-probe","mem-bomb","1024"]' \
    '{"memory":{"limit":50331648,"swap":50331648,"reservation":16777216}}' /brig-v2/mem
  run_ok brig create --bundle "$W/mem" mem || return
  d=$CG/brig-v2/mem
  expect $d/memory.max 50331648
  expect $d/memory.low 16777216
  run_ok brig start mem
  wait_stopped mem 120
  oom=$(keyed $d/memory.events oom_kill)
  note "memory.events: $(tr '\n' ' ' <$d/memory.events)"
  [ "${oom:-0}" -gt 0 ] || { echo "MISMATCH: memory.events oom_kill = '$oom', want > 0"; bad=1; }
  st=$(brig state mem)
  echo "$st" | tr -d '\n' | grep -o '"outcome": *{[^}]*}'
  echo "$st" | tr -d '\n ' | grep -q '"oom_killed":true' || { echo "MISMATCH: brig.outcome.oom_killed is not true"; bad=1; }
  echo "$st" | tr -d '\n ' | grep -q '"signal":9' || { echo "MISMATCH: brig.outcome.signal is not 9"; bad=1; }
  run_ok brig delete mem
  [ ! -d $d ] || { echo "cgroup $d left after delete"; bad=1; }
}

pids_limit_enforced() {
  spec "$W/pids" '["/bin/brig-probe","fork-bomb"]' '{"pids":{"limit":20}}' /brig-v2/pids
  run_ok brig create --bundle "$W/pids" pids >"$W/pids.out" || return
  d=$CG/brig-v2/pids
  expect $d/pids.max 20
  run_ok brig start pids
  wait_stopped pids 60
  note "pids.events: $(cat $d/pids.events)"
  max=$(keyed $d/pids.events max)
  [ "${max:-0}" -gt 0 ] || { echo "MISMATCH: pids.events max = '$max', want > 0"; bad=1; }
  run_ok brig delete pids
  # The probe's own report, through `run`.
  spec "$W/pids2" '["/bin/brig-probe","fork-bomb"]' '{"pids":{"limit":20}}' /brig-v2/pids2
  out=$(brig run --bundle "$W/pids2" pids2 2>&1)
  note "fork bomb under pids.max 20: $out"
  n=$(echo "$out" | sed -n 's/.*errno=EAGAIN forked=\([0-9]*\).*/\1/p' | head -1)
  [ -n "$n" ] && [ "$n" -lt 20 ] || { echo "MISMATCH: want 'errno=EAGAIN forked=N' with N < 20"; bad=1; }
}

cpu_limits_enforced() {
  # A 4 s busy loop under a 20% quota.
  spec "$W/cpu" '["sh","-c","timeout 4 sh -c \"while :; do :; done\"; exit 0"]' \
    '{"cpu":{"quota":20000,"period":100000,"shares":512,"cpus":"0"}}' /brig-v2/cpu
  run_ok brig create --bundle "$W/cpu" cpu || return
  d=$CG/brig-v2/cpu
  expect $d/cpu.max "20000 100000"
  expect $d/cpu.weight 59
  expect $d/cpuset.cpus 0
  t0=$(now)
  run_ok brig start cpu
  wait_stopped cpu 60
  wall=$(elapsed "$t0")
  echo "cpu.stat: $(tr '\n' ' ' <$d/cpu.stat)"
  thr=$(keyed $d/cpu.stat nr_throttled)
  usage=$(keyed $d/cpu.stat usage_usec)
  [ "${thr:-0}" -gt 0 ] || { echo "MISMATCH: cpu.stat nr_throttled = '$thr', want > 0"; bad=1; }
  # 20% of the ~4 s the loop ran, with generous slack: well under 2 s of CPU.
  note "busy loop under cpu.max 20000 100000: usage ${usage}us, nr_throttled $thr, over ${wall}s wall"
  [ "${usage:-0}" -lt 2000000 ] || { echo "MISMATCH: usage_usec $usage, want < 2000000 (20% quota)"; bad=1; }
  run_ok brig delete cpu
}

update_on_v2() {
  spec "$W/upd" '["sleep","60"]' \
    '{"memory":{"limit":67108864,"swap":67108864},"pids":{"limit":42},"cpu":{"quota":50000,"period":100000}}' /brig-v2/upd
  run_ok brig run -d --bundle "$W/upd" upd >/dev/null || return
  d=$CG/brig-v2/upd
  expect $d/memory.max 67108864
  expect $d/pids.max 42
  run_ok brig update --memory 33554432 --memory-swap 33554432 --pids-limit 21 --cpu-quota 30000 upd
  expect $d/memory.max 33554432
  expect $d/pids.max 21
  expect $d/cpu.max "30000 100000"
  echo '{"pids":{"limit":7}}' | run_ok brig update --resources - upd
  expect $d/pids.max 7
  run_ok brig delete --force upd
}

profile_ceilings_on_v2() {
  # restricted's [cgroup] ceilings (memory 512m, memory_swap 512m, cpus 1.0,
  # pids 256) on a spec that asks for nothing.
  spec "$W/rst" '["sleep","60"]' '{}' /brig-v2/rst
  run_ok "$BRIG" --root "$W/state" --config "$W/restricted/config.toml" create --bundle "$W/rst" rst || return
  d=$CG/brig-v2/rst
  expect $d/memory.max 536870912
  expect $d/pids.max 256
  expect $d/cpu.max "100000 100000"
  run_ok brig delete --force rst
}

swap_equal_to_limit_disables_swap() {
  # OCI's memory.swap is v1's memory+swap: swap == limit means "no swap", which
  # runc writes on v2 as memory.swap.max = 0 (libcontainer/cgroups/fs2/memory.go).
  # Here: from the spec, from `brig update`, and from restricted's ceilings
  # (memory = memory_swap = 512m). Without it a job may swap without limit.
  spec "$W/swp" '["sleep","60"]' '{"memory":{"limit":50331648,"swap":50331648}}' /brig-v2/swp
  run_ok brig run -d --bundle "$W/swp" swp >/dev/null || return
  d=$CG/brig-v2/swp
  expect $d/memory.max 50331648
  expect $d/memory.swap.max 0
  run_ok brig update --memory 33554432 --memory-swap 33554432 swp
  expect $d/memory.max 33554432
  expect $d/memory.swap.max 0
  run_ok brig delete --force swp
  spec "$W/swr" '["sleep","60"]' '{}' /brig-v2/swr
  run_ok "$BRIG" --root "$W/state" --config "$W/restricted/config.toml" create --bundle "$W/swr" swr || return
  expect $CG/brig-v2/swr/memory.max 536870912
  expect $CG/brig-v2/swr/memory.swap.max 0
  run_ok brig delete --force swr
}

exec_joins_the_container_cgroup() {
  # A process started by `brig exec` must land in the container's cgroup (and
  # so under its limits), whether or not the bundle names a cgroupsPath (brig
  # picks /brig/<id> when it does not; Docker, Podman and containerd always
  # send one, plain `runc run`-style callers often do not).
  for case in default named; do
    if [ $case = named ]; then cgp=/brig-v2/exn want=/brig-v2/exn id=exn; else cgp='' want=/brig/exd id=exd; fi
    spec "$W/$id" '["sleep","60"]' '{"pids":{"limit":30}}' "$cgp"
    run_ok brig run -d --bundle "$W/$id" $id >/dev/null || continue
    init=$(brig state $id | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -1)
    run_ok brig exec --detach --pid-file "$W/$id.pid" $id sleep 30
    pid=$(cat "$W/$id.pid" 2>/dev/null)
    cg_init=$(sed -n 's/^0:://p' /proc/$init/cgroup 2>/dev/null)
    cg_exec=$(sed -n 's/^0:://p' /proc/$pid/cgroup 2>/dev/null)
    note "cgroupsPath '${cgp:-(none)}': init $init in $cg_init, exec'd $pid in $cg_exec"
    [ "$cg_init" = "$want" ] || { echo "MISMATCH: init in '$cg_init', want '$want'"; bad=1; }
    [ "$cg_exec" = "$want" ] || { echo "MISMATCH: exec'd process in '$cg_exec', want '$want' (the container's cgroup)"; bad=1; }
    run_ok brig delete --force $id
    leaked=$(find $CG -maxdepth 1 -name ":youki:$id*")
    [ -z "$leaked" ] || { echo "MISMATCH: cgroup left behind: $leaked"; bad=1; rmdir $leaked 2>/dev/null; }
  done
}

io_weight() {
  spec "$W/iow" '["sleep","60"]' '{"blockIO":{"weight":500}}' /brig-v2/iow
  run_ok brig create --bundle "$W/iow" iow || return
  d=$CG/brig-v2/iow
  if [ -f $d/io.bfq.weight ]; then
    expect $d/io.bfq.weight "default 500"
  else
    expect $d/io.weight "default 4950"
  fi
  # Through `update` libcgroups converts the weight itself: 17 overflowed
  # its 16-bit arithmetic (a panic in a debug build) before brig's patch.
  run_ok brig update --blkio-weight 17 iow
  if [ -f $d/io.bfq.weight ]; then
    expect $d/io.bfq.weight "default 17"
  else
    expect $d/io.weight "default 71"
  fi
  run_ok brig delete --force iow
}

io_max_enforced() {
  if [ ! -e /dev/loop-control ]; then
    skip="no loop device support in the guest kernel"
    return
  fi
  dd if=/dev/zero of=$W/disk.img bs=1M count=8 2>/dev/null
  dev=$(losetup -f)
  run_ok losetup "$dev" $W/disk.img || return
  majmin=$(cat /sys/class/block/${dev#/dev/}/dev)
  maj=${majmin%:*} min=${majmin#*:}
  echo "device $dev $majmin"
  # The job reads 3 MiB with O_DIRECT and prints how long it took.
  job='a=$(cut -d" " -f1 /proc/uptime); dd if=/dev/vdisk of=/dev/null bs=64k count=48 iflag=direct 2>&1; b=$(cut -d" " -f1 /proc/uptime); awk -v a=$a -v b=$b "BEGIN { printf \"elapsed=%.2f\\n\", b - a }"'
  devices=",\"devices\":[{\"path\":\"/dev/vdisk\",\"type\":\"b\",\"major\":$maj,\"minor\":$min,\"fileMode\":432,\"uid\":0,\"gid\":0}]"
  allow="\"devices\":[{\"allow\":false,\"access\":\"rwm\"},{\"allow\":true,\"type\":\"b\",\"major\":$maj,\"minor\":$min,\"access\":\"r\"}]"
  # Unthrottled first (the comparison), then at 1 MiB/s.
  spec "$W/io0" "[\"sh\",\"-c\",$(json_str "$job")]" "{$allow}" /brig-v2/io0 "$devices"
  out0=$(brig run --bundle "$W/io0" io0 2>&1)
  echo "unthrottled: $out0"
  spec "$W/io1" "[\"sh\",\"-c\",$(json_str "sleep 1; $job")]" \
    "{$allow,\"blockIO\":{\"throttleReadBpsDevice\":[{\"major\":$maj,\"minor\":$min,\"rate\":1048576}],\"throttleReadIOPSDevice\":[{\"major\":$maj,\"minor\":$min,\"rate\":1000}]}}" \
    /brig-v2/io1 "$devices"
  run_ok brig create --bundle "$W/io1" io1 >"$W/io1.out" 2>&1 || { cat "$W/io1.out"; losetup -d "$dev"; return; }
  d=$CG/brig-v2/io1
  echo "io.max: $(cat $d/io.max)"
  grep -q "^$maj:$min rbps=1048576 wbps=max riops=1000 wiops=max" $d/io.max ||
    { echo "MISMATCH: io.max, want '$maj:$min rbps=1048576 wbps=max riops=1000 wiops=max'"; bad=1; }
  run_ok brig start io1
  wait_stopped io1 60
  out1=$(cat "$W/io1.out")
  echo "throttled: $out1"
  echo "io.stat: $(cat $d/io.stat)"
  run_ok brig delete io1
  e0=$(echo "$out0" | sed -n 's/^elapsed=//p')
  e1=$(echo "$out1" | sed -n 's/^elapsed=//p')
  note "3 MiB of O_DIRECT reads from $dev: ${e0}s unthrottled, ${e1}s under rbps=1048576"
  [ -n "$e0" ] && [ -n "$e1" ] || { echo "MISMATCH: no elapsed time from the job"; bad=1; }
  if [ -n "$e1" ]; then
    awk -v t="$e1" 'BEGIN { exit !(t >= 2.0) }' || { echo "MISMATCH: 3 MiB at 1 MiB/s took ${e1}s, want >= 2 s"; bad=1; }
  fi
  losetup -d "$dev"
}

# A JSON string for a shell command (escapes \ and ").
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

devices_filtered() {
  # Opening is what the device program judges, so the job only opens the node,
  # for writing: reading /dev/kmsg needs CAP_SYSLOG as well, writing nothing.
  job='mknod /dev/k c 1 11 || exit 3; if (exec 3>/dev/k) 2>/dev/e; then echo OPENED; else echo "REFUSED: $(cat /dev/e)"; fi; echo x >/dev/null && echo NULL-OK'
  for kind in deny allow; do
    rules='{"allow":false,"access":"rwm"}'
    [ $kind = allow ] && rules="$rules,{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":11,\"access\":\"w\"}"
    spec "$W/dev-$kind" "[\"sh\",\"-c\",$(json_str "$job")]" "{\"devices\":[$rules]}" /brig-v2/dev-$kind
    # permissive runs the spec as written: the job may create device nodes.
    sed -i 's/"CAP_KILL"/"CAP_KILL","CAP_MKNOD"/g' "$W/dev-$kind/config.json"
    out=$(brig run --bundle "$W/dev-$kind" dev-$kind 2>&1)
    echo "$kind: $out"
    case "$kind:$out" in
      deny:*"REFUSED: "*"Operation not permitted"*NULL-OK*) note "outside the rules: $(echo "$out" | head -1)" ;;
      allow:*OPENED*NULL-OK*) ;;
      *) echo "MISMATCH: $kind: want $([ $kind = deny ] && echo 'REFUSED: ... Operation not permitted' || echo OPENED) and NULL-OK"; bad=1 ;;
    esac
    brig delete --force dev-$kind >/dev/null 2>&1
  done
  # An update keeps the job's device rules: libcgroups builds the program
  # again from the update's rules alone, which took the grant back.
  allow='{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":11,"access":"w"}'
  spec "$W/dev-upd" '["sleep","60"]' "{\"devices\":[$allow]}" /brig-v2/dev-upd
  sed -i 's/"CAP_KILL"/"CAP_KILL","CAP_MKNOD"/g' "$W/dev-upd/config.json"
  run_ok brig run -d --bundle "$W/dev-upd" dev-upd >/dev/null || return
  run_ok brig update --memory 268435456 dev-upd
  out=$(brig exec dev-upd sh -c 'mknod /dev/k c 1 11; if (exec 3>/dev/k); then echo OPENED; fi' 2>&1)
  echo "after update: $out"
  case "$out" in *OPENED*) ;; *) echo "MISMATCH: after update: want OPENED"; bad=1 ;; esac
  brig delete --force dev-upd >/dev/null 2>&1
}

rootless_delegated() {
  uid=1000 gid=1000
  home=$W/rootless
  mkdir -p "$home"
  config "$home"
  chown -R $uid:$gid "$home"
  # The delegated subtree (as systemd delegates user@.service): the directory
  # and its cgroup.procs, cgroup.threads and cgroup.subtree_control belong to
  # the user; the user's own processes live in a leaf (`session`), so that the
  # subtree's root can enable controllers for its children.
  dg=$CG/brig-v2-user
  mkdir -p $dg/session
  echo "+cpu +memory +pids +io" >$dg/cgroup.subtree_control
  chown $uid:$gid $dg $dg/cgroup.procs $dg/cgroup.threads $dg/cgroup.subtree_control
  chown -R $uid:$gid $dg/session
  spec "$home/b" '["/bin/brig-probe","fork-bomb"]' '{"pids":{"limit":16},"memory":{"limit":33554432}}' \
    /brig-v2-user/c1 "" rootless $uid $gid
  spec "$home/s" '["sleep","60"]' '{"pids":{"limit":16},"memory":{"limit":33554432},"cpu":{"quota":10000,"period":100000}}' \
    /brig-v2-user/c2 "" rootless $uid $gid
  chown -R $uid:$gid "$home"
  # Into the session leaf as root, then su to the user (busybox has no
  # setpriv --reuid); the brig process and its children stay in the subtree.
  as_user() {
    sh -c 'echo $$ >"$0/session/cgroup.procs" && exec su -s /bin/sh -c "exec \"\$@\"" -- brig as_user "$@"' "$dg" \
      env HOME="$home" XDG_RUNTIME_DIR="$home" "$BRIG" --root "$home/state" --config "$home/config.toml" "$@"
  }
  echo "+ (uid $uid) brig run -d c2"
  as_user run -d --bundle "$home/s" c2
  rc=$?
  if [ $rc != 0 ]; then
    echo "FAILED: rootless brig run exited $rc"
    bad=1
  else
    expect $dg/c2/pids.max 16
    expect $dg/c2/memory.max 33554432
    expect $dg/c2/cpu.max "10000 100000"
    # An update as the user (it cannot load a device program either).
    echo "+ (uid $uid) brig update --pids-limit 12 c2"
    as_user update --pids-limit 12 c2 || { echo "FAILED: rootless brig update"; bad=1; }
    expect $dg/c2/pids.max 12
    pid=$(as_user state c2 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -1)
    note "rootless init (pid $pid) $(grep -E '^Uid' /proc/$pid/status 2>/dev/null | tr '\t' ' '), in $(cat /proc/$pid/cgroup 2>/dev/null), uid_map $(tr -s ' ' <"/proc/$pid/uid_map" 2>/dev/null)"
    note "limits in the delegated subtree: pids.max $(cat $dg/c2/pids.max), memory.max $(cat $dg/c2/memory.max), cpu.max $(cat $dg/c2/cpu.max)"
    grep -qx "$pid" $dg/c2/cgroup.procs || { echo "MISMATCH: init $pid not in $dg/c2/cgroup.procs"; bad=1; }
    echo "+ (uid $uid) brig delete --force c2"
    as_user delete --force c2 || bad=1
  fi
  echo "+ (uid $uid) brig run c1 (fork bomb, pids 16)"
  out=$(as_user run --bundle "$home/b" c1 2>&1)
  note "rootless fork bomb under pids.max 16: $out"
  n=$(echo "$out" | sed -n 's/.*errno=EAGAIN forked=\([0-9]*\).*/\1/p' | head -1)
  [ -n "$n" ] && [ "$n" -lt 16 ] || { echo "MISMATCH: want 'errno=EAGAIN forked=N' with N < 16"; bad=1; }
  for c in $dg/c1 $dg/c2; do [ ! -d $c ] || { echo "cgroup $c left behind"; bad=1; }; done
  rmdir $dg/c1 $dg/c2 2>/dev/null
  rmdir $dg/session $dg 2>/dev/null
}

echo "BRIG-VMTEST-INFO unprivileged user namespaces: $(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo n/a), max_user_namespaces $(cat /proc/sys/user/max_user_namespaces)"
check memory_limits_and_oom memory_limits_and_oom
check pids_limit_enforced pids_limit_enforced
check cpu_limits_enforced cpu_limits_enforced
check update_on_v2 update_on_v2
check profile_ceilings_on_v2 profile_ceilings_on_v2
check swap_equal_to_limit_disables_swap swap_equal_to_limit_disables_swap
check exec_joins_the_container_cgroup exec_joins_the_container_cgroup
check io_weight io_weight
check io_max_enforced io_max_enforced
check devices_filtered devices_filtered
check rootless_delegated rootless_delegated
# Leave nothing: remove our containers and cgroups whatever happened.
for id in $(brig list -q 2>/dev/null); do brig delete --force "$id" >/dev/null 2>&1; done
rmdir $CG/brig-v2/* $CG/brig-v2 2>/dev/null
rmdir $CG/brig/exd $CG/brig 2>/dev/null
exit $failures
