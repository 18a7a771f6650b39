#!/usr/bin/env bash
# Cluster-scale benchmark (not a test): fleetboot against one `fleetboot sim` with NODES nodes.
# Measures node discovery (time, fleetboot's peak RSS), then reboots REBOOT of the workers
# with --all-at-once and measures, per node, the delay between the simulation marking it
# Ready in the API and fleetboot journaling the API evidence (`api_confirmed`), plus the
# peak RSS of that run (its reflector holds every node of the cluster).
#
#   scripts/bench-cluster.sh [NODES] [REBOOT] [HEARTBEAT]    default 5000 200 10s
# Everything runs on 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-5000}
reboot=${2:-200}
heartbeat=${3:-10s}
cargo build --release --quiet
bin=$PWD/target/release/fleetboot
dir=$(mktemp -d /tmp/fleetboot-bench-cluster.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

# SSH comes back 1 s into the boot, the kubelet reports Ready 3 s later: with 500 ms probes,
# SSH has seen the new boot ID before the API does, so api_confirmed waits on the watch alone.
"$bin" sim --dir "$dir" --masters 3 --workers $((nodes - 3)) --heartbeat "$heartbeat" \
    --reboot-delay 2s --boot-time 1s --notready-after 500ms --kubelet-ready-after 3s >"$dir/out" 2>&1 &
pid=$!
until grep -q ready "$dir/out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/out"; exit 1; }
    sleep 0.05
done
api=$(grep -o 'API http://[0-9.:]*' "$dir/out" | cut -d' ' -f2)
export HOME=$dir
unset SSH_AUTH_SOCK
fb() { "$bin" --config "$dir/fleetboot.toml" "$@"; }
peak() { awk -F': ' '/Maximum resident/ {printf "%.0f MB", $2/1024}' "$1"; }

echo "cluster: $nodes nodes ($heartbeat heartbeats), rebooting $reboot workers at once"
for what in "nodes -o ips" "nodes -o wide" "reboot --all --dry-run"; do
    best=
    for _ in 1 2 3; do
        s=$(date +%s%N)
        # shellcheck disable=SC2086
        /usr/bin/time -v -o "$dir/time" "$bin" --config "$dir/fleetboot.toml" $what >/dev/null
        ms=$(( ($(date +%s%N) - s) / 1000000 ))
        [ -z "$best" ] || [ "$ms" -lt "$best" ] && best=$ms
    done
    printf '%-28s best of 3: %5d ms, peak RSS %s\n' "fleetboot $what:" "$best" "$(peak "$dir/time")"
done

names=$(seq 0 $((reboot - 1)) | sed 's/^/worker-/' | paste -sd,)
s=$(date +%s%N)
/usr/bin/time -v -o "$dir/time" "$bin" --config "$dir/fleetboot.toml" reboot --nodes "$names" --all-at-once \
    --poll-interval 500ms --output json --journal "$dir/run.jsonl" >"$dir/events.jsonl" 2>"$dir/err" \
    || { echo "the reboot run failed:"; tail -5 "$dir/err"; exit 1; }
printf '%-28s %5d ms, peak RSS %s\n' "reboot of $reboot nodes:" $(( ($(date +%s%N) - s) / 1000000 )) "$(peak "$dir/time")"

curl -s -H "Content-Type: application/json" "$api/sim/v1/nodes" >"$dir/nodes.json"
python3 - "$dir/nodes.json" "$dir/run.jsonl" <<'PY'
import json, sys
ready = {}
for n in json.load(open(sys.argv[1])):
    times = [t for t, what in n["history"] if what == "ready"]
    if times:
        ready[n["name"]] = times[-1]
back, api = {}, {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["event"] == "back":
        back[r["host"]] = r["at_ms"]
    elif r["event"] == "api_confirmed":
        api[r["host"]] = r["at_ms"]
# Only nodes whose SSH evidence came first: there the delay is the watch path alone.
delays = sorted(api[h] - ready[h] for h in api if h in ready and back.get(h, 1 << 62) <= ready[h])
if not delays:
    sys.exit("no node had its SSH evidence before its Ready event; nothing to measure")
pct = lambda p: delays[min(len(delays) - 1, int(round(p / 100 * (len(delays) - 1))))]
print(f"Ready in API -> marked back:  n={len(delays)} of {len(api)}  p50 {pct(50)} ms  p95 {pct(95)} ms  p99 {pct(99)} ms  max {delays[-1]} ms")
PY
