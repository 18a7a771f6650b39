//! The cluster API adapter: where the cluster is (kubeconfig, context), discovery of its nodes and
//! pools, one Node watch per run, the run's Lease, and the drainer. Split by concern:
//! [`discover`], [`watch`], [`lease`], [`drain`].

use std::path::PathBuf;

use fleetboot_core::journal::ClusterIdentity;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;

pub mod access;
pub mod debug_pod;
pub mod discover;
pub mod drain;
pub mod exec;
pub mod gates;
pub mod journal_store;
pub mod lease;
pub mod resend;
#[cfg(test)]
pub(crate) mod test_server;
pub mod watch;
pub mod world;

pub use discover::{discover, discover_with_pools, machine_config_pools, node_info, pool_selectors};
pub use drain::{Drainer, Patched};
pub use lease::{
    LEASE_NAME, LeaseApi, LeaseLock, LeaseLost, MIGRATION_LEASE_NAME, Released, holder_is_dead_process, holder_is_dead_run, live_holder,
    process_alive, read_lease, refuse_if_held, release_lease, run_lease_name, this_process_identity,
};
pub use watch::NodeWatch;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("failed to load kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig could be loaded (kube's error kept) and this process runs in no pod.
    #[error("no cluster configured: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config ({0})")]
    NoConfig(#[source] kube::config::KubeconfigError),
    /// A request to the API server failed, or no client of it could be built (kube's TLS or
    /// proxy setup refused the configuration): kube's error kept whole, as the source.
    #[error("failed to reach the cluster API at {server}: {source}")]
    Api {
        server: String,
        #[source]
        source: kube::Error,
    },
    /// A request about a Lease failed: what fleetboot was doing with which Lease, on which API
    /// server, kube's error kept whole as the source (a 403 reads as the API said it).
    #[error("failed to {doing} the lease {lease} through the cluster API at {server}: {}", answer_words(.source))]
    Lease {
        doing: LeaseUse,
        /// `namespace/name`. Both strings boxed: with kube's error beside them, `String`s made
        /// every error that carries a ClusterError larger than clippy's bound.
        lease: Box<str>,
        server: Box<str>,
        #[source]
        source: kube::Error,
    },
    #[error("bad selector {selector:?}: {reason}")]
    Selector { selector: String, reason: String },
    #[error("another fleetboot run holds the lease {namespace}/{name}: {holder}; wait for it, or take it over with --break-lock")]
    Locked { holder: String, namespace: String, name: String },
    /// A reboot run and a migration exclude each other: the other one's lease is held.
    #[error("{other} holds the lease {namespace}/{name}: {holder}; {hint}")]
    Busy { other: &'static str, holder: String, namespace: String, name: String, hint: &'static str },
    /// The writer of a journal in the cluster still renews its run's lease: a resume would fence it.
    #[error(
        "the run is still alive: {holder} holds its lease {namespace}/{name}, {renewed} (it lapses {lasts} after a renewal); \
         a resume now would stop that run mid-way: wait for it to end or stop it, or take it over with --break-lock"
    )]
    RunAlive { holder: String, namespace: String, name: String, renewed: String, lasts: String },
}

/// What a request about a Lease was for, as [`ClusterError::Lease`] says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseUse {
    Take,
    Release,
    Read,
}

impl std::fmt::Display for LeaseUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LeaseUse::Take => "take",
            LeaseUse::Release => "release",
            LeaseUse::Read => "read",
        })
    }
}

/// The API's own words for its answer (its status message, code and reason), or kube's error
/// where the API gave none: not kube's Display of an answer, which adds the Status's Debug form.
pub(crate) fn answer_words(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => format!("{} ({} {})", status.message, status.code, status.reason),
        other => other.to_string(),
    }
}

/// [`ClusterError::Api`] for the API server `server` names, for `map_err`.
pub(crate) fn api_error(server: impl Into<String>) -> impl Fn(kube::Error) -> ClusterError {
    let server = server.into();
    move |source| ClusterError::Api { server: server.clone(), source }
}

/// Where a pod's ServiceAccount credentials are mounted (`token`, `ca.crt`, `namespace`);
/// `FLEETBOOT_SERVICEACCOUNT_DIR` names another directory (tests run a pod's command as a
/// process).
pub fn service_account_dir() -> PathBuf {
    std::env::var_os("FLEETBOOT_SERVICEACCOUNT_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount"), PathBuf::from)
}

