//! Exponential back-off with jitter for reconnections.

use std::time::Duration;

use rand::Rng;

/// Exponential back-off: `initial · 2^n` capped at `max`, each delay drawn
/// uniformly from the upper half (`[d/2, d]`) so that many schedulers restarted
/// together do not reconnect in lock-step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A back-off starting at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The cap before jitter for the current attempt.
    pub fn current_cap(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(30)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay (advances the attempt counter).
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.current_cap();
        self.attempt = self.attempt.saturating_add(1);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if cap_ms < 2 {
            return cap;
        }
        Duration::from_millis(rand::rng().random_range(cap_ms / 2..=cap_ms))
    }

    /// Back to the initial delay (after a successful subscription).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let caps: Vec<u128> = (0..6)
            .map(|_| {
                let cap = b.current_cap();
                let d = b.next_delay();
                assert!(
                    d <= cap && d >= cap / 2,
                    "{d:?} not within [{:?}, {cap:?}]",
                    cap / 2
                );
                cap.as_millis()
            })
            .collect();
        assert_eq!(caps, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.current_cap(), Duration::from_millis(100));
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.current_cap(), Duration::from_secs(1));
    }
}
