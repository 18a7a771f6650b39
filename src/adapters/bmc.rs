//! The BMC inventory (config `[[bmc]]` entries, the cluster's metal3 BareMetalHosts and their
//! Secrets) and power through it: one operation per BMC at a time, a global rate, a session
//! opened and closed around each operation.
//!
//! One file, past 500 lines: the inventory and the power it gives are read together (which BMC, with which secret).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use crate::adapters::config::{BmcEntry, RedfishConfig};
use crate::adapters::redfish::{Bmc, BmcTarget, BmcTls, RedfishError, RedfishSettings, RestartKind, Secret, SystemState};
use fleetboot_core::hosts::Host;
use fleetboot_core::nodes::NodeInfo;

#[derive(Debug, thiserror::Error)]
pub enum BmcSetupError {
    #[error("BMC of {node}: {source}")]
    Credentials {
        node: String,
        #[source]
        source: CredentialError,
    },
    #[error("[[bmc]] entry for {0:?} matches no host of this run")]
    UnknownNode(String),
    #[error("failed to list BareMetalHosts: {0}")]
    Api(String),
    #[error("node {node} matches more than one BareMetalHost: {hosts}; fix or remove one (or set [[bmc]] for the node)")]
    Ambiguous { node: String, hosts: String },
}

/// Why a BMC's credentials could not be had. None of these carries the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("password file {}: {source}", path.display())]
    PasswordFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("password file {} is readable by group or others (mode {mode:03o}); chmod 600 it", path.display())]
    PasswordFileExposed { path: std::path::PathBuf, mode: u32 },
    #[error("password file {} is empty", path.display())]
    PasswordFileEmpty { path: std::path::PathBuf },
    #[error("environment variable {var} is not set")]
    EnvUnset { var: String },
    #[error("no password: set password_file, password_env or password_secret")]
    NoPasswordSource,
    #[error("no username: set username in [[bmc]] or [redfish]")]
    NoUsername,
    #[error("password_secret {reference:?} is not namespace/name")]
    BadSecretReference { reference: String },
    #[error("password_secret needs a cluster (--kubeconfig)")]
    SecretNeedsCluster,
    #[error("Secret {namespace}/{name}: {source}")]
    SecretUnreadable {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("Secret {namespace}/{name}: key {key} is unreadable ({why})")]
    SecretKey { namespace: String, name: String, key: &'static str, why: &'static str },
    #[error("Secret {namespace}/{name} has no password key (or an empty one)")]
    SecretWithoutPassword { namespace: String, name: String },
}

