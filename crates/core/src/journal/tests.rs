//! The journal's tests: records, the fold, resume settings.

use std::path::Path;

use super::*;
use crate::settings::Partial;
use proptest::prelude::*;

fn host(name: &str) -> Host {
    Host { name: name.into(), address: "127.0.0.1".into(), port: None }
}

fn rec(at_ms: u64, entry: Entry) -> Record {
    Record { v: JOURNAL_VERSION, at_ms, entry }
}

fn start(names: &[&str]) -> Record {
    rec(
        0,
        Entry::RunStarted {
            run_id: "r".into(),
            command: "sudo shutdown -r -t 3".into(),
            hosts: names.iter().map(|n| host(n)).collect(),
            api_proof: false,
            grouping: None,
            drain: None,
            cluster: None,
            settings: None,
        },
    )
}

#[test]
fn a_full_reboot_folds_to_done_with_times() {
    let h = || "a".to_string();
    let records = vec![
        start(&["a", "b"]),
        rec(1, Entry::BootIdRead { host: h(), boot_id: "old".into() }),
        rec(2, Entry::Dispatching { host: h(), old_boot_id: "old".into(), bmc: None }),
        rec(3, Entry::Dispatched { host: h(), delivery: Delivery::ExitZero, reset_type: None }),
        rec(60_000, Entry::Down { host: h() }),
        rec(61_000, Entry::Down { host: h() }),
        rec(90_000, Entry::Back { host: h(), new_boot_id: "new".into(), api_only: false }),
        rec(90_001, Entry::Confirmed { host: h() }),
    ];
    let state = fold(&records, Path::new("j")).unwrap();
    let a = &state.records["a"];
    assert_eq!(a.phase, Phase::Confirmed);
    assert_eq!((a.old_boot_id.as_deref(), a.new_boot_id.as_deref()), (Some("old"), Some("new")));
    assert_eq!((a.dispatched_at_ms, a.down_at_ms, a.back_at_ms), (Some(2), Some(60_000), Some(90_000)));
    assert_eq!(a.resume_action(), ResumeAction::Done);
    assert_eq!(state.records["b"].resume_action(), ResumeAction::Reboot);
}

#[test]
fn failures_before_dispatch_are_retried_after_it_are_only_watched() {
    let records = vec![
        start(&["a", "b", "c", "d"]),
        rec(1, Entry::Failed { host: "a".into(), stage: Stage::Connect, error: "refused".into(), may_reboot: false }),
        rec(2, Entry::Dispatching { host: "b".into(), old_boot_id: "x".into(), bmc: None }),
        rec(3, Entry::Failed { host: "b".into(), stage: Stage::Dispatch, error: "sudo: no".into(), may_reboot: false }),
        rec(4, Entry::Dispatching { host: "c".into(), old_boot_id: "y".into(), bmc: None }),
        rec(5, Entry::Failed { host: "c".into(), stage: Stage::Confirm, error: "timeout".into(), may_reboot: true }),
        rec(6, Entry::Dispatching { host: "d".into(), old_boot_id: "z".into(), bmc: None }),
    ];
    let state = fold(&records, Path::new("j")).unwrap();
    assert_eq!(state.records["a"].resume_action(), ResumeAction::Reboot);
    // The command answered "no" (non-zero exit): nothing is scheduled, it may be resent.
    assert_eq!(state.records["b"].resume_action(), ResumeAction::Reboot);
    assert_eq!(state.records["c"].resume_action(), ResumeAction::AwaitNewBootId);
    // Killed between the intent and any answer: the command may have gone out.
    assert_eq!(state.records["d"].resume_action(), ResumeAction::AwaitNewBootId);
}

#[test]
fn a_cancel_journaled_as_intended_but_not_done_leaves_the_reboot_in_doubt() {
    let h = || "a".to_string();
    let mut records = vec![
        start(&["a"]),
        rec(1, Entry::Dispatching { host: h(), old_boot_id: "old".into(), bmc: None }),
        rec(2, Entry::Dispatched { host: h(), delivery: Delivery::ExitZero, reset_type: None }),
        rec(3, Entry::Cancelling { host: h() }),
    ];
    let a = fold(&records, Path::new("j")).unwrap().records["a"].clone();
    assert!(a.reboot_pending);
    assert_eq!(a.resume_action(), ResumeAction::AwaitNewBootId, "re-checked by boot ID, never re-sent");
    records.push(rec(4, Entry::Cancelled { host: h() }));
    let a = fold(&records, Path::new("j")).unwrap().records["a"].clone();
    assert_eq!((a.phase, a.reboot_pending), (Phase::Cancelled, false));
}

