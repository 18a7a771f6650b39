#!/usr/bin/env bash
# Rolling-reboot benchmark (not a test): `fleetboot reboot` (release build) over the N workers of
# a simulated cluster (`fleetboot sim`, 3 masters, fixed reboot timings, no heartbeats), C at a
# time, against the physics: ceil(N / C) rounds × the median node cycle as the nodes themselves
# saw it (the simulation's history: "reboot-requested" → "ready" in the API). Everything else is
# fleetboot's own cost, printed as p50/p99:
#   dispatch    journal `dispatching` → the node records "reboot-requested" (SSH connect + command)
#   detection   the node's "ready" in the API → journal `api_confirmed` (the watch path), and
#               → `confirmed` (the host's slot is free)
#   refill      the k-th `confirmed` → the (k+C)-th `dispatching`: how long a freed slot idles
#   start/tail  process start → first `dispatching`; last `confirmed` → process exit
# and the CPU the simulation itself spent during the run (from /proc, beside fleetboot's and the
# load average before and after), since both share the machine's cores.
#
#   scripts/bench-rolling.sh [options] [N/C ...]     default: 200/20 1000/100 5000/500
#     --reps 1                   runs per size (a fresh simulation each); medians are printed
#     --reboot-delay 2s --boot-time 3s --notready-after 500ms --kubelet-ready-after 500ms
#                                the simulated nodes' timings (as `fleetboot sim` takes them)
#     --poll-interval 500ms      fleetboot's boot-ID probe interval
#     --parallel N               fleetboot's --parallel (boot-ID probes at once); unset: its own default
#     --transport auto           fleetboot's --transport: kube measures the cluster API's exec (each
#                                node's machine-config daemon pod) instead of SSH; the dispatch
#                                column is then the exec's (pod list, upgrade, `shutdown -r +1`)
#     --host-list                a host-list run under the cluster instead of `--all --role worker`:
#                                `reboot --hosts-file F`, F naming each worker by its InternalIP
#                                (`worker-7 127.x.y.z`), which fleetboot maps onto the nodes by address;
#                                the start column then includes that mapping
#     --deadline 3600            seconds for the whole benchmark: later runs are skipped
#     --keep DIR                 keep each run's simulation dir, journal and events under DIR
#     --no-build                 use target/release/fleetboot as it is
#     --bin PATH                 the fleetboot binary to run (implies --no-build): another build,
#                                to compare two builds on the same simulation settings
#
# The simulation has no BMCs (--no-bmc: the runs go over SSH; 10,000 BMC listeners would pass the
# open-file limit), and its nodes only pretend to reboot. Traffic: 127.0.0.0/8 only (the simulation's
# API and SSH listeners). The script stops the simulation it started, by PID, on any exit.
set -euo pipefail
caller_cwd=$PWD # relative paths in the options are the caller's
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh # stop_group

transport=auto reps=1 reboot_delay=2s boot_time=3s notready_after=500ms kubelet_ready_after=500ms poll=500ms
deadline=3600 keep="" build=1 bin="" parallel="" host_list=0 specs=()
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --reboot-delay) reboot_delay=$2; shift 2 ;;
    --boot-time) boot_time=$2; shift 2 ;;
    --notready-after) notready_after=$2; shift 2 ;;
    --kubelet-ready-after) kubelet_ready_after=$2; shift 2 ;;
    --poll-interval) poll=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --host-list) host_list=1; shift ;;
    --deadline) deadline=$2; shift 2 ;;
    --keep) keep=$(cd "$caller_cwd" && realpath -m "$2"); shift 2 ;;
    --no-build) build=0; shift ;;
    --bin) bin=$(cd "$caller_cwd" && realpath -m "$2"); build=0; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench-rolling: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) specs+=("$1"); shift ;;
    esac
