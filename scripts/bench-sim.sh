#!/usr/bin/env bash
# Scale benchmark of the simulated cluster (not a test): N nodes in one `fleetboot sim`
# process. Measures start time, RSS, `kubectl get nodes` latency and watch fan-out.
#
#   scripts/bench-sim.sh [NODES] [WATCHERS]      default 5000 nodes, 10 watchers
# Everything runs on 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-5000}
watchers=${2:-10}
cargo build --release --quiet
dir=$(mktemp -d /tmp/fleetboot-bench-sim.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

t0=$(date +%s.%N)
target/release/fleetboot sim --dir "$dir" --masters 3 --workers $((nodes - 3)) --heartbeat 20s >"$dir/out" 2>&1 &
pid=$!
until grep -q ready "$dir/out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/out"; exit 1; }
    sleep 0.05
done
t1=$(date +%s.%N)
api=$(grep -o 'API http://[0-9.:]*' "$dir/out" | cut -d' ' -f2)
echo "nodes:                       $nodes"
printf 'start to ready:              %.2f s\n' "$(echo "$t1 - $t0" | bc)"
echo "RSS after start:             $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status)"

export KUBECONFIG=$dir/kubeconfig
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for what in "get nodes" "get nodes -o json" "get nodes -l node-role.kubernetes.io/master"; do
    times=()
    for _ in 1 2 3 4 5; do
        s=$(date +%s.%N)
        kubectl $what >/dev/null
        e=$(date +%s.%N)
        times+=("$(echo "$e - $s" | bc)")
    done
    printf 'kubectl %-36s median %.3f s\n' "$what:" "$(printf '%s\n' "${times[@]}" | median)"
done

# Watch fan-out: WATCHERS clients watch all nodes; one heartbeat round modifies every node.
python3 - "$api" "$watchers" "$nodes" <<'PY'
import http.client, json, sys, threading, time, urllib.parse
api, watchers, nodes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
host = urllib.parse.urlparse(api).netloc
conn = http.client.HTTPConnection(host); conn.request("GET", "/api/v1/nodes?limit=1")
rv = json.loads(conn.getresponse().read())["metadata"]["resourceVersion"]
results = [None] * watchers
def watch(i):
    c = http.client.HTTPConnection(host, timeout=120)
    c.request("GET", f"/api/v1/nodes?watch=1&resourceVersion={rv}&timeoutSeconds=90")
    r = c.getresponse(); seen = set(); first = None
    while len(seen) < nodes:
        line = r.readline()
        if not line: break
        ev = json.loads(line)
        if ev["type"] == "MODIFIED":
            first = first or time.time(); seen.add(ev["object"]["metadata"]["name"])
    results[i] = (first, time.time(), len(seen))
threads = [threading.Thread(target=watch, args=(i,)) for i in range(watchers)]
[t.start() for t in threads]; [t.join() for t in threads]
firsts = [r[0] for r in results if r and r[0]]; lasts = [r[1] for r in results if r]
got = min(r[2] for r in results if r)
print(f"watch fan-out:               {watchers} watchers each got {got} of {nodes} node updates of a heartbeat round; "
      f"first to last delivery {max(lasts) - min(firsts):.2f} s")
PY
echo "RSS after the watch round:   $(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$pid/status)"