/// Whether this process runs in a pod: the API server's service in its environment and a
/// ServiceAccount token mounted, as client-go's `rest.InClusterConfig` requires.
pub fn in_pod() -> bool {
    std::env::var("KUBERNETES_SERVICE_HOST").is_ok_and(|h| !h.is_empty()) && service_account_dir().join("token").is_file()
}

/// The in-cluster configuration, as client-go's `rest.InClusterConfig`: the API server from
/// `KUBERNETES_SERVICE_HOST` and `_PORT`, the ServiceAccount's token (re-read as it rotates)
/// and CA from [`service_account_dir`].
fn in_cluster_config() -> Result<kube::Config, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let dir = service_account_dir();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set"));
    let (host, port) = (var("KUBERNETES_SERVICE_HOST")?, var("KUBERNETES_SERVICE_PORT")?);
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let url = format!("https://{host}:{port}").parse().map_err(|e| format!("https://{host}:{port}: {e}"))?;
    let mut config = kube::Config::new(url);
    let ca_file = dir.join("ca.crt");
    let pem = std::fs::read(&ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    let certificates: Vec<Vec<u8>> =
        CertificateDer::pem_slice_iter(&pem).map(|c| c.map(|c| c.to_vec())).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    config.root_cert = Some(certificates);
    config.auth_info.token_file = Some(dir.join("token").to_string_lossy().into_owned());
    if let Ok(namespace) = std::fs::read_to_string(dir.join("namespace")) {
        config.default_namespace = namespace.trim().to_owned();
    }
    Ok(config)
}

/// Where the cluster is, in kubectl's order of precedence.
#[derive(Clone, Debug, Default)]
pub struct ClusterTarget {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// A client for the cluster `target` names, as kubectl finds it, its server, and the name of the
/// kubeconfig context used (none in-cluster). Commands connect through [`ClusterConnection::open`].
async fn connect_named(
    target: &ClusterTarget,
    limit: &tower::limit::GlobalConcurrencyLimitLayer,
) -> Result<(Client, kube::Config, String, Option<String>), ClusterError> {
    let options = kube::config::KubeConfigOptions { context: target.context.clone(), ..Default::default() };
    let (config, context) = match &target.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|source| ClusterError::Kubeconfig { path: path.display().to_string(), source })?;
            let context = target.context.clone().or_else(|| kubeconfig.current_context.clone());
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|source| ClusterError::Kubeconfig { path: path.display().to_string(), source })?;
            (config, context)
        }
        // As kube's `Config::from_kubeconfig` does ($KUBECONFIG, ~/.kube/config), keeping the
        // context's name; then in-cluster.
        None => {
            let loaded = match kube::config::Kubeconfig::read() {
                Ok(kubeconfig) => {
                    let context = target.context.clone().or_else(|| kubeconfig.current_context.clone());
                    kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map(|config| (config, context))
                }
                Err(e) => Err(e),
            };
            match loaded {
                Ok(found) => found,
                Err(kubeconfig_error) => (in_cluster_config().map_err(|_| ClusterError::NoConfig(kubeconfig_error))?, None),
            }
        }
    };
    let server = config.cluster_url.to_string();
    // A read whose connection broke is sent again, as client-go does ([`resend`]).
    let client = resend::client(config.clone(), limit, resend::ClientOptions::RETRYING).map_err(api_error(&server))?;
    Ok((client, config, server, context))
}

/// A client of the same cluster as `config`'s that leaves every answer to its caller: kube's
/// client (the reads', [`resend::client`]) retries a 429, a 503 and a 504 itself, up to 15 times from 5 ms apart, where
/// client-go retries them only when the server asks for it (a `Retry-After` header,
/// k8s.io/client-go release-1.33 `rest/with_retry.go` `checkWait`). A budget's 429 to an
/// eviction carries none (k8s.io/kubernetes release-1.33
/// `pkg/registry/core/pod/storage/eviction.go`: `NewTooManyRequests(message, 0)`): `kubectl
/// drain` gets it at once and asks again 5 s later, as the drain does through this client.
fn without_client_retry(
    config: &kube::Config,
    server: &str,
    limit: &tower::limit::GlobalConcurrencyLimitLayer,
) -> Result<Client, ClusterError> {
    resend::client(config.clone(), limit, resend::ClientOptions::WITHOUT_RETRY).map_err(api_error(server))
}

