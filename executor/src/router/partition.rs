//! Choosing downstream instances: rendezvous (highest-random-weight) hashing for keyed
//! edges, so that adding or removing one of `n` instances moves only about `1/n` of keys.

/// SplitMix64 finaliser: a fast, well-mixing bijection on `u64`.
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stable 64-bit hash of a key (FNV-1a, then mixed); identical in every process.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h)
}

/// Per-instance seed. Seeds depend only on the instance index, so a replaced task of the
/// same index keeps its keys.
pub fn instance_seed(instance: u32) -> u64 {
    splitmix64(u64::from(instance) ^ 0x636f_6e63_6f72_6421)
}

/// Index into `seeds` of the instance owning the key with hash `h` (the highest score).
/// `seeds` must not be empty.
#[inline]
pub fn rendezvous(h: u64, seeds: &[u64]) -> usize {
    let mut best = 0;
    let mut best_score = 0u64;
    for (i, s) in seeds.iter().enumerate() {
        let score = splitmix64(h ^ s);
        if i == 0 || score > best_score {
            best = i;
            best_score = score;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(key: &[u8], instances: &[u32]) -> u32 {
        let seeds: Vec<u64> = instances.iter().map(|i| instance_seed(*i)).collect();
        instances[rendezvous(key_hash(key), &seeds)]
    }

    #[test]
    fn same_key_same_instance() {
        for k in 0..1000 {
            let key = format!("key{k}");
            assert_eq!(
                owner(key.as_bytes(), &[0, 1, 2]),
                owner(key.as_bytes(), &[2, 0, 1])
            );
        }
    }

    #[test]
    fn adding_an_instance_moves_about_one_nth() {
        let n = 20_000;
        let before: Vec<u32> = (0..n)
            .map(|k| owner(format!("k{k:06}").as_bytes(), &[0, 1, 2]))
            .collect();
        let after: Vec<u32> = (0..n)
            .map(|k| owner(format!("k{k:06}").as_bytes(), &[0, 1, 2, 3]))
            .collect();
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                moved += 1;
                assert_eq!(*a, 3, "a key may only move to the new instance");
            }
        }
        let frac = f64::from(moved) / f64::from(n);
        assert!((0.20..0.30).contains(&frac), "moved {frac}");
        // Removing instance 1 moves only instance 1's keys.
        for k in 0..n {
            let key = format!("k{k:06}");
            let b = owner(key.as_bytes(), &[0, 1, 2]);
            let a = owner(key.as_bytes(), &[0, 2]);
            if b != 1 {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn balanced() {
        let mut counts = [0u32; 4];
        for k in 0..40_000 {
            counts[owner(format!("k{k}").as_bytes(), &[0, 1, 2, 3]) as usize] += 1;
        }
        for c in counts {
            assert!((9000..11000).contains(&c), "{counts:?}");
        }
    }
}
