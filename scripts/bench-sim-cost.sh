#!/usr/bin/env bash
# The simulated cluster's own cost (not a test): CPU per Node status update and per watch event
# sent, at N nodes. Three windows of SECONDS each, CPU read from /proc/PID/stat (user + sys):
#   1. idle: a simulation with no heartbeats (its controllers' ticks only): the baseline;
#   2. heartbeats: a second simulation, every node's Ready heartbeat every INTERVAL (a Node
#      status patch each, as a kubelet's status update): (CPU/s - idle CPU/s) / updates/s;
#   3. the same with WATCHERS clients watching every node: (CPU/s - window 2's) / events/s,
#      the events counted by the simulation itself (GET /sim/v1/traffic, "WATCH nodes").
# HEARTBEAT_MODE=kubelet (default ready) beats as real kubelets do (`fleetboot sim
# --heartbeat-mode kubelet`): INTERVAL is then the Lease renewal (kubelet: 10s), each node's full
# status is posted every STATUS_REPORT (default 1m), and the watchers watch Nodes and Leases (as
# the node lifecycle controller does); a "write" is any object written (a Lease or a Node).
# Also the floor of one update: a JSON parse and serialization of one Node object as the
# simulation stores it (python's json module, C-accelerated, timed here), which any API server
# pays at least once per update.
#
#   scripts/bench-sim-cost.sh [NODES] [WATCHERS] [SECONDS] [INTERVAL]   default 2000 10 20 10s
#   FLEETBOOT_BIN=path   use that binary (default: a release build, built first)
#   HEARTBEAT_MODE=kubelet STATUS_REPORT=1m   real kubelets' heartbeats (see above)
# Everything runs on 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-2000}
watchers=${2:-10}
seconds=${3:-20}
interval=${4:-10s}
bin=${FLEETBOOT_BIN:-}
mode=${HEARTBEAT_MODE:-ready}
status_report=${STATUS_REPORT:-1m}
case $mode in ready | kubelet) ;; *) echo "bench-sim-cost: HEARTBEAT_MODE is ready or kubelet, not $mode" >&2; exit 2 ;; esac
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin fleetboot
    bin=target/release/fleetboot
fi
dir=$(mktemp -d /tmp/fleetboot-bench-sim-cost.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)

# Starts a simulation with the given heartbeat; prints "PID API".
start() {
    local name=$1 heartbeat=$2
    mkdir -p "$dir/$name"
    "$bin" sim --dir "$dir/$name" --masters 3 --workers $((nodes - 3)) --heartbeat "$heartbeat" --heartbeat-mode "$mode" --status-report "$status_report" --no-bmc --workloads 0 \
        >"$dir/$name/out" 2>&1 &
    local pid=$!
    until grep -q ready "$dir/$name/out" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/$name/out"; exit 1; }
        sleep 0.1
    done
    echo "$pid $(grep -o 'API http://[0-9.:]*' "$dir/$name/out" | cut -d' ' -f2)"
}

cpu() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
rv() { curl -s "$1/api/v1/nodes?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])'; }
events() {
    curl -s -H 'Content-Type: application/json' "$1/sim/v1/traffic" |
        python3 -c 'import json,sys; t = json.load(sys.stdin); print(sum(t.get(k, {}).get("events", 0) for k in ("WATCH nodes", "WATCH leases")))'
}
# Measures one window: prints "CPU_SECONDS WRITES EVENTS".
window() {
    local pid=$1 api=$2
    local c0 r0 e0 c1 r1 e1
    c0=$(cpu "$pid"); r0=$(rv "$api"); e0=$(events "$api")
    sleep "$seconds"
    c1=$(cpu "$pid"); r1=$(rv "$api"); e1=$(events "$api")
    echo "$(echo "$c1 - $c0" | bc -l) $((r1 - r0)) $((e1 - e0))"
}

echo "nodes $nodes, watchers $watchers, windows of ${seconds}s, heartbeat ($mode) every $interval$([ "$mode" = kubelet ] && echo ", status every $status_report"); load $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
read -r idle_pid idle_api < <(start idle 0s)
pids+=("$idle_pid")  # start ran in a subshell: its pid is recorded here for the cleanup
sleep 3
read -r idle_cpu _ _ < <(window "$idle_pid" "$idle_api")
kill "$idle_pid"
read -r hb_pid hb_api < <(start heartbeats "$interval")
pids+=("$hb_pid")
sleep 3
read -r hb_cpu hb_writes _ < <(window "$hb_pid" "$hb_api")

# WATCHERS clients, each watching every node from now on and reading every event.
python3 - "$hb_api" "$watchers" "$mode" <<'PY' &
import http.client, sys, threading, urllib.parse
api, watchers, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
host = urllib.parse.urlparse(api).netloc
paths = ["/api/v1/nodes"] + (["/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"] if mode == "kubelet" else [])
def watch(path):
    while True:
        c = http.client.HTTPConnection(host, timeout=600)
        c.request("GET", path + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=600")
        r = c.getresponse()
        while r.readline():
            pass
for _ in range(watchers):
    for path in paths:
        threading.Thread(target=watch, args=(path,), daemon=True).start()
threading.Event().wait()
PY
pids+=("$!")
sleep 3
read -r w_cpu w_writes w_events < <(window "$hb_pid" "$hb_api")

floor=$(curl -s "$hb_api/api/v1/nodes?limit=1" | python3 -c '
import json, sys, timeit
node = json.dumps(json.load(sys.stdin)["items"][0])
n = 2000
t = timeit.timeit(lambda: json.dumps(json.loads(node)), number=n) / n
print(f"{t * 1000:.3f} ms per parse+serialize of one Node ({len(node)} bytes)")')

per_update=$(echo "($hb_cpu - $idle_cpu) / $hb_writes * 1000" | bc -l)
per_event=$(echo "($w_cpu - $hb_cpu) / $w_events * 1000" | bc -l)
printf 'idle (controllers only):      %.3f CPU-s/s\n' "$(echo "$idle_cpu / $seconds" | bc -l)"
printf 'heartbeats:                   %.3f CPU-s/s, %d writes (%.0f/s)\n' "$(echo "$hb_cpu / $seconds" | bc -l)" "$hb_writes" "$(echo "$hb_writes / $seconds" | bc -l)"
printf 'with %d watchers:             %.3f CPU-s/s, %d watch events sent (%.0f/s)\n' "$watchers" "$(echo "$w_cpu / $seconds" | bc -l)" "$w_events" "$(echo "$w_events / $seconds" | bc -l)"
printf 'CPU per Node status update:   %.3f ms\n' "$per_update"
printf 'CPU per watch event sent:     %.3f ms\n' "$per_event"
echo "floor:                        $floor"
