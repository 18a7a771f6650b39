//! The README's first command: `fleetboot demo` runs the whole migration on a simulated
//! cluster, one worker going through the cluster API, one through its BMC.

#[test]
fn the_demo_migrates_a_simulated_cluster_end_to_end() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::common::fleetboot_bin())
        .args(["demo", "--masters", "1", "--workers", "2", "--output", "plain"])
        .env("HOME", home.path())
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("worker-1 refuses SSH and its machine-config daemon pod is gone"), "{stdout}");
    assert!(stdout.contains("worker-0 refuses SSH: fleetboot reaches it through the cluster API"), "{stdout}");
    assert!(stdout.contains("; 1 through the cluster API; 1 through their BMC"), "{stdout}");
    assert!(stdout.contains("migration to OVNKubernetes complete"), "{stdout}");
    assert!(stdout.contains("network type OVNKubernetes"), "{stdout}");
    assert_eq!(stdout.matches(" changed  Ready").count(), 3, "{stdout}");
    let kept = stdout
        .lines()
        .find_map(|l| l.strip_prefix("the migration's journal, backup and report (report.md, timeline.svg) stay in "))
        .unwrap();
    assert!(std::path::Path::new(kept).exists());
    let _ = std::fs::remove_dir_all(std::path::Path::new(kept).parent().unwrap().parent().unwrap());
}
