#!/usr/bin/env bash
# The newcomer's first command: builds fleetboot, starts a local fleet of simulated hosts
# (real OpenSSH sshd on 127.0.x.y, each "rebooting" by restarting itself with a new boot ID),
# reboots them all with live progress, and tears the fleet down again. Nothing real reboots.
#
#   scripts/demo.sh [HOSTS] [extra fleetboot reboot flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-8}
shift || true

if [ ! -x /usr/sbin/sshd ]; then
    [ "$(id -u)" = 0 ] || { echo "demo: needs OpenSSH sshd: apt-get install openssh-server" >&2; exit 1; }
    echo "demo: installing openssh-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
fi
cargo build --quiet
dir=$(mktemp -d /tmp/fleetboot-demo.XXXXXX)
trap 'scripts/fake-fleet.sh down "$dir"; rm -rf "$dir"' EXIT
scripts/fake-fleet.sh up "$dir" "$count"
user=$(cat "$dir/user")   # the fleet's unprivileged login user, never root
for node in "$dir"/nodes/*; do
    echo 3 >"$node/reboot_delay"   # stands in for systemd's one-minute delay
    echo $((3 + RANDOM % 4)) >"$node/down_time"
done
echo
echo "$ fleetboot reboot --hosts-file hosts.txt --concurrency 3 --rate 30/min --user $user ..."
set +e
./target/debug/fleetboot reboot \
    --hosts-file "$dir/hosts.txt" --user "$user" --identity "$dir/id_ed25519" \
    --known-hosts "$dir/known_hosts" --state-dir "$dir/state" \
    --concurrency 3 --rate 30/min --poll-interval 1s "$@"
code=$?
set -e
echo "fleetboot exited with $code"
exit $code
