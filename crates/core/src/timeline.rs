//! The timeline of a reboot run or a migration: first a model in milliseconds (the steps'
//! spans, each node's reboots, who did them and through which transport), built from the
//! journals' records; then its geometry (lanes, bars and ticks in pixels, [`layout`]); then the
//! SVG drawn from that geometry and the self-contained HTML report around it. Pure: `now` is
//! passed in, nothing is read or written here.

use std::collections::BTreeMap;

use crate::journal::{Entry, Record, RunState};
use crate::settings::Transport;

/// Above this many nodes one lane per node is unreadable: the nodes go into one "down" lane
/// per group (pool) instead, and the node table keeps each of them.
pub const MAX_NODE_LANES: usize = 60;

/// How one reboot ended, as the journal shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Back with a new boot ID.
    Back,
    Failed,
    Cancelled,
    /// Another reboot of the same node took over (the BMC after SSH, a re-send).
    Superseded,
    /// Not back yet when the journal ends.
    Open,
}

/// One reboot of one node: sent, down (when seen), and its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reboot {
    pub node: String,
    /// Who rebooted it: "fleetboot", "fleetboot step 8", ...
    pub by: String,
    /// "SSH", "API", or "BMC".
    pub transport: &'static str,
    pub sent_ms: u64,
    pub down_ms: Option<u64>,
    pub end_ms: u64,
    pub outcome: Outcome,
}

/// Something that failed on a node without a reboot to hang it on (a connect or drain failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub node: String,
    pub at_ms: u64,
    pub text: String,
}

/// One span of a migration step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The step's lane (its number and title in the flow that ran).
    pub lane: usize,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Still running (or interrupted) when the journal ends.
    pub open: bool,
    pub failed: Option<String>,
}

/// Everything the picture shows, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    pub title: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The lanes of the flow's steps, in order ("8 Reboot all nodes"); empty for a reboot run.
    pub step_lanes: Vec<String>,
    pub spans: Vec<Span>,
    /// When the pools were paused (shaded behind everything).
    pub paused: Option<(u64, u64)>,
    /// The nodes, in the run's order.
    pub nodes: Vec<String>,
    /// node → group (pool), for the aggregate lanes of a large fleet.
    pub groups: BTreeMap<String, String>,
    pub reboots: Vec<Reboot>,
    pub marks: Vec<Mark>,
}

fn transport_name(transport: &str) -> &'static str {
    match transport {
        "kube" | "api" => "API",
        "redfish" | "bmc" => "BMC",
        _ => "SSH",
    }
}

