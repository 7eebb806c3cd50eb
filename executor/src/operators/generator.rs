//! `generator`: a source emitting synthetic records, unthrottled or paced at a rate.
//!
//! Modes: `benchmark` (the keyed-count benchmark stream), `random` (keys `key-N` of a
//! given cardinality with a payload of a given size) and `clicks` (JSON ad clicks for
//! the click-fraud example: each click is on one of [`ADS`] ads, and each ad belongs to
//! one of [`PUBLISHERS`] publishers). Output is driven by timers, so callbacks stay
//! single-threaded.

use std::time::Instant;

use bytes::Bytes;
use concord_sdk::{Context, Metadata, Operator, OperatorError, Record};

use super::benchmark;
use super::{BuiltinEnv, OUT, meta};
use crate::clock;
use crate::router::partition::splitmix64;

const TIMER: &[u8] = b"generate";

/// Ads the `clicks` mode spreads clicks over (`ad-0` .. `ad-49`).
pub const ADS: u64 = 50;

/// Publishers owning those ads (`pub-0` .. `pub-9`).
pub const PUBLISHERS: u64 = 10;

/// The publisher owning ad `ad`: `ad-N` belongs to `pub-(N / 5)`, so every publisher
/// owns [`ADS`] / [`PUBLISHERS`] consecutive ads. Fixed, so counts per publisher are
/// reproducible across runs and instances.
pub fn publisher_of(ad: u64) -> u64 {
    (ad % ADS) / (ADS / PUBLISHERS)
}

/// Click number `i` of the `clicks` mode over `ips` source IPs: the IP (also the
/// record key) and the click as JSON. Deterministic in `i`.
pub fn click(i: u64, ips: u64, now_ms: u64) -> (String, serde_json::Value) {
    let r = splitmix64(i);
    let ip_n = r % ips.max(1);
    let ip = format!(
        "10.{}.{}.{}",
        (ip_n >> 16) & 255,
        (ip_n >> 8) & 255,
        ip_n & 255
    );
    let ad = (r >> 20) % ADS;
    let click = serde_json::json!({
        "ip": ip,
        "adId": format!("ad-{ad}"),
        "publisher": format!("pub-{}", publisher_of(ad)),
        "url": format!("/ad/{ad}"),
        "userAgent": if (r >> 40) % 7 == 0 { "bot/1.0" } else { "Mozilla/5.0" },
        "ts": now_ms,
    });
    (ip, click)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Benchmark,
    Random,
    Clicks,
}

/// The `generator` built-in.
pub struct Generator {
    mode: Mode,
    rate: f64,
    keys: u64,
    payload: usize,
    batch: u64,
    start: u64,
    end: u64,
    next: u64,
    started: Option<Instant>,
    emitted: u64,
    instance: u32,
    instances: u32,
    template: [u8; benchmark::RECORD_LEN],
    buf: Vec<u8>,
    done_logged: bool,
}

impl Generator {
    /// Unconfigured; `init` reads the config.
    pub fn new(env: &BuiltinEnv) -> Self {
        Self {
            mode: Mode::Random,
            rate: 0.0,
            keys: 1000,
            payload: 100,
            batch: 1024,
            start: 0,
            end: u64::MAX,
            next: 0,
            started: None,
            emitted: 0,
            instance: env.instance,
            instances: env.instances.max(1),
            template: benchmark::template(),
            buf: Vec::new(),
            done_logged: false,
        }
    }

    fn emit_one(&mut self, ctx: &mut Context<'_>, i: u64, now_ms: u64) {
        match self.mode {
            Mode::Benchmark => {
                benchmark::write_record(&mut self.template, i, self.keys, clock::monotonic_ns());
                ctx.produce_at(OUT, [], self.template, now_ms);
            }
            Mode::Random => {
                let k = splitmix64(i) % self.keys.max(1);
                let key = format!("key-{k}");
                self.buf.clear();
                let seed = splitmix64(i ^ 0x5555);
                for j in 0..self.payload {
                    self.buf
                        .push(b'a' + ((seed >> (j % 60)) as u8).wrapping_add(j as u8) % 26);
                }
                ctx.produce_at(OUT, key.as_bytes(), &self.buf, now_ms);
            }
            Mode::Clicks => {
                let (ip, click) = click(i, self.keys, now_ms);
                ctx.produce_at(OUT, ip.as_bytes(), click.to_string().as_bytes(), now_ms);
            }
        }
    }
}

