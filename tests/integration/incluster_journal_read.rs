//! What reading a journal in the cluster costs the API server (issue 26): a resume reads the
//! run's chunks with one LIST by the run's label (paged with `limit`/`continue`), not one GET
//! per chunk (~3,000 at 10,000 nodes). Judged by the simulation's request counters
//! (`GET /sim/v1/traffic`); the records read back whole and in order, and a take-over still
//! fences the writer it took the journal from.

use crate::common::sim::Sim;
use fleetboot::adapters::journal::JournalBackend;
use fleetboot::adapters::kube::journal_store::{self, JournalPlace};
use fleetboot_core::journal::{Entry, JOURNAL_VERSION, Record};

fn requests(sim: &Sim, kind: &str) -> u64 {
    let traffic: serde_json::Value = serde_json::from_str(&sim.control("GET", "traffic", "")).unwrap();
    traffic[kind]["requests"].as_u64().unwrap_or(0)
}

#[test]
fn a_journal_of_many_chunks_is_read_with_one_list_and_a_take_over_still_fences_the_old_writer() {
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let (client, config) = (&connection.client, &connection.config);
    // Two runs whose IDs share their first 63 characters, so their chunks carry the same label
    // (a label value holds 63): each reads only its own, by name.
    let place = JournalPlace::new("kube-system", &format!("{}-a", "x".repeat(70))).unwrap();
    let other = JournalPlace::new("kube-system", &format!("{}-b", "x".repeat(70))).unwrap();
    let mut first = sim.block_on(journal_store::create(client, config, &place, "ann@bastion pid 9 run r")).unwrap();
    let mut neighbour = sim.block_on(journal_store::create(client, config, &other, "ann@bastion pid 9 run o")).unwrap();
    neighbour.append(&Record { v: JOURNAL_VERSION, at_ms: 1, entry: Entry::Down { host: "elsewhere".into() } }).unwrap();
    const RECORDS: u64 = 300;
    for i in 0..RECORDS {
        first
            .append(&Record { v: JOURNAL_VERSION, at_ms: i, entry: Entry::Down { host: format!("worker-{i:05}.rack-12.example.com") } })
            .unwrap();
    }
    let names = sim.kubectl_ok(&["-n", "kube-system", "get", "configmaps", "-o", "name"]);
    let chunks = names.matches(&format!("{}-", place.chunk_name(0).trim_end_matches("-0"))).count();
    assert!(chunks >= 4, "the records fill several chunks: {chunks}");

    sim.control("POST", "traffic/reset", "{}");
    let (records, _, _) = sim.block_on(journal_store::load_lines::<Record>(client, &place)).unwrap();
    assert_eq!(records.iter().map(|r| r.at_ms).collect::<Vec<_>>(), (0..RECORDS).collect::<Vec<_>>(), "every record, in order");
    assert_eq!(requests(&sim, "LIST configmaps"), 1, "one LIST for {chunks} chunks");
    assert_eq!(requests(&sim, "GET configmaps"), 0, "no GET per chunk");

    // A second writer takes the journal over: two LISTs (before and after raising the token)
    // and one conditional update; the first writer is fenced from its next write on.
    sim.control("POST", "traffic/reset", "{}");
    let (mut second, records) = sim.block_on(journal_store::take_over(client, config, &place, "bob@pod pid 1 run r")).unwrap();
    assert_eq!(records.len() as u64, RECORDS);
    assert_eq!((requests(&sim, "LIST configmaps"), requests(&sim, "GET configmaps")), (2, 0));
    second.append(&Record { v: JOURNAL_VERSION, at_ms: RECORDS, entry: Entry::Down { host: "worker-0".into() } }).unwrap();
    let fenced =
        first.append(&Record { v: JOURNAL_VERSION, at_ms: 0, entry: Entry::Down { host: "stale".into() } }).unwrap_err().to_string();
    assert!(fenced.contains("bob@pod pid 1 run r"), "{fenced}");
    let (records, holder, _) = sim.block_on(journal_store::load_lines::<Record>(client, &place)).unwrap();
    assert_eq!(records.len() as u64, RECORDS + 1);
    assert_eq!(holder, "bob@pod pid 1 run r");
    let (neighbour, _, _) = sim.block_on(journal_store::load_lines::<Record>(client, &other)).unwrap();
    assert_eq!(neighbour.len(), 1, "the other run's journal is its own");
}
