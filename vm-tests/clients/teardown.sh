#!/usr/bin/env bash
# Undo vm-tests/clients/setup.sh: remove the containers of docker, podman and
# containerd (namespace "default"), the brig-busybox images, stop the daemons
# that setup.sh started (by the PIDs it recorded, never by name), remove the
# network leftovers of dockerd (docker0, DOCKER iptables chains, ip_forward),
# leftover mounts under the clients' directories and empty cgroups they made,
# then the state directory.
#
# Usage: vm-tests/clients/teardown.sh [--keep-images] [--keep-state] [--purge]
#   --keep-images  leave the imported images in the three stores
#   --keep-state   leave $BRIG_VMTESTS_STATE (logs, configs) in place
#   --purge        also delete the stores (/var/lib/docker, /var/lib/containerd,
#                  podman's storage): a machine as before setup.sh, packages aside
# Exit status: 0 when everything is clean, 1 when something was left (listed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
close_extra_fds
[[ $(id -u) -eq 0 ]] || die "run as root"

KEEP_IMAGES=0 KEEP_STATE=0 PURGE=0
while (($#)); do
  case $1 in
    --keep-images) KEEP_IMAGES=1 ;;
    --keep-state) KEEP_STATE=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done

STATE="$BRIG_VMTESTS_STATE"
export CONTAINERS_CONF="$STATE/containers.conf"
LEFT=()   # what could not be cleaned

# run CMD with a time limit and without failing the whole teardown
try() { timeout --kill-after=5 "${TRY_TIMEOUT:-60}" "$@" || log "warning: '$*' failed ($?)"; }

# stop_pid NAME PIDFILE EXE TIMEOUT: SIGTERM, wait, SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 exe=$3 timeout=$4 pid
  if ! pid_alive "$pidfile" "$exe"; then
    [[ -e $pidfile ]] && log "$name: not running (stale $pidfile)"
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for "$name exit" "$timeout" bash -c "! kill -0 $pid"; then
    log "$name: still alive after ${timeout}s, SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for "$name exit" 10 bash -c "! kill -0 $pid" || LEFT+=("$name pid $pid")
  fi
  rm -f "$pidfile"
}

# ------------------------------------------------------------- containers
if dockerd_up >/dev/null; then
  ids=$("$DOCKER" ps -aq)
  if [[ -n $ids ]]; then
    log "docker: removing containers: $(tr '\n' ' ' <<<"$ids")"
    # shellcheck disable=SC2086
    try "$DOCKER" rm -f $ids >/dev/null
  fi
  if ((!KEEP_IMAGES)); then
    "$DOCKER" image inspect "$IMAGE_NAME:$IMAGE_TAG" >/dev/null 2>&1 &&
      try "$DOCKER" rmi -f "$IMAGE_NAME:$IMAGE_TAG" >/dev/null
  fi
fi

if command -v "$PODMAN" >/dev/null && [[ -s $CONTAINERS_CONF ]]; then
  ids=$("${CLEAN_ENV[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" timeout 60 "$PODMAN" ps -aq 2>/dev/null || true)
  if [[ -n $ids ]]; then
    log "podman: removing containers: $(tr '\n' ' ' <<<"$ids")"
    try "${CLEAN_ENV[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" "$PODMAN" rm -f -t 0 -a >/dev/null
  fi
  if ((!KEEP_IMAGES)); then
    "${CLEAN_ENV[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" "$PODMAN" image exists "localhost/$IMAGE_NAME:$IMAGE_TAG" 2>/dev/null &&
      try "${CLEAN_ENV[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" "$PODMAN" rmi -f "localhost/$IMAGE_NAME:$IMAGE_TAG" >/dev/null
  fi
  if ((PURGE)); then
    try "${CLEAN_ENV[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" "$PODMAN" system reset -f >/dev/null
  fi
fi

