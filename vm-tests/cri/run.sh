#!/usr/bin/env bash
# brig behind containerd's CRI plugin, driven as the kubelet drives it: a pod
# sandbox and containers with the runtime handler `brig` (what a Kubernetes
# `RuntimeClass: brig` selects), through the CRI gRPC API (runtime.v1).
#
# Usage (as root, Debian 12; CI runs it so):
#   vm-tests/cri/run.sh BRIG_BINARY
#
# What it does (docs/kubernetes.md explains what this proves):
#   1. installs what is missing (containerd 1.6, runc, containernetworking-
#      plugins, busybox-static, protobuf-compiler, jq, iproute2) and builds the
#      test client vm-tests/cri (Rust: k8s-cri + tonic; its own Cargo.lock,
#      not a member of brig's workspace) into target/cri/ (about 1 min clean).
#   2. copies BRIG_BINARY to $STATE/brig/bin/brig and writes a brig config
#      ([auth] mode = "off", [profiles] default = "restricted") and a wrapper
#      `exec brig --config CONF "$@"`: the handler's BinaryName.
#   3. builds a busybox root filesystem and, from it, an image archive in
#      `docker save` format written by hand (no registry, no docker) with two
#      images sharing one layer: docker.io/library/brig-busybox:latest, and the
#      pod sandbox's "pause" image docker.io/library/brig-pause:latest
#      (`sleep infinity`).
#   4. starts containerd with the CRI plugin on containerd's default socket,
#      root and state (/run/containerd/containerd.sock, /var/lib/containerd,
#      /run/containerd, as on a node; refuses to run while another containerd
#      answers there, e.g. vm-tests/clients/setup.sh's): sandbox_image
#      brig-pause, a CNI config in $STATE/cni (bridge `brigcri0` without a
#      host address, host-local IPAM 10.231.0.0/24, no masquerading, no
#      forwarding), restrict_oom_score_adj (root lacks CAP_SYS_RESOURCE here),
#      and the runtime handler
#        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.brig]
#          runtime_type = "io.containerd.runc.v2"
#          pod_annotations = ["dev.brig.*"]; container_annotations = ["dev.brig.*"]
#          options: BinaryName = the wrapper (Root: the shim's default, so
#          brig's state root is /run/containerd/runc/k8s.io)
#      and imports the images into its `k8s.io` namespace.
#   5. runs the client (`brig-cri-test`), one pod per profile in
#      $BRIG_CRI_PROFILES, chosen by the pod annotation dev.brig.profile (with
#      dev.brig.timeout=5m, and example.com/not-passed, which must not reach
#      the spec): RunPodSandbox with handler brig; PodSandboxStatus; the
#      sandbox's annotations and profile in `brig state`; a job container
#      (exit code, its CRI log: NoNewPrivs, Seccomp, CapEff, uid_map, network
#      interfaces and addresses, read-only rootfs); a long-running container
#      (container annotation dev.brig.timeout=2m in `brig state`, ExecSync with
#      exit codes 0 and 3, StopContainer of a job handling SIGTERM -> 143); a container whose annotation
#      dev.brig.timeout=2s brig enforces; RemoveContainer, StopPodSandbox,
#      RemovePodSandbox; nothing left in CRI or brig. One line per check,
#      PASS or FAIL.
#   6. checks from the host that nothing is left (brig's root, containerd
#      tasks, cgroups under the pod's cgroup parent /brig-cri-test, the pod's
#      network namespace), then stops containerd and the shims (by their pids),
#      removes the images and the k8s.io namespace, the CRI plugin's
#      directories, the bridge, and everything in $STATE except the logs:
#      cri-test.log (client output), containerd.log, summary.txt.
#
# Environment:
#   BRIG_CRI_PROFILES  profiles to run a pod with (default
#                      restricted,standard,permissive)
#   BRIG_CRI_STATE     state directory (default /run/brig-cri)
#   BRIG_CRI_NO_APT=1  do not install packages
#   BRIG_CRI_CLIENT    a prebuilt brig-cri-test (skips cargo)
#   BRIG_CRI_KEEP=1    leave containerd running (socket above, pid in
#                      $STATE/containerd.pid) for a look; running the script
#                      again cleans up first
#   BRIG_CRI_TIMEOUT   seconds allowed to the client (default 300)
#
# Exit 0 if every check passed, 1 if one failed, 2 on a usage or setup error.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# log, die, wait_for, CLEAN_ENV, close_extra_fds, pid_alive.
# shellcheck source=SCRIPTDIR/../clients/lib.sh
source "$HERE/../clients/lib.sh"
close_extra_fds

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case ${1:-} in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
[[ $# -eq 1 ]] || { usage >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run.sh: run as root" >&2; exit 2; }
BRIG_SRC=$(readlink -f -- "$1") || true
[[ -n $BRIG_SRC && -f $BRIG_SRC && -x $BRIG_SRC ]] || { echo "run.sh: $1 is not an executable file" >&2; exit 2; }
cd / || exit 2

STATE="${BRIG_CRI_STATE:-/run/brig-cri}"
PROFILES="${BRIG_CRI_PROFILES:-restricted,standard,permissive}"
# containerd's default socket, root and state, as on a Kubernetes node. They
# matter: brig's restricted profile accepts the CRI plugin's bind mounts
# (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev/shm) only from
# /var/lib/containerd/io.containerd.grpc.v1.cri/ and
# /run/containerd/io.containerd.grpc.v1.cri/ (profiles/src/clients.rs).
# vm-tests/clients runs a containerd on the same paths (CRI disabled): this
# script refuses to start while one answers.
SOCK=/run/containerd/containerd.sock
CROOT=/var/lib/containerd
CSTATE=/run/containerd
# The runc shim's default root: brig's --root is $RUNC_ROOT/k8s.io.
RUNC_ROOT=/run/containerd/runc
BDIR="$STATE/brig"
BRIG="$BDIR/bin/brig"
WRAP="$BDIR/brig"
CNI_DIR="$STATE/cni"
BRIDGE=brigcri0
CGROUP_PARENT=/brig-cri-test   # the pod's cgroup parent (kubelet's /kubepods/... with cgroupfs)
SUMMARY="$STATE/summary.txt"
CLIENT_LOG="$STATE/cri-test.log"
CTR_K8S=("${CLEAN_ENV[@]}" "$CTR" --address "$SOCK" -n k8s.io)
PAUSE_REF=docker.io/library/brig-pause:latest
IMAGE_REF=docker.io/library/brig-busybox:latest
T0=$(date +%s)
declare -A TIMES

# ------------------------------------------------------------ cleanup
# Everything this script made, undone; safe to run when nothing was made.
stop_pid() { # PIDFILE NAME: SIGTERM, then SIGKILL, by the recorded pid only
  local pidfile=$1 name=$2 pid i
  pid_alive "$pidfile" "$name" || { rm -f "$pidfile"; return 0; }
  pid=$(<"$pidfile")
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
  rm -f "$pidfile"
}
# Umounts every mount point under DIR, deepest first.
umount_under() {
  local dir=$1 m
  [[ -d $dir ]] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}
# rmdir the cgroup parent in every hierarchy, children first.
remove_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [[ -d $h$CGROUP_PARENT ]] || continue
    find "$h$CGROUP_PARENT" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}
leftover_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [[ -d $h$CGROUP_PARENT ]] && find "$h$CGROUP_PARENT" -mindepth 1 -type d
  done 2>/dev/null
}
ours_up() { pid_alive "$STATE/containerd.pid" containerd && containerd_up_here; }
cleanup_pods() {
  # What the client did not remove (it stopped early): through containerd,
  # while it and the runtime still run, so that brig deletes its state. Only
  # ever with the containerd this script started.
  ours_up || return 0
  local c
  for c in $("${CTR_K8S[@]}" tasks ls -q 2>/dev/null); do
    timeout 30 "${CTR_K8S[@]}" tasks kill -s SIGKILL "$c" >/dev/null 2>&1
    timeout 30 "${CTR_K8S[@]}" tasks delete -f "$c" >/dev/null 2>&1
  done
  for c in $("${CTR_K8S[@]}" containers ls -q 2>/dev/null); do
    timeout 30 "${CTR_K8S[@]}" containers rm "$c" >/dev/null 2>&1
  done
  timeout 60 "${CTR_K8S[@]}" images rm --sync "$IMAGE_REF" "$PAUSE_REF" >/dev/null 2>&1
  timeout 30 "${CLEAN_ENV[@]}" "$CTR" --address "$SOCK" namespaces rm k8s.io >/dev/null 2>&1
}
cleanup() {
  cleanup_pods
  local ours=0 f
  [[ -s $STATE/containerd.pid ]] && ours=1
  stop_pid "$STATE/containerd.pid" containerd
  # Shims outlive containerd by design: stop ours (namespace k8s.io) by the
  # pids they recorded.
  for f in "$CSTATE"/io.containerd.runtime.v2.task/k8s.io/*/shim.pid; do
    [[ -s $f ]] && stop_pid "$f" containerd-shim-runc-v2
  done
  # Anything brig still has under the handler's root (it should be empty).
  if [[ -x $WRAP && -d $RUNC_ROOT/k8s.io ]]; then
    for f in "$RUNC_ROOT"/k8s.io/*/; do
      [[ -d $f ]] && timeout 30 "$WRAP" --root "$RUNC_ROOT/k8s.io" delete --force "$(basename "$f")" >/dev/null 2>&1
    done
  fi
  # Network namespaces the CRI plugin created during this run.
  if [[ -s $STATE/netns.before ]]; then
    local ns
    for ns in /var/run/netns/cni-*; do
      [[ -e $ns ]] || continue
      grep -qxF "$ns" "$STATE/netns.before" && continue
      umount "$ns" 2>/dev/null; rm -f "$ns"
    done
  fi
  ip link del "$BRIDGE" 2>/dev/null
  remove_cgroups
  if ((ours)); then
    # The CRI plugin's own directories (the containerd of vm-tests/clients
    # runs without it) and the k8s.io task and runc state.
    umount_under "$CSTATE/io.containerd.runtime.v2.task/k8s.io"
    umount_under "$CSTATE/io.containerd.grpc.v1.cri"
    umount_under "$CROOT/io.containerd.grpc.v1.cri"
    rm -rf "$CSTATE/io.containerd.runtime.v2.task/k8s.io" "$CSTATE/io.containerd.grpc.v1.cri" \
      "$CROOT/io.containerd.grpc.v1.cri" "$RUNC_ROOT/k8s.io"
  fi
  umount_under "$STATE"
  if ((ours)) && ! containerd_up_here; then
    # containerd's own leftovers: the ttrpc socket, empty state directories,
    # and the root and state directories themselves if this run created them.
    rm -f "$SOCK.ttrpc"
    rmdir "$RUNC_ROOT" "$CSTATE"/io.containerd.runtime.v2.task "$CSTATE"/io.containerd.runtime.v1.linux \
      2>/dev/null
    local d
    while read -r d; do
      [[ $d == "$CROOT" || $d == "$CSTATE" ]] || continue
      umount_under "$d"
      rm -rf "$d"
    done < <(cat "$STATE/created-dirs" 2>/dev/null)
  fi
  # Keep the logs and the summary; drop the rest.
  rm -rf "$BDIR" "$CNI_DIR" "$STATE/images" "$STATE/pods" "$STATE/containerd.toml" "$STATE/netns.before" \
    "$STATE/created-dirs"
}
CLIENT_PID=""
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $CLIENT_PID ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then
    kill -TERM "$CLIENT_PID" 2>/dev/null
    wait "$CLIENT_PID" 2>/dev/null
  fi
  if [[ ${BRIG_CRI_KEEP:-0} == 1 ]]; then
    log "BRIG_CRI_KEEP=1: containerd (pid $(cat "$STATE/containerd.pid" 2>/dev/null)) and the pod stay; socket $SOCK"
    exit "$rc"
  fi
  cleanup
  exit "$rc"
}
containerd_up_here() {
  [[ -S $SOCK ]] && "${CLEAN_ENV[@]}" "$CTR" --address "$SOCK" --connect-timeout 2s --timeout 5s version >/dev/null 2>&1
}
stamp() { TIMES[$1]=$(($(date +%s) - T0)); }