/// One reboot run's reboots, from its journal records. `by` names who ran it; `now_ms` ends
/// what the journal leaves open (a running or aborted run).
pub fn reboots_of(records: &[Record], run: &RunState, by: &str, now_ms: u64) -> (Vec<Reboot>, Vec<Mark>) {
    let first = match run.settings.as_ref().map(|s| s.transport) {
        Some(Transport::Kube) => "API",
        Some(Transport::Redfish) => "BMC",
        _ => "SSH",
    };
    let mut via: BTreeMap<&str, &'static str> = BTreeMap::new();
    let mut reboots: Vec<Reboot> = Vec::new();
    // host → index of its open reboot (and of its last one).
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    let mut marks = Vec::new();
    let mut finished_at = None;
    for record in records {
        let at = record.at_ms;
        match &record.entry {
            Entry::RunFinished { .. } => finished_at = Some(at),
            Entry::RunResumed { .. } => finished_at = None,
            Entry::TransportChosen { host, transport, .. } => {
                via.insert(host, transport_name(transport));
            }
            Entry::Dispatching { host, bmc, .. } => {
                let start = last.get(host.as_str()).map_or(at, |&i| at.max(reboots[i].end_ms));
                if let Some(i) = open.remove(host.as_str()) {
                    reboots[i].end_ms = start;
                    reboots[i].outcome = Outcome::Superseded;
                }
                let transport = if bmc.is_some() { "BMC" } else { via.get(host.as_str()).copied().unwrap_or(first) };
                reboots.push(Reboot {
                    node: host.clone(),
                    by: by.to_owned(),
                    transport,
                    sent_ms: start,
                    down_ms: None,
                    end_ms: start,
                    outcome: Outcome::Open,
                });
                open.insert(host, reboots.len() - 1);
                last.insert(host, reboots.len() - 1);
            }
            Entry::Down { host } => {
                if let Some(&i) = open.get(host.as_str()) {
                    let r = &mut reboots[i];
                    r.down_ms.get_or_insert(at.max(r.sent_ms));
                }
            }
            Entry::Back { host, .. } => {
                // A reboot judged failed (its deadline passed) that a later look finds back.
                let i = open
                    .remove(host.as_str())
                    .or_else(|| last.get(host.as_str()).copied().filter(|&i| reboots[i].outcome == Outcome::Failed));
                if let Some(i) = i {
                    let r = &mut reboots[i];
                    r.end_ms = at.max(r.down_ms.unwrap_or(r.sent_ms));
                    r.outcome = Outcome::Back;
                }
            }
            Entry::Failed { host, error, .. } => match open.remove(host.as_str()) {
                Some(i) => {
                    let r = &mut reboots[i];
                    r.end_ms = at.max(r.down_ms.unwrap_or(r.sent_ms));
                    r.outcome = Outcome::Failed;
                }
                None => marks.push(Mark { node: host.clone(), at_ms: at, text: error.clone() }),
            },
            Entry::Cancelled { host } | Entry::PoweredOff { host, .. } => {
                if let Some(i) = open.remove(host.as_str()) {
                    let r = &mut reboots[i];
                    r.end_ms = at.max(r.sent_ms);
                    r.outcome = Outcome::Cancelled;
                }
            }
            _ => {}
        }
    }
    let end = finished_at.unwrap_or(now_ms);
    for (_, i) in open {
        let r = &mut reboots[i];
        r.end_ms = end.max(r.down_ms.unwrap_or(r.sent_ms));
    }
    (reboots, marks)
}

/// A plain reboot run's timeline (`fleetboot reboot --report DIR`, `fleetboot report`).
pub fn of_run(records: &[Record], run: &RunState, now_ms: u64) -> Timeline {
    let (reboots, marks) = reboots_of(records, run, "fleetboot", now_ms);
    let first = records.first().map_or(now_ms, |r| r.at_ms);
    let last = if run.finished { records.last().map_or(now_ms, |r| r.at_ms) } else { now_ms.max(first) };
    Timeline {
        title: format!("fleetboot reboot {}", run.run_id),
        start_ms: first,
        end_ms: last,
        nodes: run.hosts.iter().map(|h| h.name.clone()).collect(),
        groups: run.grouping.of.clone(),
        reboots,
        marks,
        ..Timeline::default()
    }
}

