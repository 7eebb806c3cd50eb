//! The keyed-count benchmark record stream (see `docs/benchmarks.md`).
//!
//! Record `i` is 100 bytes: creation time (monotonic ns, big-endian `u64`), the key
//! `k` + six digits of `splitmix64(i) % K`, and 85 padding bytes `a..z` repeated.

use crate::router::partition::splitmix64;

/// Size of a benchmark record.
pub const RECORD_LEN: usize = 100;
/// Length of the key (`k004217`).
pub const KEY_LEN: usize = 7;
/// Offset of the key.
pub const KEY_OFFSET: usize = 8;
/// Offset of the padding.
pub const PAD_OFFSET: usize = 15;
/// Default key cardinality.
pub const DEFAULT_KEYS: u64 = 100_000;

/// Writes record `i` with creation time `now_ns` into `out`.
#[inline]
pub fn write_record(out: &mut [u8; RECORD_LEN], i: u64, keys: u64, now_ns: u64) {
    out[0..8].copy_from_slice(&now_ns.to_be_bytes());
    out[8] = b'k';
    let mut k = splitmix64_raw(i) % keys.max(1);
    for p in (9..15).rev() {
        out[p] = b'0' + (k % 10) as u8;
        k /= 10;
    }
}

/// A record template with the padding filled in.
pub fn template() -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    for (j, b) in r[PAD_OFFSET..].iter_mut().enumerate() {
        *b = b'a' + (j % 26) as u8;
    }
    r
}

/// `splitmix64(x)` exactly as the workload defines it (the same function as the router's
/// mixer; re-exported here to keep the workload definition in one place).
#[inline]
pub fn splitmix64_raw(x: u64) -> u64 {
    splitmix64(x)
}

/// Reads the creation timestamp of a record or derived value.
#[inline]
pub fn timestamp(value: &[u8]) -> Option<u64> {
    value
        .get(0..8)
        .map(|s| u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout() {
        let mut r = template();
        write_record(&mut r, 0, DEFAULT_KEYS, 0x0102);
        assert_eq!(&r[0..8], &0x0102u64.to_be_bytes());
        let expected = splitmix64(0) % DEFAULT_KEYS;
        assert_eq!(&r[8..15], format!("k{expected:06}").as_bytes());
        assert_eq!(&r[15..18], b"abc");
        assert_eq!(r[15 + 26], b'a');
        assert_eq!(timestamp(&r), Some(0x0102));
        // splitmix64 as written in the workload, for i = 1.
        let z = 1u64.wrapping_add(0x9E3779B97F4A7C15);
        let z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        assert_eq!(splitmix64(1), z ^ (z >> 31));
    }
}
