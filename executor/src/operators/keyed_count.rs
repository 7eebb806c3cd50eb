//! `keyed-count`: a running count per key, emitted with every record.
//!
//! `mode: benchmark` emits `(key, timestamp ++ count)` as 16 raw bytes (the timestamp is
//! the first 8 bytes of the input value). Otherwise it emits JSON `{"key","count"}`,
//! keyed by the record key, or by the JSON field `keyField` when set.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};

use super::{OUT, json, meta};
use crate::router::partition::splitmix64;

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

/// Longest key stored inline (no separate allocation, no pointer chase on lookup).
const INLINE: usize = 15;

/// A short key stored inside the hash table slot.
#[derive(Clone, Copy, PartialEq, Eq)]
struct InlineKey {
    len: u8,
    bytes: [u8; INLINE],
}

impl InlineKey {
    #[inline]
    fn new(key: &[u8]) -> Option<Self> {
        if key.len() > INLINE {
            return None;
        }
        let mut bytes = [0u8; INLINE];
        bytes[..key.len()].copy_from_slice(key);
        Some(Self {
            len: key.len() as u8,
            bytes,
        })
    }
}

impl std::hash::Hash for InlineKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let w = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&self.bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(a)
        };
        let tail = {
            let mut a = [0u8; 8];
            a[..7].copy_from_slice(&self.bytes[8..15]);
            a[7] = self.len;
            u64::from_le_bytes(a)
        };
        let h = splitmix64(w(0) ^ splitmix64(tail));
        state.write_u64(h);
    }
}

/// Passes a pre-mixed `u64` through as the hash.
#[derive(Default)]
pub struct PremixedHasher(u64);

impl Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = splitmix64(self.0 ^ u64::from(*b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

/// The `keyed-count` built-in.
#[derive(Default)]
pub struct KeyedCount {
    benchmark: bool,
    key_field: Option<String>,
    short: HashMap<InlineKey, u64, BuildHasherDefault<PremixedHasher>>,
    long: FnvMap<Box<[u8]>, u64>,
}

impl KeyedCount {
    #[inline]
    fn bump(&mut self, key: &[u8]) -> u64 {
        if let Some(k) = InlineKey::new(key) {
            let c = self.short.entry(k).or_insert(0);
            *c += 1;
            return *c;
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
        match InlineKey::new(key) {
            Some(k) => self.short.get(&k).copied().unwrap_or(0),
            None => self.long.get(key).copied().unwrap_or(0),
        }
    }
}

impl Operator for KeyedCount {
    fn metadata(&self) -> Metadata {
        meta("keyed-count", true)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
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
            let n = self.bump(&record.key);
            let mut out = [0u8; 16];
            let ts = record
                .value
                .get(0..8)
                .ok_or_else(|| OperatorError::msg("benchmark value shorter than 8 bytes"))?;
            out[0..8].copy_from_slice(ts);
            out[8..16].copy_from_slice(&n.to_be_bytes());
            ctx.produce(OUT, &record.key, out);
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
