//! A resume deletes the debug pods its killed run left (journaled as created, never as
//! deleted), journaling each deletion; a deletion whose record the journal refuses (fenced, or
//! broken) stops it there: no further pod is touched and the run does not start (review 11,
//! left). Judged by the pods as kubectl reads them and the records the journal took.

use std::sync::{Arc, Mutex};

use crate::common::sim::Sim;
use fleetboot::adapters::journal::{JournalBackend, JournalWriter};
use fleetboot_core::journal::{DebugPodRef, Entry, JournalError, Record};

/// Takes records until its `fail_at`-th (from 1), which it refuses as a fenced journal would.
#[derive(Debug)]
struct Fenced {
    taken: Arc<Mutex<Vec<Record>>>,
    fail_at: usize,
}

impl JournalBackend for Fenced {
    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let mut taken = self.taken.lock().unwrap();
        if taken.len() + 1 >= self.fail_at {
            return Err(JournalError::Write { path: "cluster:kube-system/r".into(), reason: "the journal was taken over by bob".into() });
        }
        taken.push(record.clone());
        Ok(())
    }
}

fn pod(sim: &Sim, name: &str) -> DebugPodRef {
    let object = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system", "labels": {"app.kubernetes.io/managed-by": "fleetboot"}},
        "spec": {"containers": [{"name": "debug", "image": "registry.example/tools"}]},
    });
    let file = sim.path(&format!("{name}.json"));
    std::fs::write(&file, object.to_string()).unwrap();
    sim.kubectl_ok(&["apply", "--validate=false", "-f", file.to_str().unwrap()]);
    DebugPodRef { host: "worker-0".into(), namespace: "kube-system".into(), pod: name.into() }
}

fn exists(sim: &Sim, name: &str) -> bool {
    sim.kubectl(&["-n", "kube-system", "get", "pod", name]).0
}

#[test]
fn a_left_debug_pods_deletion_the_journal_refuses_stops_the_cleanup_and_the_run() {
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let pods = [pod(&sim, "fleetboot-debug-a"), pod(&sim, "fleetboot-debug-b")];

    // The journal refuses the first deletion's record: the cleanup stops with its error, and
    // the second pod is left alone (nothing more is touched once a record failed).
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut writer = JournalWriter::with_backend("cluster:kube-system/r".into(), Box::new(Fenced { taken: taken.clone(), fail_at: 1 }));
    let result =
        sim.block_on(fleetboot::engine::reboot::remove_debug_pods_left(&connection.client, &pods, "the previous run", &mut writer));
    let error = result.unwrap_err().to_string();
    assert!(error.contains("taken over by bob"), "{error}");
    assert!(taken.lock().unwrap().is_empty());
    assert!(!exists(&sim, "fleetboot-debug-a") && exists(&sim, "fleetboot-debug-b"));

    // A journal that takes them: each deletion journaled, once.
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut writer = JournalWriter::with_backend("cluster:kube-system/r".into(), Box::new(Fenced { taken: taken.clone(), fail_at: 99 }));
    let messages = sim
        .block_on(fleetboot::engine::reboot::remove_debug_pods_left(&connection.client, &pods, "the previous run", &mut writer))
        .unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(!exists(&sim, "fleetboot-debug-b"));
    let deleted: Vec<String> = taken
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::DebugPodDeleted { pod, .. } => Some(pod.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, ["fleetboot-debug-a", "fleetboot-debug-b"]);
}