# A previous run that was killed: clean up first.
if [[ -d $STATE ]]; then
  log "cleaning up what an earlier run left in $STATE"
  cleanup
fi
if containerd_up_here; then
  log "a containerd answers on $SOCK (vm-tests/clients/setup.sh's?): stop it first (vm-tests/clients/teardown.sh)"
  exit 2
fi
mkdir -p "$STATE" "$BDIR/bin" "$BDIR/profiles" "$CNI_DIR/net.d" "$STATE/pods" || exit 2
chmod 0755 "$STATE" "$BDIR" "$BDIR/bin"
trap finish EXIT
trap 'exit 130' INT TERM
: >"$CLIENT_LOG"; : >"$STATE/containerd.log"; rm -f "$SUMMARY"

# ----------------------------------------------------------- packages
PACKAGES=(containerd runc containernetworking-plugins busybox-static protobuf-compiler jq iproute2)
if [[ ${BRIG_CRI_NO_APT:-0} != 1 ]]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -q >&2 || die "apt-get update failed"
    # No maintainer script may start containerd (see vm-tests/clients/setup.sh).
    prc=/usr/sbin/policy-rc.d created_prc=0
    if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 0755 "$prc"; created_prc=1; fi
    timeout 900 apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >&2
    rc=$?
    ((created_prc)) && rm -f "$prc"
    ((rc == 0)) || { log "apt-get install failed"; exit 2; }
  fi
