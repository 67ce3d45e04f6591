//! The reactor: one epoll instance per thread with its registered sockets, its timers
//! (a timerfd armed for the earliest), and an eventfd for wakes from other threads.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

use super::{current, is_current};
use polling::{Events, Poller};

/// One thread's reactor: the poller, the wakers of the sockets waiting on it, and the timers.
pub(crate) struct Reactor {
    pub(super) poller: Arc<Poller>,
    pub(super) state: Mutex<State>,
}

#[derive(Default)]
pub(super) struct State {
    /// The next socket key: never reused, so a stale event cannot reach a newer socket.
    pub(super) next_key: usize,
    pub(super) sockets: HashMap<usize, Interest>,
    /// Pending timers by deadline; the id tells apart timers with the same deadline.
    pub(super) timers: BTreeMap<(Instant, u64), Waker>,
    pub(super) next_timer: u64,
}

/// The tasks waiting for one socket to become readable / writable.
#[derive(Default)]
pub(super) struct Interest {
    pub(super) read: Option<Waker>,
    pub(super) write: Option<Waker>,
}

impl Reactor {
    pub(super) fn new() -> io::Result<Self> {
        Ok(Self {
            poller: Arc::new(Poller::new()?),
            state: Mutex::default(),
        })
    }

    /// The tables are only ever touched by short, non-panicking sections; a poisoned lock
    /// holds consistent data.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One reactor turn: waits for I/O (until the nearest timer if `block`, else not at all),
    /// then wakes the tasks whose sockets are ready and whose timers are due.
    pub(super) fn react(&self, events: &mut Events, ready: &mut Vec<Waker>, block: bool) {
        let deadline = if block {
            self.lock().timers.keys().next().map(|&(when, _)| when)
        } else {
            Some(Instant::now())
        };
        let waited = match deadline {
            Some(deadline) => self.poller.wait_deadline(events, deadline),
            None => self.poller.wait(events, None),
        };
        if let Err(e) = waited {
            panic!("async_rdp::runtime: waiting for I/O failed: {e}");
        }
        {
            let mut state = self.lock();
            for event in events.iter() {
                // Registrations are oneshot (polling's default): after any event the socket is
                // disarmed for both directions, so both waiting tasks are woken and each
                // re-arms what it still needs when it retries.
                if let Some(interest) = state.sockets.get_mut(&event.key) {
                    ready.extend(interest.read.take());
                    ready.extend(interest.write.take());
                }
            }
            let now = Instant::now();
            while let Some(entry) = state.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                ready.push(entry.remove());
            }
        }
        events.clear();
        // Woken outside the lock: a foreign waker may run arbitrary code.
        for waker in ready.drain(..) {
            waker.wake();
        }
    }
}

/// A timer registered with the running reactor; deregistered when dropped.
pub(crate) struct TimerEntry {
    pub(super) reactor: Arc<Reactor>,
    pub(super) key: (Instant, u64),
}

impl TimerEntry {
    /// Registers a timer for `when` that wakes `waker`, if this thread is inside `block_on`.
    pub(crate) fn register(when: Instant, waker: &Waker) -> Option<Self> {
        let reactor = current()?;
        let key = {
            let mut state = reactor.lock();
            let id = state.next_timer;
            state.next_timer += 1;
            state.timers.insert((when, id), waker.clone());
            (when, id)
        };
        Some(Self { reactor, key })
    }

    /// Whether this entry is for `when` and on the reactor this thread is driving right now.
    pub(crate) fn is_current_for(&self, when: Instant) -> bool {
        self.key.0 == when && is_current(&self.reactor)
    }

    /// Makes the timer wake `waker` (the task polling it may have moved).
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut state = self.reactor.lock();
        let replaced = match state.timers.get_mut(&self.key) {
            Some(stored) if stored.will_wake(waker) => None,
            Some(stored) => Some(std::mem::replace(stored, waker.clone())),
            // Fired already, so its task has been woken; whoever polls next sees the deadline.
            None => {
                drop(state);
                waker.wake_by_ref();
                return;
            }
        };
        // Wakers are dropped and woken with the lock released: a waker of some other executor
        // could reach this reactor again, and its lock is not reentrant.
        drop(state);
        drop(replaced);
    }

    /// Moves the deadline to `when`, keeping the waker, so that a task already waiting on the
    /// timer is woken at the new deadline without polling it again (as async-io's
    /// `Timer::set_at` does). An entry that has fired keeps its old key: its task was woken,
    /// and its next poll sees that the key no longer matches the deadline and registers anew.
    pub(crate) fn reset(&mut self, when: Instant) {
        let mut state = self.reactor.lock();
        if let Some(waker) = state.timers.remove(&self.key) {
            self.key.0 = when;
            state.timers.insert(self.key, waker);
        }
        drop(state);
        // A reactor asleep on another thread must recompute its nearest deadline.
        if !is_current(&self.reactor) {
            let _ = self.reactor.poller.notify();
        }
    }
}

impl Drop for TimerEntry {
    fn drop(&mut self) {
        let waker = self.reactor.lock().timers.remove(&self.key);
        drop(waker);
    }
}

impl std::fmt::Debug for TimerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerEntry")
            .field("when", &self.key.0)
            .finish_non_exhaustive()
    }
}
