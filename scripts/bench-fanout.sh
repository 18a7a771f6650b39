#!/usr/bin/env bash
# SSH fan-out benchmark (not a test): `cat /proc/sys/kernel/random/boot_id` on N "hosts", the N
# distinct 127.x addresses of ONE OpenSSH sshd that runs inside a private network namespace
# (`unshare -n`, loopback only: the sshd's 0.0.0.0 listener is reachable from nowhere else).
#
# The login is an unprivileged user created for the run (never root): shell /bin/sh, an empty
# home, no rc files, `PermitUserRC no`, no PAM, and a `ForceCommand` that prints the boot ID,
# so sshd's cost is SSH's, not a login shell's (root's ~/.bashrc runs `pyenv init` for every
# SSH command on these machines, ~100 ms of CPU each).
#
# Tools, at the same fan-out: fleetboot exec (release build), the parallel-ssh Python library
# (PyPI, in a venv), pdsh -R ssh, xargs -P + OpenSSH ssh. For each (N, fan-out, tool) it prints
# the median of REPS runs of:
#   wall        seconds, start to exit of the client
#   sshd/conn   sshd's CPU ÷ N: of a cgroup of its own (the listener, every per-connection
#               process and the sessions' commands, even those whose parent exits before it reaps
#               them: their CPU never reaches the listener's rusage; a third of it went missing
#               that way); without a writable cgroup, the listener's rusage with reaped children
#   client/host the client's user+sys CPU (with the processes it forked and reaped) ÷ N
#   user+sys    the client's user and sys CPU per host: its floor is the cryptography of one
#               connection, examples/crypto_floor.rs run on the machine first (printed at the start)
#   RSS         the client's peak RSS (rusage); xargs-ssh and pdsh: of the largest ONE process
#   floor       (sshd CPU + client CPU) ÷ cores: the wall time this one-sshd rig cannot beat
#   rig CPU     (sshd CPU + client CPU) ÷ (wall × cores); ≥ 90 % is "saturated"
#   machine     the whole machine's busy share during the run (from /proc/stat): other work
#               on the machine shows here, and makes the run's figures unreliable
#
#   scripts/bench-fanout.sh [options] [N...]
#     -n, --sizes "200 1000"       host counts (positional N... does the same)
#     -f, --fanouts "16 64 256"    parallelism of every tool
#     -r, --reps 3                 runs per (N, fan-out, tool); medians are printed
#     -t, --tools "fleetboot pssh-lib pdsh xargs-ssh"
#         --run-timeout 900        seconds one client run may take (then it is killed)
#         --deadline 10800         seconds for the whole benchmark: later runs are skipped
#         --user fleetboot-bench   the login; created (and removed at exit) if missing
#         --results FILE           also write every run as a TSV line to FILE
#         --no-build               use target/release/fleetboot as it is
#         --bin PATH               the fleetboot binary to run (implies --no-build), e.g. another
#                                  branch's release build, to compare two builds on one rig
#         --wrap "CMD ARGS"        run fleetboot under CMD (a profiler, not for timings), e.g.
#                                  --wrap "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p"
#                                  or --wrap "strace -c -f -o /tmp/strace.txt"
# Environment equivalents kept from earlier versions: FANOUTS, REPS, TOOLS.
#
# Needs root (installs pdsh, time, bc, openssh-server, a venv with parallel-ssh; creates the
# user; creates the namespace). Traffic: only inside the private network namespace.
set -euo pipefail
caller_cwd=${FLEETBOOT_BENCH_CWD:-$PWD} # relative paths in the options are the caller's
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh # stop_group