done
[ ${#specs[@]} -gt 0 ] || specs=(200/20 1000/100 5000/500)
for s in "${specs[@]}"; do
    [[ $s =~ ^([1-9][0-9]*)/([1-9][0-9]*)$ ]] || { echo "bench-rolling: $s: expected N/C, like 200/20" >&2; exit 2; }
    [ "${BASH_REMATCH[1]}" -le 20000 ] || { echo "bench-rolling: $s: at most 20000 workers" >&2; exit 2; }
done
for v in $reps $deadline; do [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench-rolling: $v is not a positive whole number" >&2; exit 2; }; done
py=/usr/bin/python3; [ -x "$py" ] || py=python3
ms() { "$py" - "$1" <<'PY'
import re, sys
m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", sys.argv[1])
if not m:
    sys.exit(f"bench-rolling: {sys.argv[1]}: expected a duration like 500ms, 2s or 1m")
print(round(float(m[1]) * {"ms": 1, "s": 1000, "m": 60000}[m[2]]))
PY
}
cycle_ms=$(($(ms "$reboot_delay") + $(ms "$boot_time") + $(ms "$kubelet_ready_after")))

[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if [ "$build" = 1 ]; then cargo build --release --quiet; fi
bin=${bin:-$PWD/target/release/fleetboot}
[ -x "$bin" ] || { echo "bench-rolling: no $bin (build it, or drop --no-build)" >&2; exit 1; }

dir="" sim_pid="" run_pid="" summary=""
# The simulation's CPU (user + system clock ticks from /proc/PID/stat): read when fleetboot
# starts and when it ends, the difference is what the simulation spent during the run.
sim_cpu_ticks() { awk '{print $14 + $15}' "/proc/$sim_pid/stat" 2>/dev/null || echo 0; }
load1() { cut -d' ' -f1 /proc/loadavg; }
stop_sim() {
    if [ -n "$sim_pid" ]; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
        sim_pid=""
    fi
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    # fleetboot takes a first TERM as "finish what is in flight": the group gets KILL after 10 s.
    if [ -n "$run_pid" ]; then stop_group "$run_pid"; wait "$run_pid" 2>/dev/null || true; fi
    stop_sim
    [ -z "$dir" ] || [ -n "$keep" ] || rm -rf "$dir"
    [ -z "$summary" ] || rm -f "$summary"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

summary=$(mktemp /tmp/fleetboot-bench-rolling-summary.XXXXXX)
echo "timings: reboot-delay $reboot_delay, boot-time $boot_time, notready-after $notready_after," \
    "kubelet-ready-after $kubelet_ready_after (configured cycle $cycle_ms ms); poll $poll; parallel ${parallel:-default}; transport $transport;" \
    "$([ "$host_list" = 1 ] && echo "host list by address" || echo "--all --role worker"); $(nproc) cores"
for s in "${specs[@]}"; do
    n=${s%/*} c=${s#*/}
    rounds=$(((n + c - 1) / c))
    for r in $(seq 1 "$reps"); do
        if [ "$SECONDS" -ge "$deadline" ]; then echo "bench-rolling: deadline of $deadline s reached; $n/$c run $r skipped" >&2; continue; fi
        if [ -n "$keep" ]; then dir=$keep/rolling-$n-$c-$r; rm -rf "$dir"; mkdir -p "$dir"; else dir=$(mktemp -d /tmp/fleetboot-bench-rolling.XXXXXX); fi
        "$bin" sim --dir "$dir/sim" --masters 3 --workers "$n" --heartbeat 0s --no-bmc --reboot-delay "$reboot_delay" \
            --boot-time "$boot_time" --notready-after "$notready_after" --kubelet-ready-after "$kubelet_ready_after" \
            >"$dir/sim.out" 2>&1 &
        sim_pid=$!
        for _ in $(seq 1 1200); do # ≤ 120 s to start
            grep -q 'ready: API' "$dir/sim.out" 2>/dev/null && break
            kill -0 "$sim_pid" 2>/dev/null || { cat "$dir/sim.out" >&2; exit 1; }
            sleep 0.1
        done
        grep -q 'ready: API' "$dir/sim.out" || { echo "bench-rolling: the simulation did not start in 120 s" >&2; exit 1; }
        api=$(grep -o 'API http://[0-9.:]*' "$dir/sim.out" | cut -d' ' -f2)
        # Generous: three times the physics, plus two minutes.
        limit=$((rounds * cycle_ms * 3 / 1000 + 120))
        select=(--all --role worker)
        if [ "$host_list" = 1 ]; then
            # The workers of the simulation's own host list (its config's [[hosts]]), by address.
            "$py" - "$dir/sim/fleetboot.toml" >"$dir/hosts" <<'PY'
import sys, tomllib
for h in tomllib.load(open(sys.argv[1], "rb"))["hosts"]:
    if h["name"].startswith("worker-"):
        print(h["name"], h["address"])
PY
            select=(--hosts-file "$dir/hosts")
        fi
        load_before=$(load1)
        sim_cpu0=$(sim_cpu_ticks)
        t0=$(date +%s%3N)
        HOME=$dir SSH_AUTH_SOCK='' timeout -k 5 "$limit" /usr/bin/time -f '%e %U %S %M' -o "$dir/time" \
            "$bin" --config "$dir/sim/fleetboot.toml" reboot "${select[@]}" --concurrency "$c" --group-concurrency "$c" \
            --transport "$transport" --poll-interval "$poll" ${parallel:+--parallel "$parallel"} --journal "$dir/journal.jsonl" --output json >"$dir/events.jsonl" 2>"$dir/err" &
        run_pid=$!
        rc=0; wait "$run_pid" || rc=$?
        run_pid=""
        t1=$(date +%s%3N)
        sim_cpu1=$(sim_cpu_ticks)
        [ "$rc" = 0 ] || { echo "bench-rolling: $n/$c run $r: fleetboot exited $rc; its stderr ends:" >&2; tail -5 "$dir/err" >&2; }
        "$py" -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/sim/v1/nodes", headers={"Content-Type": "application/json"}), timeout=60).read())' \
            "$api" >"$dir/nodes.json"
        stop_sim
        "$py" - "$dir" "$n" "$c" "$r" "$t0" "$t1" "$rc" "$cycle_ms" "$summary" "$sim_cpu0" "$sim_cpu1" "$(getconf CLK_TCK)" "$load_before" "$(load1)" <<'PY'
import json, math, statistics, sys
d, n, c, rep, t0, t1, rc, cfg_cycle, summary = sys.argv[1], *map(int, sys.argv[2:9]), sys.argv[9]
sim_cpu_start, sim_cpu_end, clk_tck = (int(x) for x in sys.argv[10:13])
load_before, load_after = sys.argv[13:15]
first, last = {}, {}
for line in open(f"{d}/journal.jsonl"):
    rec = json.loads(line)
    host = rec.get("host")
    key = (rec["event"], host)
    first.setdefault(key, rec["at_ms"])
    last[key] = rec["at_ms"]
nodes = {x["name"]: x for x in json.load(open(f"{d}/nodes.json"))}
workers = [h for h in nodes if h.startswith("worker-")]
cycles, dispatch, detect_api, detect_conf = [], [], [], []
# Where a host's time goes, stage by stage (ms), to tell fleetboot's waits from the simulation's
# own lateness: the nodes' timers (reboot-requested -> down -> up -> ready against the configured
# timings) run late when the simulation's runtime is starved, and that lands in the ideal, not
# in the overhead; the SSH proof (ready -> back) and the watch (back -> api_confirmed) are fleetboot's.
stages = {k: [] for k in ("boot_id_read->dispatching", "requested->down (sim)", "down->up (sim)", "up->ready (sim)",
                          "ready->back (SSH proof)", "back->api_confirmed")}
for h in workers:
    disp = first.get(("dispatching", h))
    if disp is None:
        continue
    hist = nodes[h]["history"]
    req = next((t for t, w in hist if w == "reboot-requested" and t >= disp), None)
    ready = next((t for t, w in hist if w == "ready" and req is not None and t >= req), None)
    if req is None or ready is None:
        continue
    cycles.append(ready - req)
    hist_at = {}
    for t, w in hist:
        if t >= req:
            hist_at.setdefault(w, t)
    e = lambda ev: first.get((ev, h))
    for k, a, b in (("boot_id_read->dispatching", last.get(("boot_id_read", h)), disp),
                    ("requested->down (sim)", req, hist_at.get("down")), ("down->up (sim)", hist_at.get("down"), hist_at.get("up")),
                    ("up->ready (sim)", hist_at.get("up"), ready), ("ready->back (SSH proof)", ready, e("back")),
                    ("back->api_confirmed", e("back"), e("api_confirmed"))):
        if a is not None and b is not None:
            stages[k].append(b - a)
    dispatch.append(req - disp)
    if ("api_confirmed", h) in first:
        detect_api.append(first[("api_confirmed", h)] - ready)
    if ("confirmed", h) in first:
        detect_conf.append(first[("confirmed", h)] - ready)
confirmed = sorted(first[k] for k in first if k[0] == "confirmed")
dispatching = sorted(first[k] for k in first if k[0] == "dispatching")
refill = [dispatching[k] - confirmed[k - c] for k in range(c, len(dispatching)) if k - c < len(confirmed)]
def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]
wall = (t1 - t0) / 1000
rounds = math.ceil(n / c)
cycle = statistics.median(cycles) / 1000 if cycles else float("nan")
ideal = rounds * cycle
overhead = (wall / ideal - 1) * 100
start = (dispatching[0] - t0) if dispatching else float("nan")
tail = (t1 - confirmed[-1]) if confirmed else float("nan")
try:
    u, s, rss = open(f"{d}/time").read().split()[-3:]
    cpu, rss_mb = float(u) + float(s), int(rss) / 1024
except Exception:
    cpu, rss_mb = float("nan"), float("nan")
finished = [k for k in first if k[0] == "run_finished"]
fails = sum(1 for k in first if k[0] == "failed")
sim_cpu = (sim_cpu_end - sim_cpu_start) / clk_tck
row = dict(n=n, c=c, rep=rep, rc=rc, sim_cpu=sim_cpu, sim_cpu_startup=sim_cpu_start / clk_tck, confirmed=len(confirmed), failed=fails, wall=wall, rounds=rounds, cycle=cycle,
           ideal=ideal, overhead=overhead, cycle_99=pct(cycles, 99) / 1000, cfg_ideal=rounds * cfg_cycle / 1000, start=start, tail=tail, cpu=cpu, rss=rss_mb,
           **{f"{name}_{p}": pct(xs, p) for name, xs in
              [("dispatch", dispatch), ("api", detect_api), ("conf", detect_conf), ("refill", refill)] for p in (50, 99)})
print(f"  {n}/{c} run {rep}: {len(confirmed)}/{n} confirmed, {fails} failed, exit {rc}; wall {wall:.2f} s vs ideal "
      f"{rounds} x {cycle:.3f} s = {ideal:.2f} s: overhead {overhead:+.1f} % (node cycle p99 {pct(cycles, 99) / 1000:.3f} s)")
print(f"    simulation CPU during the run {sim_cpu:.2f} s ({sim_cpu / wall:.2f} core; its start-up {sim_cpu_start / clk_tck:.2f} s);"
      f" fleetboot CPU {cpu:.2f} s; load average (1 min) {load_before} -> {load_after}")
print("    stages p50/p99 ms: " + ", ".join(f"{k} {pct(v, 50):.0f}/{pct(v, 99):.0f}" for k, v in stages.items()))
with open(summary, "a") as f:
    f.write(json.dumps(row) + "\n")
PY
        [ -n "$keep" ] || rm -rf "$dir"
        dir=""
    done
done
"$py" - "$summary" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
if not rows:
    sys.exit("bench-rolling: no run finished")
sizes = list(dict.fromkeys((r["n"], r["c"]) for r in rows))
med = lambda rs, k: statistics.median(r[k] for r in rs)
print("\nmedians per size (ms unless marked; p50/p99 over the hosts of a run)")
print(f"{'N/C':>9} {'confirmed':>10} {'wall s':>8} {'ideal s':>18} {'overhead':>9} {'dispatch':>11} {'Ready->api_conf':>16}"
      f" {'Ready->confirmed':>17} {'refill':>11} {'start':>6} {'tail':>6} {'CPU s':>6} {'RSS MB':>7} {'sim CPU s':>10}")
for n, c in sizes:
    rs = [r for r in rows if (r["n"], r["c"]) == (n, c)]
    pp = lambda k: f"{med(rs, k + '_50'):.0f}/{med(rs, k + '_99'):.0f}"
    ideal = f"{rs[0]['rounds']} x {med(rs, 'cycle'):.3f} = {med(rs, 'ideal'):.2f}"
    confirmed = f"{min(r['confirmed'] for r in rs)}/{n}"
    print(f"{f'{n}/{c}':>9} {confirmed:>10} {med(rs, 'wall'):>8.2f} {ideal:>18} {med(rs, 'overhead'):>+8.1f}%"
          f" {pp('dispatch'):>11} {pp('api'):>16} {pp('conf'):>17} {pp('refill'):>11} {med(rs, 'start'):>6.0f} {med(rs, 'tail'):>6.0f}"
          f" {med(rs, 'cpu'):>6.2f} {med(rs, 'rss'):>7.0f} {med(rs, 'sim_cpu'):>10.2f}")
print("\nas a README table:")
print("| N / C | fleetboot wall s | ideal s: ceil(N/C) × median node cycle | overhead | dispatch → reboot-requested p50/p99 ms"
      " | Ready → api_confirmed p50/p99 ms | confirmed → next dispatching p50/p99 ms | start / tail ms | CPU s / peak RSS MB | runs |")
print("|---|---|---|---|---|---|---|---|---|---|")
for n, c in sizes:
    rs = [r for r in rows if (r["n"], r["c"]) == (n, c)]
    pp = lambda k: f"{med(rs, k + '_50'):.0f} / {med(rs, k + '_99'):.0f}"
    print(f"| {n} / {c} | **{med(rs, 'wall'):.2f}** | {rs[0]['rounds']} × {med(rs, 'cycle'):.3f} = {med(rs, 'ideal'):.2f} | {med(rs, 'overhead'):+.1f} %"
          f" | {pp('dispatch')} | {pp('api')} | {pp('refill')} | {med(rs, 'start'):.0f} / {med(rs, 'tail'):.0f} | {med(rs, 'cpu'):.2f} / {med(rs, 'rss'):.0f} | {len(rs)} |")
cfg = "; ".join(f"{n}/{c}: {next(r['cfg_ideal'] for r in rows if (r['n'], r['c']) == (n, c)):.2f} s" for n, c in sizes)
print("ideal = ceil(N/C) x the median node cycle as the nodes saw it (reboot-requested -> ready in the API, from the")
print(f"simulation's history); with the configured timings alone: {cfg}")
PY
rm -f "$summary"
