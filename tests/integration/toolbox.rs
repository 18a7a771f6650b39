//! fleetboot in the admin's toolbox (issue 25): completions sourced by a real bash, man pages
//! read by a real man, the kubectl plugin found by the real kubectl's plugin discovery against
//! the simulated cluster, `-o yaml` / `-o name` read back by PyYAML and compared with kubectl,
//! and no terminal escapes when the output is not a terminal.

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

use crate::common::fleetboot_bin;
use crate::common::sim::Sim;

fn run(cmd: &mut Command) -> (i32, String, String) {
    let o = cmd.output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn fleetboot(args: &[&str]) -> (i32, String, String) {
    run(Command::new(fleetboot_bin()).args(args))
}

/// The commands a person can run, as the clap definition lists them.
fn commands() -> Vec<String> {
    fleetboot::commands::Cli::command().get_subcommands().map(|s| s.get_name().to_owned()).collect()
}

#[test]
fn bash_sources_the_completion_script_and_completes_commands_and_values() {
    let (code, script, err) = fleetboot(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleetboot.bash");
    std::fs::write(&file, &script).unwrap();
    let complete = |words: &str, cword: usize| {
        let shell = format!(
            "source {}; complete -p fleetboot; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
             _fleetboot fleetboot \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[*]}}\"",
            file.display()
        );
        let (code, out, err) = run(Command::new("bash").args(["--norc", "--noprofile", "-c", &shell]));
        assert_eq!(code, 0, "{err}");
        out
    };
    let out = complete("fleetboot re", 1);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().ends_with("-F _fleetboot fleetboot"), "{out}");
    let words: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(words, ["reboot", "repair", "report"], "{out}");
    let out = complete("fleetboot nodes -o y", 3);
    assert_eq!(out.lines().nth(1), Some("yaml"), "the output choices complete: {out}");

    let (_, zsh, _) = fleetboot(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef fleetboot"), "{zsh}");
    let (_, fish, _) = fleetboot(&["completions", "fish"]);
    assert!(fish.contains("complete -c fleetboot") && fish.contains("install-plugin"), "{fish}");
    let (code, _, err) = fleetboot(&["completions", "tcsh"]);
    assert_eq!(code, 2, "a usage error");
    assert!(err.contains("tcsh") && err.contains("bash, zsh, fish"), "{err}");
}

#[test]
fn man_writes_one_page_per_command_that_man_reads() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let (code, out, err) = fleetboot(&["man", pages.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut expected: Vec<String> = commands().into_iter().filter(|c| c != "help").map(|c| format!("fleetboot-{c}.1")).collect();
    expected.push("fleetboot.1".into());
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&pages).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    assert_eq!(written, expected);
    assert_eq!(out.lines().count(), expected.len(), "{out}");
    for page in &written {
        let path = pages.join(page);
        let roff = std::fs::read_to_string(&path).unwrap();
        let title = page.trim_end_matches(".1");
        assert!(roff.contains(&format!(".TH {title} 1 ")), "{page}: {}", &roff[..200.min(roff.len())]);
        if Path::new("/usr/bin/man").exists() {
            let (code, text, err) =
                run(Command::new("man").args(["-l", path.to_str().unwrap()]).env("MANPAGER", "cat").env("MANWIDTH", "100"));
            assert_eq!(code, 0, "{page}: {err}");
            assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{page}: {text}");
            // man's warnings (bad roff) go to stderr.
            assert!(!err.contains("warning"), "{page}: {err}");
        }
    }
    let reboot = std::fs::read_to_string(pages.join("fleetboot-reboot.1")).unwrap();
    assert!(reboot.contains("\\-\\-concurrency") && reboot.contains("fleetboot reboot"), "flags and usage on the page");
}

