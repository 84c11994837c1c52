//! The dispatch queue: fair among tenants, priority order within each.
//!
//! Every tenant with work queued or running has a queue of its own
//! (higher priority first, then older first) and a virtual clock: the
//! slot time its finished attempts used (their wall duration), divided by
//! its weight (1 for every tenant today). The next unit comes from the
//! tenant with the smallest clock among those that may start one now; a
//! tenant that becomes active starts at the smallest clock in use, so
//! time spent idle is not banked as credit. A tenant's state is dropped
//! when it has nothing queued or running.
//!
//! Clocks move only when attempts finish, so a tenant whose attempts are
//! long has a low clock while they run; the slot rules below keep it from
//! taking every slot meanwhile. A tenant may start an attempt only while
//!
//! - it runs fewer than its own cap (`max_concurrent_attempts`, when
//!   not 0); on a cluster, fewer than the permits this node holds for it,
//!   which the nodes take from the database within the cap (see
//!   [`FairQueue::wanting`]), so the cap holds across nodes;
//! - it runs fewer than the slots less the reserve: the reserve is kept
//!   for tenants whose work arrives while one tenant floods the node, so
//!   they find a slot free rather than wait for one to free;
//! - while another tenant is waiting too, it runs fewer than its share:
//!   the slots divided by the tenants active. When every waiting tenant
//!   is at its share and slots are still free, the clocks alone decide,
//!   so no slot is left idle while work waits.
//!
//! Priority orders units within a tenant, never across tenants: one
//! tenant's high priority must not starve another.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::model::{Millis, RunId, UnitKey};

/// A unit waiting for a slot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Queued {
    pub priority: i32,
    /// When it was queued, among all units: older first at equal priority.
    pub seq: u64,
    pub run: RunId,
    pub key: UnitKey,
    /// The run's tenant.
    pub tenant: Arc<str>,
    /// The tenant's cap on attempts at once when the run started (0: none
    /// but the node's).
    pub limit: u32,
    /// When this node queued it (became ready here), for the age of the
    /// oldest ready unit.
    pub since: Millis,
}

impl Ord for Queued {
    /// Higher priority first, then older first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One active tenant.
#[derive(Debug, Default)]
struct Tenant {
    units: BinaryHeap<Queued>,
    /// Virtual time, in nanoseconds of slot time.
    clock: u64,
    /// Its attempts running.
    running: usize,
    /// Its cap on attempts at once, from the unit queued last (0: none).
    limit: u32,
}

/// Units waiting for a slot, by tenant, and which tenant each running
/// attempt is charged to.
#[derive(Debug)]
pub(crate) struct FairQueue {
    tenants: HashMap<Arc<str>, Tenant>,
    running: HashMap<(RunId, UnitKey), Arc<str>>,
    /// Units queued, over every tenant.
    len: usize,
    slots: usize,
    /// Slots no single tenant may take.
    reserve: usize,
    /// On a cluster, the permits this node holds for each capped tenant;
    /// `None` on one node, where the cap alone counts.
    permits: Option<HashMap<Arc<str>, u32>>,
}

impl FairQueue {
    /// A queue for a node of `slots` attempt slots, `reserve` of which no
    /// single tenant may take.
    pub fn new(slots: usize, reserve: usize) -> FairQueue {
        FairQueue {
            tenants: HashMap::new(),
            running: HashMap::new(),
            len: 0,
            slots,
            reserve: reserve.min(slots.saturating_sub(1)),
            permits: None,
        }
    }

    /// Runs capped tenants' attempts only with permits (on a cluster).
    pub fn with_permits(mut self) -> FairQueue {
        self.permits = Some(HashMap::new());
        self
    }

    /// Capped tenants with units waiting that this node holds too few
    /// permits for, and how many more each could use (at most its cap):
    /// what to ask the cluster for.
    pub fn wanting(&self) -> Vec<(Arc<str>, u32, u32)> {
        let Some(permits) = &self.permits else {
            return Vec::new();
        };
        self.tenants
            .iter()
            .filter(|(_, t)| t.limit > 0 && !t.units.is_empty())
            .filter_map(|(name, t)| {
                let held = permits.get(name).copied().unwrap_or(0);
                let wanted = (t.units.len() as u32).min(t.limit.saturating_sub(held));
                (t.running as u32 >= held && wanted > 0).then(|| (name.clone(), wanted, t.limit))
            })
            .collect()
    }

    /// Drops every permit held (they belonged to an incarnation of this
    /// node that was declared dead).
    pub fn forget_permits(&mut self) {
        if let Some(permits) = &mut self.permits {
            permits.clear();
        }
    }