/// Turns a metal3 `spec.bmc.address` into the Redfish URL to use, or says why fleetboot
/// cannot use it. Pure.
fn bmh_address_to_url(address: &str) -> Result<String, String> {
    let (scheme, rest) = address.split_once("://").ok_or_else(|| format!("{address:?} has no scheme"))?;
    let (driver, transport) = match scheme.split_once('+') {
        Some((driver, transport)) => (driver, transport),
        None => (scheme, "https"),
    };
    let redfish =
        matches!(driver, "redfish" | "redfish-virtualmedia" | "idrac-redfish" | "idrac-virtualmedia" | "ilo5-redfish" | "redfish-uefihttp");
    if !redfish {
        return Err(format!("{address} uses {driver}, which fleetboot cannot drive (Redfish only)"));
    }
    if !matches!(transport, "https" | "http") {
        return Err(format!("{address}: unknown transport {transport:?}"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{address} names no host"));
    }
    Ok(format!("{transport}://{authority}{path}"))
}

/// Which node a BareMetalHost provisions: the node's providerID names it, or its consumer
/// Machine is the node's, or it has the node's name (the first such node, in the nodes' order).
/// Indexed once: a bare-metal cluster of 10,000 nodes has as many BareMetalHosts, and a scan of
/// the nodes for each was 10⁸ comparisons before the first reboot. Pure.
pub struct BmhIndex<'a> {
    by_provider: HashMap<&'a str, &'a NodeInfo>,
    by_machine: HashMap<&'a str, &'a NodeInfo>,
    by_name: HashMap<&'a str, &'a NodeInfo>,
}

impl<'a> BmhIndex<'a> {
    pub fn new(nodes: &'a [NodeInfo]) -> BmhIndex<'a> {
        let mut index = BmhIndex { by_provider: HashMap::new(), by_machine: HashMap::new(), by_name: HashMap::new() };
        for node in nodes {
            // `baremetalhost:///NAMESPACE/NAME/UID` (or without the UID): keyed `NAMESPACE/NAME`.
            if let Some(rest) = node.provider_id.as_deref().and_then(|p| p.strip_prefix("baremetalhost:///"))
                && let Some((namespace, tail)) = rest.split_once('/')
            {
                let name = tail.split_once('/').map_or(tail, |(name, _)| name);
                let key = &rest[..namespace.len() + 1 + name.len()];
                index.by_provider.entry(key).or_insert(node);
            }
            if let Some(machine) = node.machine.as_deref() {
                index.by_machine.entry(machine).or_insert(node);
            }
            index.by_name.entry(node.name.as_str()).or_insert(node);
        }
        index
    }

    pub fn node_of(&self, namespace: &str, name: &str, consumer: Option<&str>) -> Option<&'a NodeInfo> {
        self.by_provider
            .get(format!("{namespace}/{name}").as_str())
            .or_else(|| consumer.and_then(|machine| self.by_machine.get(machine)))
            .or_else(|| self.by_name.get(name))
            .copied()
    }
}

/// Reads a password file, refusing one that others can read. A leading `~/` is the home
/// directory, wherever the path came from (config, flag in quotes, BareMetalHost defaults).
pub fn read_password_file(path: &Path) -> Result<Secret, CredentialError> {
    use std::os::unix::fs::PermissionsExt;
    let expanded = path.to_str().map(|p| crate::adapters::config::expand_home(p, crate::adapters::system::home_dir().as_deref()));
    let path = expanded.as_deref().unwrap_or(path);
    let unreadable = |source| CredentialError::PasswordFile { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialError::PasswordFileExposed { path: path.to_owned(), mode });
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(CredentialError::PasswordFileEmpty { path: path.to_owned() });
    }
    Ok(Secret::new(password))
}

fn secret_resource() -> ApiResource {
    crate::adapters::kube::api_resource("", "v1", "Secret", "secrets")
}

fn bmh_resource() -> ApiResource {
    crate::adapters::kube::api_resource("metal3.io", "v1alpha1", "BareMetalHost", "baremetalhosts")
}

/// `username` and `password` of a Secret, decoded.
async fn secret_credentials(client: &kube::Client, namespace: &str, name: &str) -> Result<(Option<String>, Secret), CredentialError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &secret_resource());
    let secret = api.get(name).await.map_err(|source| CredentialError::SecretUnreadable {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source: Box::new(source),
    })?;
    credentials_of(&secret, namespace, name)
}

fn credentials_of(secret: &DynamicObject, namespace: &str, name: &str) -> Result<(Option<String>, Secret), CredentialError> {
    let field = |key: &'static str| -> Result<Option<String>, CredentialError> {
        let Some(raw) = secret.data.pointer(&format!("/data/{key}")) else { return Ok(None) };
        let unreadable = |why| CredentialError::SecretKey { namespace: namespace.to_owned(), name: name.to_owned(), key, why };
        let encoded = raw.as_str().ok_or_else(|| unreadable("not a string"))?;
        let bytes = data_encoding::BASE64.decode(encoded.trim().as_bytes()).map_err(|_| unreadable("not base64"))?;
        let text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text"))?;
        Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
    };
    let password = field("password")?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| CredentialError::SecretWithoutPassword { namespace: namespace.to_owned(), name: name.to_owned() })?;
    Ok((field("username")?.filter(|u| !u.is_empty()), Secret::new(password)))
}

/// The BMCs of a run's nodes, and what could not be used (reported, never skipped silently).
#[derive(Default)]
pub struct BmcInventory {
    pub targets: BTreeMap<String, BmcTarget>,
    pub problems: Vec<String>,
}

