//! A password written into a `[[bmc]]` URL (`https://user:pass@host/...`) is refused, naming the
//! entry, before anything is touched: no output, journal or node history carries it (the
//! review's finding 5). The binary against the simulated cluster.

use crate::common::Run;
use crate::common::sim::Sim;

#[test]
fn a_bmc_url_with_a_password_is_refused_naming_the_entry_and_the_secret_goes_nowhere() {
    let sim = Sim::start(0, 1);
    let text = std::fs::read_to_string(sim.config()).unwrap()
        + "\n[[bmc]]\nnode = \"worker-0\"\nurl = \"https://admin:hunter2@127.0.0.1:9/redfish/v1/Systems/1\"\n";
    let config = sim.path("secret.toml");
    std::fs::write(&config, text).unwrap();
    let journal = sim.path("run.jsonl");
    let run: Run = std::process::Command::new(crate::common::fleetboot_bin())
        .arg("--config")
        .arg(&config)
        .args(["reboot", "--nodes", "worker-0", "--journal", journal.to_str().unwrap()])
        .env("HOME", sim.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("entry") && run.stderr.contains("worker-0") && run.stderr.contains("user:pass@"), "{}", run.debug());
    assert!(!run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"), "the password is printed: {}", run.debug());
    assert!(!journal.exists(), "nothing is journaled");
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let history = nodes.as_array().unwrap().iter().find(|n| n["name"] == "worker-0").unwrap()["history"].clone();
    assert!(!history.to_string().contains("reboot-requested") && !history.to_string().contains("cordon"), "touched: {history}");
}