/// A kubeconfig whose current context is a dead server, with the simulation as `fleetboot-sim`.
fn two_context_kubeconfig(sim: &Sim) -> std::path::PathBuf {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:1\n- name: fleetboot-sim\n  cluster:\n    server: {api}\n\
         contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: admin\n- name: fleetboot-sim\n  context:\n    cluster: fleetboot-sim\n    user: admin\n\
         current-context: dead\nusers:\n- name: admin\n  user: {{}}\n",
        api = sim.api
    );
    let path = sim.path("two-contexts.kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn kubectl_finds_the_plugin_on_path_and_it_honours_kubectls_flags() {
    let sim = Sim::start(1, 2);
    let bin = sim.path("bin");
    let (code, out, err) = fleetboot(&["install-plugin", bin.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kubectl-fleetboot") && out.contains("oc-fleetboot"), "{out}");
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let kubectl =
        |args: &[&str]| run(Command::new("kubectl").args(args).env("PATH", &path).env("HOME", sim.dir.path()).env_remove("KUBECONFIG"));

    let (code, list, err) = kubectl(&["plugin", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(list.contains(&bin.join("kubectl-fleetboot").display().to_string()), "{list}");

    let (code, help, _) = kubectl(&["fleetboot", "nodes", "--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("Usage: kubectl fleetboot nodes"), "the name it was called by: {help}");

    // The sim's own kubeconfig by --kubeconfig (no $KUBECONFIG, no ~/.kube/config).
    let kubeconfig = sim.path("kubeconfig");
    let expected = sim.kubectl_ok(&["get", "nodes", "-o", "name"]);
    let (code, names, err) = kubectl(&["fleetboot", "nodes", "--kubeconfig", kubeconfig.to_str().unwrap(), "-n", "default", "-o", "name"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names, expected, "kubectl fleetboot nodes -o name prints what kubectl get nodes -o name does");

    // --context picks the simulation over a dead current context.
    let two = two_context_kubeconfig(&sim);
    let (code, _, err) = kubectl(&["fleetboot", "nodes", "--kubeconfig", two.to_str().unwrap(), "-o", "name"]);
    assert_ne!(code, 0, "the current context is a dead server");
    assert!(err.contains("127.0.0.1:1") || err.to_lowercase().contains("connect"), "{err}");
    let (code, names, err) =
        kubectl(&["fleetboot", "nodes", "--kubeconfig", two.to_str().unwrap(), "--context", "fleetboot-sim", "-o", "name"]);
    assert_eq!((code, names), (0, expected), "{err}");
    let (code, _, err) = kubectl(&["fleetboot", "nodes", "--kubeconfig", two.to_str().unwrap(), "--context", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("nope"), "names the context: {err}");
}

#[test]
fn yaml_and_name_outputs_say_what_json_says() {
    let sim = Sim::start(1, 2);
    let kubeconfig = sim.path("kubeconfig");
    let k = kubeconfig.to_str().unwrap();
    let (code, json, err) = fleetboot(&["nodes", "--kubeconfig", k, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let (code, yaml, err) = fleetboot(&["nodes", "--kubeconfig", k, "-o", "yaml"]);
    assert_eq!(code, 0, "{err}");
    // PyYAML, an independent reader, reads the YAML back into the JSON's value.
    let python = std::env::var("KUBE_PYTHON").expect("$KUBE_PYTHON (scripts/test.sh sets it)");
    let yaml_file = sim.path("nodes.yaml");
    std::fs::write(&yaml_file, &yaml).unwrap();
    let (code, from_yaml, err) = run(Command::new(python).args([
        "-c",
        "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1])), sort_keys=True))",
        yaml_file.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    let from_json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let from_yaml: serde_json::Value = serde_json::from_str(&from_yaml).unwrap();
    assert_eq!(from_yaml, from_json, "{yaml}");
    assert_eq!(from_yaml.as_array().unwrap().len(), 3);

    let (code, names, _) = fleetboot(&["nodes", "--kubeconfig", k, "-o", "name", "--role", "worker"]);
    assert_eq!(code, 0);
    assert_eq!(names, sim.kubectl_ok(&["get", "nodes", "-l", "node-role.kubernetes.io/worker", "-o", "name"]));
}

#[test]
fn nothing_but_text_when_the_output_is_not_a_terminal_or_no_color_is_set() {
    let sim = Sim::start(1, 1);
    let k = sim.path("kubeconfig");
    let k = k.to_str().unwrap();
    let mut outputs = Vec::new();
    for args in [
        vec!["--help"],
        vec!["reboot", "--help"],
        vec!["reboot", "--bogus"],
        vec!["nodes", "--kubeconfig", k],
        vec!["nodes", "--kubeconfig", k, "-o", "wide"],
        vec!["reboot", "--kubeconfig", k, "--all", "--dry-run"],
    ] {
        for no_color in [false, true] {
            let mut cmd = Command::new(fleetboot_bin());
            cmd.args(&args).env_remove("NO_COLOR").env("TERM", "xterm-256color");
            if no_color {
                cmd.env("NO_COLOR", "1");
            }
            let (_, out, err) = run(&mut cmd);
            outputs.push((args.join(" "), out + &err));
        }
    }
    for (args, text) in &outputs {
        assert!(!text.is_empty(), "{args}");
        assert!(!text.contains('\u{1b}'), "an escape sequence in `fleetboot {args}` piped:\n{text:?}");
    }
}
