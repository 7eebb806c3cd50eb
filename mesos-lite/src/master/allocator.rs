//! The allocator: batch rounds that offer each agent's free resources to one framework,
//! DRF-style (lowest dominant share first), honouring suppression and refuse filters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Filter, Master, OutstandingOffer};
use crate::res::Bag;
use crate::wire::*;

/// Mesos caps refuse_seconds at 365 days.
const MAX_REFUSE_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

impl Master {
    /// One allocation round; sends one OFFERS event per framework that got offers.
    pub fn allocate(&mut self) {
        let now = Instant::now();
        self.filters.retain(|f| f.until > now);
        let mut new_offers: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
        for agent in 0..self.agents.len() {
            if !self.agent_registered(agent) {
                continue;
            }
            let free = self.agents[agent]
                .total
                .minus(&self.used_on(agent))
                .minus(&self.offered_on(agent));
            if !free.allocatable() {
                continue;
            }
            let Some((framework_id, role)) = self.pick_framework(agent, &free) else {
                continue;
            };
            let offer = self.make_offer(&framework_id, agent, &role, free);
            new_offers.entry(framework_id).or_default().push(offer);
        }
        for (framework_id, offers) in new_offers {
            tracing::debug!(framework_id = %framework_id, count = offers.len(), "sending offers");
            if let Some(fw) = self.frameworks.get(&framework_id) {
                fw.send(Event::offers(offers));
            }
        }
    }

    /// The connected framework with the lowest dominant share that wants this agent.
    fn pick_framework(&self, agent: usize, free: &Bag) -> Option<(String, String)> {
        let totals = self
            .agents
            .iter()
            .filter(|a| a.removed.is_none())
            .fold(Bag::default(), |acc, a| acc.plus(&a.total));
        let mut best: Option<(f64, String, String)> = None;
        for fw in self.frameworks.values() {
            if !fw.connected() {
                continue;
            }
            let Some(role) = fw.roles().into_iter().find(|r| !fw.suppressed.contains(r)) else {
                continue;
            };
            let filtered = self
                .filters
                .iter()
                .any(|f| f.framework_id == fw.id && f.agent == agent && f.bag.contains(free));
            if filtered {
                continue;
            }
            let held = self.used_by(&fw.id).plus(&self.offered_to(&fw.id));
            let share = ["cpus", "mem", "disk"]
                .iter()
                .map(|n| {
                    let t = totals.scalar(n);
                    if t > 0.0 { held.scalar(n) / t } else { 0.0 }
                })
                .fold(0.0_f64, f64::max);
            let better = match &best {
                None => true,
                Some((s, id, _)) => share < *s || (share == *s && fw.id < *id),
            };
            if better {
                best = Some((share, fw.id.clone(), role));
            }
        }
        best.map(|(_, id, role)| (id, role))
    }

    fn make_offer(&mut self, framework_id: &str, agent: usize, role: &str, bag: Bag) -> Offer {
        let id = format!("{}-O{}", self.config.master_id, self.next_offer);
        self.next_offer += 1;
        let multi_role = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.multi_role());
        let a = &self.agents[agent];
        let offer = Offer {
            id: OfferId::new(id.clone()),
            framework_id: FrameworkId::new(framework_id),
            agent_id: AgentId::new(a.id.clone()),
            hostname: a.hostname.clone(),
            url: Some(Url {
                scheme: "http".into(),
                address: Address {
                    hostname: Some(a.hostname.clone()),
                    ip: Some(self.config.ip.to_string()),
                    port: i32::from(self.config.port),
                },
                path: Some(format!("/{}", a.process)),
                ..Url::default()
            }),
            resources: bag.to_resources(multi_role.then_some(role)),
            allocation_info: multi_role.then(|| AllocationInfo {
                role: Some(role.to_string()),
            }),
            attributes: a.attributes.clone(),
            ..Offer::default()
        };
        self.offers.insert(
            id,
            OutstandingOffer {
                offer: offer.clone(),
                framework_id: framework_id.to_string(),
                agent,
                bag,
                role: role.to_string(),
                created: Instant::now(),
            },
        );
        offer
    }

    /// Filters `bag` on `agent` for the framework, as DECLINE / unused ACCEPT resources are.
    pub(super) fn add_filter(
        &mut self,
        framework_id: &str,
        agent: usize,
        bag: Bag,
        filters: Option<&Filters>,
    ) {
        let mut refuse = filters.map_or(5.0, |f| f.refuse_seconds);
        if !refuse.is_finite() || refuse < 0.0 {
            refuse = 5.0;
        }
        if refuse == 0.0 || bag.is_empty() {
            return;
        }
        let refuse = refuse.min(MAX_REFUSE_SECONDS);
        let timeout = Duration::from_secs_f64(refuse).max(self.config.allocation_interval);
        self.filters.push(Filter {
            framework_id: framework_id.to_string(),
            agent,
            bag,
            until: Instant::now() + timeout,
        });
    }

    /// Clears a framework's refuse filters (REVIVE).
    pub(super) fn clear_filters(&mut self, framework_id: &str) {
        self.filters.retain(|f| f.framework_id != framework_id);
    }

    /// Rescinds offers older than `--offer_timeout`.
    pub fn expire_offers(&mut self) {
        let Some(timeout) = self.config.offer_timeout else {
            return;
        };
        let now = Instant::now();
        let expired: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| now.duration_since(o.created) >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(o) = self.offers.remove(&id) {
                tracing::info!(offer_id = %id, framework_id = %o.framework_id, "rescinding expired offer");
                if let Some(fw) = self.frameworks.get(&o.framework_id) {
                    fw.send(Event::rescind(OfferId::new(id)));
                }
            }
        }
    }
}
