//! `fleetboot rbac MODE`: the ClusterRoles, Roles and bindings a mode needs, from core's one
//! table ([`fleetboot_core::rbac`]), the same rules every command checks at start.

use clap::{Args, ValueEnum};

use fleetboot_core::rbac::{self, Mode, Namespaces, Subject};

use crate::{Error, ExitCode};

/// `fleetboot rbac MODE`: one of core's modes, or all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RbacMode {
    One(Mode),
    /// Everything fleetboot can do, in one role.
    All,
}

/// The modes as clap offers them, names and help from core's table ([`Mode::name`],
/// [`Mode::about`]), so the command line never lists them again.
fn rbac_mode_parser() -> impl clap::builder::TypedValueParser<Value = RbacMode> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    let values = Mode::ALL
        .iter()
        .map(|m| PossibleValue::new(m.name()).help(m.about()))
        .chain([PossibleValue::new("all").help("Everything fleetboot can do, in one role")]);
    PossibleValuesParser::new(values).map(|name: String| Mode::named(&name).map_or(RbacMode::All, RbacMode::One))
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
    #[arg(value_name = "MODE", value_parser = rbac_mode_parser(), default_value = "all")]
    pub mode: RbacMode,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: RbacOutput,
    /// Bind a user instead of the ServiceAccount.
    #[arg(long, value_name = "NAME", conflicts_with = "service_account")]
    pub user: Option<String>,
    /// The ServiceAccount the bindings bind, NAMESPACE:NAME.
    #[arg(long, value_name = "NAMESPACE:NAME", default_value = "fleetboot:fleetboot", value_parser = service_account)]
    pub service_account: (String, String),
    /// The namespace of fleetboot's Lease (as `reboot --lease-namespace`). A migration, and the
    /// repair of one, take theirs in kube-system whatever this says.
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
        match self {
            RbacMode::One(mode) => (rbac::with_base(mode), mode.name()),
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
            let rows: Vec<Vec<String>> = rbac::by_namespace(&rules)
                .into_iter()
                .flat_map(|(scope, rules)| {
                    rules.into_iter().map(move |r| {
                        vec![
                            scope.unwrap_or("*").to_owned(),
                            if r.group.is_empty() { "\"\"".into() } else { r.group.to_owned() },
                            r.resource.to_owned(),
                            r.verbs.join(","),
                            r.why.to_owned(),
                        ]
                    })
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
