#!/usr/bin/env bash
# The sample job: a busybox rootfs, a job under the `restricted` profile, and
# what brig enforced.
set -euo pipefail
BRIG=${1:-/usr/local/bin/brig}
demo=/var/lib/brig/demo
mkdir -p "$demo/rootfs"/{bin,dev,etc,proc,sys,tmp} "$demo/profiles"
if [[ ! -x $demo/rootfs/bin/busybox ]]; then
  cp /bin/busybox "$demo/rootfs/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$demo/rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$demo/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$demo/rootfs/etc/group"
fi
# A demo configuration: authorization explicitly off (see docs/ for tokens and
# policies), the default `restricted` profile.
cat > "$demo/config.toml" <<TOML
[auth]
mode = "off"
[profiles]
default = "restricted"
dir = "$demo/profiles"
TOML
rm -f "$demo/config.json"
"$BRIG" spec --bundle "$demo"
python3 - "$demo/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"] = {"path": "rootfs", "readonly": False}
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    "echo 'hello from a hardened job'; grep -E 'NoNewPrivs|CapEff|Seccomp:' /proc/self/status; "
    "touch /etc/x 2>&1 || true; cat /proc/kcore | head -c 1 | wc -c; mount -t tmpfs none /mnt 2>&1 || true"]
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
echo "== brig run (profile restricted)"
"$BRIG" --config "$demo/config.toml" run --bundle "$demo" "demo-$$"