#[test]
fn torn_last_line_is_dropped_and_corruption_elsewhere_refused() {
    let good = serde_json::to_string(&start(&["a"])).unwrap();
    let text = format!("{good}\n{{\"v\":1,\"at_ms\":5,\"event\":\"dow");
    let records = parse(&text, Path::new("j")).unwrap();
    assert_eq!(records.len(), 1);
    let err = parse(&format!("{good}\nnot json\n{good}\n"), Path::new("j.jsonl")).unwrap_err();
    assert!(err.to_string().starts_with("journal j.jsonl:2:"), "{err}");
    let err = parse("{\"v\":9,\"at_ms\":1,\"event\":\"run_finished\",\"outcome\":\"x\"}\n", Path::new("j")).unwrap_err();
    assert!(matches!(err, JournalError::Version { found: 9, .. }));
}

#[test]
fn a_second_run_started_is_refused_naming_both_runs_not_a_panic() {
    let mut second = start(&["b"]);
    if let Entry::RunStarted { run_id, .. } = &mut second.entry {
        *run_id = "other".into();
    }
    let records = vec![start(&["a"]), rec(1, Entry::BootIdRead { host: "a".into(), boot_id: "x".into() }), second];
    let err = fold(&records, Path::new("j.jsonl")).unwrap_err();
    assert!(matches!(&err, JournalError::SecondStart { record: 3, first, second, .. } if first == "r" && second == "other"), "{err}");
    assert!(err.to_string().contains("journal j.jsonl: record 3 starts a second run (other) inside run r"), "{err}");
}

fn policy() -> RunPolicy {
    RunPolicy {
        boot_id_command: "cat /proc/sys/kernel/random/boot_id".into(),
        check_command: Some("systemctl is-system-running --wait".into()),
        cancel_pending_on_abort: true,
        max_failures: FailureBudget::Percent(10),
        fallback: FallbackSpec {
            on_unreachable: true,
            on_auth_failure: false,
            on_host_key: false,
            on_hung: true,
            graceful_timeout_ms: 300_000,
        },
    }
}

fn settings() -> RunSettings {
    RunSettings {
        transport: Transport::Auto,
        transport_order: None,
        command: "sudo shutdown -r -t 3".into(),
        rate: Some(RateSpec { count: 2, per_ms: 60_000 }),
        concurrency: 3,
        timeout_ms: 600_000,
        scheduled_delay_ms: 60_000,
        poll_interval_ms: 2_000,
        policy: Some(policy()),
        batch: None,
    }
}

#[test]
fn a_resume_keeps_the_journaled_settings_unless_overridden_and_names_what_changed() {
    let journaled = settings();
    let today = RunSettings { concurrency: 50, rate: None, transport: Transport::Ssh, policy: None, ..settings() };
    // No override: the journal's settings, not today's configuration.
    let resumed = resume_settings(Some(&journaled), &today, &Partial::default(), false).unwrap();
    assert_eq!(resumed.settings, journaled);
    assert!(resumed.overridden.is_empty() && resumed.not_journaled.is_empty());
    // Explicit overrides win, and are named.
    let overrides = Partial { concurrency: Some(1), rate: Some(None), ..Default::default() };
    let resumed = resume_settings(Some(&journaled), &today, &overrides, false).unwrap();
    assert_eq!(resumed.settings, RunSettings { concurrency: 1, rate: None, ..journaled.clone() });
    assert_eq!(resumed.overridden, ["rate", "concurrency"]);
    // An override equal to the journaled value changes nothing.
    let same = Partial { concurrency: Some(3), ..Default::default() };
    assert!(resume_settings(Some(&journaled), &today, &same, true).unwrap().overridden.is_empty());
    // A journal from before settings were recorded: today's configuration, and said so.
    let old = resume_settings(None, &today, &Partial::default(), false).unwrap();
    assert_eq!(old.settings, today);
    assert!(old.not_journaled.contains(&"concurrency"), "{:?}", old.not_journaled);
}