impl BmcInventory {
    /// `[[bmc]]` entries first (matched by node name or address), then, for cluster nodes, the
    /// BareMetalHosts. Credentials are read here, before any node is touched.
    pub async fn build(
        config: &RedfishConfig,
        entries: &[BmcEntry],
        hosts: &[Host],
        cluster: Option<(&kube::Client, &[NodeInfo])>,
    ) -> Result<BmcInventory, BmcSetupError> {
        let mut inventory = BmcInventory::default();
        let default_tls = if config.insecure { BmcTls::Insecure } else { BmcTls::Verify { ca_file: config.ca_file.clone() } };
        for entry in entries {
            let host = hosts
                .iter()
                .find(|h| h.name == entry.node || h.address == entry.node)
                .ok_or_else(|| BmcSetupError::UnknownNode(entry.node.clone()))?;
            let fail = |source| BmcSetupError::Credentials { node: host.name.clone(), source };
            let (secret_user, password) = match (&entry.password_file, &entry.password_env, &entry.password_secret) {
                (Some(file), _, _) => (None, read_password_file(Path::new(file)).map_err(fail)?),
                (_, Some(var), _) => (None, env_password(var).map_err(fail)?),
                (_, _, Some(reference)) => {
                    let (namespace, name) = reference
                        .split_once('/')
                        .ok_or_else(|| fail(CredentialError::BadSecretReference { reference: reference.clone() }))?;
                    let (client, _) = cluster.ok_or_else(|| fail(CredentialError::SecretNeedsCluster))?;
                    secret_credentials(client, namespace, name).await.map_err(fail)?
                }
                (None, None, None) => (None, default_password(config).map_err(fail)?),
            };
            let username = entry
                .username
                .clone()
                .or(secret_user)
                .or_else(|| config.username.clone())
                .ok_or_else(|| fail(CredentialError::NoUsername))?;
            let tls = match (entry.insecure, &entry.ca_file) {
                (Some(true), _) => BmcTls::Insecure,
                (_, Some(ca)) => BmcTls::Verify {
                    ca_file: Some(crate::adapters::config::expand_home(ca, crate::adapters::system::home_dir().as_deref())),
                },
                _ => default_tls.clone(),
            };
            inventory
                .targets
                .insert(host.name.clone(), BmcTarget { node: host.name.clone(), url: entry.url.clone(), username, password, tls });
        }
        if let Some((client, nodes)) = cluster {
            // Only the run's nodes: their BareMetalHosts and Secrets, not the whole cluster's.
            let run: std::collections::HashSet<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            let wanted: Vec<NodeInfo> = nodes.iter().filter(|n| run.contains(n.name.as_str())).cloned().collect();
            inventory.add_bare_metal_hosts(client, &wanted, config, &default_tls).await?;
        }
        Ok(inventory)
    }