sizes="" fanouts=${FANOUTS:-16 64 256} reps=${REPS:-3} tools=${TOOLS:-fleetboot pssh-lib pdsh xargs-ssh}
run_timeout=900 deadline=10800 user=fleetboot-bench results="" build=1 wrap="" bin=""
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
    -n | --sizes) sizes="$sizes $2"; shift 2 ;;
    -f | --fanouts) fanouts=$2; shift 2 ;;
    -r | --reps) reps=$2; shift 2 ;;
    -t | --tools) tools=$2; shift 2 ;;
    --run-timeout) run_timeout=$2; shift 2 ;;
    --deadline) deadline=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --wrap) wrap=$2; shift 2 ;;
    --bin) bin=$(cd "$caller_cwd" && realpath -m "$2"); build=0; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench-fanout: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) sizes="$sizes $1"; shift ;;
    esac
done
sizes=${sizes:-200 1000}
for v in $sizes $fanouts $reps $run_timeout $deadline; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench-fanout: $v is not a positive whole number" >&2; exit 2; }
done
for n in $sizes; do [ "$n" -le 60000 ] || { echo "bench-fanout: N=$n: at most 60000 addresses" >&2; exit 2; }; done
for t in $tools; do
    case $t in fleetboot | pssh-lib | pdsh | xargs-ssh) ;; *) echo "bench-fanout: unknown tool $t" >&2; exit 2 ;; esac
done
[[ $user =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] && [ "$user" != root ] || { echo "bench-fanout: bad --user $user" >&2; exit 2; }
[ -z "$results" ] || results=$(cd "$caller_cwd" && realpath -m "$results")
venv=$PWD/target/bench-venv
bin=${bin:-$PWD/target/release/fleetboot}

if [ -z "${FLEETBOOT_BENCH_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "bench-fanout: needs root (user, namespace, packages)" >&2; exit 1; }
    need=()
    case " $tools " in *" pdsh "*) command -v pdsh >/dev/null || need+=(pdsh) ;; esac
    command -v bc >/dev/null || need+=(bc)
    [ -x /usr/bin/time ] || need+=(time)
    [ -x /usr/sbin/sshd ] || need+=(openssh-server)
    command -v ssh >/dev/null || need+=(openssh-client)
    command -v useradd >/dev/null || need+=(passwd)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    case " $tools " in *" pssh-lib "*)
        [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
        "$venv/bin/python" -c 'import pssh' 2>/dev/null || "$venv/bin/pip" install -q parallel-ssh ;;
    esac
    case " $tools " in *" fleetboot "*)
        if [ "$build" = 1 ]; then cargo build --release --quiet; fi
        # The client's floor, measured on this machine: one connection's cryptography.
        if [ "$build" = 1 ] || [ ! -x target/release/examples/crypto_floor ]; then
            cargo build --release --quiet --example crypto_floor || echo "bench-fanout: no crypto floor (examples/crypto_floor.rs did not build)" >&2
        fi
        [ -x "$bin" ] || { echo "bench-fanout: no $bin (build it, or drop --no-build)" >&2; exit 1; } ;;
    esac
    command -v unshare >/dev/null && command -v ip >/dev/null || { echo "bench-fanout: needs unshare and ip (util-linux, iproute2)" >&2; exit 1; }
    exec unshare -n env FLEETBOOT_BENCH_NETNS=1 FLEETBOOT_BENCH_CWD="$caller_cwd" bash "$PWD/scripts/bench-fanout.sh" "${args[@]}"
fi

# ---- inside the private network namespace -------------------------------------------------
ip link set lo up
cores=$(nproc)
py=/usr/bin/python3; [ -x "$py" ] || py=python3
work=$(mktemp -d /tmp/fleetboot-bench-fanout.XXXXXX)
chmod 755 "$work" # the login reads its authorized_keys here
sshd_pid="" tool_pid="" created_user=0 sshd_cgroup=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$tool_pid" ]; then stop_group "$tool_pid"; wait "$tool_pid" 2>/dev/null || true; fi
    if [ -n "$sshd_pid" ]; then
        kill -TERM "$sshd_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$sshd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$sshd_pid" 2>/dev/null || true
        wait "$sshd_pid" 2>/dev/null || true
    fi
    # The per-connection sshd children of our listener (and their sessions) run as the
    # bench user: end whichever are left, by PID, before the user goes.
    if [ "$created_user" = 1 ]; then
        for p in $(pgrep -u "$user" 2>/dev/null || true); do kill -KILL "$p" 2>/dev/null || true; done
        userdel "$user" 2>/dev/null || echo "bench-fanout: could not remove user $user" >&2
    fi
    if [ -n "$sshd_cgroup" ]; then # empty once its processes are gone
        for _ in $(seq 1 50); do rmdir "$sshd_cgroup" 2>/dev/null && break; sleep 0.1; done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

