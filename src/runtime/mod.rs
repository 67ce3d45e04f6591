//! A single-threaded executor and I/O reactor: [`block_on`] runs a future — its sockets and its
//! timers included — on the calling thread, and on no other.
//!
//! Why it exists: async-std's sockets and timers live on async-io's global reactor, which
//! starts an OS thread named `async-io` the first time any of them is used; that thread then
//! polls the reactor alongside whatever executor runs the futures (waking up every 50 µs to
//! 10 ms while async-io's own `block_on` runs, and contending for the reactor lock). Under any
//! executor an RDP session on async-std therefore occupies two OS threads. Inside
//! [`block_on`], [`net::connect`](crate::net::connect), [`net::with_timeout`],
//! [`net::sleep`] and [`net::Timer`] (the session's idle timeout) use this module's reactor
//! instead: the thread that calls `block_on` waits in `epoll` itself (through the `polling`
//! crate), and no thread is ever spawned. Outside `block_on` they keep using async-std, so
//! every other executor works as before.
//!
//! Each thread gets one reactor, made by its first `block_on` and kept until the thread exits
//! (three file descriptors: epoll, an eventfd for cross-thread wakes, a timerfd), so a stream
//! opened in one `block_on` call can be used by a later one on the same thread.
//! A stream opened here is registered with that reactor: polled anywhere else (under another
//! executor, on another thread, or on this thread outside `block_on`) its reads and writes
//! fail with an [`io::Error`](std::io::Error) saying so, rather than hanging with nothing to wake them.
//!
//! What still uses async-io inside `block_on`: a stream made from your own
//! `async_std::net::TcpStream` (through `From`), and, with the `kerberos` feature, the KDC
//! client's UDP socket, its name resolution, and the KDC proxy's HTTP client.
//!
//! [`net::with_timeout`]: crate::net::with_timeout
//! [`net::sleep`]: crate::net::sleep
//! [`net::Timer`]: crate::net::Timer

use std::cell::{Cell, OnceCell};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use polling::{Events, Poller};

mod reactor;
mod socket;
mod watch;

use self::reactor::Reactor;
pub(crate) use self::reactor::TimerEntry;
pub(crate) use self::socket::{connect, Registered};
pub use self::watch::WatchedFd;

thread_local! {
    /// This thread's reactor: made by the first `block_on` on the thread and kept for its
    /// lifetime, so that streams and timers survive from one `block_on` call to the next.
    static REACTOR: OnceCell<Arc<Reactor>> = const { OnceCell::new() };
    /// Whether this thread is inside `block_on`: only then is `REACTOR` driven, so only then
    /// may anything register with it and wait.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
    /// The running `block_on`'s wake flag (its address, only compared): a wake from its own
    /// thread needs no `Poller::notify`, since that thread looks at the flag before it waits.
    static SIGNAL: Cell<*const Signal> = const { Cell::new(std::ptr::null()) };
}

