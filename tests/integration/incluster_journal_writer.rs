//! The in-cluster journal's writer under a faulty API server (review 11, findings 1, 2, 6): a
//! transient error is tried again, a request that never answers times out, a write whose
//! answer was lost is not written twice. The faults are the simulation's fault injection
//! (`/sim/v1/fail-requests`, `/sim/v1/hold-requests`), no rule of the cluster; judged by the
//! ConfigMaps as kubectl reads them.

use std::time::Duration;

use crate::common::sim::Sim;
use fleetboot::adapters::journal::JournalBackend;
use fleetboot::adapters::kube::journal_store::{self, JournalPlace};
use fleetboot_core::journal::{Entry, JOURNAL_VERSION, Record};

fn down(at_ms: u64, host: &str) -> Record {
    Record { v: JOURNAL_VERSION, at_ms, entry: Entry::Down { host: host.into() } }
}

/// The records of a chunk as kubectl reads them: (at_ms, host) of each line.
fn lines(sim: &Sim, place: &JournalPlace, index: usize) -> Vec<(u64, String)> {
    let data =
        sim.kubectl_ok(&["-n", &place.namespace, "get", "configmap", &place.chunk_name(index), "-o", "jsonpath={.data.records\\.jsonl}"]);
    data.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["record"]["at_ms"].as_u64().unwrap(), v["record"]["host"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn a_journal_write_is_tried_again_after_server_errors_and_lands_once() {
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let place = JournalPlace::new("kube-system", "20261204T140000Z-1").unwrap();
    let mut journal = sim.block_on(journal_store::create(&connection.client, &connection.config, &place, "ann pid 1")).unwrap();
    journal.append(&down(1, "a")).unwrap();
    // An etcd leader change: the next three updates of a ConfigMap answer 500.
    sim.control("POST", "fail-requests", r#"{"method": "PUT", "resource": "configmaps", "count": 3}"#);
    journal.append(&down(2, "b")).unwrap();
    journal.append(&down(3, "c")).unwrap();
    assert_eq!(lines(&sim, &place, 0), vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]);
}

#[test]
fn a_journal_write_that_never_answers_times_out_and_fails_by_its_deadline() {
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let mut config = connection.config.clone();
    config.read_timeout = Some(Duration::from_secs(1));
    let place = JournalPlace::new("kube-system", "20261204T140000Z-2").unwrap();
    let mut journal = sim.block_on(journal_store::create(&connection.client, &config, &place, "ann pid 1")).unwrap();
    journal.set_retry_deadline(Duration::from_secs(3));
    journal.append(&down(1, "a")).unwrap();
    // Updates of ConfigMaps are taken and never answered (reads still are).
    sim.control("POST", "hold-requests", r#"{"method": "PUT", "resource": "configmaps", "held": true}"#);
    let error = journal.append(&down(2, "b")).unwrap_err().to_string();
    assert!(error.contains("retried for 3 s") && error.contains(&place.chunk_name(0)), "{error}");
    sim.control("POST", "hold-requests", r#"{"method": "PUT", "resource": "configmaps", "held": false}"#);
    // Once the API answers again, the writer (not fenced) goes on.
    journal.append(&down(3, "c")).unwrap();
    let written = lines(&sim, &place, 0);
    assert_eq!(written.first(), Some(&(1, "a".into())));
    assert_eq!(written.last(), Some(&(3, "c".into())));
}

fn taken_over(at_ms: u64, big: &str) -> Record {
    Record { v: JOURNAL_VERSION, at_ms, entry: Entry::LeaseTakenOver { previous_holder: big.into(), holder: "ann".into() } }
}

#[test]
fn a_record_no_configmap_can_hold_is_refused_clearly_and_nothing_is_touched() {
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let place = JournalPlace::new("kube-system", "20261204T140000Z-4").unwrap();
    let mut journal = sim.block_on(journal_store::create(&connection.client, &connection.config, &place, "ann pid 1")).unwrap();
    journal.append(&down(1, "a")).unwrap();
    let error = journal.append(&taken_over(2, &"x".repeat(1100 * 1024))).unwrap_err().to_string();
    assert!(error.contains("more than one ConfigMap holds") && error.contains("it was not written"), "{error}");
    // No chunk was sealed or added for it.
    let chunks = sim.kubectl_ok(&["-n", "kube-system", "get", "configmaps", "-l", "fleetboot.io/journal-run", "-o", "name"]);
    assert_eq!(chunks.lines().count(), 1, "{chunks}");
    assert_eq!(lines(&sim, &place, 0), vec![(1, "a".into())]);
}

#[test]
fn a_failed_take_over_names_the_chunk_it_tried_to_create() {
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let place = JournalPlace::new("kube-system", "20261204T140000Z-5").unwrap();
    let mut journal = sim.block_on(journal_store::create(&connection.client, &connection.config, &place, "ann pid 1")).unwrap();
    journal.append(&down(1, "a")).unwrap();
    // Sealed by a writer killed before it created the next chunk.
    sim.kubectl_ok(&["-n", "kube-system", "annotate", "configmap", &place.chunk_name(0), "fleetboot.io/journal-sealed=true"]);
    sim.control("POST", "fail-requests", r#"{"method": "POST", "resource": "configmaps", "count": 1}"#);
    let error = sim
        .block_on(journal_store::take_over::<Record>(&connection.client, &connection.config, &place, "bob pid 2"))
        .unwrap_err()
        .to_string();
    assert!(error.contains(&format!("configmaps/kube-system/{}:", place.chunk_name(1))), "{error}");
}
