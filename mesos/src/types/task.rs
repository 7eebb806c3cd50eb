//! What a framework launches: `TaskInfo`, `CommandInfo`, `ExecutorInfo` and friends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{DurationInfo, Environment, Labels, Secret};
use super::ids::{AgentId, ExecutorId, FrameworkId, TaskId};
use super::resource::{Resource, Scalar};
use super::wire::{
    Bytes, lenient, lenient_default_true, lenient_opt, mesos_enum, null_default, ser_f64,
};

/// `CommandInfo.URI`: something the fetcher downloads into the sandbox.
/// `extract` has a proto default (true) and is always printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Uri {
    /// The URI (required).
    pub value: String,
    /// chmod +x after fetching (disables extraction).
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub executable: Option<bool>,
    /// Extract archives (default true).
    #[serde(deserialize_with = "lenient_default_true")]
    pub extract: bool,
    /// Use the fetcher cache.
    #[serde(
        deserialize_with = "lenient_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache: Option<bool>,
    /// Local name, relative to the sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
}

impl Default for Uri {
    fn default() -> Self {
        Uri {
            value: String::new(),
            executable: None,
            extract: true,
            cache: None,
            output_file: None,
        }
    }
}

impl Uri {
    /// A URI with default options (extract archives).
    pub fn new(value: impl Into<String>) -> Self {
        Uri {
            value: value.into(),
            ..Uri::default()
        }
    }
}

/// `CommandInfo`: what the command executor runs. `shell` defaults to true and is
/// always printed. With `shell:true`, `value` runs under `sh -c`; with `shell:false`,
/// `value` is exec'd with argv = `arguments` verbatim (so `arguments[0]` is argv\[0\]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandInfo {
    /// Files fetched before launch.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub uris: Vec<Uri>,
    /// Extra environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Run `value` through `sh -c` (default true).
    #[serde(deserialize_with = "lenient_default_true")]
    pub shell: bool,
    /// The shell command or the executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// argv for `shell:false`.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arguments: Vec<String>,
    /// Run as this user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Default for CommandInfo {
    fn default() -> Self {
        CommandInfo {
            uris: Vec::new(),
            environment: None,
            shell: true,
            value: None,
            arguments: Vec::new(),
            user: None,
        }
    }
}

impl CommandInfo {
    /// A shell command (`sh -c <command>`).
    pub fn shell(command: impl Into<String>) -> Self {
        CommandInfo {
            value: Some(command.into()),
            ..CommandInfo::default()
        }
    }

    /// An exec'd command: `value` is the program, `arguments` the full argv
    /// (include argv\[0\] yourself).
    pub fn exec(
        program: impl Into<String>,
        argv: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        CommandInfo {
            shell: false,
            value: Some(program.into()),
            arguments: argv.into_iter().map(Into::into).collect(),
            ..CommandInfo::default()
        }
    }
}

mesos_enum!(
    /// `ExecutorInfo.Type`.
    ExecutorType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Mesos' default executor (task groups).
        Default = "DEFAULT",
        /// A framework-provided executor.
        Custom = "CUSTOM",
    }
);

/// `ExecutorInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutorInfo {
    /// DEFAULT or CUSTOM.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<ExecutorType>,
    /// Executor id (required).
    pub executor_id: ExecutorId,
    /// Owning framework.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<FrameworkId>,
    /// Command (CUSTOM executors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// Container settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// Executor resources.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<Resource>,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated source tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Opaque data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Bytes>,
    /// Service discovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryInfo>,
    /// Grace period on shutdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_period: Option<DurationInfo>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// `KillPolicy`: how long between SIGTERM and SIGKILL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KillPolicy {
    /// Grace period (Mesos default 3 s for command tasks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationInfo>,
}

impl KillPolicy {
    /// A policy with this grace period.
    pub fn grace(d: std::time::Duration) -> Self {
        KillPolicy {
            grace_period: Some(d.into()),
        }
    }
}