    /// The BareMetalHosts of `config.bmh_namespaces` (never another namespace's: they may
    /// belong to another cluster), matched to the run's nodes. Two BareMetalHosts for one node
    /// is an error naming both; a BareMetalHost without its credentials Secret gives its node no
    /// BMC (a problem), never the `[redfish]` default password.
    async fn add_bare_metal_hosts(
        &mut self,
        client: &kube::Client,
        nodes: &[NodeInfo],
        config: &RedfishConfig,
        default_tls: &BmcTls,
    ) -> Result<(), BmcSetupError> {
        let mut hosts = Vec::new();
        for namespace in &config.bmh_namespaces {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &bmh_resource());
            match api.list(&ListParams::default()).await {
                Ok(list) => hosts.extend(list.items),
                // Not a bare-metal IPI cluster: no BareMetalHost kind at all.
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
                Err(e) => return Err(BmcSetupError::Api(format!("namespace {namespace}: {e}"))),
            }
        }
        // Each run node's BareMetalHosts, to find ambiguity before anything is used.
        let mut by_node: BTreeMap<String, Vec<&DynamicObject>> = BTreeMap::new();
        let index = BmhIndex::new(nodes);
        for bmh in &hosts {
            let namespace = bmh.metadata.namespace.clone().unwrap_or_default();
            let name = bmh.metadata.name.clone().unwrap_or_default();
            let consumer = bmh
                .data
                .pointer("/spec/consumerRef")
                .and_then(|c| Some(format!("{}/{}", c["namespace"].as_str().unwrap_or(&namespace), c["name"].as_str()?)));
            if let Some(node) = index.node_of(&namespace, &name, consumer.as_deref()) {
                by_node.entry(node.name.clone()).or_default().push(bmh);
            }
        }
        let id = |bmh: &DynamicObject| {
            format!("{}/{}", bmh.metadata.namespace.as_deref().unwrap_or_default(), bmh.metadata.name.as_deref().unwrap_or_default())
        };
        for (node, matched) in &by_node {
            if matched.len() > 1 && !self.targets.contains_key(node) {
                return Err(BmcSetupError::Ambiguous {
                    node: node.clone(),
                    hosts: matched.iter().map(|b| id(b)).collect::<Vec<_>>().join(" and "),
                });
            }
        }
        let mut secrets: HashMap<String, Vec<DynamicObject>> = HashMap::new();
        for (node_name, matched) in by_node {
            let bmh = matched[0];
            if self.targets.contains_key(&node_name) {
                continue;
            }
            let namespace = bmh.metadata.namespace.clone().unwrap_or_default();
            let bmh_id = id(bmh);
            let address = bmh.data.pointer("/spec/bmc/address").and_then(Value::as_str).unwrap_or_default();
            // Stripped with a warning, not refused: the BareMetalHost is metal3's, not the user's
            // to edit for this run, and its credentials come from credentialsName anyway; the
            // user:pass@ part never reaches an error, the journal or a report.
            let (address, had_userinfo) = crate::adapters::redfish::strip_userinfo(address);
            if had_userinfo {
                self.problems.push(format!(
                    "node {node_name}: BareMetalHost {bmh_id}: spec.bmc.address carries user:pass@; ignored (credentials come from spec.bmc.credentialsName)"
                ));
            }
            let url = match bmh_address_to_url(&address) {
                Ok(url) => url,
                Err(problem) => {
                    self.problems.push(format!("node {node_name}: BareMetalHost {bmh_id}: {problem}"));
                    continue;
                }
            };
            let Some(secret) = bmh.data.pointer("/spec/bmc/credentialsName").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
                self.problems.push(format!(
                    "node {node_name}: BareMetalHost {bmh_id} names no credentials Secret (spec.bmc.credentialsName): \
                     no BMC for it (the [redfish] default password is never sent to a BareMetalHost's BMC)"
                ));
                continue;
            };
            if !secrets.contains_key(&namespace) {
                // One list per namespace instead of a GET per host.
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &secret_resource());
                let listed = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
                secrets.insert(namespace.clone(), listed);
            }
            let listed = secrets[&namespace].iter().find(|s| s.metadata.name.as_deref() == Some(secret));
            let found = match listed {
                Some(listed) => credentials_of(listed, &namespace, secret),
                None => secret_credentials(client, &namespace, secret).await,
            };
            let (username, password) = match found {
                Ok(pair) => pair,
                Err(problem) => {
                    self.problems.push(format!("node {node_name}: BareMetalHost {bmh_id}: {problem}"));
                    continue;
                }
            };
            let Some(username) = username.or_else(|| config.username.clone()) else {
                self.problems.push(format!("node {node_name}: no BMC username (Secret key username or [redfish] username)"));
                continue;
            };
            let insecure = bmh.data.pointer("/spec/bmc/disableCertificateVerification").and_then(Value::as_bool).unwrap_or(false);
            let tls = if insecure { BmcTls::Insecure } else { default_tls.clone() };
            self.targets.insert(node_name.clone(), BmcTarget { node: node_name, url, username, password, tls });
        }
        Ok(())
    }

    /// Every warning this inventory deserves, in one place for every command: BareMetalHosts
    /// it could not use, BMCs reached over plain `http://`, certificates not verified. `of`:
    /// only those of these nodes' BMCs (the nodes a command acts on); `None`: all.
    pub fn warnings(&self, of: Option<&[String]>) -> Vec<String> {
        let concerned = |node: &str| of.is_none_or(|nodes| nodes.iter().any(|n| n == node));
        let mut warnings = self.problems.clone();
        warnings.extend(self.targets.values().filter(|t| concerned(&t.node)).filter_map(plain_http_warning));
        for node in self.insecure_nodes().into_iter().filter(|n| concerned(n)) {
            warnings.push(format!("the BMC certificate of {node} is not verified (insecure): anyone on the path can read its password"));
        }
        warnings
    }

    /// BMCs whose certificate is not verified: each deserves a loud warning.
    pub fn insecure_nodes(&self) -> Vec<&str> {
        self.targets.values().filter(|t| t.tls == BmcTls::Insecure).map(|t| t.node.as_str()).collect()
    }
}

