//! BareMetalHosts matched to nodes as a cluster has them: only this cluster's namespace, never
//! two for one node, never the default password for one without credentials.

use crate::common::Run;
use crate::common::sim::Sim;

fn fleetboot(sim: &Sim, args: &[&str]) -> Run {
    Run::from(sim.fleetboot(args).stdin(std::process::Stdio::null()).output().unwrap())
}

/// A BareMetalHost for worker-0 (by name or by its Machine) whose BMC is somewhere else.
fn create_bmh(sim: &Sim, namespace: &str, name: &str, consumer: bool) {
    let consumer = if consumer {
        "  consumerRef:\n    apiVersion: machine.openshift.io/v1beta1\n    kind: Machine\n    name: fleetboot-sim-worker-0\n    namespace: openshift-machine-api\n"
    } else {
        ""
    };
    let manifest = sim.path(&format!("{namespace}-{name}.yaml"));
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: metal3.io/v1alpha1\nkind: BareMetalHost\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  bmc:\n    address: redfish://127.0.0.1:9/redfish/v1/Systems/1\n    credentialsName: {name}-secret\n{consumer}"
        ),
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
}

#[test]
fn bare_metal_hosts_of_other_namespaces_are_ignored_and_two_for_one_node_is_an_error_naming_both() {
    let sim = Sim::start(0, 2);
    // Another cluster's inventory in the same API: a BareMetalHost named like the node, listed first.
    let namespace = sim.path("namespace.yaml");
    std::fs::write(&namespace, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aaa-other-cluster\n").unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", namespace.to_str().unwrap()]);
    create_bmh(&sim, "aaa-other-cluster", "worker-0", false);
    let run = fleetboot(&sim, &["power", "status", "worker-0", "-o", "json"]);
    assert_eq!(run.code, 0, "worker-0's own BareMetalHost is used: {}", run.debug());
    assert!(run.stdout.contains("\"power_state\": \"On\""), "{}", run.debug());

    // Two BareMetalHosts in openshift-machine-api for worker-0: refused, both named.
    create_bmh(&sim, "openshift-machine-api", "worker-0-duplicate", true);
    let run = fleetboot(&sim, &["power", "status", "worker-0"]);
    assert_eq!(run.code, 2, "{}", run.debug());
    for name in ["openshift-machine-api/worker-0-bmh", "openshift-machine-api/worker-0-duplicate"] {
        assert!(run.stderr.contains(name), "{name} is named: {}", run.debug());
    }
    // A [[bmc]] entry for the node settles it.
    let config = sim.path("with-bmc-entry.toml");
    let mut text = std::fs::read_to_string(sim.config()).unwrap();
    let bmh =
        sim.kubectl_ok(&["-n", "openshift-machine-api", "get", "baremetalhost", "worker-0-bmh", "-o", "jsonpath={.spec.bmc.address}"]);
    let url = bmh.replace("redfish://", "https://");
    text.push_str(&format!("\n[[bmc]]\nnode = \"worker-0\"\nurl = \"{url}\"\n"));
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(crate::common::fleetboot_bin())
        .arg("--config")
        .arg(&config)
        .args(["power", "status", "worker-0"])
        .env("HOME", sim.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.debug());
}

#[test]
fn a_bare_metal_host_without_credentials_never_gets_the_default_password() {
    let sim = Sim::start(0, 2);
    // The config's [redfish] password_file holds the very password the simulated BMCs accept.
    sim.kubectl_ok(&[
        "-n",
        "openshift-machine-api",
        "patch",
        "baremetalhost",
        "worker-1-bmh",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/bmc/credentialsName"}]"#,
    ]);
    let run = fleetboot(&sim, &["power", "status", "worker-1"]);
    assert_ne!(run.code, 0, "{}", run.debug());
    assert!(run.stderr.contains("worker-1-bmh names no credentials Secret"), "{}", run.debug());
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let worker = nodes.as_array().unwrap().iter().find(|n| n["name"] == "worker-1").unwrap().clone();
    let history = worker["history"].to_string();
    assert!(!history.contains("bmc-session-created") && !history.contains("bmc-"), "its BMC heard nothing: {history}");
}

#[test]
fn an_unreadable_bmc_secret_is_named_with_its_key_and_a_bmc_entry_using_it_exits_2() {
    let sim = Sim::start(0, 2);
    sim.kubectl_ok(&[
        "-n",
        "openshift-machine-api",
        "patch",
        "secret",
        "worker-1-bmc-secret",
        "--type=merge",
        "-p",
        r#"{"data": {"password": "not base64!"}}"#,
    ]);
    let run = fleetboot(&sim, &["power", "status", "worker-1"]);
    assert_ne!(run.code, 0, "{}", run.debug());
    assert!(run.stderr.contains("openshift-machine-api/worker-1-bmc-secret: key password is unreadable (not base64)"), "{}", run.debug());
    assert!(!run.stderr.contains("panicked"), "{}", run.debug());

    // The same Secret named by a [[bmc]] entry: the run is refused before any node is touched.
    let config = sim.path("secret-entry.toml");
    let mut text = std::fs::read_to_string(sim.config()).unwrap();
    text.push_str(
        "\n[[bmc]]\nnode = \"worker-1\"\nurl = \"https://127.0.0.1:9\"\npassword_secret = \"openshift-machine-api/worker-1-bmc-secret\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(crate::common::fleetboot_bin())
        .arg("--config")
        .arg(&config)
        .args(["reboot", "--nodes", "worker-1", "--transport", "redfish"])
        .env("HOME", sim.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("key password is unreadable"), "{}", run.debug());
    assert!(!sim.control("GET", "nodes", "").contains("reboot-requested"), "nothing was rebooted");
}
