//! The layering rule, checked: commands → engine and reporters → adapters → core, and the two
//! other crates' independence. Reads the sources, so it fails the moment a module imports upward.

use std::path::{Path, PathBuf};

/// A module's layer, from its path under `src/`. Higher layers may use lower ones.
fn layer_of(module_path: &str) -> Option<(u8, &'static str)> {
    let top = module_path.split('/').next()?;
    match top {
        // lib.rs and what it declares (`Error`, the re-exported `ExitCode`, `SelectionError`).
        "commands" | "main.rs" | "lib.rs" | "Error" | "ExitCode" | "SelectionError" | "NameNotAddress" => Some((3, "commands")),
        "engine" => Some((2, "engine")),
        "report" => Some((2, "report")),
        "adapters" => Some((1, "adapters")),
        _ => None,
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Every `crate::<top>` a file names outside its `#[cfg(test)]` module.
fn crate_paths(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn layers_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        let Some((rank, layer)) = layer_of(&relative) else {
            if relative != "layering.rs" {
                violations.push(format!("{relative}: not in any layer (put it under commands/, engine/, report/ or adapters/)"));
            }
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for target in crate_paths(&text) {
            // lib.rs is the commands layer's: its `Error` wraps the engine's errors, never the
            // other way round (engine/error.rs), so nothing below names it.
            let Some((target_rank, target_layer)) = layer_of(&target) else {
                violations.push(format!("{relative}: uses crate::{target}, which is in no layer"));
                continue;
            };
            let sideways = target_rank == rank && target_layer != layer;
            if target_rank > rank || sideways {
                violations.push(format!("{relative} ({layer}) uses crate::{target} ({target_layer})"));
            }
        }
    }
    assert!(violations.is_empty(), "imports that point the wrong way:\n{}", violations.join("\n"));
}

/// The top-level modules a crate's file names (`crate::x`, and `super::x` from a file at the
/// top), outside comments and its `#[cfg(test)]` module.
fn module_uses(text: &str, top_level: bool) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for prefix in ["crate::", "super::"] {
            if prefix == "super::" && !top_level {
                continue;
            }
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                rest = &rest[at + prefix.len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                    found.push(name);
                }
            }
        }
    }
    found
}

/// The core's and the simulation's modules use each other one way: no cycle between two
/// top-level modules (`journal` ↔ `nodes`, `api` ↔ `cluster` once were).
#[test]
fn the_core_and_the_simulation_have_no_module_cycles() {
    use std::collections::{BTreeMap, BTreeSet};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in ["crates/core/src", "crates/sim/src"] {
        let src = root.join(krate);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
            if module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let top_level = !relative.contains('/');
            let uses = graph.entry(module.clone()).or_default();
            uses.extend(module_uses(&text, top_level).into_iter().filter(|m| *m != module));
        }
        // Every module reached from each module; a module that reaches itself is on a cycle.
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&String> = graph[start].iter().collect();
            while let Some(next) = stack.pop() {
                if next == start {
                    panic!("{krate}: the module {start} reaches itself through its uses: {graph:#?}");
                }
                if seen.insert(next.clone()) {
                    stack.extend(graph.get(next).into_iter().flatten());
                }
            }
        }
    }
}

/// The core builds without I/O crates, and the simulation shares no code with fleetboot.
#[test]
fn the_core_is_pure_and_the_simulation_independent() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dependencies = |crate_dir: &str| {
        let manifest = std::fs::read_to_string(root.join(crate_dir).join("Cargo.toml")).unwrap();
        let section = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let section = section.split("\n[").next().unwrap_or_default().to_owned();
        section.lines().filter_map(|l| l.split_once('=').map(|(name, _)| name.trim().to_owned())).collect::<Vec<_>>()
    };
    assert_eq!(dependencies("crates/core"), ["serde", "serde_json", "thiserror"]);
    let sim = dependencies("crates/sim");
    assert!(sim.iter().all(|d| !d.starts_with("fleetboot")), "the simulation depends on {sim:?}");
    assert!(!sim.is_empty());
}