marker="fleetboot fan-out benchmark (temporary)"
# The login: unprivileged, /bin/sh (dash reads no rc file for `sh -c`), an empty home.
if getent passwd "$user" >/dev/null && [ "$(getent passwd "$user" | cut -d: -f5)" = "$marker" ]; then
    # Left behind by a run that was killed outright: this run removes it at its exit.
    created_user=1
    usermod -d "$work/home" -p '*' "$user"
    mkdir -m 700 "$work/home"
    chown "$user:" "$work/home"
    echo "adopting user $user, left by an earlier run of this script"
elif getent passwd "$user" >/dev/null; then
    [ "$(getent passwd "$user" | cut -d: -f3)" != 0 ] || { echo "bench-fanout: $user is uid 0" >&2; exit 1; }
    shell=$(getent passwd "$user" | cut -d: -f7)
    [ "$shell" = /bin/sh ] || { echo "bench-fanout: existing user $user has shell $shell, not /bin/sh" >&2; exit 1; }
    echo "using the existing user $user (left in place)"
else
    useradd -M -d "$work/home" -s /bin/sh -c "$marker" "$user"
    created_user=1
    usermod -p '*' "$user" # useradd leaves the account locked ('!'), which sshd refuses without PAM
    mkdir -m 700 "$work/home"
    chown "$user:" "$work/home"
fi
mkdir -m 700 "$work/home-client" # the clients' HOME: no ssh config, no agent, no keys of root's

ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
install -m 644 "$work/id_ed25519.pub" "$work/authorized_keys"
mkdir -p /run/sshd
port=2222 # the namespace is new: every port is free
boot_id_cmd="cat /proc/sys/kernel/random/boot_id"
cat >"$work/sshd_config" <<CONF
ListenAddress 0.0.0.0:$port
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
AllowUsers $user
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitUserRC no
PermitUserEnvironment no
PrintMotd no
PrintLastLog no
UseDNS no
PermitTTY no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
MaxStartups 4000:30:8000
LogLevel ERROR
ForceCommand $boot_id_cmd
CONF
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>>"$work/sshd.log" &
sshd_pid=$!
# sshd and everything it starts go into a cgroup of their own, created now, before the first
# connection: its CPU counter includes processes no sshd ever reaps. cgroup v2 has the counter
# in every group (cpu.stat usage_usec); on v1 it is the cpuacct controller (cpuacct.usage, ns).
for root in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/cpuacct; do
    [ -e "$root/cgroup.procs" ] || continue
    [ "$root" = /sys/fs/cgroup/cpuacct ] || [ -e "$root/cgroup.controllers" ] || continue
    group="$root/fleetboot-bench-sshd.$$"
    mkdir "$group" 2>/dev/null || continue
    if echo "$sshd_pid" >"$group/cgroup.procs" 2>/dev/null; then sshd_cgroup=$group; break; fi
    rmdir "$group" 2>/dev/null || true
done
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$sshd_pid" 2>/dev/null || { cat "$work/sshd.log" >&2; exit 1; }
    sleep 0.1
done