fi
for b in containerd containerd-shim-runc-v2 ctr busybox jq ip; do
  command -v "$b" >/dev/null || { log "$b not found"; exit 2; }
done
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
  { log "CNI plugins missing in /usr/lib/cni (containernetworking-plugins)"; exit 2; }
stamp packages

# ------------------------------------------------------------- client
CLIENT=${BRIG_CRI_CLIENT:-}
if [[ -z $CLIENT ]]; then
  log "building the CRI test client (cargo, target/cri)"
  command -v protoc >/dev/null || { log "protoc missing (protobuf-compiler)"; exit 2; }
  if ! timeout 1200 cargo build -q --locked --manifest-path "$HERE/Cargo.toml" --target-dir "$REPO/target/cri" >&2; then
    log "cargo build of vm-tests/cri failed"; exit 2
  fi
  CLIENT="$REPO/target/cri/debug/brig-cri-test"
fi
[[ -x $CLIENT ]] || { log "no client at $CLIENT"; exit 2; }
stamp client

# ------------------------------------------------------------ brig
install -m 0755 "$BRIG_SRC" "$BRIG" || exit 2
cat >"$BDIR/brig.toml" <<EOF
# Generated by vm-tests/cri/run.sh: the CRI handler "brig".
[auth]
mode = "off"
[profiles]
default = "restricted"
dir = "$BDIR/profiles"
EOF
# `standard` sets RLIMIT_NOFILE to 65536 when the spec has none (the CRI
# plugin sends none); on a host whose root lacks CAP_SYS_RESOURCE (this one:
# hard limit 20000) brig lowers the profile's default to the host's hard limit
# and records it, so the built-in profile is used as is.
# The runc shim calls BinaryName with runc's argv; global flags must precede
# the subcommand, so --config goes first.
printf '#!/bin/sh\n# Generated by vm-tests/cri/run.sh\nexec %q --config %q "$@"\n' "$BRIG" "$BDIR/brig.toml" >"$WRAP"
chmod 0755 "$WRAP"

