//! Command-line flags, named and spelled as Apache Mesos spells them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

const AFTER_HELP: &str = "\
Agents: every agent (`--agents N`) gets its own id `<master id>-S<n>` (n from 0), its own \
libprocess identity `slave(<n+1>)@<ip>:<port>` and its own copy of `--resources`. Scalars (cpus, mem, disk) \
are copied as given; the `ports` ranges are split into N disjoint, contiguous shares so no two \
agents offer the same port. Like `mesos-local`, all agents share the master's IP and port: their \
endpoints (`/files/...`, `/slave(<n>)/state`) are served on the master's port.

Hostnames: one agent is named like the master; with several, agent n is `<hostname>-agent-<n>` \
unless `--hostnames` names them (repeat a name to put several agents on one host). The names are \
labels for placement and display only: offers carry `--ip` in `url.address.ip`, and every agent is \
reached at `--ip:--port`.

Attributes: `--attributes 'rack:r1;zone:2'` (Mesos' format: TEXT, SCALAR or RANGES `[a-b]`) gives \
every agent the same attributes; `--agent_attributes 'rack:r1|rack:r2'` gives agent n the n-th \
`|`-separated entry, on top of `--attributes`. They appear in offers, GET_AGENTS and `/state`.

Sandboxes live under `<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<task>/runs/<container>`. \
Tasks die with mesos-lite; a restart with the same work_dir keeps the master id (so agent ids stay \
the same) and kills task processes left over from an earlier run.";

/// A single-process Mesos-compatible master with N agents, for local runs and CI.
#[derive(Debug, Clone, Parser)]
#[command(name = "mesos-lite", version, about, after_help = AFTER_HELP)]
pub struct Flags {
    /// IP address to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "MESOS_IP")]
    pub ip: IpAddr,

    /// Port to listen on (master and agents share it).
    #[arg(long, default_value_t = 5050, env = "MESOS_PORT")]
    pub port: u16,

    /// Hostname advertised for the master and agents (default: the --ip address, or the
    /// machine's hostname when --ip is 0.0.0.0).
    #[arg(long, env = "MESOS_HOSTNAME")]
    pub hostname: Option<String>,

    /// Directory for the master's metadata and the agents' sandboxes
    /// (default: `<tmp>/mesos-lite-<port>`).
    #[arg(long = "work_dir", env = "MESOS_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Resources of each agent, e.g. `cpus:4;mem:8192;disk:10000;ports:[31000-32000]`
    /// (default: this machine's cpus and memory, disk from the work_dir's file system,
    /// ports [31000-32000]).
    #[arg(long, env = "MESOS_RESOURCES")]
    pub resources: Option<String>,

    /// Number of agents.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub agents: u32,

    /// Hostname of each agent, comma-separated, one per agent (mesos-lite only; default:
    /// the advertised hostname for one agent, `<hostname>-agent-<n>` for several).
    #[arg(long, value_delimiter = ',')]
    pub hostnames: Vec<String>,

    /// Attributes of every agent, e.g. `rack:r1;zone:2` (as the Mesos agent's flag).
    #[arg(long, env = "MESOS_ATTRIBUTES")]
    pub attributes: Option<String>,

    /// Attributes per agent, `|`-separated, one entry per agent, added to `--attributes`
    /// (mesos-lite only), e.g. `rack:r1;zone:a|rack:r2;zone:b`.
    #[arg(long = "agent_attributes")]
    pub agent_attributes: Option<String>,

    /// Interval between HEARTBEAT events on scheduler streams (e.g. `15secs`).
    #[arg(long = "heartbeat_interval", default_value = "15secs", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Interval between batch allocation rounds (e.g. `1secs`).
    #[arg(long = "allocation_interval", default_value = "1secs", value_parser = parse_duration)]
    pub allocation_interval: Duration,

    /// Rescind offers not used within this time (off by default, as in Mesos).
    #[arg(long = "offer_timeout", value_parser = parse_duration)]
    pub offer_timeout: Option<Duration>,

    /// First retry interval of unacknowledged status updates; doubles up to 10 mins
    /// (mesos-lite only: the Mesos agent hardcodes 10secs).
    #[arg(long = "status_update_retry_interval", default_value = "10secs", value_parser = parse_duration)]
    pub status_update_retry_interval: Duration,

    /// Grace period between SIGTERM and SIGKILL when no kill policy is given.
    #[arg(long = "default_kill_grace_period", default_value = "3secs", value_parser = parse_duration, hide = true)]
    pub default_kill_grace_period: Duration,
}

impl Flags {
    /// The hostname to advertise: `--hostname`, else the `--ip` address, else (for a
    /// wildcard `--ip`) the machine's hostname.
    pub fn advertised_hostname(&self) -> String {
        if let Some(h) = self.hostname.clone().filter(|h| !h.is_empty()) {
            return h;
        }
        if self.ip.is_unspecified() {
            if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                let h = h.trim();
                if !h.is_empty() {
                    return h.to_string();
                }
            }
        }
        self.ip.to_string()
    }

    /// The hostname of each agent: `--hostnames`, else the advertised hostname for a
    /// single agent and `<hostname>-agent-<n>` for several.
    pub fn agent_hostnames(&self) -> Result<Vec<String>, String> {
        let count = self.agents as usize;
        if self.hostnames.is_empty() {
            let base = self.advertised_hostname();
            return Ok(if count == 1 {
                vec![base]
            } else {
                (0..count).map(|n| format!("{base}-agent-{n}")).collect()
            });
        }
        if self.hostnames.len() != count {
            return Err(format!(
                "--hostnames names {} agents but --agents is {count}",
                self.hostnames.len()
            ));
        }
        let names: Vec<String> = self.hostnames.iter().map(|h| h.trim().to_owned()).collect();
        if names.iter().any(String::is_empty) {
            return Err("--hostnames has an empty name".into());
        }
        Ok(names)
    }

    /// The work directory, defaulted.
    pub fn work_dir(&self) -> PathBuf {
        self.work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("mesos-lite-{}", self.port)))
    }
}

