//! `fleetboot power` output: a table, or the results as one JSON array.

use clap::ValueEnum;
use fleetboot_core::power::PowerResult;

/// `fleetboot power -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PowerOutput {
    Table,
    /// One JSON array of results (stable, documented in README).
    Json,
    /// The JSON's results as YAML.
    Yaml,
    /// `node/NAME`, one a line (as `kubectl get -o name`).
    Name,
}

pub fn render(results: &[PowerResult], output: PowerOutput) -> String {
    match output {
        PowerOutput::Json => serde_json::to_string_pretty(results).expect("serializes") + "\n",
        PowerOutput::Yaml => super::yaml::render(results),
        PowerOutput::Name => super::yaml::names("node", results.iter().map(|r| r.node.as_str())),
        PowerOutput::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|r| {
                    vec![
                        r.node.clone(),
                        r.bmc.clone(),
                        r.power_state.clone().unwrap_or_else(|| "-".into()),
                        r.action.clone().unwrap_or_else(|| "-".into()),
                        r.error
                            .clone()
                            .unwrap_or_else(|| r.allowed_resets.as_ref().map_or("-".into(), |a| format!("allows {}", a.join(", ")))),
                    ]
                })
                .collect();
            fleetboot_core::table::table(&["NODE", "BMC", "POWER", "SENT", "DETAIL"], &rows)
        }
    }
}
