//! Turning a wanted instance into a Mesos `TaskInfo` that fits an offer.

use std::sync::Arc;

use concord_schemas::dataplane::{DATAPLANE_SECRET_FILE_ENV, DATAPLANE_SECRET_PATH};
use concord_schemas::{Delivery, OperatorSpec};
use mesos_v1::Range;
use mesos_v1::resources::{ranges_total, scalar_total};
use mesos_v1::{
    AgentId, CommandInfo, ContainerInfo, ContainerType, DurationInfo, Environment, KillPolicy,
    Labels, Offer, Resource, Secret, TaskId, TaskInfo, Uri, Variable, Volume,
};

use super::identity::TaskName;

/// How every task is started.
#[derive(Debug, Clone)]
pub struct LaunchSettings {
    /// Path of `concord-executor` on the agents (when no URI is given).
    pub executor_path: String,
    /// URI Mesos fetches `concord-executor` from (real clusters); run as `./concord-executor`.
    pub executor_uri: Option<String>,
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    /// etcd TLS and user for the executors (paths of files on the agents).
    pub etcd_env: Vec<(String, String)>,
    /// Grace period between SIGTERM and SIGKILL.
    pub kill_grace: std::time::Duration,
    /// Fraction of source records every executor samples for tracing
    /// (`CONCORD_TRACE_SAMPLE_RATE`); `None` leaves the executor's default.
    pub trace_sample_rate: Option<f64>,
}

/// An instance waiting for an offer.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub namespace: String,
    pub topology: String,
    pub operator: Arc<OperatorSpec>,
    pub instance: u32,
    pub template_hash: String,
    pub delivery: Delivery,
}

impl LaunchRequest {
    /// Ports the task needs (see [`port_count`]).
    pub fn port_count(&self) -> usize {
        port_count(&self.operator)
    }
}

/// Ports a task of `op` needs: the executor's data and metrics ports plus named ones.
pub fn port_count(op: &OperatorSpec) -> usize {
    2 + op.resources.ports.len()
}

/// `cpus=…, mem=…MB, disk=…MB, ports=N` per instance of `op`, for messages.
pub fn describe_needs(op: &OperatorSpec) -> String {
    let r = &op.resources;
    format!(
        "cpus={}, mem={}MB, disk={}MB, ports={}",
        r.cpus,
        r.mem,
        r.disk,
        port_count(op)
    )
}

/// What is left of an offer while tasks are packed into it.
#[derive(Debug, Clone)]
pub struct OfferSpace {
    pub cpus: f64,
    pub mem: f64,
    pub disk: f64,
    pub ports: Vec<u64>,
    /// The role the offer's unreserved resources are allocated to (MULTI_ROLE).
    role_template: Option<Resource>,
}

impl OfferSpace {
    /// The free resources of an offer.
    pub fn of(offer: &Offer) -> Self {
        let ports = ranges_total(&offer.resources, "ports")
            .iter()
            .flat_map(|r: &Range| r.begin..=r.end)
            .take(4096)
            .collect();
        Self {
            cpus: scalar_total(&offer.resources, "cpus"),
            mem: scalar_total(&offer.resources, "mem"),
            disk: scalar_total(&offer.resources, "disk"),
            ports,
            role_template: offer.resources.first().cloned(),
        }
    }

    /// Whether `req` fits in what is left.
    pub fn fits(&self, req: &LaunchRequest) -> bool {
        let r = &req.operator.resources;
        const EPS: f64 = 1e-6;
        r.cpus <= self.cpus + EPS
            && r.mem <= self.mem + EPS
            && r.disk <= self.disk + EPS
            && req.port_count() <= self.ports.len()
    }

    /// Takes `req`'s resources; returns them with the ports chosen.
    fn take(&mut self, req: &LaunchRequest) -> (Vec<Resource>, Vec<u64>) {
        let r = &req.operator.resources;
        self.cpus -= r.cpus;
        self.mem -= r.mem;
        self.disk -= r.disk;
        let ports: Vec<u64> = self.ports.drain(..req.port_count()).collect();
        let mut resources = vec![
            self.shaped(Resource::scalar("cpus", r.cpus)),
            self.shaped(Resource::scalar("mem", r.mem)),
        ];
        if r.disk > 0.0 {
            resources.push(self.shaped(Resource::scalar("disk", r.disk)));
        }
        let ranges: Vec<(u64, u64)> = ports.iter().map(|p| (*p, *p)).collect();
        resources.push(self.shaped(Resource::ranges("ports", &ranges)));
        (resources, ports)
    }

    /// Copies role and allocation info from the offer, as Mesos requires.
    fn shaped(&self, mut r: Resource) -> Resource {
        if let Some(t) = &self.role_template {
            r.role = t.role.clone();
            r.allocation_info = t.allocation_info.clone();
            r.reservations = t.reservations.clone();
        }
        r
    }
}

