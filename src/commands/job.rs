//! `fleetboot job reboot|migrate [JOB OPTIONS] [FLAGS...] -o yaml`: fleetboot as a Kubernetes
//! Job on the cluster it reboots. Prints a Namespace, a ServiceAccount, the least-privilege
//! roles and bindings (core's [`fleetboot_core::rbac`], the same as `fleetboot rbac` prints)
//! and a Job whose one pod runs `fleetboot reboot|migrate FLAGS --journal-in-cluster --run-id
//! ID`: its journal is in the cluster (a migration's side files and step 7's reboot run too), so
//! a pod that crashed, was evicted or lost its node is replaced by one that resumes the same
//! run (the run ID is fixed in the manifest).
//!
//! The Job: `restartPolicy: Never` with a `podFailurePolicy` that ignores pods ended by a
//! disruption (condition `DisruptionTarget`: eviction, preemption, a node drained or shut
//! down; batch/v1 JobSpec) so a drain of its node does not count against `backoffLimit`, which
//! counts crashes; node affinity keeping it off control-plane nodes; and `FLEETBOOT_NODE_NAME`
//! (the downward API's `spec.nodeName`), by which a run puts the pod's own node last.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use fleetboot_core::rbac::{self, Mode, Namespaces, Subject};

use crate::adapters::config::ConfigError;
use crate::{Error, ExitCode};

/// `fleetboot job -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum JobOutput {
    /// The objects, for `kubectl apply -f -`.
    Yaml,
    /// The objects as one List.
    Json,
}

/// The Job's own options (before the command's flags).
#[derive(Args, Debug, Clone)]
pub struct JobOptions {
    /// The namespace of the Job, its ServiceAccount and its pod.
    #[arg(long, value_name = "NAMESPACE", default_value = "fleetboot")]
    pub namespace: String,
    /// The container image with the fleetboot binary (as `fleetboot` on its PATH).
    #[arg(long, value_name = "IMAGE", default_value = concat!("quay.io/fleetboot/fleetboot:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The run's ID, which a replacement pod resumes [default: job-<now, UTC>].
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Pod restarts for crashes (a disruption does not count).
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub backoff_limit: u32,
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    pub output: JobOutput,
}