# ------------------------------------------------------------ images
# A busybox root filesystem, then a `docker save`-format archive by hand:
# one layer, two image configs, manifest.json with the repository tags.
build_images() {
  local img="$STATE/images" rootfs bb applet layer_sha cfg_bb cfg_pause
  rootfs="$img/rootfs"
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/tmp,run} "$img/out" || return 1
  chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
  bb=$(command -v busybox)
  install -m 0755 "$bb" "$rootfs/bin/busybox" || return 1
  while read -r applet; do
    [[ -n $applet && $applet != bin/busybox && ! -e $rootfs/$applet ]] && ln -s /bin/busybox "$rootfs/$applet"
  done < <("$bb" --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n' >"$rootfs/etc/group"
  : >"$rootfs/etc/hosts"; : >"$rootfs/etc/resolv.conf"; echo brig >"$rootfs/etc/hostname"
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$rootfs" -cf "$img/layer.tar" . || return 1
  layer_sha=$(sha256sum "$img/layer.tar" | cut -d' ' -f1)
  mkdir -p "$img/out/$layer_sha" && mv "$img/layer.tar" "$img/out/$layer_sha/layer.tar"
  # config IMAGE-CONFIG-JSON-ARGS...: writes the config, prints its digest.
  config() {
    local c sha
    c=$(jq -cn --arg d "sha256:$layer_sha" "$@" '{architecture: "amd64", os: "linux",
        config: ({Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]} + $cfg),
        rootfs: {type: "layers", diff_ids: [$d]}}') || return 1
    sha=$(printf '%s' "$c" | sha256sum | cut -d' ' -f1)
    printf '%s' "$c" >"$img/out/$sha.json"
    echo "$sha"
  }
  cfg_bb=$(config --argjson cfg '{"Cmd": ["/bin/sh"]}') || return 1
  # The sandbox's pid 1 only holds the pod's namespaces (what pause does).
  cfg_pause=$(config --argjson cfg '{"Entrypoint": ["/bin/sleep", "infinity"]}') || return 1
  jq -n --arg l "$layer_sha/layer.tar" --arg b "$cfg_bb.json" --arg p "$cfg_pause.json" \
    '[{Config: $b, RepoTags: ["brig-busybox:latest"], Layers: [$l]},
      {Config: $p, RepoTags: ["brig-pause:latest"], Layers: [$l]}]' >"$img/out/manifest.json" || return 1
  tar -C "$img/out" -cf "$img/images.tar" . || return 1
}
build_images || { log "building the images failed"; exit 2; }
stamp images

