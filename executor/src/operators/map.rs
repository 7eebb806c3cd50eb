//! `map`: transforms each record.
//!
//! `mode: benchmark` is the benchmark's map (upper-cased key, timestamp and padding
//! carried on). Otherwise the value is a JSON object and the configured steps apply in
//! this order: `rename`, `remove`, `set`, `upper`, `lower`, `select`, then `keyBy` picks
//! the output key from a field. With no steps the record passes through unchanged.

use std::collections::BTreeMap;

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};
use serde_json::Value;

use super::benchmark::{KEY_LEN, KEY_OFFSET, PAD_OFFSET, RECORD_LEN};
use super::{OUT, json, meta};

/// The `map` built-in.
#[derive(Default)]
pub struct Map {
    benchmark: bool,
    rename: BTreeMap<String, String>,
    remove: Vec<String>,
    set: BTreeMap<String, Value>,
    upper: Vec<String>,
    lower: Vec<String>,
    select: Vec<String>,
    key_by: Option<String>,
    buf: Vec<u8>,
}

impl Map {
    fn json_steps(&self) -> bool {
        !(self.rename.is_empty()
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.upper.is_empty()
            && self.lower.is_empty()
            && self.select.is_empty()
            && self.key_by.is_none())
    }
}

impl Operator for Map {
    fn metadata(&self) -> Metadata {
        meta("map", true)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let c = ctx.config();
        self.benchmark = c.str("mode")?.as_deref() == Some("benchmark");
        self.rename = c.parse("rename")?.unwrap_or_default();
        self.remove = c.parse("remove")?.unwrap_or_default();
        self.set = c.parse("set")?.unwrap_or_default();
        self.upper = c.parse("upper")?.unwrap_or_default();
        self.lower = c.parse("lower")?.unwrap_or_default();
        self.select = c.parse("select")?.unwrap_or_default();
        self.key_by = c.str("keyBy")?;
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        if self.benchmark {
            let v = &record.value[..];
            if v.len() < RECORD_LEN {
                return Err(OperatorError::msg(
                    "benchmark record shorter than 100 bytes",
                ));
            }
            let mut key = [0u8; KEY_LEN];
            key.copy_from_slice(&v[KEY_OFFSET..KEY_OFFSET + KEY_LEN]);
            key.make_ascii_uppercase();
            self.buf.clear();
            self.buf.extend_from_slice(&v[0..8]);
            self.buf.extend_from_slice(&v[PAD_OFFSET..RECORD_LEN]);
            ctx.produce(OUT, key, &self.buf);
            return Ok(());
        }
        if !self.json_steps() {
            ctx.produce(OUT, &record.key, &record.value);
            return Ok(());
        }
        let mut doc: Value = serde_json::from_slice(&record.value)
            .map_err(|e| OperatorError::msg(format!("value is not JSON: {e}")))?;
        for (from, to) in &self.rename {
            if let Some(v) = json::remove(&mut doc, from) {
                json::set(&mut doc, to, v);
            }
        }
        for f in &self.remove {
            json::remove(&mut doc, f);
        }
        for (f, v) in &self.set {
            json::set(&mut doc, f, v.clone());
        }
        for (fields, up) in [(&self.upper, true), (&self.lower, false)] {
            for f in fields {
                if let Some(Value::String(s)) = json::get(&doc, f) {
                    let t = if up {
                        s.to_uppercase()
                    } else {
                        s.to_lowercase()
                    };
                    json::set(&mut doc, f, Value::String(t));
                }
            }
        }
        if !self.select.is_empty() {
            let mut out = Value::Object(Default::default());
            for f in &self.select {
                if let Some(v) = json::get(&doc, f) {
                    json::set(&mut out, f, v.clone());
                }
            }
            doc = out;
        }
        let key = match &self.key_by {
            Some(f) => json::get(&doc, f)
                .map(json::as_text)
                .unwrap_or_default()
                .into_bytes(),
            None => record.key.to_vec(),
        };
        ctx.produce(OUT, key, doc.to_string());
        Ok(())
    }
}
