//! What an append to the journal in the cluster costs the API server (issue 26): each append
//! is a conditional update that sends the run's last chunk and gets it back, so the chunk's
//! size bounds a record's cost. Judged by the simulation's request counters
//! (`GET /sim/v1/traffic`) and the ConfigMaps as the journal reads them back.

use crate::common::sim::Sim;
use fleetboot::adapters::journal::JournalBackend;
use fleetboot::adapters::kube::journal_store::{self, CHUNK_LIMIT, JournalPlace};
use fleetboot_core::journal::{Entry, JOURNAL_VERSION, Record};

fn down(at_ms: u64, host: &str) -> Record {
    Record { v: JOURNAL_VERSION, at_ms, entry: Entry::Down { host: host.into() } }
}

/// `(requests, answer bytes, request body bytes)` of one kind of request.
fn counted(sim: &Sim, kind: &str) -> (u64, u64, u64) {
    let traffic: serde_json::Value = serde_json::from_str(&sim.control("GET", "traffic", "")).unwrap();
    let t = &traffic[kind];
    (t["requests"].as_u64().unwrap_or(0), t["bytes"].as_u64().unwrap_or(0), t["sent"].as_u64().unwrap_or(0))
}

/// 400 records (about 44 KB of lines, a rolling run's worth for 50 nodes): every update sends
/// and receives at most one chunk (8 KiB of records and its metadata), not a chunk that grows
/// toward 64 KiB; the records come back whole and in order across the chunks, and each chunk
/// but the last is sealed.
#[test]
fn an_append_costs_at_most_one_small_chunk_each_way_and_every_record_reads_back_in_order() {
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let place = JournalPlace::new("kube-system", "20261204T160000Z-9").unwrap();
    let mut journal =
        sim.block_on(journal_store::create(&connection.client, &connection.config, &place, "ann@bastion pid 9 run r")).unwrap();
    sim.control("POST", "traffic/reset", "{}");
    const RECORDS: u64 = 400;
    for i in 0..RECORDS {
        journal.append(&down(i, &format!("worker-{i:05}.rack-12.example.com"))).unwrap();
    }
    let (updates, answered, sent) = counted(&sim, "PUT configmaps");
    let (creates, _, _) = counted(&sim, "POST configmaps");
    eprintln!(
        "COST {RECORDS} appends: {updates} updates, {creates} creates, {:.1} KiB answered and {:.1} KiB sent per append",
        answered as f64 / RECORDS as f64 / 1024.0,
        sent as f64 / RECORDS as f64 / 1024.0
    );
    // One update per record, plus one seal per full chunk; one create per new chunk.
    assert!(creates >= 4, "44 KB of records fill several chunks: {creates} created");
    assert_eq!(updates, RECORDS + creates, "an update per record and a seal per chunk");
    // Each update moves at most one chunk and its metadata each way.
    let bound = (CHUNK_LIMIT + 1024) as u64;
    assert!(answered <= updates * bound && sent <= updates * bound, "{answered} / {sent} bytes for {updates} updates");
    assert!(answered / updates <= 6 * 1024, "about half a chunk on average: {} bytes", answered / updates);
    // Every record back, in order, across the chunks; only the last chunk is open.
    let mut at = Vec::new();
    for index in 0..=creates as usize {
        let name = place.chunk_name(index);
        let get = |path: &str| sim.kubectl_ok(&["-n", "kube-system", "get", "configmap", &name, "-o", &format!("jsonpath={{{path}}}")]);
        let data = get(".data.records\\.jsonl");
        assert!(data.len() <= CHUNK_LIMIT, "{name}: {} bytes", data.len());
        let sealed = get(".metadata.annotations.fleetboot\\.io/journal-sealed");
        assert_eq!(sealed == "true", index < creates as usize, "{name}: sealed={sealed:?}");
        for line in data.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(line["token"], 1, "{line}");
            at.push(line["record"]["at_ms"].as_u64().unwrap());
        }
    }
    assert_eq!(at, (0..RECORDS).collect::<Vec<_>>());
}