/// Builds the `TaskInfo` for `req` on `offer`, taking its resources from `space`.
pub fn task_info(
    req: &LaunchRequest,
    offer: &Offer,
    space: &mut OfferSpace,
    settings: &LaunchSettings,
) -> (TaskName, TaskInfo) {
    let name = TaskName::new(
        &req.namespace,
        &req.topology,
        &req.operator.name,
        req.instance,
        &req.template_hash,
    );
    let (resources, ports) = space.take(req);
    let op = &req.operator;

    let mut env: Vec<(String, String)> =
        op.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let spec_json = serde_json::to_string(op.as_ref()).unwrap_or_default();
    let delivery = match req.delivery {
        Delivery::AtMostOnce => "at-most-once",
        Delivery::AtLeastOnce => "at-least-once",
    };
    env.extend([
        ("CONCORD_NAMESPACE".into(), req.namespace.clone()),
        ("CONCORD_TOPOLOGY".into(), req.topology.clone()),
        ("CONCORD_OPERATOR".into(), op.name.clone()),
        ("CONCORD_INSTANCE".into(), req.instance.to_string()),
        ("CONCORD_TASK_ID".into(), name.to_string()),
        ("CONCORD_TEMPLATE_HASH".into(), req.template_hash.clone()),
        ("CONCORD_OPERATOR_SPEC".into(), spec_json),
        ("CONCORD_DELIVERY".into(), delivery.into()),
        ("CONCORD_ETCD".into(), settings.etcd_endpoints.join(",")),
        ("CONCORD_ETCD_PREFIX".into(), settings.etcd_prefix.clone()),
        ("CONCORD_ADVERTISE_HOST".into(), advertise_host(offer)),
        ("CONCORD_DATA_PORT".into(), ports[0].to_string()),
        ("CONCORD_METRICS_PORT".into(), ports[1].to_string()),
        // The path of the file, never the secret: [`attach_dataplane_secret`] adds it.
        (
            DATAPLANE_SECRET_FILE_ENV.into(),
            DATAPLANE_SECRET_PATH.into(),
        ),
    ]);
    env.extend(settings.etcd_env.iter().cloned());
    if let Some(rate) = settings.trace_sample_rate {
        env.push(("CONCORD_TRACE_SAMPLE_RATE".into(), rate.to_string()));
    }
    for (port_name, port) in op.resources.ports.iter().zip(&ports[2..]) {
        env.push((
            format!(
                "CONCORD_PORT_{}",
                port_name.to_uppercase().replace('-', "_")
            ),
            port.to_string(),
        ));
    }

    let mut uris: Vec<Uri> = Vec::new();
    let value = match &settings.executor_uri {
        Some(uri) => {
            let mut u = Uri::new(uri.clone());
            u.executable = Some(true);
            u.output_file = Some("concord-executor".into());
            uris.push(u);
            "./concord-executor".to_owned()
        }
        None => settings.executor_path.clone(),
    };
    if let concord_schemas::Runtime::Process(process) = &op.runtime {
        for artifact in &process.artifacts {
            let mut u = Uri::new(artifact.uri.clone());
            u.extract = artifact.extract;
            u.executable = Some(artifact.executable);
            u.output_file = artifact.output_file.clone();
            uris.push(u);
        }
    }
    let command = CommandInfo {
        uris,
        environment: Some(Environment {
            variables: env.into_iter().map(|(k, v)| Variable::new(k, v)).collect(),
        }),
        shell: false,
        value: Some(value),
        arguments: vec!["concord-executor".into()],
        ..Default::default()
    };
    let task = TaskInfo {
        name: format!("{}.{}.{}", req.topology, op.name, req.instance),
        task_id: TaskId::new(name.to_string()),
        agent_id: AgentId::new(offer.agent_id.as_str()),
        resources,
        command: Some(command),
        kill_policy: Some(KillPolicy {
            grace_period: Some(DurationInfo::from_duration(settings.kill_grace)),
        }),
        labels: Some(Labels::from_pairs(name.labels())),
        ..Default::default()
    };
    (name, task)
}

/// Gives `task` its topology's data-plane secret as a Mesos `SECRET` volume: the agent
/// writes it to [`DATAPLANE_SECRET_PATH`] in the sandbox (real Mesos: the
/// `volume/secret` isolator), where the executor finds it through
/// [`DATAPLANE_SECRET_FILE_ENV`]. Never in the environment or the spec.
pub fn attach_dataplane_secret(task: &mut TaskInfo, secret: &[u8]) {
    let container = task.container.get_or_insert_with(|| ContainerInfo {
        r#type: ContainerType::Mesos,
        ..ContainerInfo::default()
    });
    container
        .volumes
        .retain(|v| v.container_path != DATAPLANE_SECRET_PATH);
    container.volumes.push(Volume::secret_file(
        DATAPLANE_SECRET_PATH,
        Secret::value(secret.to_vec()),
    ));
}