#[derive(Subcommand, Debug)]
pub enum JobKind {
    /// A Job running `fleetboot reboot FLAGS --journal-in-cluster` (give the job's options
    /// first, then the reboot's flags).
    Reboot {
        #[command(flatten)]
        job: JobOptions,
        /// `fleetboot reboot`'s flags, as on the command line (`--all --transport kube`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "REBOOT FLAGS")]
        flags: Vec<String>,
    },
    /// A Job running `fleetboot migrate FLAGS --journal-in-cluster` (its journal, side files and
    /// reboot run in the cluster: a replacement pod resumes it).
    Migrate {
        #[command(flatten)]
        job: JobOptions,
        /// `fleetboot migrate`'s flags, as on the command line.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "MIGRATE FLAGS")]
        flags: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct JobArgs {
    #[command(subcommand)]
    pub kind: JobKind,
}

/// Flags a pod cannot use: where the cluster and the journal are is the pod's own.
const NOT_IN_A_POD: &[&str] = &["--kubeconfig", "--context", "--journal", "--resume", "--no-cluster", "--config", "--run-id", "--dry-run"];

fn bad(reason: String) -> Error {
    ConfigError::BadValue { key: "fleetboot job", reason }.into()
}

/// The objects of the job, in apply order.
pub fn objects(kind: &JobKind, now: std::time::SystemTime) -> Result<Vec<Value>, Error> {
    let (command, job, flags) = match kind {
        JobKind::Reboot { job, flags } => ("reboot", job, flags),
        JobKind::Migrate { job, flags } => ("migrate", job, flags),
    };
    if let Some(flag) = flags.iter().find(|f| NOT_IN_A_POD.iter().any(|n| f.as_str() == *n || f.starts_with(&format!("{n}=")))) {
        return Err(bad(format!(
            "{flag} is not for a pod: the pod finds its cluster (its ServiceAccount) and its journal (in the cluster) itself"
        )));
    }
    let run_id = match &job.run_id {
        Some(id) => id.clone(),
        None => format!("job-{}", humantime::format_rfc3339_seconds(now).to_string().replace([':', '-'], "").to_lowercase()),
    };
    crate::adapters::kube::journal_store::JournalPlace::new("x", &run_id).map_err(|e| bad(format!("--run-id: {e}")))?;
    // The pod's arguments, checked here with the command's own parser: a bad flag is refused
    // now, not in a pod's log.
    let mut args: Vec<String> = vec![command.into()];
    args.extend(flags.iter().cloned());
    args.extend(["--journal-in-cluster".into(), "--run-id".into(), run_id.clone()]);
    if !flags.iter().any(|f| f == "--output" || f.starts_with("--output=")) {
        args.extend(["--output".into(), "json".into()]);
    }
    let argv: Vec<&str> = std::iter::once("fleetboot").chain(args.iter().map(String::as_str)).collect();
    let parsed = super::Cli::try_parse_from(&argv)
        .map_err(|e| bad(format!("fleetboot {}: {}", args.join(" "), e.to_string().lines().next().unwrap_or_default())))?;
    let (modes, name, lease_namespace, backoff_limit) = match &parsed.command {
        super::Command::Reboot(reboot) => {
            use fleetboot_core::settings::Transport;
            let transport = reboot.transport.unwrap_or(Transport::Auto);
            let bmc = matches!(transport, Transport::Auto | Transport::Redfish);
            // The batch gates as the flags set them (a config file is the pod's to read).
            let none = Default::default();
            let batch = fleetboot_core::batch::merge(&reboot.batch.partial(), &none, &none, &Default::default()).reads_cluster();
            let through_the_api = reboot.rungs.transport_order.clone().unwrap_or_default().commands_only_through_the_api(transport);
            let (mut modes, named) = rbac::run_modes(bmc, through_the_api, reboot.drain, batch);
            modes.push(Mode::JournalInCluster);
            (modes, named.name(), reboot.lease_namespace.clone(), job.backoff_limit)
        }
        // The migration's journal, side files and step 7's reboot run are in the cluster
        // (kube-system, beside its lease): a replacement pod resumes it by its ID.
        super::Command::Migrate(migrate) => {
            let mut modes = rbac::with_base(Mode::Migrate);
            // Steps 7 and 10 reboot through the API's exec: granted, or the pod would pause
            // the pools and switch the network before it finds it cannot reboot a node.
            // (The flags' transport and order; a config file is the pod's to read.)
            let transport = migrate.transport.unwrap_or(fleetboot_core::settings::Transport::Auto);
            if migrate.rungs.transport_order.clone().unwrap_or_default().commands_only_through_the_api(transport) {
                modes.push(Mode::KubeTransport);
            }
            modes.push(Mode::JournalInCluster);
            (modes, Mode::Migrate.name(), "kube-system".to_owned(), job.backoff_limit)
        }
        _ => unreachable!("parsed as {command}"),
    };
    let namespace = job.namespace.clone();
    let account = "fleetboot".to_owned();
    let labels = json!({"app.kubernetes.io/managed-by": "fleetboot", "app.kubernetes.io/name": "fleetboot"});
    let rules = rbac::needed(&modes, &Namespaces { lease: lease_namespace, ..Namespaces::default() });
    let subject = Subject::ServiceAccount { namespace: namespace.clone(), name: account.clone() };
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace, "labels": labels}}),
    ];
    objects.extend(rbac::objects(&format!("fleetboot-{name}"), &rules, &subject));
    let off_the_control_plane = json!({"matchExpressions": [
        {"key": "node-role.kubernetes.io/master", "operator": "DoesNotExist"},
        {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"},
    ]});
    objects.push(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": format!("fleetboot-{command}-{run_id}").chars().take(63).collect::<String>(), "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": backoff_limit,
            // A pod ended by a disruption (evicted by a drain, its node shut down) is replaced
            // without counting as a failure; a crash counts.
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": account,
                    "restartPolicy": "Never",
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [off_the_control_plane],
                    }}},
                    "containers": [{
                        "name": "fleetboot",
                        "image": job.image,
                        "command": ["fleetboot"],
                        "args": args,
                        "env": [
                            {"name": "FLEETBOOT_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "HOME", "value": "/tmp"},
                        ],
                        "securityContext": {
                            "runAsNonRoot": true,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }));
    Ok(objects)
}

/// What `fleetboot job` prints.
pub fn render(args: &JobArgs, now: std::time::SystemTime) -> Result<String, Error> {
    let objects = objects(&args.kind, now)?;
    let output = match &args.kind {
        JobKind::Reboot { job, .. } | JobKind::Migrate { job, .. } => job.output,
    };
    Ok(match output {
        JobOutput::Yaml => objects.iter().map(|o| format!("---\n{}", crate::report::yaml::to_yaml(o))).collect(),
        JobOutput::Json => {
            serde_json::to_string_pretty(&json!({"apiVersion": "v1", "kind": "List", "items": objects})).expect("serializes") + "\n"
        }
    })
}