/// Runs `future` to completion on the calling thread, driving this module's reactor (sockets
/// and timers) in between polls, and returns its output.
///
/// While the future is pending the thread sleeps in `epoll_wait` until a socket it waits for is
/// ready, its nearest timer is due, or its waker is called (from any thread: wakers are
/// `Send + Sync`). Nothing else runs: this is the whole executor, no task is spawned and no
/// thread is started, so a session run here occupies exactly one OS thread.
///
/// ```no_run
/// use async_rdp::{connect, runtime, ClientConfig, Event};
///
/// let config = ClientConfig::new("alice", "s3cret");
/// // The whole session — TCP, TLS, NLA, decoding, timeouts — on this thread alone.
/// runtime::block_on(async {
///     let mut session = connect("192.0.2.10:3389", config).await?;
///     loop {
///         match session.next_event().await? {
///             Event::Graphics(rect) => println!("{rect:?} changed"),
///             Event::Disconnected(reason) => return Ok(println!("ended: {reason:?}")),
///             _ => {}
///         }
///     }
/// })?;
/// # Ok::<(), async_rdp::Error>(())
/// ```
///
/// # Panics
///
/// - When called inside another `runtime::block_on` on the same thread (from a future it
///   polls): the outer call's reactor would stop being driven while the inner one runs, so
///   this is refused rather than left to deadlock. `.await` the future instead.
/// - When the reactor cannot be created (`epoll_create` failing, e.g. out of file
///   descriptors) or waiting on it fails: there is no way to run the future then.
///
/// Calling it inside another executor's `block_on` (or another executor's inside this one)
/// works, with the usual caveat of nested executors: the outer one is stalled meanwhile. In
/// particular, a future polled by a foreign executor nested inside this `block_on` sees this
/// runtime as running and registers its timers and sockets with it, but nothing drives the
/// reactor until that foreign executor returns — so if that executor waits for one of those
/// sockets or timers, it never returns: a deadlock. Do not nest another executor's
/// `block_on` inside this one.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let reactor = REACTOR.with(|cell| {
        Arc::clone(cell.get_or_init(|| {
            Arc::new(Reactor::new().unwrap_or_else(|e| panic!("async_rdp::runtime: cannot create the reactor: {e}")))
        }))
    });
    let signal = Arc::new(Signal {
        woken: AtomicBool::new(false),
        poller: Arc::clone(&reactor.poller),
    });
    // Declared before the future, so dropped after it: whatever the future's drop does
    // (deregistering sockets and timers) still sees the runtime as running.
    let _running = Running::enter(&signal);
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut events = Events::new();
    let mut ready = Vec::new();
    loop {
        // Cleared before the poll, never after: a wake that lands during the poll (from this
        // thread or another) leaves the flag set and is seen below.
        signal.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A future that woke itself is polled again at once, but the reactor still gets one
        // non-blocking turn first, so that a future that keeps yielding cannot starve I/O.
        let mut block = !signal.woken.load(Ordering::SeqCst);
        loop {
            reactor.react(&mut events, &mut ready, block);
            if signal.woken.load(Ordering::SeqCst) {
                break;
            }
            block = true;
        }
    }
}

/// Marks this thread as inside `block_on` for as long as it lives, even through a panic.
pub(super) struct Running;

impl Running {
    fn enter(signal: &Arc<Signal>) -> Self {
        assert!(
            !RUNNING.get(),
            "async_rdp::runtime::block_on called inside another runtime::block_on on the same thread: \
             the outer one would stop driving its sockets and timers; .await the future instead"
        );
        RUNNING.set(true);
        SIGNAL.set(Arc::as_ptr(signal));
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.set(false);
        SIGNAL.set(std::ptr::null());
    }
}

/// Whether this thread is inside [`block_on`] (false while the thread-locals are being torn
/// down at thread exit: nothing drives the reactor then).
pub(crate) fn is_running() -> bool {
    RUNNING.try_with(Cell::get).unwrap_or(false)
}

/// The running `block_on`'s reactor, if this thread is inside one.
pub(super) fn current() -> Option<Arc<Reactor>> {
    if !is_running() {
        return None;
    }
    REACTOR.try_with(|cell| cell.get().cloned()).ok().flatten()
}

/// Whether `reactor` is the one this thread is driving right now.
pub(super) fn is_current(reactor: &Arc<Reactor>) -> bool {
    is_running()
        && REACTOR
            .try_with(|cell| cell.get().is_some_and(|current| Arc::ptr_eq(current, reactor)))
            .unwrap_or(false)
}

/// The waker of one `block_on` call: a flag, plus a notification for a thread asleep in
/// `epoll_wait`. It holds the poller alone (not the reactor), so that wakers stored in the
/// reactor's tables make no reference cycle.
pub(super) struct Signal {
    pub(super) woken: AtomicBool,
    pub(super) poller: Arc<Poller>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only the first wake after a poll needs to do anything; `swap` makes that race-free
        // between threads.
        if self.woken.swap(true, Ordering::SeqCst) {
            return;
        }
        // On the `block_on` thread itself the flag is enough: that thread checks it after the
        // poll and after each reactor turn, before it ever blocks. From any other thread, the
        // notification makes the current or next `epoll_wait` return.
        let own_thread = SIGNAL
            .try_with(|s| std::ptr::eq(s.get(), Arc::as_ptr(self)))
            .unwrap_or(false);
        if !own_thread {
            // It fails only if writing to the poller's eventfd fails, which cannot happen
            // for an open eventfd; there would be nothing better to do than drop the wake.
            let _ = self.poller.notify();
        }
    }
}