mesos_enum!(
    /// `HealthCheck.Type`.
    HealthCheckType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// Run a command.
        Command = "COMMAND",
        /// HTTP GET.
        Http = "HTTP",
        /// TCP connect.
        Tcp = "TCP",
    }
);

mesos_enum!(
    /// `NetworkInfo.Protocol`.
    Protocol {
        /// IPv4 (the default).
        IPv4 = "IPv4",
        /// IPv6.
        IPv6 = "IPv6",
    }
);

/// `HealthCheck.HTTPCheckInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpCheckInfo {
    /// IP protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// `http` or `https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Port to probe.
    #[serde(deserialize_with = "lenient")]
    pub port: u32,
    /// Path to GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Accepted status codes.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub statuses: Vec<u32>,
}

/// `HealthCheck.TCPCheckInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TcpCheckInfo {
    /// IP protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Port to connect to.
    #[serde(deserialize_with = "lenient")]
    pub port: u32,
}

/// `HealthCheck` (basic). Timings have proto defaults and are always printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    /// Delay before the first check (default 15 s).
    #[serde(deserialize_with = "lenient", serialize_with = "ser_f64")]
    pub delay_seconds: f64,
    /// Interval between checks (default 10 s).
    #[serde(deserialize_with = "lenient", serialize_with = "ser_f64")]
    pub interval_seconds: f64,
    /// Timeout of one check (default 20 s).
    #[serde(deserialize_with = "lenient", serialize_with = "ser_f64")]
    pub timeout_seconds: f64,
    /// Failures before the task is killed (default 3).
    #[serde(deserialize_with = "lenient")]
    pub consecutive_failures: u32,
    /// Failures ignored after start (default 10 s).
    #[serde(deserialize_with = "lenient", serialize_with = "ser_f64")]
    pub grace_period_seconds: f64,
    /// COMMAND, HTTP or TCP.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<HealthCheckType>,
    /// For COMMAND checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// For HTTP checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheckInfo>,
    /// For TCP checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheckInfo>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            delay_seconds: 15.0,
            interval_seconds: 10.0,
            timeout_seconds: 20.0,
            consecutive_failures: 3,
            grace_period_seconds: 10.0,
            r#type: None,
            command: None,
            http: None,
            tcp: None,
        }
    }
}

mesos_enum!(
    /// `DiscoveryInfo.Visibility`.
    Visibility {
        /// Visible to the framework only.
        Framework = "FRAMEWORK",
        /// Visible within the cluster.
        Cluster = "CLUSTER",
        /// Visible externally.
        External = "EXTERNAL",
    }
);

/// `Port` in `DiscoveryInfo.ports`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Port {
    /// Port number.
    #[serde(deserialize_with = "lenient")]
    pub number: u32,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `tcp`/`udp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Visibility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// `Ports`: `{"ports":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ports {
    /// The ports.
    #[serde(deserialize_with = "null_default")]
    pub ports: Vec<Port>,
}

/// `DiscoveryInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryInfo {
    /// Visibility (required).
    pub visibility: Visibility,
    /// Service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Environment name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Ports>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// `NetworkInfo.IPAddress`. `protocol` defaults to IPv4 and is always printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpAddress {
    /// IPv4 (default) or IPv6.
    pub protocol: Protocol,
    /// The address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

/// `NetworkInfo` (as reported in `ContainerStatus` or requested in `ContainerInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkInfo {
    /// Addresses.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_addresses: Vec<IpAddress>,
    /// Network name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Groups.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Port mappings, kept as raw JSON.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<serde_json::Value>,
}

mesos_enum!(
    /// `ContainerInfo.Type`.
    ContainerType {
        /// Docker containerizer.
        Docker = "DOCKER",
        /// Mesos containerizer.
        Mesos = "MESOS",
    }
);

mesos_enum!(
    /// `Volume.Mode`.
    VolumeMode {
        /// Read-write.
        Rw = "RW",
        /// Read-only.
        Ro = "RO",
    }
);

