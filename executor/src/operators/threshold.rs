//! `threshold`: emits an alert when a numeric field reaches a minimum.
//!
//! Reads JSON field `field` (default `count`); when it is `>= min`, emits the record's
//! object with `"alert": true` and `"threshold": min` added, keyed like the input.

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};
use serde_json::Value;

use super::{OUT, json, meta};

/// The `threshold` built-in.
#[derive(Default)]
pub struct Threshold {
    field: String,
    min: f64,
}

impl Operator for Threshold {
    fn metadata(&self) -> Metadata {
        meta("threshold", true)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let c = ctx.config();
        self.field = c.str("field")?.unwrap_or_else(|| "count".to_owned());
        self.min = c
            .f64("min")?
            .ok_or_else(|| OperatorError::msg("threshold needs `min`"))?;
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        let mut doc: Value = serde_json::from_slice(&record.value)
            .map_err(|e| OperatorError::msg(format!("value is not JSON: {e}")))?;
        let v = json::get(&doc, &self.field).and_then(Value::as_f64);
        if v.is_some_and(|v| v >= self.min) {
            json::set(&mut doc, "alert", Value::Bool(true));
            json::set(&mut doc, "threshold", serde_json::json!(self.min));
            ctx.produce(OUT, &record.key, doc.to_string());
        }
        Ok(())
    }
}
