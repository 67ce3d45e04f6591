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
//! fail with an [`io::Error`] saying so, rather than hanging with nothing to wake them.
//!
//! What still uses async-io inside `block_on`: a stream made from your own
//! `async_std::net::TcpStream` (through `From`), and, with the `kerberos` feature, the KDC
//! client's UDP socket, its name resolution, and the KDC proxy's HTTP client.
//!
//! [`net::with_timeout`]: crate::net::with_timeout
//! [`net::sleep`]: crate::net::sleep
//! [`net::Timer`]: crate::net::Timer

use std::cell::{Cell, OnceCell};
use std::collections::{BTreeMap, HashMap};
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use polling::{Event, Events, Poller};

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
/// use std::sync::Arc;
/// use async_rdp::{connect, runtime, tls, ClientConfig, Event};
///
/// # let fingerprint = [0u8; 32];
/// let config = ClientConfig::new("alice", "s3cret")
///     .with_certificate_verifier(Arc::new(tls::Pinned::new([fingerprint])));
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
struct Running;

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
fn current() -> Option<Arc<Reactor>> {
    if !is_running() {
        return None;
    }
    REACTOR.try_with(|cell| cell.get().cloned()).ok().flatten()
}

/// Whether `reactor` is the one this thread is driving right now.
fn is_current(reactor: &Arc<Reactor>) -> bool {
    is_running()
        && REACTOR
            .try_with(|cell| cell.get().is_some_and(|current| Arc::ptr_eq(current, reactor)))
            .unwrap_or(false)
}

/// The waker of one `block_on` call: a flag, plus a notification for a thread asleep in
/// `epoll_wait`. It holds the poller alone (not the reactor), so that wakers stored in the
/// reactor's tables make no reference cycle.
struct Signal {
    woken: AtomicBool,
    poller: Arc<Poller>,
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

/// One thread's reactor: the poller, the wakers of the sockets waiting on it, and the timers.
pub(crate) struct Reactor {
    poller: Arc<Poller>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The next socket key: never reused, so a stale event cannot reach a newer socket.
    next_key: usize,
    sockets: HashMap<usize, Interest>,
    /// Pending timers by deadline; the id tells apart timers with the same deadline.
    timers: BTreeMap<(Instant, u64), Waker>,
    next_timer: u64,
}

/// The tasks waiting for one socket to become readable / writable.
#[derive(Default)]
struct Interest {
    read: Option<Waker>,
    write: Option<Waker>,
}

impl Reactor {
    fn new() -> io::Result<Self> {
        Ok(Self {
            poller: Arc::new(Poller::new()?),
            state: Mutex::default(),
        })
    }

    /// The tables are only ever touched by short, non-panicking sections; a poisoned lock
    /// holds consistent data.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One reactor turn: waits for I/O (until the nearest timer if `block`, else not at all),
    /// then wakes the tasks whose sockets are ready and whose timers are due.
    fn react(&self, events: &mut Events, ready: &mut Vec<Waker>, block: bool) {
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
    reactor: Arc<Reactor>,
    key: (Instant, u64),
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

/// A nonblocking TCP socket registered with one thread's reactor.
pub(crate) struct Registered {
    reactor: Arc<Reactor>,
    key: usize,
    /// Never moved out: `Registered` implements `Drop`, which deregisters it before it closes
    /// (see `Registered::new`).
    io: std::net::TcpStream,
}

impl Registered {
    /// Registers `io` with the reactor of the running `block_on`, with no interest yet.
    fn new(reactor: Arc<Reactor>, io: std::net::TcpStream) -> io::Result<Self> {
        io.set_nonblocking(true)?;
        let key = {
            let mut state = reactor.lock();
            let key = state.next_key;
            state.next_key += 1;
            state.sockets.insert(key, Interest::default());
            key
        };
        // SAFETY: `Poller::add` requires the source to be deleted from the poller before it is
        // closed. The fd belongs to `io`, which is moved into the `Registered` built right
        // below (nothing between can fail or panic) and stays there until it drops: the field
        // is private, never handed out by value, and cannot be moved out of a type that
        // implements `Drop`. `Registered::drop` calls `Poller::delete` and runs before the
        // fields are dropped, i.e. before the fd is closed; the poller itself is kept alive
        // by the `Arc<Reactor>` field, dropped only after that. (Should `delete` ever fail,
        // closing the fd still removes it from the epoll set, and polling's epoll backend
        // keeps no per-fd state that could dangle.)
        #[allow(unsafe_code)]
        let added = unsafe { reactor.poller.add(&io, Event::none(key)) };
        if let Err(e) = added {
            reactor.lock().sockets.remove(&key);
            return Err(e);
        }
        Ok(Self { reactor, key, io })
    }

    /// Runs the nonblocking `op`; on `WouldBlock`, stores the waker for its direction and
    /// (re)arms the socket's interest, then returns `Pending`.
    fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        write: bool,
        mut op: impl FnMut(&std::net::TcpStream) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        if !is_current(&self.reactor) {
            return Poll::Ready(Err(foreign()));
        }
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                result => return Poll::Ready(result),
            }
        }
        let mut state = self.reactor.lock();
        let Some(interest) = state.sockets.get_mut(&self.key) else {
            return Poll::Ready(Err(io::Error::other(
                "async_rdp::runtime: the socket is not registered",
            )));
        };
        let slot = if write { &mut interest.write } else { &mut interest.read };
        let replaced = match slot {
            Some(stored) if stored.will_wake(cx.waker()) => None,
            _ => slot.replace(cx.waker().clone()),
        };
        // Both directions, since re-arming replaces the whole (oneshot) interest. If the
        // socket became ready between `op` and here, epoll reports it on the next wait:
        // EPOLL_CTL_MOD checks readiness as it re-arms, so no wake-up is lost.
        let event = Event::new(self.key, interest.read.is_some(), interest.write.is_some());
        // A replaced waker is dropped with the lock released (its drop could reach this
        // reactor again; the lock is not reentrant).
        drop(state);
        drop(replaced);
        match self.reactor.poller.modify(&self.io, event) {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    pub(crate) fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, false, |mut io| io.read(buf))
    }

