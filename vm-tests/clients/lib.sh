# shellcheck shell=bash disable=SC2034  # variables are used by the sourcing scripts
# Shared helpers for vm-tests/clients/*.sh. Sourced, not executed.

# Where the daemons we start keep pid files, logs and generated configs.
BRIG_VMTESTS_STATE="${BRIG_VMTESTS_STATE:-/run/brig-vmtests}"
# The Debian docker CLI (20.10). A newer static CLI may shadow it in PATH
# (e.g. /usr/local/bin/docker 28.x): we always use the packaged one so the
# client matches the daemon.
DOCKER="${DOCKER:-/usr/bin/docker}"
CTR="${CTR:-/usr/bin/ctr}"
PODMAN="${PODMAN:-/usr/bin/podman}"
CONTAINERD_SOCK="${CONTAINERD_SOCK:-/run/containerd/containerd.sock}"
DOCKER_SOCK="${DOCKER_SOCK:-/var/run/docker.sock}"
export DOCKER_HOST="unix://$DOCKER_SOCK"
IMAGE_NAME="brig-busybox"
IMAGE_TAG="latest"
CTR_IMAGE_REF="docker.io/library/${IMAGE_NAME}:${IMAGE_TAG}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# A minimal, predictable environment for the daemons and clients we start,
# so nothing from the caller's shell (tokens, proxies, PATH tweaks) leaks into
# the daemons, the shims and therefore the captured runtime invocations.
CLEAN_ENV=(env -i
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  HOME=/root LANG=C.UTF-8)

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...
# Polls COMMAND every 0.2 s until it succeeds or TIMEOUT expires.
wait_for() {
  local what=$1 timeout=$2; shift 2  # what: for the caller's messages
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      return 1
    fi
    sleep 0.2
  done
}

# pid_alive PIDFILE EXE_BASENAME: true when PIDFILE names a live process whose
# executable is EXE_BASENAME (guards against pid reuse).
pid_alive() {
  local pidfile=$1 exe=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -e /proc/$pid ]] || return 1
  [[ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")" == "$exe" ]]
}

# Both are quiet and fail fast when the socket is absent.
containerd_up() {
  [[ -S $CONTAINERD_SOCK ]] &&
    "$CTR" --address "$CONTAINERD_SOCK" --connect-timeout 2s --timeout 5s version >/dev/null 2>&1
}
dockerd_up() {
  [[ -S $DOCKER_SOCK ]] &&
    DOCKER_HOST="unix://$DOCKER_SOCK" timeout 10 "$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null
}

# Close every inherited fd above 2 (except bash's own script fd 255), so the
# daemons we start and the runtime calls we capture do not carry the caller's
# pipes (a CI runner's, a terminal multiplexer's...).
close_extra_fds() {
  local p fd
  for p in "/proc/$BASHPID/fd/"*; do
    fd=${p##*/}
    [[ $fd =~ ^[0-9]+$ ]] || continue
    if ((fd > 2 && fd != 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}