#[test]
fn a_resume_keeps_the_journaled_policy_and_refuses_a_conflicting_flag_naming_both_values() {
    let journaled = settings();
    let today = RunSettings {
        policy: Some(RunPolicy { check_command: None, max_failures: FailureBudget::Count(0), cancel_pending_on_abort: false, ..policy() }),
        ..settings()
    };
    // Today's configuration (no check command, no failures) does not replace the journal's.
    let resumed = resume_settings(Some(&journaled), &today, &Partial::default(), true).unwrap();
    assert_eq!(resumed.settings.policy, Some(policy()));
    // An explicit, different value is refused, each flag named with both values.
    let given = Partial {
        check_command: Some(Some("true".into())),
        max_failures: Some(FailureBudget::Count(2)),
        boot_id_command: Some("cat /proc/sys/kernel/random/boot_id".into()),
        ..Default::default()
    };
    let conflicts = resume_settings(Some(&journaled), &today, &given, true).unwrap_err();
    let shown: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [r#"--check-command "true" (the journal says "systemctl is-system-running --wait")"#, "--max-failures 2 (the journal says 10%)",]
    );
    // With the override allowed, the given values win and are named as overridden.
    let resumed = resume_settings(Some(&journaled), &today, &given, false).unwrap();
    let policy_now = resumed.settings.policy.unwrap();
    assert_eq!((policy_now.check_command.as_deref(), policy_now.max_failures), (Some("true"), FailureBudget::Count(2)));
    assert_eq!(resumed.overridden, ["check_command", "max_failures"]);
}

#[test]
fn a_journal_without_the_policy_resumes_with_todays_and_says_which_were_not_journaled() {
    let journaled = RunSettings { policy: None, ..settings() };
    let today = settings();
    let given = Partial { check_command: Some(None), ..Default::default() };
    let resumed = resume_settings(Some(&journaled), &today, &given, true).unwrap();
    assert_eq!(resumed.settings.policy, Some(RunPolicy { check_command: None, ..policy() }));
    assert!(resumed.not_journaled.contains(&"check command"), "{:?}", resumed.not_journaled);
    assert!(resumed.overridden.is_empty(), "nothing journaled to override: {:?}", resumed.overridden);
    // A run without BMCs journals no graceful wait: a resume that has them overrides nothing.
    let mut no_bmc = settings();
    no_bmc.policy.as_mut().unwrap().fallback.graceful_timeout_ms = 0;
    assert!(no_bmc.differences(&settings()).is_empty());
    let mut other = settings();
    other.policy.as_mut().unwrap().fallback.on_hung = false;
    assert_eq!(settings().differences(&other), ["fallback"]);
    // The old record format still parses: a settings object without a policy.
    let old = r#"{"transport":"auto","command":"c","concurrency":1,"timeout_ms":1,"scheduled_delay_ms":1,"poll_interval_ms":1}"#;
    assert_eq!(serde_json::from_str::<RunSettings>(old).unwrap().policy, None);
    let round: RunSettings = serde_json::from_str(&serde_json::to_string(&settings()).unwrap()).unwrap();
    assert_eq!(round, settings());
}

#[test]
fn settings_fold_from_run_started_and_the_latest_resume_and_old_journals_still_load() {
    let old = r#"{"v":1,"at_ms":0,"event":"run_started","run_id":"r","command":"c","hosts":[{"name":"a","address":"127.0.0.1"}]}"#;
    let records = parse(&format!("{old}\n{{\"v\":1,\"at_ms\":1,\"event\":\"run_resumed\",\"pid\":7}}\n"), Path::new("j")).unwrap();
    assert_eq!(fold(&records, Path::new("j")).unwrap().settings, None);
    let mut start = start(&["a"]);
    if let Entry::RunStarted { settings: s, .. } = &mut start.entry {
        *s = Some(settings());
    }
    let resumed = RunSettings { concurrency: 1, ..settings() };
    let mut records = vec![start, rec(1, Entry::RunResumed { pid: 1, settings: None, overridden: vec![] })];
    assert_eq!(fold(&records, Path::new("j")).unwrap().settings, Some(settings()));
    records.push(rec(2, Entry::RunResumed { pid: 2, settings: Some(resumed.clone()), overridden: vec!["concurrency".into()] }));
    let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    assert_eq!(fold(&parse(&text, Path::new("j")).unwrap(), Path::new("j")).unwrap().settings, Some(resumed));
}