# ----------------------------------------------------------- containerd
cat >"$CNI_DIR/net.d/10-brig-cri.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "brig-cri",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.231.0.0/24" }]],
        "dataDir": "$CNI_DIR/ipam"
      }
    }
  ]
}
EOF
cat >"$STATE/containerd.toml" <<EOF
# Generated by vm-tests/cri/run.sh: containerd with the CRI plugin and the
# runtime handler "brig". Its own socket, root and state.
version = 2
root = "$CROOT"
state = "$CSTATE"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  # Root lacks CAP_SYS_RESOURCE on this machine: the sandbox's default
  # oom_score_adj (-998) cannot be set; clamp to containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_DIR/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.brig]
      runtime_type = "io.containerd.runc.v2"
      # Pod and container annotations that reach the OCI spec (brig's job contract).
      pod_annotations = ["dev.brig.*"]
      container_annotations = ["dev.brig.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.brig.options]
        BinaryName = "$WRAP"
        SystemdCgroup = false
EOF
for d in "$CROOT" "$CSTATE"; do [[ -e $d ]] || echo "$d"; done >"$STATE/created-dirs"
ls -d /var/run/netns/cni-* 2>/dev/null >"$STATE/netns.before"; echo "#" >>"$STATE/netns.before"
log "containerd: starting (config $STATE/containerd.toml, log $STATE/containerd.log)"
setsid "${CLEAN_ENV[@]}" containerd --config "$STATE/containerd.toml" </dev/null >>"$STATE/containerd.log" 2>&1 &
echo $! >"$STATE/containerd.pid"
if ! wait_for containerd 30 containerd_up_here; then
  tail -n 30 "$STATE/containerd.log" >&2
  log "containerd did not answer on $SOCK within 30 s"; exit 2
fi
if ! timeout 120 "${CTR_K8S[@]}" images import "$STATE/images/images.tar" >/dev/null; then
  log "ctr images import failed"; exit 2
fi
image_listed() { "${CTR_K8S[@]}" images ls -q | grep -qxF "$1"; }
for ref in "$IMAGE_REF" "$PAUSE_REF"; do
  # The CRI plugin relabels an imported image (ImageUpdate events) after
  # `ctr images import` returns; a listing in between can miss it.
  wait_for "$ref" 10 image_listed "$ref" || { log "$ref missing after import"; exit 2; }
done
rm -rf "$STATE/images"
stamp containerd
log "containerd up with CRI, images imported ($((TIMES[containerd] - TIMES[images])) s)"

# ------------------------------------------------------------- the test
log "running the CRI client"
# In the background with `wait`, so that INT/TERM reach the trap at once
# (finish stops the client, then cleans up what it left).
timeout --kill-after=10 "${BRIG_CRI_TIMEOUT:-300}" "$CLIENT" \
  --socket "$SOCK" --handler brig --image "$IMAGE_REF" \
  --log-dir "$STATE/pods" --cgroup-parent "$CGROUP_PARENT" --profiles "$PROFILES" \
  --brig "$WRAP" --brig-root "$RUNC_ROOT/k8s.io" >"$CLIENT_LOG" 2>&1 &
CLIENT_PID=$!
tail -n +1 -f --pid="$CLIENT_PID" "$CLIENT_LOG" &
tail_pid=$!
wait "$CLIENT_PID"
client_rc=$?
CLIENT_PID=""
wait "$tail_pid"  # (not a bare `wait`: containerd is a background job too)
stamp test

# ---------------------------------------------------- host-side checks
host_pass=0 host_fail=0
host_check() { # NAME OK DETAIL
  if [[ $2 == 1 ]]; then echo "PASS $1"; ((host_pass++)); else echo "FAIL $1: $3"; ((host_fail++)); fi
}
if [[ $client_rc -le 1 ]]; then
  # brig keeps its staging directories (.staging/slots/N, emptied after each
  # create) and deleted containers' emptied directories (.staging/free/*,
  # reused by later creates) in its root; anything else there (a container, a
  # create's .staging/<id>.lock, a file in either) is a leftover.
  st="$RUNC_ROOT/k8s.io/.staging"
  left=$(find "$RUNC_ROOT/k8s.io" -mindepth 1 -maxdepth 4 ! -path "$st" ! -path "$st/slots" ! -path "$st/slots/*" \
    ! -path "$st/free" ! -path "$st/free/*" 2>/dev/null
    find "$st/slots" "$st/free" -mindepth 2 2>/dev/null)
  left=$(echo "$left" | tr '\n' ' ' | sed 's/ *$//')
  host_check "host: no container left under brig's root $RUNC_ROOT/k8s.io" "$([[ -z $left ]] && echo 1)" "$left"
  left=$("${CTR_K8S[@]}" tasks ls -q 2>/dev/null | tr '\n' ' ')
  host_check "host: no containerd task left" "$([[ -z $left ]] && echo 1)" "$left"
  left=$(leftover_cgroups | tr '\n' ' ')
  host_check "host: no cgroup left under $CGROUP_PARENT" "$([[ -z $left ]] && echo 1)" "$left"
  left=$(for ns in /var/run/netns/cni-*; do [[ -e $ns ]] && ! grep -qxF "$ns" "$STATE/netns.before" && echo "$ns"; done | tr '\n' ' ')
  host_check "host: the pod's network namespace is removed" "$([[ -z $left ]] && echo 1)" "$left"
fi 2>&1 | tee -a "$CLIENT_LOG"
read -r passed failed < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { p = $1; f = $3 }
  /^PASS host:/ { p++ } /^FAIL host:/ { f++ } END { print p + 0, f + 0 }' "$CLIENT_LOG")
[[ $client_rc -eq 0 || $client_rc -eq 1 ]] || { echo "FAIL client exited with $client_rc (timeout or crash)"; ((failed++)); }

{
  echo "brig through containerd CRI ($(containerd --version | awk '{print $3}'), handler brig; pods under $PROFILES)"
  grep '^FAIL' "$CLIENT_LOG" | cut -c1-300
  echo "  packages ${TIMES[packages]} s, client build $((TIMES[client] - TIMES[packages])) s, images $((TIMES[images] - TIMES[client])) s,"
  echo "  containerd + import $((TIMES[containerd] - TIMES[images])) s, CRI scenario $((TIMES[test] - TIMES[containerd])) s, total $(($(date +%s) - T0)) s"
  echo "cri: $passed passed, $failed failed"
} | tee "$SUMMARY"
((failed == 0 && client_rc == 0))
