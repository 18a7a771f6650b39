//! The reports people read: `fleetboot reboot --report DIR` against real sshd hosts and
//! `fleetboot report JOURNAL`, their SVG timeline read back by a real SVG parser (usvg: the
//! geometry resvg renders) and their HTML by an XML parser; positions are checked against the
//! journal's own times.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{Fleet, fleetboot_bin};
use fleetboot_core::journal::Entry;

/// The SVG as a renderer sees it (ids → absolute boxes) and as text (roxmltree).
struct Drawn {
    tree: usvg::Tree,
    text: String,
}

impl Drawn {
    fn read(path: &Path) -> Drawn {
        let text = std::fs::read_to_string(path).unwrap();
        let tree = usvg::Tree::from_str(&text, &usvg::Options::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Drawn { tree, text }
    }

    /// (x, y, right, bottom) of the element with this id, as drawn.
    fn bbox(&self, id: &str) -> Option<(f32, f32, f32, f32)> {
        let b = self.tree.node_by_id(id)?.abs_bounding_box();
        Some((b.x(), b.y(), b.right(), b.bottom()))
    }

    fn ids(&self, prefix: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(&self.text).unwrap();
        doc.descendants().filter_map(|n| n.attribute("id")).filter(|id| id.starts_with(prefix)).map(str::to_owned).collect()
    }

    fn texts(&self) -> Vec<String> {
        let doc = roxmltree::Document::parse(&self.text).unwrap();
        doc.descendants().filter(|n| n.has_tag_name("text")).map(|n| n.text().unwrap_or_default().to_owned()).collect()
    }

    /// The axis as a reader takes it from two tick labels: px per ms, and the x of time 0 of
    /// the day (UTC); checked against every tick.
    fn axis(&self, day_start_ms: u64) -> impl Fn(u64) -> f32 {
        let doc = roxmltree::Document::parse(&self.text).unwrap();
        let ticks: Vec<(f32, u64)> = doc
            .descendants()
            .filter(|n| n.attribute("id").is_some_and(|id| id.starts_with("tick-label-")))
            .map(|n| {
                let i = &n.attribute("id").unwrap()["tick-label-".len()..];
                let (x0, _, x1, _) = self.bbox(&format!("tick-{i}")).expect("each label has its tick");
                assert!((x0 - x1).abs() < 0.01, "a tick is vertical");
                let parts: Vec<u64> = n.text().unwrap().split(':').map(|p| p.parse().unwrap()).collect();
                (x0, day_start_ms + (parts[0] * 3600 + parts[1] * 60 + parts[2]) * 1000)
            })
            .collect();
        assert!(ticks.len() >= 2, "an axis with ticks: {ticks:?}");
        let ((xa, ta), (xb, tb)) = (ticks[0], ticks[ticks.len() - 1]);
        let per_ms = (xb - xa) / (tb - ta) as f32;
        for (x, t) in &ticks {
            assert!((xa + (*t as i64 - ta as i64) as f32 * per_ms - x).abs() < 0.5, "ticks evenly spaced: {ticks:?}");
        }
        move |t: u64| xa + (t as i64 - ta as i64) as f32 * per_ms
    }
}

fn day_start(ms: u64) -> u64 {
    ms - ms % 86_400_000
}

/// An HTML report standing alone: an XML parser reads it whole (so every text was escaped), it
/// loads nothing from anywhere, and it holds the SVG inline.
fn self_contained(html: &str) -> roxmltree::Document<'_> {
    let body = html.strip_prefix("<!DOCTYPE html>\n").expect("an HTML5 document");
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("well-formed: {e}"));
    for n in doc.descendants().filter(|n| n.is_element()) {
        let tag = n.tag_name().name();
        assert!(!["script", "link", "img", "iframe", "object", "embed"].contains(&tag), "no external asset: <{tag}>");
        for a in n.attributes() {
            assert!(!["src", "href"].contains(&a.name()), "no external reference: {}={:?}", a.name(), a.value());
        }
        if tag == "style" {
            assert!(!n.text().unwrap_or_default().contains("url("), "no external style asset");
        }
    }
    assert!(doc.descendants().any(|n| n.tag_name().name() == "svg"), "the SVG inline");
    doc
}