if containerd_up; then
  # "default": ctr's namespace. "moby": dockerd's; after `docker rm -f` of
  # everything, whatever is left there is a leak (docker 20.10 forgets a task
  # whose `start` failed: it stays "created", shim and runc init alive).
  for ns in default moby; do
    C=("$CTR" --address "$CONTAINERD_SOCK" -n "$ns")
    for t in $("${C[@]}" tasks ls -q 2>/dev/null); do
      log "containerd: deleting task $ns/$t"
      "${C[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
      try "${C[@]}" tasks delete -f "$t" >/dev/null
    done
    for c in $("${C[@]}" containers ls -q 2>/dev/null); do
      log "containerd: removing container $ns/$c"
      try "${C[@]}" containers delete "$c" >/dev/null
    done
  done
  if ((!KEEP_IMAGES)); then
    C=("$CTR" --address "$CONTAINERD_SOCK" -n default)
    "${C[@]}" images ls -q | grep -qx "$CTR_IMAGE_REF" && try "${C[@]}" images rm "$CTR_IMAGE_REF" >/dev/null
  fi
fi

# Containers the runtime still knows although their client forgot them, e.g.
# docker 20.10 after a failed `start`: the task stays "created" (runc init
# waiting on its fifo, the shim around it) and `docker rm -f` never calls the
# runtime. `runc delete --force` kills the init and removes its cgroups; the
# shim then reports the exit and is shut down by containerd.
RUNC=$(command -v runc || true)
if [[ -n $RUNC ]]; then
  for root in /run/docker/runtime-runc/moby /run/containerd/runc/default; do
    [[ -d $root ]] || continue
    for id in $("$RUNC" --root "$root" list -q 2>/dev/null); do
      log "runc: deleting leftover container $id (root $root)"
      try "$RUNC" --root "$root" delete --force "$id"
    done
  done
  sleep 1
fi

# ----------------------------------------------------------------- daemons
stop_pid dockerd "$STATE/dockerd.pid" dockerd 40
rm -f "$STATE/dockerd.self.pid"
stop_pid containerd "$STATE/containerd.pid" containerd 30

# Shims outlive containerd by design; they exit once their container is gone.
# Report (never kill by name) any that are left.
wait_for "shims exit" 10 bash -c '! pgrep -x containerd-shim >/dev/null && ! pgrep -f "^/usr/bin/containerd-shim-runc-v2" >/dev/null' ||
  LEFT+=("containerd shims: $(pgrep -f '^/usr/bin/containerd-shim' | tr '\n' ' ')")
pgrep -x conmon >/dev/null && LEFT+=("conmon: $(pgrep -x conmon | tr '\n' ' ')")

# ----------------------------------------------------------------- network
# dockerd: docker0, DOCKER* chains, FORWARD policy DROP, ip_forward=1.
# podman (netavark, default network): podman0, NETAVARK* chains.
for link in docker0 podman0; do
  if ip link show "$link" >/dev/null 2>&1; then
    log "network: deleting $link"
    ip link del "$link" || LEFT+=("link $link")
  fi
done
if command -v iptables-save >/dev/null; then
  for table in filter nat mangle; do
    rules=$(iptables-save -t "$table" 2>/dev/null | grep -E '^-A ' | grep -E 'DOCKER|docker0|NETAVARK|netavark|podman0' || true)
    if [[ -n $rules ]]; then
      log "network: removing DOCKER/NETAVARK rules from table $table"
      # Delete the rules that jump to or live in those chains, then the chains.
      while read -r rule; do
        eval "iptables -t $table -D ${rule#-A }" 2>/dev/null || true
      done <<<"$rules"
    fi
    chains=$(iptables-save -t "$table" 2>/dev/null | sed -n 's/^:\(\(DOCKER\|NETAVARK\)[A-Za-z0-9_-]*\) .*/\1/p')
    for chain in $chains; do iptables -t "$table" -F "$chain" 2>/dev/null || true; done
    for chain in $chains; do
      iptables -t "$table" -X "$chain" 2>/dev/null || LEFT+=("iptables $table chain $chain")
    done
  done
  if [[ -s $STATE/forward_policy.orig ]]; then
    iptables -P FORWARD "$(<"$STATE/forward_policy.orig")" || LEFT+=("iptables FORWARD policy")
  fi
