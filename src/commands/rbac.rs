//! `fleetboot rbac MODE`: the ClusterRoles, Roles and bindings a mode needs, from core's one
//! table ([`fleetboot_core::rbac`]), the same rules every command checks at start.

use clap::{Args, ValueEnum};

use fleetboot_core::rbac::{self, Mode, Namespaces, Subject};

use crate::{Error, ExitCode};

/// `fleetboot rbac MODE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RbacMode {
    /// `fleetboot reboot` on a cluster (SSH, the BMC as the fallback), `fleetboot nodes`.
    Reboot,
    /// `fleetboot reboot --drain`.
    Drain,
    /// `fleetboot migrate` (its verification included).
    Migrate,
    /// `fleetboot power` through BareMetalHosts.
    Power,
    /// Reboots through the API (exec into the machine-config-daemon pod).
    KubeTransport,
    /// The batch gates (blocker pods, ClusterOperators, node annotations).
    Batch,
    /// `fleetboot nodes` (reads only).
    Nodes,
    /// `fleetboot verify` (reads only).
    Verify,
    /// `fleetboot repair` (uncordons, releases leases, resumes pools).
    Repair,
    /// Everything fleetboot can do, in one role.
    All,
}

/// `fleetboot rbac -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RbacOutput {
    /// The rules, one a line, with why each is needed.
    Table,
    /// The objects, for `kubectl apply -f -`.
    Yaml,
    /// The objects as one List.
    Json,
}

#[derive(Args, Debug)]
pub struct RbacArgs {
    #[arg(value_enum, default_value = "all")]
    pub mode: RbacMode,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: RbacOutput,
    /// Bind a user instead of the ServiceAccount.
    #[arg(long, value_name = "NAME", conflicts_with = "service_account")]
    pub user: Option<String>,
    /// The ServiceAccount the bindings bind, NAMESPACE:NAME.
    #[arg(long, value_name = "NAMESPACE:NAME", default_value = "fleetboot:fleetboot", value_parser = service_account)]
    pub service_account: (String, String),
    /// The namespace of fleetboot's Lease (as `reboot --lease-namespace`).
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    pub lease_namespace: String,
    /// Namespaces of BareMetalHosts and their Secrets (as the config's `[redfish] bmh_namespaces`).
    #[arg(long = "bmh-namespace", value_name = "NAMESPACE", default_value = "openshift-machine-api")]
    pub bmh_namespaces: Vec<String>,
    /// Add what the journal in the cluster needs (`reboot --journal-in-cluster`, every run in a
    /// pod, `fleetboot job`): its ConfigMaps in the lease's namespace.
    #[arg(long)]
    pub journal_in_cluster: bool,
}

fn service_account(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok((ns.to_owned(), name.to_owned())),
        _ => Err(format!("{text:?}: expected NAMESPACE:NAME")),
    }
}

impl RbacMode {
    fn modes(self) -> (Vec<Mode>, &'static str) {
        let one = |mode: Mode| (rbac::with_base(mode), mode.name());
        match self {
            RbacMode::Reboot => one(Mode::Reboot),
            RbacMode::Drain => one(Mode::Drain),
            RbacMode::Migrate => one(Mode::Migrate),
            RbacMode::Power => one(Mode::Power),
            RbacMode::KubeTransport => one(Mode::KubeTransport),
            RbacMode::Batch => one(Mode::Batch),
            RbacMode::Nodes => one(Mode::Nodes),
            RbacMode::Verify => one(Mode::Verify),
            RbacMode::Repair => one(Mode::Repair),
            RbacMode::All => (Mode::ALL.to_vec(), "all"),
        }
    }
}

/// What `fleetboot rbac` prints.
pub fn render(args: &RbacArgs) -> String {
    let (mut modes, name) = args.mode.modes();
    if args.journal_in_cluster && !modes.contains(&Mode::JournalInCluster) {
        modes.push(Mode::JournalInCluster);
    }
    let namespaces = Namespaces { lease: args.lease_namespace.clone(), bmh: args.bmh_namespaces.clone() };
    let rules = rbac::needed(&modes, &namespaces);
    let subject = match &args.user {
        Some(user) => Subject::User(user.clone()),
        None => Subject::ServiceAccount { namespace: args.service_account.0.clone(), name: args.service_account.1.clone() },
    };
    let objects = rbac::objects(&format!("fleetboot-{name}"), &rules, &subject);
    match args.output {
        RbacOutput::Yaml => objects.iter().map(|o| format!("---\n{}", crate::report::yaml::to_yaml(o))).collect(),
        RbacOutput::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            serde_json::to_string_pretty(&list).expect("serializes") + "\n"
        }
        RbacOutput::Table => {
            let rows: Vec<Vec<String>> = rules
                .iter()
                .map(|r| {
                    vec![
                        r.namespace.clone().unwrap_or_else(|| "*".into()),
                        if r.group.is_empty() { "\"\"".into() } else { r.group.to_owned() },
                        r.resource.to_owned(),
                        r.verbs.join(","),
                        r.why.to_owned(),
                    ]
                })
                .collect();
            format!(
                "fleetboot rbac {name}: what a run needs (`-o yaml | kubectl apply -f -` grants it)\n{}",
                fleetboot_core::table::table(&["NAMESPACE", "API GROUP", "RESOURCE", "VERBS", "WHY"], &rows)
            )
        }
    }
}

pub fn run(args: RbacArgs) -> Result<ExitCode, Error> {
    print!("{}", render(&args));
    Ok(ExitCode::Ok)
}