    pub(crate) fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, false, |mut io| io.read_vectored(bufs))
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, true, |mut io| io.write(buf))
    }

    pub(crate) fn poll_write_vectored(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, true, |mut io| io.write_vectored(bufs))
    }

    /// The socket as a std stream, for the calls that never wait (addresses, options,
    /// shutdown).
    pub(crate) fn get_ref(&self) -> &std::net::TcpStream {
        &self.io
    }

    /// Shuts down the write half (what `poll_close` means for TCP). It never waits, so it
    /// works outside the runtime too.
    pub(crate) fn close(&self) -> io::Result<()> {
        self.io.shutdown(Shutdown::Write)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        // Deregister before `io` closes the fd: the contract of `Poller::add` (see `new`).
        // Dropping works from any thread: the poller and the tables are thread-safe.
        let _ = self.reactor.poller.delete(&self.io);
        let interest = self.reactor.lock().sockets.remove(&self.key);
        // Its wakers are dropped outside the lock.
        drop(interest);
    }
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("io", &self.io)
            .finish_non_exhaustive()
    }
}

/// The error a registered stream gives when polled where its reactor is not being driven.
fn foreign() -> io::Error {
    io::Error::other(
        "this TcpStream was opened inside async_rdp::runtime::block_on and can only be polled inside \
         runtime::block_on on the same thread: nothing drives its readiness here",
    )
}

/// Opens a TCP connection on the running reactor: `addr` is an IP literal with a port
/// (`127.0.0.1:3389`, `[::1]:3389`), resolved without any system call, or a `host:port`,
/// resolved with std's blocking resolver (`getaddrinfo`), which blocks the thread — and with
/// it the whole runtime — for as long as the lookup takes. Each address is tried in turn;
/// the error of the last one is returned if none connects.
///
/// Must be called inside [`block_on`].
pub(crate) async fn connect(addr: &str) -> io::Result<Registered> {
    let addrs: Vec<SocketAddr> = match addr.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => std::net::ToSocketAddrs::to_socket_addrs(addr)?.collect(),
    };
    let mut last = None;
    for addr in addrs {
        match connect_one(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to no address")))
}

/// A nonblocking connect: `connect(2)` returns `EINPROGRESS`, the socket turns writable when
/// the handshake ends, and `SO_ERROR` then tells success from failure.
async fn connect_one(addr: SocketAddr) -> io::Result<Registered> {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    let reactor = current().ok_or_else(|| io::Error::other("async_rdp::runtime::connect outside block_on"))?;
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    // Close-on-exec like every socket std opens, set atomically with the socket itself.
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    // Registered before connecting, so that dropping this future at any point (a timeout)
    // deregisters and closes the socket, abandoning the attempt.
    let stream = Registered::new(reactor, std::net::TcpStream::from(fd))?;
    match rustix::net::connect(&stream.io, &addr) {
        // EINTR on a nonblocking connect: the handshake goes on in the background, as with
        // EINPROGRESS.
        Ok(()) | Err(Errno::INPROGRESS) | Err(Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    poll_fn(|cx| stream.poll_io(cx, true, connected)).await?;
    Ok(stream)
}

/// Whether a nonblocking connect has finished: `Ok` once connected, the connect error if it
/// failed, `WouldBlock` while the handshake is still going on.
fn connected(io: &std::net::TcpStream) -> io::Result<()> {
    if let Some(e) = io.take_error()? {
        return Err(e);
    }
    match io.peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}
