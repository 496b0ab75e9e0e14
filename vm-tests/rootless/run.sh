#!/usr/bin/env bash
# Rootless Podman with brig as its runtime, end to end (issue 7).
#
#   sudo vm-tests/rootless/run.sh [BRIG_BINARY]     (default: target/debug/brig)
#
# As root, it creates a throw-away unprivileged user with /etc/subuid and
# /etc/subgid ranges, its $XDG_RUNTIME_DIR (/run/user/UID, as logind would),
# a cgroup subtree delegated to it (/brig-rootless/UID in every v1 hierarchy on
# this host; on cgroup v2 the directory and its cgroup.procs, cgroup.threads
# and cgroup.subtree_control, with the user's processes in a `session` leaf:
# docs/rootless.md), a busybox image in the user's Podman storage and a brig
# configuration (~/.config/brig/config.toml, profile `restricted`), then runs,
# as that user:
#
#   rootless::run           podman --runtime BRIG run --rm --network none IMAGE:
#                           uid_map 0 UID 1 / 1 SUBUID 65536, NoNewPrivs 1,
#                           Seccomp 2, Landlock refuses an unlisted path, the
#                           restricted limits visible in the job's cgroup
#   rootless::lifecycle     run -d, the job's cgroup on the host (in the
#                           delegated subtree, limits written, owned by the user,
#                           the init the user on the host), exec (same
#                           enforcement), stop, rm: nothing left
#   rootless::pids_enforced a shell fork bomb stops at restricted's pids = 256
#   rootless::no_delegation the same run without the delegated subtree fails, and
#                           Podman shows brig's error naming the missing cgroup
#                           directories and how to delegate them
#
# Rootless Podman needs `--network none` here: /dev/net/tun is 0600, so neither
# slirp4netns nor pasta can give it a network.
#
# Everything is removed on exit (the user's containers and Podman's pause
# process, by pid, its storage, the user and its subordinate ranges, the
# cgroups, /run/user/UID). Output: `BRIG-ROOTLESS <check> PASS|FAIL [why]`,
# the failing check's log, and a summary line; exit status 0 only if every
# check passed, 2 on a setup error. Environment: BRIG_ROOTLESS_STATE (work
# directory, default /tmp/brig-rootless-e2e), BRIG_ROOTLESS_NO_APT=1 (do not
# install missing packages), BRIG_ROOTLESS_VERBOSE=1 (print every check's log).
set -u
umask 022

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
brig_src=${1:-$repo/target/debug/brig}
STATE=${BRIG_ROOTLESS_STATE:-/tmp/brig-rootless-e2e}
CG=/sys/fs/cgroup
NAME=brig-rl-e2e
failures=0
passes=0

die() { echo "run.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (it creates a user and delegates a cgroup subtree)"
[ -x "$brig_src" ] || die "no brig binary at $brig_src (cargo build -p brig, or pass its path)"

# ------------------------------------------------------------------ packages
need=()
for pair in podman:podman conmon:conmon newuidmap:uidmap newgidmap:uidmap busybox:busybox-static \
  setpriv:util-linux useradd:passwd; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "${BRIG_ROOTLESS_NO_APT:-0}" = 1 ] && die "missing packages: ${need[*]}"
  echo "installing: ${need[*]}"
  # No service may start from a package here.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
    { rm -f /usr/sbin/policy-rc.d; die "apt-get install ${need[*]} failed"; }
  rm -f /usr/sbin/policy-rc.d
fi
busybox=/bin/busybox
[ -x $busybox ] || busybox=$(command -v busybox)

unified=0
[ -f $CG/cgroup.controllers ] && unified=1

