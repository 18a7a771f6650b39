//! The batch settings from `FLEETBOOT_*` variables, through the one settings merge: below the
//! flags, above the config file; a bad one refused naming the variable before anything is
//! touched. Real processes on the simulated cluster, judged by `--dry-run`'s plan.

use crate::common::Run;
use crate::common::sim::Sim;

#[test]
fn batch_variables_set_the_run_under_the_flags_and_a_bad_one_is_named() {
    let sim = Sim::start(1, 1);
    let dry_run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["reboot", "--nodes", "worker-0", "--drain", "--dry-run"];
        args.extend_from_slice(extra);
        let mut command = sim.fleetboot(&args);
        for (k, v) in env {
            command.env(k, v);
        }
        Run::from(command.output().unwrap())
    };
    let env = [("FLEETBOOT_WINDOW", "Sat 01:00-03:00"), ("FLEETBOOT_SOAK", "7m"), ("FLEETBOOT_DRAIN_POD_SELECTOR", "tier=batch")];
    let run = dry_run(&[], &env);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("Sat 01:00-03:00"), "{}", run.stdout);
    assert!(run.stdout.contains("soak: 7m"), "{}", run.stdout);
    assert!(run.stdout.contains(r#"only pods matching "tier=batch""#), "{}", run.stdout);
    // The flag wins over the variable.
    let run = dry_run(&["--soak", "2m"], &env);
    assert!(run.stdout.contains("soak: 2m") && !run.stdout.contains("soak: 7m"), "{}", run.stdout);
    let run = dry_run(&[], &[("FLEETBOOT_DRAIN_ESCALATION", "wait,explode")]);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("FLEETBOOT_DRAIN_ESCALATION"), "{}", run.stderr);
}
