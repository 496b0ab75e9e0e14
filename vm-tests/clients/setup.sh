#!/usr/bin/env bash
# Set up Docker (dockerd 20.10), containerd 1.6 and Podman 4.3 on a fresh
# Debian 12 machine without systemd, so that brig (or any runc-compatible
# runtime) can be driven by the real clients.
#
# Usage (as root):
#   vm-tests/clients/setup.sh [--runtime NAME=PATH]... [--no-apt]
#   BRIG_RUNTIMES="brig=/usr/local/bin/brig capture=/path/capture-runtime" vm-tests/clients/setup.sh
#
# Idempotent: packages already installed are not reinstalled, an image already
# imported is not imported again, daemons already started by us (pid file +
# live process) are kept; a changed runtime list is applied to a running
# dockerd with SIGHUP.
#
# What it leaves (all removed by teardown.sh):
#   $BRIG_VMTESTS_STATE (default /run/brig-vmtests): pid files, logs,
#     daemon.json, containerd config.toml, containers.conf, the rootfs tarball.
#   containerd (socket /run/containerd/containerd.sock) and dockerd
#     (/var/run/docker.sock) running in the background.
#   the image brig-busybox:latest in docker, podman (localhost/brig-busybox)
#     and containerd (docker.io/library/brig-busybox:latest, namespace default).
# Source vm-tests/clients/env.sh afterwards (CONTAINERS_CONF, DOCKER, ...).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
close_extra_fds

[[ $(id -u) -eq 0 ]] || die "run as root"

DO_APT=1
RUNTIME_SPECS=()
# BRIG_RUNTIMES: whitespace- or comma-separated NAME=PATH pairs.
if [[ -n "${BRIG_RUNTIMES:-}" ]]; then
  read -r -a _rts <<<"${BRIG_RUNTIMES//,/ }"
  RUNTIME_SPECS+=("${_rts[@]}")
