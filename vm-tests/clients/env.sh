# shellcheck shell=bash
# Source after setup.sh:  source vm-tests/clients/env.sh
# Exports what the clients need to behave as set up by setup.sh.
export BRIG_VMTESTS_STATE="${BRIG_VMTESTS_STATE:-/run/brig-vmtests}"
# Podman: ulimits within root's hard limits, cgroupfs, file events, runc
# default, catatonit path, extra runtimes (see setup.sh).
export CONTAINERS_CONF="$BRIG_VMTESTS_STATE/containers.conf"
# Docker: the packaged 20.10 CLI (a newer static CLI may come first in PATH).
export DOCKER="${DOCKER:-/usr/bin/docker}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
export PODMAN="${PODMAN:-/usr/bin/podman}"
export CTR="${CTR:-/usr/bin/ctr}"
export CONTAINERD_ADDRESS="${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}"
export CONTAINERD_NAMESPACE="${CONTAINERD_NAMESPACE:-default}"
# Image names as imported by setup.sh.
export BRIG_TEST_IMAGE_DOCKER="brig-busybox:latest"
export BRIG_TEST_IMAGE_PODMAN="localhost/brig-busybox:latest"
export BRIG_TEST_IMAGE_CTR="docker.io/library/brig-busybox:latest"
if [[ ! -s $CONTAINERS_CONF ]]; then
  echo "env.sh: $CONTAINERS_CONF missing: run vm-tests/clients/setup.sh first" >&2
fi
