#!/usr/bin/env bash
# brig on a pure cgroup v2 kernel, in a QEMU virtual machine (issue 8).
#
# Usage (as root, on Debian 12; CI runs it so):
#   vm-tests/qemu/run.sh
#
# What it does:
#   1. installs what it needs (only what is missing): qemu-system-x86 and
#      qemu-utils together from bookworm-backports (installing qemu-system-x86
#      from plain bookworm would remove the preinstalled qemu-utils 10.0; the
#      backports source is added if missing), busybox-static, cpio, xz-utils;
#      downloads a Debian 6.12 kernel from bookworm-backports with
#      `apt-get download` and unpacks it with `dpkg-deb -x` (no install), into
#      target/vm-tests/cache/ (kept between runs).
#   2. builds brig and the integration-test binaries (`cargo build -p brig`,
#      `cargo test --no-run -p brig-tests`).
#   3. builds an uncompressed initramfs (target/vm-tests/initramfs.cpio):
#      static busybox (/bin/busybox, also what the tests copy into their root
#      filesystems), brig, brig-probe and the test binaries (debug info
#      stripped) with every shared library they need, an `ldd` (the tests call
#      it), the loop module (for the io checks), and the scripts of this
#      directory: init (the guest's pid 1), suite.sh (the focused test
#      selection), v2-checks.sh (cgroup v2 limits, OOM, io, rootless).
#   4. boots it under `-accel tcg` (this host's /dev/kvm runs only PVM guest
#      kernels; a stock kernel hangs under -enable-kvm) with `cgroup_no_v1=all`:
#      the guest copies itself to a tmpfs and switch_roots into it (pivot_root
#      is impossible from the initramfs), mounts cgroup2 with every controller
#      enabled, runs the suite and powers off.
#   5. reads the serial console: lines `BRIG-VMTEST <name> PASS|FAIL|SKIP
#      <seconds>s [detail]`, then `BRIG-VMTEST-DONE <code>`. Prints a summary
#      and the timings, writes them to target/vm-tests/summary.txt (the whole
#      console to target/vm-tests/console.log), and exits 1 if any check
#      failed or the guest never reported it was done (2 on a setup error).
#
# Environment:
#   BRIG_VM_TIMEOUT      seconds allowed to the virtual machine (default 720)
#   BRIG_VM_MEMORY       guest memory in MiB (default 2048)
#   BRIG_VM_CPUS         guest vCPUs (default 2)
#   BRIG_VM_KERNEL       kernel package to use, e.g. linux-image-6.12.95+deb12-amd64
#                        (default: what linux-image-amd64 in bookworm-backports depends on)
#   BRIG_VM_NO_BUILD=1   do not run cargo: use target/debug/brig and the newest
#                        test binaries in target/debug/deps
#   BRIG_VM_NO_APT=1     do not install packages (they must be there)
#   BRIG_VM_TESTS        override the test selection: space-separated
#                        `binary:filter` items (see suite.sh), e.g.
#                        "lifecycle:cgroup_limits attacks:memory_bomb"
#   BRIG_VM_CHECKS=0     skip v2-checks.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$repo/target/vm-tests"
cache="$out/cache"
timeout_s=${BRIG_VM_TIMEOUT:-720}
mem=${BRIG_VM_MEMORY:-2048}
cpus=${BRIG_VM_CPUS:-2}
# The test binaries the guest runs (tests/tests/<name>.rs).
test_bins=(lifecycle attacks profile_cli)

t_start=$EPOCHREALTIME
say() { printf '==> %s\n' "$*"; }
die() { printf 'vm-tests/qemu: %s\n' "$*" >&2; exit 2; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

[[ $(id -u) == 0 ]] || die "run as root (apt-get, and the guest's tests run as root)"
[[ $(uname -m) == x86_64 ]] || die "x86_64 hosts only"
mkdir -p "$cache"

# ---------------------------------------------------------------- 1. packages
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
apt_updated=0
apt_update() {
  if ((apt_updated == 0)); then
    apt-get update -q >"$out/apt-update.log" 2>&1 || { cat "$out/apt-update.log" >&2; die "apt-get update failed"; }
    apt_updated=1
  fi
}
ensure_backports() {
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    say "adding the bookworm-backports apt source"
    cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt_updated=0
  fi
}

t_deps=$EPOCHREALTIME
if [[ ${BRIG_VM_NO_APT:-0} != 1 ]]; then
  export DEBIAN_FRONTEND=noninteractive
  ensure_backports
  missing=()
  for p in busybox-static cpio xz-utils binutils kmod nftables strace; do have "$p" || missing+=("$p"); done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt_update
    apt-get install -y -q --no-install-recommends "${missing[@]}" >"$out/apt-install.log" 2>&1 ||
      { tail -20 "$out/apt-install.log" >&2; die "apt-get install ${missing[*]} failed"; }
  fi
  # qemu-system-x86 and qemu-utils together, both from backports.
  if ! have qemu-system-x86 || ! dpkg-query -W -f='${Version}' qemu-system-x86 | grep -q bpo12; then
    say "installing qemu-system-x86 and qemu-utils from bookworm-backports"
    apt_update
    apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils \
      >"$out/apt-install.log" 2>&1 || { tail -20 "$out/apt-install.log" >&2; die "installing qemu failed"; }
  fi
fi
for c in qemu-system-x86_64 busybox cpio xz objcopy dpkg-deb depmod modinfo; do
  command -v "$c" >/dev/null || die "$c is missing (install it, or run without BRIG_VM_NO_APT)"
done
[[ -x /bin/busybox ]] && file_is_static=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)
[[ ${file_is_static:-} == *"not a dynamic executable"* ]] || die "/bin/busybox is not Debian's static busybox (busybox-static)"