fn plain_http_warning(target: &BmcTarget) -> Option<String> {
    target.url.trim_start().to_ascii_lowercase().starts_with("http://").then(|| {
        format!(
            "the BMC of {} is reached over plain http:// ({}): its password and session token cross the network unencrypted; use https://",
            target.node, target.url
        )
    })
}

fn env_password(var: &str) -> Result<Secret, CredentialError> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        _ => Err(CredentialError::EnvUnset { var: var.to_owned() }),
    }
}

fn default_password(config: &RedfishConfig) -> Result<Secret, CredentialError> {
    match (&config.password_file, &config.password_env) {
        (Some(file), _) => read_password_file(file),
        (None, Some(var)) => env_password(var),
        (None, None) => Err(CredentialError::NoPasswordSource),
    }
}

/// Power through the inventory's BMCs: one operation per BMC at a time, a global rate, and a
/// session opened and closed around every operation.
pub struct RedfishPower {
    targets: BTreeMap<String, BmcTarget>,
    settings: RedfishSettings,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    limiter: Option<DefaultDirectRateLimiter>,
    pub graceful_timeout: Duration,
}

impl RedfishPower {
    /// The caller reports the inventory's [`BmcInventory::warnings`] first: an
    /// adapter never prints.
    pub fn new(inventory: BmcInventory, config: &RedfishConfig) -> RedfishPower {
        let limiter = config.rate.map(crate::adapters::config::limiter);
        RedfishPower {
            targets: inventory.targets,
            settings: config.settings,
            locks: Mutex::new(HashMap::new()),
            limiter,
            graceful_timeout: config.graceful_timeout,
        }
    }

    pub fn has(&self, node: &str) -> bool {
        self.targets.contains_key(node)
    }

    pub fn url_of(&self, node: &str) -> Option<&str> {
        self.targets.get(node).map(|t| t.url.as_str())
    }

    /// Waits for this BMC to be free and for a rate slot, then logs in.
    async fn open(&self, node: &str) -> Result<(tokio::sync::OwnedMutexGuard<()>, Bmc), RedfishError> {
        let target = self.targets.get(node).cloned().ok_or_else(|| RedfishError::NoBmc { node: node.to_owned() })?;
        let (origin, system) = target.split_url()?;
        let key = format!("{origin}{}", system.unwrap_or_default());
        let lock = self.locks.lock().unwrap().entry(key).or_default().clone();
        let guard = lock.lock_owned().await;
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let bmc = Bmc::new(target, self.settings)?;
        bmc.login().await?;
        Ok((guard, bmc))
    }

    /// Whether the node's BMC answers (its service root; no login, no lock).
    pub async fn probe(&self, node: &str) -> Result<(), RedfishError> {
        let target = self.targets.get(node).cloned().ok_or_else(|| RedfishError::NoBmc { node: node.to_owned() })?;
        let settings = RedfishSettings { request_timeout: self.settings.request_timeout.min(Duration::from_secs(5)), ..self.settings };
        Bmc::new(target, settings)?.probe().await
    }

    /// Restarts the node's system. A system that is powered off is switched on only with
    /// `power_on`; otherwise [`RedfishError::PoweredOff`], nothing sent.
    pub async fn restart(&self, node: &str, kind: RestartKind, power_on: bool) -> Result<String, RedfishError> {
        let (_guard, bmc) = self.open(node).await.map_err(RedfishError::before_reset)?;
        let result = bmc.restart(kind, power_on).await;
        bmc.logout().await;
        result
    }

    pub async fn status(&self, node: &str) -> Result<SystemState, RedfishError> {
        let (_guard, bmc) = self.open(node).await?;
        let result = bmc.system().await;
        bmc.logout().await;
        result
    }

