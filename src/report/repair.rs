//! `fleetboot repair`'s output: one line per action, or the report as JSON.

use fleetboot_core::repair::RepairReport;

pub fn render_plain(report: &RepairReport) -> String {
    let mut text = format!("repairing what {} left changed on {}\n", report.journal.display(), report.cluster);
    if report.actions.is_empty() {
        text.push_str("nothing to put back: no cordon, lease, paused pool, debug pod or in-progress annotation of fleetboot's is left\n");
    }
    for a in &report.actions {
        let what = match a.action {
            "uncordon" => format!("uncordon node {}", a.target),
            "release-lease" => format!("release lease {}", a.target),
            "unpause-pool" => format!("unpause MachineConfigPool {}", a.target),
            "remove-annotation" => format!("remove fleetboot.io/reboot-in-progress from node {}", a.target),
            "delete-debug-pod" => format!("delete debug pod {}", a.target),
            other => format!("{other} {}", a.target),
        };
        let result = match (a.result, &a.detail) {
            ("planned", _) => "would do (--dry-run)".to_owned(),
            ("left", _) => "left alone: it changed meanwhile (another run holds it now)".to_owned(),
            ("failed", Some(e)) => format!("FAILED: {e}"),
            (r, _) => r.to_owned(),
        };
        text.push_str(&format!("{what}: {result}\n"));
    }
    text.push_str("nothing was rebooted\n");
    text
}

pub fn render_json(report: &RepairReport) -> String {
    serde_json::to_string_pretty(report).expect("serializes") + "\n"
}
