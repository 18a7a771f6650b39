//! `fleetboot migrate --plan`: every step and what it would change, changing nothing.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) async fn plan(
    options: &MigrationOptions,
    cluster: &Target,
    state: &MigrationState,
    flow: Flow,
    reason: &str,
    version: &str,
    dir: &Path,
    subnets: &checks::InternalSubnets,
    rollback_after_failure: bool,
    reboot_timeout: Duration,
) -> Result<MigrationPlan, MigrateError> {
    let target = if state.target.is_empty() { options.to.clone() } else { state.target.clone() };
    let snapshot = cluster.snapshot().await?;
    let findings = if state.run_id.is_empty() {
        let request = checks::PreflightRequest {
            target: &target,
            flow,
            etcd_backup_confirmed: options.etcd_backup_confirmed,
            rollback_after_failure,
            subnets,
            release_minor: minor_version(version).map(|v| v.1),
            geneve_port: options.geneve_port,
            vxlan_port: options.vxlan_port,
        };
        let mut findings = checks::preflight(&snapshot, &request);
        if checks::documented_prerequisites_apply(&request) {
            let port = options.geneve_port.map(u64::from).or_else(|| {
                snapshot.network_operator.pointer("/spec/defaultNetwork/ovnKubernetesConfig/genevePort").and_then(serde_json::Value::as_u64)
            });
            findings.warnings.push(fleetboot_core::migrate::prerequisites::geneve_reminder(port.unwrap_or(6081)));
        }
        findings
    } else {
        checks::Findings::default()
    };
    let mut findings = findings;
    let mut default_network = network_options(options, &target);
    if state.run_id.is_empty() && flow != Flow::Live {
        let mtu = fleetboot_core::migrate::mtu::decide(&snapshot, &target, options.mtu, options.node_mtu);
        findings.refusals.extend(mtu.refusal);
        findings.warnings.extend(mtu.note);
        if let Some(restated) = mtu.restate {
            default_network = network_options(&MigrationOptions { mtu: Some(restated), ..options.clone() }, &target);
        }
    } else {
        default_network = state.network_options.clone();
    }
    let pools = cluster.list(&crate::adapters::kube::machine_config_pools()).await?;
    let (paused, unpaused): (Vec<&Value>, Vec<&Value>) = pools.iter().partition(|p| p.pointer("/spec/paused") == Some(&json!(true)));
    let names = |list: &[&Value]| list.iter().map(|p| name_of(p)).collect::<Vec<_>>().join(", ");
    let steps = flow
        .steps()
        .iter()
        .map(|&step| {
            let what = match step {
                Step::Preflight if findings.refusals.is_empty() => format!(
                    "the cluster passes{}",
                    if findings.warnings.is_empty() { String::new() } else { format!("; WARNS: {}", findings.warnings.join("; ")) }
                ),
                Step::Preflight => format!("REFUSES: {}", findings.refusals.join("; ")),
                Step::Backup => format!("write network.config/cluster as YAML into {}", dir.display()),
                Step::ClearMigration => "Network.operator/cluster spec.migration: null; wait until the operator applied it".into(),
                Step::EnableMigration => match flow {
                    Flow::Seed => format!("annotate Network.operator/cluster {MIGRATION_ANNOTATION}=\"\""),
                    Flow::Live => String::new(),
                    Flow::TwoPhase | Flow::Rollback => format!(
                        "Network.operator/cluster spec.migration.networkType={target}{}{}; wait for status.migration",
                        if flow == Flow::Rollback { " (pools paused)" } else { " (pools stay unpaused)" },
                        if options.skip_feature.is_empty() { String::new() } else { format!(", features off: {}", options.skip_feature.join(", ")) }
                    ),
                },
                Step::PausePools => format!(
                    "pause {}{}",
                    names(&unpaused),
                    if paused.is_empty() { String::new() } else { format!(" (already paused: {})", names(&paused)) }
                ),
                Step::RolloutConfig => format!(
                    "the MCO renders configure-ovs.sh {target} and rolls it out (drain, reboot) onto {}: watched with counts and ETA until every pool is Updated",
                    names(&pools.iter().collect::<Vec<_>>())
                ),
                Step::SetNetworkType if flow == Flow::Live => format!(
                    "one patch of network.config/cluster: annotation {}=\"\" and spec.networkType: {} → {target}; the network operator drives spec.migration {{mode: Live}} itself",
                    fleetboot_core::migrate::live::ANNOTATION,
                    snapshot.spec_network_type
                ),
                Step::SetNetworkType => format!("network.config/cluster spec.networkType: {} → {target}", snapshot.spec_network_type),
                Step::MtuAndPort => match &default_network {
                    None => "skipped (no --mtu, --geneve-port, --vxlan-port, internal subnets or gateway options)".into(),
                    Some(merged) => format!("Network.operator/cluster spec.defaultNetwork += {merged}"),
                },
                Step::WaitMultus => "wait for openshift-multus/multus to roll out".into(),
                Step::RebootNodes => {
                    let concurrency = state.reboot_concurrency.or(options.reboot_concurrency);
                    let how = match concurrency {
                        None => format!(
                            "reboot all {} nodes at once (the document's way; --reboot-concurrency N to limit)",
                            snapshot.nodes.len()
                        ),
                        Some(n) => format!("reboot {} nodes, {n} at a time, control plane last", snapshot.nodes.len()),
                    };
                    let wait = humantime::format_duration(reboot_timeout).to_string();
                    format!("{how}; {}", fleetboot_core::limits::describe_rule(true, concurrency.is_some(), true, &wait))
                }
                Step::ResumePools => format!(
                    "once every node is proven back{}: unpause {}",
                    if flow == Flow::Rollback { " and multus rolled out" } else { "" },
                    names(&unpaused)
                ),
                Step::WaitRollout if flow == Flow::Live => format!(
                    "watch the NetworkTypeMigration* conditions and every pool until the operator reports the migration completed; prove each node rebooted {} times by the MCO (new boot IDs), Ready after each",
                    fleetboot_core::migrate::live::EXPECTED_REBOOTS
                ),
                Step::WaitRollout => match rollback::rollout_marker(flow, &target) {
                    Some(marker) => format!("watch the MCO roll {marker} onto every node of those pools, to the end"),
                    None => "watch the MCO roll the new config onto every node".into(),
                },
                Step::Verify => format!(
                    "machine config state, rendered config, status.networkType, Ready nodes, pods in error (not those failing before), ClusterOperators, the network plugin on every node{}",
                    if options.reboot_error_nodes {
                        "; --reboot-error-nodes: their nodes rebooted at the migration's concurrency under the full rule (no exception here: every node of the cluster that is unavailable counts, the control plane one at a time, each other master Ready and etcd healthy)"
                    } else {
                        ""
                    }
                ),
                Step::Cleanup => format!(
                    "only with --cleanup after verify passed: {}, delete {}",
                    rollback::cleanup_words(flow, &target),
                    old_namespace(&target)
                ),
            };
            PlannedStep { step, number: flow.number(step), done: state.is_done(step), change: what }
        })
        .collect();
    // A rollback's plan quotes what the release's documentation says about when it is allowed.
    let reason = if target == "OpenShiftSDN" {
        format!("{reason}; {}", fleetboot_core::migrate::rollback_allowed(version))
    } else {
        reason.to_owned()
    };
    Ok(MigrationPlan { source: source_type(&target).to_owned(), target, version: version.to_owned(), flow, reason, steps })
}
