//! The CPU gate: guest code runs only while its attempt holds one of a
//! few tokens (one per core), and waiting attempts get a token in order of
//! their tenant's CPU time, so one tenant's many CPU-bound attempts cannot
//! make another tenant's attempt wait for a core.
//!
//! An attempt is one future (instantiation and the call), and a poll of it
//! runs guest code until the guest returns, blocks in a host call, or
//! yields at an epoch tick; so a poll lasts at most about one tick. The
//! gate decides when an attempt may be polled: it polls the attempt with a
//! waker of its own, and when the attempt is woken (at once, when it
//! yielded at a tick; later, when a host call it waits on completes) it
//! joins its tenant's line instead of the async runtime's queue. A token
//! given back after a poll goes to the attempt at the head of the line of
//! the tenant with the smallest clock (then the fewest tokens held, then
//! the longest wait), whose task is then woken; the poll's duration is
//! added to its tenant's clock. A tenant with no attempt in the gate is
//! forgotten, and one that comes back starts at the smallest clock in use:
//! no banked credit.
//!
//! An attempt that joins a line while every token is held by a tenant
//! with a larger clock (or as large, holding more tokens) does not wait
//! for the next tick: the gate asks the running guests to yield at once
//! (the sandbox advances the epoch), so a light tenant's attempt waits
//! microseconds for a core, not a tick. A tenant that has had more CPU
//! never preempts one that has had less, so preemption cannot thrash.
//!
//! So the runtime's queue holds at most one attempt per token, and its
//! other work (the scheduler, the store's connections, HTTP) waits behind
//! those polls only, not behind every attempt that wants a core. Before
//! each poll but its first, an attempt yields to the runtime once
//! (`yield_now`, which tokio defers until the worker has polled its I/O
//! driver): a worker that runs guests back to back otherwise looks at
//! its sockets only every 61 polls, which at a tick a poll is every 61 ms,
//! and every round trip to PostgreSQL waited tens of milliseconds under a
//! flood. Attempts that end in their first poll (most do) skip it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Hands out CPU tokens fairly among tenants. Share it with an `Arc`.
pub(crate) struct CpuGate {
    state: Mutex<State>,
    /// Makes the guests running now yield soon.
    preempt: Box<dyn Fn() + Send + Sync>,
}

#[derive(Debug)]
struct State {
    /// Tokens nobody holds. While one is free, no attempt waits.
    free: usize,
    tenants: HashMap<Arc<str>, Tenant>,
    attempts: HashMap<u64, Attempt>,
    next_attempt: u64,
    /// When each attempt joined a line, to serve the longest wait first.
    next_turn: u64,
}

#[derive(Debug, Default)]
struct Tenant {
    /// CPU time of its polls, in nanoseconds, from the smallest clock in
    /// use when it became active.
    clock: u64,
    /// Its attempts in the gate, in any phase.
    attempts: usize,
    /// Tokens it holds.
    holding: usize,
    /// Its attempts waiting for a token, with when they joined.
    line: VecDeque<(u64, u64)>,
}

#[derive(Debug)]
struct Attempt {
    tenant: Arc<str>,
    phase: Phase,
    /// The task that polls it, woken when it is granted a token.
    task: Option<Waker>,
    /// Woken while being polled: it wants the CPU again.
    woken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Holds a token: granted one, or being polled.
    Holding,
    /// In its tenant's line.
    Waiting,
    /// Waiting for something else (a host call), not for the CPU.
    Parked,
}

