#!/usr/bin/env bash
# A fleet of simulated hosts: one real OpenSSH sshd per host on its own loopback address,
# each with its own host key, behind scripts/fake-node.sh.
#
#   fake-fleet.sh up DIR COUNT [PORT] [NET]   start COUNT hosts on NET.1, NET.2, ... (NET like 127.0.5)
#   fake-fleet.sh start DIR NAME              start host NAME's sshd again (after its sshd was stopped)
#   fake-fleet.sh down DIR                    stop every process the fleet started, by PID
#   fake-fleet.sh user                        print the login user (creating fleetboot-test if root)
#
# DIR receives: client key id_ed25519, known_hosts, hosts.txt (for --hosts-file), user (the
# login name, for --user) and nodes/hNNN/ with sshd_config, boot_id and events.log
# (timestamped reboot-requested/down/up).
#
# Nobody logs in as root. Run as root (tests, CI), the script creates the unprivileged user
# fleetboot-test once (shell /bin/sh, an empty home, no rc files) and runs every node's sshd
# as that user, so a node's ForceCommand can stop and restart its own sshd (the simulated
# reboot). Run as anyone else, the fleet runs as, and logs in as, that user.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
test_user=fleetboot-test
test_home=/var/lib/fleetboot-test

# The login user's name: creates fleetboot-test if it is missing (once, also when several
# test processes start fleets at the same time).
login_user() {
    if [ "$(id -u)" != 0 ]; then
        id -un
        return
    fi
    (
        flock 9
        if ! id -u "$test_user" >/dev/null 2>&1; then
            useradd --system --user-group --no-create-home --home-dir "$test_home" --shell /bin/sh \
                --comment 'fleetboot tests, simulated hosts log in as this user' "$test_user"
        fi
        # useradd leaves the account locked ("!"), and sshd without PAM refuses locked accounts.
        case "$(getent shadow "$test_user" | cut -d: -f2)" in
        '!'*) usermod -p '*' "$test_user" ;;
        esac
        if [ ! -d "$test_home" ]; then
            mkdir -p "$test_home"
            chown "$test_user:" "$test_home"
            chmod 755 "$test_home"
        fi
    ) 9>/run/fleetboot-test-user.lock
    echo "$test_user"
}

# Starts NODE's sshd as the login user: the node's files become that user's.
start_sshd() {
    local dir=$1 node=$2 user
    user=$(cat "$dir/user")
    if [ "$(id -u)" = 0 ]; then
        chown -R "$user:" "$node"
        setpriv --reuid="$user" --regid="$user" --init-groups -- \
            /usr/sbin/sshd -f "$node/sshd_config" -E "$node/sshd.log"
    else
        /usr/sbin/sshd -f "$node/sshd_config" -E "$node/sshd.log"
    fi
}

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
    [ "$(id -u)" = 0 ] && mkdir -p /run/sshd
    mkdir -p "$dir/nodes"
    login_user >"$dir/user"
    # The login user reads the fleet's files (not the client key): a temp dir is 0700.
    chmod 755 "$dir" "$dir/nodes"
    # The ForceCommand runs from the fleet dir: the checkout may be out of that user's reach.
    install -m 755 "$here/fake-node.sh" "$dir/fake-node.sh"
    [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C fleetboot-test -f "$dir/id_ed25519"
    install -m 644 "$dir/id_ed25519.pub" "$dir/authorized_keys"
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
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 2000:30:4000
MaxSessions 100
LogLevel ERROR
ForceCommand $dir/fake-node.sh $node
CONF
        echo "$name $addr:$port" >>"$dir/hosts.txt"
        echo "[$addr]:$port $(cut -d' ' -f1,2 "$node/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts"
        start_sshd "$dir" "$node"
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

start() {
    local dir node
    dir=$(cd "$1" && pwd)
    node=$dir/nodes/$2
    [ -f "$node/sshd_config" ] || { echo "fake-fleet: no host $2 in $dir" >&2; exit 1; }
    start_sshd "$dir" "$node"
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
    # Sessions a simulated shutdown left running (fake-node.sh's sessions_outlive_listener).
    for pidfile in "$dir"/nodes/*/outliving_sessions; do
        [ -s "$pidfile" ] && kill -KILL $(cat "$pidfile") 2>/dev/null || true
        rm -f "$pidfile"
    done
}

case "${1:-}" in
up) shift; up "$@" ;;
start) shift; start "$@" ;;
down) shift; down "$@" ;;
user) login_user ;;
*) echo "usage: $0 up DIR COUNT [PORT] [NET] | start DIR NAME | down DIR | user" >&2; exit 2 ;;
esac
