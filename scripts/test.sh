#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need when it is missing, then
# runs the whole suite with cargo-nextest. Tests start their own sshd instances on loopback
# and stop them by PID; nothing here reboots anything.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v ssh-agent >/dev/null || missing+=(openssh-client)
command -v iptables >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
command -v pkill >/dev/null || missing+=(procps)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v curl >/dev/null || missing+=(curl)
# kubectl is the independent client of the simulated cluster in tests.
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
        echo "test.sh: need root to install ${missing[*]} (or install them yourself)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A headless browser lays out the HTML report as a person would see it (report_browser.rs).
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
    echo "test.sh: installing chromium"
    if [ "$(id -u)" != 0 ]; then
        echo "test.sh: need root to install chromium (or install it yourself, or set CHROMIUM)" >&2
        exit 1
    fi
    [ ${#missing[@]} -gt 0 ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# sshd wants its privilege-separation directory even when started by hand.
mkdir -p /run/sshd 2>/dev/null || true

# sushy-emulator (PyPI sushy-tools, fake driver) is the independent Redfish service of the BMC
# tests; they find it through $SUSHY_EMULATOR and start one per test on 127.0.0.1.
venv=target/test-venv
if [ ! -x "$venv/bin/sushy-emulator" ]; then
    echo "test.sh: installing sushy-tools into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'sushy-tools>=2,<3' 'bcrypt>=4'
fi
export SUSHY_EMULATOR=$PWD/$venv/bin/sushy-emulator
export SUSHY_PYTHON=$PWD/$venv/bin/python
# The official Python kubernetes client (a current release) is the second independent client
# of the simulated cluster: its typed models reject objects that lack required fields.
# `python -m pip` installs into this venv even when the venv was copied from another tree.
if ! "$venv/bin/python" -c 'import kubernetes' 2>/dev/null; then
    echo "test.sh: installing the Python kubernetes client into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check 'kubernetes>=31'
fi
export KUBE_PYTHON=$PWD/$venv/bin/python

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
exec cargo nextest run --workspace --no-fail-fast "$@"
