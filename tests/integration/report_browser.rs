//! The HTML report as a person sees it: a headless Chromium (installed by scripts/test.sh) loads
//! `report.html` from a file and lays it out; a probe script added to a copy reads back every
//! drawn element's box, and the test checks the basic geometry: the inline SVG is laid out, the
//! axis and the legend exist, every node has a lane label, every bar lies inside the axis and
//! nothing is drawn outside the canvas.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Fleet;

/// Chromium's binary: `$CHROMIUM`, else `chromium` on the PATH (scripts/test.sh installs it).
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("chromium")).find(|p| p.is_file()))
        .expect("chromium is not installed: scripts/test.sh installs it (or set CHROMIUM)")
}

/// Every element of the inline SVG with an id, and the SVG itself, as the browser laid them out:
/// (left, top, right, bottom) in CSS pixels, with the texts of the SVG.
struct Layout {
    svg: [f64; 4],
    boxes: serde_json::Map<String, serde_json::Value>,
    texts: Vec<String>,
}

const PROBE: &str = r#"<script>
const out = {};
const svg = document.querySelector('svg');
const r = svg.getBoundingClientRect();
out.svg = [r.left, r.top, r.right, r.bottom];
out.boxes = {};
for (const e of svg.querySelectorAll('[id]')) {
  const b = e.getBoundingClientRect();
  out.boxes[e.id] = [b.left, b.top, b.right, b.bottom];
}
out.texts = Array.from(svg.querySelectorAll('text')).map(t => t.textContent);
const pre = document.createElement('pre');
pre.id = 'probe';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"#;

fn laid_out(report: &Path, scratch: &Path) -> Layout {
    let html = std::fs::read_to_string(report).unwrap();
    // The report loads nothing and runs no script; the probe is added to a copy only.
    assert!(!html.contains("<script"), "the report itself has no script");
    let probe = scratch.join("probe.html");
    std::fs::write(&probe, html.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1200"])
        .arg(format!("--user-data-dir={}", scratch.join("chromium-profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", probe.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"probe\">").unwrap_or_else(|| panic!("no probe output: {}", String::from_utf8_lossy(&output.stderr)));
    let json = &dom[start + "<pre id=\"probe\">".len()..];
    let json = &json[..json.find("</pre>").unwrap()];
    let value: serde_json::Value = serde_json::from_str(&json.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")).unwrap();
    let four = |v: &serde_json::Value| -> [f64; 4] {
        let a = v.as_array().unwrap();
        [0, 1, 2, 3].map(|i| a[i].as_f64().unwrap())
    };
    Layout {
        svg: four(&value["svg"]),
        boxes: value["boxes"].as_object().unwrap().clone(),
        texts: value["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect(),
    }
}

impl Layout {
    fn of(&self, id: &str) -> Option<[f64; 4]> {
        self.boxes.get(id).map(|v| {
            let a = v.as_array().unwrap();
            [0, 1, 2, 3].map(|i| a[i].as_f64().unwrap())
        })
    }
}

#[test]
fn a_headless_browser_lays_out_the_reboot_report_inside_its_canvas_with_a_lane_per_node() {
    let fleet = Fleet::up(3);
    let out = fleet.path("report");
    let run = fleet.reboot(&["--concurrency", "2", "--report", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let layout = laid_out(&out.join("report.html"), &fleet.path(""));

    let [left, top, right, bottom] = layout.svg;
    assert!(right - left > 200.0 && bottom - top > 50.0, "the SVG is laid out: {:?}", layout.svg);
    let axis = layout.of("axis-line").expect("the axis is drawn");
    assert!(layout.of("legend").is_some(), "the legend is drawn");
    for name in &fleet.names {
        assert!(layout.texts.iter().any(|t| t == name), "a lane for {name}: {:?}", layout.texts);
    }
    let inside = |b: [f64; 4]| b[0] >= left - 0.5 && b[1] >= top - 0.5 && b[2] <= right + 0.5 && b[3] <= bottom + 0.5;
    for (id, _) in layout.boxes.iter() {
        let b = layout.of(id).unwrap();
        assert!(inside(b), "{id} {b:?} is drawn outside the canvas {:?}", layout.svg);
    }
    let bars: Vec<(&String, [f64; 4])> =
        layout.boxes.keys().filter(|id| id.starts_with("down-")).map(|id| (id, layout.of(id).unwrap())).collect();
    assert_eq!(bars.len(), fleet.names.len(), "one reboot bar per node: {:?}", layout.boxes.keys().collect::<Vec<_>>());
    for (id, b) in bars {
        assert!(b[0] >= axis[0] - 0.5 && b[2] <= axis[2] + 0.5, "{id} {b:?} lies inside the axis {axis:?}");
        assert!(b[2] > b[0], "{id} has a width");
    }
}
