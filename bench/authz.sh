#!/usr/bin/env bash
# What the whole authorization step adds to an end-to-end `brig run` of
# busybox `true` under `restricted` (issue 4): the same launch with
# `[auth] mode = "off"` vs `mode = "required"` with the function-platform
# policies (5) and with 995 more per-tenant policies (1,000), side by side in
# one hyperfine run. "required" is everything a real launch pays: reading
# the JWKS, verifying an EdDSA token, recording its single-use `jti`
# (fsync'd), loading the policy set (through the cache) and deciding. Both
# modes write and fsync the audit record, so the difference is the step.
# Each launch gets a fresh token (single-use) minted in hyperfine's
# --prepare, which runs before every command alike. runc and crun run in the
# same hyperfine run for scale.
#
#   sudo bench/authz.sh [RUNS]      (default 150 runs, 5 warm-up)
source "$(dirname "$0")/lib.sh"
RUNS=${1:-150}
bench_setup
crun_prepare
trap crun_unprepare EXIT
A=$WORK/authz
rm -rf "$A"
mkdir -p "$A"
ISS=https://brig.bench
"$BRIG" init --dir "$A/etc" --state-dir "$A/var" --issuer "$ISS" >/dev/null
# Attestation is not part of authorization: leave it out of every variant.
sed -i '/^\[attest\]/,$d' "$A/etc/config.toml"
grep -q '^mode = "required"$' "$A/etc/config.toml" || { echo "bench: brig init wrote no required auth" >&2; exit 1; }
cp "$A/etc/config.toml" "$A/required-5.toml"
sed 's/^mode = "required"$/mode = "off"/' "$A/etc/config.toml" > "$A/off.toml"
cp -r "$A/etc/policy" "$A/policy-1000"
python3 - "$A/policy-1000" <<'PY'
import pathlib, re, sys
d = pathlib.Path(sys.argv[1])
have = sum(len(re.findall(r"@id\(", p.read_text())) for p in d.glob("*.cedar"))
out, i = [], 0
while have + len(out) < 1000:
    t = f"t{i // 2}"
    if i % 2 == 0:
        out.append(f'@id("{t}-launch") permit (principal in Brig::Tenant::"{t}", action == Brig::Action::"launch", '
                   f'resource in Brig::Profile::"restricted") when {{ context.devices.isEmpty() }};\n')
    else:
        out.append(f'@id("{t}-data") permit (principal in Brig::Tenant::"{t}", action == Brig::Action::"mount", '
                   f'resource in Brig::Path::"/srv/shared/{t}") when {{ !context.mount.read_write }};\n')
    i += 1
(d / "tenants.cedar").write_text("".join(out))
PY
sed "s|^dir = \"$A/etc/policy\"$|dir = \"$A/policy-1000\"|" "$A/etc/config.toml" > "$A/required-1000.toml"
grep -q "policy-1000" "$A/required-1000.toml" || { echo "bench: cannot point a config at the 1,000 policies" >&2; exit 1; }
validated=$("$BRIG" policy validate "$A/policy-1000")
[[ $validated == *": 1000 policies, valid"* ]] || { echo "bench: the 1,000-policy set is not valid" >&2; exit 1; }

# The bench bundle, reading its token from a file that --prepare rewrites,
# inside the configured `[auth] token_dir` (brig reads token files nowhere else).
B=$A/bundle
TOKEN_DIR=$(sed -n 's/^token_dir = "\(.*\)"$/\1/p' "$A/etc/config.toml")
[[ -n $TOKEN_DIR ]] || { echo "bench: brig init wrote no [auth] token_dir" >&2; exit 1; }
mkdir -p "$B" "$TOKEN_DIR"
TOK=$TOKEN_DIR/bench-token
python3 - "$WORK/bundle/config.json" "$B/config.json" "$TOK" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.setdefault("annotations", {})["dev.brig.token-file"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))
PY
MINT="$BRIG token mint --key $A/etc/keys/token.key --iss $ISS --sub fn-7 --tenant acme --role function --ttl 10m"
$MINT > "$TOK"
for c in off required-5 required-1000; do
  "$BRIG" --root "$A/root" --config "$A/$c.toml" run --bundle "$B" "check-$c" \
    || { echo "bench: the launch with $c.toml was refused" >&2; exit 1; }
  $MINT > "$TOK"
done

R=$A/roots
mkdir -p "$R"/{brig,runc,crun}
out=$A/authz.json
hyperfine -N --warmup 5 --runs "$RUNS" --prepare "sh -c '$MINT > $TOK'" --export-json "$out" \
  -n "auth off" "$BRIG --root $R/brig --config $A/off.toml run --bundle $B b-off" \
  -n "auth required, 5 policies" "$BRIG --root $R/brig --config $A/required-5.toml run --bundle $B b-5" \
  -n "auth required, 1,000 policies" "$BRIG --root $R/brig --config $A/required-1000.toml run --bundle $B b-1000" \
  -n "runc run" "runc --root $R/runc run --bundle $WORK/bundle bench-runc" \
  -n "crun run" "crun --root $R/crun run --bundle $WORK/bundle bench-crun"
python3 - "$out" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in res.items()}
print("\nmedian launch latency, hyperfine (ms):")
for k, v in med.items():
    print(f"  {k:32s} {v:7.2f}")
print(f"  brig (auth required, 1,000) / runc = {med['auth required, 1,000 policies'] / med['runc run']:.2f}")
PY

# The step's cost is a difference of two ~20 ms launches, smaller than the
# drift between hyperfine's back-to-back series: measure it interleaved
# instead, the three variants in a random order in every round, a fresh
# token before each launch (minting not timed).
python3 - "$BRIG" "$A" "$B" "$RUNS" "$MINT" "$TOK" <<'PY'
import random, statistics, subprocess, sys, time
brig, a, bundle, runs, mint, tok = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(), sys.argv[6]
variants = {"off": "off.toml", "5 policies": "required-5.toml", "1,000 policies": "required-1000.toml"}
times = {k: [] for k in variants}
for _ in range(runs):
    order = list(variants)
    random.shuffle(order)
    for k in order:
        with open(tok, "w") as f:
            subprocess.run(mint, stdout=f, check=True)
        t = time.perf_counter()
        subprocess.run([brig, "--root", f"{a}/roots/brig", "--config", f"{a}/{variants[k]}", "run", "--bundle", bundle, "b-i"], check=True)
        times[k].append((time.perf_counter() - t) * 1000)
med = {k: statistics.median(v) for k, v in times.items()}
print(f"\ninterleaved, {runs} rounds: median launch latency (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
for k in ("5 policies", "1,000 policies"):
    d = med[k] - med["off"]
    # spread of the difference: medians of random halves
    halves = []
    for _ in range(200):
        idx = random.sample(range(runs), runs // 2)
        halves.append(statistics.median(times[k][i] for i in idx) - statistics.median(times["off"][i] for i in idx))
    q = statistics.quantiles(halves, n=20)
    print(f"  authorization step, {k:>14}: +{d:.2f} ms (half-sample range {q[0]:+.2f}..{q[-1]:+.2f}; target <= 2 ms)")
PY
