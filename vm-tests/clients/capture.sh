#!/usr/bin/env bash
# Drive dockerd, podman and containerd (ctr) through capture-runtime (a
# logging wrapper around runc) and store what they send to the runtime as
# fixtures under tests/fixtures/clients/<client>/:
#   <scenario>.argv.log            one JSON line per runtime invocation
#   <scenario>[.N].config.json     the bundle's config.json at create (pretty)
#   <scenario>.N.process.json      exec --process file
#   <scenario>.N.update.json       update --resources - stdin
#   SCENARIOS.md                   the client commands, their exit codes and output
# Run as root after setup.sh (it is called here if the daemons are not up).
#
# Usage: vm-tests/clients/capture.sh [--out DIR] [--raw] [docker|podman|ctr]...
#   --raw  keep per-run ids (64-hex container/exec ids, dockerd's pid) as they
#          are; by default they are replaced consistently within a scenario
#          (<id1>, <id2>, ... in order of first appearance; <dockerd-pid>).
# shellcheck disable=SC2016  # single-quoted $… in commands and markdown is meant literally
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
close_extra_fds
[[ $(id -u) -eq 0 ]] || die "run as root"

OUT="$REPO/tests/fixtures/clients"
RAW=0
CLIENTS=()
while (($#)); do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --raw) RAW=1; shift ;;
    docker|podman|ctr) CLIENTS+=("$1"); shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
((${#CLIENTS[@]})) || CLIENTS=(docker podman ctr)

# Run from / so that runtime calls made from the client's cwd (podman) do not
# record wherever this script was started.
cd /
STATE="$BRIG_VMTESTS_STATE"
WRAP_DIR="$STATE/capture"
WRAP="$WRAP_DIR/capture-runtime"
WRAP_CONF="$WRAP_DIR/capture-runtime.conf"
CAPROOT="$WRAP_DIR/out"
REAL_RUNTIME="${CAPTURE_REAL:-$(command -v runc)}"

# The wrapper is installed as a copy in the state dir; its config file sits
# next to it (daemons do not pass our environment down to the runtime).
mkdir -p "$WRAP_DIR"
install -m 0755 "$HERE/capture-runtime" "$WRAP"
printf 'CAPTURE_DIR=%q\nCAPTURE_REAL=%q\n' "$CAPROOT/unsorted" "$REAL_RUNTIME" >"$WRAP_CONF"

# Daemons up with the "capture" runtime registered (idempotent).
"$HERE/setup.sh" --no-apt --runtime "capture=$WRAP" >/dev/null 2>"$STATE/capture-setup.log" ||
  { cat "$STATE/capture-setup.log" >&2; die "setup.sh failed"; }
export CONTAINERS_CONF="$STATE/containers.conf"
DOCKERD_PID=$(<"$STATE/dockerd.pid")

IMG_D=brig-busybox:latest
IMG_P=localhost/brig-busybox:latest
IMG_C=$CTR_IMAGE_REF
D=("${CLEAN_ENV[@]}" DOCKER_HOST="unix://$DOCKER_SOCK" "$DOCKER")
P=("${CLEAN_ENV[@]}" CONTAINERS_CONF="$CONTAINERS_CONF" "$PODMAN")
C=("${CLEAN_ENV[@]}" "$CTR" --address "$CONTAINERD_SOCK" -n default)
CMD_TIMEOUT=${CMD_TIMEOUT:-60}
VOL="$STATE/vol-x"

# ------------------------------------------------------------- cleanup
cleanup() {
  local rc=$?
  set +e
  # Only the containers this script names (prefix brigcap-).
  local ids
  ids=$("${D[@]}" ps -aq --filter name=brigcap- 2>/dev/null)
  # shellcheck disable=SC2086  # one id per word
  [[ -n $ids ]] && "${D[@]}" rm -f $ids >/dev/null 2>&1
  ids=$("${P[@]}" ps -aq --filter name=brigcap- 2>/dev/null)
  # shellcheck disable=SC2086
  [[ -n $ids ]] && "${P[@]}" rm -f -t 0 $ids >/dev/null 2>&1
  for t in $("${C[@]}" tasks ls -q 2>/dev/null | grep '^brigcap-'); do
    "${C[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1; sleep 0.3
    "${C[@]}" tasks delete -f "$t" >/dev/null 2>&1
  done
  for c in $("${C[@]}" containers ls -q 2>/dev/null | grep '^brigcap-'); do
    "${C[@]}" containers delete "$c" >/dev/null 2>&1
  done
  rm -rf "$VOL"
  printf 'CAPTURE_DIR=%q\nCAPTURE_REAL=%q\n' "$CAPROOT/unsorted" "$REAL_RUNTIME" >"$WRAP_CONF"
  ((rc == 0)) || log "capture.sh failed (rc $rc); partial captures in $CAPROOT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------- scenarios
CUR_DIR="" TRANSCRIPT=""
scenario() { # CLIENT NAME DESCRIPTION
  CUR_DIR="$CAPROOT/$1/$2"
  rm -rf "$CUR_DIR"; mkdir -p "$CUR_DIR"
  set_fail ""
  TRANSCRIPT="$CAPROOT/$1/SCENARIOS.md"
  printf '\n## %s\n%s\n\n' "$2" "$3" >>"$TRANSCRIPT"
  log "== $1/$2"
}
set_fail() { # SUBCMDS (comma separated) that the wrapper makes fail [nolog]
  printf 'CAPTURE_DIR=%q\nCAPTURE_REAL=%q\nCAPTURE_FAIL=%q\nCAPTURE_FAIL_LOG=%q\n' \
    "$CUR_DIR" "$REAL_RUNTIME" "$1" "$([[ ${2:-} == nolog ]] && echo 0 || echo 1)" >"$WRAP_CONF"
  [[ -z $1 ]] || printf -- '- (capture-runtime now fails `%s`%s)\n' "$1" \
    "$([[ ${2:-} == nolog ]] && echo ', message on stderr only, nothing in --log' || echo ', message in --log and on stderr')" >>"$TRANSCRIPT"
}
# run LABEL_ARGS... : run a client command with a timeout, record it.
# The command as written to the transcript drops the env -i prefix.
run() {
  local shown=() a skip=1 out rc
  for a in "$@"; do
    if ((skip)); then
      case $a in env|-i|PATH=*|HOME=*|LANG=*|TERM=*|DOCKER_HOST=*|CONTAINERS_CONF=*) continue ;; esac
      skip=0
    fi
    shown+=("$a")
  done
  set +e
  out=$(timeout --kill-after=5 "$CMD_TIMEOUT" "$@" </dev/null 2>&1)
  rc=$?
  set -e
  local q=() w
  for a in "${shown[@]}"; do
    a=${a//$WRAP/\$WRAP}
    if [[ $a =~ ^[][A-Za-z0-9_./:=@,+%\$\<\>-]+$ ]]; then q+=("$a"); else w=${a//\'/\'\\\'\'}; q+=("'$w'"); fi
  done
  {
    printf -- '- `%s` → exit %d\n' "${q[*]}" "$rc"
    if [[ -n $out ]]; then
      printf '  ```\n'; printf '%s\n' "$out" | head -n 15  | tr -d '\r\000' | sed -e 's/\^@//g' -e 's/\x1b\[[0-9;]*m//g' | sed 's/^/  /'; printf '  ```\n'
    fi
  } >>"$TRANSCRIPT"
  ((rc != 124)) || log "warning: timed out: ${shown[*]}"
  return 0
}
# ptyrun CMDLINE: run a shell command line under a pseudo-terminal (script).
ptyrun() {
  run "${CLEAN_ENV[@]}" TERM=xterm script -qec "$1" /dev/null
}
settle() { sleep "${1:-0.5}"; }

capture_docker() {
  mkdir -p "$CAPROOT/docker"
  local R=(--runtime capture) N=(--network none) dk="DOCKER_HOST=unix://$DOCKER_SOCK $DOCKER"
  printf '# docker scenarios\n\nClient: %s, daemon %s, containerd %s, runc %s\n' \
    "$("${D[@]}" version --format '{{.Client.Version}}')" "$("${D[@]}" version --format '{{.Server.Version}}')" \
    "$(containerd --version | awk '{print $3}')" "$(runc --version | awk 'NR==1{print $3}')" >"$CAPROOT/docker/SCENARIOS.md"

  scenario docker run "docker run (no --rm), then docker rm"
  run "${D[@]}" run --name brigcap-run "${R[@]}" "${N[@]}" "$IMG_D" echo hi
  run "${D[@]}" rm brigcap-run

  scenario docker run-bridge "docker run --rm on the default bridge network"
  run "${D[@]}" run --rm "${R[@]}" "$IMG_D" sh -c 'ip -o -4 addr show eth0; echo hi'

  scenario docker run-rm-it "docker run --rm -it under a pty (script)"
  ptyrun "$dk run --rm -it --runtime capture --network none $IMG_D sh -c 'tty; echo hi'"

  scenario docker exec "run -d -e BRIG_TOKEN=..., exec, exec -t, exec -it, exec -u -e -w, exec -d, stop -t 2, rm"
  run "${D[@]}" run -d --name brigcap-exec "${R[@]}" "${N[@]}" -e BRIG_TOKEN=dummy.jwt.value "$IMG_D" sleep 300
  settle
  run "${D[@]}" exec brigcap-exec echo hi
  run "${D[@]}" exec -t brigcap-exec tty
  ptyrun "$dk exec -it brigcap-exec sh -c 'tty; echo hi'"
  run "${D[@]}" exec -u nobody -e FOO=bar -w /tmp brigcap-exec sh -c 'id; pwd; echo $FOO'
  run "${D[@]}" exec -d brigcap-exec sleep 1
  settle 1.5
  run "${D[@]}" stop -t 2 brigcap-exec
  run "${D[@]}" rm brigcap-exec

  scenario docker stop "run -d (pid 1 sleep ignores SIGTERM), stop -t 2, rm"
  run "${D[@]}" run -d --name brigcap-stop "${R[@]}" "${N[@]}" "$IMG_D" sleep 300
  settle
  run "${D[@]}" stop -t 2 brigcap-stop
  run "${D[@]}" rm brigcap-stop

  scenario docker rm-f "run -d, rm -f of the running container"
  run "${D[@]}" run -d --name brigcap-rmf "${R[@]}" "${N[@]}" "$IMG_D" sleep 300
  settle
  run "${D[@]}" rm -f brigcap-rmf

  scenario docker kill "run -d, kill -s USR1, kill (default KILL), rm"
  run "${D[@]}" run -d --name brigcap-kill "${R[@]}" "${N[@]}" "$IMG_D" sleep 300
  settle
  run "${D[@]}" kill -s USR1 brigcap-kill
  run "${D[@]}" kill brigcap-kill
  run "${D[@]}" rm brigcap-kill

  scenario docker update "run -d, update --memory/--memory-swap, update --cpus --pids-limit, rm -f"
  run "${D[@]}" run -d --name brigcap-update "${R[@]}" "${N[@]}" "$IMG_D" sleep 300
  settle
  run "${D[@]}" update --memory 64m --memory-swap 128m brigcap-update
  run "${D[@]}" update --cpus 0.5 --pids-limit 100 brigcap-update
  run "${D[@]}" rm -f brigcap-update

  scenario docker pause "run -d, pause, unpause, rm -f"
  run "${D[@]}" run -d --name brigcap-pause "${R[@]}" "${N[@]}" "$IMG_D" sleep 300
  settle
  run "${D[@]}" pause brigcap-pause
  run "${D[@]}" unpause brigcap-pause
  run "${D[@]}" rm -f brigcap-pause

  scenario docker top "run -d, top, rm -f"
  run "${D[@]}" run -d --name brigcap-top "${R[@]}" "${N[@]}" "$IMG_D" sleep 300
  settle
  run "${D[@]}" top brigcap-top
  run "${D[@]}" rm -f brigcap-top

  scenario docker stats "run -d, stats --no-stream, rm -f"
  run "${D[@]}" run -d --name brigcap-stats "${R[@]}" "${N[@]}" "$IMG_D" sleep 300
  settle
  run "${D[@]}" stats --no-stream brigcap-stats
  run "${D[@]}" rm -f brigcap-stats

  scenario docker cap-add "run --rm --cap-add SYS_ADMIN"
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" --cap-add SYS_ADMIN "$IMG_D" echo hi

  scenario docker privileged "run --rm --privileged"
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" --privileged "$IMG_D" echo hi

  scenario docker pid-host "run --rm --pid host"
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" --pid host "$IMG_D" echo hi

  scenario docker volume "run --rm -v HOSTDIR:/data (HOSTDIR = \$BRIG_VMTESTS_STATE/vol-x)"
  mkdir -p "$VOL"
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" -v "$VOL:/data" "$IMG_D" ls -ld /data
  rm -rf "$VOL"

  scenario docker read-only "run --rm --read-only"
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" --read-only "$IMG_D" echo hi

  scenario docker no-new-privileges "run --rm --security-opt no-new-privileges"
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" --security-opt no-new-privileges "$IMG_D" echo hi

  scenario docker resources "run --rm with --memory, --cpus, --pids-limit, --ulimit"
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" --memory 64m --cpus 0.5 --pids-limit 50 \
    --ulimit nofile=1024:2048 "$IMG_D" echo hi

  scenario docker env-label "run --rm with -e BRIG_TOKEN, --label, -u, -w, --hostname; --annotation (CLI 20.10 has none)"
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" -e BRIG_TOKEN=dummy.jwt.value --label dev.brig.profile=restricted \
    -u nobody -w /tmp --hostname brigbox "$IMG_D" sh -c 'id; env | sort'
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" --annotation dev.brig.profile=restricted "$IMG_D" echo hi

  scenario docker fail-create "the runtime fails create (exit 1, error line in --log): what the user sees"
  set_fail create
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" "$IMG_D" echo hi
  set_fail ""

  scenario docker fail-create-stderr "the runtime fails create, writing its message to stderr only"
  set_fail create nolog
  run "${D[@]}" run --rm "${R[@]}" "${N[@]}" "$IMG_D" echo hi
  set_fail ""

  scenario docker fail-start "the runtime fails start"
  set_fail start
  run "${D[@]}" run --name brigcap-failstart "${R[@]}" "${N[@]}" "$IMG_D" echo hi
  set_fail ""
  local fid
  fid=$("${D[@]}" inspect -f '{{.Id}}' brigcap-failstart 2>/dev/null || true)
  run "${D[@]}" rm -f brigcap-failstart
  # dockerd 20.10 forgets the task whose start failed: it stays "created" in
  # containerd (shim + runc init alive) and `docker rm -f` calls no runtime
  # command. Remove it through containerd, as teardown.sh would.
  if [[ -n $fid ]]; then
    printf -- '- (leak: task still in containerd namespace moby; removed with ctr)\n' >>"$TRANSCRIPT"
    run "${CLEAN_ENV[@]}" "$CTR" --address "$CONTAINERD_SOCK" -n moby tasks ls
    run "${CLEAN_ENV[@]}" "$CTR" --address "$CONTAINERD_SOCK" -n moby tasks delete -f "$fid"
    run "${CLEAN_ENV[@]}" "$CTR" --address "$CONTAINERD_SOCK" -n moby containers delete "$fid"
  fi

  scenario docker fail-exec "the runtime fails exec"
  run "${D[@]}" run -d --name brigcap-failexec "${R[@]}" "${N[@]}" "$IMG_D" sleep 300
  settle
  set_fail exec
  run "${D[@]}" exec brigcap-failexec echo hi
  set_fail ""
  run "${D[@]}" rm -f brigcap-failexec
}

capture_podman() {
  mkdir -p "$CAPROOT/podman"
  local R=(--runtime "$WRAP") pd="CONTAINERS_CONF=$CONTAINERS_CONF $PODMAN --runtime $WRAP"
  printf '# podman scenarios\n\npodman %s, conmon %s, runc %s; CONTAINERS_CONF as written by setup.sh. $WRAP is the capture-runtime path.\n' \
    "$("${P[@]}" version --format '{{.Client.Version}}')" "$(conmon --version | awk 'NR==1{print $3}')" \
    "$(runc --version | awk 'NR==1{print $3}')" >"$CAPROOT/podman/SCENARIOS.md"

  scenario podman run-rm "podman --runtime \$WRAP run --rm (default network: netavark bridge)"
  run "${P[@]}" "${R[@]}" run --rm "$IMG_P" echo hi

  scenario podman run-none "run --rm --network none"
  run "${P[@]}" "${R[@]}" run --rm --network none "$IMG_P" echo hi

  scenario podman run-rm-it "run --rm -it under a pty (script)"
  ptyrun "$pd run --rm -it --network none $IMG_P sh -c 'tty; echo hi'"

  scenario podman exec "run -d -e BRIG_TOKEN=..., exec, exec -t, exec -it, exec -u -e -w, exec -d, stop -t 2, rm"
  run "${P[@]}" "${R[@]}" run -d --name brigcap-exec --network none -e BRIG_TOKEN=dummy.jwt.value "$IMG_P" sleep 300
  settle
  run "${P[@]}" "${R[@]}" exec brigcap-exec echo hi
  run "${P[@]}" "${R[@]}" exec -t brigcap-exec tty
  ptyrun "$pd exec -it brigcap-exec sh -c 'tty; echo hi'"
  run "${P[@]}" "${R[@]}" exec -u nobody -e FOO=bar -w /tmp brigcap-exec sh -c 'id; pwd; echo $FOO'
  run "${P[@]}" "${R[@]}" exec -d brigcap-exec sleep 1
  settle 1.5
  run "${P[@]}" "${R[@]}" stop -t 2 brigcap-exec
  run "${P[@]}" "${R[@]}" rm brigcap-exec

  scenario podman rm-f "run -d, rm -f"
  run "${P[@]}" "${R[@]}" run -d --name brigcap-rmf --network none "$IMG_P" sleep 300
  settle
  run "${P[@]}" "${R[@]}" rm -f brigcap-rmf

  scenario podman kill-pause "run -d, kill -s USR1, pause, unpause, top, update --memory, kill, rm"
  run "${P[@]}" "${R[@]}" run -d --name brigcap-kill --network none "$IMG_P" sleep 300
  settle
  run "${P[@]}" "${R[@]}" kill -s USR1 brigcap-kill
  run "${P[@]}" "${R[@]}" pause brigcap-kill
  run "${P[@]}" "${R[@]}" unpause brigcap-kill
  run "${P[@]}" "${R[@]}" top brigcap-kill
  run "${P[@]}" "${R[@]}" update --memory 64m brigcap-kill
  run "${P[@]}" "${R[@]}" kill brigcap-kill
  settle
  run "${P[@]}" "${R[@]}" rm brigcap-kill

  scenario podman annotation "run --rm --annotation k=v --label k=v -e BRIG_TOKEN=..."
  run "${P[@]}" "${R[@]}" run --rm --network none --annotation dev.brig.profile=restricted \
    --label dev.brig.label=yes -e BRIG_TOKEN=dummy.jwt.value "$IMG_P" echo hi

  scenario podman init "run --rm --init (catatonit)"
  run "${P[@]}" "${R[@]}" run --rm --network none --init "$IMG_P" echo hi

  scenario podman privileged "run --rm --privileged"
  run "${P[@]}" "${R[@]}" run --rm --network none --privileged "$IMG_P" echo hi

  scenario podman fail-create "the runtime fails create"
  set_fail create
  run "${P[@]}" "${R[@]}" run --name brigcap-failcreate --network none "$IMG_P" echo hi
  set_fail ""
  run "${P[@]}" "${R[@]}" rm -f brigcap-failcreate
}

capture_ctr() {
  mkdir -p "$CAPROOT/ctr"
  local RB=(--runc-binary "$WRAP") ct="$CTR --address $CONTAINERD_SOCK -n default"
  printf '# ctr scenarios\n\nctr/containerd %s, runc %s. $WRAP is the capture-runtime path.\n' \
    "$(containerd --version | awk '{print $3}')" "$(runc --version | awk 'NR==1{print $3}')" >"$CAPROOT/ctr/SCENARIOS.md"

  scenario ctr run-rm "ctr run --rm --runc-binary \$WRAP IMAGE ID echo hi"
  run "${C[@]}" run --rm "${RB[@]}" "$IMG_C" brigcap-run echo hi

  scenario ctr run-tty "ctr run --rm -t under a pty (script)"
  ptyrun "$ct run --rm -t --runc-binary $WRAP $IMG_C brigcap-tty sh -c 'tty; echo hi'"

  scenario ctr annotation "ctr run --rm --annotation k=v --label k=v --env BRIG_TOKEN=..."
  run "${C[@]}" run --rm "${RB[@]}" --annotation dev.brig.profile=restricted --label dev.brig.label=yes \
    --env BRIG_TOKEN=dummy.jwt.value "$IMG_C" brigcap-ann echo hi

  scenario ctr exec-kill "run -d; task exec; exec -t; exec --user --cwd; ps; pause; resume; metrics; kill; kill -s SIGKILL; kill --all; rm"
  run "${C[@]}" run -d "${RB[@]}" "$IMG_C" brigcap-exec sleep 300
  settle
  run "${C[@]}" task exec --exec-id e1 brigcap-exec echo hi
  ptyrun "$ct task exec -t --exec-id e2 brigcap-exec sh -c 'tty; echo hi'"
  run "${C[@]}" task exec --exec-id e3 --user 65534 --cwd /tmp brigcap-exec sh -c 'id; pwd'
  run "${C[@]}" task ps brigcap-exec
  run "${C[@]}" task pause brigcap-exec
  run "${C[@]}" task resume brigcap-exec
  run "${C[@]}" task metrics brigcap-exec
  run "${C[@]}" task kill brigcap-exec
  run "${C[@]}" task kill -s SIGUSR1 brigcap-exec
  run "${C[@]}" task kill --all -s SIGKILL brigcap-exec
  settle
  run "${C[@]}" task rm brigcap-exec
  run "${C[@]}" container rm brigcap-exec

  scenario ctr kill "run -d; task kill -s SIGKILL; task rm -f; container rm"
  run "${C[@]}" run -d "${RB[@]}" "$IMG_C" brigcap-kill sleep 300
  settle
  run "${C[@]}" task kill -s SIGKILL brigcap-kill
  settle
  run "${C[@]}" task rm -f brigcap-kill
  run "${C[@]}" container rm brigcap-kill

  scenario ctr privileged "ctr run --rm --privileged"
  run "${C[@]}" run --rm "${RB[@]}" --privileged "$IMG_C" brigcap-priv echo hi

  scenario ctr seccomp "ctr run --rm --seccomp (containerd's default profile; off without the flag)"
  run "${C[@]}" run --rm "${RB[@]}" --seccomp "$IMG_C" brigcap-seccomp echo hi

  scenario ctr fail-create "the runtime fails create"
  set_fail create
  run "${C[@]}" run --rm "${RB[@]}" "$IMG_C" brigcap-fail echo hi
  set_fail ""

  scenario ctr fail-create-stderr "the runtime fails create, writing its message to stderr only"
  set_fail create nolog
  run "${C[@]}" run --rm "${RB[@]}" "$IMG_C" brigcap-fail2 echo hi
  set_fail ""
}

# ------------------------------------------------------------- collect
sanitize() { # FILE... : in place, one id map for all the files given
  ((RAW)) && return 0
  local ids i=0 id sedargs=()
  ids=$(grep -ohE '[0-9a-f]{64}' "$@" 2>/dev/null | awk '!seen[$0]++' || true)
  for id in $ids; do
    i=$((i + 1)); sedargs+=(-e "s/$id/<id$i>/g")
  done
  sedargs+=(-e "s#/proc/$DOCKERD_PID/#/proc/<dockerd-pid>/#g")
  sed -i "${sedargs[@]}" "$@"
}

collect() { # CLIENT
  local client=$1 src="$CAPROOT/$1" dst="$OUT/$1" sdir name f n base kind
  rm -rf "$dst"; mkdir -p "$dst"
  cp "$src/SCENARIOS.md" "$dst/SCENARIOS.md"
  for sdir in "$src"/*/; do
    name=$(basename "$sdir")
    [[ -s $sdir/argv.log ]] || { log "warning: $client/$name: no runtime call captured"; continue; }
    cp "$sdir/argv.log" "$dst/$name.argv.log"
    n=0
    for f in "$sdir"/*.config.json; do
      [[ -e $f ]] || continue
      n=$((n + 1))
      if ((n == 1)); then base="$dst/$name.config.json"; else base="$dst/$name.$n.config.json"; fi
      jq . "$f" >"$base"
    done
    for f in "$sdir"/*.process.json "$sdir"/*.stdin.json "$sdir"/*.resources.json; do
      [[ -e $f ]] || continue
      # 0007-exec.process.json -> <scenario>.0007.process.json
      n=$(basename "$f"); kind=${n#*-}; kind=${kind#*.}; n=${n%%-*}
      [[ $f == *.stdin.json ]] && kind=update.json
      jq . "$f" >"$dst/$name.$n.$kind"
    done
  done
  # one map per client: ids keep their identity across argv.log, config.json
  # and SCENARIOS.md (e.g. the id printed by `docker run -d`).
  sanitize "$dst"/*
  log "$client: $(ls "$dst" | wc -l) files in $dst"
}

for client in "${CLIENTS[@]}"; do
  rm -rf "${CAPROOT:?}/$client"
  "capture_$client"
  collect "$client"
done
log "done: fixtures in $OUT"
