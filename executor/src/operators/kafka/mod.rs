//! `kafka-source` and `kafka-sink`: Kafka in and out, over librdkafka (`rdkafka`).
//!
//! Both take `bootstrapServers` and, for security settings and tuning, `properties`
//! (librdkafka configuration, passed through) and `passwordFile` (a file whose content
//! becomes `sasl.password`, so no secret sits in the spec). Broker trouble is reported as
//! the task's problem (published with its endpoint, shown in the topology's status) while
//! librdkafka reconnects with back-off; it clears once the broker answers again.

mod offsets;
mod sink;
mod source;

use std::collections::BTreeMap;

use concord_sdk::{Config, OperatorError};
use rdkafka::ClientConfig;

pub use sink::KafkaSink;
pub use source::KafkaSource;

/// librdkafka settings shared by sources and sinks: brokers, client id and quick
/// reconnects. Operators add their own, then [`user_settings`].
fn client_config(c: &Config, client_id: &str) -> Result<ClientConfig, OperatorError> {
    let servers = c.required_str("bootstrapServers")?;
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &servers)
        .set("client.id", client_id)
        // Reconnect quickly at first, then back off (librdkafka's own back-off).
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "5000")
        // A topic created after the operator started is seen within seconds.
        .set("topic.metadata.refresh.interval.ms", "5000");
    Ok(cfg)
}

/// Applies the pass-through `properties` (over the operator's defaults) and the SASL
/// password file.
fn user_settings(cfg: &mut ClientConfig, c: &Config) -> Result<(), OperatorError> {
    let props: Option<BTreeMap<String, serde_json::Value>> = c.parse("properties")?;
    for (k, v) in props.unwrap_or_default() {
        let v = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(OperatorError::msg(format!(
                    "config.properties.{k}: expected a string, number or boolean, got {other}"
                )));
            }
        };
        cfg.set(k, v);
    }
    if let Some(path) = c.str("passwordFile")? {
        let secret = std::fs::read_to_string(&path).map_err(|e| {
            OperatorError::msg(format!("config.passwordFile: cannot read {path}: {e}"))
        })?;
        cfg.set("sasl.password", secret.trim_end_matches(['\n', '\r']));
    }
    Ok(())
}

/// One or more topics from `topic` or `topics`.
fn topics(c: &Config) -> Result<Vec<String>, OperatorError> {
    let list: Option<Vec<String>> = c.parse("topics")?;
    let mut topics = list.unwrap_or_default();
    if let Some(t) = c.str("topic")? {
        topics.push(t);
    }
    if topics.is_empty() {
        return Err(OperatorError::msg(
            "config.topic: expected the topic to read (or config.topics, a list)",
        ));
    }
    Ok(topics)
}
