#!/usr/bin/env bash
# The load fleetboot puts on the API server (not a test): requests, watch events and bytes per
# rebooted node, from the simulation's own counters (`GET /sim/v1/traffic`, `GET /sim/v1/exec`),
# for a plain run, a drained run, the kube transport, the journal in the cluster and a
# migration. Each kind runs on a fresh simulation of BASE workers and of N workers; the figure
# per node is the difference divided by N - BASE, so the fixed part of a run (discovery, the
# lease, the preflight) cancels. Request counts do not depend on the machine's speed.
#
#   scripts/bench-api-load.sh [--no-build] [--bin PATH] [--kinds plain,drain,...] [--base B] [--keep] N...
#   scripts/bench-api-load.sh 200 10000          # release build; the table at 200 and 10,000
#
# --keep: keep every run's directory (the simulation's output, fleetboot's stderr, events and
# journal), not only a failed run's, and say where: a run that went through can still hold
# failed hosts worth a look.
#
# No BMCs (--no-bmc: the runs reboot over SSH and the API; 10,000 BMC listeners would pass the
# machine's open-file limit). Timings are short (reboot 1 s, boot 1 s), no heartbeats (--heartbeat 0s: every Node event the
# runs see is one the reboots caused), one master, concurrency and group concurrency N/10 (ten
# waves). Drained runs
# have one user Deployment (3 replicas, minAvailable 2) per 3 workers besides the platform's.
# The migration's pools get maxUnavailable N/10, so its two MCO rollouts also take ten waves.
# Everything runs on 127.0.0.0/8; the simulations are stopped by PID.
set -Eeuo pipefail # -E: the ERR trap below also fires inside functions
cd "$(dirname "$0")/.."
build=1
bin=$PWD/target/release/fleetboot
kinds=plain,drain,kube,incluster,migrate
base=20
keep=0
sizes=()
while [ $# -gt 0 ]; do
    case $1 in
        --no-build) build=0 ;;
        --bin) bin=$2; shift ;;
        --kinds) kinds=$2; shift ;;
        --base) base=$2; shift ;;
        --keep) keep=1 ;;
        -h | --help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench-api-load: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) [[ $1 =~ ^[1-9][0-9]*$ ]] || { echo "bench-api-load: $1: expected a number of workers, like 200" >&2; exit 2; }
           sizes+=("$1") ;;
    esac
    shift
done
[ ${#sizes[@]} -gt 0 ] || sizes=(200 10000)
[ $build = 1 ] && nice cargo build --release --quiet --bin fleetboot
out=$(mktemp -d /tmp/fleetboot-bench-api-load.XXXXXX)
pid=
# A failure keeps the runs' directories (simulation output, fleetboot's stderr and events) and
# says where, on stderr: under `set -e` a failing step (a simulation that died before its stop, a
# request that found no API) used to end the script with exit 1, nothing said, the evidence removed.
failed=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null || true
    if [ -n "$failed" ] || [ $keep = 1 ]; then echo "bench-api-load: kept $out for a look" >&2; else rm -rf "$out"; fi
}
trap 'failed=1; echo "bench-api-load: line $LINENO failed (exit $?): $BASH_COMMAND" >&2' ERR
trap cleanup EXIT
trap 'exit 130' INT TERM

# One run of KIND on WORKERS workers: the simulation's counters after it, as JSON in FILE.
measure() {
    local kind=$1 workers=$2 file=$3
    local dir=$out/$kind-$workers
    mkdir -p "$dir"
    local c=$(( workers / 10 > 1 ? workers / 10 : 1 ))
    local workloads=0
    [ "$kind" = drain ] && workloads=$(( workers / 3 > 1 ? workers / 3 : 1 ))
    "$bin" sim --dir "$dir" --masters 1 --workers "$workers" --heartbeat 0s --workloads "$workloads" --no-bmc \
        --reboot-delay 1s --boot-time 1s --notready-after 300ms --kubelet-ready-after 300ms >"$dir/sim.out" 2>&1 &
    pid=$!
    until grep -q ready "$dir/sim.out" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { failed=1; echo "bench-api-load: the simulation of $kind on $workers workers ended:" >&2; cat "$dir/sim.out" >&2; exit 1; }
        sleep 0.1
    done
    local api
    api=$(grep -o 'API http://[0-9.:]*' "$dir/sim.out" | cut -d' ' -f2)
    local fb=("$bin" --config "$dir/fleetboot.toml")
    if [ "$kind" = drain ]; then
        # The workloads are scheduled when the simulation starts; their budgets settle at once.
        sleep 5
    fi
    if [ "$kind" = migrate ]; then
        for pool in master worker; do
            curl -s -X PATCH -H 'Content-Type: application/merge-patch+json' \
                -d "{\"spec\":{\"maxUnavailable\":$c}}" "$api/apis/machineconfiguration.openshift.io/v1/machineconfigpools/$pool" >/dev/null
        done
    fi
    curl -s -X POST -H 'Content-Type: application/json' -d '{}' "$api/sim/v1/traffic/reset" >/dev/null
    local exec_before
    exec_before=$(curl -s -H "Content-Type: application/json" "$api/sim/v1/exec")
    # The pool's maxUnavailable (1) would otherwise hold each pool to one node at a time.
    local limits=(--concurrency "$c" --group-concurrency "$c" --poll-interval 500ms)
    local args
    case $kind in
        plain) args=(reboot --all "${limits[@]}") ;;
        drain) args=(reboot --all --drain --drain-timeout 10m "${limits[@]}") ;;
        kube) args=(reboot --all --transport kube "${limits[@]}") ;;
        incluster) args=(reboot --all --journal-in-cluster "${limits[@]}") ;;
        migrate) args=(migrate --etcd-backup-confirmed --reboot-concurrency "$c" --poll-interval 1s --rollout-timeout 2h) ;;
    esac
    local s
    s=$(date +%s)
    local rc=0
    HOME=$dir SSH_AUTH_SOCK='' "${fb[@]}" "${args[@]}" --output json >"$dir/events.jsonl" 2>"$dir/err" || rc=$?
    if [ $keep = 1 ]; then
        # The simulation's own view beside fleetboot's: each node's phase, boot ID and history,
        # and the SSH listeners it holds now (a node whose listener is gone cannot be seen back).
        curl -s -H "Content-Type: application/json" "$api/sim/v1/nodes" >"$dir/sim-nodes.json" || true
        # The counters too: a run that failed hosts prints no table, and its load is still worth
        # reading (per node by hand, beside the base run's JSON in the kept directory).
        curl -s -H "Content-Type: application/json" "$api/sim/v1/traffic" >"$dir/traffic.json" || true
        ss -tlnH 2>/dev/null | awk '{print $4}' | sort >"$dir/listeners.txt" || true
    fi
    if [ $rc != 0 ]; then
        failed=1
        echo "$kind on $workers workers failed:" >&2
        tail -5 "$dir/err" >&2
        # With --output json the run's own reasons (warnings, an abort) are events on stdout.
        grep -E '"type":"(warning|abort_requested|error)"' "$dir/events.jsonl" | tail -5 | cut -c1-400 >&2 || true
        exit 1
    fi
    local took=$(( $(date +%s) - s ))
    python3 - "$file" "$took" "$exec_before" "$(curl -s -H "Content-Type: application/json" "$api/sim/v1/exec")" "$(curl -s -H "Content-Type: application/json" "$api/sim/v1/traffic")" "$dir/events.jsonl" <<'PY'
