//! Inventory + prior journal → the plan: which host gets what, in which order. Pure.

use serde::Serialize;

use crate::hosts::Host;
use crate::journal::{ResumeAction, RunState};
pub use crate::policy::Grouping;

#[derive(Clone, Debug, Serialize)]
pub struct PlannedHost {
    pub host: Host,
    #[serde(serialize_with = "action_name")]
    pub action: ResumeAction,
}

fn action_name<S: serde::Serializer>(action: &ResumeAction, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(describe(*action))
}

pub fn describe(action: ResumeAction) -> &'static str {
    match action {
        ResumeAction::Reboot => "reboot",
        ResumeAction::AwaitNewBootId => "await new boot ID (reboot already sent)",
        ResumeAction::Check => "run the check (already back)",
        ResumeAction::Done => "done",
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub run_id: String,
    /// Every host of the run, in the run's order.
    pub hosts: Vec<Host>,
    /// Hosts already in flight come first: they hold in-flight slots from the start. Hosts of
    /// the `last` groups come after all others.
    pub steps: Vec<PlannedHost>,
    pub grouping: Grouping,
}

impl Plan {
    pub fn count(&self, action: ResumeAction) -> usize {
        self.steps.iter().filter(|s| s.action == action).count()
    }
}

/// A fresh run reboots every host in the given order; a resumed one takes each host's action
/// from the folded journal, so a host with a reboot in flight is only watched.
pub fn plan_reboot(run_id: String, hosts: Vec<Host>, prior: Option<&RunState>, grouping: Grouping) -> Plan {
    let action_of = |host: &Host| match prior.and_then(|p| p.records.get(&host.name)) {
        Some(record) => record.resume_action(),
        None => ResumeAction::Reboot,
    };
    let mut steps: Vec<PlannedHost> = hosts.iter().map(|host| PlannedHost { host: host.clone(), action: action_of(host) }).collect();
    // Stable sort: in flight first, then the ordinary groups, then the `last` groups.
    steps.sort_by_key(|s| (s.action == ResumeAction::Reboot, grouping.is_last(&s.host.name)));
    Plan { run_id, hosts, steps, grouping }
}

/// Moves `name`'s step after every other (a pod's own node: rebooting it ends the run's
/// process). A step already in flight or done keeps its place.
pub fn put_last(plan: &mut Plan, name: &str) {
    if let Some(index) = plan.steps.iter().position(|s| s.host.name == name && s.action == ResumeAction::Reboot) {
        let step = plan.steps.remove(index);
        plan.steps.push(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Entry, JOURNAL_VERSION, Record, fold};
    use std::path::Path;

    fn host(name: &str) -> Host {
        Host { name: name.into(), address: "127.0.0.1".into(), port: None }
    }

    #[test]
    fn a_pods_own_node_goes_after_every_other_even_the_last_groups() {
        let mut grouping = Grouping::default();
        grouping.last.push("master".into());
        grouping.of.insert("m".into(), "master".into());
        let mut plan = plan_reboot("r".into(), vec![host("a"), host("m"), host("b")], None, grouping);
        put_last(&mut plan, "a");
        let names: Vec<_> = plan.steps.iter().map(|s| s.host.name.as_str()).collect();
        assert_eq!(names, ["b", "m", "a"]);
    }

    #[test]
    fn fresh_plan_keeps_order_and_reboots_all() {
        let plan = plan_reboot("r".into(), vec![host("a"), host("b")], None, Grouping::default());
        let names: Vec<_> = plan.steps.iter().map(|s| (s.host.name.as_str(), s.action)).collect();
        assert_eq!(names, vec![("a", ResumeAction::Reboot), ("b", ResumeAction::Reboot)]);
    }

    #[test]
    fn resumed_plan_watches_in_flight_hosts_first_and_skips_done_ones() {
        let hosts = vec![host("a"), host("b"), host("c")];
        let rec = |at_ms, entry| Record { v: JOURNAL_VERSION, at_ms, entry };
        let records = vec![
            rec(
                0,
                Entry::RunStarted {
                    run_id: "r".into(),
                    command: "x".into(),
                    hosts: hosts.clone(),
                    api_proof: false,
                    grouping: None,
                    drain: None,
                    cluster: None,
                    settings: None,
                },
            ),
            rec(1, Entry::Dispatching { host: "a".into(), old_boot_id: "1".into(), bmc: None }),
            rec(2, Entry::Back { host: "a".into(), new_boot_id: "2".into(), api_only: false }),
            rec(3, Entry::Confirmed { host: "a".into() }),
            rec(4, Entry::Dispatching { host: "c".into(), old_boot_id: "1".into(), bmc: None }),
        ];
        let state = fold(&records, Path::new("j")).unwrap();
        let plan = plan_reboot("r".into(), hosts, Some(&state), Grouping::default());
        let steps: Vec<_> = plan.steps.iter().map(|s| (s.host.name.as_str(), s.action)).collect();
        assert_eq!(steps, vec![("a", ResumeAction::Done), ("c", ResumeAction::AwaitNewBootId), ("b", ResumeAction::Reboot)]);
    }

    #[test]
    fn the_control_plane_goes_last() {
        let grouping = Grouping {
            of: [("m0", "master"), ("w0", "worker"), ("m1", "master"), ("w1", "worker")]
                .iter()
                .map(|(h, g)| (h.to_string(), g.to_string()))
                .collect(),
            limits: [("master".to_string(), 1)].into_iter().collect(),
            last: vec!["master".into()],
            standalone: Vec::new(),
            by: None,
        };
        let plan = plan_reboot("r".into(), vec![host("m0"), host("w0"), host("m1"), host("w1")], None, grouping);
        let order: Vec<_> = plan.steps.iter().map(|s| s.host.name.as_str()).collect();
        assert_eq!(order, ["w0", "w1", "m0", "m1"]);
    }
}