/// A connected cluster: the one client a command uses for everything, and which cluster it is.
#[derive(Clone)]
pub struct ClusterConnection {
    pub client: Client,
    /// The same cluster without kube's own retries ([`without_client_retry`]): the drain's
    /// evictions, which keep `kubectl drain`'s cadence.
    pub evictions: Client,
    /// The same cluster through connections of its own, outside the bound both clients above
    /// share ([`resend::lease_client`]): the run's leases, whose renewals wait behind nothing.
    pub leases: Client,
    /// What the client was made from: a writer with a runtime of its own (the journal in the
    /// cluster) makes its own client from it.
    pub config: kube::Config,
    pub identity: ClusterIdentity,
}

impl ClusterConnection {
    /// Connects as kubectl would and asks the cluster who it is: a cluster that is configured
    /// but cannot be reached is an error here, before anything is touched.
    pub async fn open(target: &ClusterTarget) -> Result<ClusterConnection, ClusterError> {
        // One bound on the requests in flight for both clients: they share the API server.
        let limit = resend::in_flight_limit();
        let (client, config, server, context) = connect_named(target, &limit).await?;
        let cluster_id = cluster_id(&client, &server).await?;
        let evictions = without_client_retry(&config, &server, &limit)?;
        let leases = resend::lease_client(config.clone()).map_err(api_error(&server))?;
        Ok(ClusterConnection { client, evictions, leases, config, identity: ClusterIdentity { server, cluster_id, context } })
    }

    pub fn server(&self) -> &str {
        &self.identity.server
    }

    /// The leases through [`ClusterConnection::leases`], the client whose renewals wait behind
    /// nothing, naming this connection's API server in their errors.
    pub fn lease_api(&self) -> LeaseApi<'_> {
        LeaseApi { client: &self.leases, server: &self.identity.server }
    }
}

/// The ClusterVersion's `spec.clusterID`; `None` on a cluster without that kind (plain Kubernetes).
async fn cluster_id(client: &Client, server: &str) -> Result<Option<String>, ClusterError> {
    let versions = api_resource("config.openshift.io", "v1", "ClusterVersion", "clusterversions");
    match Api::<DynamicObject>::all_with(client.clone(), &versions).get_opt("version").await {
        Ok(version) => Ok(version.and_then(|v| v.data.pointer("/spec/clusterID").and_then(|id| id.as_str()).map(str::to_owned))),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(source) => Err(ClusterError::Api { server: server.to_owned(), source }),
    }
}

/// A kind the code has no generated type for (OpenShift's, metal3's), for `DynamicObject` APIs.
pub fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let api_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    ApiResource { group: group.into(), version: version.into(), api_version, kind: kind.into(), plural: plural.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// A client kube refuses to build (its CA is no certificate) is an error that names the
    /// server and keeps kube's own error as its source, for whoever walks the chain.
    #[tokio::test]
    async fn a_client_kube_cannot_build_keeps_kubes_error() {
        let server = "https://127.0.0.1:6443/";
        let mut config = kube::Config::new(server.parse().unwrap());
        config.root_cert = Some(vec![b"not a certificate".to_vec()]);
        let error =
            without_client_retry(&config, server, &resend::in_flight_limit()).err().expect("a CA that is no certificate is refused");
        let text = error.to_string();
        let source = error.source().and_then(|s| s.downcast_ref::<kube::Error>()).expect("kube's error is the source");
        assert_eq!(text, format!("failed to reach the cluster API at {server}: {source}"));
    }

    /// A kubeconfig that cannot be loaded is an error that names the file and keeps kube's own
    /// error as its source.
    #[tokio::test]
    async fn a_kubeconfig_that_cannot_be_loaded_keeps_kubes_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, "clusters: [unclosed\n").unwrap();
        let target = ClusterTarget { kubeconfig: Some(path.clone()), context: None };
        let error = ClusterConnection::open(&target).await.err().expect("a kubeconfig that is no YAML is refused");
        let text = error.to_string();
        let source = error.source().and_then(|s| s.downcast_ref::<kube::config::KubeconfigError>()).expect("kube's error is the source");
        assert_eq!(text, format!("failed to load kubeconfig {}: {source}", path.display()));
    }
}