pub fn run(args: JobArgs) -> Result<ExitCode, Error> {
    print!("{}", render(&args, std::time::SystemTime::now())?);
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(argv: &[&str]) -> Result<Vec<Value>, Error> {
        let all: Vec<&str> = ["fleetboot", "job"].into_iter().chain(argv.iter().copied()).collect();
        let super::super::Command::Job(args) = super::super::Cli::try_parse_from(&all).unwrap().command else { panic!("job") };
        objects(&args.kind, std::time::UNIX_EPOCH)
    }

    #[test]
    fn the_pod_runs_the_flags_given_with_the_journal_in_the_cluster_under_a_fixed_run_id() {
        let objects = job(&["reboot", "--namespace", "ops", "--all", "--transport", "kube", "--concurrency", "2"]).unwrap();
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(&kinds[..2], ["Namespace", "ServiceAccount"]);
        assert_eq!(kinds.last(), Some(&"Job"));
        let job = objects.last().unwrap();
        let args: Vec<&str> =
            job["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "reboot",
                "--all",
                "--transport",
                "kube",
                "--concurrency",
                "2",
                "--journal-in-cluster",
                "--run-id",
                "job-19700101t000000z",
                "--output",
                "json"
            ]
        );
        assert_eq!(job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"], "DisruptionTarget");
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(job["metadata"]["namespace"], "ops");
        let journal = objects.iter().find(|o| o["kind"] == "Role" && o["rules"].to_string().contains("configmaps")).unwrap();
        assert_eq!(journal["metadata"]["namespace"], "kube-system");
    }

    #[test]
    fn a_migration_job_resumes_after_a_crash_from_its_journal_in_the_cluster() {
        let objects = job(&["migrate", "--run-id", "m-1", "--etcd-backup-confirmed"]).unwrap();
        let through_the_api = job(&["migrate", "--run-id", "m-1", "--etcd-backup-confirmed", "--transport", "kube"]).unwrap();
        let job = objects.last().unwrap();
        let args: Vec<&str> =
            job["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(args, ["migrate", "--etcd-backup-confirmed", "--journal-in-cluster", "--run-id", "m-1", "--output", "json"]);
        assert_eq!(job["spec"]["backoffLimit"], 6, "a crashed pod is replaced: its replacement resumes");
        assert_eq!(job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"], "DisruptionTarget");
        // Exactly the journal's verbs in kube-system, as `fleetboot rbac` gives them.
        let journal = rbac::needed(&[Mode::JournalInCluster], &Namespaces::default());
        for rule in &journal {
            let role = objects
                .iter()
                .find(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == "kube-system")
                .unwrap_or_else(|| panic!("no Role in kube-system: {objects:?}"));
            let found = role["rules"].as_array().unwrap().iter().any(|r| {
                r["resources"].as_array().unwrap().iter().any(|x| *x == rule.resource)
                    && rule.verbs.iter().all(|v| r["verbs"].as_array().unwrap().iter().any(|x| *x == *v))
            });
            assert!(found, "{} {:?} missing from {role}", rule.resource, rule.verbs);
        }
        // Rebooting through the API's exec: granted to the pod too.
        let grants_exec = |objects: &[Value]| {
            objects.iter().any(|o| {
                o["kind"] == "Role"
                    && o["metadata"]["namespace"] == "openshift-machine-config-operator"
                    && o["rules"].to_string().contains("pods/exec")
            })
        };
        assert!(!grants_exec(&objects), "no exec without --transport kube");
        assert!(grants_exec(&through_the_api));
    }

    #[test]
    fn flags_a_pod_cannot_use_and_bad_flags_are_refused_before_anything_is_printed() {
        let err = job(&["reboot", "--all", "--kubeconfig", "/k"]).unwrap_err().to_string();
        assert!(err.contains("--kubeconfig is not for a pod"), "{err}");
        let err = job(&["reboot", "--all", "--concurency", "2"]).unwrap_err().to_string();
        assert!(err.contains("fleetboot reboot --all --concurency 2") && err.contains("unexpected argument"), "{err}");
        let err = job(&["reboot", "--run-id", "a/b", "--all"]).unwrap_err().to_string();
        assert!(err.contains("--run-id"), "{err}");
    }
}
