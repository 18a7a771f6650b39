#!/usr/bin/env bash
# A fleet of simulated hosts: one real OpenSSH sshd per host on its own loopback address,
# each with its own host key, behind scripts/fake-node.sh.
#
#   fake-fleet.sh up DIR COUNT [PORT] [NET]   start COUNT hosts on NET.1, NET.2, ... (NET like 127.0.5)
#   fake-fleet.sh down DIR                    stop every process the fleet started, by PID
#
# DIR receives: client key id_ed25519, known_hosts, hosts.txt (for --hosts-file) and
# nodes/hNNN/ with sshd_config, boot_id and events.log (timestamped reboot-requested/down/up).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

up() {
    local dir count port net
    dir=$(mkdir -p "$1" && cd "$1" && pwd)
    count=$2
    port=${3:-$(free_port)}
    net=${4:-127.0.$((RANDOM % 200 + 20))}
    [ -x /usr/sbin/sshd ] || { echo "fake-fleet: /usr/sbin/sshd missing (apt-get install openssh-server)" >&2; exit 1; }
    mkdir -p /run/sshd "$dir/nodes"
    [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C fleetboot-test -f "$dir/id_ed25519"
    cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
    : >"$dir/known_hosts"
    : >"$dir/hosts.txt"
    for i in $(seq 1 "$count"); do
        local name node addr
        name=$(printf 'h%03d' "$i")
        node=$dir/nodes/$name
        addr=$net.$i
        mkdir -p "$node"
        ssh-keygen -q -t ed25519 -N '' -f "$node/ssh_host_ed25519_key"
        cat /proc/sys/kernel/random/uuid >"$node/boot_id"
        cat >"$node/sshd_config" <<CONF
ListenAddress $addr:$port
HostKey $node/ssh_host_ed25519_key
PidFile $node/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 2000:30:4000
MaxSessions 100
LogLevel ERROR
ForceCommand $here/fake-node.sh $node
CONF
        echo "$name $addr:$port" >>"$dir/hosts.txt"
        echo "[$addr]:$port $(cut -d' ' -f1,2 "$node/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts"
        /usr/sbin/sshd -f "$node/sshd_config" -E "$node/sshd.log"
    done
    # Ready when every host answers on its port.
    for _ in $(seq 1 100); do
        local missing=0
        while read -r _ endpoint; do
            local host=${endpoint%:*}
            timeout 1 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null || missing=1
        done <"$dir/hosts.txt"
        [ "$missing" = 0 ] && { echo "fake-fleet: $count hosts up on $net.1-$count port $port"; return 0; }
        sleep 0.1
    done
    echo "fake-fleet: hosts did not come up" >&2
    exit 1
}

down() {
    local dir=$1
    [ -d "$dir/nodes" ] || return 0
    # Restarters first, so none brings an sshd back after it was stopped.
    for pidfile in "$dir"/nodes/*/restarter.pid; do
        [ -s "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    for pidfile in "$dir"/nodes/*/sshd.pid; do
        if [ -s "$pidfile" ]; then
            pid=$(cat "$pidfile")
            pkill -KILL -P "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

case "${1:-}" in
up) shift; up "$@" ;;
down) shift; down "$@" ;;
*) echo "usage: $0 up DIR COUNT [PORT] [NET] | down DIR" >&2; exit 2 ;;
esac
