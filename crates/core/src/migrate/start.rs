//! How a `fleetboot migrate` starts, decided from the migration of this cluster the state
//! directory holds (if any) and what was asked. Pure: the directories are the caller's, carried
//! through as `D`.

use super::record::MigrationState;
use super::source_type;

/// What was asked.
#[derive(Clone, Copy, Debug)]
pub struct StartRequest<'a> {
    /// The network type asked for (`--to`).
    pub to: &'a str,
    pub resume: bool,
    pub cleanup: bool,
    pub plan: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartDecision<D> {
    /// A new migration.
    Fresh,
    /// Go on with this migration (`--resume`, `--cleanup`, or its `--plan`).
    Continue(D),
    /// A migration towards the other type takes over from this unfinished one: a rollback
    /// (openshift-docs `modules/nw-ovn-kubernetes-rollback.adoc`), in a new directory.
    Supersede(D),
    /// A migration towards the same type is unfinished here: resume it, or roll it back.
    RefuseInProgress { dir: D, target: String, rollback_to: String },
    /// `--resume` or `--cleanup` with no migration to go on with.
    RefuseNothingToResume,
}

/// The decision. `existing`: the directory and folded journal of this cluster's migration the
/// state directory holds (the unfinished one, or the one `--dir` names), if any journal with a
/// start is there.
pub fn decide_start<D>(existing: Option<(D, &MigrationState)>, request: &StartRequest<'_>) -> StartDecision<D> {
    let continuing = request.resume || request.cleanup;
    match existing {
        Some((dir, state)) if !continuing && state.target != request.to => StartDecision::Supersede(dir),
        Some((dir, state)) if !continuing && !request.plan => {
            StartDecision::RefuseInProgress { dir, target: state.target.clone(), rollback_to: source_type(&state.target).to_owned() }
        }
        Some((dir, _)) => StartDecision::Continue(dir),
        None if continuing => StartDecision::RefuseNothingToResume,
        None => StartDecision::Fresh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn towards(target: &str) -> MigrationState {
        MigrationState { target: target.into(), run_id: "m-1".into(), ..MigrationState::default() }
    }

    fn ask(to: &str) -> StartRequest<'_> {
        StartRequest { to, resume: false, cleanup: false, plan: false }
    }

    #[test]
    fn nothing_there_starts_fresh_and_a_resume_of_nothing_is_refused() {
        assert_eq!(decide_start::<&str>(None, &ask("OVNKubernetes")), StartDecision::Fresh);
        let resume = StartRequest { resume: true, ..ask("OVNKubernetes") };
        assert_eq!(decide_start::<&str>(None, &resume), StartDecision::RefuseNothingToResume);
        let cleanup = StartRequest { cleanup: true, ..ask("OVNKubernetes") };
        assert_eq!(decide_start::<&str>(None, &cleanup), StartDecision::RefuseNothingToResume);
    }

    #[test]
    fn an_unfinished_migration_is_resumed_planned_or_refused_and_the_other_type_rolls_it_back() {
        let state = towards("OVNKubernetes");
        let resume = StartRequest { resume: true, ..ask("OVNKubernetes") };
        assert_eq!(decide_start(Some(("d", &state)), &resume), StartDecision::Continue("d"));
        let plan = StartRequest { plan: true, ..ask("OVNKubernetes") };
        assert_eq!(decide_start(Some(("d", &state)), &plan), StartDecision::Continue("d"));
        assert_eq!(
            decide_start(Some(("d", &state)), &ask("OVNKubernetes")),
            StartDecision::RefuseInProgress { dir: "d", target: "OVNKubernetes".into(), rollback_to: "OpenShiftSDN".into() }
        );
        assert_eq!(decide_start(Some(("d", &state)), &ask("OpenShiftSDN")), StartDecision::Supersede("d"));
        // A resume goes on with the migration as it started, whatever --to says.
        let resume_other = StartRequest { resume: true, ..ask("OpenShiftSDN") };
        assert_eq!(decide_start(Some(("d", &state)), &resume_other), StartDecision::Continue("d"));
    }
}