impl Operator for Generator {
    fn metadata(&self) -> Metadata {
        meta("generator", false)
    }

    fn init(&mut self, ctx: &mut Context<'_>) -> Result<(), OperatorError> {
        let c = ctx.config();
        self.mode = match c.str("mode")?.as_deref() {
            None | Some("random") => Mode::Random,
            Some("benchmark") => Mode::Benchmark,
            Some("clicks") => Mode::Clicks,
            Some(other) => {
                return Err(OperatorError::msg(format!(
                    "generator mode `{other}`: expected benchmark, random or clicks"
                )));
            }
        };
        self.rate = c.f64("rate")?.unwrap_or(0.0).max(0.0);
        let default_keys = if self.mode == Mode::Benchmark {
            benchmark::DEFAULT_KEYS
        } else {
            1000
        };
        self.keys = c.u64("keys")?.unwrap_or(default_keys).max(1);
        self.payload = c.u64("payloadSize")?.unwrap_or(100) as usize;
        self.batch = c.u64("batch")?.unwrap_or(1024).max(1);
        let total = c.u64("records")?.unwrap_or(0);
        if total > 0 {
            let n = u64::from(self.instances);
            let i = u64::from(self.instance.min(self.instances - 1));
            self.start = total * i / n;
            self.end = total * (i + 1) / n;
        }
        self.next = self.start;
        ctx.set_timer(TIMER, clock::wall_ms());
        Ok(())
    }

    fn process_record(
        &mut self,
        _ctx: &mut Context<'_>,
        _record: Record,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::info!(records = self.emitted, "generator stopped");
    }

    fn process_timer(
        &mut self,
        ctx: &mut Context<'_>,
        _key: Bytes,
        _time: u64,
    ) -> Result<(), OperatorError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let now_ms = clock::wall_ms();
        let mut n = self.batch.min(self.end - self.next);
        let mut behind = true;
        if self.rate > 0.0 {
            let due = (started.elapsed().as_secs_f64() * self.rate) as u64;
            let owed = due.saturating_sub(self.emitted);
            behind = owed > n;
            n = n.min(owed);
        }
        for _ in 0..n {
            let i = self.next;
            self.emit_one(ctx, i, now_ms);
            self.next += 1;
        }
        self.emitted += n;
        if self.next >= self.end {
            if !self.done_logged {
                self.done_logged = true;
                tracing::info!(records = self.emitted, "generator finished");
            }
            return Ok(());
        }
        let at = if behind { now_ms } else { now_ms + 1 };
        ctx.set_timer(TIMER, at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_publisher_owns_several_ads_and_every_ad_one_publisher() {
        let mut owned = std::collections::BTreeMap::<u64, Vec<u64>>::new();
        for ad in 0..ADS {
            owned.entry(publisher_of(ad)).or_default().push(ad);
        }
        assert_eq!(owned.len() as u64, PUBLISHERS);
        for ads in owned.values() {
            assert_eq!(ads.len() as u64, ADS / PUBLISHERS, "{owned:?}");
        }
        assert_eq!(owned[&0], vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn clicks_carry_the_publisher_of_their_ad_deterministically() {
        let mut publishers = std::collections::BTreeSet::new();
        for i in 0..2000 {
            let (ip, c) = click(i, 5000, 7);
            assert_eq!(click(i, 5000, 7), (ip.clone(), c.clone()), "deterministic");
            assert_eq!(c["ip"], ip.as_str());
            let ad: u64 = c["adId"]
                .as_str()
                .and_then(|a| a.strip_prefix("ad-"))
                .and_then(|n| n.parse().ok())
                .expect("adId ad-N");
            assert_eq!(c["url"], format!("/ad/{ad}"));
            assert_eq!(c["publisher"], format!("pub-{}", publisher_of(ad)));
            assert_eq!(c["ts"], 7);
            publishers.insert(c["publisher"].as_str().map(str::to_owned));
        }
        assert_eq!(
            publishers.len() as u64,
            PUBLISHERS,
            "every publisher gets clicks"
        );
    }
}
