#!/usr/bin/env bash
# Fan-out benchmark (not a test): `cat /proc/sys/kernel/random/boot_id` on N hosts, where the
# hosts are N distinct 127.x addresses reaching ONE sshd (MaxStartups raised). Compares
# fleetboot exec with pdsh, OpenSSH + xargs -P and the parallel-ssh Python library at the same
# parallelism. Prints medians of REPS runs, ratios, sshd's CPU time and fleetboot's peak RSS.
# One sshd serves every "host", so handshakes queue behind its CPU: fleetboot gets timeouts as
# patient as pdsh's and ssh's (which have no handshake timeout), and no retries.
#
#   scripts/bench-fanout.sh [N...]        default: 200 1000; FANOUTS="64 256" REPS=3
#   TOOLS="fleetboot xargs-ssh" ...       a subset (default: fleetboot pssh-lib pdsh xargs-ssh)
# Traffic goes only to 127.0.0.0/8. Needs root (installs pdsh, time, a Python venv).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-200 1000}")
read -r -a sizes <<<"${sizes[*]}"
fanouts=(${FANOUTS:-64 256})
reps=${REPS:-3}
tools=(${TOOLS:-fleetboot pssh-lib pdsh xargs-ssh})

if [ -z "${FLEETBOOT_BENCH_NETNS:-}" ]; then
need=()
command -v pdsh >/dev/null || need+=(pdsh)
command -v bc >/dev/null || need+=(bc)
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
venv=target/bench-venv
[ -x $venv/bin/python ] || python3 -m venv $venv
$venv/bin/python -c 'import pssh' 2>/dev/null || $venv/bin/pip install -q parallel-ssh
cargo build --release --quiet
# The one sshd must listen on every 127.x address, i.e. on 0.0.0.0: measure inside a private
# network namespace, where the only interface is loopback, so nothing is exposed.
command -v unshare >/dev/null && command -v ip >/dev/null || { echo "bench: needs unshare and ip (util-linux, iproute2)" >&2; exit 1; }
exec unshare -n env FLEETBOOT_BENCH_NETNS=1 bash "$0" "$@"
fi
ip link set lo up
venv=target/bench-venv
bin=target/release/fleetboot

work=$(mktemp -d /tmp/fleetboot-bench.XXXXXX)
sshd_pid=
cleanup() { [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
mkdir -p /run/sshd
# One listener for the whole 127/8 on this port, inside the namespace (loopback only).
cat >"$work/sshd_config" <<CONF
ListenAddress 0.0.0.0:$port
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 4000:30:8000
LogLevel QUIET
CONF
/usr/sbin/sshd -f "$work/sshd_config"
sleep 0.5
sshd_pid=$(cat "$work/sshd.pid")

sshd_cpu() { # total CPU seconds of sshd and all its (finished) children
    awk '{print ($14+$15+$16+$17)/100}' "/proc/$sshd_pid/stat"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-6s %-7s %-28s %9s %9s %12s\n' N fanout tool median_s vs_fb sshd_cpu_s
for n in "${sizes[@]}"; do
    : >"$work/ips"; : >"$work/hosts"; : >"$work/known_hosts"
    key=$(cut -d' ' -f1,2 "$work/host_key.pub")
    for i in $(seq 1 "$n"); do
        ip="127.$((10 + i / 62500)).$(((i / 250) % 250)).$((i % 250 + 1))"
        echo "$ip" >>"$work/ips"
        echo "$ip:$port" >>"$work/hosts"
        echo "[$ip]:$port $key" >>"$work/known_hosts"
    done
    for f in "${fanouts[@]}"; do
        declare -A med=()
        declare -A cpu=()
        for tool in "${tools[@]}"; do
            times=(); cpus=()
            for r in $(seq 1 "$reps"); do
                c0=$(sshd_cpu); t0=$(date +%s.%N)
                case $tool in
                fleetboot)
                    /usr/bin/time -f '%M' -o "$work/rss" env HOME="$work" SSH_AUTH_SOCK= $bin exec --hosts-file "$work/hosts" \
                        --user root -i "$work/id_ed25519" --known-hosts "$work/known_hosts" --parallel "$f" \
                        --connect-timeout 60s --auth-timeout 600s --command-timeout 600s --connect-attempts 1 \
                        --output json -- cat /proc/sys/kernel/random/boot_id >"$work/out" || true
                    echo "$(cat "$work/rss")" >>"$work/rss-$n" ;;
                pssh-lib)
                    $venv/bin/python - "$work" "$port" "$f" >"$work/out" <<'PY' || true
import sys
from pssh.clients import ParallelSSHClient
work, port, fan = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hosts = open(f"{work}/ips").read().split()
client = ParallelSSHClient(hosts, user="root", port=port, pkey=f"{work}/id_ed25519", pool_size=fan, num_retries=1, timeout=60)
out = client.run_command("cat /proc/sys/kernel/random/boot_id", stop_on_errors=False)
client.join(out)
for o in out:
    print(o.host, list(o.stdout or []))
PY
                    ;;
                pdsh)
                    PDSH_SSH_ARGS_APPEND="-F /dev/null -p $port -i $work/id_ed25519 -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes" \
                        pdsh -R ssh -l root -f "$f" -w "^$work/ips" cat /proc/sys/kernel/random/boot_id >"$work/out" 2>/dev/null || true ;;
                xargs-ssh)
                    xargs -P "$f" -I{} ssh -F /dev/null -p "$port" -i "$work/id_ed25519" -o UserKnownHostsFile="$work/known_hosts" \
                        -o StrictHostKeyChecking=yes -o BatchMode=yes root@{} cat /proc/sys/kernel/random/boot_id \
                        <"$work/ips" >"$work/out" 2>/dev/null || true ;;
                esac
                t1=$(date +%s.%N); c1=$(sshd_cpu)
                answered=$(grep -c -E '[0-9a-f]{8}-' "$work/out" || true)
                [ "$answered" -ge "$n" ] || echo "  note: $tool answered $answered of $n" >&2
                times+=("$(echo "$t1 - $t0" | bc)"); cpus+=("$(echo "$c1 - $c0" | bc)")
            done
            med[$tool]=$(printf '%s\n' "${times[@]}" | median)
            cpu[$tool]=$(printf '%s\n' "${cpus[@]}" | median)
        done
        for tool in "${tools[@]}"; do
            printf '%-6s %-7s %-28s %9.2f %8.2fx %12.2f\n' "$n" "$f" "$tool" "${med[$tool]}" \
                "$(echo "${med[$tool]} / ${med[fleetboot]}" | bc -l)" "${cpu[$tool]}"
        done
        unset med cpu
    done
    echo "fleetboot peak RSS at N=$n: $(median <"$work/rss-$n") KB"
done
