//! `windowed-count`: counts per key in event-time windows, emitted when a window closes.
//!
//! Tumbling when `slideMs` is absent or equal to `sizeMs`, sliding otherwise. A window
//! `[start, start + sizeMs)` closes (and is emitted as JSON `{"key","count",
//! "windowStart","windowEnd"}`, keyed by the key) once wall-clock time passes its end
//! plus `allowedLatenessMs`. Records for windows already closed are dropped.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};

use super::{OUT, json, meta};

const TIMER: &[u8] = b"window";

/// The `windowed-count` built-in.
#[derive(Default)]
pub struct WindowedCount {
    size: u64,
    slide: u64,
    lateness: u64,
    key_field: Option<String>,
    time_field: Option<String>,
    /// (window end, key) -> (window start, count)
    windows: BTreeMap<(u64, Vec<u8>), u64>,
    /// Window ends with a timer set.
    scheduled: BTreeSet<u64>,
    /// Windows ending at or before this were emitted.
    closed_until: u64,
    late: u64,
}

impl Operator for WindowedCount {
    fn metadata(&self) -> Metadata {
        meta("windowed-count", true)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let c = ctx.config();
        self.size = c
            .u64("sizeMs")?
            .or(c.u64("sizeSeconds")?.map(|s| s * 1000))
            .ok_or_else(|| OperatorError::msg("windowed-count needs `sizeMs`"))?;
        if self.size == 0 {
            return Err(OperatorError::msg("`sizeMs` must be > 0"));
        }
        self.slide = c
            .u64("slideMs")?
            .or(c.u64("slideSeconds")?.map(|s| s * 1000))
            .unwrap_or(self.size);
        if self.slide == 0 || self.slide > self.size {
            return Err(OperatorError::msg("`slideMs` must be in 1..=sizeMs"));
        }
        self.lateness = c.u64("allowedLatenessMs")?.unwrap_or(0);
        self.key_field = c.str("keyField")?;
        self.time_field = c.str("timeField")?;
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        let mut t = record.event_time;
        let mut key = record.key.to_vec();
        if self.key_field.is_some() || self.time_field.is_some() {
            let doc: serde_json::Value = serde_json::from_slice(&record.value)
                .map_err(|e| OperatorError::msg(format!("value is not JSON: {e}")))?;
            if let Some(f) = &self.key_field {
                key = json::get(&doc, f)
                    .map(json::as_text)
                    .unwrap_or_default()
                    .into_bytes();
            }
            if let Some(f) = &self.time_field
                && let Some(v) = json::get(&doc, f).and_then(serde_json::Value::as_u64)
            {
                t = v;
            }
        }
        // Windows containing t: starts s = k*slide with s <= t < s + size.
        let last_start = t - t % self.slide;
        let mut start = last_start;
        loop {
            let end = start + self.size;
            if end <= t {
                break;
            }
            if end <= self.closed_until {
                self.late += 1;
            } else {
                *self.windows.entry((end, key.clone())).or_insert(0) += 1;
                if self.scheduled.insert(end) {
                    ctx.set_timer(TIMER, end + self.lateness);
                }
            }
            if start < self.slide {
                break;
            }
            start -= self.slide;
        }
        Ok(())
    }

    fn process_timer(
        &mut self,
        ctx: &mut Context<'_>,
        _key: Bytes,
        time: u64,
    ) -> Result<(), OperatorError> {
        let cutoff = time.saturating_sub(self.lateness);
        self.scheduled.retain(|e| *e > cutoff);
        while let Some(entry) = self.windows.first_entry() {
            let (end, _) = entry.key();
            if *end > cutoff {
                break;
            }
            let ((end, key), count) = entry.remove_entry();
            let body = serde_json::json!({
                "key": String::from_utf8_lossy(&key),
                "count": count,
                "windowStart": end - self.size,
                "windowEnd": end,
            });
            ctx.produce_at(OUT, &key, body.to_string(), end - 1);
            self.closed_until = self.closed_until.max(end);
        }
        Ok(())
    }
}