/// The address executors advertise and bind: the agent's IP when the offer carries a
/// usable one, else its hostname. A wildcard (an agent listening on `0.0.0.0`) is no
/// address to publish or to bind a task's ports to.
fn advertise_host(offer: &Offer) -> String {
    offer
        .url
        .as_ref()
        .and_then(|u| u.address.ip.clone())
        .filter(|ip| {
            !ip.is_empty()
                && !ip
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_unspecified())
        })
        .unwrap_or_else(|| offer.hostname.clone())
}

/// Whether the offer's agent satisfies the operator's attribute constraints.
pub fn attributes_match(op: &OperatorSpec, offer: &Offer) -> bool {
    op.placement.require_attributes.iter().all(|(name, want)| {
        offer.attributes.iter().any(|a| {
            a.name == *name
                && (a.text.as_ref().is_some_and(|t| t.value == *want)
                    || a.scalar
                        .as_ref()
                        .is_some_and(|s| s.value.to_string() == *want))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_v1::{Address, OfferId, Url};

    fn request() -> LaunchRequest {
        let yaml = br#"
apiVersion: concord.io/v1alpha1
kind: Topology
metadata: {name: demo}
spec:
  operators:
    - name: lines
      runtime: {builtin: {name: generator}}
"#;
        let t = concord_schemas::parse_yaml(yaml, "t.yaml")
            .expect("valid")
            .remove(0);
        LaunchRequest {
            namespace: "default".into(),
            topology: "demo".into(),
            operator: Arc::new(t.spec.operators[0].clone()),
            instance: 0,
            template_hash: "abc".into(),
            delivery: Delivery::AtMostOnce,
        }
    }

    fn offer(ip: &str) -> Offer {
        Offer {
            id: OfferId::new("O1"),
            agent_id: AgentId::new("S1"),
            hostname: "agent-host".into(),
            url: Some(Url {
                scheme: "http".into(),
                address: Address {
                    hostname: Some("agent-host".into()),
                    ip: Some(ip.into()),
                    port: 5051,
                },
                ..Url::default()
            }),
            resources: vec![
                Resource::scalar("cpus", 4.0),
                Resource::scalar("mem", 4096.0),
                Resource::ranges("ports", &[(31000, 31010)]),
            ],
            ..Offer::default()
        }
    }

    fn env(task: &TaskInfo) -> Vec<(String, String)> {
        task.command
            .as_ref()
            .and_then(|c| c.environment.as_ref())
            .map(|e| {
                e.variables
                    .iter()
                    .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_secret_reaches_the_task_as_a_secret_volume_and_never_in_its_environment() {
        let req = request();
        let o = offer("10.0.0.7");
        let mut space = OfferSpace::of(&o);
        let (_, mut task) = task_info(
            &req,
            &o,
            &mut space,
            &super::super::detached_config().launch,
        );
        let secret = [0xA5u8; 32];
        attach_dataplane_secret(&mut task, &secret);

        let json = serde_json::to_value(&task).expect("json");
        assert_eq!(json["container"]["type"], "MESOS");
        assert_eq!(
            json["container"]["volumes"],
            serde_json::json!([{
                "mode": "RO",
                "container_path": DATAPLANE_SECRET_PATH,
                "source": {"type": "SECRET", "secret": {
                    "type": "VALUE",
                    "value": {"data": "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU="}
                }}
            }])
        );
        let env = env(&task);
        assert!(env.contains(&(
            DATAPLANE_SECRET_FILE_ENV.into(),
            DATAPLANE_SECRET_PATH.into()
        )));
        let text = serde_json::to_string(&json["command"]).expect("text");
        assert!(
            !text.contains("paWlp") && !text.contains("a5a5a5"),
            "{text}"
        );
        // The spec handed to the executor does not carry it either.
        let spec = env
            .iter()
            .find(|(k, _)| k == "CONCORD_OPERATOR_SPEC")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert!(!spec.contains("paWlp"));

        // Attaching again (a relaunch of the same TaskInfo) keeps one volume.
        attach_dataplane_secret(&mut task, &secret);
        assert_eq!(task.container.as_ref().map(|c| c.volumes.len()), Some(1));
    }

    #[test]
    fn executors_bind_and_advertise_the_agent_address_never_a_wildcard() {
        let req = request();
        let settings = super::super::detached_config().launch;
        for (ip, want) in [
            ("10.0.0.7", "10.0.0.7"),
            ("0.0.0.0", "agent-host"),
            ("::", "agent-host"),
        ] {
            let o = offer(ip);
            let (_, task) = task_info(&req, &o, &mut OfferSpace::of(&o), &settings);
            let env = env(&task);
            assert!(
                env.contains(&("CONCORD_ADVERTISE_HOST".into(), want.into())),
                "{ip}: {env:?}"
            );
        }
    }
}
