//! A deterministic executor for the simulator: the production code's futures (the
//! driver loop, sessions' transactions, commits waiting for a sync) run here instead of
//! on tokio, polled one at a time in the order they were woken, with simulated time.
//!
//! ```text
//!   world event ──▶ wakes futures (a sync answered, a message queued, a timer fired)
//!               ──▶ run_until_stalled: poll woken futures in wake order until none is
//!                   ready ──▶ the world collects what they produced, next event
//! ```
//!
//! Nothing here reads a real clock or spawns a thread, so a seed replays exactly. Time is
//! the world's: [`SimTime::sleep`] registers a timer the world turns into an event. A DC's
//! crash drops every future it owns ([`Executor::kill`]), as a process exit would.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;
use replication::DcId;
use txn::PhysicalClock;

/// Polls one `run_until_stalled` may make before the run is declared livelocked.
const POLLS_MAX: usize = 10_000_000;

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Futures owned by simulated data centers.
#[derive(Default)]
pub struct Executor {
    tasks: BTreeMap<u64, (DcId, Task)>,
    next_id: u64,
    ready: Arc<Mutex<VecDeque<u64>>>,
}

struct TaskWaker {
    id: u64,
    ready: Arc<Mutex<VecDeque<u64>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.ready.lock().push_back(self.id);
    }
}

impl Executor {
    /// Adds a future owned by DC `owner`; it is first polled at the next run.
    pub fn spawn(&mut self, owner: DcId, future: impl Future<Output = ()> + 'static) {
        let id = self.next_id;
        self.next_id += 1;
        self.tasks.insert(id, (owner, Box::pin(future)));
        self.ready.lock().push_back(id);
    }

    /// Drops every future `owner` runs (its process died).
    pub fn kill(&mut self, owner: DcId) {
        let dead: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, (o, _))| *o == owner)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            // Dropped outside the map: a future's drop may wake others.
            let task = self.tasks.remove(&id);
            drop(task);
        }
    }

    /// Polls woken futures, in wake order, until none is ready.
    ///
    /// # Panics
    /// If futures keep waking each other past [`POLLS_MAX`] polls (a livelock in the
    /// code under test, which a seed then replays).
    pub fn run_until_stalled(&mut self) {
        let mut polls = 0;
        loop {
            let Some(id) = self.ready.lock().pop_front() else {
                return;
            };
            let Some((owner, mut task)) = self.tasks.remove(&id) else {
                continue; // finished or killed since it was woken
            };
            polls += 1;
            assert!(
                polls < POLLS_MAX,
                "futures keep waking each other: livelock"
            );
            let waker = Waker::from(Arc::new(TaskWaker {
                id,
                ready: self.ready.clone(),
            }));
            if task
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
            {
                self.tasks.insert(id, (owner, task));
            }
        }
    }
}

/// Simulated time, shared by the world (which advances it) and the futures (which read
/// it through their clocks and wait on it with [`SimTime::sleep`]).
#[derive(Default)]
pub struct SimTime {
    now: AtomicU64,
    /// Timers registered since the world last collected them.
    timers: Mutex<Vec<(u64, Waker)>>,
}

impl SimTime {
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    pub fn set(&self, now: u64) {
        self.now.store(now, Ordering::Release);
    }

    /// Timers registered since the last call: (when, whom to wake).
    pub fn take_timers(&self) -> Vec<(u64, Waker)> {
        std::mem::take(&mut *self.timers.lock())
    }

    /// Resolves once simulated time reaches now + `us`.
    pub fn sleep(self: &Arc<Self>, us: u64) -> Sleep {
        Sleep {
            time: self.clone(),
            until: self.now() + us,
            registered: false,
        }
    }
}

pub struct Sleep {
    time: Arc<SimTime>,
    until: u64,
    registered: bool,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.time.now() >= self.until {
            return Poll::Ready(());
        }
        if !self.registered {
            self.registered = true;
            let until = self.until;
            self.time.timers.lock().push((until, cx.waker().clone()));
        }
        Poll::Pending
    }
}

/// A DC's physical clock: simulated time plus the DC's offset (which may be negative;
/// the world moves it to make the clock jump) and drift (parts per million of the time
/// since the run began).
pub struct SimClock {
    pub time: Arc<SimTime>,
    pub offset_us: AtomicI64,
    pub drift_ppm: i64,
    pub start: u64,
}

impl PhysicalClock for SimClock {
    fn now_micros(&self) -> u64 {
        let now = self.time.now();
        let drift =
            (now.saturating_sub(self.start) as i64).saturating_mul(self.drift_ppm) / 1_000_000;
        now.saturating_add_signed(self.offset_us.load(Ordering::Acquire) + drift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn futures_run_in_wake_order_and_sleep_in_simulated_time() {
        let time = Arc::new(SimTime::default());
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut ex = Executor::default();
        for (who, us) in [("a", 30), ("b", 10)] {
            let (time, log) = (time.clone(), log.clone());
            ex.spawn(0, async move {
                log.borrow_mut().push(format!("{who} start"));
                time.sleep(us).await;
                log.borrow_mut()
                    .push(format!("{who} woke at {}", time.now()));
            });
        }
        ex.run_until_stalled();
        let mut timers = time.take_timers();
        timers.sort_by_key(|(at, _)| *at);
        assert_eq!(timers.iter().map(|t| t.0).collect::<Vec<_>>(), [10, 30]);
        for (at, waker) in timers {
            time.set(at);
            waker.wake();
            ex.run_until_stalled();
        }
        assert_eq!(
            *log.borrow(),
            ["a start", "b start", "b woke at 10", "a woke at 30"]
        );
    }

    #[test]
    fn a_killed_owner_runs_no_more() {
        let time = Arc::new(SimTime::default());
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut ex = Executor::default();
        for owner in [0, 1] {
            let (time, log) = (time.clone(), log.clone());
            ex.spawn(owner, async move {
                time.sleep(5).await;
                log.borrow_mut().push(owner);
            });
        }
        ex.run_until_stalled();
        ex.kill(0);
        time.set(5);
        for (_, waker) in time.take_timers() {
            waker.wake();
        }
        ex.run_until_stalled();
        assert_eq!(*log.borrow(), [1]);
    }

    #[test]
    fn a_clock_runs_at_its_offset_and_drift() {
        let time = Arc::new(SimTime::default());
        let clock = SimClock {
            time: time.clone(),
            offset_us: AtomicI64::new(-500),
            drift_ppm: 100,
            start: 1_000_000,
        };
        time.set(1_000_000);
        assert_eq!(clock.now_micros(), 999_500);
        time.set(11_000_000);
        assert_eq!(clock.now_micros(), 11_000_500);
    }
}