# The kernel: a 6.12 image from bookworm-backports (Landlock ABI 6; Debian 12's
# own 6.1 has ABI 2), downloaded once and unpacked, never installed.
kpkg=${BRIG_VM_KERNEL:-}
if [[ -z $kpkg ]]; then
  kpkg=$(cat "$cache/kernel-package" 2>/dev/null || true)
  if [[ -z $kpkg || ! -d $cache/kernel-$kpkg ]]; then
    [[ ${BRIG_VM_NO_APT:-0} == 1 ]] && die "no cached kernel in $cache: run once without BRIG_VM_NO_APT"
    ensure_backports
    apt_update
    kpkg=$(apt-cache show 'linux-image-amd64/bookworm-backports' 2>/dev/null |
      sed -n 's/^Depends:.*\(linux-image-6\.[0-9.]*+[a-z0-9.]*-amd64\).*/\1/p' | head -1)
    [[ $kpkg == linux-image-6.1[2-9]* ]] || die "cannot find a 6.12 kernel in bookworm-backports (got '$kpkg'); set BRIG_VM_KERNEL"
  fi
  # Remembered, so that reruns need no apt-get update (remove the cache for a newer one).
  echo "$kpkg" >"$cache/kernel-package"
fi
kdir="$cache/kernel-$kpkg"
if [[ ! -f $kdir/.unpacked ]]; then
  say "downloading $kpkg"
  rm -rf "$kdir" "$cache/dl"
  mkdir -p "$cache/dl"
  apt_update
  # apt's sandbox user cannot write under /work: -o APT::Sandbox::User=root.
  (cd "$cache/dl" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >"$out/apt-download.log" 2>&1) ||
    { cat "$out/apt-download.log" >&2; die "apt-get download $kpkg failed"; }
  dpkg-deb -x "$cache"/dl/*.deb "$kdir"
  rm -rf "$cache/dl"
  touch "$kdir/.unpacked"
fi
kver=${kpkg#linux-image-}
vmlinuz="$kdir/boot/vmlinuz-$kver"
[[ -f $vmlinuz ]] || die "$vmlinuz missing in the unpacked package"
t_deps_done=$EPOCHREALTIME

# ------------------------------------------------------------------ 2. build
t_build=$EPOCHREALTIME
declare -A bin_path
if [[ ${BRIG_VM_NO_BUILD:-0} != 1 ]]; then
  say "cargo build -p brig; cargo test --no-run -p brig-tests"
  (cd "$repo" && cargo build -q -p brig) || die "cargo build -p brig failed"
  json=$(cd "$repo" && cargo test -q --no-run -p brig-tests --message-format=json) ||
    die "cargo test --no-run -p brig-tests failed"
  for t in "${test_bins[@]}"; do
    bin_path[$t]=$(grep '"reason":"compiler-artifact"' <<<"$json" | grep "\"kind\":\[\"test\"\],[^}]*\"name\":\"$t\"" |
      sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
  done
else
  for t in "${test_bins[@]}"; do
    newest=""
    for f in "$repo"/target/debug/deps/"$t"-*; do
      [[ -x $f && $f != *.d && ( -z $newest || $f -nt $newest ) ]] && newest=$f
    done
    bin_path[$t]=$newest
  done
fi
brig="$repo/target/debug/brig"
probe="$repo/target/debug/brig-probe"
for f in "$brig" "$probe" "${bin_path[@]}"; do
  [[ -n $f && -x $f ]] || die "missing binary '$f' (build it: cargo build -p brig && cargo test --no-run -p brig-tests)"
done
t_build_done=$EPOCHREALTIME

# -------------------------------------------------------------- 3. initramfs
t_img=$EPOCHREALTIME
say "building the initramfs"
root="$out/initramfs"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,vmtest,lib/modules}
mkdir -p "$root/opt/brig/debug/deps"
chmod 1777 "$root/tmp"
# The kernel opens /dev/console for /init before anything is mounted.
mknod -m 600 "$root/dev/console" c 5 1
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
done
# A `ldd` for the tests (they copy brig-probe's libraries into their root
# filesystems): the dynamic loader's --list prints what ldd prints.
cat >"$root/usr/bin/ldd" <<'EOF'
#!/bin/sh
for f in "$@"; do /lib64/ld-linux-x86-64.so.2 --list "$f" || exit 1; done
EOF
chmod 755 "$root/usr/bin/ldd"

extra_bins=()
strip_copy() { objcopy --strip-debug "$1" "$2" && chmod 755 "$2"; }
strip_copy "$brig" "$root/opt/brig/debug/brig"
strip_copy "$probe" "$root/opt/brig/debug/brig-probe"
for t in "${test_bins[@]}"; do
  strip_copy "${bin_path[$t]}" "$root/opt/brig/debug/deps/$t"
done
# nft for brig's egress rules (brig looks for /usr/sbin/nft).
if [[ -x /usr/sbin/nft ]]; then
  cp /usr/sbin/nft "$root/usr/sbin/nft"
  extra_bins+=(/usr/sbin/nft)
fi
# strace for the test that traces the order of an exec's seccomp filter and
# its execve of the supervisor (attacks.rs).
if [[ -x /usr/bin/strace ]]; then
  cp /usr/bin/strace "$root/usr/bin/strace"
  extra_bins+=(/usr/bin/strace)
fi
# Every shared library, at the path ldd names (cp -L: real files, no symlinks
# into a /usr the image does not have).
for f in "$brig" "$probe" "${bin_path[@]}" "${extra_bins[@]}"; do
  ldd "$f" | grep -o '/[^ ]*' | sort -u
done | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
[[ -f $root/lib64/ld-linux-x86-64.so.2 ]] || die "the dynamic loader was not copied"

# Kernel modules (decompressed; modules.dep and modules.alias by depmod, so
# that the kernel's own module requests work through busybox's modprobe):
# loop for the io.max checks; nftables and conntrack for brig's egress rules
# (`[network] mode = "none"` in restricted installs an nftables ruleset), with
# what they depend on. Everything else the guest needs is built in.
mods_src="$kdir/lib/modules/$kver"
mods_dst="$root/lib/modules/$kver"
mkdir -p "$mods_dst"
cp "$mods_src"/modules.builtin "$mods_src"/modules.builtin.modinfo "$mods_src"/modules.order "$mods_dst/" 2>/dev/null || true
declare -A mod_file=() mod_seen=()
while IFS= read -r f; do
  n=${f##*/}; n=${n%%.ko*}; mod_file[${n//-/_}]=$f
done < <(find "$mods_src/kernel" -name '*.ko*')
mod_queue=(loop crc32c_generic crc32c_intel)
for d in net/netfilter net/ipv4/netfilter net/ipv6/netfilter; do
  while IFS= read -r f; do n=${f##*/}; n=${n%%.ko*}; mod_queue+=("${n//-/_}"); done < <(find "$mods_src/kernel/$d" -name '*.ko*')
done
while ((${#mod_queue[@]})); do
  m=${mod_queue[0]}; mod_queue=("${mod_queue[@]:1}")
  [[ -n ${mod_seen[$m]:-} ]] && continue
  mod_seen[$m]=1
  f=${mod_file[$m]:-}
  [[ -n $f ]] || continue   # built in
  rel=${f#"$mods_src"/}; rel=${rel%.xz}; rel=${rel%.zst}
  mkdir -p "$mods_dst/$(dirname "$rel")"
  case $f in
    *.xz) xz -dc "$f" >"$mods_dst/$rel" ;;
    *.zst) zstd -dqc "$f" >"$mods_dst/$rel" ;;
    *) cp "$f" "$mods_dst/$rel" ;;
  esac
  deps=$(modinfo -F depends "$f" 2>/dev/null || true)
  for dep in ${deps//,/ }; do mod_queue+=("${dep//-/_}"); done
done
depmod -b "$root" "$kver" || die "depmod failed"
# The kernel runs /sbin/modprobe for module requests (nftables expressions).
ln -sf ../bin/busybox "$root/sbin/modprobe"

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
brig:x:1000:1000:rootless brig:/home/brig:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
brig:x:1000:
nogroup:x:65534:
EOF
echo "brig-vm" >"$root/etc/hostname"

cp "$here/init" "$root/init"
cp "$here/suite.sh" "$here/v2-checks.sh" "$root/vmtest/"
chmod 755 "$root/init" "$root"/vmtest/*.sh
{
  echo "BRIG_VM_TESTS='${BRIG_VM_TESTS:-}'"
  echo "BRIG_VM_CHECKS='${BRIG_VM_CHECKS:-1}'"
  echo "BRIG_VM_HOST_EPOCH='$(date +%s)'"
} >"$root/vmtest/env"

img="$out/initramfs.cpio"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 >"$img.tmp")
mv "$img.tmp" "$img"
img_mb=$(( $(stat -c %s "$img") / 1048576 ))
t_img_done=$EPOCHREALTIME
say "initramfs: ${img_mb} MiB, kernel $kver"

# -------------------------------------------------------------------- 4. boot
console="$out/console.log"
summary="$out/summary.txt"
: >"$console"
cmdline="console=ttyS0,115200 cgroup_no_v1=all loglevel=3 panic=-1 mitigations=off rdinit=/init"
say "booting (tcg, ${cpus} vCPUs, ${mem} MiB, at most ${timeout_s}s): $cmdline"
t_vm=$EPOCHREALTIME
t_booted=""
t_suite_done=""
done_code=""
set +e
# stdin from /dev/null: the serial console is output only. -no-reboot: a
# guest panic (panic=-1 reboots) ends QEMU instead of looping.
timeout --kill-after=10 "$timeout_s" \
  qemu-system-x86_64 -accel tcg -cpu max -smp "$cpus" -m "$mem" \
  -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$img" -append "$cmdline" </dev/null 2>&1 |
  while IFS= read -r line; do
    line=${line%$'\r'}
    printf '%s\n' "$line" >>"$console"
    case $line in
      *BRIG-VMTEST-BOOTED*) printf '%s\n' "$EPOCHREALTIME" >"$out/.t_booted" ;;
      *BRIG-VMTEST-DONE*) printf '%s\n' "$EPOCHREALTIME" >"$out/.t_done" ;;
    esac
    printf '%s\n' "$line"
  done
qemu_rc=${PIPESTATUS[0]}
set -e
t_vm_done=$EPOCHREALTIME
t_booted=$(cat "$out/.t_booted" 2>/dev/null || true)
t_suite_done=$(cat "$out/.t_done" 2>/dev/null || true)
rm -f "$out/.t_booted" "$out/.t_done"

# ----------------------------------------------------------------- 5. report
sec() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
results=$(sed -n 's/.*\(BRIG-VMTEST [^ ]* \(PASS\|FAIL\|SKIP\).*\)$/\1/p' "$console")
done_code=$(sed -n 's/.*BRIG-VMTEST-DONE \([0-9]*\).*/\1/p' "$console" | tail -1)
guest_info=$(sed -n 's/.*BRIG-VMTEST-INFO \(.*\)$/\1/p' "$console")
npass=$(grep -c ' PASS' <<<"$results" || true)
nfail=$(grep -c ' FAIL' <<<"$results" || true)
nskip=$(grep -c ' SKIP' <<<"$results" || true)
{
  echo "brig on cgroup v2 in QEMU ($kpkg, tcg, ${cpus} vCPUs, ${mem} MiB)"
  [[ -n $guest_info ]] && sed 's/^/  guest: /' <<<"$guest_info"
  echo
  printf '%s\n' "$results" | awk 'NF { printf "  %-4s %-70s %s %s\n", $3, $2, $4, substr($0, index($0,$4)+length($4)+1) }'
  echo
  echo "timings:"
  echo "  packages + kernel  $(sec "$t_deps" "$t_deps_done") s"
  echo "  cargo build        $(sec "$t_build" "$t_build_done") s"
  echo "  initramfs          $(sec "$t_img" "$t_img_done") s (${img_mb} MiB)"
  if [[ -n $t_booted ]]; then
    echo "  VM boot            $(sec "$t_vm" "$t_booted") s (QEMU start to the suite's first line)"
    [[ -n $t_suite_done ]] && echo "  suite              $(sec "$t_booted" "$t_suite_done") s"
  fi
  echo "  VM total           $(sec "$t_vm" "$t_vm_done") s (QEMU exit status $qemu_rc)"
  echo "  total              $(sec "$t_start" "$EPOCHREALTIME") s"
  echo
  echo "${npass} passed, ${nfail} failed, ${nskip} skipped"
} | tee "$summary"

if [[ -z $done_code ]]; then
  if [[ $qemu_rc == 124 || $qemu_rc == 137 ]]; then
    echo "vm-tests/qemu: the guest did not finish within ${timeout_s}s (BRIG_VM_TIMEOUT); console: $console" >&2
  else
    echo "vm-tests/qemu: the guest never reported BRIG-VMTEST-DONE (QEMU exit $qemu_rc); console: $console" >&2
  fi
  exit 1
fi
if ((nfail > 0)) || [[ $done_code != 0 ]] || ((npass == 0)); then
  echo "vm-tests/qemu: FAILED (guest exit code $done_code); console: $console" >&2
  exit 1
fi
echo "vm-tests/qemu: all passed"
