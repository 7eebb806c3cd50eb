//! proto2 `required` fields of the scheduler `Call`: Mesos refuses a JSON call missing
//! one with 400 before anything else looks at it. serde defaults would let such calls
//! through, so the raw JSON is checked here.

use serde_json::Value;

/// Paths of the missing required fields, protobuf-style (`a.b[0].c`).
pub fn missing(call: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = Checker { out: &mut out };
    c.id(call, "framework_id", false);
    c.with(call, "subscribe", |c, s, p| {
        c.req(s, p, &["framework_info"]);
        c.with_at(s, p, "framework_info", |c, f, p| {
            c.req(f, p, &["user", "name"]);
            c.id_at(f, p, "id");
        });
    });
    for key in ["accept", "decline"] {
        c.with(call, key, |c, a, p| {
            c.each(a, p, "offer_ids", |c, o, p| c.req(o, p, &["value"]));
            c.each(a, p, "operations", |c, op, p| {
                c.with_at(op, p, "launch", |c, l, p| {
                    c.each(l, p, "task_infos", |c, t, p| c.task(t, p));
                });
                c.with_at(op, p, "launch_group", |c, g, p| {
                    c.req(g, p, &["executor", "task_group"]);
                    c.with_at(g, p, "executor", |c, e, p| {
                        c.req(e, p, &["executor_id"]);
                        c.id_at(e, p, "executor_id");
                        c.each(e, p, "resources", |c, r, p| c.req(r, p, &["name", "type"]));
                    });
                    c.with_at(g, p, "task_group", |c, tg, p| {
                        c.each(tg, p, "tasks", |c, t, p| c.task(t, p));
                    });
                });
            });
        });
    }
    c.with(call, "kill", |c, k, p| {
        c.req(k, p, &["task_id"]);
        c.id_at(k, p, "task_id");
        c.id_at(k, p, "agent_id");
    });
    c.with(call, "shutdown", |c, s, p| {
        c.req(s, p, &["executor_id", "agent_id"]);
        c.id_at(s, p, "executor_id");
        c.id_at(s, p, "agent_id");
    });
    c.with(call, "acknowledge", |c, a, p| {
        c.req(a, p, &["agent_id", "task_id", "uuid"]);
        c.id_at(a, p, "agent_id");
        c.id_at(a, p, "task_id");
    });
    c.with(call, "reconcile", |c, r, p| {
        c.each(r, p, "tasks", |c, t, p| {
            c.req(t, p, &["task_id"]);
            c.id_at(t, p, "task_id");
            c.id_at(t, p, "agent_id");
        });
    });
    c.with(call, "message", |c, m, p| {
        c.req(m, p, &["agent_id", "executor_id", "data"]);
        c.id_at(m, p, "agent_id");
        c.id_at(m, p, "executor_id");
    });
    out
}

struct Checker<'a> {
    out: &'a mut Vec<String>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn present(v: &Value, key: &str) -> Option<Value> {
    v.get(key).filter(|x| !x.is_null()).cloned()
}

impl Checker<'_> {
    fn req(&mut self, v: &Value, prefix: &str, keys: &[&str]) {
        for k in keys {
            if present(v, k).is_none() {
                self.out.push(join(prefix, k));
            }
        }
    }

    fn with(&mut self, v: &Value, key: &str, f: impl FnOnce(&mut Self, &Value, &str)) {
        self.with_at(v, "", key, f);
    }

    fn with_at(
        &mut self,
        v: &Value,
        prefix: &str,
        key: &str,
        f: impl FnOnce(&mut Self, &Value, &str),
    ) {
        if let Some(inner) = present(v, key).filter(Value::is_object) {
            f(self, &inner, &join(prefix, key));
        }
    }

    fn each(
        &mut self,
        v: &Value,
        prefix: &str,
        key: &str,
        mut f: impl FnMut(&mut Self, &Value, &str),
    ) {
        if let Some(Value::Array(items)) = present(v, key) {
            for (i, item) in items.iter().enumerate() {
                f(self, item, &format!("{}[{i}]", join(prefix, key)));
            }
        }
    }

    fn id(&mut self, v: &Value, key: &str, required: bool) {
        if required && present(v, key).is_none() {
            self.out.push(key.to_string());
        }
        self.id_at(v, "", key);
    }

    fn id_at(&mut self, v: &Value, prefix: &str, key: &str) {
        if let Some(id) = present(v, key).filter(Value::is_object) {
            self.req(&id, &join(prefix, key), &["value"]);
        }
    }

    fn task(&mut self, t: &Value, p: &str) {
        self.req(t, p, &["name", "task_id", "agent_id"]);
        self.id_at(t, p, "task_id");
        self.id_at(t, p, "agent_id");
        self.each(t, p, "resources", |c, r, p| c.req(r, p, &["name", "type"]));
        self.with_at(t, p, "command", |c, cmd, p| {
            c.each(cmd, p, "uris", |c, u, p| c.req(u, p, &["value"]));
            c.with_at(cmd, p, "environment", |c, e, p| {
                c.each(e, p, "variables", |c, var, p| c.req(var, p, &["name"]));
            });
        });
        self.with_at(t, p, "kill_policy", |c, k, p| {
            c.with_at(k, p, "grace_period", |c, g, p| {
                c.req(g, p, &["nanoseconds"])
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_required_fields() {
        let call =
            serde_json::json!({"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u"}}});
        assert_eq!(missing(&call), vec!["subscribe.framework_info.name"]);
        let call = serde_json::json!({"type":"ACCEPT","framework_id":{"value":"f"},"accept":{
            "offer_ids":[{"value":"o"}],
            "operations":[{"type":"LAUNCH","launch":{"task_infos":[{"task_id":{"value":"t"},
                "agent_id":{"value":"a"},"resources":[{"name":"cpus","scalar":{"value":1}}]}]}}]}});
        assert_eq!(
            missing(&call),
            vec![
                "accept.operations[0].launch.task_infos[0].name",
                "accept.operations[0].launch.task_infos[0].resources[0].type"
            ]
        );
        let ok = serde_json::json!({"type":"REVIVE","framework_id":{"value":"f"}});
        assert!(missing(&ok).is_empty());
    }
}
