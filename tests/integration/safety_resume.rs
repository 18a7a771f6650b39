//! Issue 19, on the simulated cluster: the simulation's control endpoint takes only JSON from a
//! loopback Host, and no malformed request stops it serving.

use std::io::{Read, Write};

use proptest::prelude::*;

use crate::common::sim::Sim;

/// A request with its own Host header; (status, body). 0: no answer at all.
fn request(sim: &Sim, host: &str, head: &str, body: &[u8]) -> (u16, String) {
    let address = sim.api.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let _ = write!(stream, "{head}\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

#[test]
fn the_control_endpoint_takes_only_json_from_a_loopback_host() {
    let sim = Sim::start(0, 1);
    let local = sim.api.trim_start_matches("http://").to_owned();
    let outage = br#"{"seconds": 600}"#;
    // A page in a browser can POST text/plain (no preflight), or reach 127.0.0.1 through a
    // rebound DNS name: neither may switch a fault on.
    let cases = [
        (local.as_str(), "POST /sim/v1/outage HTTP/1.1\r\nContent-Type: text/plain", 415),
        (local.as_str(), "POST /sim/v1/outage HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded", 415),
        (local.as_str(), "POST /sim/v1/outage HTTP/1.1", 415),
        ("attacker.example", "POST /sim/v1/outage HTTP/1.1\r\nContent-Type: application/json", 403),
        ("attacker.example:80", "GET /sim/v1/nodes HTTP/1.1\r\nContent-Type: application/json", 403),
    ];
    for (host, head, code) in cases {
        let (got, body) = request(&sim, host, head, outage);
        assert_eq!(got, code, "{host} {head}: {body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["code"], code, "{status}");
    }
    // No outage happened: the API answers.
    assert!(sim.kubectl_ok(&["get", "nodes"]).contains("worker-0"));
    // The same request as JSON from localhost is served.
    let port = local.rsplit(':').next().unwrap();
    let (got, body) = request(&sim, &format!("localhost:{port}"), "GET /sim/v1/nodes HTTP/1.1\r\nContent-Type: application/json", b"");
    assert_eq!(got, 200, "{body}");
}

/// Pieces of requests: what the API and the control endpoint parse.
fn path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("api".to_owned()),
        Just("apis".to_owned()),
        Just("v1".to_owned()),
        Just("nodes".to_owned()),
        Just("worker-0".to_owned()),
        Just("namespaces".to_owned()),
        Just("default".to_owned()),
        Just("pods".to_owned()),
        Just("status".to_owned()),
        Just("sim".to_owned()),
        Just("faults".to_owned()),
        Just("bmc".to_owned()),
        Just("machineconfiguration.openshift.io".to_owned()),
        Just("machineconfigpools".to_owned()),
        Just("%".to_owned()),
        Just("%é".to_owned()),
        Just("%€".to_owned()),
        Just("%%zz".to_owned()),
        Just("..".to_owned()),
        "[a-z%é€0-9._~+-]{0,12}",
    ]
}

fn query_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("watch=true&timeoutSeconds=0".to_owned()),
        Just("labelSelector=a%€b".to_owned()),
        Just("labelSelector=a%20in%20(".to_owned()),
        Just("fieldSelector=spec.nodeName%3D%E2".to_owned()),
        Just("resourceVersion=-1".to_owned()),
        Just("limit=99999999999999999999&continue=%".to_owned()),
        "[a-zA-Z=&%é€0-9()!,.+-]{0,24}",
    ]
}

fn body_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"{}".to_vec()),
        Just(br#"{"metadata": {"labels": {"a": null}}, "spec": {"unschedulable": "yes"}}"#.to_vec()),
        Just(br#"[{"op": "remove", "path": "/metadata/~2"}, {"op": "move", "from": "/spec", "path": "/spec/x"}]"#.to_vec()),
        Just(br#"[{"op": "add", "path": "/status/conditions/-1", "value": 1}]"#.to_vec()),
        Just(br#"{"spec": {"$patch": "replace"}, "status": {"conditions": [{"$patch": "delete"}]}}"#.to_vec()),
        Just(br#"{"metadata": {"resourceVersion": "abc", "name": 7}}"#.to_vec()),
        Just(br#"{"seconds": "many", "stall": 3, "never_returns": "yes"}"#.to_vec()),
        Just(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec()),
        Just("{\"é\": \"\u{0}\"}".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Malformed paths, queries, bodies and patches: every request gets an answer (a panic in the
/// server ends the connection unanswered), and a well-formed request works after each.
#[test]
fn no_malformed_request_stops_the_simulation_serving() {
    let sim = Sim::start(0, 1);
    let local = sim.api.trim_start_matches("http://").to_owned();
    let method = prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("PATCH"), Just("DELETE")];
    let content_type = prop_oneof![
        Just("application/json"),
        Just("application/json"),
        Just("application/merge-patch+json"),
        Just("application/strategic-merge-patch+json"),
        Just("application/json-patch+json"),
        Just("application/apply-patch+yaml"),
        Just("text/plain"),
    ];
    // Real resources (so the handlers and the patch code run) or random segments, and maybe a
    // random tail.
    let path = prop_oneof![
        3 => prop_oneof![
            Just("api/v1/nodes/worker-0"),
            Just("api/v1/nodes/worker-0/status"),
            Just("api/v1/namespaces/default/pods"),
            Just("api/v1/namespaces/openshift-machine-api/secrets"),
            Just("apis/machineconfiguration.openshift.io/v1/machineconfigpools/worker"),
            Just("apis/operator.openshift.io/v1/networks/cluster"),
            Just("apis/coordination.k8s.io/v1/namespaces/kube-system/leases"),
            Just("sim/v1/nodes/worker-0/faults"),
            Just("sim/v1/nodes/worker-0/bmc"),
            Just("sim/v1/nodes"),
        ]
        .prop_map(|p| vec![p.to_owned()]),
        1 => proptest::collection::vec(path_piece(), 0..7),
    ];
    let tail = proptest::option::of(path_piece());
    let cases = (
        method,
        (path, tail).prop_map(|(mut path, tail)| {
            path.extend(tail);
            path
        }),
        any::<bool>(),
        proptest::option::of(query_piece()),
        content_type,
        body_piece(),
    );
    let config = ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&cases, |(method, pieces, sim_prefix, query, content_type, body)| {
        let mut path = if sim_prefix && !pieces.first().is_some_and(|p| p.contains('/')) { "/sim/v1/".to_owned() } else { "/".to_owned() };
        path.push_str(&pieces.join("/"));
        if let Some(query) = query {
            path.push('?');
            path.push_str(&query);
        }
        let head = format!("{method} {path} HTTP/1.1\r\nContent-Type: {content_type}");
        let (code, answer) = request(&sim, &local, &head, &body);
        prop_assert!(code != 0, "no answer to {head:?}: {answer}");
        let (code, answer) = request(&sim, &local, "GET /api/v1/nodes HTTP/1.1\r\nAccept: application/json", b"");
        prop_assert_eq!(code, 200, "after {:?}: {}", head, answer);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
