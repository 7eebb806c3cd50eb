//! `keyed-count`: a running count per key, emitted with every record.
//!
//! `mode: benchmark` emits `(key, timestamp ++ count)` as 16 raw bytes (the timestamp is
//! the first 8 bytes of the input value). Otherwise it emits JSON `{"key","count"}`,
//! keyed by the record key, or by the JSON field `keyField` when set.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};

use super::count_table::{CountTable, MAX_KEY};
use super::{OUT, json, meta};

/// FNV-1a hasher: fast for the short keys counted here.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Hash map with the FNV hasher.
pub type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// The `keyed-count` built-in.
#[derive(Default)]
pub struct KeyedCount {
    benchmark: bool,
    key_field: Option<String>,
    short: CountTable,
    long: FnvMap<Box<[u8]>, u64>,
    /// Benchmark-mode records waiting to be counted as one batch.
    pending: Vec<Record>,
    counts: Vec<u64>,
}

/// Records batched before counting (benchmark mode).
const PENDING: usize = 256;

impl KeyedCount {
    #[inline]
    fn bump(&mut self, key: &[u8]) -> u64 {
        if key.len() <= MAX_KEY {
            return self.short.bump(key);
        }
        if let Some(c) = self.long.get_mut(key) {
            *c += 1;
            return *c;
        }
        self.long.insert(key.into(), 1);
        1
    }

    /// Current count of a key.
    pub fn count(&self, key: &[u8]) -> u64 {
        if key.len() <= MAX_KEY {
            self.short.get(key)
        } else {
            self.long.get(key).copied().unwrap_or(0)
        }
    }

    /// Counts the pending benchmark records as one batch and emits their results.
    fn flush_pending(&mut self, ctx: &mut Context<'_>) {
        if self.pending.is_empty() {
            return;
        }
        let keys: Vec<&[u8]> = self.pending.iter().map(|r| &r.key[..]).collect();
        self.counts.clear();
        self.short.bump_batch(&keys, &mut self.counts);
        for (r, n) in self.pending.iter().zip(&self.counts) {
            ctx.produce_at(OUT, &r.key, benchmark_value(&r.value, *n), r.event_time);
        }
        self.pending.clear();
    }
}

/// `timestamp ++ count` (the timestamp is the first 8 bytes of the input value).
#[inline]
fn benchmark_value(value: &[u8], n: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Some(ts) = value.get(0..8) {
        out[0..8].copy_from_slice(ts);
    }
    out[8..16].copy_from_slice(&n.to_be_bytes());
    out
}

impl Operator for KeyedCount {
    fn metadata(&self) -> Metadata {
        meta("keyed-count", true)
    }

    fn end_of_batch(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        self.flush_pending(ctx);
        Ok(())
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        if let Some(keys) = ctx.config().u64("expectedKeys")? {
            self.short = CountTable::with_capacity(keys as usize);
        }
        self.benchmark = ctx.config().str("mode")?.as_deref() == Some("benchmark");
        self.key_field = ctx.config().str("keyField")?;
        Ok(())
    }

    fn process_record(
        &mut self,
        ctx: &mut Context<'_>,
        record: Record,
    ) -> Result<(), OperatorError> {
        if self.benchmark {
            if record.value.len() < 8 {
                return Err(OperatorError::msg("benchmark value shorter than 8 bytes"));
            }
            if record.trace.is_none() && record.key.len() <= MAX_KEY {
                self.pending.push(record);
                if self.pending.len() >= PENDING {
                    self.flush_pending(ctx);
                }
                return Ok(());
            }
            // Traced (or long-keyed) records are counted in place, after what is pending,
            // so that they keep their trace context and per-key order holds. The pending
            // records are not part of this record's trace.
            let (event_time, trace) = (ctx.event_time(), ctx.trace());
            ctx.set_current(event_time, None);
            self.flush_pending(ctx);
            ctx.set_current(event_time, trace);
            let n = self.bump(&record.key);
            ctx.produce(OUT, &record.key, benchmark_value(&record.value, n));
            return Ok(());
        }
        let key: Vec<u8> = match &self.key_field {
            None => record.key.to_vec(),
            Some(f) => {
                let doc: serde_json::Value = serde_json::from_slice(&record.value)
                    .map_err(|e| OperatorError::msg(format!("value is not JSON: {e}")))?;
                json::get(&doc, f)
                    .map(json::as_text)
                    .unwrap_or_default()
                    .into_bytes()
            }
        };
        let n = self.bump(&key);
        let body = serde_json::json!({"key": String::from_utf8_lossy(&key), "count": n});
        ctx.produce(OUT, &key, body.to_string());
        Ok(())
    }
}