/// Parses a stout-style duration (`100ms`, `15secs`, `2mins`, `1hrs`, `1days`, `1weeks`;
/// also `s`/`m`/`h` and bare numbers as seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}'"))?;
    let seconds_per_unit = match unit.trim() {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "" | "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        "w" | "week" | "weeks" => 604800.0,
        other => return Err(format!("unknown duration unit '{other}' in '{text}'")),
    };
    let secs = value * seconds_per_unit;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration '{text}'"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration '{text}' is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15secs"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2mins"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("1parsecs").is_err());
    }

    #[test]
    fn defaults() {
        let flags = Flags::parse_from(["mesos-lite"]);
        assert_eq!(flags.port, 5050);
        assert_eq!(flags.agents, 1);
        assert_eq!(flags.heartbeat_interval, Duration::from_secs(15));
        assert_eq!(flags.agent_hostnames(), Ok(vec!["127.0.0.1".to_owned()]));
    }

    #[test]
    fn agent_hostnames() {
        let flags = Flags::parse_from(["mesos-lite", "--agents", "3", "--hostname", "box"]);
        assert_eq!(
            flags.agent_hostnames(),
            Ok(vec![
                "box-agent-0".into(),
                "box-agent-1".into(),
                "box-agent-2".into()
            ])
        );
        let flags = Flags::parse_from(["mesos-lite", "--agents", "3", "--hostnames", "h1,h1,h2"]);
        assert_eq!(
            flags.agent_hostnames(),
            Ok(vec!["h1".into(), "h1".into(), "h2".into()])
        );
        let flags = Flags::parse_from(["mesos-lite", "--agents", "3", "--hostnames", "h1,h2"]);
        assert!(flags.agent_hostnames().is_err());
        let flags = Flags::parse_from(["mesos-lite", "--agents", "2", "--hostnames", "h1,"]);
        assert!(flags.agent_hostnames().is_err());
    }
}
