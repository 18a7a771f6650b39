#!/usr/bin/env bash
# A simulated node behind OpenSSH's ForceCommand. It answers the boot-ID read and the reboot
# command, and "reboots" by killing its own sshd, waiting, writing a new boot ID and starting
# sshd again. It NEVER runs a real shutdown, reboot or power-off.
#
#   fake-node.sh NODE_DIR             (as ForceCommand; the command is in $SSH_ORIGINAL_COMMAND)
#   fake-node.sh --reboot NODE_DIR    (the detached simulated reboot)
#   fake-node.sh --reboot NODE_DIR soft   (a simulated `systemctl soft-reboot`)
#
# Behaviour switches are files in NODE_DIR: refuse_sudo, hang, hang_reboot, never_return,
# same_boot_id, new_host_key, killed_by_signal, soft_reboot (every reboot command is a soft
# reboot), reboot_required (/var/run/reboot-required exists until the next full boot),
# log_connections (see below), sessions_outlive_listener (going down stops only the listening
# sshd: open sessions go on answering until the down time ends, or, with never_return, a
# shutdown stuck after it, until fake-fleet.sh down); timings: reboot_delay (s before going
# down, standing in for systemd's one minute), down_time (s down).
#
# It runs as the fleet's unprivileged login user, as does its sshd (see fake-fleet.sh), so it
# can stop and start that sshd itself.
set -u
self=$(readlink -f "$0")
now_ms() { date +%s%3N; }
# With a log_connections file in NODE_DIR, the boot-ID read logs when the SSH connection it
# came on was opened, the reboot command when it came, and the reboot when the node came back
# up, all in the kernel's clock ticks since boot (/proc/PID/stat field 22: a process's start):
# one clock for all, so a test can tell a connection opened before another node's reboot was
# asked for, or ended, from one opened after it.
ticks_now() { cut -d' ' -f22 /proc/self/stat; }
# The connection's process: this session's nearest sshd ancestor (one per connection).
connection_ticks() {
    local p=$PPID
    while [ "$p" -gt 1 ] && [ "$(cat "/proc/$p/comm")" != sshd ]; do p=$(cut -d' ' -f4 "/proc/$p/stat"); done
    cut -d' ' -f22 "/proc/$p/stat"
}

if [ "${1:-}" = "--reboot" ]; then
    node=$2
    log() { echo "$(now_ms) $*" >>"$node/events.log"; }
    sleep "$(cat "$node/reboot_delay" 2>/dev/null || echo 1)"
    log down
    sessions=
    if [ -s "$node/sshd.pid" ]; then
        pid=$(cat "$node/sshd.pid")
        if [ -e "$node/sessions_outlive_listener" ]; then
            # OpenSSH's unit stops only the listener (KillMode=process): open sessions go on
            # answering, from the system still running, until the machine really goes down.
            sessions=$(pgrep -P "$pid" | tr '\n' ' ')
            echo "$sessions" >"$node/outliving_sessions"
        else
            pkill -KILL -P "$pid" 2>/dev/null
        fi
        kill -KILL "$pid" 2>/dev/null
        rm -f "$node/sshd.pid"
    fi
    if [ -e "$node/never_return" ]; then
        rm -f "$node/restarter.pid"
        exit 0
    fi
    sleep "$(cat "$node/down_time" 2>/dev/null || echo 2)"
    # The machine went down: whatever session outlived the listener ends with it.
    [ -n "$sessions" ] && kill -KILL $sessions 2>/dev/null
    rm -f "$node/outliving_sessions"
    if [ "${3:-}" = soft ]; then
        # systemd-soft-reboot.service(8): userspace restarts, the kernel (and so the boot ID)
        # stays; systemd's SoftRebootsCount counts one more (0 again after a full boot).
        echo $(($(cat "$node/soft_reboots" 2>/dev/null || echo 0) + 1)) >"$node/soft_reboots"
    else
        [ -e "$node/same_boot_id" ] || cat /proc/sys/kernel/random/uuid >"$node/boot_id"
        echo 0 >"$node/soft_reboots"
        # /run is a tmpfs: a full boot starts without /var/run/reboot-required.
        rm -f "$node/reboot_required"
    fi
    if [ -e "$node/new_host_key" ]; then
        rm -f "$node/ssh_host_ed25519_key" "$node/ssh_host_ed25519_key.pub"
        ssh-keygen -q -t ed25519 -N '' -f "$node/ssh_host_ed25519_key"
    fi
    /usr/sbin/sshd -f "$node/sshd_config" -E "$node/sshd.log"
    log up
    [ -e "$node/log_connections" ] && log "up-at-ticks $(ticks_now)"
    rm -f "$node/restarter.pid"
    exit 0
fi

node=$1
cmd=${SSH_ORIGINAL_COMMAND:-}
log() { echo "$(now_ms) $*" >>"$node/events.log"; }
[ -e "$node/hang" ] && sleep 3600
case "$cmd" in
"cat /proc/sys/kernel/random/boot_id")
    [ -e "$node/log_connections" ] && log "boot-id-read-on-connection-of-ticks $(connection_ticks)"
    cat "$node/boot_id"
    ;;
"systemctl show --property=SoftRebootsCount --value")
    cat "$node/soft_reboots" 2>/dev/null || echo 0
    ;;
"sudo shutdown -r -t 3" | "sudo shutdown -r now" | "sudo systemctl reboot" | "sudo systemctl soft-reboot")
    if [ -e "$node/refuse_sudo" ]; then
        echo "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper" >&2
        exit 1
    fi
    [ -e "$node/hang_reboot" ] && sleep 3600
    if [ -e "$node/restarter.pid" ]; then
        echo "Reboot already scheduled." >&2
        log reboot-requested-again
        exit 0
    fi
    mode=
    if [ "$cmd" = "sudo systemctl soft-reboot" ] || [ -e "$node/soft_reboot" ]; then mode=soft; fi
    log reboot-requested $mode
    [ -e "$node/log_connections" ] && log "reboot-requested-at-ticks $(ticks_now)"
    setsid "$self" --reboot "$node" $mode </dev/null >/dev/null 2>&1 &
    echo $! >"$node/restarter.pid"
    echo "Reboot scheduled for $(date -d '+1 min'), use 'shutdown -c' to cancel."
    # A node whose shutdown kills the session that asked for it: SSH reports exit-signal.
    # (The session is the login shell that runs this script: it is the one killed.)
    if [ -e "$node/killed_by_signal" ]; then kill -TERM "$PPID" "$$"; fi
    ;;
"sudo shutdown -c")
    if [ -s "$node/restarter.pid" ] && kill "$(cat "$node/restarter.pid")" 2>/dev/null; then
        rm -f "$node/restarter.pid"
        log cancelled
    fi
    ;;
"test -f /var/run/reboot-required" | "test -e /var/run/reboot-required")
    # Debian's and Ubuntu's package hooks (update-notifier-common) create this file when an
    # update needs a reboot; it lives in /run (a tmpfs), so it is gone after the next boot.
    # Here: the node dir's reboot_required file, removed by a simulated full reboot.
    [ -e "$node/reboot_required" ]
    ;;
"test ! -e /run/systemd/shutdown/scheduled")
    # fleetboot's check after `shutdown -c`: is a shutdown still scheduled?
    [ ! -e "$node/restarter.pid" ]
    ;;
*shutdown* | *reboot* | *poweroff* | *halt* | *systemctl* | *"init 0"* | *"init 6"*)
    echo "fake node: refusing to run $cmd" >&2
    exit 126
    ;;
*)
    log "exec $cmd"
    exec bash -c "$cmd"
    ;;
esac