mesos_enum!(
    /// `Volume.Source.Type`.
    VolumeSourceType {
        /// `UNKNOWN`.
        Unknown = "UNKNOWN",
        /// A Docker volume driver's volume.
        DockerVolume = "DOCKER_VOLUME",
        /// A path on the host.
        HostPath = "HOST_PATH",
        /// A path in this or the parent container's sandbox.
        SandboxPath = "SANDBOX_PATH",
        /// A file holding a secret (the agent's `volume/secret` isolator).
        Secret = "SECRET",
        /// A CSI volume.
        CsiVolume = "CSI_VOLUME",
    }
);

/// `Volume.Source`. Only `secret` is typed; the other sources pass through as raw JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeSource {
    /// Which of the fields below is set.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<VolumeSourceType>,
    /// For `DOCKER_VOLUME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_volume: Option<serde_json::Value>,
    /// For `HOST_PATH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<serde_json::Value>,
    /// For `SANDBOX_PATH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_path: Option<serde_json::Value>,
    /// For `SECRET`: the secret written to the file at `container_path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// For `CSI_VOLUME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csi_volume: Option<serde_json::Value>,
}

/// `Volume`: something mounted into a container. `mode` and `container_path` are
/// required; a relative `container_path` is relative to the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Volume {
    /// `RW` or `RO`.
    pub mode: VolumeMode,
    /// Where the volume appears in the container.
    pub container_path: String,
    /// Legacy host path (without `source`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// Image volume, kept as raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<serde_json::Value>,
    /// Where the volume comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<VolumeSource>,
}

impl Volume {
    /// A `SECRET` volume: `secret` as a file at `container_path` (relative: in the
    /// sandbox), read-only.
    pub fn secret_file(container_path: impl Into<String>, secret: Secret) -> Self {
        Volume {
            mode: VolumeMode::Ro,
            container_path: container_path.into(),
            host_path: None,
            image: None,
            source: Some(VolumeSource {
                r#type: Some(VolumeSourceType::Secret),
                secret: Some(secret),
                ..VolumeSource::default()
            }),
        }
    }
}

/// `ContainerInfo`. The rarely used deep structures (docker, images, linux) are kept
/// as raw JSON so they pass through unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerInfo {
    /// DOCKER or MESOS (required).
    #[serde(rename = "type")]
    pub r#type: ContainerType,
    /// Volumes.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volumes: Vec<Volume>,
    /// Container hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Docker settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<serde_json::Value>,
    /// Mesos containerizer settings (image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesos: Option<serde_json::Value>,
    /// Networks to join.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub network_infos: Vec<NetworkInfo>,
    /// Linux settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_info: Option<serde_json::Value>,
    /// rlimits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimit_info: Option<serde_json::Value>,
    /// TTY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty_info: Option<serde_json::Value>,
}

/// `TaskInfo`: one task to launch. Needs exactly one of `command`/`executor`,
/// non-empty `resources` and the offer's `agent_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskInfo {
    /// Human-readable name.
    pub name: String,
    /// Framework-chosen id.
    pub task_id: TaskId,
    /// Agent of the offer it is launched on.
    pub agent_id: AgentId,
    /// Resources used.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<Resource>,
    /// Custom executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorInfo>,
    /// Command (runs under the command executor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// Container settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// Health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Generic check, kept as raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<serde_json::Value>,
    /// Kill policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    /// Opaque data for the executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Bytes>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    /// Service discovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryInfo>,
    /// Kill the task after this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_time: Option<DurationInfo>,
    /// Resource limits (name → scalar).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub limits: BTreeMap<String, Scalar>,
}

/// `TaskGroupInfo`: `{"tasks":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskGroupInfo {
    /// The tasks, launched atomically.
    #[serde(deserialize_with = "null_default")]
    pub tasks: Vec<TaskInfo>,
}