fn table_cells(doc: &roxmltree::Document, first_column: &str) -> Option<Vec<String>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("tr"))
        .map(|tr| tr.children().filter(|c| c.is_element()).map(|c| c.text().unwrap_or_default().to_owned()).collect::<Vec<_>>())
        .find(|cells| cells.first().is_some_and(|c| c == first_column))
}

#[test]
fn a_reboot_runs_report_draws_each_reboot_at_its_journal_time() {
    let fleet = Fleet::up(3);
    fleet.set("h003", "refuse_sudo", "");
    let out = fleet.path("report");
    let run = fleet.reboot(&["--concurrency", "1", "--report", out.to_str().unwrap()]);
    assert_eq!(run.code, 3, "h003 fails: {}", run.debug());
    let (records, _) = fleetboot::adapters::journal::load(&run.journal()).unwrap();

    let svg = Drawn::read(&out.join("timeline.svg"));
    let size = svg.tree.size();
    let x_of = svg.axis(day_start(records[0].at_ms));
    let (ax0, _, ax1, _) = svg.bbox("axis-line").expect("the axis");
    // Every node has a lane, named.
    let texts = svg.texts();
    for name in &fleet.names {
        assert!(texts.iter().any(|t| t == name), "a lane for {name}: {texts:?}");
    }
    // Each reboot: sent at its `dispatching`, back at its `back`, within a pixel; inside the
    // axis and the canvas; a node's bars never overlap.
    let mut by_lane: BTreeMap<String, Vec<(f32, f32)>> = BTreeMap::new();
    for (lane, name) in fleet.names.iter().enumerate().take(2) {
        let at = |want: fn(&Entry) -> bool| records.iter().find(|r| r.entry.host() == Some(name) && want(&r.entry)).unwrap().at_ms;
        let sent = at(|e| matches!(e, Entry::Dispatching { .. }));
        let back = at(|e| matches!(e, Entry::Back { .. }));
        let (x, y, _, bottom) = svg.bbox(&format!("reboot-{lane}-0")).unwrap_or_else(|| panic!("{name}'s reboot bar"));
        let (_, _, right, _) = svg.bbox(&format!("down-{lane}-0")).unwrap();
        assert!((x - x_of(sent)).abs() <= 1.0, "{name}: bar at x {x}, its dispatch at {}: {}", x_of(sent), svg.text);
        assert!((right - x_of(back)).abs() <= 1.0, "{name}: bar ends at {right}, back at {}", x_of(back));
        assert!(x >= ax0 - 0.01 && right <= ax1 + 0.01, "{name}'s bar inside the axis");
        assert!(y >= 0.0 && bottom <= size.height() && right <= size.width(), "inside the canvas");
        for id in [format!("reboot-{lane}-0"), format!("down-{lane}-0")] {
            let (a, _, b, _) = svg.bbox(&id).unwrap();
            by_lane.entry(name.clone()).or_default().push((a, b));
        }
    }
    for (name, mut bars) in by_lane {
        bars.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in bars.windows(2) {
            assert!(w[0].1 <= w[1].0 + 0.01, "{name}'s bars overlap: {bars:?}");
        }
    }
    // The refused node (sudo said no after the intent was journaled): its one reboot drawn as
    // not back, never as down.
    let doc = roxmltree::Document::parse(&svg.text).unwrap();
    let fill = |id: &str| doc.descendants().find(|n| n.attribute("id") == Some(id)).and_then(|n| n.attribute("fill")).map(str::to_owned);
    assert_eq!(fill("reboot-2-0"), fill("legend-not-back"), "{}", svg.text);
    assert!(fill("down-2-0").is_none());
    // The aggregate lanes and the legend.
    assert!(texts.iter().any(|t| t == "nodes in flight (max 1)") && texts.iter().any(|t| t == "nodes down (max 1)"), "{texts:?}");
    for key in ["legend-waiting", "legend-down-ssh", "legend-not-back", "legend-aggregate"] {
        let (x, y, r, b) = svg.bbox(key).unwrap_or_else(|| panic!("{key} in the legend"));
        assert!(x >= 0.0 && y >= 0.0 && r <= size.width() && b <= size.height(), "{key} inside the canvas");
    }
    assert!(texts.iter().any(|t| t == "down: reboot sent over SSH"));

    // The HTML: self-contained, the node table, the same SVG.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let doc = self_contained(&html);
    let row = table_cells(&doc, "h003").expect("h003's row");
    assert_eq!(row[1], "failed");
    assert_eq!(table_cells(&doc, "h001").unwrap()[1], "confirmed");
    assert!(html.contains(&svg.text), "the timeline inline");

    // Rendered again from the journal, by run ID: the same files (the run is finished, so
    // nothing depends on when).
    let run_id = run.summary()["run_id"].as_str().unwrap().to_owned();
    let again = fleet.path("again");
    let state = fleet.path("state");
    let status =
        fleet.fleetboot(&["report", &run_id, "--state-dir", state.to_str().unwrap(), "--out", again.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    for file in ["timeline.svg", "report.html", "report.md"] {
        assert_eq!(std::fs::read_to_string(again.join(file)).unwrap(), std::fs::read_to_string(out.join(file)).unwrap(), "{file}");
    }
}

/// A journal written by hand: a node named `<x>&` rebooted over SSH, then by its BMC, and one
/// reached through the API.
fn odd_journal(dir: &Path) -> std::path::PathBuf {
    let t = 1_764_657_600_000u64; // 2025-12-02T06:40:00Z
    let lines = [
        (t, r#""event":"run_started","run_id":"odd","command":"reboot","hosts":[{"name":"<x>&","address":"127.0.0.1"},{"name":"n\"2'","address":"127.0.0.2"},{"name":"n3","address":"127.0.0.3"}]"#.to_owned()),
        (t + 1000, r#""event":"dispatching","host":"<x>&","old_boot_id":"a""#.to_owned()),
        (t + 1500, r#""event":"dispatched","host":"<x>&","delivery":"exit_zero""#.to_owned()),
        (t + 1600, r#""event":"transport_chosen","host":"n\"2'","transport":"kube","reason":"SSH <refused> & more""#.to_owned()),
        (t + 2000, r#""event":"dispatching","host":"n\"2'","old_boot_id":"b""#.to_owned()),
        (t + 3000, r#""event":"down","host":"n\"2'""#.to_owned()),
        (t + 9000, r#""event":"back","host":"n\"2'","new_boot_id":"c""#.to_owned()),
        (t + 30_000, r#""event":"dispatching","host":"<x>&","old_boot_id":"a","bmc":"force""#.to_owned()),
        (t + 32_000, r#""event":"down","host":"<x>&""#.to_owned()),
        (t + 60_000, r#""event":"back","host":"<x>&","new_boot_id":"d""#.to_owned()),
        (t + 40_000, r#""event":"failed","host":"n3","stage":"connect","error":"refused","may_reboot":false"#.to_owned()),
        (t + 61_000, r#""event":"run_finished","outcome":"done""#.to_owned()),
    ];
    let text: String = lines.iter().map(|(at, body)| format!("{{\"v\":1,\"at_ms\":{at},{body}}}\n")).collect();
    let path = dir.join("reboot-odd.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_report_from_a_journal_escapes_every_name_and_shows_each_transport() {
    let dir = tempfile::tempdir().unwrap();
    let journal = odd_journal(dir.path());
    let out = dir.path().join("out");
    let output = std::process::Command::new(fleetboot_bin())
        .args(["report", journal.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let svg = Drawn::read(&out.join("timeline.svg"));
    let texts = svg.texts();
    assert!(texts.iter().any(|t| t == "<x>&") && texts.iter().any(|t| t == "n\"2'"), "names as written: {texts:?}");
    // Two reboots of `<x>&` (SSH, then the BMC), one after the other; one over the API.
    let doc = roxmltree::Document::parse(&svg.text).unwrap();
    let title = |id: &str| {
        doc.descendants()
            .find(|n| n.attribute("id") == Some(id))
            .and_then(|n| n.first_element_child())
            .and_then(|t| t.text())
            .unwrap()
            .to_owned()
    };
    assert!(title("reboot-0-0").contains("over SSH") && title("down-0-1").contains("over BMC"), "{}", title("down-0-1"));
    assert!(title("down-1-0").contains("rebooted by fleetboot over API"));
    let colour = |id: &str| doc.descendants().find(|n| n.attribute("id") == Some(id)).unwrap().attribute("fill").unwrap().to_owned();
    assert_eq!(colour("down-0-1"), colour("legend-down-bmc"));
    assert_eq!(colour("down-1-0"), colour("legend-down-api"));
    assert!(svg.bbox("down-0-0").is_none(), "the SSH reboot was never seen down");
    let (_, _, first_end, _) = svg.bbox("reboot-0-0").unwrap();
    let (second_start, _, _, _) = svg.bbox("reboot-0-1").unwrap();
    assert!(first_end <= second_start + 0.01, "the first reboot ends where the BMC's starts");
    let x_of = svg.axis(day_start(1_764_657_600_000));
    assert!((second_start - x_of(1_764_657_630_000)).abs() <= 1.0);
    assert!(svg.ids("legend-").len() >= 5, "a legend");
    // A node that failed before any reboot: a failure mark at its time, no bar.
    let (mark, _, mark_right, _) = svg.bbox("failure-2-0").expect("n3's failure");
    assert!(((mark + mark_right) / 2.0 - x_of(1_764_657_640_000)).abs() <= 1.0 && svg.bbox("reboot-2-0").is_none());

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let doc = self_contained(&html);
    assert_eq!(table_cells(&doc, "<x>&").unwrap()[2], "ssh, then BMC");
    assert!(!html.contains("<x>&"), "escaped in the HTML source");
}

#[test]
fn an_unknown_run_is_refused_naming_where_it_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = std::process::Command::new(fleetboot_bin())
        .args(["report", "nosuchrun", "--state-dir", state.to_str().unwrap(), "--out", dir.path().join("o").to_str().unwrap()])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("reboot-nosuchrun.jsonl") && stderr.contains("migration.jsonl"), "{stderr}");
    assert!(!dir.path().join("o").exists(), "nothing written");
}

#[test]
fn an_interrupted_run_still_writes_its_report() {
    let fleet = Fleet::up(3);
    // h001 stays down a while: the run is interrupted while it waits (an abort lets the node in
    // flight come back, and starts no other).
    fleet.set("h001", "down_time", "3");
    let out = fleet.path("report");
    let journal = fleet.path("run.jsonl");
    let args = fleet.reboot_args(&["--concurrency", "1", "--journal", journal.to_str().unwrap(), "--report", out.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = fleet.fleetboot(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    crate::common::wait_for_dispatches(&journal, 1, std::time::Duration::from_secs(30));
    // SAFETY: signalling a child this test started, by its PID.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let run = crate::common::Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 4, "{}", run.debug());
    assert!(run.stderr.contains(&format!("report: {}", out.join("report.html").display())), "{}", run.debug());
    let svg = Drawn::read(&out.join("timeline.svg"));
    assert!(svg.bbox("reboot-0-0").is_some(), "h001's reboot");
    assert!(svg.bbox("reboot-1-0").is_none() && svg.bbox("reboot-2-0").is_none(), "nothing sent to the others");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let doc = self_contained(&html);
    assert_eq!(table_cells(&doc, "h001").unwrap()[1], "confirmed");
    assert_eq!(table_cells(&doc, "h002").unwrap()[1], "skipped");
}

#[test]
fn a_migrations_timeline_has_every_step_and_each_reboot_at_its_journal_time() {
    let sim = crate::common::sim::Sim::in_process(1, 2);
    let run = sim.migrate_in_process(&["--etcd-backup-confirmed", "--poll-interval", "300ms"]);
    assert_eq!(run.code(), 0, "{}", run.debug());
    let dir = sim.migration_dir();
    let (_, state) = fleetboot::adapters::migration_journal::load(&dir.join("migration.jsonl")).unwrap();
    let flow = state.flow.unwrap();
    let (records, reboot) = fleetboot::adapters::journal::load(state.reboot_journal.as_ref().unwrap()).unwrap();

    let svg = Drawn::read(&dir.join("timeline.svg"));
    let size = svg.tree.size();
    let x_of = svg.axis(day_start(state.timings[0].1));
    let (ax0, _, ax1, _) = svg.bbox("axis-line").unwrap();
    let texts = svg.texts();
    // A lane per step of the flow that ran, numbered as that flow numbers them; each span where
    // the migration journal puts it.
    for (lane, step) in flow.steps().iter().enumerate() {
        let name = format!("{} {}", flow.number(*step), step.title());
        assert!(texts.iter().any(|t| name.starts_with(t.trim_end_matches('…'))), "a lane for {name}: {texts:?}");
        let Some(&(_, started, ended)) = state.timings.iter().find(|t| t.0 == *step) else {
            assert!(svg.bbox(&format!("step-{lane}-0")).is_none(), "{name} never ran (cleanup waits for --cleanup): no span");
            continue;
        };
        let (x, _, right, _) = svg.bbox(&format!("step-{lane}-0")).unwrap_or_else(|| panic!("{name}'s span"));
        assert!((x - x_of(started)).abs() <= 1.0, "{name} starts at {x}, journal {}", x_of(started));
        if let Some(ended) = ended {
            assert!((right - x_of(ended)).abs() <= 1.0 || right - x < 2.5, "{name} ends at {right}, journal {}", x_of(ended));
        }
        assert!(x >= ax0 - 0.01 && right <= ax1 + 0.01 && right <= size.width());
    }
    // Each node's reboot, by step 8's run, at its journal's times.
    let who = format!("fleetboot step {} · SSH", flow.number(fleetboot_core::migrate::Step::RebootNodes));
    for (lane, host) in reboot.hosts.iter().enumerate() {
        let at = |want: fn(&Entry) -> bool| records.iter().find(|r| r.entry.host() == Some(&host.name) && want(&r.entry)).unwrap().at_ms;
        let (x, _, _, _) = svg.bbox(&format!("reboot-{lane}-0")).unwrap_or_else(|| panic!("{}'s reboot", host.name));
        let (_, _, right, _) = svg.bbox(&format!("down-{lane}-0")).unwrap();
        assert!((x - x_of(at(|e| matches!(e, Entry::Dispatching { .. })))).abs() <= 1.0, "{}", host.name);
        assert!((right - x_of(at(|e| matches!(e, Entry::Back { .. })))).abs() <= 1.0, "{}", host.name);
        assert!(x >= ax0 - 0.01 && right <= ax1 + 0.01);
    }
    assert_eq!(texts.iter().filter(|t| **t == who).count(), reboot.hosts.len(), "{texts:?}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let doc = self_contained(&html);
    assert_eq!(table_cells(&doc, "worker-1").unwrap()[1], "confirmed");
    assert!(html.contains(&svg.text));
}

#[test]
fn a_run_journaled_in_the_cluster_gets_its_report_and_fleetboot_report_reads_it_back() {
    let sim = crate::common::sim::Sim::start(0, 2);
    let out = sim.path("report");
    let args =
        ["reboot", "--all", "--journal-in-cluster", "--poll-interval", "200ms", "--output", "json", "--report", out.to_str().unwrap()];
    let run = crate::common::Run::from(sim.fleetboot(&args).stdin(std::process::Stdio::null()).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    let location = run.journal();
    assert!(location.to_string_lossy().starts_with("cluster:"), "{}", run.debug());
    assert!(run.stderr.contains(&format!("report: {}", out.join("report.html").display())), "{}", run.debug());
    let svg = Drawn::read(&out.join("timeline.svg"));
    assert!(svg.bbox("down-0-0").is_some() && svg.bbox("down-1-0").is_some(), "both workers' reboots: {}", svg.text);
    // No file anywhere holds the journal: `fleetboot report cluster:NS/RUN-ID` reads the
    // ConfigMaps and renders the same files.
    let again = sim.path("again");
    let status = sim.fleetboot(&["report", location.to_str().unwrap(), "--out", again.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(again.join("timeline.svg")).unwrap(), svg.text);
}