# ------------------------------------------------------------------ cleanup
uid=
cleanup() {
  set +e
  if [ -n "$uid" ]; then
    as_user podman rm -af -t 0 >/dev/null 2>&1
    as_user podman system reset -f >/dev/null 2>&1
    # Podman's pause process (and anything else of this throw-away user), by pid.
    for pid in $(ps -o pid= -u "$uid" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    undelegate
    userdel "$NAME" >/dev/null 2>&1
    sed -i "/^$NAME:/d" /etc/subuid /etc/subgid
    rm -rf "/run/user/$uid"
  fi
  rm -rf "$STATE"
}
trap cleanup EXIT

# ------------------------------------------------------------------ the user
if id "$NAME" >/dev/null 2>&1; then
  echo "a user $NAME exists from an earlier run: removing it"
  old=$(id -u "$NAME")
  for pid in $(ps -o pid= -u "$old" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  userdel "$NAME" >/dev/null 2>&1
  sed -i "/^$NAME:/d" /etc/subuid /etc/subgid
  rm -rf "/run/user/$old"
fi
rm -rf "$STATE"
mkdir -p "$STATE/home/.config/brig" "$STATE/home/.config/containers" "$STATE/bin" "$STATE/img"
chmod 755 "$STATE"
useradd -M -d "$STATE/home" -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$NAME" || die "useradd failed"
uid=$(id -u "$NAME")
gid=$(id -g "$NAME")
# A free, 65536-aligned subordinate range at or above 2^21.
start=2097152
while awk -F: -v s="$start" '{ if (s < $2 + $3 && $2 < s + 65536) found = 1 } END { exit !found }' \
  /etc/subuid /etc/subgid 2>/dev/null; do
  start=$((start + 65536))
done
usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$NAME" ||
  die "usermod --add-subuids failed"
mkdir -p "/run/user/$uid" && chown "$uid:$gid" "/run/user/$uid" && chmod 700 "/run/user/$uid"

# The delegated subtree (docs/rootless.md).
PARENT=/brig-rootless/$uid
delegate() {
  if [ $unified = 1 ]; then
    d=$CG$PARENT
    mkdir -p "$d/session"
    for c in cpu memory pids; do
      echo "+$c" >"$CG/brig-rootless/cgroup.subtree_control"
      echo "+$c" >"$d/cgroup.subtree_control"
    done
    chown "$uid:$gid" "$d" "$d/cgroup.procs" "$d/cgroup.threads" "$d/cgroup.subtree_control"
    chown -R "$uid:$gid" "$d/session"
  else
    for m in $(awk '$9 == "cgroup" && $NF !~ /name=/ { print $5 }' /proc/self/mountinfo); do
      d=$m$PARENT
      mkdir -p "$d"
      if [ -f "$m/cpuset.cpus" ]; then
        for f in cpuset.cpus cpuset.mems; do
          cat "$m/$f" >"$m/brig-rootless/$f"
          cat "$m/$f" >"$d/$f"
        done
      fi
      chown "$uid:$gid" "$d" "$d/cgroup.procs" "$d/tasks"
    done
  fi
}
undelegate() {
  local dirs
  if [ $unified = 1 ]; then dirs=$CG$PARENT; else
    dirs=$(awk -v p="$PARENT" '$9 == "cgroup" && $NF !~ /name=/ { print $5 p }' /proc/self/mountinfo)
  fi
  for d in $dirs; do
    [ -d "$d" ] || continue
    find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
    rmdir "$d" 2>/dev/null
    rmdir "$(dirname "$d")" 2>/dev/null
  done
}

# Runs a command as the user, in its session (on v2: inside the delegated subtree).
as_user() {
  local pre=()
  if [ $unified = 1 ] && [ -d "$CG$PARENT/session" ]; then
    pre=(sh -c 'echo $$ >"$0" && exec "$@"' "$CG$PARENT/session/cgroup.procs")
  fi
  "${pre[@]}" setpriv --reuid "$uid" --regid "$gid" --init-groups \
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$STATE/home" USER="$NAME" LOGNAME="$NAME" \
    XDG_RUNTIME_DIR="/run/user/$uid" CONTAINERS_CONF="$STATE/home/.config/containers/containers.conf" "$@"
}

BRIG=$STATE/bin/brig
cp "$brig_src" "$BRIG" && chmod 755 "$BRIG"
# Podman: no systemd here (cgroupfs, file events); nofile within the hard limit.
cat >"$STATE/home/.config/containers/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
printf '[auth]\nmode = "off"\n[profiles]\ndefault = "restricted"\n' >"$STATE/home/.config/brig/config.toml"

# A busybox image with a file restricted's Landlock rules do not cover.
img=$STATE/img/rootfs
mkdir -p "$img/bin" "$img/etc" "$img/secret" "$img/tmp" "$img/proc" "$img/sys" "$img/dev"
cp "$busybox" "$img/bin/busybox"
for a in $("$busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$img/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$img/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$img/etc/group"
echo "top secret" >"$img/secret/data.txt"
tar -C "$img" -cf "$STATE/img/busybox.tar" .
chown -R "$uid:$gid" "$STATE"
IMAGE=localhost/brig-rootless-busybox:latest
as_user podman import "$STATE/img/busybox.tar" "$IMAGE" >"$STATE/import.log" 2>&1 ||
  { cat "$STATE/import.log"; die "podman import as $NAME failed"; }

delegate
echo "BRIG-ROOTLESS-INFO $(podman --version), $("$BRIG" --version | head -1), cgroup $([ $unified = 1 ] && echo v2 || echo v1), user $NAME uid $uid subuid $start+65536"

# ------------------------------------------------------------------ checks
bad=0
expect() { # LABEL TEXT PATTERN: TEXT matches the extended regex
  if printf '%s\n' "$2" | grep -Eq -- "$3"; then echo "ok: $1"; else echo "MISMATCH: $1: want /$3/"; bad=1; fi
}
check() { # NAME FUNCTION
  bad=0
  "$2" >"$STATE/$1.log" 2>&1
  if [ $bad = 0 ]; then
    echo "BRIG-ROOTLESS rootless::$1 PASS"
    [ "${BRIG_ROOTLESS_VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$STATE/$1.log"
    passes=$((passes + 1))
  else
    echo "BRIG-ROOTLESS rootless::$1 FAIL"
    echo "---- log of rootless::$1"
    cat "$STATE/$1.log"
    echo "----"
    failures=$((failures + 1))
  fi
}
podman_brig() { as_user podman --runtime "$BRIG" "$@"; }

job='cat /proc/self/uid_map; grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status;
     cat /secret/data.txt 2>&1 | sed "s/^/landlock: /";
     echo "pids.max $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)";
     echo "memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"'

run_check() {
  echo "+ podman --runtime $BRIG run --rm --network none $IMAGE sh -c ..."
  out=$(podman_brig run --rm --network none "$IMAGE" sh -c "$job" 2>&1)
  echo "rc=$?"
  echo "$out"
  expect "container root is the user" "$out" "^ +0 +$uid +1$"
  expect "container 1.. are the user's subordinate IDs" "$out" "^ +1 +$start +65536$"
  expect "no_new_privs" "$out" "^NoNewPrivs:[[:space:]]+1$"
  expect "seccomp filter" "$out" "^Seccomp:[[:space:]]+2$"
  expect "Landlock refuses /secret" "$out" "landlock: .*Permission denied"
  expect "restricted's pids limit in the job's cgroup" "$out" "^pids.max 256$"
  expect "restricted's memory limit in the job's cgroup" "$out" "^memory 536870912$"
}

lifecycle_check() {
  echo "+ podman --runtime $BRIG run -d --name rl1 --network none $IMAGE sleep 300"
  podman_brig run -d --name rl1 --network none "$IMAGE" sleep 300 || { bad=1; return; }
  cid=$(as_user podman inspect -f '{{.Id}}' rl1)
  pid=$(as_user podman inspect -f '{{.State.Pid}}' rl1)
  echo "container $cid, pid $pid"
  if [ $unified = 1 ]; then
    d=$CG$PARENT/$cid
    expect "pids.max on the host" "$(cat "$d/pids.max" 2>&1)" "^256$"
    expect "memory.max on the host" "$(cat "$d/memory.max" 2>&1)" "^536870912$"
  else
    expect "pids.max on the host" "$(cat "$CG/pids$PARENT/$cid/pids.max" 2>&1)" "^256$"
    expect "memory.limit_in_bytes on the host" "$(cat "$CG/memory$PARENT/$cid/memory.limit_in_bytes" 2>&1)" "^536870912$"
    expect "the job's cgroup belongs to the user" "$(stat -c %u "$CG/memory$PARENT/$cid")" "^$uid$"
  fi
  expect "the init is in the delegated subtree" "$(cat /proc/"$pid"/cgroup 2>&1)" "$PARENT/$cid"
  expect "the init is the user on the host" "$(grep '^Uid:' /proc/"$pid"/status)" "^Uid:[[:space:]]+$uid[[:space:]]+$uid"
  expect "brig's state is under XDG_RUNTIME_DIR" "$(ls "/run/user/$uid/brig" 2>&1)" "$cid"
  echo "+ podman exec rl1 ..."
  out=$(as_user podman exec rl1 sh -c 'id -u; grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status; cat /secret/data.txt 2>&1' 2>&1)
  echo "$out"
  expect "exec: root in the job" "$out" "^0$"
  expect "exec: seccomp" "$out" "^Seccomp:[[:space:]]+2$"
  expect "exec: no_new_privs" "$out" "^NoNewPrivs:[[:space:]]+1$"
  expect "exec: Landlock" "$out" "Permission denied"
  echo "+ podman stop, rm"
  as_user podman stop -t 2 rl1 || bad=1
  as_user podman rm rl1 || bad=1
  left=$(ls "/run/user/$uid/brig" 2>/dev/null | grep -v '^\.')
  [ -z "$left" ] || { echo "MISMATCH: brig state left: $left"; bad=1; }
  if [ $unified = 1 ]; then [ ! -d "$CG$PARENT/$cid" ] || { echo "MISMATCH: cgroup left"; bad=1; }
  else
    for m in $(awk '$9 == "cgroup" && $NF !~ /name=/ { print $5 }' /proc/self/mountinfo); do
      [ ! -d "$m$PARENT/$cid" ] || { echo "MISMATCH: cgroup left in $m"; bad=1; }
    done
  fi
}

pids_check() {
  # restricted: pids = 256. Start sleepers until fork fails.
  # The inner shell dies when fork fails; the outer one reports with builtins
  # only (no fork left).
  bomb='sh -c '\''i=0; while [ $i -lt 400 ]; do sleep 60 & i=$((i+1)); echo $i >/tmp/n; done'\''; read n </tmp/n; echo "started $n"'
  out=$(podman_brig run --rm --network none "$IMAGE" sh -c "$bomb" 2>&1)
  echo "$out" | tail -3
  n=$(echo "$out" | sed -n 's/^started //p' | tail -1)
  if [ -n "$n" ] && [ "$n" -lt 256 ] && echo "$out" | grep -q "can't fork"; then
    echo "ok: stopped after $n processes (can't fork)"
  else
    echo "MISMATCH: want fewer than 256 processes and \"can't fork\", got '$n'"
    bad=1
  fi
}

no_delegation_check() {
  undelegate
  out=$(podman_brig run --rm --network none "$IMAGE" true 2>&1)
  rc=$?
  echo "rc=$rc"
  echo "$out"
  [ $rc != 0 ] || { echo "MISMATCH: it ran without its limits"; bad=1; }
  expect "names the missing delegation" "$out" "not delegated|no cgroup subtree is delegated"
  expect "names the directory" "$out" "brig-rootless/$uid"
  expect "says how to delegate" "$out" "chown $uid"
  expect "names the profile's limits" "$out" "profile .restricted. sets \[cgroup\] memory = 512m"
  delegate
}

check run run_check
check lifecycle lifecycle_check
check pids_enforced pids_check
check no_delegation no_delegation_check

echo "BRIG-ROOTLESS $passes passed, $failures failed"
[ $failures = 0 ]
