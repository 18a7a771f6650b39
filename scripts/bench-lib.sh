# Shared by the benchmark scripts (sourced, not run): stopping what a run started.

# Ends a run's process group: `timeout` made it, and its PID is the group's ID. TERM first
# (fleetboot takes it as "finish what is in flight"), then KILL if anything is left after 10 s.
stop_group() {
    local g=$1
    kill -TERM -- "-$g" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 -- "-$g" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$g" 2>/dev/null || true
}