impl Timeline {
    /// Widens the time range to take in everything it shows.
    pub fn fit(&mut self) {
        let starts = self.spans.iter().map(|s| s.start_ms).chain(self.reboots.iter().map(|r| r.sent_ms));
        let ends = self.spans.iter().map(|s| s.end_ms).chain(self.reboots.iter().map(|r| r.end_ms));
        let marks = self.marks.iter().map(|m| m.at_ms);
        let paused = self.paused.into_iter().flat_map(|(a, b)| [a, b]);
        let all: Vec<u64> = starts.chain(ends).chain(marks).chain(paused).collect();
        if let (Some(&lo), Some(&hi)) = (all.iter().min(), all.iter().max()) {
            self.start_ms = self.start_ms.min(lo);
            self.end_ms = self.end_ms.max(hi);
        }
        self.end_ms = self.end_ms.max(self.start_ms + 1000);
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry.

/// What a rectangle stands for; its colour and its legend entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    StepDone,
    StepOpen,
    StepFailed,
    Paused,
    /// Sent, not down yet.
    Waiting,
    DownSsh,
    DownApi,
    DownBmc,
    /// Rebooted by someone else (the MCO), seen between two looks.
    DownMco,
    /// Not seen back (failed, or still open when the journal ends).
    NotBack,
    Cancelled,
    Failure,
    Aggregate,
}

impl Kind {
    pub fn colour(self) -> &'static str {
        match self {
            Kind::StepDone => "#9ecae1",
            Kind::StepOpen => "#fdd0a2",
            Kind::StepFailed => "#de2d26",
            Kind::Paused => "#fff3cd",
            Kind::Waiting => "#d9d9d9",
            Kind::DownSsh => "#3182bd",
            Kind::DownApi => "#31a354",
            Kind::DownBmc => "#756bb1",
            Kind::DownMco => "#8c6d31",
            Kind::NotBack => "#fd8d3c",
            Kind::Cancelled => "#bdbdbd",
            Kind::Failure => "#a50f15",
            Kind::Aggregate => "#636363",
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Kind::StepDone => "step done",
            Kind::StepOpen => "step running or interrupted",
            Kind::StepFailed => "step failed",
            Kind::Paused => "pools paused",
            Kind::Waiting => "reboot sent, node not down yet",
            Kind::DownSsh => "down: reboot sent over SSH",
            Kind::DownApi => "down: reboot sent through the API (exec)",
            Kind::DownBmc => "down: BMC reset (Redfish)",
            Kind::DownMco => "rebooted by the MCO (between two looks)",
            Kind::NotBack => "not seen back (failed or still out)",
            Kind::Cancelled => "cancelled or found powered off",
            Kind::Failure => "failure",
            Kind::Aggregate => "nodes at once",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::StepDone => "step-done",
            Kind::StepOpen => "step-open",
            Kind::StepFailed => "step-failed",
            Kind::Paused => "paused",
            Kind::Waiting => "waiting",
            Kind::DownSsh => "down-ssh",
            Kind::DownApi => "down-api",
            Kind::DownBmc => "down-bmc",
            Kind::DownMco => "down-mco",
            Kind::NotBack => "not-back",
            Kind::Cancelled => "cancelled",
            Kind::Failure => "failure",
            Kind::Aggregate => "aggregate",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rect {
    /// Unique in the picture: `reboot-{lane}-{n}`, `step-{lane}-{n}`, ...
    pub id: String,
    pub kind: Kind,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// The tooltip.
    pub title: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub x: f64,
    pub y: f64,
    pub size: f64,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub x: f64,
    pub ms: u64,
    pub label: String,
}

/// The picture in pixels, ready to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: f64,
    pub height: f64,
    /// The axis: x from `axis_x0` (at `start_ms`) to `axis_x1` (at `end_ms`), at height `axis_y`.
    pub axis_x0: f64,
    pub axis_x1: f64,
    pub axis_y: f64,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Top and bottom of the lanes (the grid lines span them).
    pub lanes_top: f64,
    pub lanes_bottom: f64,
    pub ticks: Vec<Tick>,
    pub rects: Vec<Rect>,
    pub texts: Vec<Text>,
    /// Lane separators (y).
    pub rules: Vec<f64>,
    pub legend: Vec<(Kind, Rect, Text)>,
}

const WIDTH: f64 = 1160.0;
const LABEL_W: f64 = 290.0;
/// A lane's label longer than this is cut (with …): it would run into the bars.
const LABEL_CHARS: usize = 40;

fn label(text: &str) -> String {
    if text.chars().count() <= LABEL_CHARS { text.to_owned() } else { text.chars().take(LABEL_CHARS - 1).chain(['…']).collect() }
}
const RIGHT: f64 = 30.0;
const LANE_H: f64 = 24.0;
const AGG_H: f64 = 40.0;

/// A tick spacing that gives at most about ten ticks.
fn tick_step_ms(span_ms: u64) -> u64 {
    const STEPS_S: [u64; 17] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200];
    STEPS_S.iter().map(|s| s * 1000).find(|s| span_ms / s <= 10).unwrap_or(86_400_000 * span_ms.div_ceil(86_400_000 * 10).max(1))
}

/// `ms` since the epoch as RFC 3339 UTC to the second (the core has no time crate; this is the
/// civil-from-days conversion of Howard Hinnant's date algorithms).
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, of_day) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", of_day / 3600, of_day % 3600 / 60, of_day % 60)
}

