//! The watchdog: a thread that, when an iteration runs longer than [`HANG`], writes its input
//! as a `timeout-<sha1>` artifact, prints it and aborts the process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::artifacts::{hex, write_artifact};
use crate::engine::Target;

/// An iteration running longer than this is a hang.
pub const HANG: Duration = Duration::from_secs(60);

/// Aborts the process, with the input, when an iteration runs longer than [`HANG`].
pub struct Watchdog {
    state: Arc<WatchState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct WatchState {
    /// When the running iteration started, in milliseconds since `epoch`; 0 between iterations.
    started: AtomicU64,
    epoch: Instant,
    input: Mutex<Vec<u8>>,
    done: AtomicBool,
}

impl WatchState {
    /// Milliseconds since `epoch`.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Watchdog {
    pub fn start(target: &Target) -> Self {
        let state = Arc::new(WatchState {
            started: AtomicU64::new(0),
            epoch: Instant::now(),
            input: Mutex::new(Vec::new()),
            done: AtomicBool::new(false),
        });
        let watched = state.clone();
        let target = *target;
        let thread = std::thread::spawn(move || watch(&watched, &target));
        Self {
            state,
            thread: Some(thread),
        }
    }

    pub fn enter(&self, input: &[u8]) {
        {
            let mut held = self.state.input.lock().unwrap_or_else(PoisonError::into_inner);
            held.clear();
            held.extend_from_slice(input);
        }
        let now = self.state.now();
        self.state.started.store(now.max(1), Ordering::Relaxed);
    }

    pub fn leave(&self) {
        self.state.started.store(0, Ordering::Relaxed);
    }

    pub fn stop(mut self) {
        self.state.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The watchdog thread: every 250 ms until stopped, checks how long the iteration has run.
fn watch(watched: &WatchState, target: &Target) {
    while !watched.done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let started = watched.started.load(Ordering::Relaxed);
        let now = watched.now();
        if started != 0 && now.saturating_sub(started) > HANG.as_millis() as u64 {
            hung(watched, target);
        }
    }
}

/// Writes and prints the input that hangs, and aborts.
fn hung(watched: &WatchState, target: &Target) -> ! {
    let input = watched.input.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let path = write_artifact(target, "timeout", "", &input);
    let target = target.name;
    eprintln!(
        "{target}: an iteration has run for more than {HANG:?}: {} ({} bytes)\ninput: {}",
        path.display(),
        input.len(),
        hex(&input)
    );
    std::process::abort();
}