    /// The cluster granted `count` more permits for `tenant`.
    pub fn grant(&mut self, tenant: &Arc<str>, count: u32) {
        if let Some(permits) = &mut self.permits
            && count > 0
        {
            *permits.entry(tenant.clone()).or_default() += count;
        }
    }

    /// Permits held for no running attempt and no queued unit (their
    /// units went, e.g. cancelled): dropped here, to give back.
    pub fn surplus(&mut self) -> Vec<(Arc<str>, u32)> {
        let Some(permits) = &mut self.permits else {
            return Vec::new();
        };
        let tenants = &self.tenants;
        let mut surplus = Vec::new();
        permits.retain(|name, held| {
            let (running, queued) = tenants.get(name).map_or((0, 0), |t| (t.running as u32, t.units.len()));
            if queued == 0 && *held > running {
                surplus.push((name.clone(), *held - running));
                *held = running;
            }
            *held > 0
        });
        surplus
    }

    /// Units queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no unit is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The runs of the queued units (a run once per unit).
    pub fn runs(&self) -> impl Iterator<Item = RunId> + '_ {
        self.tenants.values().flat_map(|t| t.units.iter().map(|u| u.run))
    }

    /// How many units each tenant has queued (tenants with none are left
    /// out), and when the oldest queued unit was queued. Walks every
    /// queued unit: for a scrape, not for every turn of the scheduler.
    pub fn ready(&self) -> (Vec<(Arc<str>, usize)>, Option<Millis>) {
        let counts = self
            .tenants
            .iter()
            .filter(|(_, t)| !t.units.is_empty())
            .map(|(name, t)| (name.clone(), t.units.len()))
            .collect();
        let oldest = self
            .tenants
            .values()
            .flat_map(|t| t.units.iter())
            .map(|u| u.since)
            .min();
        (counts, oldest)
    }

    pub fn push(&mut self, unit: Queued) {
        let tenant = self.activate(&unit.tenant);
        tenant.limit = unit.limit;
        tenant.units.push(unit);
        self.len += 1;
    }

    pub fn extend(&mut self, units: impl IntoIterator<Item = Queued>) {
        for unit in units {
            self.push(unit);
        }
    }

    /// The tenant's state, made at the smallest clock in use if it was
    /// not active.
    fn activate(&mut self, name: &Arc<str>) -> &mut Tenant {
        if !self.tenants.contains_key(name) {
            let clock = self.tenants.values().map(|t| t.clock).min().unwrap_or(0);
            self.tenants.insert(
                name.clone(),
                Tenant {
                    clock,
                    ..Tenant::default()
                },
            );
        }
        self.tenants.get_mut(name).expect("just inserted")
    }

    /// Takes the next unit to start, if a tenant may start one now (see
    /// the module's doc). The caller checks that a slot is free.
    pub fn pop(&mut self) -> Option<Queued> {
        let per_tenant = self.slots - self.reserve;
        let permits = &self.permits;
        let may_start = |name: &Arc<str>, t: &Tenant| {
            let cap = match permits {
                Some(permits) => permits.get(name).copied().unwrap_or(0).min(t.limit),
                None => t.limit,
            };
            !t.units.is_empty() && t.running < per_tenant && (t.limit == 0 || t.running < cap as usize)
        };
        let waiting = self.tenants.iter().filter(|(name, t)| may_start(name, t)).count();
        if waiting == 0 {
            return None;
        }
        let share = self.slots.div_ceil(self.tenants.len());
        let under_share = waiting > 1
            && self
                .tenants
                .iter()
                .any(|(name, t)| may_start(name, t) && t.running < share);
        let (_, tenant) = self
            .tenants
            .iter_mut()
            .filter(|(name, t)| may_start(name, t) && (!under_share || t.running < share))
            .min_by_key(|(_, t)| (t.clock, t.running, t.units.peek().map(|u| u.seq)))?;
        let unit = tenant.units.pop()?;
        self.len -= 1;
        let name = unit.tenant.clone();
        self.prune(&name);
        Some(unit)
    }

    /// An attempt of `unit` started, in one of its tenant's slots.
    pub fn started(&mut self, unit: &Queued) {
        self.activate(&unit.tenant).running += 1;
        self.running.insert((unit.run, unit.key), unit.tenant.clone());
    }

    /// An attempt ended (or was abandoned), having held its slot for
    /// `used`: its tenant's clock advances by that much. Returns the
    /// tenant when the attempt held a permit, now to give back.
    pub fn finished(&mut self, run: RunId, key: UnitKey, used: Duration) -> Option<Arc<str>> {
        let name = self.running.remove(&(run, key))?;
        let mut permit = None;
        if let Some(tenant) = self.tenants.get_mut(&name) {
            tenant.running -= 1;
            tenant.clock = tenant
                .clock
                .saturating_add(used.as_nanos().min(u64::MAX as u128) as u64);
            if let Some(held) = self.permits.as_mut().and_then(|p| p.get_mut(&name))
                && *held > 0
            {
                *held -= 1;
                permit = Some(name.clone());
            }
        }
        self.prune(&name);
        permit
    }