/// Whole seconds as "1h 2m 3s" (zero parts left out; "0s"), as the rest of fleetboot writes them.
pub fn took(secs: u64) -> String {
    let parts = [(secs / 86_400, "d"), (secs % 86_400 / 3600, "h"), (secs % 3600 / 60, "m"), (secs % 60, "s")];
    let text: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect();
    if text.is_empty() { "0s".to_owned() } else { text.join(" ") }
}

/// HH:MM:SS (UTC) of a time since the epoch.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// Counts over time: +1 at each start, -1 at each end; the steps where the count changes.
fn counts(intervals: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, usize)> {
    let mut changes: Vec<(u64, i64)> = Vec::new();
    for (a, b) in intervals.filter(|(a, b)| b > a) {
        changes.push((a, 1));
        changes.push((b, -1));
    }
    changes.sort();
    let mut out: Vec<(u64, usize)> = Vec::new();
    let mut n: i64 = 0;
    for (t, d) in changes {
        n += d;
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 = n as usize,
            _ => out.push((t, n as usize)),
        }
    }
    out
}

/// The geometry of a timeline. Pure.
pub fn layout(t: &Timeline) -> Picture {
    let (x0, x1) = (LABEL_W, WIDTH - RIGHT);
    let (start, end) = (t.start_ms, t.end_ms.max(t.start_ms + 1));
    let x = |ms: u64| x0 + (ms.clamp(start, end) - start) as f64 / (end - start) as f64 * (x1 - x0);
    let axis_y = 56.0;
    let mut texts = vec![Text { x: 10.0, y: 22.0, size: 15.0, text: t.title.clone() }];
    texts.push(Text { x: 10.0, y: 40.0, size: 11.0, text: format!("{} UTC, {} shown", &time(start)[..10], took((end - start) / 1000)) });
    let step = tick_step_ms(end - start);
    let ticks: Vec<Tick> =
        (start.div_ceil(step)..=end / step).map(|i| i * step).map(|ms| Tick { x: x(ms), ms, label: clock(ms) }).collect();
    let mut rects = Vec::new();
    let mut rules = Vec::new();
    let mut y = axis_y + 14.0;
    let lanes_top = y;
    // The steps of the flow, one lane each.
    for (lane, lane_label) in t.step_lanes.iter().enumerate() {
        texts.push(Text { x: 10.0, y: y + 16.0, size: 12.0, text: label(lane_label) });
        for (n, s) in t.spans.iter().filter(|s| s.lane == lane).enumerate() {
            let kind = match (&s.failed, s.open) {
                (Some(_), _) => Kind::StepFailed,
                (None, true) => Kind::StepOpen,
                (None, false) => Kind::StepDone,
            };
            let title = match &s.failed {
                Some(e) => format!("{lane_label}: failed: {e}"),
                None => format!("{lane_label}: {} ({})", took((s.end_ms - s.start_ms) / 1000), kind.meaning()),
            };
            // A step too short to see is drawn 2 px wide, never past the axis's end.
            let (a, b) = (x(s.start_ms), x(s.end_ms));
            let w = (b - a).max(2.0);
            rects.push(Rect { id: format!("step-{lane}-{n}"), kind, x: a.min(x1 - w), y: y + 4.0, w, h: LANE_H - 8.0, title });
        }
        y += LANE_H;
        rules.push(y);
    }
    // Aggregates: nodes in flight (sent → end) and down (down → end) over time; per group
    // beyond MAX_NODE_LANES nodes.
    let mut aggregates: Vec<(String, Vec<(u64, usize)>)> = vec![
        ("nodes in flight".to_owned(), counts(t.reboots.iter().map(|r| (r.sent_ms, r.end_ms)))),
        ("nodes down".to_owned(), counts(t.reboots.iter().map(|r| (r.down_ms.unwrap_or(r.end_ms), r.end_ms)))),
    ];
    let per_node = t.nodes.len() <= MAX_NODE_LANES;
    if !per_node {
        let mut groups: Vec<&str> = t.nodes.iter().map(|n| t.groups.get(n).map_or("(no group)", String::as_str)).collect();
        groups.sort();
        groups.dedup();
        for g in groups {
            let of = |node: &str| t.groups.get(node).map_or("(no group)", String::as_str) == g;
            let series = counts(t.reboots.iter().filter(|r| of(&r.node)).map(|r| (r.down_ms.unwrap_or(r.end_ms), r.end_ms)));
            aggregates.push((format!("down in {g}"), series));
        }
    }
    for (lane, (label, series)) in aggregates.iter().enumerate() {
        let max = series.iter().map(|p| p.1).max().unwrap_or(0);
        texts.push(Text { x: 10.0, y: y + 16.0, size: 12.0, text: format!("{label} (max {max})") });
        for (n, w) in series.windows(2).enumerate() {
            let ((a, count), (b, _)) = (w[0], w[1]);
            if count == 0 {
                continue;
            }
            let h = (AGG_H - 8.0) * count as f64 / max.max(1) as f64;
            let (xa, xb) = (x(a), x(b));
            rects.push(Rect {
                id: format!("aggregate-{lane}-{n}"),
                kind: Kind::Aggregate,
                x: xa,
                y: y + AGG_H - 4.0 - h,
                w: xb - xa,
                h,
                title: format!("{label}: {count} from {} to {}", clock(a), clock(b)),
            });
        }
        y += AGG_H;
        rules.push(y);
    }
    // One lane per node.
    if per_node {
        for (lane, node) in t.nodes.iter().enumerate() {
            texts.push(Text { x: 10.0, y: y + 13.0, size: 12.0, text: label(node) });
            for (n, r) in t.reboots.iter().filter(|r| &r.node == node).enumerate() {
                let (a, d, b) = (x(r.sent_ms), x(r.down_ms.unwrap_or(r.end_ms)), x(r.end_ms));
                let down = match (r.outcome, r.transport) {
                    (Outcome::Failed | Outcome::Open, _) => Kind::NotBack,
                    (Outcome::Cancelled, _) => Kind::Cancelled,
                    (_, "API") => Kind::DownApi,
                    (_, "BMC") => Kind::DownBmc,
                    (_, "MCO") => Kind::DownMco,
                    _ => Kind::DownSsh,
                };
                let what = match r.outcome {
                    Outcome::Back => format!("back at {}", clock(r.end_ms)),
                    Outcome::Failed => format!("failed at {}", clock(r.end_ms)),
                    Outcome::Cancelled => "cancelled".to_owned(),
                    Outcome::Superseded => "followed by another reboot".to_owned(),
                    Outcome::Open => "not seen back".to_owned(),
                };
                let title = match r.transport {
                    // Not fleetboot's: seen between two looks, no command sent.
                    "MCO" => format!("{node}: rebooted by {} between {} and {}", r.by, clock(r.sent_ms), clock(r.end_ms)),
                    _ => format!("{node}: rebooted by {} over {}, sent {}, {what}", r.by, r.transport, clock(r.sent_ms)),
                };
                // Sent → down (or its end, never seen down), then down → back: exact widths, so
                // one reboot ends where the next begins.
                let waiting =
                    if r.down_ms.is_none() && matches!(r.outcome, Outcome::Failed | Outcome::Open) { down } else { Kind::Waiting };
                // The MCO's: no command was sent, so no waiting part.
                if r.transport != "MCO" {
                    rects.push(Rect {
                        id: format!("reboot-{lane}-{n}"),
                        kind: waiting,
                        x: a,
                        y: y + 2.0,
                        w: d - a,
                        h: 11.0,
                        title: title.clone(),
                    });
                }
                if r.down_ms.is_some() {
                    rects.push(Rect { id: format!("down-{lane}-{n}"), kind: down, x: d, y: y + 2.0, w: b - d, h: 11.0, title });
                }
                let caption = if r.transport == "MCO" { r.by.clone() } else { format!("{} · {}", r.by, r.transport) };
                texts.push(Text { x: a, y: y + 22.0, size: 8.0, text: caption });
            }
            for (n, m) in t.marks.iter().filter(|m| &m.node == node).enumerate() {
                rects.push(Rect {
                    id: format!("failure-{lane}-{n}"),
                    kind: Kind::Failure,
                    x: (x(m.at_ms) - 2.0).max(x0),
                    y: y + 2.0,
                    w: 4.0,
                    h: 11.0,
                    title: format!("{node}: failed at {}: {}", clock(m.at_ms), m.text),
                });
            }
            y += LANE_H;
            rules.push(y);
        }
    } else {
        texts.push(Text {
            x: 10.0,
            y: y + 16.0,
            size: 11.0,
            text: format!("{} nodes: more than {MAX_NODE_LANES}, so by group above; the node table has each", t.nodes.len()),
        });
        y += LANE_H;
    }
    let lanes_bottom = y;
    if let Some((a, b)) = t.paused {
        let (xa, xb) = (x(a), x(b));
        let title = format!("pools paused from {} to {}", clock(a), clock(b));
        rects.insert(
            0,
            Rect {
                id: "paused".into(),
                kind: Kind::Paused,
                x: xa,
                y: lanes_top,
                w: (xb - xa).max(1.0),
                h: lanes_bottom - lanes_top,
                title,
            },
        );
    }
    // The legend: what each colour shown means.
    let mut kinds: Vec<Kind> = rects.iter().map(|r| r.kind).collect();
    kinds.extend([Kind::Waiting, Kind::DownSsh, Kind::DownApi, Kind::DownBmc, Kind::NotBack, Kind::Aggregate]);
    if !t.step_lanes.is_empty() {
        kinds.extend([Kind::StepDone, Kind::StepFailed]);
    }
    kinds.sort();
    kinds.dedup();
    y += 16.0;
    texts.push(Text { x: 10.0, y: y + 10.0, size: 12.0, text: "Legend".into() });
    let mut legend = Vec::new();
    let (mut lx, col_w) = (LABEL_W, 290.0);
    for kind in kinds {
        if lx + col_w > WIDTH {
            lx = LABEL_W;
            y += 18.0;
        }
        let swatch = Rect { id: format!("legend-{}", kind.key()), kind, x: lx, y: y + 1.0, w: 14.0, h: 11.0, title: kind.meaning().into() };
        legend.push((kind, swatch, Text { x: lx + 20.0, y: y + 10.0, size: 11.0, text: kind.meaning().into() }));
        lx += col_w;
    }
    Picture {
        width: WIDTH,
        height: y + 30.0,
        axis_x0: x0,
        axis_x1: x1,
        axis_y,
        start_ms: start,
        end_ms: end,
        lanes_top,
        lanes_bottom,
        ticks,
        rects,
        texts,
        rules,
        legend,
    }
}