#[test]
fn a_soft_reboot_folds_to_its_own_phase_counts_as_a_failure_and_is_never_resent() {
    let h = || "a".to_string();
    let records = vec![
        start(&["a"]),
        rec(1, Entry::BootIdRead { host: h(), boot_id: "old".into() }),
        rec(2, Entry::SoftRebootCount { host: h(), count: 2 }),
        rec(3, Entry::Dispatching { host: h(), old_boot_id: "old".into(), bmc: None }),
        // A count read while the reboot is pending never replaces the one from before it.
        rec(4, Entry::SoftRebootCount { host: h(), count: 3 }),
    ];
    let state = fold(&records, Path::new("j")).unwrap();
    assert_eq!(state.records["a"].soft_reboots_before, Some(2));
    let mut records = records;
    records.push(rec(5, Entry::SoftRebooted { host: h(), boot_id: "old".into(), count_before: 2, count_after: 3 }));
    let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    let state = fold(&parse(&text, Path::new("j")).unwrap(), Path::new("j")).unwrap();
    let a = &state.records["a"];
    assert_eq!((a.phase, a.reboot_pending, a.resume_action()), (Phase::SoftRebooted, false, ResumeAction::Done));
    assert!(a.failure.as_ref().unwrap().1.contains("SoftRebootsCount 2 → 3"), "{:?}", a.failure);
    assert_eq!(state.failed_hosts(), 1);
}

#[test]
fn the_failure_count_folds_from_the_journal() {
    let records = vec![
        start(&["a", "b", "c"]),
        rec(1, Entry::Failed { host: "a".into(), stage: Stage::Connect, error: "e".into(), may_reboot: false }),
        rec(2, Entry::Failed { host: "b".into(), stage: Stage::Confirm, error: "e".into(), may_reboot: true }),
        rec(3, Entry::Back { host: "b".into(), new_boot_id: "n".into(), api_only: false }),
        rec(4, Entry::Confirmed { host: "b".into() }),
        rec(5, Entry::Failed { host: "c".into(), stage: Stage::Check, error: "e".into(), may_reboot: false }),
    ];
    assert_eq!(fold(&records, Path::new("j")).unwrap().failed_hosts(), 2);
}

/// Per-host event streams a real run can produce, in order.
fn host_stream() -> impl Strategy<Value = Vec<Entry>> {
    let h = || "h".to_string();
    let full = [
        Entry::BootIdRead { host: h(), boot_id: "old".into() },
        Entry::Dispatching { host: h(), old_boot_id: "old".into(), bmc: None },
        Entry::Dispatched { host: h(), delivery: Delivery::ExitZero, reset_type: None },
        Entry::Down { host: h() },
        Entry::Back { host: h(), new_boot_id: "new".into(), api_only: false },
        Entry::Confirmed { host: h() },
    ];
    let failure_stage = prop_oneof![Just(0usize), Just(1), Just(2), Just(3), Just(4), Just(5), Just(6)];
    (0..=full.len(), failure_stage, any::<bool>()).prop_map(move |(cut, fail_at, cancel)| {
        let mut out: Vec<Entry> = full[..cut].to_vec();
        if fail_at < cut && fail_at < 5 {
            out.truncate(fail_at);
            let (stage, may_reboot) = match fail_at {
                0 | 1 => (Stage::Connect, false),
                2 => (Stage::Dispatch, false), // the command exited non-zero
                _ => (Stage::Confirm, true),
            };
            out.push(Entry::Failed { host: h(), stage, error: "e".into(), may_reboot });
        } else if cancel && cut == 3 {
            // The intent, then (unless the run stopped between) the verified cancel.
            out.push(Entry::Cancelling { host: h() });
            if fail_at % 2 == 0 {
                out.push(Entry::Cancelled { host: h() });
            }
        }
        out
    })
}