fi
# Tables that iptables-nft created for dockerd/netavark, now empty.
if [[ -e $STATE/nft_tables.orig ]] && command -v nft >/dev/null; then
  for t in filter nat mangle; do
    if nft list table ip "$t" >/dev/null 2>&1 && ! grep -qx "table ip $t" "$STATE/nft_tables.orig" &&
      ! iptables-save -t "$t" 2>/dev/null | grep -q '^-A ' &&
      ! iptables-save -t "$t" 2>/dev/null | grep -Eq '^:[A-Z]+ (DROP|REJECT)'; then
      nft delete table ip "$t" || LEFT+=("nft table ip $t")
    fi
  done
fi
if [[ -s $STATE/ip_forward.orig ]]; then
  cat "$STATE/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward
fi

# ------------------------------------------------------------------ mounts
# Anything still mounted under the clients' directories is ours to undo
# (deepest first). Overlay mounts of removed containers, netns bind mounts, shm.
mounts=$(awk '{print $2}' /proc/self/mounts | grep -E '^(/var/lib/docker|/run/docker|/var/run/docker|/var/lib/containerd|/run/containerd|/var/lib/containers|/run/containers|/run/libpod|/run/netns|/var/run/netns|/run/user/0/(containers|libpod)|'"$STATE"')(/|$)' | sort -r || true)
for m in $mounts; do
  m=$(printf '%b' "$m")   # /proc/mounts escapes spaces as \040
  log "mount: unmounting $m"
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || LEFT+=("mount $m")
done

# ----------------------------------------------------------------- cgroups
# Parents the clients create: /docker (dockerd), /default (ctr), /libpod_parent
# (podman, cgroupfs). rmdir only removes empty cgroups.
for ctl in /sys/fs/cgroup/*/ /sys/fs/cgroup/unified/; do
  for top in docker default libpod_parent; do
    d="$ctl$top"
    [[ -d $d ]] || continue
    # children first
    find "$d" -depth -mindepth 1 -type d -exec rmdir {} \; 2>/dev/null || true
    rmdir "$d" 2>/dev/null || LEFT+=("cgroup $d ($(wc -l <"$d/cgroup.procs" 2>/dev/null) procs)")
  done
done

# ------------------------------------------------------- runtime state
# What a reboot would clear (/run is not a tmpfs on every machine): the
# daemons' and podman's runtime directories, once nothing runs or is mounted
# there any more.
if ! pgrep -f '^/usr/bin/containerd-shim' >/dev/null && ! pgrep -x conmon >/dev/null; then
  for d in /run/containerd /run/docker /run/containers /run/libpod; do
    [[ -e $d ]] || continue
    if awk '{print $2}' /proc/self/mounts | grep -q "^$d/"; then
      LEFT+=("$d (still has mounts)")
    else
      rm -rf "$d"
    fi
  done
  if [[ -d /run/runc ]] && [[ -z $(runc --root /run/runc list -q 2>/dev/null) ]]; then rm -rf /run/runc; fi
  rmdir /run/netns 2>/dev/null || true
fi

# ------------------------------------------------------------------- purge
if ((PURGE)); then
  for d in /var/lib/docker /var/lib/containerd /var/lib/containers; do
    if [[ -e $d ]] && ! awk '{print $2}' /proc/self/mounts | grep -q "^$d"; then
      log "purge: rm -rf $d"
      rm -rf "$d"
    fi
  done
fi

if ((!KEEP_STATE)); then
  [[ -d $STATE ]] && { log "removing $STATE"; rm -rf "$STATE"; }
fi

if ((${#LEFT[@]})); then
  printf 'teardown: left behind:\n' >&2
  printf '  %s\n' "${LEFT[@]}" >&2
  exit 1
fi
log "teardown: clean"
