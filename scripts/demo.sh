#!/usr/bin/env bash
# The sample job, end to end (run by install.sh; CI runs it too):
# a token for tenant `acme`, a job under `restricted` that reads an input and
# writes outputs, a refused launch, and the verified attestation.
set -euo pipefail
BRIG=${1:-/usr/local/bin/brig}
CONF=${BRIG_CONFIG:-/etc/brig/config.toml}
ETC=$(dirname "$CONF")
[[ -e $CONF ]] || { echo "demo: no $CONF: run \`brig init\` first" >&2; exit 1; }
brig() { "$BRIG" --config "$CONF" "$@"; }
say() { printf '\n== %s\n' "$*"; }

demo=/var/lib/brig/demo
mkdir -p "$demo/rootfs"/{bin,dev,etc,proc,sys,tmp,in,out}
if [[ ! -x $demo/rootfs/bin/busybox ]]; then
  cp /bin/busybox "$demo/rootfs/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$demo/rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$demo/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$demo/rootfs/etc/group"
fi
# Tenant data, as a function platform lays it out (see policy/examples/).
jobs=/var/lib/brig/jobs
mkdir -p "$jobs/acme/in/batch-1" "$jobs/acme/out/batch-1" "$jobs/globex/in/batch-1"
printf 'the quick brown fox\njumps over the lazy dog\n' > "$jobs/acme/in/batch-1/words.txt"
printf 'globex secret\n' > "$jobs/globex/in/batch-1/secret.txt"
rm -f "$jobs/acme/out/batch-1"/*

issuer=$(sed -n 's/^issuers = \["\(.*\)"\]/\1/p' "$CONF" | head -1)
mint() { brig token mint --key "$ETC/keys/token.key" --iss "$issuer" --aud brig --sub "$1" --tenant "$2" --role function --ttl 10m; }

bundle() { # bundle DIR TOKEN TENANT
  local dir=$1 token=$2 tenant=$3
  mkdir -p "$dir"
  rm -f "$dir/config.json"
  brig spec --bundle "$dir"
  python3 - "$dir/config.json" "$demo/rootfs" "$token" "$jobs/$tenant" <<'PY'
import json, sys
path, rootfs, token, data = sys.argv[1:5]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    "tr a-z A-Z < /in/words.txt > /out/upper.txt; wc -w < /in/words.txt > /out/count.txt; "
    "echo 'job: wrote' $(ls /out); grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; "
    "echo -n 'uid_map: '; cat /proc/self/uid_map; touch /x 2>&1 | sed 's/^/rootfs: /'"]
c["mounts"] += [
    {"destination": "/in", "type": "bind", "source": data + "/in/batch-1", "options": ["rbind", "ro"]},
    {"destination": "/out", "type": "bind", "source": "/var/lib/brig/jobs/acme/out/batch-1", "options": ["rbind", "rw"]},
]
c["annotations"] = {
    "dev.brig.token": token,
    "dev.brig.inputs": "/in",
    "dev.brig.outputs": "/out",
    "dev.brig.timeout": "60s",
}
json.dump(c, open(path, "w"), indent=1)
PY
}

say "a token for tenant acme (development key from brig init)"
token=$(mint alice acme)
echo "${token:0:24}… ($(( ${#token} )) bytes)"

id="demo-$$"
bundle "$demo/job" "$token" acme
say "brig run $id  (profile restricted; input /in read-only, output /out)"
brig run --bundle "$demo/job" "$id"
echo "outputs on the host:"
ls -ln "$jobs/acme/out/batch-1"

say "a refused launch: a token for tenant globex asking for acme's data"
# globex's token, with the mounts of acme's bundle.
globex=$(mint bob globex)
bundle "$demo/refused" "$globex" acme
if brig run --bundle "$demo/refused" "demo-refused-$$"; then
  echo "demo: the launch should have been refused" >&2; exit 1
fi

say "the run's attestation, verified (signature, outputs, requirements)"
envelope=/var/lib/brig/attestations/$id.intoto.json
brig attest verify "$envelope" --key "$ETC/keys/attest.pub" \
  --artifacts "/out=$jobs/acme/out/batch-1" --require profile=restricted --require tenant=acme --require exit=0
brig attest show "$envelope" | head -40

say "the audit log's hash chain"
brig audit verify