import json, os, sys
file, took, before, after, traffic = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
# fleetboot's own output: its events (--output json), how many said a host waits, their bytes.
lines = open(sys.argv[6], "rb").read().splitlines()
waiting = sum(1 for l in lines if b'"type":"waiting"' in l)
output = {"events": len(lines), "waiting": waiting, "bytes": os.path.getsize(sys.argv[6])}
json.dump({"seconds": took, "traffic": traffic, "execStreamBytes": after["streamBytes"] - before["streamBytes"], "output": output}, open(file, "w"))
PY
    kill "$pid" 2>/dev/null || { failed=1; echo "bench-api-load: the simulation of $kind on $workers workers had ended before the end of the run: $(tail -3 "$dir/sim.out")" >&2; exit 1; }
    wait "$pid" 2>/dev/null || true
    pid=
    [ $keep = 1 ] || rm -rf "$dir"
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); base $base workers"
echo "| kind | N | requests / node | watch events / node | bytes / node (both ways) | fixed requests | run (N) | requests / node by kind |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
    for kind in ${kinds//,/ }; do
        [ -f "$out/$kind-$base.json" ] || measure "$kind" "$base" "$out/$kind-$base.json"
        measure "$kind" "$n" "$out/$kind-$n.json"
        python3 - "$kind" "$base" "$n" "$out/$kind-$base.json" "$out/$kind-$n.json" <<'PY'
import json, sys
kind, base, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
small, large = json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
added = n - base
def total(run, field):
    return sum(t.get(field, 0) for t in run["traffic"].values())
def per(field):
    return (total(large, field) - total(small, field)) / added
bytes_per = (total(large, "bytes") + total(large, "sent") + large["execStreamBytes"]
             - total(small, "bytes") - total(small, "sent") - small["execStreamBytes"]) / added / 1024
kinds = sorted(set(small["traffic"]) | set(large["traffic"]))
by_kind = []
for k in kinds:
    r = (large["traffic"].get(k, {}).get("requests", 0) - small["traffic"].get(k, {}).get("requests", 0)) / added
    if abs(r) >= 0.05:
        by_kind.append(f"{k} {r:.1f}")
fixed = total(small, "requests") - per("requests") * (base + 1)
print(f"| {kind} | {n:,} | {per('requests'):.1f} | {per('events'):.1f} | {bytes_per:.1f} KiB | {fixed:.0f} | {large['seconds']} s | {', '.join(by_kind)} |", flush=True)
o = large.get("output", {})
print(f"  ({kind} at {n:,}: fleetboot's output {o.get('events', 0):,} events, {o.get('waiting', 0):,} of them waiting, {o.get('bytes', 0) / 1048576:.1f} MiB)", file=sys.stderr, flush=True)
PY
    done
done
