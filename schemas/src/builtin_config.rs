//! Configuration checks of built-in operators whose mistakes would otherwise only show
//! when a task starts (and crash-loops): the Kafka source and sink, `tcp-source`'s
//! line bound.

use std::collections::BTreeMap;

use serde_json::Value;

/// Problems in the `config` of built-in operator `name`: (key path under `config`,
/// message). Unknown keys are allowed (operators ignore them).
pub(crate) fn check(name: &str, config: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    let mut c = Checker {
        config,
        found: Vec::new(),
    };
    match name {
        "kafka-source" => {
            c.bootstrap();
            c.common();
            let topic = c.string("topic", false);
            let topics = match config.get("topics") {
                None => false,
                Some(Value::Array(a)) if !a.is_empty() => {
                    for (i, t) in a.iter().enumerate() {
                        if !matches!(t, Value::String(s) if !s.trim().is_empty()) {
                            c.err(
                                format!("topics[{i}]"),
                                "expected a topic name (a non-empty string)",
                            );
                        }
                    }
                    true
                }
                Some(_) => {
                    c.err("topics", "expected a non-empty list of topic names");
                    true
                }
            };
            if !topic && !topics {
                c.err("topic", "required: the topic to read (or `topics`, a list)");
            }
            c.string("group", false);
            c.one_of("startFrom", &["earliest", "latest", "committed"]);
            for k in ["sessionTimeoutMs", "checkpointIntervalMs", "ackTimeoutMs"] {
                c.positive(k);
            }
        }
        "kafka-sink" => {
            c.bootstrap();
            c.common();
            c.string("topic", true);
            c.one_of("compression", &["none", "gzip", "snappy", "lz4"]);
            c.one_of("acks", &["all", "-1", "1", "0"]);
            for k in ["lingerMs", "batchBytes", "deliveryTimeoutMs"] {
                c.positive(k);
            }
        }
        "tcp-source" => c.positive("maxLineBytes"),
        _ => {}
    }
    c.found
}

/// Problems of a dead-letter target: (key, message).
pub(crate) fn check_dead_letter(servers: &str, topic: &str) -> Vec<(String, String)> {
    let config: BTreeMap<String, Value> = [
        (
            "bootstrapServers".to_owned(),
            Value::String(servers.to_owned()),
        ),
        ("topic".to_owned(), Value::String(topic.to_owned())),
    ]
    .into();
    let mut c = Checker {
        config: &config,
        found: Vec::new(),
    };
    c.bootstrap();
    c.string("topic", true);
    c.found
}

struct Checker<'a> {
    config: &'a BTreeMap<String, Value>,
    found: Vec<(String, String)>,
}

impl Checker<'_> {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.found.push((key.into(), message.into()));
    }

    /// True when present (and a string).
    fn string(&mut self, key: &str, required: bool) -> bool {
        match self.config.get(key) {
            None if required => {
                self.err(key, "required: expected a string");
                false
            }
            None => false,
            Some(Value::String(s)) if !s.trim().is_empty() => true,
            Some(other) => {
                self.err(key, format!("expected a non-empty string, got {other}"));
                true
            }
        }
    }

    fn bootstrap(&mut self) {
        let Some(v) = self.config.get("bootstrapServers") else {
            self.err(
                "bootstrapServers",
                "required: the brokers to connect to, as host:port[,host:port...]",
            );
            return;
        };
        let Value::String(s) = v else {
            self.err(
                "bootstrapServers",
                format!("expected host:port[,host:port...], got {v}"),
            );
            return;
        };
        for server in s.split(',') {
            let server = server.trim();
            let ok = server.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                self.err(
                    "bootstrapServers",
                    format!("`{server}` is not host:port (e.g. 127.0.0.1:9092)"),
                );
            }
        }
    }

    /// `properties` (librdkafka settings) and `passwordFile`.
    fn common(&mut self) {
        match self.config.get("properties") {
            None => {}
            Some(Value::Object(m)) => {
                let bad: Vec<String> = m
                    .iter()
                    .filter(|(_, v)| {
                        !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in bad {
                    self.err(
                        format!("properties.{k}"),
                        "expected a string, number or boolean",
                    );
                }
            }
            Some(other) => self.err(
                "properties",
                format!("expected a map of librdkafka settings, got {other}"),
            ),
        }
        self.string("passwordFile", false);
    }

    fn one_of(&mut self, key: &str, allowed: &[&str]) {
        match self.config.get(key) {
            None => {}
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => {}
            Some(other) => self.err(
                key,
                format!("expected one of {}, got {other}", allowed.join(", ")),
            ),
        }
    }

    fn positive(&mut self, key: &str) {
        match self.config.get(key) {
            None => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0) => {}
            Some(other) => self.err(
                key,
                format!("expected a positive whole number, got {other}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> BTreeMap<String, Value> {
        serde_json::from_value(json).expect("map")
    }

    #[test]
    fn a_complete_source_and_sink_pass() {
        let src = config(serde_json::json!({
            "bootstrapServers": "127.0.0.1:9092,broker-2:9093", "topic": "clicks",
            "startFrom": "committed", "sessionTimeoutMs": 6000,
            "properties": {"security.protocol": "sasl_plaintext", "fetch.wait.max.ms": 50}
        }));
        assert_eq!(check("kafka-source", &src), vec![]);
        let sink = config(serde_json::json!({
            "bootstrapServers": "k:9092", "topic": "alerts", "compression": "gzip", "acks": "all"
        }));
        assert_eq!(check("kafka-sink", &sink), vec![]);
    }

    #[test]
    fn tcp_source_line_bound_must_be_a_positive_number() {
        let ok = config(serde_json::json!({"maxLineBytes": 4096}));
        assert_eq!(check("tcp-source", &ok), vec![]);
        for bad in [
            serde_json::json!(0),
            serde_json::json!("1MiB"),
            serde_json::json!(-1),
        ] {
            let c = config(serde_json::json!({ "maxLineBytes": bad }));
            let keys: Vec<String> = check("tcp-source", &c)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(keys, ["maxLineBytes"]);
        }
    }

    #[test]
    fn mistakes_are_named_by_key() {
        let src = config(serde_json::json!({
            "bootstrapServers": "localhost", "startFrom": "beginning", "ackTimeoutMs": 0,
            "properties": {"x": [1]}
        }));
        let found: Vec<String> = check("kafka-source", &src)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            found,
            [
                "bootstrapServers",
                "properties.x",
                "topic",
                "startFrom",
                "ackTimeoutMs"
            ]
        );
        let sink = config(serde_json::json!({"topic": 3, "compression": "zstd"}));
        let found = check("kafka-sink", &sink);
        assert_eq!(found[0].0, "bootstrapServers");
        assert_eq!(
            found[1],
            (
                "topic".to_owned(),
                "expected a non-empty string, got 3".to_owned()
            )
        );
        assert!(
            found[2]
                .1
                .starts_with("expected one of none, gzip, snappy, lz4")
        );
    }

    #[test]
    fn dead_letter_targets_are_checked() {
        assert!(check_dead_letter("127.0.0.1:9092", "dlq").is_empty());
        let found = check_dead_letter("127.0.0.1", " ");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[1].0, "topic");
    }

    #[test]
    fn other_builtins_are_not_checked_here() {
        assert!(check("map", &config(serde_json::json!({"anything": 1}))).is_empty());
    }
}