proptest! {
    /// Model: a host whose journal holds a Dispatching record (and no later confirmed
    /// cancel) never gets a second reboot command on resume, whatever the interleaving of
    /// other hosts' records and wherever the journal was cut.
    #[test]
    fn resume_never_reboots_twice(streams in proptest::collection::vec(host_stream(), 1..6),
                                  interleave in proptest::collection::vec(any::<u8>(), 0..64)) {
        let names: Vec<String> = (0..streams.len()).map(|i| format!("h{i}")).collect();
        let mut queues: Vec<std::collections::VecDeque<Entry>> = streams
            .iter()
            .enumerate()
            .map(|(i, s)| s.iter().cloned().map(|e| rename(e, &names[i])).collect())
            .collect();
        let mut records = vec![start(&names.iter().map(String::as_str).collect::<Vec<_>>())];
        let mut picks = interleave.into_iter();
        let mut at = 1;
        while queues.iter().any(|q| !q.is_empty()) {
            let live: Vec<usize> = (0..queues.len()).filter(|i| !queues[*i].is_empty()).collect();
            let i = live[picks.next().unwrap_or(0) as usize % live.len()];
            records.push(rec(at, queues[i].pop_front().unwrap()));
            at += 1;
        }
        let state = fold(&records, Path::new("j")).unwrap();
        for (i, stream) in streams.iter().enumerate() {
            let dispatched = stream.iter().any(|e| matches!(e, Entry::Dispatching { .. }));
            let cancelled = stream.iter().any(|e| matches!(e, Entry::Cancelled { .. }
                | Entry::Failed { stage: Stage::Dispatch, may_reboot: false, .. }));
            let confirmed = stream.iter().any(|e| matches!(e, Entry::Confirmed { .. }));
            let action = state.records[&names[i]].resume_action();
            if confirmed {
                prop_assert_eq!(action, ResumeAction::Done);
            } else if dispatched && !cancelled {
                prop_assert_ne!(action, ResumeAction::Reboot);
            } else if !dispatched {
                prop_assert_eq!(action, ResumeAction::Reboot);
            }
        }
        // Serialization round trip folds to the same state.
        let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        let reparsed = parse(&text, Path::new("j")).unwrap();
        prop_assert_eq!(fold(&reparsed, Path::new("j")).unwrap(), state);
    }
}

fn rename(entry: Entry, name: &str) -> Entry {
    let mut value = serde_json::to_value(&entry).unwrap();
    value["host"] = serde_json::Value::String(name.to_owned());
    serde_json::from_value(value).unwrap()
}

#[cfg(test)]
mod cluster_identity_tests {
    use super::ClusterIdentity;

    #[test]
    fn the_cluster_id_decides_when_both_have_one_else_the_server() {
        let id = |server: &str, cluster_id: Option<&str>| ClusterIdentity {
            server: server.into(),
            cluster_id: cluster_id.map(Into::into),
            context: Some(server.into()),
        };
        assert!(id("https://a:6443/", Some("x")).same_cluster(&id("https://b:6443", Some("x"))));
        assert!(!id("https://a:6443", Some("x")).same_cluster(&id("https://a:6443", Some("y"))));
        assert!(id("https://a:6443/", None).same_cluster(&id("https://a:6443", Some("y"))));
        assert!(!id("https://a:6443", None).same_cluster(&id("https://b:6443", None)));
    }
}

#[test]
fn debug_pods_created_and_not_deleted_are_what_the_fold_leaves() {
    let created =
        |at, pod: &str| rec(at, Entry::DebugPodCreating { host: "a".into(), namespace: "fleetboot-debug".into(), pod: pod.into() });
    let deleted =
        |at, pod: &str| rec(at, Entry::DebugPodDeleted { host: "a".into(), namespace: "fleetboot-debug".into(), pod: pod.into() });
    let records = vec![start(&["a"]), created(1, "p1"), deleted(2, "p1"), created(3, "p2"), created(4, "p3"), deleted(5, "p3")];
    let state = fold(&records, Path::new("j")).unwrap();
    let left: Vec<&str> = state.debug_pods.iter().map(|d| d.pod.as_str()).collect();
    assert_eq!(left, ["p2"]);
    assert_eq!(state.records["a"].resume_action(), ResumeAction::Reboot, "the host's own state is untouched");
    // The record format, as the journal writes it.
    let line = serde_json::to_string(&created(3, "p2")).unwrap();
    assert_eq!(line, r#"{"v":1,"at_ms":3,"event":"debug_pod_creating","host":"a","namespace":"fleetboot-debug","pod":"p2"}"#);
}

#[test]
fn a_cordon_handed_over_is_no_longer_fleetboots_and_the_host_is_not_rebooted_by_the_run() {
    let mut record = HostRecord::pending();
    record.apply(&Entry::Cordoning { host: "w1".into(), already_cordoned: false }, 1);
    assert!(record.cordoned);
    let reason = "after the drain, w1 itself is being updated by the MCO".to_owned();
    record.apply(&Entry::CordonHandedOver { host: "w1".into(), to: "the machine-config operator".into(), reason }, 2);
    assert!(!record.cordoned, "a resume would lift the MCO's cordon");
    assert_eq!(record.phase, Phase::Skipped);
    assert!(record.skipped_because.as_deref().is_some_and(|r| r.contains("machine-config operator")));
}