/// Text safe inside XML and HTML, in elements and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not XML 1.0 characters.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The picture as SVG: standalone, no external reference, every text escaped.
pub fn svg(p: &Picture) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h:.0}\" viewBox=\"0 0 {w} {h:.0}\" font-family=\"sans-serif\">\n\
         <rect id=\"background\" x=\"0\" y=\"0\" width=\"{w}\" height=\"{h:.0}\" fill=\"#ffffff\"/>\n",
        w = p.width,
        h = p.height
    );
    // Lanes' rules and the grid first, bars over them.
    for y in &p.rules {
        s.push_str(&format!("<line x1=\"10\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eeeeee\"/>\n", p.axis_x1));
    }
    s.push_str(&format!(
        "<g id=\"axis\"><line id=\"axis-line\" x1=\"{:.2}\" y1=\"{:.1}\" x2=\"{:.2}\" y2=\"{:.1}\" stroke=\"#000000\"/>\n",
        p.axis_x0, p.axis_y, p.axis_x1, p.axis_y
    ));
    for (i, t) in p.ticks.iter().enumerate() {
        s.push_str(&format!(
            "<line id=\"tick-{i}\" x1=\"{x:.2}\" y1=\"{:.1}\" x2=\"{x:.2}\" y2=\"{:.1}\" stroke=\"#000000\"/>\
             <line x1=\"{x:.2}\" y1=\"{:.1}\" x2=\"{x:.2}\" y2=\"{:.1}\" stroke=\"#dddddd\" stroke-dasharray=\"2,3\"/>\
             <text id=\"tick-label-{i}\" x=\"{x:.2}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n",
            p.axis_y - 5.0,
            p.axis_y + 5.0,
            p.lanes_top,
            p.lanes_bottom,
            p.axis_y - 8.0,
            escape(&t.label),
            x = t.x
        ));
    }
    s.push_str("</g>\n");
    for r in &p.rects {
        s.push_str(&format!(
            "<rect id=\"{}\" x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{}\"><title>{}</title></rect>\n",
            escape(&r.id),
            r.x,
            r.y,
            r.w,
            r.h,
            r.kind.colour(),
            escape(&r.title)
        ));
    }
    for t in &p.texts {
        s.push_str(&format!("<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{}\">{}</text>\n", t.x, t.y, t.size, escape(&t.text)));
    }
    s.push_str("<g id=\"legend\">\n");
    for (_, r, t) in &p.legend {
        s.push_str(&format!(
            "<rect id=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#999999\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{}\">{}</text>\n",
            r.id,
            r.x,
            r.y,
            r.w,
            r.h,
            r.kind.colour(),
            t.x,
            t.y,
            t.size,
            escape(&t.text)
        ));
    }
    s.push_str("</g>\n</svg>\n");
    s
}