impl CpuGate {
    /// A gate of `tokens` tokens (at least one), calling `preempt` to
    /// make running guests yield for an attempt whose turn has come.
    pub fn new(tokens: usize, preempt: impl Fn() + Send + Sync + 'static) -> CpuGate {
        CpuGate {
            preempt: Box::new(preempt),
            state: Mutex::new(State {
                free: tokens.max(1),
                tenants: HashMap::new(),
                attempts: HashMap::new(),
                next_attempt: 0,
                next_turn: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `attempt`, each poll of it holding a token and charged to
    /// `tenant`.
    pub async fn run<F: Future>(self: &Arc<Self>, tenant: &str, attempt: F) -> F::Output {
        let mut attempt = pin!(attempt);
        let ticket = Ticket::new(self, tenant);
        let waker = Waker::from(Arc::new(Signal {
            gate: self.clone(),
            id: ticket.id,
        }));
        let mut first = true;
        loop {
            std::future::poll_fn(|cx| match ticket.holds(cx.waker()) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            })
            .await;
            if !std::mem::take(&mut first) {
                tokio::task::yield_now().await;
            }
            let began = Instant::now();
            let polled = attempt.as_mut().poll(&mut Context::from_waker(&waker));
            ticket.release(began.elapsed(), polled.is_ready());
            if let Poll::Ready(output) = polled {
                return output;
            }
        }
    }
}

/// What became of an attempt that wants the CPU.
enum Wanted {
    /// It was given a token: wake its task (if it has been polled).
    Granted(Option<Waker>),
    /// It waits in line.
    Waiting {
        /// Its tenant comes before a tenant holding a token: the running
        /// guests should yield now.
        preempt: bool,
    },
}

impl State {
    /// Puts an attempt that wants the CPU in its tenant's line, or gives
    /// it a free token.
    fn want(&mut self, id: u64) -> Wanted {
        let turn = self.next_turn;
        self.next_turn += 1;
        let Some(attempt) = self.attempts.get_mut(&id) else {
            return Wanted::Waiting { preempt: false };
        };
        attempt.phase = Phase::Waiting;
        let tenant = self.tenants.get_mut(&attempt.tenant).expect("an attempt's tenant");
        tenant.line.push_back((turn, id));
        let mine = (tenant.clock, tenant.holding);
        if self.free > 0 {
            self.free -= 1;
            return Wanted::Granted(self.grant());
        }
        let preempt = self
            .tenants
            .values()
            .any(|t| t.holding > 0 && mine < (t.clock, t.holding));
        Wanted::Waiting { preempt }
    }

    /// Gives a token nobody holds to the attempt whose turn it is, or
    /// frees it when none waits; returns the task to wake.
    fn grant(&mut self) -> Option<Waker> {
        let next = self
            .tenants
            .values_mut()
            .filter(|t| !t.line.is_empty())
            .min_by_key(|t| (t.clock, t.holding, t.line.front().map(|(turn, _)| *turn)));
        let Some(tenant) = next else {
            self.free += 1;
            return None;
        };
        let (_, id) = tenant.line.pop_front().expect("a tenant in line");
        tenant.holding += 1;
        let attempt = self.attempts.get_mut(&id).expect("an attempt in line");
        attempt.phase = Phase::Holding;
        attempt.task.clone()
    }
}

/// An attempt's place in the gate, left when it drops.
struct Ticket<'a> {
    gate: &'a CpuGate,
    id: u64,
}

impl<'a> Ticket<'a> {
    fn new(gate: &'a CpuGate, tenant: &str) -> Ticket<'a> {
        let mut state = gate.lock();
        let tenant: Arc<str> = match state.tenants.get_key_value(tenant) {
            Some((name, _)) => name.clone(),
            None => {
                let clock = state.tenants.values().map(|t| t.clock).min().unwrap_or(0);
                let name: Arc<str> = tenant.into();
                state.tenants.insert(
                    name.clone(),
                    Tenant {
                        clock,
                        ..Tenant::default()
                    },
                );
                name
            }
        };
        state.tenants.get_mut(&tenant).expect("just inserted").attempts += 1;
        let id = state.next_attempt;
        state.next_attempt += 1;
        state.attempts.insert(
            id,
            Attempt {
                tenant,
                phase: Phase::Parked,
                task: None,
                woken: false,
            },
        );
        // It wants the CPU for its first poll (it has no task to wake yet).
        let wanted = state.want(id);
        drop(state);
        if let Wanted::Waiting { preempt: true } = wanted {
            (gate.preempt)();
        }
        Ticket { gate, id }
    }

    /// Whether it holds a token, so may be polled; `task` is woken when
    /// it is given one.
    fn holds(&self, task: &Waker) -> bool {
        let mut state = self.gate.lock();
        let attempt = state.attempts.get_mut(&self.id).expect("a ticket's attempt");
        match &mut attempt.task {
            Some(known) => known.clone_from(task),
            None => attempt.task = Some(task.clone()),
        }
        attempt.phase == Phase::Holding
    }

    /// Gives back the token after a poll that took `took`, and puts the
    /// attempt back in line if it was woken meanwhile and is not done.
    fn release(&self, took: Duration, done: bool) {
        let (me, next) = {
            let mut state = self.gate.lock();
            let state = &mut *state;
            let attempt = state.attempts.get_mut(&self.id).expect("a ticket's attempt");
            attempt.phase = Phase::Parked;
            let again = std::mem::take(&mut attempt.woken) && !done;
            let tenant = state.tenants.get_mut(&attempt.tenant).expect("an attempt's tenant");
            tenant.holding -= 1;
            tenant.clock = tenant
                .clock
                .saturating_add(took.as_nanos().min(u64::MAX as u128) as u64);
            // In line before the token is handed on, so it can be its own
            // successor when its tenant's turn has come again (and it
            // never preempts: the token it gives back is the next one).
            let me = match again.then(|| state.want(self.id)) {
                Some(Wanted::Granted(task)) => task,
                _ => None,
            };
            (me, state.grant())
        };
        for task in [me, next].into_iter().flatten() {
            task.wake();
        }
    }
}

impl Drop for Ticket<'_> {
    /// Leaves the gate: a token granted and not used goes to the next in
    /// line, and a tenant with no attempt left is forgotten.
    fn drop(&mut self) {
        let next = {
            let mut state = self.gate.lock();
            let Some(attempt) = state.attempts.remove(&self.id) else {
                return;
            };
            let tenant = state.tenants.get_mut(&attempt.tenant).expect("an attempt's tenant");
            tenant.attempts -= 1;
            match attempt.phase {
                Phase::Holding => tenant.holding -= 1,
                Phase::Waiting => tenant.line.retain(|(_, id)| *id != self.id),
                Phase::Parked => {}
            }
            if tenant.attempts == 0 {
                state.tenants.remove(&attempt.tenant);
            }
            if attempt.phase == Phase::Holding {
                state.grant()
            } else {
                None
            }
        };
        if let Some(task) = next {
            task.wake();
        }
    }
}

/// The waker an attempt is polled with: waking it asks the gate for the
/// CPU rather than queueing the task on the runtime.
struct Signal {
    gate: Arc<CpuGate>,
    id: u64,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wanted = {
            let mut state = self.gate.lock();
            let Some(attempt) = state.attempts.get_mut(&self.id) else {
                return;
            };
            match attempt.phase {
                Phase::Holding => {
                    attempt.woken = true;
                    return;
                }
                Phase::Waiting => return,
                Phase::Parked => state.want(self.id),
            }
        };
        match wanted {
            Wanted::Granted(Some(task)) => task.wake(),
            Wanted::Waiting { preempt: true } => (self.gate.preempt)(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Log = Arc<Mutex<Vec<(&'static str, Duration)>>>;

    /// An attempt of `tenant` that computes for `slice` (sleeping the
    /// thread, as guest code holds it) in each of `polls` polls, yielding
    /// between them as a guest does at an epoch tick.
    async fn compute(gate: Arc<CpuGate>, tenant: &'static str, polls: usize, slice: Duration, log: Log) {
        let mut left = polls;
        let work = std::future::poll_fn(|cx| {
            let began = Instant::now();
            std::thread::sleep(slice);
            log.lock().unwrap().push((tenant, began.elapsed()));
            left -= 1;
            if left == 0 {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        gate.run(tenant, work).await;
    }

    fn assert_empty(gate: &CpuGate, tokens: usize) {
        let state = gate.lock();
        assert_eq!(state.free, tokens);
        assert!(state.tenants.is_empty() && state.attempts.is_empty(), "{state:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_light_attempt_waits_about_one_poll_behind_a_flood() {
        let preempted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gate = Arc::new(CpuGate::new(1, {
            let preempted = preempted.clone();
            move || {
                preempted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        let log = Log::default();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            tasks.spawn(compute(
                gate.clone(),
                "heavy",
                20,
                Duration::from_micros(200),
                log.clone(),
            ));
        }
        while log.lock().unwrap().len() < 40 {
            tokio::task::yield_now().await;
        }
        let arrived = log.lock().unwrap().len();
        let preempted_before = preempted.load(std::sync::atomic::Ordering::Relaxed);
        tasks.spawn(compute(
            gate.clone(),
            "light",
            3,
            Duration::from_micros(200),
            log.clone(),
        ));
        tasks.join_all().await;
        assert_eq!(preempted_before, 0, "a tenant's attempts never preempt each other");
        assert_eq!(
            preempted.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "the light tenant arriving preempts the flood, once"
        );
        let log = log.lock().unwrap();
        let light: Vec<usize> = (0..log.len()).filter(|i| log[*i].0 == "light").collect();
        assert!(
            light[0] <= arrived + 2,
            "light ran first at poll {} of the flood, arriving at {arrived}",
            light[0]
        );
        assert!(
            light[2] <= arrived + 12,
            "light's polls came at {light:?}, arriving at {arrived}"
        );
        drop(log);
        assert_empty(&gate, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn tenants_get_equal_cpu_time_whatever_their_polls_cost() {
        let gate = Arc::new(CpuGate::new(1, || {}));
        let log = Log::default();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            tasks.spawn(compute(
                gate.clone(),
                "costly",
                100,
                Duration::from_micros(800),
                log.clone(),
            ));
            tasks.spawn(compute(
                gate.clone(),
                "cheap",
                400,
                Duration::from_micros(200),
                log.clone(),
            ));
        }
        while log.lock().unwrap().len() < 300 {
            tokio::task::yield_now().await;
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let log = log.lock().unwrap();
        let time = |tenant| {
            log.iter()
                .filter(|(t, _)| *t == tenant)
                .map(|(_, d)| *d)
                .sum::<Duration>()
        };
        let (costly, cheap) = (time("costly"), time("cheap"));
        let ratio = costly.as_secs_f64() / cheap.as_secs_f64();
        assert!((0.8..1.25).contains(&ratio), "costly {costly:?}, cheap {cheap:?}");
        drop(log);
        assert_empty(&gate, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_attempt_waiting_on_a_host_call_holds_no_token() {
        let gate = Arc::new(CpuGate::new(1, || {}));
        let (send, receive) = tokio::sync::oneshot::channel::<()>();
        let blocked = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run("a", receive).await.unwrap() }
        });
        tokio::task::yield_now().await;
        // While "a" waits for the message, "b" computes.
        let log = Log::default();
        compute(gate.clone(), "b", 3, Duration::ZERO, log.clone()).await;
        assert_eq!(log.lock().unwrap().len(), 3);
        send.send(()).unwrap();
        blocked.await.unwrap();
        assert_empty(&gate, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn attempts_dropped_waiting_or_granted_give_their_place_back() {
        let gate = Arc::new(CpuGate::new(2, || {}));
        let log = Log::default();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let work = compute(
                gate.clone(),
                if i % 2 == 0 { "a" } else { "b" },
                1_000,
                Duration::ZERO,
                log.clone(),
            );
            tasks.spawn(async move { tokio::time::timeout(Duration::from_millis(1 + i), work).await });
        }
        tasks.join_all().await;
        assert_empty(&gate, 2);
        compute(gate.clone(), "a", 2, Duration::ZERO, log).await;
        assert_empty(&gate, 2);
    }
}