fi
while (($#)); do
  case $1 in
    --runtime) [[ $# -ge 2 ]] || die "--runtime needs NAME=PATH"; RUNTIME_SPECS+=("$2"); shift 2 ;;
    --runtime=*) RUNTIME_SPECS+=("${1#--runtime=}"); shift ;;
    --no-apt) DO_APT=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
for spec in "${RUNTIME_SPECS[@]}"; do
  [[ $spec =~ ^[A-Za-z0-9_.-]+=/.+ ]] || die "bad runtime spec '$spec' (want NAME=/absolute/path)"
done

STATE="$BRIG_VMTESTS_STATE"
mkdir -p "$STATE"
chmod 0755 "$STATE"

# ---------------------------------------------------------------- packages
PACKAGES=(docker.io containerd runc crun podman conmon catatonit netavark
  busybox-static uidmap iptables jq bsdutils util-linux ca-certificates)
install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    log "packages: all present"
    return
  fi
  log "packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # policy-rc.d: never let a package's maintainer script start a service
  # (there is no systemd here; sysv scripts would start dockerd/containerd
  # with settings we do not control).
  local prc=/usr/sbin/policy-rc.d created_prc=0
  if [[ ! -e $prc ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 0755 "$prc"; created_prc=1
  fi
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" ||
    { ((created_prc)) && rm -f "$prc"; die "apt-get install failed"; }
  ((created_prc)) && rm -f "$prc"
  return 0
}
if ((DO_APT)); then install_packages; fi
for bin in dockerd containerd containerd-shim-runc-v2 ctr runc podman conmon busybox catatonit; do
  command -v "$bin" >/dev/null || die "$bin not found after install"
done
[[ -x $DOCKER ]] || die "$DOCKER missing (package docker.io)"

# ----------------------------------------------------------------- rootfs
ROOTFS_TAR="$STATE/brig-busybox.tar"
build_rootfs() {
  [[ -s $ROOTFS_TAR ]] && return
  local bb tmp
  bb=$(command -v busybox)
  tmp=$(mktemp -d "$STATE/rootfs.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home,var/tmp,run}
  chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
  cp "$bb" "$tmp/bin/busybox"
  chmod 0755 "$tmp/bin/busybox"
  # `busybox --list-full` gives install paths (bin/ls, usr/bin/env, ...).
  local applet
  while read -r applet; do
    [[ -n $applet && $applet != bin/busybox ]] || continue
    [[ -e $tmp/$applet ]] || ln -s /bin/busybox "$tmp/$applet"
  done < <("$bb" --list-full)
  cat >"$tmp/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$tmp/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
nobody:x:65534:
EOF
  : >"$tmp/etc/hosts"; : >"$tmp/etc/resolv.conf"; echo brig >"$tmp/etc/hostname"
  tar --numeric-owner --owner=0 --group=0 -C "$tmp" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  log "rootfs: built $ROOTFS_TAR ($("$bb" --list | wc -l) applets)"
}
build_rootfs

# ------------------------------------------------------------- containerd
CONTAINERD_CONF="$STATE/containerd.toml"
cat >"$CONTAINERD_CONF.tmp" <<'EOF'
# Generated by vm-tests/clients/setup.sh
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# No CRI here (no cri-tools on Debian 12, no CNI config): keep startup quiet.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "/run/containerd/containerd.sock"
EOF
mv "$CONTAINERD_CONF.tmp" "$CONTAINERD_CONF"

start_containerd() {
  if pid_alive "$STATE/containerd.pid" containerd; then
    log "containerd: already running (pid $(<"$STATE/containerd.pid"))"
    return
  fi
  if containerd_up; then
    log "containerd: a containerd not started by us answers on $CONTAINERD_SOCK; using it (teardown will leave it alone)"
    return
  fi
  log "containerd: starting (log $STATE/containerd.log)"
  mkdir -p /run/containerd
  # setsid: own session, so a CI job's process-group kill does not hit it.
  setsid "${CLEAN_ENV[@]}" containerd --config "$CONTAINERD_CONF" \
    </dev/null >>"$STATE/containerd.log" 2>&1 &
  echo $! >"$STATE/containerd.pid"
  if ! wait_for containerd 30 containerd_up; then
    tail -n 30 "$STATE/containerd.log" >&2 || true
    die "containerd did not answer on $CONTAINERD_SOCK within 30 s (log: $STATE/containerd.log)"
  fi
  log "containerd: up (pid $(<"$STATE/containerd.pid"))"
}
start_containerd

# ---------------------------------------------------------------- dockerd
DAEMON_JSON="$STATE/daemon.json"
write_daemon_json() {
  local runtimes="{}" spec name path
  for spec in "${RUNTIME_SPECS[@]}"; do
    name=${spec%%=*}; path=${spec#*=}
    [[ -x $path ]] || log "warning: runtime '$name' path $path is not executable (yet)"
    runtimes=$(jq -c --arg n "$name" --arg p "$path" '. + {($n): {path: $p}}' <<<"$runtimes")
  done
  # Runtimes registered in an earlier call stay registered (idempotent and
  # additive) unless BRIG_RUNTIMES_RESET=1.
  if [[ -s $DAEMON_JSON && "${BRIG_RUNTIMES_RESET:-0}" != 1 ]]; then
    runtimes=$(jq -c --argjson new "$runtimes" '(.runtimes // {}) + $new' "$DAEMON_JSON")
  fi
  jq -n --argjson rt "$runtimes" '{
      "default-runtime": "runc",
      "runtimes": $rt,
      "storage-driver": "overlay2",
      "exec-opts": ["native.cgroupdriver=cgroupfs"],
      "log-driver": "json-file",
      "log-level": "info"
    }' >"$DAEMON_JSON.tmp"
  mv "$DAEMON_JSON.tmp" "$DAEMON_JSON"
}
write_daemon_json

start_dockerd() {
  if pid_alive "$STATE/dockerd.pid" dockerd; then
    log "dockerd: already running (pid $(<"$STATE/dockerd.pid")); reloading $DAEMON_JSON (SIGHUP)"
    kill -HUP "$(<"$STATE/dockerd.pid")"
    sleep 1
    return
  fi
  if dockerd_up >/dev/null; then
    die "a dockerd not started by us answers on $DOCKER_SOCK; stop it first"
  fi
  # dockerd changes these; teardown.sh restores them.
  [[ -e $STATE/ip_forward.orig ]] || cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward.orig"
  # iptables-nft creates the nftables tables "ip filter"/"ip nat" on first use.
  [[ -e $STATE/nft_tables.orig ]] || { nft list tables 2>/dev/null >"$STATE/nft_tables.orig" || true; }
  # dockerd sets the FORWARD policy to DROP; record it for teardown.sh.
  [[ -e $STATE/forward_policy.orig ]] ||
    { iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}' >"$STATE/forward_policy.orig" || true; }
  log "dockerd: starting (log $STATE/dockerd.log)"
  # dockerd refuses to start when its --pidfile names a live process (itself
  # included), so its own pid file is separate from the one we record.
  setsid "${CLEAN_ENV[@]}" dockerd \
    --config-file "$DAEMON_JSON" \
    --containerd "$CONTAINERD_SOCK" \
    --pidfile "$STATE/dockerd.self.pid" \
    -H "unix://$DOCKER_SOCK" \
    </dev/null >>"$STATE/dockerd.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$STATE/dockerd.pid"
  if ! wait_for dockerd 60 dockerd_up; then
    tail -n 30 "$STATE/dockerd.log" >&2 || true
    kill -0 "$pid" 2>/dev/null || log "dockerd (pid $pid) has exited"
    die "dockerd did not answer on $DOCKER_SOCK within 60 s (log: $STATE/dockerd.log)"
  fi
  log "dockerd: up (pid $(<"$STATE/dockerd.pid"), server $(dockerd_up))"
}
start_dockerd
# shellcheck disable=SC2016  # a Go template
log "dockerd runtimes: $("$DOCKER" info --format '{{range $k, $v := .Runtimes}}{{$k}}={{$v.Path}} {{end}}')"

# ----------------------------------------------------------------- podman
# Root lacks CAP_SYS_RESOURCE here and the open-files hard limit is 20000:
# podman's default ulimits (nofile=1048576, nproc raised) fail with EPERM.
CONTAINERS_CONF_FILE="$STATE/containers.conf"
# The same extra runtimes as dockerd's (daemon.json accumulates them).
podman_runtimes=$(jq -r '.runtimes // {} | to_entries[] | "\(.key) = [\(.value.path | @json)]"' "$DAEMON_JSON")
cat >"$CONTAINERS_CONF_FILE.tmp" <<EOF
# Generated by vm-tests/clients/setup.sh; used through CONTAINERS_CONF (env.sh).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
# Debian's catatonit (podman looks in /usr/libexec/podman by default).
init_path = "/usr/bin/catatonit"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
# No systemd, no journald.
# crun 1.8 refuses this cgroup v1 hybrid layout (see shared/README.md):
# use runc unless --runtime is given.
runtime = "runc"
conmon_path = ["/usr/bin/conmon"]

[network]
# netavark (installed above) rather than the CNI config Debian ships without
# the CNI plugins.
network_backend = "netavark"

# Extra runtimes for "podman --runtime NAME" (a full path works without this too).
[engine.runtimes]
runc = ["/usr/sbin/runc", "/usr/bin/runc"]
crun = ["/usr/bin/crun"]
${podman_runtimes}
EOF
mv "$CONTAINERS_CONF_FILE.tmp" "$CONTAINERS_CONF_FILE"
export CONTAINERS_CONF="$CONTAINERS_CONF_FILE"
log "podman: CONTAINERS_CONF=$CONTAINERS_CONF"

# ----------------------------------------------------------------- images
if "$DOCKER" image inspect "$IMAGE_NAME:$IMAGE_TAG" >/dev/null 2>&1; then
  log "docker: image $IMAGE_NAME:$IMAGE_TAG present"
else
  "$DOCKER" import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$ROOTFS_TAR" "$IMAGE_NAME:$IMAGE_TAG" >/dev/null
  log "docker: imported $IMAGE_NAME:$IMAGE_TAG"
fi

if "${CLEAN_ENV[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" "$PODMAN" image exists "localhost/$IMAGE_NAME:$IMAGE_TAG"; then
  log "podman: image localhost/$IMAGE_NAME:$IMAGE_TAG present"
else
  "${CLEAN_ENV[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" "$PODMAN" import -q \
    -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$ROOTFS_TAR" "localhost/$IMAGE_NAME:$IMAGE_TAG" >/dev/null
  log "podman: imported localhost/$IMAGE_NAME:$IMAGE_TAG"
fi

# containerd: `ctr images import` wants an image archive (docker save or OCI
# layout), not a plain rootfs tarball; `docker save` of the imported image is
# one. Docker's images live in its own store (20.10), not in containerd.
if "$CTR" --address "$CONTAINERD_SOCK" -n default images ls -q | grep -qx "$CTR_IMAGE_REF"; then
  log "containerd: image $CTR_IMAGE_REF present"
else
  "$DOCKER" save -o "$STATE/brig-busybox.docker-archive.tar" "$IMAGE_NAME:$IMAGE_TAG"
  "$CTR" --address "$CONTAINERD_SOCK" -n default images import \
    "$STATE/brig-busybox.docker-archive.tar" >/dev/null
  rm -f "$STATE/brig-busybox.docker-archive.tar"
  "$CTR" --address "$CONTAINERD_SOCK" -n default images ls -q | grep -qx "$CTR_IMAGE_REF" ||
    die "containerd: $CTR_IMAGE_REF missing after import"
  log "containerd: imported $CTR_IMAGE_REF"
fi

log "ready. Now: source $HERE/env.sh"