ssh_opts=(-F /dev/null -p "$port" -i "$work/id_ed25519" -o IdentitiesOnly=yes -o UserKnownHostsFile="$work/known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR)
key=$(cut -d' ' -f1,2 "$work/host_key.pub")
echo "[127.0.0.1]:$port $key" >"$work/known_hosts"
# The rig itself: the login works, is not root, and runs the forced command whatever is asked.
probe=$(SSH_AUTH_SOCK='' timeout 20 ssh "${ssh_opts[@]}" "$user@127.0.0.1" 'id -u; echo not-forced' 2>&1 || true)
[[ $probe =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] ||
    { echo "bench-fanout: the rig's probe login failed: $probe" >&2; cat "$work/sshd.log" >&2; exit 1; }

cat >"$work/pssh_run.py" <<'PY'
import sys
from pssh.clients import ParallelSSHClient
ips, port, user, key, fan, cmd = sys.argv[1:7]
hosts = open(ips).read().split()
client = ParallelSSHClient(hosts, user=user, port=int(port), pkey=key, pool_size=int(fan), num_retries=1, timeout=60)
out = client.run_command(cmd, stop_on_errors=False)
client.join(out)
for o in out:
    print(o.host, list(o.stdout or []))
PY

sshd_cpu() { # CPU seconds of sshd's cgroup, or of the listener and its reaped children
    if [ -e "$sshd_cgroup/cpu.stat" ]; then
        awk '$1 == "usage_usec" {printf "%.6f\n", $2 / 1e6}' "$sshd_cgroup/cpu.stat"
    elif [ -e "$sshd_cgroup/cpuacct.usage" ]; then
        awk '{printf "%.6f\n", $1 / 1e9}' "$sshd_cgroup/cpuacct.usage"
    else # utime stime cutime cstime
        awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15+$16+$17)/hz}' "/proc/$sshd_pid/stat"
    fi
}
wait_sshd_idle() { # until every per-connection child has exited (so its CPU is counted), ≤ 10 s
    for _ in $(seq 1 100); do
        [ -z "$(pgrep -P "$sshd_pid" 2>/dev/null || true)" ] && return 0
        sleep 0.1
    done
    echo "  note: sshd children still running 10 s after the run; their CPU is missing" >&2
}
listen_drops() { # SYNs the namespace's listeners dropped (accept queue full): sshd listens with
    # a backlog of 128, so a fan-out far above it waits out SYN retransmissions (1 s, 3 s, ...)
    awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) col[$i] = i; h = 1 } else print $col["ListenDrops"] }' /proc/net/netstat
}
machine_jiffies() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; } # total idle

tsv=$work/runs.tsv
printf 'n\tfanout\ttool\trep\tanswered\twall_s\tclient_cpu_s\tsshd_cpu_s\trss_kb\tmachine_busy\tclient_user_s\tclient_sys_s\n' >"$tsv"
echo "rig: one OpenSSH sshd ($(/usr/sbin/sshd -V 2>&1 | head -1 | cut -d, -f1)), login $user (/bin/sh, ForceCommand), $cores cores; $(uname -r)"
crypto_ms=nan
if [ -x target/release/examples/crypto_floor ]; then
    target/release/examples/crypto_floor
    crypto_ms=$(target/release/examples/crypto_floor --ms)