/// A table for the HTML report: a heading, its column names and its rows (plain text).
pub struct Table {
    pub heading: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The self-contained HTML report: the title, notes, the SVG inline and the tables. No external
/// asset (no link, script, image or font from anywhere), every text escaped. Well-formed XML
/// too, so any XML parser reads it.
pub fn html(title: &str, notes: &[String], svg: &str, tables: &[Table]) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{t}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em; }}\n\
         table {{ border-collapse: collapse; margin-bottom: 2em; }}\n\
         th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; font-size: 0.9em; }}\n\
         th {{ background: #f3f3f3; }}\n\
         .svg {{ overflow-x: auto; }}\n\
         </style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    for note in notes {
        h.push_str(&format!("<p>{}</p>\n", escape(note)));
    }
    h.push_str("<div class=\"svg\">\n");
    h.push_str(svg);
    h.push_str("</div>\n");
    for table in tables {
        h.push_str(&format!("<h2>{}</h2>\n<table>\n<thead><tr>", escape(&table.heading)));
        for c in &table.columns {
            h.push_str(&format!("<th>{}</th>", escape(c)));
        }
        h.push_str("</tr></thead>\n<tbody>\n");
        for row in &table.rows {
            h.push_str("<tr>");
            for cell in row {
                h.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step_ms(9_000), 1000);
        assert_eq!(tick_step_ms(60_000), 10_000);
        assert_eq!(tick_step_ms(3_600_000), 600_000);
        assert_eq!(clock(1_764_657_628_999), "06:40:28");
        assert_eq!(counts([(0, 10), (5, 15), (10, 20)].into_iter()), vec![(0, 1), (5, 2), (10, 2), (15, 1), (20, 0)]);
    }

    #[test]
    fn at_500_nodes_the_picture_stays_one_screen_and_inside_its_canvas() {
        let nodes: Vec<String> = (0..500).map(|i| if i < 3 { format!("master-{i}") } else { format!("worker-{i}") }).collect();
        let groups = nodes.iter().map(|n| (n.clone(), if n.starts_with("master") { "master" } else { "worker" }.to_owned())).collect();
        let reboots = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let sent = 1_000 + i as u64 * 700;
                Reboot {
                    node: n.clone(),
                    by: "fleetboot".into(),
                    transport: "SSH",
                    sent_ms: sent,
                    down_ms: Some(sent + 60_000),
                    end_ms: sent + 180_000,
                    outcome: Outcome::Back,
                }
            })
            .collect();
        let mut t = Timeline { title: "t".into(), nodes, groups, reboots, ..Timeline::default() };
        t.fit();
        let p = layout(&t);
        assert!(p.height < 500.0, "{}", p.height);
        for r in p.rects.iter().chain(p.legend.iter().map(|l| &l.1)) {
            assert!(r.x >= 0.0 && r.y >= 0.0 && r.x + r.w <= p.width + 1e-9 && r.y + r.h <= p.height, "{} inside the canvas", r.id);
        }
        for r in p.rects.iter().filter(|r| r.id.starts_with("aggregate-")) {
            assert!(r.x >= p.axis_x0 - 1e-9 && r.x + r.w <= p.axis_x1 + 1e-9, "{} inside the axis", r.id);
        }
        let lanes: Vec<&str> = p.texts.iter().map(|t| t.text.as_str()).filter(|t| t.starts_with("down in")).collect();
        assert_eq!(lanes, ["down in master (max 3)", "down in worker (max 172)"]);
    }

    #[test]
    fn a_long_lane_label_is_cut_before_the_bars() {
        let t = Timeline {
            title: "t".into(),
            step_lanes: vec!["5 phase 1: the MCO rolls out the new configure-ovs.sh".into()],
            ..Timeline::default()
        };
        let p = layout(&t);
        let text = &p.texts.iter().find(|t| t.text.starts_with("5 phase")).unwrap().text;
        assert_eq!(text.chars().count(), LABEL_CHARS);
        assert!(text.ends_with('…'));
        // 12 px sans-serif stays under 7 px a character: the label ends before the axis.
        assert!(10.0 + LABEL_CHARS as f64 * 7.0 <= p.axis_x0);
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(escape("<x>&\"'"), "&lt;x&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn beyond_the_lane_limit_nodes_go_into_group_lanes() {
        let nodes: Vec<String> = (0..MAX_NODE_LANES + 1).map(|i| format!("n{i}")).collect();
        let groups = nodes.iter().map(|n| (n.clone(), "worker".to_owned())).collect();
        let reboots = vec![Reboot {
            node: "n0".into(),
            by: "fleetboot".into(),
            transport: "SSH",
            sent_ms: 1000,
            down_ms: Some(2000),
            end_ms: 3000,
            outcome: Outcome::Back,
        }];
        let t = Timeline { title: "t".into(), start_ms: 0, end_ms: 10_000, nodes, groups, reboots, ..Timeline::default() };
        let p = layout(&t);
        assert!(p.rects.iter().all(|r| !r.id.starts_with("reboot-")), "no per-node lane");
        assert!(p.texts.iter().any(|t| t.text == "down in worker (max 1)"));
    }
}