    /// Forgets a tenant with nothing queued or running.
    fn prune(&mut self, name: &Arc<str>) {
        if self
            .tenants
            .get(name)
            .is_some_and(|t| t.units.is_empty() && t.running == 0)
        {
            self.tenants.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(tenant: &str, seq: u64, priority: i32) -> Queued {
        Queued {
            priority,
            seq,
            run: RunId(seq),
            key: UnitKey::step(0),
            tenant: tenant.into(),
            limit: 0,
            since: seq,
        }
    }

    /// Pops one and starts it, returning its tenant and seq.
    fn start(queue: &mut FairQueue) -> Option<(String, u64)> {
        let unit = queue.pop()?;
        queue.started(&unit);
        Some((unit.tenant.to_string(), unit.seq))
    }

    #[test]
    fn priority_then_age_orders_a_tenants_units() {
        let mut queue = FairQueue::new(8, 0);
        queue.extend([unit("a", 1, 0), unit("a", 2, 5), unit("a", 3, 0), unit("a", 4, 5)]);
        let order: Vec<u64> = std::iter::from_fn(|| start(&mut queue).map(|(_, seq)| seq)).collect();
        assert_eq!(order, [2, 4, 1, 3]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_tenant_arriving_behind_a_flood_goes_next() {
        let mut queue = FairQueue::new(4, 0);
        queue.extend((1..=100).map(|seq| unit("heavy", seq, 0)));
        for _ in 0..4 {
            start(&mut queue);
        }
        queue.finished(RunId(1), UnitKey::step(0), Duration::from_millis(40));
        queue.push(unit("light", 101, -10));
        assert_eq!(start(&mut queue), Some(("light".into(), 101)));
    }

    #[test]
    fn clocks_charge_by_time_so_a_costly_tenant_gets_fewer_attempts() {
        // Two tenants, one slot: "slow" attempts take 4x as long.
        let mut queue = FairQueue::new(1, 0);
        let mut seq = 0;
        for _ in 0..100 {
            for tenant in ["slow", "fast"] {
                seq += 1;
                queue.push(unit(tenant, seq, 0));
            }
        }
        let mut started = HashMap::<String, u32>::new();
        for _ in 0..50 {
            let unit = queue.pop().unwrap();
            queue.started(&unit);
            *started.entry(unit.tenant.to_string()).or_default() += 1;
            let used = if &*unit.tenant == "slow" { 40 } else { 10 };
            queue.finished(unit.run, unit.key, Duration::from_millis(used));
        }
        assert_eq!((started["slow"], started["fast"]), (10, 40), "{started:?}");
    }

    #[test]
    fn idle_time_is_not_banked() {
        let mut queue = FairQueue::new(1, 0);
        queue.extend((1..=3).map(|seq| unit("a", seq, 0)));
        for _ in 0..2 {
            let unit = queue.pop().unwrap();
            queue.started(&unit);
            queue.finished(unit.run, unit.key, Duration::from_secs(10));
        }
        // "b" arrives after "a" used 20 s: it does not get 20 s of turns.
        queue.extend((10..=12).map(|seq| unit("b", seq, 0)));
        queue.push(unit("a", 4, 0));
        let mut order = Vec::new();
        while let Some(unit) = queue.pop() {
            queue.started(&unit);
            order.push(unit.tenant.to_string());
            queue.finished(unit.run, unit.key, Duration::from_secs(10));
        }
        assert_eq!(
            order,
            ["a", "b", "a", "b", "b"],
            "they take turns, older first on a tie"
        );
    }

    #[test]
    fn a_tenant_stays_off_the_reserve() {
        let mut queue = FairQueue::new(8, 2);
        queue.extend((1..=20).map(|seq| unit("a", seq, 0)));
        let alone: Vec<_> = std::iter::from_fn(|| start(&mut queue)).collect();
        assert_eq!(alone.len(), 6, "the reserve of 2 stays free");
        queue.push(unit("b", 21, 0));
        assert_eq!(start(&mut queue), Some(("b".into(), 21)));
    }

    #[test]
    fn a_tenant_is_held_to_its_share_while_others_wait() {
        let mut queue = FairQueue::new(8, 0);
        queue.extend((1..=20).map(|seq| unit("a", seq, 0)));
        for _ in 0..4 {
            start(&mut queue);
        }
        // "b" has used 10 s of slot time; "a"'s 4 attempts have not ended,
        // so its clock is still behind.
        queue.extend((30..=40).map(|seq| unit("b", seq, 0)));
        let first = queue.pop().unwrap();
        queue.started(&first);
        queue.finished(first.run, first.key, Duration::from_secs(10));
        let order: Vec<String> = (0..5).filter_map(|_| start(&mut queue)).map(|(t, _)| t).collect();
        assert_eq!(order, ["b", "b", "b", "b", "a"], "a is at its share of 4 until b is");
    }

    #[test]
    fn a_tenant_is_held_to_its_own_cap() {
        let mut queue = FairQueue::new(8, 0);
        queue.extend((1..=20).map(|seq| Queued {
            limit: 3,
            ..unit("capped", seq, 0)
        }));
        queue.push(unit("other", 30, 0));
        let started: Vec<_> = std::iter::from_fn(|| start(&mut queue)).collect();
        assert_eq!(started.iter().filter(|(t, _)| t == "capped").count(), 3);
        assert_eq!(started.len(), 4);
    }

    #[test]
    fn no_slot_idles_while_every_waiting_tenant_is_at_its_share() {
        // Three active tenants (share 3 of 8); "c" runs 1 at its cap of 1.
        let mut queue = FairQueue::new(8, 0);
        queue.push(Queued {
            limit: 1,
            ..unit("c", 1, 0)
        });
        queue.push(Queued {
            limit: 1,
            ..unit("c", 2, 0)
        });
        start(&mut queue);
        queue.extend((10..=20).map(|seq| unit("a", seq, 0)));
        queue.extend((30..=40).map(|seq| unit("b", seq, 0)));
        let mut started = 1;
        while started < 8 && start(&mut queue).is_some() {
            started += 1;
        }
        assert_eq!(started, 8);
    }

    #[test]
    fn ready_counts_queued_units_by_tenant_and_finds_the_oldest() {
        let mut queue = FairQueue::new(1, 0);
        assert_eq!(queue.ready(), (vec![], None));
        queue.extend([unit("a", 5, 0), unit("a", 3, 9), unit("b", 7, 0)]);
        start(&mut queue); // "a"'s priority 9 unit, queued at 3
        let (mut counts, oldest) = queue.ready();
        counts.sort();
        assert_eq!(counts, [("a".into(), 1), ("b".into(), 1)]);
        assert_eq!(oldest, Some(5), "the unit started is no longer waiting");
    }

    #[test]
    fn an_abandoned_attempt_frees_its_slot_and_unknown_ones_are_ignored() {
        let mut queue = FairQueue::new(2, 0);
        queue.push(unit("a", 1, 0));
        start(&mut queue);
        queue.finished(RunId(1), UnitKey::step(0), Duration::ZERO);
        queue.finished(RunId(1), UnitKey::step(0), Duration::ZERO);
        queue.finished(RunId(9), UnitKey::step(0), Duration::ZERO);
        assert!(queue.tenants.is_empty() && queue.running.is_empty());
    }

    #[test]
    fn on_a_cluster_a_capped_tenant_runs_only_with_permits() {
        let capped = |seq| Queued {
            limit: 2,
            ..unit("a", seq, 0)
        };
        let mut queue = FairQueue::new(8, 0).with_permits();
        queue.extend((1..=5).map(capped));
        queue.push(unit("b", 9, 0));
        let name: Arc<str> = "a".into();
        assert_eq!(queue.wanting(), [(name.clone(), 2, 2)], "up to its cap");
        assert_eq!(start(&mut queue), Some(("b".into(), 9)), "uncapped b needs none");
        assert_eq!(start(&mut queue), None, "a waits for permits");

        queue.grant(&name, 1);
        assert_eq!(start(&mut queue), Some(("a".into(), 1)));
        assert_eq!(start(&mut queue), None);
        assert_eq!(queue.wanting(), [(name.clone(), 1, 2)], "one more, up to the cap");
        assert_eq!(
            queue.finished(RunId(1), UnitKey::step(0), Duration::ZERO),
            Some(name.clone()),
            "its permit goes back"
        );
        assert_eq!(
            queue.finished(RunId(9), UnitKey::step(0), Duration::ZERO),
            None,
            "b held none"
        );

        // Granted, then its units went (cancelled): the permits go back.
        queue.grant(&name, 2);
        while queue.tenants.get("a").is_some_and(|t| !t.units.is_empty()) {
            queue.tenants.get_mut("a").unwrap().units.pop();
            queue.len -= 1;
        }
        assert_eq!(queue.surplus(), [(name.clone(), 2)]);
        assert_eq!(queue.surplus(), []);
        assert!(queue.wanting().is_empty());
    }
}