    /// One named reset (On, ForceOff, ...); with `wait_for`, until PowerState shows it.
    pub async fn power(&self, node: &str, reset_type: &str, wait_for: Option<&str>) -> Result<SystemState, RedfishError> {
        let (_guard, bmc) = self.open(node).await.map_err(RedfishError::before_reset)?;
        let mut result = bmc.power(reset_type).await;
        match (&result, wait_for) {
            (Ok(_), Some(state)) => result = bmc.wait_power_state(state).await,
            // The reset may have been carried out (its answer lost, a 5xx after it took
            // effect, its task failed): the power state settles it, never a second request.
            (Err(e), Some(state)) if e.reset_may_have_happened() => {
                if let Ok(system) = bmc.wait_power_state(state).await {
                    result = Ok(system);
                }
            }
            _ => {}
        }
        bmc.logout().await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_metal_host_addresses_map_to_redfish_urls() {
        assert_eq!(bmh_address_to_url("redfish://198.51.100.3/redfish/v1/Systems/1").unwrap(), "https://198.51.100.3/redfish/v1/Systems/1");
        assert_eq!(bmh_address_to_url("redfish+http://bmc:8000/redfish/v1/Systems/x").unwrap(), "http://bmc:8000/redfish/v1/Systems/x");
        assert_eq!(
            bmh_address_to_url("redfish-virtualmedia+https://bmc/redfish/v1/Systems/1").unwrap(),
            "https://bmc/redfish/v1/Systems/1"
        );
        assert_eq!(
            bmh_address_to_url("idrac-virtualmedia://idrac/redfish/v1/Systems/System.Embedded.1").unwrap(),
            "https://idrac/redfish/v1/Systems/System.Embedded.1"
        );
        assert_eq!(bmh_address_to_url("idrac-redfish://idrac").unwrap(), "https://idrac");
        let ipmi = bmh_address_to_url("ipmi://198.51.100.3:623").unwrap_err();
        assert!(ipmi.contains("ipmi") && ipmi.contains("Redfish only"), "{ipmi}");
        assert!(bmh_address_to_url("198.51.100.3").is_err());
        assert!(bmh_address_to_url("redfish+ftp://x").is_err());
    }

    fn node(name: &str, machine: Option<&str>, provider: Option<&str>) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            roles: vec![],
            addresses: vec![],
            address_type: "InternalIP".into(),
            ready: "True".into(),
            boot_id: String::new(),
            pool: None,
            kubelet_version: String::new(),
            unschedulable: false,
            labels: Default::default(),
            bmc: None,
            bmc_status: None,
            kube_exec: None,
            machine: machine.map(str::to_owned),
            provider_id: provider.map(str::to_owned),
            all_addresses: Vec::new(),
        }
    }

    #[test]
    fn bare_metal_hosts_find_their_node_by_provider_id_machine_or_name() {
        let nodes = [
            node("a", None, Some("baremetalhost:///openshift-machine-api/host-a/1234")),
            node("b", Some("openshift-machine-api/machine-b"), None),
            node("c", None, None),
        ];
        let index = BmhIndex::new(&nodes);
        assert_eq!(index.node_of("openshift-machine-api", "host-a", None).unwrap().name, "a");
        assert_eq!(index.node_of("openshift-machine-api", "host-b", Some("openshift-machine-api/machine-b")).unwrap().name, "b");
        assert_eq!(index.node_of("openshift-machine-api", "c", None).unwrap().name, "c");
        assert!(index.node_of("openshift-machine-api", "host-x", Some("openshift-machine-api/other")).is_none());
        // The UID's slash ends the name: `host-a` is not `host-a/1234`, nor a prefix of `host-ab`.
        assert!(index.node_of("openshift-machine-api", "host", None).is_none());
        let uidless = [node("d", None, Some("baremetalhost:///openshift-machine-api/host-d"))];
        assert_eq!(BmhIndex::new(&uidless).node_of("openshift-machine-api", "host-d", None).unwrap().name, "d");
    }

    #[test]
    fn password_files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_password_file(&path).unwrap_err().to_string();
        assert!(err.contains("mode 644") && err.contains("chmod 600") && !err.contains("s3cret"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password_file(&path).unwrap().expose(), "s3cret");
    }
}