fi
echo "sshd's CPU from: ${sshd_cgroup:-the rusage of the listener (no writable cgroup: CPU of processes sshd does not reap is missing)}"
echo "runs (each line one run; medians follow each block):"
skipped=0
for n in $sizes; do
    : >"$work/ips"; : >"$work/hosts"
    echo "[127.0.0.1]:$port $key" >"$work/known_hosts"
    for i in $(seq 1 "$n"); do
        ip="127.$((10 + i / 62500)).$(((i / 250) % 250)).$((i % 250 + 1))"
        echo "$ip" >>"$work/ips"
        echo "$ip:$port" >>"$work/hosts"
        echo "[$ip]:$port $key" >>"$work/known_hosts"
    done
    for f in $fanouts; do
        for tool in $tools; do
            for r in $(seq 1 "$reps"); do
                if [ "$SECONDS" -ge "$deadline" ]; then skipped=$((skipped + 1)); continue; fi
                case $tool in
                fleetboot) cmd=(env HOME="$work/home-client" SSH_AUTH_SOCK= $wrap "$bin" exec --hosts-file "$work/hosts"
                    --user "$user" -i "$work/id_ed25519" --known-hosts "$work/known_hosts" --parallel "$f"
                    --connect-timeout 60s --auth-timeout 600s --command-timeout 600s --connect-attempts 1
                    --output json -- $boot_id_cmd) ;;
                pssh-lib) cmd=("$venv/bin/python" "$work/pssh_run.py" "$work/ips" "$port" "$user" "$work/id_ed25519" "$f" "$boot_id_cmd") ;;
                pdsh) cmd=(env PDSH_SSH_ARGS_APPEND="${ssh_opts[*]}" pdsh -R ssh -l "$user" -f "$f" -w "^$work/ips" $boot_id_cmd) ;;
                xargs-ssh) cmd=(xargs -P "$f" -I{} ssh "${ssh_opts[@]}" "$user@{}" $boot_id_cmd) ;;
                esac
                wait_sshd_idle
                d0=$(listen_drops)
                c0=$(sshd_cpu); read -r j0 i0 < <(machine_jiffies); t0=$(date +%s%N)
                # timeout puts the run in a process group of its own and signals all of it.
                SSH_AUTH_SOCK='' timeout -k 5 "$run_timeout" /usr/bin/time -f '%U %S %M' -o "$work/time" "${cmd[@]}" \
                    <"$work/ips" >"$work/out" 2>"$work/err" &
                tool_pid=$!
                rc=0; wait "$tool_pid" || rc=$?
                tool_pid=""
                t1=$(date +%s%N); read -r j1 i1 < <(machine_jiffies)
                wait_sshd_idle
                c1=$(sshd_cpu)
                drops=$(($(listen_drops) - d0))
                [ "$drops" = 0 ] || echo "  note: $tool N=$n fan-out $f run $r: sshd's listen queue dropped $drops SYNs (the client waited for their retransmission)" >&2
                [ "$rc" = 124 ] && echo "  note: $tool N=$n fan-out $f run $r killed after $run_timeout s" >&2
                answered=$(grep -c -E '[0-9a-f]{8}-[0-9a-f]{4}-' "$work/out" || true)
                read -r u s rss < <(tail -1 "$work/time" 2>/dev/null | grep -E '^[0-9.]+ [0-9.]+ [0-9]+$' || echo "nan nan 0")
                wall=$(echo "scale=3; ($t1 - $t0) / 1000000000" | bc)
                client=$(echo "$u + $s" | bc 2>/dev/null || echo nan)
                sshd=$(echo "$c1 - $c0" | bc)
                busy=$(echo "scale=3; 1 - ($i1 - $i0) / ($j1 - $j0)" | bc)
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$f" "$tool" "$r" "$answered" "$wall" "$client" "$sshd" "$rss" "$busy" "$u" "$s" >>"$tsv"
                printf '  N=%-5s fan-out %-4s %-10s run %s: %4s/%s answered, wall %7.2f s, client %6.2f s CPU, sshd %7.2f s CPU, machine %3.0f%% busy\n' \
                    "$n" "$f" "$tool" "$r" "$answered" "$n" "$wall" "$client" "$sshd" "$(echo "$busy * 100" | bc)"
                [ "$answered" -ge "$n" ] || {
                    echo "  note: $tool answered $answered of $n; its stderr ends:" >&2; tail -3 "$work/err" >&2
                    # fleetboot's JSON names each host's error: the most frequent ones
                    grep -o '"error":"[^"]*"' "$work/out" 2>/dev/null | sort | uniq -c | sort -rn | head -3 >&2 || true
                }
            done
        done
        "$py" scripts/bench-fanout-summary.py "$tsv" --n "$n" --fanout "$f" --cores "$cores" --crypto-ms "$crypto_ms"
    done
done
[ "$skipped" = 0 ] || echo "bench-fanout: $skipped runs skipped: the --deadline of $deadline s was reached" >&2
echo "all medians as a README table:"
"$py" scripts/bench-fanout-summary.py "$tsv" --cores "$cores" --crypto-ms "$crypto_ms" --markdown
[ -z "$results" ] || cp "$tsv" "$results"
