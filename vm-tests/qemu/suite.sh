#!/bin/sh
# The focused suite run inside the cgroup v2 VM (vm-tests/qemu/init calls it).
#
# Container launches are 50-70x slower under QEMU's software emulation than
# on the host, so this runs a selection of brig's integration tests, one test
# per process (`--exact NAME --test-threads=1`, each bounded by `timeout`),
# then v2-checks.sh. Every result is one line on the serial console:
#   BRIG-VMTEST <binary>::<test> PASS|FAIL <seconds>s
# and a failing test's output follows between `----` lines. Exit status: the
# number of failures (capped at 99).
#
# Selection (BRIG_VM_TESTS overrides it): space-separated items, each
# `binary` (every test of tests/tests/<binary>.rs) or `binary:substring`.
DEFAULT_TESTS="
lifecycle
attacks
profile_cli
"
TEST_TIMEOUT=${BRIG_VM_TEST_TIMEOUT:-300}
BIN_DIR=/opt/brig/debug/deps
export RUST_BACKTRACE=1

now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

failures=0
selection=${BRIG_VM_TESTS:-$DEFAULT_TESTS}

echo "BRIG-VMTEST-INFO kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "BRIG-VMTEST-INFO subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "BRIG-VMTEST-INFO $(/opt/brig/debug/brig --version 2>&1 | head -1), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2/1024) " MiB" }' /proc/meminfo)"
lsm=$(cat /sys/kernel/security/lsm 2>/dev/null || echo unknown)
echo "BRIG-VMTEST-INFO LSMs: $lsm"
[ -d /sys/fs/cgroup/memory ] && echo "BRIG-VMTEST-INFO unexpected: a v1 hierarchy is mounted"

suite_start=$(now)
for item in $selection; do
  bin=${item%%:*}
  filter=
  case $item in *:*) filter=${item#*:} ;; esac
  exe=$BIN_DIR/$bin
  if [ ! -x "$exe" ]; then
    echo "BRIG-VMTEST $bin FAIL 0.0s (no test binary $exe)"
    failures=$((failures + 1))
    continue
  fi
  names=$("$exe" --list 2>/dev/null | sed -n 's/: test$//p')
  [ -n "$filter" ] && names=$(echo "$names" | grep -F -- "$filter")
  if [ -z "$names" ]; then
    echo "BRIG-VMTEST $bin:$filter FAIL 0.0s (no test matches)"
    failures=$((failures + 1))
    continue
  fi
  for name in $names; do
    t0=$(now)
    timeout "$TEST_TIMEOUT" "$exe" --exact "$name" --test-threads=1 >/tmp/test.out 2>&1
    rc=$?
    if [ $rc = 0 ] && grep -q '^test result: ok. 1 passed' /tmp/test.out; then
      echo "BRIG-VMTEST $bin::$name PASS $(elapsed "$t0")s"
    else
      why="exit $rc"
      [ $rc = 124 ] && why="timed out after ${TEST_TIMEOUT}s"
      echo "BRIG-VMTEST $bin::$name FAIL $(elapsed "$t0")s ($why)"
      echo "---- output of $bin::$name"
      cat /tmp/test.out
      echo "----"
      failures=$((failures + 1))
    fi
  done
done
echo "BRIG-VMTEST-INFO integration tests took $(elapsed "$suite_start")s"

if [ "${BRIG_VM_CHECKS:-1}" != 0 ]; then
  t0=$(now)
  /vmtest/v2-checks.sh
  n=$?
  failures=$((failures + n))
  echo "BRIG-VMTEST-INFO v2 checks took $(elapsed "$t0")s"
fi
# Nothing may be left behind: no process outside the root cgroup (a leaked
# container), and the cgroups that remain are listed.
busy=$(find /sys/fs/cgroup -mindepth 2 -name cgroup.procs | while read -r procs; do
  [ -n "$(cat "$procs")" ] && printf ' %s' "${procs%/cgroup.procs}"
done)
if [ -n "$busy" ]; then
  echo "BRIG-VMTEST cleanup::no_processes_left_in_cgroups FAIL 0.0s ($busy)"
  failures=$((failures + 1))
else
  echo "BRIG-VMTEST cleanup::no_processes_left_in_cgroups PASS 0.0s"
fi
echo "BRIG-VMTEST-INFO cgroups left: $(find /sys/fs/cgroup -mindepth 1 -type d | sed 's|/sys/fs/cgroup||' | tr '\n' ' ')"
[ $failures -gt 99 ] && failures=99
exit $failures
