#!/usr/bin/env bash
# Installs brig on a fresh Debian 12 machine (as root) and runs the sample job
# end to end: a development configuration (keys, JWKS, policies), a token for
# tenant `acme`, a job under `restricted` with an input and an output, a
# refused launch, and the verified attestation.
#
#   sudo ./install.sh            build, install, configure (if needed), demo
#   sudo ./install.sh --no-demo  build and install only
set -euo pipefail
cd "$(dirname "$0")"
[[ $(id -u) == 0 ]] || { echo "install.sh: run as root (it installs to /usr/local and runs containers)" >&2; exit 1; }
scripts/deps.sh
command -v cargo >/dev/null || { echo "install.sh: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
cargo build --release --locked -p brig -p brig-attest
install -m 0755 target/release/brig /usr/local/bin/brig
install -m 0755 target/release/brig-attest /usr/local/bin/brig-attest
# Man pages and shell completions, generated from the CLI definition.
/usr/local/bin/brig man --out /usr/local/share/man/man1
mkdir -p /usr/share/bash-completion/completions /usr/local/share/zsh/site-functions /usr/local/share/fish/vendor_completions.d
/usr/local/bin/brig completions bash > /usr/share/bash-completion/completions/brig
/usr/local/bin/brig completions zsh > /usr/local/share/zsh/site-functions/_brig
/usr/local/bin/brig completions fish > /usr/local/share/fish/vendor_completions.d/brig.fish
echo "installed /usr/local/bin/brig $(/usr/local/bin/brig --version | head -1 | awk '{print $2}'), brig-attest, man pages, completions"
if [[ ! -e /etc/brig/config.toml ]]; then
  /usr/local/bin/brig init
fi
[[ ${1:-} == --no-demo ]] && exit 0
exec scripts/demo.sh /usr/local/bin/brig
