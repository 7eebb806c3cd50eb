//! Turning a wanted instance into a Mesos `TaskInfo` that fits an offer.

use std::sync::Arc;

use concord_schemas::{Delivery, OperatorSpec};
use mesos_v1::Range;
use mesos_v1::resources::{ranges_total, scalar_total};
use mesos_v1::{
    AgentId, CommandInfo, DurationInfo, Environment, KillPolicy, Labels, Offer, Resource, TaskId,
    TaskInfo, Uri, Variable,
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

/// The address executors advertise: the agent's IP when the offer carries it, else its hostname.
fn advertise_host(offer: &Offer) -> String {
    offer
        .url
        .as_ref()
        .and_then(|u| u.address.ip.clone())
        .filter(|ip| !ip.is_empty())
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
